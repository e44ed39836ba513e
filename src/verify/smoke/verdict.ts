// Pass/fail of one step's smoke test, calibrated: each step is compared with the smoke test of the route before
// the rollout (the baseline), with exact tests whose levels add up to a bound on rolling back a healthy canary over
// the whole rollout; `success-threshold` stays an absolute floor. README "How a step is judged without telemetry".
import type { SmokeResult, VersionStats } from './smoke.js'
import { binomialUpperTail, fisherGreaterPValue, pct, weightShareCheck } from './stats.js'

/** Bound on the chance that the smoke verdict rolls back a healthy canary over one rollout (all steps together). */
export const SMOKE_ROLLOUT_ALPHA = 0.01

/**
 * The same bound when the mesh's telemetry judges the step too (SPEC 6: the smoke test stays as the reachability
 * gate): the telemetry test spends `analysis-alpha`, and the smoke test's own tests only a tenth of 1 %, so the
 * two together roll back a healthy canary in at most `analysis-alpha` + 0.1 % of rollouts.
 */
export const SMOKE_GATE_ALPHA = 0.001

/**
 * Fewest responses of a version (or of the whole step) on which its latency and its own success rate are judged.
 * Below 20, the nearest-rank p95 is the slowest single request (ceil(0.95 n) = n for n < 20), so one slow or failed
 * answer would decide; from 20 on the p95 is the 19th of 20 and the latency test below can reject.
 */
export const MIN_JUDGED_SAMPLES = 20

/**
 * The baseline check (the route before the first change) sends this many times `smoke-requests`: every step is
 * compared with it, and its size bounds how small a difference the comparison can see (with as many requests as a
 * step, 10 failures against none is only p = 2^-10). It costs no user traffic risk: nothing has changed yet.
 */
export const BASELINE_FACTOR = 2

/** The share of requests a p95 bound allows to be slower than it. */
const P95_TAIL = 0.05

export interface VerdictInput {
  result: SmokeResult
  /** Absolute floor on the success rate, 0..1 (`success-threshold`), whatever the baseline. */
  threshold: number
  maxLatencyMs?: number
  /** Canary weight (percent) in force during the test. */
  canaryWeight: number
  /** Version strings that mean canary, e.g. ['v3'] (subset name and its version label). */
  canaryVersions: string[]
  stableVersions: string[]
  /** versionPattern set and the route split is stable+canary only. */
  checkShares: boolean
  /** The smoke test of the route before the run's first change; undefined: only the absolute rules apply. */
  baseline?: SmokeResult
  /** Level of each statistical test of this step (stepAlpha); default: the rollout's bound over 4 steps, 3 tests. */
  alpha?: number
}

export interface Verdict {
  pass: boolean
  /** Each failed criterion, human readable with numbers. */
  reasons: string[]
}

/**
 * How many statistical tests a step runs, for the Bonferroni split of SMOKE_ROLLOUT_ALPHA: failures against the
 * baseline; with a version pattern also the canary's own failures against the baseline and the served shares; with
 * max-latency the share of slow requests (overall, and the canary's with a version pattern).
 */
export function testsPerStep(o: { versionPattern: boolean; maxLatency: boolean }): number {
  return 1 + (o.versionPattern ? 2 : 0) + (o.maxLatency ? (o.versionPattern ? 2 : 1) : 0)
}

/**
 * The level of each test of a step: the rollout's bound split evenly over its steps and each step's tests. By the
 * union bound a healthy canary then fails some test of some step with probability at most `rolloutAlpha`, whatever
 * stable's own error rate is (each test is exact for any common rate).
 */
export function stepAlpha(steps: number, tests: number, rolloutAlpha = SMOKE_ROLLOUT_ALPHA): number {
  return rolloutAlpha / (Math.max(1, steps) * Math.max(1, tests))
}

function formatP(p: number): string {
  if (p === 0) return '0'
  return p >= 0.001 ? p.toFixed(4) : p.toExponential(2)
}

const reasonsText = (failures: VersionStats['failures'] | SmokeResult['failures'] | undefined): string =>
  failures && failures.length > 0 ? ` (${failures.map((f) => `${f.reason} ×${f.count}`).join(', ')})` : ''

export function judge(v: VerdictInput): Verdict {
  const { result: r, threshold, baseline } = v
  const alpha = v.alpha ?? stepAlpha(4, 3)
  const reasons: string[] = []
  const failed = r.requests - r.successes

  if (r.requests === 0) reasons.push('no smoke request was made')
  else if (r.successes === 0) reasons.push(`no request succeeded (0/${r.requests})${reasonsText(r.failures)}`)
  else if (r.successRate < threshold) {
    reasons.push(
      `success rate ${pct(r.successRate)} (${r.successes}/${r.requests}) below the floor success-threshold ` +
        `${pct(threshold)}${reasonsText(r.failures)}`,
    )
  }

  // Relative to the baseline: more failures than the route had before the rollout, conclusively.
  if (baseline && baseline.requests > 0 && r.requests > 0 && r.successes > 0) {
    const baseFailed = baseline.requests - baseline.successes
    const p = fisherGreaterPValue(failed, r.requests, baseFailed, baseline.requests)
    if (p < alpha) {
      reasons.push(
        `${failed}/${r.requests} requests failed (${pct(failed / r.requests)}) against ${baseFailed}/` +
          `${baseline.requests} (${pct(baseFailed / baseline.requests)}) before the rollout: more than the baseline ` +
          `explains (one-sided Fisher exact p=${formatP(p)} < ${formatP(alpha)})${reasonsText(r.failures)}`,
      )
    }
  }

  const canarySet = new Set(v.canaryVersions)
  const canary = Object.entries(r.byVersion).filter(([version]) => canarySet.has(version))
  const canaryServed = canary.reduce((sum, [, s]) => sum + s.requests, 0)
  const canaryOk = canary.reduce((sum, [, s]) => sum + s.successes, 0)
  const canaryFailures = canary.flatMap(([, s]) => s.failures ?? [])
  const attributed = Object.values(r.byVersion).reduce((sum, s) => sum + s.requests, 0)
  const canaryLabel = v.canaryVersions.join('/') || 'canary'

  // The canary's own answers, where they name it: under the floor (on enough of them), or more failures than the
  // baseline explains.
  const canaryFailed = canaryServed - canaryOk
  if (canaryServed >= MIN_JUDGED_SAMPLES && canaryOk / canaryServed < threshold) {
    reasons.push(
      `canary (${canaryLabel}) success rate ${pct(canaryOk / canaryServed)} (${canaryOk}/${canaryServed}) ` +
        `below the floor success-threshold ${pct(threshold)}${reasonsText(canaryFailures)}`,
    )
  } else if (baseline && baseline.requests > 0 && canaryFailed > 0) {
    const baseFailed = baseline.requests - baseline.successes
    const p = fisherGreaterPValue(canaryFailed, canaryServed, baseFailed, baseline.requests)
    if (p < alpha) {
      const what =
        canaryOk === 0
          ? `answered errors: none of the ${canaryServed} responses naming it passed`
          : `failed ${canaryFailed}/${canaryServed} of the responses naming it`
      reasons.push(
        `canary (${canaryLabel}) ${what}, against ${baseFailed}/${baseline.requests} failures before the rollout ` +
          `(one-sided Fisher exact p=${formatP(p)} < ${formatP(alpha)})${reasonsText(canaryFailures)}`,
      )
    }
  }

  if (v.checkShares && attributed > 0) {
    const share = weightShareCheck(canaryServed, attributed, v.canaryWeight, alpha)
    if (!share.ok) {
      const silent = r.unattributedFailures ?? 0
      if (canaryServed === 0 && v.canaryWeight > 0 && silent > 0) {
        // Its answers fail without naming a version (an error page names no pod): the failures stand where the
        // canary's answers should be. Fewer than its weight would send it: a retry elsewhere answered for the rest
        // (BookInfo's productpage calls reviews a second time before it renders its error block).
        const expected = Math.round((r.requests * v.canaryWeight) / 100)
        const hidden =
          2 * silent < expected ? "; a retry elsewhere, as BookInfo's productpage makes, hides the rest" : ''
        reasons.push(
          `canary (${canaryLabel}) answers errors: it is named in none of the ${attributed} attributed responses at ` +
            `weight ${v.canaryWeight} % (binomial p=${formatP(share.pValue)} < ${formatP(alpha)}), while ${silent} ` +
            `response(s) failed naming no version (the weight would send it about ${expected})${hidden}` +
            reasonsText(r.failures),
        )
      } else if (canaryServed === 0 && v.canaryWeight > 0) {
        reasons.push(
          `canary (${canaryLabel}) served none of ${attributed} attributed responses at weight ${v.canaryWeight} % ` +
            `(binomial p=${formatP(share.pValue)} < ${formatP(alpha)}) and no response failed: is the canary ` +
            "reachable through the route, and does it answer? (an application that retries a failed call elsewhere, as BookInfo's productpage does, hides a canary's errors)",
        )
      } else {
        const named = silent > 0 ? `; ${silent} failed response(s) named no version` : ''
        reasons.push(`served shares do not follow the weights: ${share.message}${named}`)
      }
    }
  }

  // With a stable+canary split, a version that is neither is traffic the weights do not account for.
  if (v.checkShares && v.stableVersions.length > 0 && v.canaryVersions.length > 0) {
    const known = new Set([...v.canaryVersions, ...v.stableVersions])
    const strays = Object.entries(r.byVersion).filter(([version]) => !known.has(version))
    if (strays.length > 0) {
      const list = strays.map(([version, s]) => `${version} (${s.requests})`).join(', ')
      reasons.push(
        `responses from versions that are neither stable (${v.stableVersions.join('/')}) ` +
          `nor canary (${canaryLabel}): ${list}`,
      )
    }
  }

  // Latency: "p95 above max-latency" is judged as "more than 5 % of the requests slower than max-latency,
  // conclusively" (exact one-sided binomial test), and only on MIN_JUDGED_SAMPLES responses or more.
  if (v.maxLatencyMs !== undefined) {
    const max = v.maxLatencyMs
    const slowTest = (slow: number | undefined, n: number): number | undefined =>
      slow === undefined || n < MIN_JUDGED_SAMPLES ? undefined : binomialUpperTail(slow, n, P95_TAIL)
    const all = slowTest(r.slow, r.requests)
    if (all !== undefined && all < alpha) {
      reasons.push(
        `p95 latency ${r.p95Ms} ms above max-latency ${max} ms: ${r.slow}/${r.requests} requests slower ` +
          `(more than ${pct(P95_TAIL)}: binomial p=${formatP(all)} < ${formatP(alpha)})`,
      )
    }
    for (const [version, s] of canary) {
      const p = slowTest(s.slow, s.requests)
      if (p !== undefined && p < alpha) {
        reasons.push(
          `canary (${version}) p95 latency ${s.p95Ms} ms above max-latency ${max} ms: ${s.slow}/${s.requests} ` +
            `of its responses slower (binomial p=${formatP(p)} < ${formatP(alpha)})`,
        )
      }
    }
  }

  return { pass: reasons.length === 0, reasons }
}
