// The telemetry verifier on a scripted Prometheus and a virtual clock: each decision it can end a step with,
// the rollout-wide test carried across steps, and a Prometheus lost mid-step failing the step.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { PrometheusClient, QueryResult } from '../../src/telemetry/prometheus.js'
import { PrometheusError } from '../../src/telemetry/prometheus.js'
import { POLL_INTERVAL_MS, TelemetryVerifier } from '../../src/verify/telemetry/verifier.js'
import type { StepContext } from '../../src/verify/verifier.js'

/** A mesh whose counters grow per poll by the given requests and 5xx per version. */
class ScriptedMesh implements PrometheusClient {
  readonly describe = 'scripted Prometheus'
  readonly totals: Record<string, { requests: number; errors: number }> = {
    v1: { requests: 1000, errors: 2 },
    v3: { requests: 0, errors: 0 },
  }
  queries = 0
  /** Quantile queries asked (histogram_quantile). */
  latencyQueries: string[] = []
  failAfter: number | undefined
  /** Queries refused once failAfter was reached. */
  refused: string[] = []
  /** p95 per version the scripted Prometheus answers (p50: half of it); a version absent has no sample. */
  p95: Record<string, number> = { v1: 48.75, v3: 48.75 }
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
      this.refused.push(promql)
      throw new PrometheusError('scripted Prometheus is unreachable: connect ECONNREFUSED', 'unreachable')
    }
    if (promql.startsWith('histogram_quantile(')) {
      this.latencyQueries.push(promql)
      const factor = promql.startsWith('histogram_quantile(0.95,') ? 1 : 0.5
      const entries = Object.entries(this.p95)
      if (promql.includes('sum by (le) ')) {
        const worst = Math.max(...entries.map(([, p]) => p))
        return { type: 'vector', samples: [{ labels: {}, value: worst * factor }] }
      }
      return {
        type: 'vector',
        samples: entries.map(([version, p]) => ({ labels: { destination_version: version }, value: p * factor })),
      }
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

function verifierOn(
  mesh: ScriptedMesh,
  o: { minCanaryRequests?: number; maxStepTimeMs?: number; maxLatencyMs?: number; warnings?: string[] } = {},
) {
  let clock = 0
  const verifier = new TelemetryVerifier(
    {
      client: mesh,
      target: { namespace: 'bookinfo', service: 'reviews', versions: ['v1', 'v3'] },
      test: { alpha: 0.01, minCanaryRequests: o.minCanaryRequests ?? 100 },
      ...(o.maxStepTimeMs !== undefined ? { maxStepTimeMs: o.maxStepTimeMs } : {}),
      ...(o.maxLatencyMs !== undefined ? { maxLatencyMs: o.maxLatencyMs } : {}),
    },
    {
      sleep: async (ms) => {
        clock += ms
        mesh.tick()
      },
      now: () => clock,
      log: () => {},
      warn: (m) => o.warnings?.push(m),
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

  it("counts in the step only what was served after its start: the interval that straddles it is the test's, not the step's", async () => {
    // The last scrape before the step is older than the step: the first interval in which the counters move holds
    // traffic at the previous weight (here: all on stable, 500 requests with 10 errors, stable-unhealthy on its own).
    const perPoll = { v1: { requests: 500, errors: 10 }, v3: { requests: 0, errors: 0 } }
    const mesh = new ScriptedMesh(perPoll)
    const tick = mesh.tick.bind(mesh)
    let ticks = 0
    mesh.tick = () => {
      tick()
      if (++ticks === 1) Object.assign(perPoll, { v1: { requests: 90, errors: 0 }, v3: { requests: 10, errors: 0 } })
    }
    const { verifier } = verifierOn(mesh, { minCanaryRequests: 100 })
    const check = await verifier.verify(step(20_000))
    assert.equal(check.verdict, 'pass', check.reasons.join('; '))
    const evidence = check.evidence as { polls: number; counts: Record<string, number> }
    // 20 polls, the first one straddling: 19 intervals of the step's own traffic.
    assert.equal(evidence.polls, 20)
    assert.deepEqual(evidence.counts, { canaryRequests: 190, canaryErrors: 0, stableRequests: 1710, stableErrors: 0 })
  })

  it('waits past the pause for evidence, then fails as inconclusive at max-step-time', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 9, errors: 0 }, v3: { requests: 1, errors: 0 } })
    const { verifier, elapsed } = verifierOn(mesh, { minCanaryRequests: 100, maxStepTimeMs: 30_000 })
    const check = await verifier.verify(step(10_000))
    assert.equal(check.verdict, 'fail')
    assert.equal((check.evidence as { decision: string }).decision, 'inconclusive')
    assert.equal(elapsed(), 30_000)
  })

  it('polls every second whatever the pause (the test runs at every scrape), so a broken canary is caught in seconds', async () => {
    for (const pauseMs of [5_000, 60_000, 600_000]) {
      const mesh = new ScriptedMesh({ v1: { requests: 90, errors: 0 }, v3: { requests: 10, errors: 10 } })
      const sleeps: number[] = []
      let clock = 0
      const verifier = new TelemetryVerifier(
        {
          client: mesh,
          target: { namespace: 'bookinfo', service: 'reviews', versions: ['v1', 'v3'] },
          test: { alpha: 0.01, minCanaryRequests: 100 },
        },
        {
          sleep: async (ms) => {
            sleeps.push(ms)
            clock += ms
            mesh.tick()
          },
          now: () => clock,
          log: () => {},
        },
      )
      const check = await verifier.verify(step(pauseMs))
      assert.equal(check.verdict, 'fail', `pause ${pauseMs}`)
      assert.deepEqual(new Set(sleeps), new Set([POLL_INTERVAL_MS]), `pause ${pauseMs}: slept ${sleeps.join(', ')} ms`)
      assert.equal(POLL_INTERVAL_MS, 1000)
      // Every canary request fails: rejected at the first poll, one second into the step.
      assert.equal(clock, 1000, `pause ${pauseMs}`)
      assert.equal((check.evidence as { polls: number }).polls, 1)
    }
    // A healthy canary: a poll every second of the pause, accepted at the poll that ends it.
    const mesh = new ScriptedMesh({ v1: { requests: 90, errors: 0 }, v3: { requests: 10, errors: 0 } })
    const { verifier, elapsed } = verifierOn(mesh)
    const check = await verifier.verify(step(20_000))
    assert.equal(check.verdict, 'pass')
    assert.equal((check.evidence as { polls: number }).polls, 20)
    assert.equal(elapsed(), 20_000)
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

  it('fails a canary over max-latency at the first poll with 100 canary requests, before the pause is over', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 60, errors: 0 }, v3: { requests: 40, errors: 0 } })
    mesh.p95 = { v1: 0.5, v3: 2425 }
    const { verifier, elapsed } = verifierOn(mesh, { maxLatencyMs: 800 })
    const check = await verifier.verify(step(60_000))
    assert.equal(check.verdict, 'fail')
    assert.ok(elapsed() < 60_000, `decided after ${elapsed()} ms`)
    const evidence = check.evidence as {
      decision: string
      counts: { canaryRequests: number }
      latency: { decision: string; p95Ms: Record<string, number>; maxLatencyMs: number; queries: { p95: string } }
    }
    assert.equal(evidence.decision, 'reject')
    assert.equal(evidence.latency.decision, 'reject')
    assert.ok(evidence.counts.canaryRequests >= 100, JSON.stringify(evidence.counts))
    assert.deepEqual(evidence.latency.p95Ms, { v1: 0.5, v3: 2425 })
    assert.match(evidence.latency.queries.p95, /^histogram_quantile\(0\.95, sum by \(le, destination_version\)/)
    assert.deepEqual(check.reasons, [
      'the canary is slow: v3 p95 2425 ms above max-latency 800 ms, stable v1 p95 0.5 ms',
    ])
    assert.match(check.summary, /^reject after \d+s: v3 0\/\d+ 5xx, v1 0\/\d+ 5xx; the canary is slow/)
    assert.equal(check.figures?.byVersion['v3']?.p95Ms, 2425)
    assert.equal(check.figures?.byVersion['v1']?.p50Ms, 0.3)
    // The queries are over the step so far: the window is the seconds since the step began.
    assert.match(mesh.latencyQueries[0] ?? '', new RegExp(`\\[${Math.floor(elapsed() / 1000)}s\\]\\)\\)\\)$`))
  })

  it("passes a canary at 1.5x stable's p95 inside max-latency, the p95s in the figures and the summary", async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 60, errors: 0 }, v3: { requests: 40, errors: 0 } })
    mesh.p95 = { v1: 60, v3: 90 }
    const { verifier } = verifierOn(mesh, { maxLatencyMs: 800 })
    const check = await verifier.verify(step(20_000))
    assert.equal(check.verdict, 'pass', check.reasons.join())
    const latency = (check.evidence as { latency: { decision: string } }).latency
    assert.equal(latency.decision, 'pass')
    assert.match(check.summary, /; v3 p95 90 ms within max-latency 800 ms, stable v1 p95 60 ms$/)
    assert.deepEqual(Object.fromEntries(Object.entries(check.figures?.byVersion ?? {}).map(([k, f]) => [k, f.p95Ms])), {
      v1: 60,
      v3: 90,
    })
    assert.equal(check.figures?.p95Ms, 90)
    const f = check.figures
    assert.equal(f?.requests, (f?.byVersion['v1']?.requests ?? 0) + (f?.byVersion['v3']?.requests ?? 0))
    assert.equal(f?.successes, f?.requests, 'no 5xx')
  })

  it('a slowdown that hits stable as hard fails the step as stable-unhealthy, the canary not blamed', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 60, errors: 0 }, v3: { requests: 40, errors: 0 } })
    mesh.p95 = { v1: 2400, v3: 2425 }
    const { verifier } = verifierOn(mesh, { maxLatencyMs: 800 })
    const check = await verifier.verify(step(60_000))
    assert.equal(check.verdict, 'fail')
    assert.equal((check.evidence as { decision: string }).decision, 'stable-unhealthy')
    assert.match(check.reasons[0] ?? '', /stable is slow too .*the canary is not blamed/)
    assert.doesNotMatch(check.reasons[0] ?? '', /canary is slow/)
  })

  it('below 100 canary requests latency is not judged, and the run says so (a warning, the summary)', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 95, errors: 0 }, v3: { requests: 5, errors: 0 } })
    mesh.p95 = { v1: 1, v3: 5000 }
    const warnings: string[] = []
    const { verifier } = verifierOn(mesh, { maxLatencyMs: 800, minCanaryRequests: 20, warnings })
    const check = await verifier.verify(step(10_000))
    assert.equal(check.verdict, 'pass')
    const latency = (check.evidence as { latency: { decision: string; reason: string } }).latency
    assert.equal(latency.decision, 'not-judged')
    assert.match(check.summary, /latency not judged: v3 served \d+ of the 100 requests a p95 needs \(p95 v3 5000 ms/)
    assert.equal(warnings.length, 1)
    assert.match(warnings[0] ?? '', /^Step 1 at 10 %: latency not judged: v3 served \d+ of the 100 requests/)
    // No p95 was asked for a judgment, only the figures at the end (p50, p95 per version and overall).
    assert.equal(mesh.latencyQueries.length, 4)
  })

  it('without max-latency the p95s are reported, not judged', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 60, errors: 0 }, v3: { requests: 40, errors: 0 } })
    mesh.p95 = { v1: 1, v3: 5000 }
    const warnings: string[] = []
    const { verifier } = verifierOn(mesh, { warnings })
    const check = await verifier.verify(step(20_000))
    assert.equal(check.verdict, 'pass')
    assert.match(check.summary, /latency not judged: no max-latency set \(p95 v3 5000 ms, v1 1 ms\)/)
    assert.deepEqual(warnings, [])
  })

  it('a Prometheus lost at the latency query fails the step, never passes it', async () => {
    const mesh = new ScriptedMesh({ v1: { requests: 60, errors: 0 }, v3: { requests: 40, errors: 0 } })
    // Two counter queries at the step's start and at each poll; the first poll's interval straddles the step's
    // start and is not the step's, so at the fourth poll the canary has 120 requests of the step and the eleventh
    // query, its p95, is the first to fail.
    mesh.failAfter = 10
    const { verifier } = verifierOn(mesh, { maxLatencyMs: 800 })
    const check = await verifier.verify(step(60_000))
    assert.equal(check.verdict, 'fail')
    assert.match(mesh.refused[0] ?? '', /^histogram_quantile\(0\.95, sum by \(le, destination_version\)/)
    assert.equal(mesh.refused.length, 1, 'nothing asked after the loss')
    assert.match(check.reasons[0] ?? '', /cannot be judged: scripted Prometheus is unreachable/)
  })
})
