// The telemetry verifier on a scripted Prometheus and a virtual clock: each decision it can end a step with,
// the rollout-wide test carried across steps, and a Prometheus lost mid-step failing the step.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { PrometheusClient, QueryResult } from '../../src/telemetry/prometheus.js'
import { PrometheusError } from '../../src/telemetry/prometheus.js'
import { TelemetryVerifier } from '../../src/verify/telemetry/verifier.js'
import type { StepContext } from '../../src/verify/verifier.js'

/** A mesh whose counters grow per poll by the given requests and 5xx per version. */
class ScriptedMesh implements PrometheusClient {
  readonly describe = 'scripted Prometheus'
  readonly totals: Record<string, { requests: number; errors: number }> = {
    v1: { requests: 1000, errors: 2 },
    v3: { requests: 0, errors: 0 },
  }
  queries = 0
  failAfter: number | undefined
  constructor(private readonly perPoll: Record<string, { requests: number; errors: number }>) {}
  /** Called by the clock between polls. */
  tick(): void {
    for (const [version, add] of Object.entries(this.perPoll)) {
      const t = this.totals[version]!
      t.requests += add.requests
      t.errors += add.errors
    }
  }
  async query(promql: string): Promise<QueryResult> {
    this.queries++
    if (this.failAfter !== undefined && this.queries > this.failAfter) {
      throw new PrometheusError('scripted Prometheus is unreachable: connect ECONNREFUSED', 'unreachable')
    }
    const errors = promql.includes('response_code=~"5.."')
    return {
      type: 'vector',
      samples: Object.entries(this.totals).map(([version, t]) => ({
        labels: { destination_version: version },
        value: errors ? t.errors : t.requests,
      })),
    }
  }
}

function verifierOn(mesh: ScriptedMesh, o: { minCanaryRequests?: number; maxStepTimeMs?: number } = {}) {
  let clock = 0
  const verifier = new TelemetryVerifier(
    {
      client: mesh,
      target: { namespace: 'bookinfo', service: 'reviews', versions: ['v1', 'v3'] },
      test: { alpha: 0.01, minCanaryRequests: o.minCanaryRequests ?? 100 },
      ...(o.maxStepTimeMs !== undefined ? { maxStepTimeMs: o.maxStepTimeMs } : {}),
    },
    {
      sleep: async (ms) => {
        clock += ms
        mesh.tick()
      },
      now: () => clock,
      log: () => {},
    },
  )
  return { verifier, elapsed: () => clock }
}

const step = (pauseMs: number, kind: StepContext['kind'] = 'step'): StepContext => ({
  kind,
  index: 1,
  weight: 10,
  pauseMs,
  headers: {},
  signal: new AbortController().signal,
})

describe('telemetry verifier', () => {
  it('rejects a canary that errs far more than stable before the pause is over', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 90, errors: 0 }, v3: { requests: 10, errors: 5 } })
    const { verifier, elapsed } = verifierOn(mesh)
    const check = await verifier.verify(step(60_000))
    assert.equal(check.verdict, 'fail')
    assert.equal((check.evidence as { decision: string }).decision, 'reject')
    assert.ok(elapsed() < 60_000, `decided after ${elapsed()} ms, before the pause ended`)
    assert.match(check.reasons[0] ?? '', /the canary errs more than stable/)
  })

  it('accepts a healthy canary at the end of the pause once it served min-canary-requests', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 90, errors: 0 }, v3: { requests: 10, errors: 0 } })
    const { verifier, elapsed } = verifierOn(mesh, { minCanaryRequests: 100 })
    const check = await verifier.verify(step(20_000))
    assert.equal(check.verdict, 'pass')
    const evidence = check.evidence as { decision: string; counts: { canaryRequests: number } }
    assert.equal(evidence.decision, 'accept')
    assert.ok(evidence.counts.canaryRequests >= 100)
    assert.ok(elapsed() >= 20_000, 'not before the pause is over')
  })

  it('waits past the pause for evidence, then fails as inconclusive at max-step-time', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 9, errors: 0 }, v3: { requests: 1, errors: 0 } })
    const { verifier, elapsed } = verifierOn(mesh, { minCanaryRequests: 100, maxStepTimeMs: 30_000 })
    const check = await verifier.verify(step(10_000))
    assert.equal(check.verdict, 'fail')
    assert.equal((check.evidence as { decision: string }).decision, 'inconclusive')
    assert.equal(elapsed(), 30_000)
  })

  it('a Prometheus lost mid-step fails the step, never passes it', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 90, errors: 0 }, v3: { requests: 10, errors: 0 } })
    mesh.failAfter = 4
    const { verifier } = verifierOn(mesh)
    const check = await verifier.verify(step(60_000))
    assert.equal(check.verdict, 'fail')
    assert.match(check.reasons[0] ?? '', /cannot be judged: scripted Prometheus is unreachable/)
  })

  it('does not judge a baseline or a preview', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 90, errors: 0 }, v3: { requests: 10, errors: 50 } })
    const { verifier } = verifierOn(mesh)
    for (const kind of ['baseline', 'preview'] as const) {
      const check = await verifier.verify(step(0, kind))
      assert.equal(check.verdict, 'pass', kind)
      assert.equal(mesh.queries, 0, 'no query for a step it does not judge')
    }
  })

  it('a counter reset (a restarted pod) counts its new value, not a negative increase', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 90, errors: 0 }, v3: { requests: 10, errors: 0 } })
    const { verifier } = verifierOn(mesh, { minCanaryRequests: 50 })
    const first = verifier.verify(step(10_000))
    mesh.totals['v1'] = { requests: 5, errors: 0 }
    const check = await first
    const counts = (check.evidence as { counts: { stableRequests: number } }).counts
    assert.ok(counts.stableRequests >= 0)
    assert.equal(check.verdict, 'pass')
  })
})
