// The sequential canary-vs-stable test of error counts, evaluated at every scrape. Pure.
//
// Method: a mixture sequential probability ratio test (an always-valid test) on the conditional binomial split of
// errors. Between two scrapes, given that E new errors happened while the canary served n_c and stable n_s
// requests, under H0 (canary errs at the same rate as stable) each error is the canary's with probability
// pi = n_c / (n_c + n_s), whatever the common rate is and however it moves from one scrape to the next (a global
// outage changes the rate, not the split); under H1(R) (canary R times stable's rate) with
// pi_R = R pi / (R pi + 1 - pi). The likelihood ratio of the splits seen so far, averaged over a few R with fixed
// weights (a mixture of likelihood ratios), is a non-negative martingale under H0, so by Ville's inequality
// P_H0(it EVER reaches 1/alpha) <= alpha, however often it is looked at and however the weights change
// (Wald 1945, "Sequential tests of statistical hypotheses"; Robbins 1970, "Statistical methods related to the law
// of the iterated logarithm"; Johari, Pekelis, Walsh 2017, "Always valid inference"). With Bernoulli requests
// (not Poisson) the exact H0 split is hypergeometric; it is smaller than the binomial in the convex order
// (Hoeffding 1963, "Probability inequalities for sums of bounded random variables", Theorem 4) and the likelihood
// ratio is convex in the canary's errors, so it stays a supermartingale and the bound holds.
//
// Why this mixture (the time to rollback target, issue 10): the statistic must climb ln(1/alpha') and every
// component's share of the mixture costs ln(1/weight) more. The evidence is scarce: a 5 % canary at 10 % of
// 10 req/s against a 0.5 % stable makes ~0.095 errors/s, ~0.57 nats each for R = 10, ~0.054 nats/s, so each nat
// is ~18 s of rollout. The old mixture (R = 1.5, 2, 3, 5, 10, 20, equal weights) paid ln 6 = 1.8 nats (~33 s) for
// its R = 10 component, and spent only alpha/2 on this test (ln 2 = 0.7 nats, ~13 s). Ratios under 3 cannot be
// told from noise on a step's few errors anyway, so 1.5x and 2x were weight spent for nothing. Now: R = 10 (the
// 5 %-vs-0.5 % case) has half the weight, R = 4 (a 2 % canary) and R = 100 (a canary failing everything: at 10 %
// weight each of its errors is worth ln(1/pi) ~ 2.2 nats, so a few errors reject it) a quarter each; and 90 % of
// alpha goes to this test, the one that can reject at steps below 100 %.
//
// How alpha is spent over the rollout: ONE martingale runs through all the steps of a rollout (state is carried
// from step to step, not reset), so Ville's bound holds for the whole rollout, not per step; no split across steps
// is needed. alpha is split only between what can roll back a healthy canary (a union bound): the two-sample test
// above gets `twoSampleShare` (0.9) of it; the rest is split evenly between the upper confidence sequence of
// stable's rate, the one-sample test against it, and (when set) the one-sample test against `max-error-rate`.
//
// At 100 % (no stable traffic) the two-sample test gets no information (pi = 1). The canary is then tested alone,
// with a mixture SPRT on its Bernoulli errors, against p0 = a time-uniform upper confidence bound of stable's rate
// over the rollout so far: the beta-binomial mixture confidence sequence (Robbins 1970; Howard, Ramdas, McAuliffe,
// Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences", section on conjugate mixtures):
// for the true rate p, M_n(p) = integral of prod_i q^x_i (1-q)^(1-x_i) dBeta(q; a, b) / prod_i p^x_i (1-p)^(1-x_i)
// is a non-negative martingale, so P(ever M_n(p) >= 1/alpha_cs) <= alpha_cs and the bound
// sup { p : M_n(p) < 1/alpha_cs } is below the true rate at ANY time with probability at most alpha_cs (a point
// bound, re-computed as stable's counts grow, is not: looked at every scrape it fails far more often than its
// level). On the event that it holds, for a canary as good as stable (true rate <= p0) the one-sample likelihood
// ratio is a supermartingale, so P(false rollback by this route) <= alpha_cs + alpha_1.

export interface Counts {
  canaryRequests: number
  canaryErrors: number
  stableRequests: number
  stableErrors: number
}

/** One alternative of a mixture: the canary errs `ratio` times stable's rate; `weight`: its share (they sum to 1). */
export interface MixtureComponent {
  ratio: number
  weight: number
}

export interface SequentialOptions {
  /** Bound on rolling back a healthy canary over the whole rollout (analysis-alpha). Default 0.01. */
  alpha?: number
  /** Requests the canary must have served in the step before it can pass (min-canary-requests). Default 100. */
  minCanaryRequests?: number
  /** Absolute bound on the canary's error rate (max-error-rate), 0..1. */
  maxErrorRate?: number
  /**
   * Stable is "unhealthy" when its error rate in the step is at least this (default: the lower of 5 % and
   * maxErrorRate).
   */
  stableUnhealthyRate?: number
  /** Error-rate ratios of the one-sample tests, equal weights; given, also the two-sample test's (equal weights). */
  ratios?: number[]
  /** The two-sample test's mixture. Default DEFAULT_MIXTURE (ignored when `ratios` is given). */
  mixture?: MixtureComponent[]
  /** Share of alpha spent on the two-sample (canary-vs-stable) test, 0..1. Default 0.9. */
  twoSampleShare?: number
}

export interface SequentialState {
  /** log of the two-sample mixture likelihood ratio's components, one per mixture component. */
  logLr2: number[]
  /** log of the one-sample (vs stable's earlier rate) components. */
  logLrBase: number[]
  /** log of the one-sample (vs max-error-rate) components. */
  logLrMax: number[]
  /** Totals over the whole rollout. */
  total: Counts
  /** Totals in the current step. */
  step: Counts
}

export type Decision = 'continue' | 'reject' | 'accept' | 'stable-unhealthy' | 'inconclusive'

export interface Evaluation {
  decision: Decision
  /** log mixture likelihood ratio of the test deciding (the largest one); reject when >= threshold. */
  statistic: number
  /** log(1 / alpha share) of that test. */
  threshold: number
  /** Which test the statistic is from. */
  test: 'canary-vs-stable' | 'canary-vs-earlier-stable' | 'canary-vs-max-error-rate'
  reason: string
  counts: Counts
}

/** The two-sample mixture (see the header for why these ratios and weights). */
export const DEFAULT_MIXTURE: readonly MixtureComponent[] = [
  { ratio: 4, weight: 0.25 },
  { ratio: 10, weight: 0.5 },
  { ratio: 100, weight: 0.25 },
]
/** The one-sample tests' ratios (equal weights): p0 there is already an upper bound, so smaller ratios matter. */
const ONE_SAMPLE_RATIOS = [1.5, 2, 3, 5, 10, 20]
const DEFAULT_TWO_SAMPLE_SHARE = 0.9
/**
 * Prior of stable's rate in its confidence sequence: Beta(1, 99), mean 1 %. Any prior gives a valid bound; this
 * one makes it tight for the error rates a production stable has (0.1-2 %), and only looser for worse ones.
 */
const STABLE_PRIOR = { a: 1, b: 99 }

/** What a rejecting test found, for the reason of the decision. */
const REJECTED_BECAUSE: Record<Evaluation['test'], string> = {
  'canary-vs-stable': 'the canary errs more than stable',
  'canary-vs-earlier-stable': 'the canary errs more than stable did earlier in the rollout',
  'canary-vs-max-error-rate': 'the canary errs more than max-error-rate',
}
const ZERO: Counts = { canaryRequests: 0, canaryErrors: 0, stableRequests: 0, stableErrors: 0 }

const equalWeights = (ratios: number[]): MixtureComponent[] =>
  ratios.map((ratio) => ({ ratio, weight: 1 / ratios.length }))
const twoSampleMixture = (opts: SequentialOptions): readonly MixtureComponent[] =>
  opts.ratios ? equalWeights(opts.ratios) : (opts.mixture ?? DEFAULT_MIXTURE)
const oneSampleMixture = (opts: SequentialOptions): MixtureComponent[] => equalWeights(opts.ratios ?? ONE_SAMPLE_RATIOS)

/** The alpha shares: the two-sample test; the confidence sequence and each one-sample test (split evenly). */
export function alphaShares(opts: SequentialOptions = {}): {
  twoSample: number
  confidence: number
  oneSample: number
} {
  const alpha = opts.alpha ?? 0.01
  const share = opts.twoSampleShare ?? DEFAULT_TWO_SAMPLE_SHARE
  const parts = opts.maxErrorRate !== undefined ? 3 : 2
  const rest = ((1 - share) * alpha) / parts
  return { twoSample: share * alpha, confidence: rest, oneSample: rest }
}

export function initialState(opts: SequentialOptions = {}): SequentialState {
  const two = twoSampleMixture(opts).length
  const one = oneSampleMixture(opts).length
  return {
    logLr2: Array(two).fill(0),
    logLrBase: Array(one).fill(0),
    logLrMax: Array(one).fill(0),
    total: { ...ZERO },
    step: { ...ZERO },
  }
}

/** A new step: the rollout-wide martingale carries on, the step's own counts restart. */
export function startStep(state: SequentialState): SequentialState {
  return { ...state, step: { ...ZERO } }
}

/** log of sum_k w_k exp(x_k): the log of a weighted mixture of likelihood ratios. */
const logMixture = (xs: number[], mixture: readonly MixtureComponent[]): number => {
  const m = Math.max(...xs)
  if (!Number.isFinite(m)) return m
  return m + Math.log(xs.reduce((a, x, k) => a + (mixture[k]?.weight ?? 0) * Math.exp(x - m), 0))
}

const add = (a: Counts, b: Counts): Counts => ({
  canaryRequests: a.canaryRequests + b.canaryRequests,
  canaryErrors: a.canaryErrors + b.canaryErrors,
  stableRequests: a.stableRequests + b.stableRequests,
  stableErrors: a.stableErrors + b.stableErrors,
})

/** P(X <= k) for X ~ Binomial(n, p), summed in log space (k <= n, a step's error counts). */
export function binomialCdf(k: number, n: number, p: number): number {
  if (k >= n || p <= 0) return 1
  if (p >= 1) return 0
  const logN = logGamma(n + 1)
  const [logP, logQ] = [Math.log(p), Math.log(1 - p)]
  let sum = 0
  // Bounded: k + 1 terms.
  for (let i = 0; i <= k; i++) sum += Math.exp(logN - logGamma(i + 1) - logGamma(n - i + 1) + i * logP + (n - i) * logQ)
  return Math.min(1, sum)
}

/** How unlikely the canary's share of the step's errors must be, were it as bad as stable, to count as spared. */
const SPARED_P = 0.01

/**
 * The canary errs clearly less than stable in the step: given the step's errors, under "as bad as stable" the
 * canary's count is Binomial(errors, its share of the requests); so few that P(at most that many) <= SPARED_P.
 */
export function canaryClearlyBetter(step: Counts): boolean {
  const errors = step.canaryErrors + step.stableErrors
  const requests = step.canaryRequests + step.stableRequests
  if (errors === 0 || step.canaryRequests === 0 || requests === 0) return false
  return binomialCdf(step.canaryErrors, errors, step.canaryRequests / requests) <= SPARED_P
}

/** ln Gamma(x), x > 0: Stirling's series past 8 (error < 1e-10), the recurrence Gamma(x + 1) = x Gamma(x) below. */
export function logGamma(x: number): number {
  let shift = 0
  let y = x
  while (y < 8) {
    shift += Math.log(y)
    y += 1
  }
  const inv = 1 / y
  const inv2 = inv * inv
  const series = inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)))
  return (y - 0.5) * Math.log(y) - y + 0.5 * Math.log(2 * Math.PI) + series - shift
}

const logBeta = (a: number, b: number): number => logGamma(a) + logGamma(b) - logGamma(a + b)

/**
 * log M_n(p) of the beta-binomial mixture martingale for `errors` in `requests` (see the header): the
 * Beta(a, b)-averaged likelihood of the errors over their likelihood at rate p.
 */
export function logBetaBinomialMixture(errors: number, requests: number, p: number, prior = STABLE_PRIOR): number {
  const failed = errors > 0 ? errors * Math.log(p) : 0
  const served = requests - errors > 0 ? (requests - errors) * Math.log(1 - p) : 0
  return logBeta(prior.a + errors, prior.b + requests - errors) - logBeta(prior.a, prior.b) - failed - served
}

/**
 * A time-uniform upper confidence bound of a rate from `errors` in `requests`: the largest p the beta-binomial
 * mixture confidence sequence at level `alpha` keeps (header). P(the true rate is above it at any time) <= alpha.
 */
export function upperRate(errors: number, requests: number, alpha: number): number {
  if (requests <= 0 || errors >= requests) return 1
  const threshold = Math.log(1 / alpha)
  // log M_n(p) rises with p above the observed rate e/n (where the likelihood is largest), to +Infinity at p = 1.
  let lo = errors / requests
  let hi = 1
  if (logBetaBinomialMixture(errors, requests, lo) >= threshold) return lo
  // Bounded: 60 halvings take the bracket below 1e-18.
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2
    if (logBetaBinomialMixture(errors, requests, mid) < threshold) lo = mid
    else hi = mid
  }
  return lo
}

/**
 * Folds in the requests and errors served since the previous scrape (differences of the counters; negative
 * differences — a counter reset — must be handled by the caller, e.g. by treating the new value as the increase).
 * `inStep` false: the interval straddles the step's start (some of it was served at the previous weight). It is
 * evidence for the rollout-wide test (the split of its errors is still H0's, whatever the weights within it) but
 * not the step's: the step's counts (min-canary-requests, stable-unhealthy, the report) are its own traffic only.
 */
export function observe(
  state: SequentialState,
  delta: Counts,
  opts: SequentialOptions = {},
  inStep = true,
): SequentialState {
  const mixture = twoSampleMixture(opts)
  const oneSample = oneSampleMixture(opts)
  const clean = (x: number): number => (Number.isFinite(x) && x > 0 ? x : 0)
  const inc: Counts = {
    canaryRequests: clean(delta.canaryRequests),
    canaryErrors: Math.min(clean(delta.canaryErrors), clean(delta.canaryRequests)),
    stableRequests: clean(delta.stableRequests),
    stableErrors: Math.min(clean(delta.stableErrors), clean(delta.stableRequests)),
  }
  const logLr2 = [...state.logLr2]
  const requests = inc.canaryRequests + inc.stableRequests
  const errors = inc.canaryErrors + inc.stableErrors
  if (requests > 0 && errors > 0 && inc.stableRequests > 0 && inc.canaryRequests > 0) {
    const pi = inc.canaryRequests / requests
    mixture.forEach(({ ratio }, component) => {
      const piR = (ratio * pi) / (ratio * pi + 1 - pi)
      logLr2[component] =
        (logLr2[component] ?? 0) +
        inc.canaryErrors * Math.log(piR / pi) +
        inc.stableErrors * Math.log((1 - piR) / (1 - pi))
    })
  }
  const bern = (lr: number[], p0: number): number[] =>
    lr.map((logLr, component) => {
      const p1 = Math.min(0.999999, (oneSample[component]?.ratio ?? 1) * p0)
      if (p1 <= p0) return logLr
      return (
        logLr +
        inc.canaryErrors * Math.log(p1 / p0) +
        (inc.canaryRequests - inc.canaryErrors) * Math.log((1 - p1) / (1 - p0))
      )
    })
  // Canary alone (no stable traffic in this interval): against the time-uniform upper bound of stable's rate so
  // far (predictable: from the scrapes before this one), if stable served any.
  let logLrBase = state.logLrBase
  if (inc.stableRequests === 0 && inc.canaryRequests > 0 && state.total.stableRequests > 0) {
    const p0 = upperRate(state.total.stableErrors, state.total.stableRequests, alphaShares(opts).confidence)
    logLrBase = bern(state.logLrBase, p0)
  }
  let logLrMax = state.logLrMax
  if (opts.maxErrorRate !== undefined && opts.maxErrorRate > 0 && opts.maxErrorRate < 1 && inc.canaryRequests > 0) {
    logLrMax = bern(state.logLrMax, opts.maxErrorRate)
  }
  return { logLr2, logLrBase, logLrMax, total: add(state.total, inc), step: inStep ? add(state.step, inc) : state.step }
}

/**
 * The decision at this scrape. `pauseOver`: the step's pause has elapsed; `stepTimeUp`: max-step-time has.
 * reject: the canary errs more (conclusive). stable-unhealthy: stable fails as much as the canary does, so
 * the step fails without blaming the canary. accept: pause over, enough canary requests, not rejected.
 * inconclusive: max-step-time reached without enough evidence.
 */
export function evaluate(
  state: SequentialState,
  when: { pauseOver: boolean; stepTimeUp: boolean },
  opts: SequentialOptions = {},
): Evaluation {
  const minCanary = opts.minCanaryRequests ?? 100
  const shares = alphaShares(opts)
  const oneSampleThreshold = Math.log(1 / shares.oneSample)
  const oneSample = oneSampleMixture(opts)
  const twoSample: Pick<Evaluation, 'statistic' | 'threshold' | 'test'> = {
    test: 'canary-vs-stable',
    statistic: logMixture(state.logLr2, twoSampleMixture(opts)),
    threshold: Math.log(1 / shares.twoSample),
  }
  const tests: Array<Pick<Evaluation, 'statistic' | 'threshold' | 'test'>> = [
    twoSample,
    {
      test: 'canary-vs-earlier-stable',
      statistic: logMixture(state.logLrBase, oneSample),
      threshold: oneSampleThreshold,
    },
  ]
  if (opts.maxErrorRate !== undefined) {
    tests.push({
      test: 'canary-vs-max-error-rate',
      statistic: logMixture(state.logLrMax, oneSample),
      threshold: oneSampleThreshold,
    })
  }
  const worst = tests.reduce((a, b) => (b.statistic - b.threshold > a.statistic - a.threshold ? b : a))
  const step = state.step
  const rate = (errors: number, requests: number): string =>
    requests > 0 ? `${((100 * errors) / requests).toFixed(2)} %` : 'n/a'
  const summary =
    `canary ${step.canaryErrors}/${step.canaryRequests} errors (${rate(step.canaryErrors, step.canaryRequests)}), ` +
    `stable ${step.stableErrors}/${step.stableRequests} (${rate(step.stableErrors, step.stableRequests)}) this step`
  const out = (decision: Decision, reason: string): Evaluation => ({
    decision,
    ...worst,
    reason: `${reason}: ${summary}`,
    counts: { ...step },
  })

  const unhealthy = opts.stableUnhealthyRate ?? Math.min(0.05, opts.maxErrorRate ?? 0.05)
  // At least 10 stable errors so that a single unlucky error in a small sample does not count as an outage.
  const stableFails = step.stableErrors >= 10 && step.stableErrors / step.stableRequests >= unhealthy
  // SPEC section 6 rule 1: "a global outage that hits stable AS HARD AS THE CANARY": not when the canary's errors
  // are clearly fewer than stable's at the step's split. Then stable's trouble is its own, and the canary is
  // judged as in any step (a rollout moving users off a failing stable is no reason to roll back).
  const canarySpared = stableFails && canaryClearlyBetter(step)
  const stableUnhealthy = stableFails && !canarySpared
  // The canary is blamed only when it errs more than stable, or stable itself is healthy.
  if (worst.statistic >= worst.threshold && (!stableFails || twoSample.statistic >= twoSample.threshold)) {
    return out(
      'reject',
      `${REJECTED_BECAUSE[worst.test]} ` +
        `(log likelihood ratio ${worst.statistic.toFixed(2)} >= ${worst.threshold.toFixed(2)})`,
    )
  }
  // Stable as broken as the canary: a global outage, not the canary's fault.
  if (stableUnhealthy) {
    return out(
      'stable-unhealthy',
      `stable is unhealthy (error rate at least ${(unhealthy * 100).toFixed(1)} %), the canary is not blamed`,
    )
  }
  if (when.pauseOver && step.canaryRequests >= minCanary) {
    // max-error-rate is an absolute bound at every step (SPEC section 6): the step's own rate, not only the
    // sequential test against it (which rejects early, at a small share of alpha, only on strong evidence).
    const canaryRate = step.canaryErrors / step.canaryRequests
    if (opts.maxErrorRate !== undefined && canaryRate > opts.maxErrorRate) {
      const bound = tests.find((t) => t.test === 'canary-vs-max-error-rate') ?? worst
      return {
        decision: 'reject',
        ...bound,
        reason:
          `the canary's error rate this step, ${rate(step.canaryErrors, step.canaryRequests)}, is above ` +
          `max-error-rate ${(opts.maxErrorRate * 100).toFixed(2)} %: ${summary}`,
        counts: { ...step },
      }
    }
    const spared = canarySpared
      ? `; stable errs ${rate(step.stableErrors, step.stableRequests)} but the canary clearly less: stable's own trouble`
      : ''
    return out(
      'accept',
      `no evidence that the canary errs more, ${step.canaryRequests} >= ${minCanary} canary requests${spared}`,
    )
  }
  if (when.stepTimeUp) {
    return out(
      'inconclusive',
      `max-step-time reached with ${step.canaryRequests} of ${minCanary} canary requests needed`,
    )
  }
  return out('continue', when.pauseOver ? `waiting for ${minCanary} canary requests` : 'observing')
}
