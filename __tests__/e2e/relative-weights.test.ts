// Istio reads VirtualService weights as shares (since 1.15 they need not sum to 100): the action reads them
// the same way and writes integers summing to 100.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { type Sim, startSimulation } from '../sim/index.js'
import { runAction } from '../runner/harness.js'
import type { KubeObject } from '../sim/kube/store.js'
import { VS, bookinfoInputs, reviews, runnerEnv } from './common.js'

type Dest = { destination: { host: string; subset: string }; weight?: number }
const route = (o: KubeObject): Dest[] =>
  ((o['spec'] as { http: Array<{ route: Dest[] }> }).http.at(-1) as { route: Dest[] }).route

describe('relative VirtualService weights (v1 9 / v3 1 is 10 % canary)', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
    const vs = structuredClone(reviews(sim))
    ;(vs['spec'] as { http: Array<{ route: Dest[] }> }).http = [
      {
        route: [
          { destination: { host: 'reviews', subset: 'v1' }, weight: 9 },
          { destination: { host: 'reviews', subset: 'v3' }, weight: 1 },
        ],
      },
    ]
    sim.store.update(VS, vs)
  })
  after(() => sim.close())

  it('status reports the canary at 10 %', async () => {
    const { main } = await runAction({ inputs: bookinfoInputs(sim, { action: 'status' }), env: runnerEnv(sim) })
    assert.equal(main.code, 0, main.stdout)
    assert.equal(main.outputs['canary-weight'], '10')
    assert.match(main.stdout, /v1 90 % \/ v3 10 %/)
  })

  it('a rollout starts from 10 % (the baseline share test passes), writes percent, and promotes', async () => {
    const shifted: number[][] = []
    const listener = (): void => {
      const r = route(reviews(sim))
      shifted.push(r.map((d) => d.weight ?? 100))
    }
    sim.store.on('write', listener)
    try {
      const { main } = await runAction({
        inputs: bookinfoInputs(sim, { steps: '50,100', 'smoke-requests': '60' }),
        env: runnerEnv(sim),
      })
      assert.equal(main.code, 0, main.stdout)
      assert.equal(main.outputs['result'], 'promoted')
    } finally {
      sim.store.off('write', listener)
    }
    // Every split written sums to 100 (the 50 % step), then the canary alone.
    assert.ok(
      shifted.some((w) => w.length === 2 && w[0] === 50 && w[1] === 50),
      JSON.stringify(shifted),
    )
    assert.deepEqual(route(reviews(sim)), [{ destination: { host: 'reviews', subset: 'v3' } }])
  })
})
