// `status` in-process: the route's weights and each verifier's read-only evidence (a probe at the current weights;
// the mesh's counters over a window, not judged), with zero writes to the in-memory cluster.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { VirtualService } from '../../src/k8s/resources.js'
import { Engine } from '../../src/rollout/engine.js'
import { createRouter } from '../../src/routing/index.js'
import type { PrometheusClient, QueryResult } from '../../src/telemetry/prometheus.js'
import { TelemetryVerifier } from '../../src/verify/telemetry/verifier.js'
import type { Check, StepContext, Verifier } from '../../src/verify/verifier.js'
import { FakeCluster } from '../fakes/cluster.js'

const TARGET = {
  kind: 'VirtualService' as const,
  namespace: 'bookinfo',
  name: 'reviews',
  route: { by: 'default' as const },
}

function reviews(): VirtualService {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'reviews', namespace: 'bookinfo' },
    spec: {
      hosts: ['reviews'],
      http: [
        {
          route: [
            { destination: { host: 'reviews', subset: 'v1' }, weight: 75 },
            { destination: { host: 'reviews', subset: 'v3' }, weight: 25 },
          ],
        },
      ],
    },
  }
}

class Probe implements Verifier {
  readonly kind = 'smoke'
  readonly seen: StepContext[] = []
  constructor(private readonly verdict: 'pass' | 'fail') {}
  describe(): string {
    return 'probe'
  }
  async verify(step: StepContext): Promise<Check> {
    this.seen.push(step)
    return {
      kind: this.kind,
      verdict: this.verdict,
      reasons: this.verdict === 'fail' ? ['2/20 failed'] : [],
      summary: this.verdict === 'fail' ? '18/20 passed' : '20/20 passed',
      evidence: {},
    }
  }
}

/** Cumulative counters that grow between calls, as a scraped Prometheus would answer. */
function counters(series: Array<Record<string, [number, number]>>): PrometheusClient & { queries: string[] } {
  const queries: string[] = []
  let call = 0
  return {
    describe: 'fake Prometheus',
    queries,
    async query(promql: string): Promise<QueryResult> {
      queries.push(promql)
      const errors = promql.includes('response_code')
      const now = series[Math.min(Math.floor(call++ / 2), series.length - 1)] as Record<string, [number, number]>
      return {
        type: 'vector',
        samples: Object.entries(now).map(([version, [r, e]]) => ({
          labels: { destination_version: version },
          value: errors ? e : r,
        })),
      }
    },
  }
}

function engine(cluster: FakeCluster, verifiers: Verifier[], slept: number[]): Engine {
  const router = createRouter(cluster, TARGET, { log: () => {} })
  return new Engine(
    {
      router,
      verifiers,
      signal: new AbortController().signal,
      runId: 'status-run',
      log: () => {},
      sleep: async (ms) => {
        slept.push(ms)
      },
    },
    { stableSubset: 'auto', canarySubset: 'v3' },
  )
}

describe('status evidence', () => {
  it('weights, a probe at the current weight and the mesh counts over the window; nothing written', async () => {
    const cluster = new FakeCluster()
    cluster.put(reviews())
    /** Every call that is not a read (get, list). */
    const writes = (): string[] => cluster.calls.filter((c) => !/^(get|list)/.test(c))
    const probe = new Probe('fail')
    const client = counters([
      { v1: [1000, 2], v3: [100, 0] },
      { v1: [1900, 3], v3: [400, 6] },
    ])
    const telemetry = new TelemetryVerifier(
      {
        client,
        target: { namespace: 'bookinfo', service: 'reviews', versions: ['v1', 'v3'] },
        test: { alpha: 0.01, minCanaryRequests: 100 },
      },
      { sleep: async () => {}, now: () => 0, log: () => {} },
    )
    const slept: number[] = []
    const e = engine(cluster, [probe, telemetry], slept)
    await e.load()
    const out = await e.status({ windowMs: 30_000 })
    assert.equal(out.result, 'unchanged')
    assert.equal(out.canaryWeight, 25)
    assert.deepEqual(writes(), [], 'status writes nothing')
    assert.ok(cluster.calls.includes('getVirtualService'), 'the calls are recorded')
    assert.deepEqual(out.observation?.weights, [
      { subset: 'v1', weight: 75 },
      { subset: 'v3', weight: 25 },
    ])
    // the probe ran once, as a baseline at the current weight, without a pause
    assert.deepEqual(
      probe.seen.map((s) => [s.kind, s.weight, s.pauseMs]),
      [['baseline', 25, 0]],
    )
    const [smoke, mesh] = out.observation?.checks ?? []
    assert.equal(smoke?.verdict, 'fail', 'reported as it is, not acted on')
    assert.equal(mesh?.kind, 'telemetry')
    assert.equal(mesh?.verdict, 'pass')
    assert.deepEqual((mesh?.evidence as { counts: unknown }).counts, {
      canaryRequests: 300,
      canaryErrors: 6,
      stableRequests: 900,
      stableErrors: 1,
    })
    assert.equal(mesh?.summary, 'observed over 30s, not judged: v3 6/300 5xx, v1 1/900 5xx')
    assert.deepEqual(slept, [30_000])
    assert.ok(
      out.events.some((ev) => /Status smoke: 18\/20 passed \(FAIL at these weights: 2\/20 failed\)/.test(ev.message)),
    )
    assert.equal(out.error, undefined)
  })

  it('a Prometheus that fails is a failed observation, not an error of the run', async () => {
    const cluster = new FakeCluster()
    cluster.put(reviews())
    const client: PrometheusClient = {
      describe: 'down',
      query: async () => {
        throw new Error('connection refused')
      },
    }
    const telemetry = new TelemetryVerifier(
      {
        client,
        target: { namespace: 'bookinfo', service: 'reviews', versions: ['v1', 'v3'] },
        test: { alpha: 0.01, minCanaryRequests: 100 },
      },
      { sleep: async () => {}, now: () => 0, log: () => {} },
    )
    const e = engine(cluster, [telemetry], [])
    await e.load()
    const out = await e.status({ windowMs: 0 })
    assert.equal(out.result, 'unchanged')
    assert.deepEqual(out.observation?.checks[0]?.reasons, ['Prometheus could not be read: connection refused'])
  })

  it('without verifiers: the route and the notes only', async () => {
    const cluster = new FakeCluster()
    cluster.put(reviews())
    const e = engine(cluster, [], [])
    await e.load()
    e.statusNotes.push('no evidence per version: the mesh is not ready')
    const out = await e.status()
    assert.deepEqual(out.observation?.checks, [])
    assert.deepEqual(out.observation?.notes, ['no evidence per version: the mesh is not ready'])
    assert.equal(out.observation?.state, undefined)
  })
})
