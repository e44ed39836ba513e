// Each step judged on the mesh's own telemetry, end to end: the real bundle, a REAL Prometheus scraping the
// simulated mesh while simulated users browse BookInfo, reached through the API server's service proxy
// (prometheus-service auto: Istio's addon Service istio-system/prometheus:9090).
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { runAction } from '../runner/harness.js'
import { type Sim, startSimulation } from '../sim/index.js'
import { type Load, startLoad } from '../sim/mesh/load.js'
import { bookinfoInputs, reviews, runnerEnv, stateOf, vsWrites, withSim } from './common.js'

interface TelemetryEvidence {
  decision: string
  counts: { canaryRequests: number; canaryErrors: number; stableRequests: number; stableErrors: number }
  queries: { requests: string; errors: string }
}
interface Report {
  steps: Array<{ weight: number; verdict: string; checks: Array<{ kind: string; verdict: string; evidence: unknown }> }>
}

const telemetryOf = (report: Report, step: number): TelemetryEvidence | undefined =>
  report.steps[step]?.checks.find((c) => c.kind === 'telemetry')?.evidence as TelemetryEvidence | undefined

describe('telemetry verdict (real Prometheus, service proxy)', () => {
  let sim: Sim
  let load: Load
  before(async () => {
    sim = await startSimulation({ meshSeed: 7, prometheus: true, rbac: ['istio-canary', 'analyze', 'telemetry'] })
    // Background users for the whole suite (bounded): stable has traffic before any change.
    load = startLoad({ url: sim.mesh.url, rate: 40, durationMs: 120_000, loggedInShare: 0.2 })
    await sim.prometheus!.waitForSeries(
      'sum(istio_requests_total{reporter="destination",destination_service_name="reviews",destination_version="v1"})',
      { min: 20, timeoutMs: 20_000 },
    )
  })
  after(async () => {
    await load.stop({ abort: true })
    await sim.close()
  })

  const inputs = (extra: Record<string, string> = {}): Record<string, string> =>
    bookinfoInputs(sim, {
      steps: '50,100',
      pause: '3s',
      metrics: 'true',
      'min-canary-requests': '20',
      'max-step-time': '20s',
      ...extra,
    })

  it('promotes a healthy canary, each step accepted on the per-version counts', async () => {
    const { main } = await runAction({ inputs: inputs(), env: runnerEnv(sim), timeoutMs: 120_000 })
    assert.equal(main.code, 0, `${main.stdout.slice(-4000)}\n${main.stderr.slice(-1500)}`)
    assert.equal(main.outputs['result'], 'promoted')
    assert.match(main.stdout, /Telemetry: Prometheus service istio-system\/prometheus:9090/)
    const report = JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as Report
    assert.deepEqual(
      report.steps.map((s) => [s.weight, s.verdict]),
      [
        [50, 'pass'],
        [100, 'pass'],
      ],
    )
    const first = telemetryOf(report, 0)
    assert.equal(first?.decision, 'accept')
    assert.ok((first?.counts.canaryRequests ?? 0) >= 20, JSON.stringify(first))
    assert.ok((first?.counts.stableRequests ?? 0) > 0, 'stable served during the 50 % step')
    assert.match(first?.queries.requests ?? '', /istio_requests_total\{reporter="destination"/)
  })

  it('reverts a canary failing a third of its requests at its first step, on telemetry', async () => {
    // Back to v1 only (the previous test promoted v3): a new rollout of v3 starts from v1.
    const vs = reviews(sim)
    const spec = vs['spec'] as { http: Array<{ route: unknown[] }> }
    spec.http = [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }]
    const meta = vs['metadata'] as { annotations?: Record<string, string>; resourceVersion?: string }
    delete meta.annotations
    delete meta.resourceVersion
    sim.store.update({ group: 'networking.istio.io', resource: 'virtualservices' }, vs)
    sim.faults.mesh('reviews', 'v3', { errorRate: 0.35 })
    try {
      const { main } = await runAction({
        inputs: inputs({ 'success-threshold': '0' }),
        env: runnerEnv(sim),
        timeoutMs: 120_000,
      })
      assert.equal(main.outputs['result'], 'rolled-back', main.stdout)
      const report = JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as Report
      assert.equal(report.steps.length, 1)
      assert.equal(report.steps[0]?.weight, 50)
      assert.equal(telemetryOf(report, 0)?.decision, 'reject')
      assert.match(main.stdout, /Step 1 at 50 %: reject after .*: FAIL \(the canary errs more than stable/)
      assert.equal(stateOf(reviews(sim))?.['phase'], 'rolled-back')
    } finally {
      sim.faults.mesh('reviews', 'v3', undefined)
    }
  })
})

describe('telemetry verdict: a Prometheus without series for the target', () => {
  it("metrics 'true': an error before any change, naming what is missing", async () => {
    // Prometheus scrapes the mesh, but nobody browses: no request of reviews v1 was ever counted.
    await withSim({ meshSeed: 3, prometheus: true, rbac: ['istio-canary', 'analyze', 'telemetry'] }, async (sim) => {
      const writes = sim.store.writes.length
      const { main } = await runAction({
        inputs: bookinfoInputs(sim, { steps: '50,100', pause: '3s', metrics: 'true' }),
        env: runnerEnv(sim),
        timeoutMs: 60_000,
      })
      assert.notEqual(main.code, 0)
      assert.match(
        main.stdout,
        /Input 'metrics' is true, but Prometheus service istio-system\/prometheus:9090 .* has no requests of bookinfo\/reviews version v1.*nothing was changed/,
      )
      assert.equal(vsWrites(sim, writes), 0, 'no VirtualService write')
      assert.equal(main.outputs['result'], 'unchanged')
    })
  })

  it("metrics 'auto': a warning, and the run is judged on the smoke test alone", async () => {
    await withSim({ meshSeed: 4, prometheus: true, rbac: ['istio-canary', 'analyze', 'telemetry'] }, async (sim) => {
      const { main } = await runAction({
        inputs: bookinfoInputs(sim, { steps: '100', pause: '0' }),
        env: runnerEnv(sim),
        timeoutMs: 60_000,
      })
      assert.equal(main.outputs['result'], 'promoted', main.stdout)
      assert.match(main.stdout, /::warning::Judging each step on the smoke test alone: .*has no requests/)
    })
  })
})
