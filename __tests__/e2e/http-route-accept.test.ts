// SPEC section 7 rule 3 through the bundle: after each write of an HTTPRoute the action waits for every parent to
// accept the new generation (the simulated Gateway API controller, __tests__/sim/gateway/controller.ts); a parent
// that rejects it, or a controller that never reports, fails the run with a revert. (Bad SPEC 7 inputs: each layout's
// suite in http-route.test.ts.)
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { runAction } from '../runner/harness.js'
import type { Sim } from '../sim/index.js'
import { httpRouteInputs, reviewsRoute, rulesOf, runnerEnv, stateOf, untilAccepted, withSim } from './common.js'

const GATEWAY_API = { gatewayApi: { controller: { delayMs: 50 } } } as const
const inputs = (sim: Sim, extra: Record<string, string> = {}): Record<string, string> =>
  httpRouteInputs(sim, { steps: '50,100', 'smoke-requests': '20', ...extra })

describe('HTTPRoute: the parents must accept each change (SPEC 7 rule 3)', () => {
  it('a parent rejecting the first shift: rolled back unjudged, the rule deep-equal to the original', () =>
    withSim(GATEWAY_API, async (sim) => {
      const before = structuredClone(rulesOf(reviewsRoute(sim)))
      sim.gatewayController?.rejectNextGeneration('bookinfo', 'reviews', 'UnsupportedValue', 'played rejection')
      const { main, post } = await runAction({ inputs: inputs(sim), env: runnerEnv(sim) })
      assert.equal(main.code, 1, main.stdout)
      assert.equal(main.outputs['result'], 'rolled-back')
      assert.match(
        main.stdout,
        /::error::step 1 at 50 %25: a parent of HTTPRoute bookinfo\/reviews rejected the change: Service bookinfo\/reviews:9080 \(istio\.io\/gateway-controller\): Accepted is False \(UnsupportedValue: played rejection\)/,
      )
      assert.doesNotMatch(main.stdout, /Step 1 at 50 %: .*: pass/, 'the rejected weight was not judged')
      const report = JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as {
        steps: Array<{ index: number; weight: number; verdict: string; reasons: string[] }>
      }
      assert.deepEqual(
        report.steps.map((s) => [s.index, s.weight, s.verdict]),
        [[1, 50, 'fail']],
      )
      assert.match(report.steps[0]?.reasons.join() ?? '', /Accepted is False \(UnsupportedValue: played rejection\)/)
      assert.deepEqual(rulesOf(reviewsRoute(sim)), before)
      assert.equal(stateOf(reviewsRoute(sim))?.['phase'], 'rolled-back')
      assert.match(post?.stdout ?? '', /^(?!.*Reverted)/s)
    }))

  it('a controller that stops reporting: the shift fails after the bound naming the parent; the revert lands', () =>
    withSim(GATEWAY_API, async (sim) => {
      const before = structuredClone(rulesOf(reviewsRoute(sim)))
      // The controller has reported on the route as seeded (the readiness check needs that), then stops.
      await untilAccepted(sim, 'reviews')
      sim.gatewayController?.stop()
      const { main } = await runAction({
        inputs: inputs(sim),
        env: runnerEnv(sim),
        // The controller comes back for the revert (it reports on the generation the revert writes).
        onStdout: { when: /Reverting HTTPRoute/, do: () => sim.gatewayController?.resume() },
        timeoutMs: 90_000,
      })
      assert.equal(main.code, 1, main.stdout)
      assert.equal(main.outputs['result'], 'rolled-back')
      assert.match(
        main.stdout,
        /::error::step 1 at 50 %25: the change of HTTPRoute bookinfo\/reviews was not accepted within 30s: Service bookinfo\/reviews:9080 \(istio\.io\/gateway-controller\) has not observed generation \d+ yet/,
      )
      assert.deepEqual(rulesOf(reviewsRoute(sim)), before)
    }))

  it('cancelled (SIGINT) while waiting for the parent: the wait ends at once, the revert lands before SIGTERM', () =>
    withSim(GATEWAY_API, async (sim) => {
      const before = structuredClone(rulesOf(reviewsRoute(sim)))
      await untilAccepted(sim, 'reviews')
      sim.gatewayController?.stop()
      const { main } = await runAction({
        inputs: inputs(sim),
        env: runnerEnv(sim),
        cancel: { when: 'Shifted to' },
        onStdout: { when: /Reverting HTTPRoute/, do: () => sim.gatewayController?.resume() },
      })
      assert.deepEqual(
        main.cancelled?.map((c) => c.signal),
        ['SIGINT'],
        `the step exited before the runner sent SIGTERM (7.5 s): the 30 s wait did not run out\n${main.stdout}`,
      )
      assert.equal(main.outputs['result'], 'rolled-back', main.stdout)
      assert.match(main.stdout, /Received SIGINT/)
      assert.doesNotMatch(main.stdout, /not accepted within/)
      assert.match(main.stdout, /Cancelled: the revert finished in the main step/)
      assert.deepEqual(rulesOf(reviewsRoute(sim)), before)
    }))

  it('a revert the parent rejects too: the run says plainly that it is unsettled, and keeps the lock for the post step', () =>
    withSim(GATEWAY_API, async (sim) => {
      sim.gatewayController?.rejectNextGeneration('bookinfo', 'reviews')
      const { main } = await runAction({
        inputs: inputs(sim),
        env: runnerEnv(sim),
        onStdout: {
          when: /Reverting HTTPRoute/,
          do: () => sim.gatewayController?.rejectNextGeneration('bookinfo', 'reviews'),
        },
      })
      assert.equal(main.code, 1, main.stdout)
      assert.match(
        main.stdout,
        /REVERT FAILED: the revert: a parent of HTTPRoute bookinfo\/reviews rejected the change/,
      )
      assert.match(main.stdout, /The revert was written but is not in effect: .*the run is unsettled/)
      assert.equal(main.state['unsettled'], 'true')
    }))
})
