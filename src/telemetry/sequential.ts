// The sequential canary-vs-stable test of error counts, evaluated at every scrape. Pure.
//
// Method: a mixture sequential probability ratio test (an always-valid test) on the conditional binomial
// split of errors. Between two scrapes, given that E new errors happened while the canary served n_c and
// stable n_s requests, under H0 (canary errs at the same rate as stable) each error is the canary's with
// probability pi = n_c / (n_c + n_s), whatever the common rate is; under H1(R) (canary R times stable's rate)
// with pi_R = R pi / (R pi + 1 - pi). The likelihood ratio of the splits seen so far, averaged over a grid of
// R (a mixture of likelihood ratios), is a non-negative martingale under H0, so by Ville's inequality
// P_H0(it EVER reaches 1/alpha) <= alpha, however often it is looked at and however the weights change
// (Wald 1945, "Sequential tests of statistical hypotheses"; Robbins 1970, "Statistical methods related to the
// law of the iterated logarithm"; Johari, Pekelis, Walsh 2017, "Always valid inference").
//
// How alpha is spent over the rollout: ONE martingale runs through all the steps of a rollout (state is
// carried from step to step, not reset), so Ville's bound holds for the whole rollout, not per step; no
// split across steps is needed. alpha is split only between the tests that can reject: the two-sample test
// above gets alpha/2 and the one-sample tests against a fixed rate (stable's earlier rate, when no stable
// traffic is left; `max-error-rate`) share the other alpha/2 (a union bound), so
// P(rolling back a healthy canary) <= alpha over the whole rollout.
//
// At 100 % (no stable traffic) the two-sample test gets no information (pi = 1). The canary is then tested
// alone, with the same mixture SPRT on Bernoulli errors, against p0 = an upper bound of stable's rate
// measured earlier in the run (conservative: a noisy low estimate cannot reject a healthy canary), and
// against `max-error-rate` when set. For any true rate <= p0 the one-sample likelihood ratio is a
// supermartingale, so the same bound holds.

export interface Counts {
  canaryRequests: number
  canaryErrors: number
  stableRequests: number
  stableErrors: number
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
  /** Error-rate ratios the mixture averages over. Default [1.5, 2, 3, 5, 10, 20]. */
  ratios?: number[]
}

export interface SequentialState {
  /** log of the two-sample mixture likelihood ratio's components, one per ratio. */
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

const DEFAULT_RATIOS = [1.5, 2, 3, 5, 10, 20]

/** What a rejecting test found, for the reason of the decision. */
const REJECTED_BECAUSE: Record<Evaluation['test'], string> = {
  'canary-vs-stable': 'the canary errs more than stable',
  'canary-vs-earlier-stable': 'the canary errs more than stable did earlier in the rollout',
  'canary-vs-max-error-rate': 'the canary errs more than max-error-rate',
}
const ZERO: Counts = { canaryRequests: 0, canaryErrors: 0, stableRequests: 0, stableErrors: 0 }

export function initialState(opts: SequentialOptions = {}): SequentialState {
  const components = (opts.ratios ?? DEFAULT_RATIOS).length
  return {
    logLr2: Array(components).fill(0),
    logLrBase: Array(components).fill(0),
    logLrMax: Array(components).fill(0),
    total: { ...ZERO },
    step: { ...ZERO },
  }
}

/** A new step: the rollout-wide martingale carries on, the step's own counts restart. */
export function startStep(state: SequentialState): SequentialState {
  return { ...state, step: { ...ZERO } }
}

const logMeanExp = (xs: number[]): number => {
  const m = Math.max(...xs)
  if (!Number.isFinite(m)) return m
  return m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0) / xs.length)
}

const add = (a: Counts, b: Counts): Counts => ({
  canaryRequests: a.canaryRequests + b.canaryRequests,
  canaryErrors: a.canaryErrors + b.canaryErrors,
  stableRequests: a.stableRequests + b.stableRequests,
  stableErrors: a.stableErrors + b.stableErrors,
})

/** A one-sided upper bound of a rate from e events in n trials (about 97.5 %, Poisson-style), floored. */
export function upperRate(e: number, n: number, floor = 0.001): number {
  if (n <= 0) return 1
  return Math.min(1, Math.max(floor, (e + 1 + 2 * Math.sqrt(e + 1)) / n))
}

/**
 * Folds in the requests and errors served since the previous scrape (differences of the counters; negative
 * differences — a counter reset — must be handled by the caller, e.g. by treating the new value as the increase).
 */
export function observe(state: SequentialState, delta: Counts, opts: SequentialOptions = {}): SequentialState {
  const ratios = opts.ratios ?? DEFAULT_RATIOS
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
    ratios.forEach((ratio, component) => {
      const piR = (ratio * pi) / (ratio * pi + 1 - pi)
      logLr2[component] =
        (logLr2[component] ?? 0) +
        inc.canaryErrors * Math.log(piR / pi) +
        inc.stableErrors * Math.log((1 - piR) / (1 - pi))
    })
  }
  const bern = (lr: number[], p0: number): number[] =>
    lr.map((logLr, component) => {
      const p1 = Math.min(0.999999, (ratios[component] ?? 1) * p0)
      if (p1 <= p0) return logLr
      return (
        logLr +
        inc.canaryErrors * Math.log(p1 / p0) +
        (inc.canaryRequests - inc.canaryErrors) * Math.log((1 - p1) / (1 - p0))
      )
    })
  // Canary alone (no stable traffic in this interval): against stable's earlier rate, if any was measured.
  let logLrBase = state.logLrBase
  if (inc.stableRequests === 0 && inc.canaryRequests > 0 && state.total.stableRequests > 0) {
    logLrBase = bern(state.logLrBase, upperRate(state.total.stableErrors, state.total.stableRequests))
  }
  let logLrMax = state.logLrMax
  if (opts.maxErrorRate !== undefined && opts.maxErrorRate > 0 && opts.maxErrorRate < 1 && inc.canaryRequests > 0) {
    logLrMax = bern(state.logLrMax, opts.maxErrorRate)
  }
  return { logLr2, logLrBase, logLrMax, total: add(state.total, inc), step: add(state.step, inc) }
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
  const alpha = opts.alpha ?? 0.01
  const minCanary = opts.minCanaryRequests ?? 100
  const oneSample = opts.maxErrorRate !== undefined ? 2 : 1
  const twoSampleThreshold = Math.log(2 / alpha)
  const oneSampleThreshold = Math.log((2 * oneSample) / alpha)
  const twoSample: Pick<Evaluation, 'statistic' | 'threshold' | 'test'> = {
    test: 'canary-vs-stable',
    statistic: logMeanExp(state.logLr2),
    threshold: twoSampleThreshold,
  }
  const tests: Array<Pick<Evaluation, 'statistic' | 'threshold' | 'test'>> = [
    twoSample,
    { test: 'canary-vs-earlier-stable', statistic: logMeanExp(state.logLrBase), threshold: oneSampleThreshold },
  ]
  if (opts.maxErrorRate !== undefined) {
    tests.push({
      test: 'canary-vs-max-error-rate',
      statistic: logMeanExp(state.logLrMax),
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
  const stableUnhealthy = step.stableErrors >= 10 && step.stableErrors / step.stableRequests >= unhealthy
  // The canary is blamed only when it errs more than stable, or stable itself is healthy.
  if (worst.statistic >= worst.threshold && (!stableUnhealthy || twoSample.statistic >= twoSample.threshold)) {
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
    return out(
      'accept',
      `no evidence that the canary errs more, ${step.canaryRequests} >= ${minCanary} canary requests`,
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
