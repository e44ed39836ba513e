// Propagation (SPEC section 8, issue 8 item 5): a route change reaches the proxies some time after the write
// (the simulated mesh models istiod's debounce and each proxy's push, sim/mesh/mesh.ts Propagation). The action
// judges a step only once traffic follows the new weights: a slow push is neither blamed on the canary nor
// mistaken for success, a push that never arrives fails the step unjudged and reverts, a preview waits for its
// header route.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { runAction } from '../runner/harness.js'
import type { WriteEvent } from '../sim/kube/store.js'
import { GATEWAY_PROXY } from '../sim/mesh/mesh.js'
import { bookinfoInputs, reviews, runnerEnv, stateOf, withSim } from './common.js'

interface Report {
  result: string
  steps: Array<{ weight: number; verdict: string; reasons: string[]; checks: Array<{ evidence: unknown }> }>
}
const report = (path: string | undefined): Report => JSON.parse(readFileSync(path as string, 'utf8')) as Report

/** Every sidecar gets a push `sidecarMs` after istiod sends it (the gateway in 20 ms). */
const slowSidecars = (sidecarMs: number) => ({ pushMs: (p: string) => (p === GATEWAY_PROXY ? 20 : sidecarMs) })

describe('propagation: steps are judged once traffic follows the new weights', () => {
  it('a slow push (1.5 s to the sidecars): the step waits for it, then is judged on the new weights: promoted', () =>
    withSim({ propagation: slowSidecars(1500) }, async (sim) => {
      const { main } = await runAction({
        inputs: bookinfoInputs(sim, { steps: '50,100', 'smoke-requests': '40' }),
        env: runnerEnv(sim),
      })
      assert.equal(main.code, 0, main.stdout)
      assert.equal(main.outputs['result'], 'promoted', main.stdout)
      assert.match(main.stdout, /Settled at 50 %: traffic follows 50 % \(\d+ probes in \ds/)
      assert.match(main.stdout, /Settled at 100 %: traffic follows 100 %/)
      assert.doesNotMatch(main.stdout, /Reverting/)
      // The 50 % step was judged on traffic at 50 %: v3 served a real share of its requests.
      const r = report(main.outputs['report'])
      const step = r.steps.find((s) => s.weight === 50)
      const byVersion = (step?.checks[0]?.evidence as { byVersion: Record<string, { requests: number }> }).byVersion
      assert.ok((byVersion['v3']?.requests ?? 0) >= 10, JSON.stringify(byVersion))
      assert.equal(step?.verdict, 'pass')
    }))

  it('a push that never reaches the sidecars: the step is not judged, traffic is reverted, and the run says so', () =>
    withSim({}, async (sim) => {
      sim.mesh.setPropagation({ pushMs: (p) => (p === GATEWAY_PROXY ? 20 : Number.POSITIVE_INFINITY) })
      const t0 = Date.now()
      const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '50,100' }), env: runnerEnv(sim) })
      assert.notEqual(main.code, 0)
      assert.equal(main.outputs['result'], 'rolled-back', main.stdout)
      assert.equal(main.outputs['canary-weight'], '0')
      assert.match(
        main.stdout,
        /Step 1 at 50 %: NOT SETTLED \(the proxies did not take the new route: traffic did not follow 50 % within 30s \(\d+ probes in 30s, the canary served 0 % of the last \d+ attributed; before the change: 0 %\)\. The step was not judged/,
      )
      assert.match(main.stdout, /::error::step 1 at 50 %25 unsettled: the proxies did not take the new route/)
      assert.match(
        main.stdout,
        /The step was not judged \(istiod has not pushed it to every proxy: see istioctl proxy-status\)/,
      )
      assert.match(main.stdout, /Restored the route as it was before the run: v1 100 %/)
      assert.ok(Date.now() - t0 < 60_000)
      const vs = reviews(sim)
      assert.deepEqual((vs['spec'] as { http: Array<{ route: unknown }> }).http.at(-1)?.route, [
        { destination: { host: 'reviews', subset: 'v1' } },
      ])
      assert.equal(stateOf(vs)?.['phase'], 'rolled-back')
      const step = report(main.outputs['report']).steps.at(-1)
      assert.equal(step?.verdict, 'fail')
      assert.equal(step?.checks.length, 0)
      assert.match(step?.reasons[0] ?? '', /did not follow 50 %/)
    }))

  it('after the revert of a bad canary, the run waits for traffic to follow the restored route and says so', () =>
    withSim({ propagation: slowSidecars(1500) }, async (sim) => {
      sim.faults.mesh('reviews', 'v3', { errorRate: 1 })
      const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '50,100' }), env: runnerEnv(sim) })
      assert.notEqual(main.code, 0)
      assert.equal(main.outputs['result'], 'rolled-back', main.stdout)
      const restored = main.stdout.indexOf('Restored the route as it was before the run: v1 100 %')
      const confirmed = main.stdout.search(
        /Traffic follows the restored route: traffic follows 0 % \(\d+ probes in \ds, the canary served \d+ % of the last \d+ attributed \(failed answers that name no version counted as the canary's\)\)/,
      )
      assert.ok(restored >= 0 && confirmed > restored, main.stdout)
      assert.doesNotMatch(main.stdout, /::warning::The restored route is in place/)
      // The confirmation waited for the push: the sidecars took the restored route 1.5 s after it was written.
      assert.deepEqual(sim.mesh.stale(), [])
      const events = (
        JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as { events: Array<{ message: string }> }
      ).events
      assert.ok(events.some((e) => e.message.startsWith('Traffic follows the restored route')))
    }))

  it('a restored route the sidecars never take: rolled back, with a warning that users still reach the canary', () =>
    withSim({}, async (sim) => {
      sim.faults.mesh('reviews', 'v3', { errorRate: 1 })
      // Pushes reach the sidecars as usual until the revert is written; from then on, never (a stuck xDS stream).
      let writes = 0
      let stuck = false
      sim.store.on('write', (e: WriteEvent) => {
        if (e.ref.resource === 'virtualservices' && e.name === 'reviews' && ++writes === 2) stuck = true
      })
      sim.mesh.setPropagation({ pushMs: (p) => (stuck ? Number.POSITIVE_INFINITY : p === GATEWAY_PROXY ? 20 : 40) })
      const t0 = Date.now()
      const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '50,100' }), env: runnerEnv(sim) })
      assert.equal(main.outputs['result'], 'rolled-back', main.stdout)
      assert.equal(writes, 2, 'the shift to 50 % and the revert')
      assert.match(main.stdout, /Restored the route as it was before the run: v1 100 %/)
      assert.match(
        main.stdout,
        /::warning::The restored route is in place, but traffic does not follow it yet: traffic did not follow 0 %25 within 30s \(\d+ probes in 30s, the canary served [1-9]\d* %25 of the last \d+ attributed \(failed answers that name no version counted as the canary's\); before the change: 50 %25\)\. Until it does, users still reach the canary \(istiod has not pushed it to every proxy: see istioctl proxy-status\)/,
      )
      assert.ok(sim.mesh.stale().length > 0, 'the sidecars are still on the shifted route')
      assert.ok(Date.now() - t0 < 75_000)
    }))

  it('a preview waits until its header route is live at the sidecars (1 s), then judges it: previewed', () =>
    withSim({ propagation: slowSidecars(1000) }, async (sim) => {
      const { main } = await runAction({
        inputs: bookinfoInputs(sim, { action: 'preview', 'preview-value': 'pr-7' }),
        env: runnerEnv(sim),
      })
      assert.equal(main.code, 0, main.stdout)
      assert.equal(main.outputs['result'], 'previewed', main.stdout)
      assert.match(main.stdout, /Settled at the preview route: traffic follows 100 % \(\d+ probes/)
      const r = report(main.outputs['report'])
      const byVersion = (r.steps[0]?.checks[0]?.evidence as { byVersion: Record<string, { requests: number }> })
        .byVersion
      assert.deepEqual(Object.keys(byVersion), ['v3'])
    }))
})
