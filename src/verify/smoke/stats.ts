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
