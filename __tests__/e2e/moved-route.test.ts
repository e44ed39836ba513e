// A rollout whose `route` is an index keeps finding its route when someone adds a route before it (issue 8 item 9):
// found by what istio-canary last wrote there (the state annotation's lastWritten), never by a guess.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { runAction } from '../runner/harness.js'
import type { Sim } from '../sim/index.js'
import { VS, bookinfoInputs, reviews, runnerEnv, stateOf, withSim } from './common.js'

interface Http {
  name?: string
  match?: unknown
  route: Array<{ destination: { host: string; subset: string }; weight?: number }>
}
const http = (sim: Sim): Http[] => (reviews(sim)['spec'] as { http: Http[] }).http

/** A route someone adds before every other one (kubectl edit), e.g. for a QA team. */
const QA: Http = {
  match: [{ headers: { 'x-team': { exact: 'qa' } } }],
  route: [{ destination: { host: 'reviews', subset: 'v2' } }],
}

function insertFirst(sim: Sim): void {
  const vs = structuredClone(reviews(sim))
  ;(vs['spec'] as { http: Http[] }).http.unshift(structuredClone(QA))
  sim.store.update(VS, vs)
}

describe('a rollout of an unnamed route (route: 1) after someone inserted a route before it', () => {
  it('during a pause: the run finds its route at #2, promotes it, and leaves the other routes as they are', async () => {
    await withSim({ seed: { reviewsRoute: 'jason-v2-v1' } }, async (sim) => {
      const jason = structuredClone(http(sim)[0])
      const { main } = await runAction({
        inputs: bookinfoInputs(sim, { route: '1', steps: '50,100', pause: '3s' }),
        env: runnerEnv(sim),
        onStdout: { when: 'Pausing', do: () => insertFirst(sim) },
      })
      assert.equal(main.code, 0, main.stdout)
      assert.doesNotMatch(main.stdout, /changed by someone else/)
      assert.match(main.stdout, /http route #1 of VirtualService bookinfo\/reviews moved .*now http route #2/)
      assert.equal(main.outputs['result'], 'promoted')
      assert.equal(main.outputs['canary-weight'], '100')
      const now = http(sim)
      assert.equal(now.length, 3)
      assert.deepEqual(now[0], QA, 'the inserted route untouched')
      assert.deepEqual(now[1], jason, 'the jason route untouched')
      assert.deepEqual(now[2]?.route, [{ destination: { host: 'reviews', subset: 'v3' } }])
      assert.equal(stateOf(reviews(sim))?.['phase'], 'promoted')
    })
  })

  it('while paused: a later rollback finds it and restores exactly the route before the rollout, at its new place', async () => {
    await withSim({ seed: { reviewsRoute: 'jason-v2-v1' } }, async (sim) => {
      const before = structuredClone(http(sim))
      const paused = await runAction({ inputs: bookinfoInputs(sim, { route: '1', steps: '50' }), env: runnerEnv(sim) })
      assert.equal(paused.main.outputs['result'], 'paused', paused.main.stdout)
      insertFirst(sim)
      const rb = await runAction({
        inputs: bookinfoInputs(sim, { action: 'rollback', route: '1', 'canary-subset': '' }),
        env: runnerEnv(sim),
      })
      assert.equal(rb.main.code, 0, rb.main.stdout)
      assert.equal(rb.main.outputs['result'], 'rolled-back')
      assert.equal(rb.main.outputs['canary-weight'], '0')
      assert.deepEqual(http(sim), [QA, ...before])
      assert.equal(stateOf(reviews(sim))?.['phase'], 'rolled-back')
    })
  })

  it('when two routes are now what it last wrote (a copy), it does not guess: it stops without writing', async () => {
    await withSim({ seed: { reviewsRoute: 'jason-v2-v1' } }, async (sim) => {
      const paused = await runAction({ inputs: bookinfoInputs(sim, { route: '1', steps: '50' }), env: runnerEnv(sim) })
      assert.equal(paused.main.outputs['result'], 'paused', paused.main.stdout)
      // Someone copies the target route before every other: two user routes are what istio-canary last wrote.
      const vs = structuredClone(reviews(sim))
      const routes = (vs['spec'] as { http: Http[] }).http
      routes.unshift(structuredClone(routes[1] as Http))
      sim.store.update(VS, vs)
      const after = structuredClone(http(sim))
      const writes = sim.store.writes.length
      const promote = await runAction({
        inputs: bookinfoInputs(sim, { action: 'promote', route: '1', 'canary-subset': '' }),
        env: runnerEnv(sim),
      })
      assert.equal(promote.main.code, 1)
      assert.doesNotMatch(promote.main.stdout, /moved \(routes were added/)
      assert.deepEqual(http(sim), after, 'nothing written')
      assert.equal(sim.store.writes.slice(writes).filter((w) => w.ref.resource === 'virtualservices').length, 0)
    })
  })

  it('during a pause, when it truly cannot find it (two routes alike): it says so, reports the weight it left, keeps the state, fails unsettled', async () => {
    await withSim({ seed: { reviewsRoute: 'jason-v2-v1' } }, async (sim) => {
      let copied: Http[] = []
      const { main, post } = await runAction({
        inputs: bookinfoInputs(sim, { route: '1', steps: '50,100', pause: '3s' }),
        env: runnerEnv(sim),
        onStdout: {
          when: 'Pausing',
          do: () => {
            // Someone adds, before every other route, an exact copy of the target route as it is now.
            const vs = structuredClone(reviews(sim))
            const routes = (vs['spec'] as { http: Http[] }).http
            routes.unshift(structuredClone(routes[1] as Http))
            sim.store.update(VS, vs)
            copied = structuredClone(routes)
          },
        },
      })
      assert.equal(main.code, 1)
      assert.match(main.stdout, /cannot find its target route any more: http route #1 is now another route/)
      assert.match(main.stdout, /'v3' still takes 50 %(25)?: nothing was reverted and the rollout state is kept/)
      assert.equal(main.outputs['result'], 'paused', 'mid-rollout, not "unchanged"')
      assert.equal(main.outputs['canary-weight'], '50')
      assert.equal(main.state['unsettled'], 'true')
      assert.deepEqual(http(sim), copied, 'nothing written after the change')
      assert.equal(stateOf(reviews(sim))?.['phase'], 'shifting', 'the state kept')
      assert.equal(post?.code, 0, post?.stdout)
      assert.match(post?.stdout ?? '', /changed by someone else since this run wrote it: leaving it as it is/)
      assert.deepEqual(http(sim), copied)
    })
  })
})
