// The settle wait (src/verify/settle.ts): a CUSUM change detector on the canary's share of attributed probes,
// bounded in time and probes; and the engine's use of it between a route write and the step's checks.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { VirtualService } from '../../src/k8s/resources.js'
import { Engine } from '../../src/rollout/engine.js'
import { createRouter } from '../../src/routing/index.js'
import { decodeState } from '../../src/routing/state.js'
import {
  REVERT_FAILING_PROBES,
  SETTLE_THRESHOLD,
  type SettleDeps,
  cusum,
  settleShares,
  shareLlr,
} from '../../src/verify/settle.js'
import type { SmokeConfig, SmokeResult } from '../../src/verify/smoke/smoke.js'
import type { Check, Settled, StepContext, TrafficChange, Verifier } from '../../src/verify/verifier.js'
import { FakeCluster } from '../fakes/cluster.js'

const REQUEST: SmokeConfig = {
  url: 'http://gateway/productpage',
  requests: 20,
  concurrency: 10,
  timeoutMs: 1000,
  headers: {},
}

/** A batch of `n` answers, `canary` of them from v3, the rest from v1, `failed` of them failing unattributed. */
function batch(n: number, canary: number, failed = 0): SmokeResult {
  const v = (requests: number) => ({ requests, successes: requests, p50Ms: 1, p95Ms: 1 })
  const byVersion: SmokeResult['byVersion'] = {}
  if (canary > 0) byVersion['v3'] = v(canary)
  if (n - canary - failed > 0) byVersion['v1'] = v(n - canary - failed)
  return {
    requests: n,
    successes: n - failed,
    successRate: (n - failed) / n,
    p50Ms: 1,
    p95Ms: 1,
    byVersion,
    unattributed: failed,
    failures: failed ? [{ reason: 'HTTP 503', count: failed }] : [],
  }
}

/** A data plane that serves share `from` for `delayBatches` batches, then `to`; a fake clock moved by sleep. */
function plane(from: number, to: number, delayBatches: number, failed = 0) {
  let t = 0
  let batches = 0
  const seen: SmokeConfig[] = []
  const deps: SettleDeps = {
    now: () => t,
    sleep: async (ms) => {
      t += ms
    },
    probe: async (cfg) => {
      seen.push(cfg)
      t += 5
      const share = batches++ < delayBatches ? from : to
      return batch(cfg.requests, Math.round((share * (cfg.requests - failed)) / 100), failed)
    },
  }
  return { deps, seen, batches: () => batches }
}

const change = (from: number, to: number, headers: Record<string, string> = {}): TrafficChange => ({
  kind: 'step',
  from,
  to,
  headers,
  signal: new AbortController().signal,
})
const config = { request: REQUEST, canaryVersions: ['v3'], threshold: 0.95, timeoutMs: 5000 }

describe('settle: the detector', () => {
  it('answers at the old share never add up; answers at the new share cross the threshold', () => {
    let s = 0
    for (let i = 0; i < 1000; i++) s = cusum(s, 0.1, 0.25, 1, 9)
    assert.equal(s, 0)
    let steps = 0
    for (; s < SETTLE_THRESHOLD && steps < 1000; steps++) s = cusum(s, 0.1, 0.25, 25, 75)
    assert.ok(steps >= 1 && steps < 10, `${steps} batches of 100`)
  })

  it('from 0 %: two canary answers prove the new route (clamped shares, no infinities)', () => {
    assert.ok(Number.isFinite(shareLlr(0, 0.1, 1, 0)))
    assert.ok(shareLlr(0, 0.1, 1, 0) < SETTLE_THRESHOLD)
    assert.ok(cusum(cusum(0, 0, 0.1, 1, 0), 0, 0.1, 1, 0) >= SETTLE_THRESHOLD)
  })
})

describe('settle: the wait', () => {
  it('waits out a slow push: settled only after traffic follows the new weights', async () => {
    const p = plane(10, 50, 30)
    const out = await settleShares(config, change(10, 50), p.deps)
    assert.equal(out.outcome, 'settled')
    assert.ok(p.batches() > 30, `${p.batches()} batches`)
    assert.ok(p.batches() < 40, `${p.batches()} batches`)
    assert.match(
      out.summary,
      /traffic follows 50 % \(\d+ probes in .*, the canary served \d+ % of the last \d+ attributed\)/,
    )
    assert.ok(p.seen.every((c) => c.requests === 10))
  })

  it('a push that never arrives: timeout at the bound, with what the probes saw', async () => {
    const p = plane(10, 50, Number.POSITIVE_INFINITY)
    const out = await settleShares(config, change(10, 50), p.deps)
    assert.equal(out.outcome, 'timeout')
    assert.ok(out.elapsedMs >= 5000 && out.elapsedMs < 5200, String(out.elapsedMs))
    assert.match(
      out.summary,
      /traffic did not follow 50 % within 5s \(.*the canary served 10 % of the last 40 attributed; before the change: 10 %\)/,
    )
  })

  it('bounded in probes as well as time', async () => {
    const p = plane(10, 50, Number.POSITIVE_INFINITY)
    const out = await settleShares({ ...config, timeoutMs: 1e9, maxProbes: 200 }, change(10, 50), p.deps)
    assert.equal(out.outcome, 'timeout')
    assert.equal(out.probes, 200)
  })

  it('failing probes end the wait early as failing (the checks judge them), not as a slow push', async () => {
    const p = plane(10, 10, 0, 3)
    const out = await settleShares(config, change(10, 50), p.deps)
    assert.equal(out.outcome, 'failing')
    assert.match(out.summary, /^3 of 10 probes failed while waiting for 50 %/)
  })

  it('a few failing probes end the wait too, however rare (a broken canary whose pages name no version)', async () => {
    const p = plane(0, 0, 0, 1)
    // 1 in 10 fails: within a threshold of 0.8, but three of them end the wait.
    const out = await settleShares({ ...config, threshold: 0.8 }, change(0, 10), p.deps)
    assert.equal(out.outcome, 'failing')
    assert.equal(p.batches(), 3)
  })

  it("after a revert: failing probes are the reverted canary's, not an end of the wait; only the restored route settles it", async () => {
    /** The proxies still on the 50 % route for `pushBatches` batches: the broken canary's half fails naming no version. */
    const reverting = (pushBatches: number, stableFails = false) => {
      let t = 0
      let batches = 0
      const deps: SettleDeps = {
        now: () => t,
        sleep: async (ms) => {
          t += ms
        },
        probe: async (cfg) => {
          t += 5
          const failed = stableFails ? cfg.requests : batches++ < pushBatches ? cfg.requests / 2 : 0
          return { ...batch(cfg.requests, 0, failed), unattributedFailures: failed }
        },
      }
      return { deps, batches: () => batches }
    }
    const revertChange: TrafficChange = { ...change(50, 0), kind: 'revert' }
    const pushed = reverting(4)
    const out = await settleShares(config, revertChange, pushed.deps)
    assert.equal(out.outcome, 'settled')
    assert.ok(pushed.batches() > 4, `settled after ${pushed.batches()} batches, only once the restored route answers`)
    assert.match(
      out.summary,
      /^traffic follows 0 % .*\(failed answers that name no version counted as the canary's\)\)$/,
    )
    // The push never arrives: stable's answers alone never settle it, and half the probes failing does not end it.
    const never = await settleShares(config, revertChange, reverting(Number.POSITIVE_INFINITY).deps)
    assert.equal(never.outcome, 'timeout')
    assert.match(never.summary, /the canary served 50 % of the last \d+ attributed/)
    // Nearly every probe failing leaves nothing to tell the versions by: failing, after REVERT_FAILING_PROBES.
    const none = await settleShares(config, revertChange, reverting(0, true).deps)
    assert.equal(none.outcome, 'failing')
    assert.equal(none.probes, REVERT_FAILING_PROBES)
    assert.match(none.summary, /^20 of 20 probes failed while waiting for 0 %/)
  })

  it('a preview: probes carry its header; from 0 % to 100 %', async () => {
    const p = plane(0, 100, 3)
    const out = await settleShares(
      config,
      { ...change(0, 100, { 'x-canary-preview': 'pr-1' }), kind: 'preview' },
      p.deps,
    )
    assert.equal(out.outcome, 'settled')
    assert.equal(p.batches(), 4)
    assert.equal(p.seen[0]?.headers['x-canary-preview'], 'pr-1')
  })

  it('no change to wait for: settled without a probe; a cancelled run rejects', async () => {
    const p = plane(10, 10, 0)
    assert.equal((await settleShares(config, change(25, 25), p.deps)).outcome, 'settled')
    assert.equal(p.batches(), 0)
    const ac = new AbortController()
    ac.abort(new Error('cancelled'))
    await assert.rejects(settleShares(config, { ...change(10, 50), signal: ac.signal }, p.deps), /cancelled/)
  })
})

/** A verifier that passes every step and settles as scripted. */
class SettlingVerifier implements Verifier {
  readonly kind = 'smoke'
  readonly changes: TrafficChange[] = []
  readonly verified: number[] = []
  constructor(private readonly outcomes: Array<Settled['outcome']>) {}
  describe(): string {
    return 'settling'
  }
  async settle(c: TrafficChange): Promise<Settled> {
    this.changes.push(c)
    const outcome = this.outcomes.shift() ?? 'settled'
    return { outcome, summary: `scripted ${outcome}`, probes: 10, canary: 0, elapsedMs: 1 }
  }
  async verify(step: StepContext): Promise<Check> {
    this.verified.push(step.weight)
    return { kind: this.kind, verdict: 'pass', reasons: [], summary: 'pass', evidence: {} }
  }
}

function engineWith(verifier: Verifier, propagationHint?: () => string, signal = new AbortController().signal) {
  const cluster = new FakeCluster()
  const vs: VirtualService = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'reviews', namespace: 'bookinfo' },
    spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] },
  }
  cluster.put(vs)
  const target = {
    kind: 'VirtualService' as const,
    namespace: 'bookinfo',
    name: 'reviews',
    route: { by: 'default' as const },
  }
  const log: string[] = []
  const warnings: string[] = []
  const router = createRouter(cluster, target, { log: (m) => log.push(m) })
  const engine = new Engine(
    {
      router,
      verifiers: [verifier],
      signal,
      runId: 'run-1',
      log: (m) => log.push(m),
      warn: (m) => warnings.push(m),
      ...(propagationHint ? { propagationHint } : {}),
    },
    { stableSubset: 'auto', canarySubset: 'v3' },
  )
  return { cluster, engine, log, warnings }
}

describe('settle: the engine', () => {
  it('settles after each write and before its checks, from the weight before to the weight written', async () => {
    const v = new SettlingVerifier([])
    const t = engineWith(v)
    await t.engine.load()
    const out = await t.engine.rollout([{ weight: 10 }, { weight: 50 }, { weight: 100 }], 0)
    assert.equal(out.result, 'promoted')
    assert.deepEqual(
      v.changes.map((c) => [c.from, c.to]),
      [
        [0, 10],
        [10, 50],
        [50, 100],
      ],
    )
    assert.deepEqual(v.verified, [0, 10, 50, 100])
    assert.ok(t.log.includes('Settled at 50 %: scripted settled'), t.log.join('\n'))
  })

  it('a change that never settles fails its step unjudged and reverts', async () => {
    const v = new SettlingVerifier(['settled', 'timeout'])
    const t = engineWith(v)
    await t.engine.load()
    const out = await t.engine.rollout([{ weight: 10 }, { weight: 50 }, { weight: 100 }], 0)
    assert.equal(out.result, 'rolled-back')
    assert.equal(out.canaryWeight, 0)
    assert.deepEqual(v.verified, [0, 10], 'the 50 % step was not judged')
    assert.match(
      out.error?.message ?? '',
      /step 2 at 50 % unsettled: the proxies did not take the new route: scripted timeout/,
    )
    const last = out.steps.at(-1)
    assert.equal(last?.verdict, 'fail')
    assert.equal(last?.checks.length, 0)
    assert.deepEqual(t.cluster.virtualService('bookinfo', 'reviews').spec.http?.[0]?.route, [
      { destination: { host: 'reviews', subset: 'v1' } },
    ])
    const state = decodeState(t.cluster.virtualService('bookinfo', 'reviews').metadata.annotations, {
      kind: 'VirtualService',
      name: 'reviews',
    })
    assert.equal(state?.phase, 'rolled-back')
  })

  it('after a revert, confirms that traffic follows the restored route: from the weight left to the one restored', async () => {
    const v = new SettlingVerifier(['settled', 'timeout', 'settled'])
    const t = engineWith(v)
    await t.engine.load()
    const out = await t.engine.rollout([{ weight: 10 }, { weight: 50 }, { weight: 100 }], 0)
    assert.equal(out.result, 'rolled-back')
    assert.deepEqual(
      v.changes.map((c) => [c.kind, c.from, c.to]),
      [
        ['step', 0, 10],
        ['step', 10, 50],
        ['revert', 50, 0],
      ],
    )
    const restored = t.log.findIndex((l) => l.startsWith('Restored the route as it was before the run'))
    const confirmed = t.log.indexOf('Traffic follows the restored route: scripted settled')
    assert.ok(restored >= 0 && confirmed > restored, t.log.join('\n'))
    assert.deepEqual(t.warnings, [])
    assert.ok(out.events.some((e) => e.message === 'Traffic follows the restored route: scripted settled'))
  })

  it('a restored route the proxies do not take yet is a warning, in the report too; the result stays rolled-back', async () => {
    const v = new SettlingVerifier(['timeout', 'timeout'])
    const t = engineWith(v)
    await t.engine.load()
    const out = await t.engine.rollout([{ weight: 10 }], 0)
    assert.equal(out.result, 'rolled-back')
    assert.equal(out.unsettled, undefined)
    assert.deepEqual(t.warnings, [
      'The restored route is in place, but traffic does not follow it yet: scripted timeout. Until it does, users ' +
        'still reach the canary (istiod has not pushed it to every proxy: see istioctl proxy-status)',
    ])
    assert.ok(out.events.some((e) => e.message === t.warnings[0]))
    const failing = engineWith(new SettlingVerifier(['timeout', 'failing']))
    await failing.engine.load()
    await failing.engine.rollout([{ weight: 10 }], 0)
    assert.deepEqual(failing.warnings, [
      'Not confirmed that traffic follows the restored route, nearly every probe fails: scripted failing',
    ])
  })

  it('a cancelled run reverts without waiting to confirm it (the runner kills it seconds later)', async () => {
    const ac = new AbortController()
    const v = new SettlingVerifier([])
    const cancelling: Verifier = {
      kind: 'smoke',
      describe: () => 'cancelled in its step',
      settle: (c) => v.settle(c),
      verify: async (step) => {
        if (step.kind === 'step') ac.abort(new Error('SIGINT'))
        step.signal.throwIfAborted()
        return { kind: 'smoke', verdict: 'pass', reasons: [], summary: 'pass', evidence: {} }
      },
    }
    const t = engineWith(cancelling, undefined, ac.signal)
    await t.engine.load()
    const out = await t.engine.rollout([{ weight: 10 }, { weight: 100 }], 0)
    assert.equal(out.result, 'rolled-back')
    assert.deepEqual(
      v.changes.map((c) => c.kind),
      ['step'],
      'no confirmation probes after a cancellation',
    )
  })

  it("says where to look in the mesh's words: Istio's by default, the one the run was given otherwise", async () => {
    const istio = engineWith(new SettlingVerifier(['timeout']))
    await istio.engine.load()
    const a = await istio.engine.rollout([{ weight: 10 }], 0)
    assert.match(
      a.steps.at(-1)?.reasons[0] ?? '',
      /not judged \(istiod has not pushed it to every proxy: see istioctl proxy-status\)/,
    )
    const linkerd = engineWith(new SettlingVerifier(['timeout']), () => 'see linkerd diagnostics policy')
    await linkerd.engine.load()
    const b = await linkerd.engine.rollout([{ weight: 10 }], 0)
    assert.match(b.steps.at(-1)?.reasons[0] ?? '', /not judged \(see linkerd diagnostics policy\)/)
  })

  it('failing probes: the step is judged on them', async () => {
    const v = new SettlingVerifier(['failing'])
    const t = engineWith(v)
    await t.engine.load()
    const out = await t.engine.rollout([{ weight: 10 }], 0)
    assert.equal(out.result, 'paused')
    assert.deepEqual(v.verified, [0, 10])
    assert.ok(t.log.some((l) => l.startsWith('Not settled at 10 %, the probes fail: scripted failing; judging')))
  })

  it('a verifier that cannot attribute answers: said once, steps judged after their pause', async () => {
    const plain: Verifier = {
      kind: 'smoke',
      describe: () => 'plain',
      verify: async () => ({ kind: 'smoke', verdict: 'pass', reasons: [], summary: 'pass', evidence: {} }),
    }
    const t = engineWith(plain)
    await t.engine.load()
    const out = await t.engine.rollout([{ weight: 10 }, { weight: 100 }], 0)
    assert.equal(out.result, 'promoted')
    assert.equal(t.log.filter((l) => l.includes("cannot be confirmed without 'version-pattern'")).length, 1)
  })
})
