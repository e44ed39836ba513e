// SPEC section 7 rule 3 in-process: after every write of an HTTPRoute the engine waits, bounded, for every parent to
// show Accepted and ResolvedRefs True for the new generation. The in-memory cluster plays the controller (accepting,
// rejecting or silent per generation); a fake clock makes the bound pass without waiting it out.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { HttpRouteRule } from '../../src/k8s/resources.js'
import { realSleep, type Sleep } from '../../src/retry.js'
import { Engine, type Outcome } from '../../src/rollout/engine.js'
import { ACCEPT_TIMEOUT_MS, awaitAcceptance } from '../../src/routing/hr-status.js'
import { createRouter } from '../../src/routing/index.js'
import { NotAppliedError, type TargetRef } from '../../src/routing/router.js'
import { decodeState } from '../../src/routing/state.js'
import { type ControllerVerdict, FakeCluster } from '../fakes/cluster.js'
import { ScriptedVerifier } from '../fakes/verifier.js'
import { httpRouteSample as sample } from '../support/samples.js'

const NS = 'bookinfo'
const TARGET: TargetRef = { kind: 'HTTPRoute', namespace: NS, name: 'reviews', route: { by: 'default' } }

/** A clock that only moves when the code under test sleeps (bounded: it refuses to sleep past an hour). */
function fakeClock(): { now: () => number; sleep: Sleep; slept: number[] } {
  let t = 0
  const slept: number[] = []
  return {
    now: () => t,
    slept,
    sleep: async (ms, signal) => {
      signal?.throwIfAborted()
      slept.push(ms)
      t += ms
      if (t > 3_600_000) throw new Error('fake clock: slept over an hour')
    },
  }
}

/**
 * An HTTPRoute target whose controller answers each generation with `verdicts` in turn (then accepts); the seeded
 * route's own generation (1) is reported accepted, as on a cluster where the route is live.
 */
function setup(verdicts: ControllerVerdict[] = [], o: { signal?: AbortSignal; sleep?: Sleep } = {}) {
  const cluster = new FakeCluster()
  const clock = fakeClock()
  const plan = [...verdicts]
  const generations = cluster.playGatewayController((route) =>
    (route.metadata.generation ?? 0) <= 1 ? 'accept' : (plan.shift() ?? 'accept'),
  )
  cluster.putHttpRoute(sample('route-reviews-v1.yaml'))
  const original = structuredClone(cluster.httpRoute(NS, 'reviews').spec.rules) as HttpRouteRule[]
  const log: string[] = []
  const verifier = new ScriptedVerifier()
  const engine = (runId = 'run-1') =>
    new Engine(
      {
        router: createRouter(cluster, TARGET, {
          log: (m) => log.push(m),
          sleep: o.sleep ?? clock.sleep,
          now: clock.now,
        }),
        verifiers: [verifier],
        signal: o.signal ?? new AbortController().signal,
        runId,
        log: (m) => log.push(m),
      },
      { stableSubset: 'auto', canarySubset: 'reviews-v3' },
    )
  const rules = (): HttpRouteRule[] => cluster.httpRoute(NS, 'reviews').spec.rules ?? []
  const state = () => decodeState(cluster.httpRoute(NS, 'reviews').metadata.annotations, TARGET)
  return { cluster, clock, generations, original, log, verifier, engine, rules, state }
}

async function rollout(engine: Engine, weights: number[]): Promise<Outcome> {
  await engine.load()
  return engine.rollout(
    weights.map((weight) => ({ weight })),
    0,
  )
}

describe('Engine over an HTTPRoute: waiting for the parents after each write', () => {
  it('accepted: every shift is judged only once its generation is accepted; promoted', async () => {
    const t = setup()
    const out = await rollout(t.engine(), [10, 50, 100])
    assert.equal(out.result, 'promoted', out.error?.message)
    // Generations 2, 3, 4: the three shifts (the promotion's write changes the annotation only, no new generation).
    assert.deepEqual(t.generations, [1, 2, 3, 4])
    // One wait per write: the three shifts and the promotion.
    assert.equal(
      t.log.filter((m) => /generation \d accepted by its parent \(Accepted, ResolvedRefs\)/.test(m)).length,
      4,
    )
    assert.equal(t.verifier.seen.filter((s) => s.kind === 'step').length, 3)
    assert.deepEqual(t.clock.slept, [], 'a controller that already reported: no wait')
  })

  it('rejected: the first shift fails unjudged and is reverted to the original rule exactly; the error quotes the parent', async () => {
    const t = setup(['reject'])
    const out = await rollout(t.engine(), [10, 50, 100])
    assert.equal(out.result, 'rolled-back')
    assert.equal(out.unsettled, undefined)
    assert.match(
      out.error?.message ?? '',
      /^step 1 at 10 %: a parent of HTTPRoute bookinfo\/reviews rejected the change: Service bookinfo\/reviews:9080 \(istio.io\/gateway-controller\): Accepted is False \(UnsupportedValue: played rejection/,
    )
    assert.ok(out.error instanceof NotAppliedError)
    assert.deepEqual(t.rules(), t.original)
    assert.equal(t.state()?.phase, 'rolled-back')
    assert.equal(t.verifier.seen.filter((s) => s.kind === 'step').length, 0, 'the rejected weight was not judged')
    assert.ok(t.log.some((m) => /^Step 1 at 10 %: REJECTED/.test(m)))
    // The report's step table shows the step, failed unjudged, with the parent's word.
    assert.deepEqual(
      out.steps.map((s) => [s.index, s.weight, s.verdict, s.checks.length]),
      [[1, 10, 'fail', 0]],
    )
    assert.match(out.steps[0]?.reasons.join() ?? '', /Accepted is False \(UnsupportedValue/)
    // The revert (generation 3) was waited for too.
    assert.ok(t.log.some((m) => /generation 3 accepted/.test(m)))
  })

  it('never reported: the bound passes (fake clock), the failure names the silent parent, the revert lands', async () => {
    const t = setup(['silent'])
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'rolled-back')
    assert.match(
      out.error?.message ?? '',
      /the change of HTTPRoute bookinfo\/reviews was not accepted within 30s: Service bookinfo\/reviews:9080 \(istio.io\/gateway-controller\) has not observed generation 2 yet \(Accepted is of generation 1\)/,
    )
    assert.equal((out.error as NotAppliedError).reason, 'timeout')
    assert.match(out.steps[0]?.reasons.join() ?? '', /has not observed generation 2 yet/)
    assert.deepEqual(t.rules(), t.original)
    const waited = t.clock.slept.reduce((a, b) => a + b, 0)
    assert.ok(waited >= ACCEPT_TIMEOUT_MS && waited <= ACCEPT_TIMEOUT_MS + 1000, `waited ${waited} ms`)
  })

  it('an old generation in the status never counts: a controller that reports generation 2 late is waited for', async () => {
    const t = setup(['silent'])
    const engine = t.engine()
    await engine.load()
    // The controller catches up on the 4th read: the wait goes on until then, not a moment longer.
    let reads = 0
    const get = t.cluster.getHttpRoute.bind(t.cluster)
    t.cluster.getHttpRoute = async (ns, name) => {
      reads++
      if (reads === 4) {
        const hr = t.cluster.httpRoute(NS, 'reviews')
        const generation = hr.metadata.generation as number
        t.cluster.setHttpRouteStatus(NS, 'reviews', {
          parents: (hr.status?.parents ?? []).map((p) => ({
            ...p,
            conditions: (p.conditions ?? []).map((c) => ({ ...c, observedGeneration: generation })),
          })),
        })
      }
      return get(ns, name)
    }
    const out = await engine.rollout([{ weight: 10 }], 0)
    assert.equal(out.result, 'paused', out.error?.message)
    assert.equal(t.clock.slept.length, 3, 'three pauses between four reads')
  })

  it('a revert that is rejected leaves the run unsettled and says so plainly', async () => {
    const t = setup(['reject', 'reject'])
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'revert-failed')
    assert.equal(out.unsettled, true)
    assert.match(
      out.error?.message ?? '',
      /REVERT FAILED: the revert: a parent of HTTPRoute bookinfo\/reviews rejected/,
    )
    assert.match(out.error?.message ?? '', /The revert was written but is not in effect: .*the run is unsettled/)
    // The route holds the revert (written), the parent refused it: what the run says.
    assert.deepEqual(t.rules(), t.original)
  })

  it('a revert that is never accepted leaves the run unsettled too', async () => {
    const t = setup(['reject', 'silent'])
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'revert-failed')
    assert.equal(out.unsettled, true)
    assert.match(
      out.error?.message ?? '',
      /REVERT FAILED: the revert: the change of HTTPRoute .* not accepted within 30s/,
    )
  })

  it('cancelled during the wait (SIGINT): the wait ends at once, the revert runs under its own bound and lands', async () => {
    const cancel = new AbortController()
    const clock = fakeClock()
    let pauses = 0
    // The third pause of the wait is where the signal comes; the wait must end there, not at its bound.
    const sleep: Sleep = async (ms, signal) => {
      pauses++
      if (pauses === 3) cancel.abort(new Error('cancelled by SIGINT'))
      await clock.sleep(ms, signal)
    }
    const t = setup(['silent'], { signal: cancel.signal, sleep })
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'rolled-back')
    assert.match(out.error?.message ?? '', /cancelled by SIGINT/)
    assert.equal(pauses, 3, 'no pause after the signal (the revert was accepted at once)')
    assert.deepEqual(t.rules(), t.original)
  })

  for (const verdict of ['accept', 'reject'] as const) {
    it(`the post step's revert of a run killed while shifting waits too (${verdict})`, async () => {
      const t = setup(['accept', verdict])
      const main = t.engine('run-1')
      await main.load()
      main.setVerifiers([
        {
          kind: 'scripted',
          describe: () => 'scripted',
          verify: async (step) => {
            if (step.kind === 'step') {
              // The runner kills the main step: its revert's write never lands.
              t.cluster.fail('replaceHttpRoute', { error: new Error('killed') })
              throw new Error('killed')
            }
            return { kind: 'scripted', verdict: 'pass', reasons: [], summary: 'pass', evidence: {} }
          },
        },
      ])
      const out = await main.rollout([{ weight: 10 }, { weight: 100 }], 0)
      assert.equal(out.result, 'revert-failed')
      assert.equal(t.state()?.phase, 'shifting')
      const post = t.engine('run-1')
      await post.load()
      if (verdict === 'accept') {
        assert.equal(await post.finishRevert('run-1'), true)
        assert.deepEqual(t.rules(), t.original)
        assert.ok(t.log.some((m) => /generation 3 accepted/.test(m)))
      } else {
        await assert.rejects(
          post.finishRevert('run-1'),
          /REVERT FAILED: the revert: a parent of HTTPRoute bookinfo\/reviews rejected the change: .*The revert was written but is not in effect/,
        )
      }
    })
  }

  it('rollback, preview and preview-cleanup wait too; a rejected preview is removed again', async () => {
    const t = setup(['accept', 'reject'])
    const first = await rollout(t.engine(), [10])
    assert.equal(first.result, 'paused', first.error?.message)
    const back = t.engine('run-2')
    await back.load()
    await assert.rejects(back.rollback(), /the rollback: a parent of HTTPRoute bookinfo\/reviews rejected the change/)

    const p = setup(['reject'])
    const preview = p.engine()
    await preview.load()
    const out = await preview.preview('x-canary-preview', 'pr-1', 0)
    assert.equal(out.result, 'rolled-back')
    assert.match(
      out.error?.message ?? '',
      /the preview route 'istio-canary-preview-pr-1-[0-9a-f]+': a parent .* rejected/,
    )
    assert.deepEqual(p.rules(), p.original, 'the preview rule removed again')

    const c = setup()
    const ok = c.engine()
    await ok.load()
    assert.equal((await ok.preview('x-canary-preview', 'pr-2', 0)).result, 'previewed')
    const cleanup = c.engine('run-2')
    await cleanup.load()
    assert.equal((await cleanup.previewCleanup('pr-2')).result, 'cleaned-up')
    assert.ok(c.log.filter((m) => /accepted by its parent/.test(m)).length >= 2)
    assert.deepEqual(c.rules(), c.original)
  })
})

describe('awaitAcceptance (real time)', () => {
  it("an abort ends the wait within a pause, with the signal's reason", async () => {
    const cluster = new FakeCluster()
    cluster.putHttpRoute(sample('route-reviews-v1.yaml'))
    const cancel = new AbortController()
    const started = Date.now()
    setTimeout(() => cancel.abort(new Error('cancelled by SIGINT')), 100)
    await assert.rejects(
      awaitAcceptance({
        read: () => cluster.getHttpRoute(NS, 'reviews'),
        what: 'HTTPRoute bookinfo/reviews',
        signal: cancel.signal,
        sleep: realSleep,
        now: Date.now,
        timeoutMs: 10_000,
        pollMs: 5_000,
      }),
      /cancelled by SIGINT/,
    )
    assert.ok(Date.now() - started < 2_000, `ended after ${Date.now() - started} ms`)
  })
})
