// The smoke verdict's figures for `npm run bench` (issue 10): Monte Carlo over the verdict code itself, for
//   - 'old smoke': the absolute success-threshold as it was on main (frozen in ./old-smoke-verdict.ts), with its
//     defaults then: 20 requests a step, success-threshold 0.95;
//   - 'calibrated smoke': the action's judge() (src/verify/smoke/verdict.ts) with today's defaults (inputs.ts):
//     each step compared with the baseline smoke test, tests at stepAlpha(steps, tests).
// Both with version-pattern set (BookInfo's "Reviews served by"), no max-latency, default steps, as the engine runs
// them: a baseline check of the route before the first change (weight 0), then one check per step.
//
// How a smoke request is drawn, as the simulation's productpage answers it (__tests__/sim/mesh/mesh.ts, productpage):
// each call to reviews goes to the canary with the step's weight w and fails with that version's error rate.
//   - method 'monte carlo, page 500': the page fails with the call (HTTP 500, naming no version), as the
//     simulation's default reviewsErrors 'status'; a passing page names the version that served it.
//   - method 'monte carlo, BookInfo retry': as the real productpage.py (sim: reviewsErrors 'bookinfo'), a failed
//     call is made once more (routed afresh), and when both fail the page is 200 with an error block naming no
//     version (which the verdict counts as failed). With f = w e_c + (1-w) e_s the chance a call fails:
//     P(page names canary) = w (1-e_c)(1+f), P(names stable) = (1-w)(1-e_s)(1+f), P(error page) = f^2.
// A step's smoke test is then a multinomial draw of (canary passed, stable passed, failed unnamed) over its
// requests, turned into the SmokeResult the real code builds, and judged by the verdict code. Verdicts are memoised
// on those counts (the verdict depends on nothing else here), so the draws, not the verdicts, bound the run time.
//
// The time and cost columns come from the pause schedule, not from drawing: a step lasts its pause (PAUSE_S) plus
// its smoke test (requests / concurrency x SMOKE_REQUEST_S); a rollout rolled back at step i took the sum of steps
// 1..i (the revert itself is one write, neglected). Failed user requests before the revert are the expected user
// requests, at each of RATES, that failed because they reached the canary, summed over steps 1..i: page 500:
// rate x duration x w x e_c; BookInfo retry: rate x duration x (f^2 - ((1-w) e_s)^2), the error pages at least one
// of whose two calls the canary answered. Both are averaged over the rolled-back rollouts.
//
// Draws: ROLLOUTS per scenario and method; the standard error of a probability p is sqrt(p (1-p) / ROLLOUTS):
// 0.05 % at p = 1 %, 0.25 % at 50 % with 40 000 draws. Seeded (../../support/prng.ts): the same figures every run.
import { prng } from '../../support/prng.js'
import type { SmokeResult } from '../../../src/verify/smoke/smoke.js'
import { BASELINE_FACTOR, judge, stepAlpha, testsPerStep } from '../../../src/verify/smoke/verdict.js'
import { judge as oldJudge } from './old-smoke-verdict.js'
import {
  DEFAULT_STEPS,
  type ExtraFigures,
  PAUSE_S,
  RATES,
  SCENARIOS,
  type Scenario,
  type VerdictFigures,
} from './verdicts.js'

export const ROLLOUTS = 40_000
/** A productpage request's duration through the gateway, for the smoke test's share of a step. */
const SMOKE_REQUEST_S = 0.03
const CONCURRENCY = 4
const CANARY = 'v3'
const STABLE = 'v1'

type Model = 'page 500' | 'BookInfo retry'

interface Verdict {
  name: string
  requests: number
  /** Requests of the baseline check before the first change. */
  baselineRequests: number
  judge: (result: SmokeResult, weight: number, baseline: SmokeResult | undefined) => boolean
}

const VERDICTS: Verdict[] = [
  {
    name: 'old smoke',
    requests: 20,
    baselineRequests: 20,
    judge: (result, weight) =>
      oldJudge({
        result,
        threshold: 0.95,
        canaryWeight: weight,
        canaryVersions: [CANARY],
        stableVersions: [STABLE],
        checkShares: true,
      }).pass,
  },
  {
    name: 'calibrated smoke',
    requests: 200,
    baselineRequests: 200 * BASELINE_FACTOR,
    judge: (result, weight, baseline) =>
      judge({
        result,
        threshold: 0.9,
        canaryWeight: weight,
        canaryVersions: [CANARY],
        stableVersions: [STABLE],
        checkShares: true,
        alpha: stepAlpha(DEFAULT_STEPS.length, testsPerStep({ versionPattern: true, maxLatency: false })),
        ...(baseline ? { baseline } : {}),
      }).pass,
  },
]

/** Probabilities of (page names canary, names stable, fails naming no version) for one smoke request. */
function categories(model: Model, w: number, s: Scenario): [number, number, number] {
  const ec = s.canaryErrorRate
  const es = s.stableErrorRate
  if (model === 'page 500') return [w * (1 - ec), (1 - w) * (1 - es), w * ec + (1 - w) * es]
  const f = w * ec + (1 - w) * es
  return [w * (1 - ec) * (1 + f), (1 - w) * (1 - es) * (1 + f), f * f]
}

/** Cumulative binomial tables, cached per (n, p): a draw is one uniform and a binary search. */
const cdfs = new Map<string, Float64Array>()
function binomialDraw(n: number, p: number, u: number): number {
  if (p <= 0 || n === 0) return 0
  if (p >= 1) return n
  const key = `${n}|${p}`
  let cdf = cdfs.get(key)
  if (!cdf) {
    cdf = new Float64Array(n + 1)
    // pmf by recurrence from k = 0, in log space for the first term
    let logPmf = n * Math.log1p(-p)
    let acc = 0
    for (let k = 0; k <= n; k++) {
      acc += Math.exp(logPmf)
      cdf[k] = acc
      logPmf += Math.log((n - k) / (k + 1)) + Math.log(p / (1 - p))
    }
    cdfs.set(key, cdf)
  }
  let lo = 0
  let hi = n
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((cdf[mid] as number) < u) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** The SmokeResult the real summarize() gives for these counts (latencies are not modelled). */
function resultOf(canaryOk: number, stableOk: number, failed: number, model: Model): SmokeResult {
  const requests = canaryOk + stableOk + failed
  const byVersion: SmokeResult['byVersion'] = {}
  if (stableOk > 0) byVersion[STABLE] = { requests: stableOk, successes: stableOk, p50Ms: 20, p95Ms: 30 }
  if (canaryOk > 0) byVersion[CANARY] = { requests: canaryOk, successes: canaryOk, p50Ms: 20, p95Ms: 30 }
  const reason = model === 'page 500' ? 'HTTP 500' : 'no version matching /reviews-(v[0-9]+)/ in the response'
  return {
    requests,
    successes: canaryOk + stableOk,
    successRate: requests > 0 ? (canaryOk + stableOk) / requests : 0,
    p50Ms: 20,
    p95Ms: 30,
    byVersion,
    unattributed: failed,
    unattributedFailures: failed,
    failures: failed > 0 ? [{ reason, count: failed }] : [],
  }
}

function figuresFor(verdict: Verdict, model: Model, scenario: Scenario, seed: number): VerdictFigures & ExtraFigures {
  const random = prng(seed)
  const n = verdict.requests
  const memo = new Map<string, boolean>()
  const draw = (weight: number, n = verdict.requests): [number, number, number] => {
    const [pc, ps] = categories(model, weight / 100, scenario)
    const ok = binomialDraw(n, pc + ps, random())
    const canaryOk = binomialDraw(ok, pc + ps > 0 ? pc / (pc + ps) : 0, random())
    return [canaryOk, ok - canaryOk, n - ok]
  }
  const judged = (counts: [number, number, number], weight: number, base: [number, number, number] | undefined) => {
    const key = `${weight}|${counts.join(',')}|${base?.join(',') ?? '-'}`
    let pass = memo.get(key)
    if (pass === undefined) {
      const baseline = base ? resultOf(...base, model) : undefined
      pass = verdict.judge(resultOf(...counts, model), weight, baseline)
      memo.set(key, pass)
    }
    return pass
  }
  const rolledBackAt = new Array<number>(DEFAULT_STEPS.length).fill(0)
  let stopped = 0
  let promoted = 0
  for (let i = 0; i < ROLLOUTS; i++) {
    const base = draw(0, verdict.baselineRequests)
    if (!judged(base, 0, undefined)) {
      stopped++
      continue
    }
    const failedAt = DEFAULT_STEPS.findIndex((w) => !judged(draw(w), w, base))
    if (failedAt < 0) promoted++
    else rolledBackAt[failedAt] = (rolledBackAt[failedAt] as number) + 1
  }
  const stepS = PAUSE_S + (n / CONCURRENCY) * SMOKE_REQUEST_S
  const byRate: VerdictFigures['byRate'] = {}
  for (const rate of RATES) {
    let time = 0
    let failed = 0
    let cost = 0
    let spent = 0
    DEFAULT_STEPS.forEach((w, i) => {
      spent += stepS
      const [, , pf] = categories(model, w / 100, scenario)
      const stableOnly = model === 'page 500' ? 0 : ((1 - w / 100) * scenario.stableErrorRate) ** 2
      cost +=
        rate * stepS * (model === 'page 500' ? (w / 100) * scenario.canaryErrorRate : Math.max(0, pf - stableOnly))
      const count = rolledBackAt[i] as number
      time += count * spent
      failed += count * cost
    })
    const total = rolledBackAt.reduce((a, b) => a + b, 0)
    byRate[rate] = {
      meanTimeToRollbackS: total > 0 ? time / total : Number.NaN,
      failedUserRequests: total > 0 ? failed / total : Number.NaN,
    }
  }
  return {
    verdict: verdict.name,
    method: `monte carlo, ${model}`,
    scenario,
    rollouts: ROLLOUTS,
    pRollbackByStep: rolledBackAt.map((c) => c / ROLLOUTS),
    pPromoted: promoted / ROLLOUTS,
    pStoppedBeforeChange: stopped / ROLLOUTS,
    byRate,
  }
}

/** Both smoke verdicts, both productpage models, every scenario. */
export function smokeFigures(): VerdictFigures[] {
  const out: VerdictFigures[] = []
  SCENARIOS.forEach((scenario, i) => {
    for (const model of ['page 500', 'BookInfo retry'] as const) {
      for (const verdict of VERDICTS) out.push(figuresFor(verdict, model, scenario, 1000 + i))
    }
  })
  return out
}
