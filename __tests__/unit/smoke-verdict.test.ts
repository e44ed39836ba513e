// The calibrated smoke verdict (SPEC 6 rule 4): exact tests, the false-rollback bound over a whole rollout at 0.5 %
// and 1 % baselines, the p95 sample rule, and how a canary answering errors is reported.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { SmokeResult, VersionStats } from '../../src/verify/smoke/smoke.js'
import { binomialUpperTail, fisherGreaterPValue, logBinomialPmf } from '../../src/verify/smoke/stats.js'
import {
  BASELINE_FACTOR,
  MIN_JUDGED_SAMPLES,
  SMOKE_ROLLOUT_ALPHA,
  type VerdictInput,
  judge,
  stepAlpha,
  testsPerStep,
} from '../../src/verify/smoke/verdict.js'
import { prng } from '../support/prng.js'

const close = (actual: number, expected: number, rel = 1e-9): void => {
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${actual} != ${expected}`)
}

/** C(n, k) as an exact integer product (small n). */
const choose = (n: number, k: number): number => {
  let c = 1
  for (let i = 0; i < k; i++) c = (c * (n - i)) / (i + 1)
  return c
}

const STEPS = [10, 25, 50, 100]
const N = 200 // the smoke-requests default
const N0 = N * BASELINE_FACTOR

/** What summarize() gives for counts; failures name no version (as BookInfo's pages). */
const result = (over: Partial<SmokeResult> = {}): SmokeResult => {
  const r: SmokeResult = {
    requests: N,
    successes: N,
    successRate: 1,
    p50Ms: 10,
    p95Ms: 20,
    byVersion: {},
    unattributed: N,
    unattributedFailures: 0,
    failures: [],
    ...over,
  }
  return { ...r, successRate: r.requests ? r.successes / r.requests : 0 }
}
const failing = (failed: number, n = N): SmokeResult =>
  result({
    requests: n,
    successes: n - failed,
    unattributed: n,
    unattributedFailures: failed,
    failures: failed ? [{ reason: 'HTTP 500', count: failed }] : [],
  })
const ver = (requests: number, successes: number, extra: Partial<VersionStats> = {}): VersionStats => ({
  requests,
  successes,
  p50Ms: 10,
  p95Ms: 20,
  ...extra,
})

const input = (over: Partial<VerdictInput> = {}): VerdictInput => ({
  result: result(),
  threshold: 0.9,
  canaryWeight: 50,
  canaryVersions: ['v3'],
  stableVersions: ['v1'],
  checkShares: false,
  alpha: stepAlpha(4, 3),
  ...over,
})

describe('exact tests', () => {
  it('fisherGreaterPValue: the tea-tasting table, and 10 failures against none in twice the sample', () => {
    // R: fisher.test(matrix(c(3, 1, 1, 3), 2), alternative = 'greater')$p.value = 17/70
    close(fisherGreaterPValue(3, 4, 1, 4), 17 / 70)
    close(fisherGreaterPValue(10, 200, 0, 400), choose(200, 10) / choose(600, 10), 1e-7)
    assert.equal(fisherGreaterPValue(0, 200, 5, 400), 1)
    assert.equal(fisherGreaterPValue(0, 0, 0, 0), 1)
    assert.throws(() => fisherGreaterPValue(3, 2, 0, 4), RangeError)
  })

  it('binomialUpperTail: P(Bin(20, 0.05) >= 6) and >= 5, exactly', () => {
    const tail = (k: number): number => {
      let s = 0
      for (let i = k; i <= 20; i++) s += choose(20, i) * 0.05 ** i * 0.95 ** (20 - i)
      return s
    }
    close(binomialUpperTail(6, 20, 0.05), tail(6), 1e-9)
    close(binomialUpperTail(5, 20, 0.05), tail(5), 1e-9)
    assert.equal(binomialUpperTail(0, 20, 0.05), 1)
    assert.equal(binomialUpperTail(21, 20, 0.05), 0)
  })

  it('the level of each test splits the 1 % rollout bound over steps and tests', () => {
    assert.equal(testsPerStep({ versionPattern: false, maxLatency: false }), 1)
    assert.equal(testsPerStep({ versionPattern: true, maxLatency: false }), 3)
    assert.equal(testsPerStep({ versionPattern: true, maxLatency: true }), 5)
    assert.equal(testsPerStep({ versionPattern: false, maxLatency: true }), 2)
    close(stepAlpha(4, 3), SMOKE_ROLLOUT_ALPHA / 12)
    assert.equal(stepAlpha(0, 0), SMOKE_ROLLOUT_ALPHA)
  })
})

describe('each step against the baseline', () => {
  it('10 failures of 200 against none of 400 before the rollout: rolled back (p = C(200,10)/C(600,10))', () => {
    const j = judge(input({ result: failing(10), baseline: failing(0, N0) }))
    assert.equal(j.pass, false)
    assert.match(
      j.reasons.join('\n'),
      /10\/200 requests failed \(5\.0 %\) against 0\/400 \(0\.0 %\) before the rollout: more than the baseline explains \(one-sided Fisher exact p=1\.\d\de-5 < 8\.33e-4\) \(HTTP 500 ×10\)/,
    )
    // the same 10 failures pass when the route already failed as much before the rollout
    assert.equal(judge(input({ result: failing(10), baseline: failing(20, N0) })).pass, true)
    // and without a baseline (a preview) only the floor applies: 95 % is above 90 %
    assert.equal(judge(input({ result: failing(10) })).pass, true)
  })

  it('success-threshold is an absolute floor, whatever the baseline', () => {
    const j = judge(input({ result: failing(30), baseline: failing(70, N0) }))
    assert.deepEqual(j.reasons, [
      'success rate 85.0 % (170/200) below the floor success-threshold 90.0 % (HTTP 500 ×30)',
    ])
    assert.match(
      judge(input({ threshold: 0, result: failing(N) })).reasons.join(),
      /no request succeeded \(0\/200\) \(HTTP 500 ×200\)/,
    )
    assert.equal(judge(input({ threshold: 0, result: result({ requests: 0, successes: 0 }) })).pass, false)
  })

  /** P(a step at each weight passes), for every baseline failure count, by exact enumeration over the verdict. */
  function falseRollback(rate: number, versionPattern: boolean): number {
    const alpha = stepAlpha(STEPS.length, testsPerStep({ versionPattern, maxLatency: false }))
    let rolledBack = 0
    for (let f0 = 0; f0 <= N0; f0++) {
      const p0 = Math.exp(logBinomialPmf(f0, N0, rate))
      if (p0 < 1e-15) continue
      const baseline = failing(f0, N0)
      // Healthy canary: the step fails at stable's rate whatever its weight (failures name no version).
      let passStep = 0
      for (let f = 0; f <= N; f++) {
        const pf = Math.exp(logBinomialPmf(f, N, rate))
        if (pf < 1e-15) continue
        if (judge(input({ result: failing(f), baseline, alpha })).pass) passStep += pf
      }
      rolledBack += p0 * (1 - passStep ** STEPS.length)
    }
    return rolledBack
  }

  for (const rate of [0.005, 0.01]) {
    it(`a healthy canary at a ${rate * 100} % baseline is rolled back in at most 1 % of rollouts (exact)`, () => {
      const p = falseRollback(rate, false)
      assert.ok(p <= SMOKE_ROLLOUT_ALPHA, `false rollback ${p}`)
      assert.ok(p < 0.005, `the exact test is conservative: ${p}`)
    })
  }

  it('with a version pattern (share test too): Monte Carlo over 20 000 rollouts, false rollback <= 1 %', () => {
    // Per request: canary with the weight, fails at the baseline rate naming no version; else names its version.
    const random = prng(7)
    const alpha = stepAlpha(STEPS.length, testsPerStep({ versionPattern: true, maxLatency: false }))
    for (const rate of [0.005, 0.01]) {
      const draw = (weight: number, n: number): SmokeResult => {
        let v1 = 0
        let v3 = 0
        let failed = 0
        for (let i = 0; i < n; i++) {
          const canary = random() < weight / 100
          if (random() < rate) failed++
          else if (canary) v3++
          else v1++
        }
        const byVersion: Record<string, VersionStats> = {}
        if (v1) byVersion['v1'] = ver(v1, v1)
        if (v3) byVersion['v3'] = ver(v3, v3)
        return result({
          requests: n,
          successes: n - failed,
          byVersion,
          unattributed: failed,
          unattributedFailures: failed,
        })
      }
      const rollouts = 20_000
      let rolledBack = 0
      for (let i = 0; i < rollouts; i++) {
        const baseline = draw(0, N0)
        if (!judge(input({ result: baseline, canaryWeight: 0, checkShares: true, alpha })).pass) continue
        const fails = STEPS.some(
          (w) => !judge(input({ result: draw(w, N), baseline, canaryWeight: w, checkShares: true, alpha })).pass,
        )
        if (fails) rolledBack++
      }
      // standard error at 1 %: sqrt(0.01 * 0.99 / 20000) = 0.07 %
      assert.ok(rolledBack / rollouts <= SMOKE_ROLLOUT_ALPHA, `rate ${rate}: ${rolledBack}/${rollouts}`)
    }
  })

  it('a canary whose errors are 100 % is caught at 10 % in at least 99.9 % of rollouts (exact, baseline 0 %)', () => {
    let pass = 0
    for (let f = 0; f <= N; f++)
      if (judge(input({ result: failing(f), baseline: failing(0, N0) })).pass)
        pass += Math.exp(logBinomialPmf(f, N, 0.1))
    assert.ok(pass < 0.001, `passes step 1 with probability ${pass}`)
  })
})

describe('p95: judged on at least 20 responses, as "more than 5 % slower than max-latency, conclusively"', () => {
  it('overall: 6 of 20 slow fails (p = P(Bin(20, 5 %) >= 6) = 3.3e-4), 5 of 20 passes, 19 all slow are not judged', () => {
    const alpha = stepAlpha(4, 3)
    const slow = (n: number, s: number): SmokeResult => result({ requests: n, successes: n, p95Ms: 900, slow: s })
    assert.ok(binomialUpperTail(6, 20, 0.05) < alpha && binomialUpperTail(5, 20, 0.05) > alpha)
    const j = judge(input({ result: slow(20, 6), maxLatencyMs: 800 }))
    assert.deepEqual(j.reasons, [
      'p95 latency 900 ms above max-latency 800 ms: 6/20 requests slower (more than 5.0 %: binomial p=3.29e-4 < 8.33e-4)',
    ])
    assert.equal(judge(input({ result: slow(20, 5), maxLatencyMs: 800 })).pass, true)
    assert.equal(MIN_JUDGED_SAMPLES, 20)
    assert.equal(judge(input({ result: slow(19, 19), maxLatencyMs: 800 })).pass, true)
  })

  it("the canary's own p95 only on 20 responses naming it or more", () => {
    const few = result({ slow: 3, byVersion: { v1: ver(190, 190, { slow: 0 }), v3: ver(10, 10, { slow: 10 }) } })
    assert.equal(judge(input({ result: few, maxLatencyMs: 800, canaryWeight: 5 })).pass, true)
    const enough = result({
      slow: 20,
      byVersion: { v1: ver(180, 180, { slow: 0 }), v3: ver(20, 20, { slow: 20, p95Ms: 950 }) },
    })
    assert.match(
      judge(input({ result: enough, maxLatencyMs: 800, canaryWeight: 10 })).reasons.join('\n'),
      /canary \(v3\) p95 latency 950 ms above max-latency 800 ms: 20\/20 of its responses slower/,
    )
  })
})

describe('a canary answering errors (issue 8)', () => {
  it('errors that name no version, where the canary should have answered: "answers errors", not "reachable?"', () => {
    const r = result({
      successes: 180,
      byVersion: { v1: ver(180, 180) },
      unattributed: 20,
      unattributedFailures: 20,
      failures: [{ reason: 'HTTP 500', count: 20 }],
    })
    const text = judge(input({ result: r, checkShares: true, canaryWeight: 10 })).reasons.join('\n')
    assert.match(
      text,
      /canary \(v3\) answers errors: it is named in none of the 180 attributed responses at weight 10 % \(binomial p=\S+ < 8\.33e-4\), while 20 response\(s\) failed naming no version \(the weight would send it about 20\) \(HTTP 500 ×20\)/,
    )
    assert.doesNotMatch(text, /reachable/)
  })

  it('no failure at all and no canary: is it reachable?', () => {
    const r = result({ byVersion: { v1: ver(200, 200) }, unattributed: 0 })
    assert.match(
      judge(input({ result: r, checkShares: true, canaryWeight: 10 })).reasons.join('\n'),
      /canary \(v3\) served none of 200 attributed responses at weight 10 % \(binomial p=\S+ < 8\.33e-4\) and no response failed: is the canary reachable through the route, and does it answer\?/,
    )
  })

  it('error responses that name the canary are its own: "answered errors", with their reasons', () => {
    const r = result({
      successes: 180,
      byVersion: { v1: ver(180, 180), v3: ver(20, 0, { failures: [{ reason: 'HTTP 500', count: 20 }] }) },
      unattributed: 0,
    })
    const j = judge(input({ result: r, checkShares: true, canaryWeight: 10, baseline: failing(0, N0) }))
    assert.match(
      j.reasons.join('\n'),
      /canary \(v3\) success rate 0\.0 % \(0\/20\) below the floor success-threshold 90\.0 % \(HTTP 500 ×20\)/,
    )
    const few = result({
      successes: 195,
      byVersion: { v1: ver(195, 195), v3: ver(5, 0, { failures: [{ reason: 'HTTP 503', count: 5 }] }) },
      unattributed: 0,
    })
    const k = judge(input({ result: few, checkShares: true, canaryWeight: 2.5, baseline: failing(0, N0) }))
    assert.match(
      k.reasons.join('\n'),
      /canary \(v3\) answered errors: none of the 5 responses naming it passed, against 0\/400 failures before the rollout \(one-sided Fisher exact p=\S+ < 8\.33e-4\) \(HTTP 503 ×5\)/,
    )
  })

  it('one failed answer naming a healthy canary among few is no evidence', () => {
    const r = result({
      successes: 199,
      byVersion: { v1: ver(180, 180), v3: ver(20, 19, { failures: [{ reason: 'HTTP 500', count: 1 }] }) },
      unattributed: 0,
    })
    assert.equal(judge(input({ result: r, checkShares: true, canaryWeight: 10, baseline: failing(2, N0) })).pass, true)
  })
})

describe('unchanged rules', () => {
  it('share check: shares far from the weights fail, close ones pass; strays fail', () => {
    const skewed = result({ byVersion: { v1: ver(180, 180), v3: ver(20, 20) }, unattributed: 0 })
    assert.match(
      judge(input({ result: skewed, checkShares: true, canaryWeight: 90 })).reasons[0] ?? '',
      /served shares do not follow the weights: canary served 20\/200/,
    )
    const fine = result({ byVersion: { v1: ver(105, 105), v3: ver(95, 95) }, unattributed: 0 })
    assert.equal(judge(input({ result: fine, checkShares: true, canaryWeight: 50 })).pass, true)
    const strays = result({ byVersion: { v1: ver(95, 95), v2: ver(10, 10), v3: ver(95, 95) }, unattributed: 0 })
    assert.deepEqual(judge(input({ result: strays, checkShares: true })).reasons, [
      'responses from versions that are neither stable (v1) nor canary (v3): v2 (10)',
    ])
  })

  it('canary versions may be several labels (subset name and version label)', () => {
    const r = result({ byVersion: { v1: ver(100, 100), 'reviews-v3': ver(50, 50), v3: ver(50, 50) }, unattributed: 0 })
    assert.equal(judge(input({ result: r, checkShares: true, canaryVersions: ['v3', 'reviews-v3'] })).pass, true)
  })
})
