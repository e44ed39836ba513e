// The engine in-process, against the in-memory cluster and a scripted verifier: every branch of the failure
// handling (the state machine's afterFailure table) as the engine reaches it, and the modes' happy paths.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { KubeError, type VirtualService } from '../../src/k8s/resources.js'
import { Engine, type Outcome } from '../../src/rollout/engine.js'
import { createRouter } from '../../src/routing/index.js'
import type { RouteSelector } from '../../src/routing/router.js'
import { type RolloutState, decodeState } from '../../src/routing/state.js'
import type { StepContext } from '../../src/verify/verifier.js'
import { FakeCluster } from '../fakes/cluster.js'
import { ScriptedVerifier } from '../fakes/verifier.js'

const TARGET = { kind: 'VirtualService' as const, namespace: 'bookinfo', name: 'reviews' }

function reviews(): VirtualService {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'reviews', namespace: 'bookinfo' },
    spec: {
      hosts: ['reviews'],
      http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }],
    },
  }
}

function setup(
  o: {
    verdicts?: Array<'pass' | 'fail'>
    during?: (step: StepContext, cluster: FakeCluster) => void
    route?: RouteSelector
    canary?: string
  } = {},
) {
  const cluster = new FakeCluster()
  cluster.put(reviews())
  const log: string[] = []
  const verifier = new ScriptedVerifier(o.verdicts, o.during && ((step) => o.during?.(step, cluster)))
  const engine = (runId = 'run-1', canary: string | undefined = o.canary ?? 'v3') => {
    const router = createRouter(
      cluster,
      { ...TARGET, route: o.route ?? { by: 'default' } },
      { log: (m) => log.push(m) },
    )
    return new Engine(
      {
        router,
        verifiers: [verifier],
        signal: new AbortController().signal,
        runId,
        log: (m) => log.push(m),
        revertTimeoutMs: 2000,
      },
      { stableSubset: 'auto', ...(canary ? { canarySubset: canary } : {}) },
    )
  }
  const state = (): RolloutState | undefined =>
    decodeState(cluster.virtualService('bookinfo', 'reviews').metadata.annotations, TARGET)
  const split = (): unknown => cluster.virtualService('bookinfo', 'reviews').spec.http?.[0]?.route
  return { cluster, engine, verifier, state, split, log }
}

async function rollout(engine: Engine, weights: number[]): Promise<Outcome> {
  await engine.load()
  return engine.rollout(
    weights.map((weight) => ({ weight })),
    0,
  )
}

const V1_ONLY = [{ destination: { host: 'reviews', subset: 'v1' } }]
const transient = (): KubeError =>
  new KubeError(503, 'ServiceUnavailable', 'the server is currently unable to handle the request')

describe('engine: happy paths', () => {
  it('promotes through every step, verifying the baseline and each step, and records promoted', async () => {
    const t = setup()
    const out = await rollout(t.engine(), [10, 50, 100])
    assert.equal(out.result, 'promoted')
    assert.equal(out.canaryWeight, 100)
    assert.deepEqual(
      t.verifier.seen.map((s) => [s.kind, s.weight]),
      [
        ['baseline', 0],
        ['step', 10],
        ['step', 50],
        ['step', 100],
      ],
    )
    assert.deepEqual(t.split(), [{ destination: { host: 'reviews', subset: 'v3' } }])
    assert.equal(t.state()?.phase, 'promoted')
    assert.equal(out.steps.length, 3)
    assert.equal(out.steps[0]?.checks[0]?.kind, 'scripted')
  })

  it('stops below 100 as paused, and a later promote continues from there', async () => {
    const t = setup()
    assert.equal((await rollout(t.engine(), [10, 30])).result, 'paused')
    assert.equal(t.state()?.phase, 'paused')
    assert.equal(t.state()?.weight, 30)
    const promoted = await rollout(t.engine('run-2', undefined), [100])
    assert.equal(promoted.result, 'promoted')
    assert.equal(t.state()?.runId, 'run-2')
    assert.deepEqual(t.state()?.originalRoute, { route: V1_ONLY })
  })
})

describe('engine: the failure table', () => {
  it('a failed step is reverted: rolled-back at the restored weight, the route as before', async () => {
    const t = setup({ verdicts: ['pass', 'pass', 'fail'] })
    const out = await rollout(t.engine(), [10, 50, 100])
    assert.equal(out.result, 'rolled-back')
    assert.equal(out.canaryWeight, 0)
    assert.equal(out.unsettled, undefined)
    assert.match(out.error?.message ?? '', /scripted test failed at 50 %: scripted failure/)
    assert.deepEqual(t.split(), V1_ONLY)
    assert.equal(t.state()?.phase, 'rolled-back', 'recorded, for a later rollback or status')
    assert.deepEqual(t.state()?.lastWritten, { route: V1_ONLY })
  })

  it('a baseline that already fails changes nothing: unchanged, not unsettled, no write', async () => {
    const t = setup({ verdicts: ['fail'] })
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'unchanged')
    assert.equal(out.unsettled, undefined)
    assert.match(out.error?.message ?? '', /already fails before any change.*Nothing was changed/)
    assert.equal(t.cluster.calls.includes('replaceVirtualService'), false)
  })

  it('someone else changes the route during a step: theirs stands, unchanged at the live weight', async () => {
    const t = setup({
      verdicts: ['pass', 'fail'],
      during: (step, cluster) => {
        if (step.kind !== 'step') return
        const vs = cluster.virtualService('bookinfo', 'reviews')
        vs.spec.http = [
          {
            route: [
              { destination: { host: 'reviews', subset: 'v1' }, weight: 70 },
              { destination: { host: 'reviews', subset: 'v3' }, weight: 30 },
            ],
          },
        ]
        cluster.put(vs)
      },
    })
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'unchanged')
    assert.equal(out.canaryWeight, 30, 'the live weight someone else set')
    assert.match(out.error?.message ?? '', /changed by someone else/)
    assert.equal((t.split() as Array<{ weight: number }>)[1]?.weight, 30, 'not overwritten')
  })

  it('a write that fails outright before any change: unchanged, and settled when the re-read shows nothing', async () => {
    const t = setup()
    t.cluster.fail('replaceVirtualService', { error: transient() })
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'unchanged')
    assert.equal(out.unsettled, undefined)
    assert.deepEqual(t.split(), V1_ONLY)
  })

  it('a write whose answer was lost but which landed is found and reverted', async () => {
    const t = setup()
    t.cluster.fail('replaceVirtualService', { error: transient(), afterApplying: true })
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'rolled-back')
    assert.deepEqual(t.split(), V1_ONLY)
  })

  it('a write whose outcome cannot be read back: unchanged but unsettled (the post step looks again)', async () => {
    const t = setup()
    t.cluster.fail('replaceVirtualService', { error: transient(), afterApplying: true })
    // Armed after the engine's own load: the re-read after the failed write fails too.
    const engine = t.engine()
    await engine.load()
    t.cluster.fail('getVirtualService', { error: transient() })
    const out = await engine.rollout([{ weight: 10 }, { weight: 100 }], 0)
    assert.equal(out.result, 'unchanged')
    assert.equal(out.unsettled, true)
  })

  it('a revert that fails is its own outcome: revert-failed at the weight the run left, unsettled', async () => {
    const t = setup({
      verdicts: ['pass', 'fail'],
      during: (step, cluster) => {
        if (step.kind !== 'step') return
        cluster.fail('replaceVirtualService', { error: transient() })
      },
    })
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'revert-failed')
    assert.equal(out.canaryWeight, 10)
    assert.equal(out.unsettled, true)
    assert.match(out.error?.message ?? '', /REVERT FAILED: .*Restore the route by hand/)
    assert.equal(t.state()?.phase, 'shifting', 'the state still shows the unfinished shift for the post step')
  })

  it('a revert that finds someone else changed the route leaves theirs: unchanged at the live weight', async () => {
    const t = setup({
      verdicts: ['pass', 'fail'],
      during: (step, cluster) => {
        if (step.kind !== 'step') return
        const vs = cluster.virtualService('bookinfo', 'reviews')
        vs.spec.http = [
          {
            route: [
              { destination: { host: 'reviews', subset: 'v1' }, weight: 80 },
              { destination: { host: 'reviews', subset: 'v3' }, weight: 20 },
            ],
          },
        ]
        cluster.put(vs)
      },
    })
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'unchanged')
    assert.equal(out.canaryWeight, 20)
    assert.equal((t.split() as Array<{ weight: number }>)[1]?.weight, 20)
  })
})

describe('engine: continuing, rollback, preview, post step', () => {
  /** Leaves a run 'dead-run' that died while shifting to 10 % (its revert failed too). */
  async function deadRunAt10(t: ReturnType<typeof setup>): Promise<void> {
    const dead = t.engine('dead-run')
    await dead.load()
    dead.setVerifiers([
      new ScriptedVerifier([], (step) => {
        if (step.kind !== 'step') return
        t.cluster.fail('replaceVirtualService', { error: transient() })
        throw new Error('runner killed')
      }),
    ])
    assert.equal((await dead.rollout([{ weight: 10 }, { weight: 100 }], 0)).result, 'revert-failed')
    assert.equal(t.state()?.phase, 'shifting')
  }

  it("takes over a dead run's unverified weight, verifies it first, and on failure restores what it would have", async () => {
    const t = setup({ verdicts: ['fail'] })
    await deadRunAt10(t)
    const out = await rollout(t.engine('run-2', undefined), [10, 50, 100])
    assert.equal(t.verifier.seen[0]?.kind, 'baseline')
    assert.equal(t.verifier.seen[0]?.weight, 10, 'the inherited weight is verified before any step')
    assert.equal(out.result, 'rolled-back')
    assert.match(out.error?.message ?? '', /the weight run dead-run left unverified fails/)
    assert.deepEqual(t.split(), V1_ONLY)
  })

  it("takes over a dead run's weight and, when it passes, carries the rollout on under its own id", async () => {
    const t = setup()
    await deadRunAt10(t)
    const out = await rollout(t.engine('run-2', undefined), [10, 50, 100])
    assert.equal(out.result, 'promoted')
    assert.equal(t.state()?.runId, 'run-2')
    assert.deepEqual(t.state()?.originalRoute, { route: V1_ONLY })
  })

  it('rollback restores the original route and records rolled-back under the new run', async () => {
    const t = setup()
    await rollout(t.engine(), [10, 30])
    const engine = t.engine('run-2', undefined)
    await engine.load()
    const out = await engine.rollback()
    assert.equal(out.result, 'rolled-back')
    assert.deepEqual(t.split(), V1_ONLY)
    assert.equal(t.state()?.phase, 'rolled-back')
    assert.equal(t.state()?.runId, 'run-2')
  })

  it('preview: a failed preview is removed again (rolled-back); a failed removal is revert-failed', async () => {
    const ok = setup({ verdicts: ['fail'] })
    const engine = ok.engine()
    await engine.load()
    const out = await engine.preview('x-canary-preview', 'pr-1', 0)
    assert.equal(out.result, 'rolled-back')
    assert.equal(ok.cluster.virtualService('bookinfo', 'reviews').spec.http?.length, 1)

    const stuck = setup({
      verdicts: ['fail'],
      during: (_step, cluster) => {
        cluster.fail('replaceVirtualService', { error: transient() })
      },
    })
    const second = stuck.engine()
    await second.load()
    const failed = await second.preview('x-canary-preview', 'pr-1', 0)
    assert.equal(failed.result, 'revert-failed')
    assert.equal(failed.unsettled, true)
    assert.equal(stuck.cluster.virtualService('bookinfo', 'reviews').spec.http?.length, 2, 'the preview is still live')
    assert.equal(stuck.verifier.seen[0]?.kind, 'preview')
    assert.deepEqual(stuck.verifier.seen[0]?.headers, { 'x-canary-preview': 'pr-1' })
  })

  it('the post step finishes the revert of a run that ended while shifting', async () => {
    const t = setup()
    const engine = t.engine('run-1')
    await engine.load()
    engine.setVerifiers([
      new ScriptedVerifier([], (step) => {
        if (step.kind === 'step') {
          // The runner kills the main step: the revert never happens because the write fails first.
          t.cluster.fail('replaceVirtualService', { error: transient() })
          throw new Error('killed')
        }
      }),
    ])
    const out = await engine.rollout([{ weight: 10 }, { weight: 100 }], 0)
    assert.equal(out.result, 'revert-failed')
    assert.equal(t.state()?.phase, 'shifting')
    const post = t.engine('run-1')
    await post.load()
    assert.equal(await post.finishRevert('run-1'), true)
    assert.deepEqual(t.split(), V1_ONLY)
    assert.equal(t.state()?.phase, 'rolled-back')
    assert.equal(t.state()?.revertTo, undefined)
  })
})
