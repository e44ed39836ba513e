// SPEC 7 rule 5's last sentence through the bundle: a VirtualService target in an ambient namespace (Istio supports
// VirtualService there only as alpha) is used all the same, with a warning naming HTTPRoute; and without a waypoint
// for its Service the weights would not apply (ztunnel is L4 only), so a rollout is refused before any change.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { runAction } from '../runner/harness.js'
import { bookinfoInputs, runnerEnv, vsWrites, withSim } from './common.js'

const AMBIENT_WITH_VS = {
  dataplane: 'istio-ambient',
  gatewayApi: { seed: { keepVirtualServices: true } },
} as const

describe('a VirtualService in an ambient namespace', () => {
  it('warns that VirtualService is alpha in ambient mode and names HTTPRoute (status, read-only)', () =>
    withSim(AMBIENT_WITH_VS, async (sim) => {
      const { main } = await runAction({ inputs: bookinfoInputs(sim, { action: 'status' }), env: runnerEnv(sim) })
      assert.equal(main.code, 0, main.stdout.slice(-3000))
      assert.match(main.stdout, /Data plane: Istio ambient mode \(mesh: auto\)/)
      assert.match(
        main.stdout,
        /::warning::Namespace bookinfo is in Istio ambient mode, where Istio supports VirtualService only as alpha: consider a Gateway API HTTPRoute \(input http-route\) for reviews/,
      )
      assert.match(main.stdout, /Service bookinfo\/reviews: waypoint bookinfo\/waypoint \(Programmed\)/)
    }))

  it('without a waypoint: refused before any change, saying how to make one', () =>
    withSim({ ...AMBIENT_WITH_VS, dataplaneSeed: { waypoint: false } }, async (sim) => {
      const writes = sim.store.writes.length
      const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '50,100' }), env: runnerEnv(sim) })
      assert.equal(main.code, 1)
      assert.match(
        main.stdout,
        /::error::the mesh is not ready .*Service bookinfo\/reviews uses no waypoint, so in ambient mode its traffic is L4 only and the route's weights do not apply: istioctl waypoint apply -n bookinfo --enroll-namespace --wait/,
      )
      assert.equal(vsWrites(sim, writes), 0)
      assert.equal(main.outputs['result'], 'unchanged')
    }))
})
