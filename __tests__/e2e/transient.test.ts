// One transient failure must not fail a run (issue 8 item 9): the Lease create (5xx, reset, lost answer) and the
// reads of `istioctl analyze`; and a Lease left by a run killed right after creating it is released by its post step.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { runAction } from '../runner/harness.js'
import type { Sim } from '../sim/index.js'
import type { KubeObject, WriteEvent } from '../sim/kube/store.js'
import { LEASES, bookinfoInputs, reviews, runnerEnv, withSim } from './common.js'

const lease = (sim: Sim): KubeObject | undefined => sim.store.get(LEASES, 'bookinfo', 'istio-canary-reviews')
const leaseWrites = (sim: Sim): string[] =>
  sim.store.writes.filter((w: WriteEvent) => w.ref.resource === 'leases').map((w) => w.verb)
const weights = (sim: Sim): unknown =>
  ((reviews(sim)['spec'] as { http: Array<{ route: unknown }> }).http.at(-1) as { route: unknown }).route

describe('the Lease create: one transient failure is not the end of the run', () => {
  for (const status of [500, 'reset', 'lost-response'] as const) {
    it(`a create that got ${status === 500 ? 'a 500' : status === 'reset' ? 'a connection reset' : 'no answer (it landed)'}: the run takes the lock and promotes`, async () => {
      await withSim({}, async (sim) => {
        sim.faults.kube({ method: 'POST', path: /\/leases(\?|$)/, status, times: 1 })
        const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '100' }), env: runnerEnv(sim) })
        assert.equal(main.code, 0, main.stdout)
        assert.equal(main.outputs['result'], 'promoted')
        assert.match(main.stdout, /create Lease bookinfo\/istio-canary-reviews failed: .*reading the Lease again/)
        if (status === 'lost-response') {
          assert.match(main.stdout, /is this run's own: its create landed although its answer did not arrive/)
          assert.deepEqual(leaseWrites(sim).slice(0, 2), ['create', 'update'], 'its own Lease kept, not recreated')
        }
        assert.deepEqual(weights(sim), [{ destination: { host: 'reviews', subset: 'v3' } }])
        assert.equal(lease(sim), undefined, 'released at the end')
      })
    })
  }

  it('a run killed right after its Lease landed (before the answer): the post step releases it; a re-run is not blocked', async () => {
    await withSim({}, async (sim) => {
      const original = structuredClone(reviews(sim)['spec'])
      let landed: () => void = () => {}
      const created = new Promise<void>((resolve) => {
        landed = resolve
      })
      // The create is applied at once; its answer is slow, and the runner kills the step meanwhile.
      sim.faults.kube({
        method: 'POST',
        path: /\/leases(\?|$)/,
        status: 'ok',
        answerDelayMs: 5000,
        times: 1,
        onMatch: () => landed(),
      })
      let heldAfterMain: unknown
      const { main, post } = await runAction({
        inputs: bookinfoInputs(sim, { steps: '100', 'lock-ttl': '10m' }),
        env: runnerEnv(sim),
        interrupt: { when: created, signal: 'SIGKILL' },
        beforePost: () => {
          heldAfterMain = (lease(sim)?.['spec'] as { holderIdentity?: string } | undefined)?.holderIdentity
        },
      })
      assert.equal(main.signal, 'SIGKILL')
      assert.equal(heldAfterMain, main.state['runId'], 'the killed run left its Lease behind')
      assert.equal(post?.code, 0, post?.stdout)
      assert.match(post?.stdout ?? '', /Released the lock left by the main step/)
      assert.equal(lease(sim), undefined)
      assert.deepEqual(reviews(sim)['spec'], original, 'no traffic change was made')
      const again = await runAction({ inputs: bookinfoInputs(sim, { steps: '100' }), env: runnerEnv(sim) })
      assert.equal(again.main.outputs['result'], 'promoted', again.main.stdout)
    })
  })
})

describe('istioctl analyze: one transient API failure on its reads is run again, not the end of the run', () => {
  const reads = [
    { what: 'its list of Secrets', path: /^\/api\/v1\/secrets(\?|$)/ },
    { what: 'its list of CRDs', path: /^\/apis\/apiextensions\.k8s\.io\/v1\/customresourcedefinitions(\?|$)/ },
  ]
  for (const read of reads) {
    for (const status of [500, 'reset', 'lost-response'] as const) {
      it(`${read.what} answered ${status === 500 ? '500: analyze runs again' : status === 'reset' ? 'by a reset: client-go in istioctl reads again' : 'never: client-go in istioctl reads again'}, and the rollout promotes`, async () => {
        await withSim({}, async (sim) => {
          sim.faults.kube({ method: 'GET', path: read.path, status, times: 1 })
          const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '100' }), env: runnerEnv(sim) })
          assert.equal(main.code, 0, main.stdout)
          assert.equal(main.outputs['result'], 'promoted')
          if (status === 500) {
            // A 500 without Retry-After (an etcd timeout): client-go does not retry it, istioctl fails, the action
            // runs it again.
            assert.match(
              main.stdout,
              /istioctl analyze failed on a transient API error \(Error: .*\); retry 1 in \d+ ms/,
            )
          } else {
            // A GET reset or left unanswered is retried by client-go inside istioctl itself: no second run.
            assert.doesNotMatch(main.stdout, /transient API error/)
          }
          const hits = sim.kube.requests.filter((r) => r.method === 'GET' && read.path.test(r.path))
          assert.equal(hits.length, 2, 'read twice: the failed read, then again')
          assert.equal(hits[0]?.status, status === 500 ? 500 : 0)
        })
      })
    }
  }

  it('a failure that is not transient (a 403 on its read) is not retried: the run stops before any change', async () => {
    await withSim({}, async (sim) => {
      const original = structuredClone(reviews(sim)['spec'])
      sim.faults.kube({ method: 'GET', path: reads[0]?.path as RegExp, status: 403, times: 5 })
      const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '100' }), env: runnerEnv(sim) })
      assert.equal(main.code, 1)
      assert.doesNotMatch(main.stdout, /transient API error/)
      assert.match(main.stdout, /istioctl analyze failed \(exit 1\)/)
      assert.equal(sim.kube.requests.filter((r) => reads[0]?.path.test(r.path)).length, 1)
      assert.deepEqual(reviews(sim)['spec'], original)
    })
  })
})
