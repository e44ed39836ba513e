// The job summary the real bundle writes: Kiali links (kiali-url), charts that mermaid's own parser accepts, and
// `status` with per-version evidence and zero writes.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import type { RunReport } from '../../src/report/report.js'
import { type StepResult, runAction } from '../runner/harness.js'
import { type Sim, startSimulation } from '../sim/index.js'
import { type Load, startLoad } from '../sim/mesh/load.js'
import { mermaidBlocks, parseAllMermaid } from '../support/mermaid.js'
import { REFS } from '../sim/kube/refs.js'
import { LEASES, bookinfoInputs, reviews, runnerEnv, withFault, withSim } from './common.js'

const KIALI = 'https://kiali.example.com/kiali'
const reportOf = (main: StepResult): RunReport => JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8'))
const decode = (s: string): string => s.replace(/&amp;/g, '&')

describe('job summary of the real bundle', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
  })
  after(() => sim.close())

  it('promoted: links to the Kiali graph and each version workload for the run window; every chart parses', async () => {
    const { main } = await runAction({
      inputs: bookinfoInputs(sim, { 'smoke-requests': '40', 'kiali-url': `${KIALI}/` }),
      env: runnerEnv(sim),
    })
    assert.equal(main.code, 0, main.stdout + main.stderr)
    assert.equal(main.outputs['result'], 'promoted')
    const report = reportOf(main)
    const from = Math.floor(Date.parse(report.startedAt) / 60_000) * 60_000
    const to = Math.max(Math.ceil(Date.parse(report.endedAt) / 60_000) * 60_000, from + 60_000)
    const summary = decode(main.summary)
    assert.ok(
      summary.includes(
        `[graph of namespace bookinfo](<${KIALI}/console/graph/namespaces/?namespaces=bookinfo&graphType=versionedApp&duration=60>)`,
      ),
      summary,
    )
    for (const [role, version] of [
      ['stable', 'v1'],
      ['canary', 'v3'],
    ]) {
      const url = `${KIALI}/console/namespaces/bookinfo/workloads/reviews-${version}?tab=in_metrics&from=${from}&to=${to}`
      assert.ok(summary.includes(`[${role} ${version}: workload reviews-${version}](<${url}>)`), summary)
    }
    assert.equal(report.links?.kiali?.workloads.length, 2)
    assert.equal(mermaidBlocks(main.summary).length, 1, 'weight; nothing failed: no failure chart')
    assert.match(main.summary, /\*\*Smoke test:\*\* no request failed \(160 requests over 4 step\(s\)\)\./)
    assert.deepEqual(await parseAllMermaid(main.summary), ['xychart'])
  })

  it('without kiali-url there are no links; a rolled-back run shows the failing version on a scaled axis', async () => {
    await withFault(sim, 'v2', { errorRate: 1 }, async () => {
      const { main } = await runAction({
        inputs: bookinfoInputs(sim, { 'smoke-requests': '40', 'canary-subset': 'v2', steps: '50,100' }),
        env: runnerEnv(sim),
      })
      assert.equal(main.outputs['result'], 'rolled-back', main.stdout)
      assert.doesNotMatch(main.summary, /Kiali|kiali/)
      const charts = mermaidBlocks(main.summary)
      assert.equal(charts.length, 2)
      // BookInfo renders a failed reviews call without a version: those requests get their own bar
      assert.match(charts[1] as string, /"1 stable", "1 no version"/)
      assert.match(charts[1] as string, /y-axis "failed %" 0 --> 100\n {2}bar \[[^\]]*\b100\]/)
      await parseAllMermaid(main.summary)
    })
  })

  it('status: weights and per-version smoke evidence in log, report and summary; zero writes, no Lease', async () => {
    const paused = await runAction({
      inputs: bookinfoInputs(sim, { 'smoke-requests': '40', 'canary-subset': 'v2', steps: '10,50' }),
      env: runnerEnv(sim),
    })
    assert.equal(paused.main.outputs['result'], 'paused', paused.main.stdout)
    const before = sim.store.writes.length
    const vs = JSON.stringify(reviews(sim))
    const { main } = await runAction({
      inputs: bookinfoInputs(sim, { action: 'status', 'canary-subset': '', 'kiali-url': KIALI }),
      env: runnerEnv(sim),
    })
    assert.equal(main.code, 0, main.stdout + main.stderr)
    assert.equal(main.outputs['result'], 'unchanged')
    assert.equal(main.outputs['canary-weight'], '50')
    assert.equal(sim.store.writes.length, before, 'status writes nothing')
    assert.equal(JSON.stringify(reviews(sim)), vs)
    assert.equal(sim.store.list(LEASES, 'bookinfo').length, 0)
    // log
    assert.match(main.stdout, /Status smoke: 20\/20 passed/)
    // report
    const report = reportOf(main)
    assert.deepEqual(report.observation?.weights, [
      { subset: 'v3', weight: 50 },
      { subset: 'v2', weight: 50 },
    ])
    const smoke = report.observation?.checks.find((c) => c.kind === 'smoke')
    assert.equal(smoke?.verdict, 'pass')
    assert.equal(smoke?.figures?.requests, 20)
    assert.ok((smoke?.figures?.byVersion['v2']?.requests ?? 0) > 0, 'the canary answered some')
    assert.ok((smoke?.figures?.byVersion['v3']?.requests ?? 0) > 0, 'the stable answered some')
    // summary: the route now, one "now" row with per-version figures, Kiali links for both versions
    assert.match(main.summary, /\*\*Rollout state:\*\* paused at 50 % \(stable v3, canary v2; run /)
    assert.match(main.summary, /\*\*Route now:\*\* v3 \(stable\) 50 % · v2 \(canary\) 50 %/)
    assert.match(
      main.summary,
      /<tr><td>now<\/td><td>50 %<\/td><td>–<\/td><td>20<\/td><td>100\.0 % \(20\/20\)<br>v[23]: /,
    )
    // Kiali: the window of the rollout the status reports on (since it began), not only of the status run
    const since = report.observation?.state?.startedAt as string
    assert.ok(Date.parse(since) < Date.parse(report.startedAt))
    const from = Math.floor(Date.parse(since) / 60_000) * 60_000
    assert.ok(
      decode(main.summary).includes(
        `[canary v2: workload reviews-v2](<${KIALI}/console/namespaces/bookinfo/workloads/reviews-v2?tab=in_metrics&from=${from}&to=`,
      ),
      main.summary,
    )
    assert.equal(mermaidBlocks(main.summary).length, 0)
  })

  it('status after a promotion whose old version is scaled down: evidence of the version that serves', async () => {
    const promoted = await runAction({
      inputs: bookinfoInputs(sim, { action: 'promote', 'canary-subset': '', 'smoke-requests': '20' }),
      env: runnerEnv(sim),
    })
    assert.equal(promoted.main.outputs['result'], 'promoted', promoted.main.stdout)
    // the old version (v3) scaled to zero: its pods are gone
    const old = sim.store.list(REFS.pods, 'bookinfo', 'app=reviews,version=v3')
    assert.ok(old.length > 0)
    for (const pod of old) sim.store.delete(REFS.pods, 'bookinfo', pod.metadata.name)
    const before = sim.store.writes.length
    const { main } = await runAction({
      inputs: bookinfoInputs(sim, { action: 'status', 'canary-subset': '' }),
      env: runnerEnv(sim),
    })
    assert.equal(main.code, 0, main.stdout + main.stderr)
    assert.equal(main.outputs['result'], 'unchanged')
    assert.equal(sim.store.writes.length, before)
    const smoke = reportOf(main).observation?.checks.find((c) => c.kind === 'smoke')
    assert.equal(smoke?.verdict, 'pass', main.stdout)
    assert.equal(smoke?.figures?.byVersion['v2']?.requests, 20)
    assert.match(main.summary, /\*\*Rollout state:\*\* promoted at 100 %/)
  })

  it('status of a route with no rollout and no canary-subset: says why there is no evidence', async () => {
    const { main } = await runAction({
      inputs: { ...bookinfoInputs(sim, { action: 'status', 'canary-subset': '' }), 'virtual-service': 'ratings' },
      env: runnerEnv(sim),
    })
    assert.equal(main.outputs['result'], 'unchanged', main.stdout + main.stderr)
    assert.match(main.summary, /no evidence per version: no rollout in progress and no 'canary-subset'/)
  })
})

describe('status with mesh telemetry (real Prometheus)', () => {
  let load: Load | undefined
  after(async () => {
    await load?.stop({ abort: true })
  })

  it('counts each version over a recent window, not judged; zero writes', async () => {
    await withSim({ meshSeed: 5, prometheus: true, rbac: ['istio-canary', 'analyze', 'telemetry'] }, async (sim) => {
      load = startLoad({ url: sim.mesh.url, rate: 40, durationMs: 60_000, loggedInShare: 0.2 })
      await sim.prometheus?.waitForSeries(
        'sum(istio_requests_total{reporter="destination",destination_service_name="reviews",destination_version="v1"})',
        { min: 20, timeoutMs: 20_000 },
      )
      // a step judged on telemetry: its summary's charts parse too
      const paused = await runAction({
        inputs: bookinfoInputs(sim, {
          steps: '50',
          pause: '3s',
          metrics: 'true',
          'min-canary-requests': '20',
          'max-step-time': '20s',
        }),
        env: runnerEnv(sim),
        timeoutMs: 90_000,
      })
      assert.equal(paused.main.outputs['result'], 'paused', paused.main.stdout)
      assert.match(paused.main.summary, /Mesh telemetry(:\*\* no 5xx|: 5xx rate, stable vs canary)/)
      await parseAllMermaid(paused.main.summary)
      await sim.prometheus?.waitForSeries(
        'sum(istio_requests_total{reporter="destination",destination_service_name="reviews",destination_version="v3"})',
        { min: 20, timeoutMs: 20_000 },
      )
      const before = sim.store.writes.length
      const { main } = await runAction({
        inputs: bookinfoInputs(sim, { action: 'status', 'canary-subset': '', pause: '6s', metrics: 'true' }),
        env: runnerEnv(sim),
        timeoutMs: 90_000,
      })
      assert.equal(main.code, 0, main.stdout + main.stderr)
      assert.equal(main.outputs['result'], 'unchanged')
      assert.equal(sim.store.writes.length, before)
      const mesh = reportOf(main).observation?.checks.find((c) => c.kind === 'telemetry')
      const counts = (mesh?.evidence as { counts: Record<string, number>; windowMs: number }).counts
      assert.ok((counts['stableRequests'] ?? 0) > 0, JSON.stringify(mesh))
      assert.ok((counts['canaryRequests'] ?? 0) > 0, JSON.stringify(mesh))
      assert.match(main.stdout, /Status telemetry: observed over 6s, not judged: v3 \d+\/\d+ 5xx, v1 \d+\/\d+ 5xx/)
      assert.match(main.summary, /\*\*Mesh telemetry now:\*\* stable v1 \d+\/\d+ 5xx.* · canary v3 \d+\/\d+ 5xx/)
    })
  })
})
