// Failures inside failures: a revert that fails, a write whose outcome is unknown, a run that died while
// shifting, and a paused rollout continued after a preview moved the routes.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import type { Sim } from '../sim/index.js'
import { startSimulation } from '../sim/index.js'
import { runAction } from '../runner/harness.js'
import type { KubeObject, WriteEvent } from '../sim/kube/store.js'
import { LEASES, STATE, VS, bookinfoInputs, reviews, runnerEnv, withFault } from './common.js'

const spec = (o: KubeObject): unknown => o['spec']
const phase = (o: KubeObject): unknown =>
  (JSON.parse(o.metadata.annotations?.[STATE] ?? '{}') as { phase?: string }).phase

/** The lock a killed run left behind, expired as time would expire it. */
function expireLock(sim: Sim): void {
  const lease = sim.store.get(LEASES, 'bookinfo', 'istio-canary-reviews') as KubeObject
  ;(lease['spec'] as Record<string, unknown>)['renewTime'] = '2020-01-01T00:00:00.000000Z'
  sim.store.update(LEASES, lease)
}

/** Calls `fn` once, on the first VirtualService write after now. */
function onFirstVsWrite(sim: Sim, fn: () => void): void {
  const listener = (w: WriteEvent): void => {
    if (w.ref.resource !== 'virtualservices') return
    sim.store.off('write', listener)
    fn()
  }
  sim.store.on('write', listener)
}

describe('recovery', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
  })
  after(() => sim.close())

  it('a revert that fails reports the live weight, keeps the report, and the post step finishes the revert', async () => {
    const original = spec(reviews(sim))
    await withFault(sim, 'v3', { errorRate: 1 }, async () => {
      // once the canary takes 50 %, every write fails for a while: the main step's revert gives up
      onFirstVsWrite(sim, () =>
        sim.kube.injectFault({ method: 'PUT', path: /virtualservices\/reviews/, status: 500, times: 5 }),
      )
      const { main, post } = await runAction({ inputs: bookinfoInputs(sim, { steps: '50,100' }), env: runnerEnv(sim) })
      assert.equal(main.code, 1)
      assert.equal(main.outputs['result'], 'paused', 'traffic is still mid-rollout')
      assert.equal(main.outputs['canary-weight'], '50')
      assert.match(main.stdout, /REVERT FAILED: .*Restore the route by hand/)
      const report = JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as {
        steps: Array<{ weight: number; verdict: string }>
      }
      assert.deepEqual(
        report.steps.map((s) => [s.weight, s.verdict]),
        [[50, 'fail']],
      )
      assert.equal(main.state['unsettled'], 'true')
      assert.equal(post?.code, 0, post?.stdout)
      assert.equal(post?.outputs['result'], 'rolled-back')
      assert.deepEqual(spec(reviews(sim)), original)
      assert.equal(phase(reviews(sim)), 'rolled-back')
      // the main step kept the lock for the post step, which released it after the revert
      const writes = sim.store.writes.map((w) => `${w.verb} ${w.ref.resource}`)
      assert.deepEqual(writes.slice(writes.lastIndexOf('create leases') + 1), [
        'update virtualservices',
        'update virtualservices',
        'delete leases',
      ])
    })
  })

  it('a write that landed although its call failed is reverted like any traffic change', async () => {
    const original = spec(reviews(sim))
    await withFault(sim, 'v3', { errorRate: 1 }, async () => {
      // the first shift is applied but its answer lost, and every retry fails with 500
      sim.kube.injectFault({ method: 'PUT', path: /virtualservices\/reviews/, status: 'lost-response', times: 1 })
      sim.kube.injectFault({ method: 'PUT', path: /virtualservices\/reviews/, status: 500, times: 4 })
      const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '50,100' }), env: runnerEnv(sim) })
      assert.equal(main.code, 1)
      assert.equal(main.outputs['result'], 'rolled-back', main.stdout)
      assert.match(main.stdout, /Restored the route as it was before the run/)
      assert.deepEqual(spec(reviews(sim)), original)
    })
  })

  it('a write that landed after the first change (answer lost, retries failing) is found and reverted, not blamed on others', async () => {
    const original = spec(reviews(sim))
    onFirstVsWrite(sim, () => {
      sim.kube.injectFault({ method: 'PUT', path: /virtualservices\/reviews/, status: 'lost-response', times: 1 })
      sim.kube.injectFault({ method: 'PUT', path: /virtualservices\/reviews/, status: 500, times: 4 })
    })
    const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '50,100' }), env: runnerEnv(sim) })
    assert.equal(main.code, 1)
    assert.doesNotMatch(main.stdout, /changed by someone else/)
    assert.equal(main.outputs['result'], 'rolled-back', main.stdout)
    assert.deepEqual(spec(reviews(sim)), original)
  })

  for (const healthy of [false, true]) {
    it(`a run that died shifting to its last step: the next run verifies that weight (${healthy ? 'passes: paused' : 'fails: reverted'})`, async () => {
      const original = spec(reviews(sim))
      const killed = await runAction({
        inputs: bookinfoInputs(sim, { steps: '10:0,50:30s' }),
        env: runnerEnv(sim),
        interrupt: { when: /Shifted to v1 50 %[\s\S]*Pausing/, signal: 'SIGKILL' },
        post: false,
      })
      assert.equal(killed.main.signal, 'SIGKILL')
      assert.equal(phase(reviews(sim)), 'shifting')
      expireLock(sim)
      await withFault(sim, 'v3', healthy ? undefined : { errorRate: 1 }, async () => {
        const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '10,50' }), env: runnerEnv(sim) })
        assert.match(main.stdout, /ended while shifting to 50 %, unverified: verifying it first/)
        assert.match(main.stdout, /Smoke test of the route as it is \(v1 50 % \/ v3 50 %\)/)
        if (healthy) {
          assert.equal(main.code, 0, main.stdout)
          assert.equal(main.outputs['result'], 'paused')
          assert.equal(phase(reviews(sim)), 'paused')
          await runAction({
            inputs: bookinfoInputs(sim, { action: 'rollback', 'canary-subset': '' }),
            env: runnerEnv(sim),
          })
        } else {
          assert.equal(main.code, 1)
          assert.equal(main.outputs['result'], 'rolled-back')
          assert.match(main.stdout, /the weight run .* left unverified fails/)
        }
        assert.deepEqual(spec(reviews(sim)), original)
      })
    })
  }

  it('a run that died while shifting: the next run verifies that weight first and, when it fails, restores what the dead run would have', async () => {
    const original = spec(reviews(sim))
    const killed = await runAction({
      inputs: bookinfoInputs(sim, { steps: '50,100', pause: '30s' }),
      env: runnerEnv(sim),
      interrupt: { when: 'Pausing', signal: 'SIGKILL' },
      post: false,
    })
    assert.equal(killed.main.signal, 'SIGKILL')
    assert.equal(phase(reviews(sim)), 'shifting')
    expireLock(sim)
    await withFault(sim, 'v3', { errorRate: 1 }, async () => {
      const { main } = await runAction({ inputs: bookinfoInputs(sim, { steps: '50,100' }), env: runnerEnv(sim) })
      assert.equal(main.code, 1)
      assert.match(main.stdout, /ended while shifting to 50 %, unverified: verifying it first/)
      assert.equal(main.outputs['result'], 'rolled-back')
      assert.deepEqual(spec(reviews(sim)), original)
    })
  })
})

describe("BookInfo's own error handling: a failed reviews call is retried, then rendered with 200 and no version", () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation({ reviewsErrors: 'bookinfo' })
  })
  after(() => sim.close())

  it('a broken canary still fails its first step: its pages never name it, and pages naming no version fail', async () => {
    const original = spec(reviews(sim))
    await withFault(sim, 'v3', { errorRate: 1 }, async () => {
      const page = await fetch(`${sim.mesh.url}/productpage`)
      assert.equal(page.status, 200)
      const { main } = await runAction({
        inputs: bookinfoInputs(sim, { 'smoke-requests': '200', 'smoke-concurrency': '10' }),
        env: runnerEnv(sim),
      })
      assert.equal(main.code, 1)
      assert.equal(main.outputs['result'], 'rolled-back')
      const report = JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as {
        steps: Array<{
          weight: number
          verdict: string
          reasons: string[]
          checks: Array<{ kind: string; evidence: { byVersion: Record<string, unknown>; unattributed: number } }>
        }>
      }
      assert.deepEqual(
        report.steps.map((s) => [s.weight, s.verdict]),
        [[10, 'fail']],
      )
      assert.equal(report.steps[0]?.checks[0]?.evidence.byVersion['v3'], undefined, 'the canary never named')
      // Its failed calls are retried onto v1 (the page then names v1), and the few pages whose both calls failed name
      // no version: the canary is named nowhere, and the verdict says its errors may be hidden by the retry.
      const reasons = report.steps[0]?.reasons.join('\n') ?? ''
      assert.match(
        reasons,
        /canary \(v3\) (answers errors: it is named in none of the|served none of) \d+ attributed responses at weight 10 %/,
      )
      assert.match(reasons, /BookInfo's productpage/)
      assert.deepEqual(spec(reviews(sim)), original)
    })
  })
})

describe('a paused rollout of an unnamed route, continued after a preview', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation({ seed: { reviewsRoute: 'jason-v2-v1' } })
  })
  after(() => sim.close())

  it('promote (no route input) finds the same route although a preview now stands first', async () => {
    const before = reviews(sim)
    const paused = await runAction({ inputs: bookinfoInputs(sim, { route: '1', steps: '25' }), env: runnerEnv(sim) })
    assert.equal(paused.main.outputs['result'], 'paused', paused.main.stdout)
    const preview = await runAction({
      inputs: bookinfoInputs(sim, { action: 'preview', 'preview-value': 'pr-7' }),
      env: runnerEnv(sim),
    })
    assert.equal(preview.main.outputs['result'], 'previewed', preview.main.stdout)
    const promote = await runAction({
      inputs: bookinfoInputs(sim, { action: 'promote', 'canary-subset': '' }),
      env: runnerEnv(sim),
    })
    assert.equal(promote.main.code, 0, promote.main.stdout)
    assert.equal(promote.main.outputs['result'], 'promoted')
    const http = (spec(reviews(sim)) as { http: Array<{ name?: string; route: unknown }> }).http
    assert.equal(http.length, 3)
    assert.match(http[0]?.name ?? '', /^istio-canary-preview-pr-7-/)
    assert.deepEqual(http[1], (spec(before) as { http: unknown[] }).http[0], 'the jason route untouched')
    assert.deepEqual(http[2]?.route, [{ destination: { host: 'reviews', subset: 'v3' } }])
  })
})

describe('a preview whose write never landed', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
  })
  after(() => sim.close())

  it('the post step looks, finds nothing of the run, and says so: no "Restored", no rolled-back', async () => {
    const original = structuredClone(reviews(sim))
    // Every attempt of the main step's write fails (500, not applied): the run cannot tell, so the post step looks.
    sim.faults.kube({ method: 'PUT', path: /virtualservices\/reviews/, status: 500, times: 5 })
    const writes = sim.store.writes.filter((w) => w.ref.resource === 'virtualservices').length
    const { main, post } = await runAction({
      inputs: bookinfoInputs(sim, { action: 'preview', 'preview-value': 'pr-9' }),
      env: runnerEnv(sim),
    })
    assert.equal(main.code, 1)
    assert.equal(main.outputs['result'], 'unchanged')
    assert.equal(main.state['unsettled'], 'true')
    assert.equal(post?.code, 0, post?.stdout)
    assert.doesNotMatch(post?.stdout ?? '', /Restored the preview route/)
    assert.match(post?.stdout ?? '', /nothing to restore/)
    assert.equal(post?.outputs['result'], undefined)
    assert.equal(sim.store.writes.filter((w) => w.ref.resource === 'virtualservices').length, writes)
    assert.deepEqual(spec(reviews(sim)), spec(original))
  })
})

describe('rollback after someone already reverted the route by hand', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
  })
  after(() => sim.close())

  it('succeeds, says it found the route reverted, changes no route, and a later rollout is not blocked', async () => {
    const original = structuredClone(reviews(sim))
    const paused = await runAction({ inputs: bookinfoInputs(sim, { steps: '50' }), env: runnerEnv(sim) })
    assert.equal(paused.main.outputs['result'], 'paused', paused.main.stdout)
    // An operator puts the route back by hand (kubectl edit), leaving the annotation.
    const edited = structuredClone(reviews(sim))
    edited['spec'] = structuredClone(original['spec'])
    sim.store.update(VS, edited)
    const rb = await runAction({ inputs: bookinfoInputs(sim, { action: 'rollback' }), env: runnerEnv(sim) })
    assert.equal(rb.main.code, 0, rb.main.stdout)
    assert.equal(rb.main.outputs['result'], 'rolled-back')
    assert.equal(rb.main.outputs['canary-weight'], '0')
    assert.match(rb.main.stdout, /already reverted by hand .*recorded as rolled back/)
    assert.deepEqual(spec(reviews(sim)), spec(original))
    assert.equal(phase(reviews(sim)), 'rolled-back')
    const again = await runAction({ inputs: bookinfoInputs(sim, { steps: '50' }), env: runnerEnv(sim) })
    assert.equal(again.main.outputs['result'], 'paused', again.main.stdout)
  })
})
