// Other writers of the VirtualService (SPEC section 8, issue 8 item 8): every write of the action carries
// fieldManager=istio-canary, so managedFields (recorded by the simulated API server as the real one does) show who
// set the weights; istiod writing the status subresource meanwhile (a new resourceVersion, the spec unchanged) is
// not someone else's edit of the route.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { runAction } from '../runner/harness.js'
import type { ManagedFieldsEntry } from '../sim/kube/server.js'
import type { KubeObject } from '../sim/kube/store.js'
import { VS, bookinfoInputs, runnerEnv, withSim } from './common.js'

const reviews = (sim: { store: { get: (...a: never[]) => unknown } }): KubeObject =>
  (sim.store.get as (r: typeof VS, ns: string, n: string) => KubeObject)(VS, 'bookinfo', 'reviews')

describe('other writers', () => {
  it('sends fieldManager=istio-canary on every write; managedFields name istio-canary as the manager of spec', () =>
    withSim({}, async (sim) => {
      const r0 = sim.kube.requests.length
      const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '50,100' }), env: runnerEnv(sim) })
      assert.equal(main.code, 0, main.stdout)
      const writes = sim.kube.requests
        .slice(r0)
        .filter((q) => ['POST', 'PUT', 'PATCH'].includes(q.method) && /virtualservices|leases/.test(q.path))
      assert.ok(writes.some((q) => q.method === 'PUT' && q.path.includes('/virtualservices/reviews')))
      assert.ok(writes.some((q) => q.method === 'POST' && q.path.includes('/leases')))
      for (const q of writes) assert.match(q.path, /[?&]fieldManager=istio-canary(&|$)/, q.path)
      const fields = reviews(sim).metadata['managedFields'] as ManagedFieldsEntry[]
      const ours = fields.find((e) => e.manager === 'istio-canary')
      assert.ok(ours, JSON.stringify(fields))
      assert.equal(ours.operation, 'Update')
      assert.equal(ours.fieldsType, 'FieldsV1')
      assert.equal(ours.apiVersion, 'networking.istio.io/v1')
      assert.match(ours.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
      assert.ok(Object.hasOwn(ours.fieldsV1, 'f:spec'), JSON.stringify(ours.fieldsV1))
      assert.ok(Object.hasOwn(ours.fieldsV1['f:metadata'] as object, 'f:annotations'), JSON.stringify(ours.fieldsV1))
    }))

  it("istiod's status writes during a rollout (new resourceVersion, same spec) are not a concurrent edit: promoted", () =>
    withSim({ istiodStatusDelayMs: 5 }, async (sim) => {
      const r0 = sim.kube.requests.length
      const { main } = await runAction({ inputs: bookinfoInputs(sim, { 'smoke-requests': '20' }), env: runnerEnv(sim) })
      assert.equal(main.code, 0, main.stdout)
      assert.equal(main.outputs['result'], 'promoted', main.stdout)
      const vs = reviews(sim)
      assert.deepEqual((vs['spec'] as { http: Array<{ route: unknown }> }).http.at(-1)?.route, [
        { destination: { host: 'reviews', subset: 'v3' } },
      ])
      // istiod did write status meanwhile, and the action's conditional writes met its resourceVersions
      const managers = (vs.metadata['managedFields'] as ManagedFieldsEntry[]).map(
        (e) => `${e.manager}${e.subresource ? `/${e.subresource}` : ''}`,
      )
      assert.ok(managers.includes('pilot-discovery/status'), managers.join(','))
      assert.ok(managers.includes('istio-canary'), managers.join(','))
      const conflicts = sim.kube.requests
        .slice(r0)
        .filter((q) => q.method === 'PUT' && q.path.includes('/virtualservices/reviews') && q.status === 409)
      assert.ok(conflicts.length >= 1, 'a status write came between a read and a write of the action')
      assert.doesNotMatch(main.stdout, /changed by someone else/)
    }))
})
