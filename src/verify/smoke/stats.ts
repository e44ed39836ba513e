// Small statistics used by the smoke test and its verdict: percentiles and an exact binomial test.

/**
 * Nearest-rank percentile: the smallest sample such that at least `p` percent of the samples are <= it,
 * i.e. sorted[ceil(p/100 * n) - 1] (rank clamped to 1..n). Always one of the samples, never interpolated.
 * p=0 gives the minimum, p=100 the maximum. An empty sample gives NaN.
 */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`)
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1] as number
}

// Lanczos approximation (g = 7, 9 coefficients), relative error ~1e-15 for x > 0.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
]

/** ln Γ(x) for x > 0. */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma needs x > 0, got ${x}`)
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x) // reflection
  const z = x - 1
  let a = LANCZOS[0] as number
  const t = z + 7.5
  for (let i = 1; i < 9; i++) a += (LANCZOS[i] as number) / (z + i)
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a)
}

/** ln of the binomial probability P(X = k) for X ~ Bin(n, p); -Infinity when impossible. */
export function logBinomialPmf(k: number, n: number, p: number): number {
  if (p === 0) return k === 0 ? 0 : Number.NEGATIVE_INFINITY
  if (p === 1) return k === n ? 0 : Number.NEGATIVE_INFINITY
  const logChoose = logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1)
  return logChoose + k * Math.log(p) + (n - k) * Math.log1p(-p)
}

function checkBinomialArgs(k: number, n: number, p: number): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`)
  if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`k must be an integer within 0..${n}, got ${k}`)
  if (!(p >= 0 && p <= 1)) throw new RangeError(`p must be within 0..1, got ${p}`)
}

/**
 * Exact two-sided binomial test p-value (the "minimum likelihood" method, as R's binom.test):
 * the total probability, under Bin(n, p), of every outcome no more likely than the observed k.
 * Summed in log space. p = 0 and p = 1 are exact: the only possible outcome has p-value 1, any other 0.
 */
export function binomialTwoSidedPValue(k: number, n: number, p: number): number {
  checkBinomialArgs(k, n, p)
  if (n === 0) return 1
  if (p === 0) return k === 0 ? 1 : 0
  if (p === 1) return k === n ? 1 : 0
  const logs: number[] = []
  for (let i = 0; i <= n; i++) logs.push(logBinomialPmf(i, n, p))
  const observed = logs[k] as number
  // Relative tolerance so outcomes equally likely to k (up to rounding) count on both sides.
  const limit = observed + Math.log1p(1e-7)
  const kept = logs.filter((l) => l <= limit)
  const max = Math.max(...kept)
  let sum = 0
  for (const l of kept) sum += Math.exp(l - max)
  return Math.min(1, Math.exp(max + Math.log(sum)))
}

export interface ShareCheck {
  ok: boolean
  /** Expected canary share, 0..1. */
  expected: number
  /** Observed canary share, 0..1 (0 when nothing was attributed). */
  observed: number
  pValue: number
  message: string
}

/** A share 0..1 as a percentage with one decimal: 0.953 -> '95.3 %'. */
export const pct = (x: number): string => `${(x * 100).toFixed(1)} %`

function formatP(p: number): string {
  if (p === 0) return '0'
  return p >= 0.001 ? p.toFixed(4) : p.toExponential(2)
}

/**
 * Do the responses the canary served follow its weight? Exact two-sided binomial test of
 * `canaryServed` successes out of `attributedTotal` against `expectedWeightPercent`/100;
 * rejected (ok = false) when the p-value is below `alpha`.
 */
export function weightShareCheck(
  canaryServed: number,
  attributedTotal: number,
  expectedWeightPercent: number,
  alpha = 0.001,
): ShareCheck {
  if (!(expectedWeightPercent >= 0 && expectedWeightPercent <= 100)) {
    throw new RangeError(`expected weight must be within 0..100, got ${expectedWeightPercent}`)
  }
  const expected = expectedWeightPercent / 100
  if (attributedTotal === 0) {
    return { ok: true, expected, observed: 0, pValue: 1, message: 'no attributed responses: share not checked' }
  }
  const pValue = binomialTwoSidedPValue(canaryServed, attributedTotal, expected)
  const observed = canaryServed / attributedTotal
  const ok = pValue >= alpha
  const message =
    `canary served ${canaryServed}/${attributedTotal} attributed responses (${pct(observed)}), ` +
    `weight ${expectedWeightPercent} %: binomial p=${formatP(pValue)} ${ok ? '>=' : '<'} alpha ${alpha}`
  return { ok, expected, observed, pValue, message }
}

/** ln C(n, k). */
function logChoose(n: number, k: number): number {
  return logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1)
}

/**
 * Upper tail of the binomial: P(X >= k) for X ~ Bin(n, p), summed exactly (in log space, from k up).
 * k <= 0 gives 1, k > n gives 0.
 */
export function binomialUpperTail(k: number, n: number, p: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`)
  if (!(p >= 0 && p <= 1)) throw new RangeError(`p must be within 0..1, got ${p}`)
  if (k <= 0) return 1
  if (k > n) return 0
  let sum = 0
  for (let i = k; i <= n; i++) sum += Math.exp(logBinomialPmf(i, n, p))
  return Math.min(1, sum)
}

/**
 * One-sided Fisher exact test that a sample fails more often than a reference sample: the p-value of `failures`
 * out of `n` against `refFailures` out of `refN`, i.e. P(X >= failures) for X hypergeometric (the failures of both
 * samples together, `n` of the `n + refN` requests drawn). Conditioning on the total makes it exact whatever the
 * (unknown) common failure rate is: under "both fail alike" it rejects at level alpha at most alpha of the time.
 */
export function fisherGreaterPValue(failures: number, n: number, refFailures: number, refN: number): number {
  for (const [name, k, m] of [
    ['failures', failures, n],
    ['refFailures', refFailures, refN],
  ] as const) {
    if (!Number.isInteger(m) || m < 0) throw new RangeError(`sample size must be a non-negative integer, got ${m}`)
    if (!Number.isInteger(k) || k < 0 || k > m)
      throw new RangeError(`${name} must be an integer within 0..${m}, got ${k}`)
  }
  const total = failures + refFailures
  const all = n + refN
  if (total === 0 || n === 0 || failures <= Math.max(0, total - refN)) return 1
  const denominator = logChoose(all, total)
  let sum = 0
  for (let x = Math.max(failures, total - refN); x <= Math.min(total, n); x++)
    sum += Math.exp(logChoose(n, x) + logChoose(refN, total - x) - denominator)
  return Math.min(1, sum)
}
