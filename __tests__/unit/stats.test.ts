import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { binomialTwoSidedPValue, logGamma, percentile, weightShareCheck } from '../../src/verify/smoke/stats.js'

const close = (actual: number, expected: number, rel = 1e-9): void => {
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${actual} != ${expected}`)
}

describe('percentile (nearest rank)', () => {
  it('returns samples, never interpolations', () => {
    const xs = [15, 20, 35, 40, 50]
    assert.equal(percentile(xs, 5), 15)
    assert.equal(percentile(xs, 30), 20)
    assert.equal(percentile(xs, 40), 20)
    assert.equal(percentile(xs, 50), 35)
    assert.equal(percentile(xs, 100), 50)
    assert.equal(percentile(xs, 0), 15)
  })
  it('does not depend on input order and leaves the input alone', () => {
    const xs = [9, 1, 8, 2, 7, 3, 6, 4, 5, 10]
    assert.equal(percentile(xs, 50), 5)
    assert.equal(percentile(xs, 95), 10)
    assert.equal(percentile(xs, 90), 9)
    assert.deepEqual(xs, [9, 1, 8, 2, 7, 3, 6, 4, 5, 10])
  })
  it('p95 of 20 samples is the 19th', () => {
    const xs = Array.from({ length: 20 }, (_, i) => i + 1)
    assert.equal(percentile(xs, 95), 19)
    assert.equal(percentile(xs, 50), 10)
  })
  it('empty gives NaN, bad p throws', () => {
    assert.ok(Number.isNaN(percentile([], 50)))
    assert.throws(() => percentile([1], 101), RangeError)
    assert.throws(() => percentile([1], Number.NaN), RangeError)
  })
})

describe('logGamma', () => {
  it('matches factorials and Γ(1/2)', () => {
    close(logGamma(11), Math.log(3628800), 1e-13)
    close(logGamma(0.5), Math.log(Math.sqrt(Math.PI)), 1e-13)
    close(logGamma(101), 363.73937555556347, 1e-13)
    assert.ok(Math.abs(logGamma(1)) < 1e-13 && Math.abs(logGamma(2)) < 1e-13)
  })
})

describe('binomialTwoSidedPValue', () => {
  it('is 1 at the mode of a symmetric distribution', () => {
    close(binomialTwoSidedPValue(5, 10, 0.5), 1)
  })
  it('k=0, n=20, p=0.5 is 2 * 0.5^20', () => {
    close(binomialTwoSidedPValue(0, 20, 0.5), 2 / 2 ** 20)
    close(binomialTwoSidedPValue(20, 20, 0.5), 2 / 2 ** 20)
  })
  it('matches R binom.test on asymmetric cases', () => {
    // binom.test(3, 20, 0.5)$p.value, binom.test(2, 10, 0.1)$p.value, binom.test(7, 10, 0.3)$p.value
    close(binomialTwoSidedPValue(3, 20, 0.5), 0.002576828, 1e-6)
    close(binomialTwoSidedPValue(2, 10, 0.1), 0.2639011, 1e-6)
    close(binomialTwoSidedPValue(7, 10, 0.3), 0.01059208, 1e-6)
    // Bin(10, 0.1): only P(X=1) = 0.387 exceeds P(X=0) = 0.349, so the p-value of 0 is 1 - P(X=1)
    close(binomialTwoSidedPValue(0, 10, 0.1), 1 - 10 * 0.1 * 0.9 ** 9, 1e-9)
  })
  it('stays finite and exact in log space for large n', () => {
    close(binomialTwoSidedPValue(0, 1000, 0.5), 2 * 0.5 ** 1000, 1e-9)
    close(binomialTwoSidedPValue(500, 1000, 0.5), 1)
  })
  it('p=0 and p=1 are exact', () => {
    assert.equal(binomialTwoSidedPValue(0, 20, 0), 1)
    assert.equal(binomialTwoSidedPValue(1, 20, 0), 0)
    assert.equal(binomialTwoSidedPValue(20, 20, 1), 1)
    assert.equal(binomialTwoSidedPValue(19, 20, 1), 0)
    assert.equal(binomialTwoSidedPValue(0, 0, 0.3), 1)
  })
  it('rejects impossible arguments', () => {
    assert.throws(() => binomialTwoSidedPValue(3, 2, 0.5), RangeError)
    assert.throws(() => binomialTwoSidedPValue(1.5, 2, 0.5), RangeError)
    assert.throws(() => binomialTwoSidedPValue(1, 2, 1.5), RangeError)
  })
})

describe('weightShareCheck', () => {
  it('accepts shares near the weight', () => {
    const c = weightShareCheck(4, 20, 25)
    assert.equal(c.ok, true)
    assert.equal(c.expected, 0.25)
    assert.equal(c.observed, 0.2)
    assert.ok(c.pValue > 0.5)
    assert.match(c.message, /4\/20/)
  })
  it('rejects a canary that serves nothing at 50 %', () => {
    const c = weightShareCheck(0, 20, 50)
    assert.equal(c.ok, false)
    close(c.pValue, 2 / 2 ** 20)
    assert.match(c.message, /p=1\.91e-6 < alpha 0\.001/)
  })
  it('needs enough evidence: 0 of 20 at 10 % is plausible', () => {
    assert.equal(weightShareCheck(0, 20, 10).ok, true) // 0.9^20 ~ 0.12
  })
  it('at 100 % any stable response fails, at 0 % any canary response fails', () => {
    assert.equal(weightShareCheck(19, 20, 100).ok, false)
    assert.equal(weightShareCheck(20, 20, 100).ok, true)
    assert.equal(weightShareCheck(1, 20, 0).ok, false)
  })
  it('alpha is honoured', () => {
    const c = weightShareCheck(3, 20, 50) // p ~ 0.0026
    assert.equal(c.ok, true)
    assert.equal(weightShareCheck(3, 20, 50, 0.01).ok, false)
  })
  it('nothing attributed: ok, not checked', () => {
    const c = weightShareCheck(0, 0, 50)
    assert.equal(c.ok, true)
    assert.equal(c.pValue, 1)
  })
})
