import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  PrometheusError,
  azureMonitorScope,
  isAzureMonitorEndpoint,
  parseQueryResponse,
  parseServiceRef,
} from '../../src/telemetry/prometheus.js'
import { BLAME_FACTOR, MIN_LATENCY_REQUESTS, judgeLatency } from '../../src/telemetry/latency.js'
import {
  buildCounterQueries,
  buildLatencyQueries,
  buildQueries,
  perVersion,
  windowOf,
} from '../../src/telemetry/queries.js'
import {
  type Counts,
  DEFAULT_MIXTURE,
  type SequentialOptions,
  alphaShares,
  binomialCdf,
  evaluate,
  initialState,
  logBetaBinomialMixture,
  logGamma,
  observe,
  startStep,
  upperRate,
} from '../../src/telemetry/sequential.js'
import { prng } from '../support/prng.js'

describe('telemetry queries', () => {
  const t = { namespace: 'bookinfo', service: 'reviews', versions: ['v1', 'v3'] }
  it('builds per-version request, 5xx and p95 queries for sidecars', () => {
    const q = buildQueries(t, 60)
    const sel =
      'reporter="destination",destination_workload_namespace="bookinfo",destination_service_name="reviews",destination_version=~"v1|v3"'
    assert.equal(q.requests, `sum by (destination_version) (increase(istio_requests_total{${sel}}[60s]))`)
    assert.equal(
      q.errors,
      `sum by (destination_version) (increase(istio_requests_total{${sel},response_code=~"5.."}[60s]))`,
    )
    assert.equal(
      q.p95,
      `histogram_quantile(0.95, sum by (le, destination_version) (rate(istio_request_duration_milliseconds_bucket{${sel}}[60s])))`,
    )
    assert.equal(buildCounterQueries(t).requests, `sum by (destination_version) (istio_requests_total{${sel}})`)
  })
  it('builds p50/p95 latency queries per version and over both versions from the duration histograms', () => {
    const q = buildLatencyQueries(t, 42)
    const sel =
      'reporter="destination",destination_workload_namespace="bookinfo",destination_service_name="reviews",destination_version=~"v1|v3"'
    const histogram = `rate(istio_request_duration_milliseconds_bucket{${sel}}[42s])`
    assert.equal(q.p95, `histogram_quantile(0.95, sum by (le, destination_version) (${histogram}))`)
    assert.equal(q.p50, `histogram_quantile(0.5, sum by (le, destination_version) (${histogram}))`)
    assert.equal(q.p95All, `histogram_quantile(0.95, sum by (le) (${histogram}))`)
    assert.equal(q.p50All, `histogram_quantile(0.5, sum by (le) (${histogram}))`)
    // A version the quantile result does not name has no sample: NaN, never 0 ms.
    assert.deepEqual(perVersion(t, [{ labels: { destination_version: 'v3' }, value: 97.5 }], NaN), {
      v1: NaN,
      v3: 97.5,
    })
  })
  it('uses reporter="waypoint" in ambient mode and Linkerd metric names for Linkerd', () => {
    assert.match(buildQueries({ ...t, flavor: 'istio-ambient' }, 30).requests, /reporter="waypoint"/)
    const l = buildQueries({ ...t, flavor: 'linkerd' }, 30)
    assert.match(
      l.errors,
      /response_total\{namespace="bookinfo",direction="inbound",deployment=~"reviews-v1\|reviews-v3",classification="failure"\}\[30s\]/,
    )
    assert.match(l.p95, /response_latency_ms_bucket/)
    assert.deepEqual(perVersion({ ...t, flavor: 'linkerd' }, [{ labels: { deployment: 'reviews-v3' }, value: 4 }]), {
      v1: 0,
      v3: 4,
    })
  })
  it('an HTTPRoute: every Service the versions are counted under; Linkerd: the workloads the checks found', () => {
    const hr = buildQueries({ ...t, services: ['reviews', 'reviews-v1', 'reviews-v3'] }, 30)
    assert.match(
      hr.requests,
      /destination_service_name=~"reviews\|reviews-v1\|reviews-v3",destination_version=~"v1\|v3"/,
    )
    const l = { ...t, flavor: 'linkerd' as const, deployments: { v1: 'reviews-v1-blue', v3: 'reviews-v3-green' } }
    assert.match(buildQueries(l, 30).requests, /deployment=~"reviews-v1-blue\|reviews-v3-green"/)
    assert.deepEqual(perVersion(l, [{ labels: { deployment: 'reviews-v3-green' }, value: 2 }]), { v1: 0, v3: 2 })
  })
  it('escapes label values and rejects bad windows', () => {
    assert.match(buildQueries({ ...t, versions: ['1.2"x'] }, 10).requests, /destination_version=~"1\\\\.2\\"x"/)
    assert.throws(() => windowOf(0))
    assert.equal(windowOf(59.6), '[60s]')
  })
})

describe('Prometheus answers', () => {
  it('parses vectors and scalars, and the error format', () => {
    const v = parseQueryResponse({
      status: 200,
      body: '{"status":"success","data":{"resultType":"vector","result":[{"metric":{"destination_version":"v1"},"value":[1700000000.1,"12"]},{"metric":{},"value":[1,"NaN"]}]}}',
    })
    assert.equal(v.type, 'vector')
    if (v.type === 'vector') {
      assert.deepEqual(v.samples[0], { labels: { destination_version: 'v1' }, value: 12 })
      assert.ok(Number.isNaN(v.samples[1]!.value))
    }
    assert.deepEqual(
      parseQueryResponse({
        status: 200,
        body: '{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}',
      }),
      { type: 'scalar', value: Infinity },
    )
    assert.throws(
      () =>
        parseQueryResponse({ status: 400, body: '{"status":"error","errorType":"bad_data","error":"parse error"}' }),
      (e: unknown) => e instanceof PrometheusError && e.kind === 'query' && /bad_data.*parse error/.test(e.message),
    )
    assert.throws(
      () =>
        parseQueryResponse({ status: 503, body: '{"status":"error","errorType":"timeout","error":"query timed out"}' }),
      (e: unknown) => e instanceof PrometheusError && e.kind === 'timeout',
    )
    assert.throws(
      () => parseQueryResponse({ status: 403, body: 'forbidden' }, "x through the API server's service proxy"),
      /services\/proxy/,
    )
    assert.throws(
      () => parseQueryResponse({ status: 502, body: '<html>bad gateway</html>' }),
      (e: unknown) => e instanceof PrometheusError && e.status === 502,
    )
    assert.throws(
      () =>
        parseQueryResponse({ status: 200, body: '{"status":"success","data":{"resultType":"matrix","result":[]}}' }),
      /matrix/,
    )
  })
  it('knows the Azure Monitor scopes per cloud and parses service refs', () => {
    assert.equal(
      azureMonitorScope('https://ws-1.eastus.prometheus.monitor.azure.com'),
      'https://prometheus.monitor.azure.com/.default',
    )
    assert.equal(
      azureMonitorScope('https://ws.usgovvirginia.prometheus.monitor.azure.us'),
      'https://prometheus.monitor.azure.us/.default',
    )
    assert.equal(
      azureMonitorScope('https://127.0.0.1:8443', 'AzureChinaCloud'),
      'https://prometheus.monitor.azure.cn/.default',
    )
    assert.ok(isAzureMonitorEndpoint('https://ws.westeurope.prometheus.monitor.azure.com/'))
    assert.ok(!isAzureMonitorEndpoint('http://prometheus:9090'))
    assert.deepEqual(parseServiceRef('istio-system/prometheus:9090'), {
      namespace: 'istio-system',
      name: 'prometheus',
      port: 9090,
    })
    assert.deepEqual(parseServiceRef('monitoring/kps-prometheus:http-web'), {
      namespace: 'monitoring',
      name: 'kps-prometheus',
      port: 'http-web',
    })
    assert.throws(() => parseServiceRef('prometheus:9090'), /namespace\/name:port/)
  })
})

// ---- the sequential test ----

function binomial(rand: () => number, n: number, p: number): number {
  let k = 0
  for (let i = 0; i < n; i++) if (rand() < p) k++
  return k
}

/**
 * One rollout at `rps` through steps (weights), each `pauseS` long, scraped and evaluated every second (as the verifier
 * polls): how it ended (the failing decision, or 'promoted'), when, and how many canary requests failed by then. A
 * step that has not got min-canary-requests at the end of its pause carries on, up to 3 pauses.
 */
function rollout(
  rand: () => number,
  pStable: number,
  pCanary: number,
  o: SequentialOptions & { rps?: number; pauseS?: number; steps?: number[] } = {},
): { decision: string; rolledBack: boolean; seconds: number; canaryFailed: number } {
  const rps = o.rps ?? 10
  const pause = o.pauseS ?? 60
  let s = initialState(o)
  let seconds = 0
  let canaryFailed = 0
  for (const w of o.steps ?? [10, 25, 50, 100]) {
    s = startStep(s)
    for (let t = 1; t <= 3 * pause; t++) {
      seconds++
      const nc = binomial(rand, rps, w / 100)
      const d: Counts = {
        canaryRequests: nc,
        canaryErrors: binomial(rand, nc, pCanary),
        stableRequests: rps - nc,
        stableErrors: binomial(rand, rps - nc, pStable),
      }
      canaryFailed += d.canaryErrors
      s = observe(s, d, o)
      const e = evaluate(s, { pauseOver: t >= pause, stepTimeUp: t >= 3 * pause }, o)
      if (e.decision === 'accept') break
      if (e.decision !== 'continue') return { decision: e.decision, rolledBack: true, seconds, canaryFailed }
    }
  }
  return { decision: 'promoted', rolledBack: false, seconds, canaryFailed }
}

describe('latency verdict (p95 against max-latency and stable)', () => {
  const v = (version: string, requests: number, p95Ms: number) => ({ version, requests, p95Ms })
  it('is not judged without max-latency, below 100 canary requests, or without histogram samples', () => {
    assert.equal(MIN_LATENCY_REQUESTS, 100)
    const none = judgeLatency({ maxLatencyMs: undefined, canary: v('v3', 500, 9000), stable: v('v1', 500, 10) })
    assert.equal(none.decision, 'not-judged')
    assert.match(none.reason, /no max-latency/)
    const few = judgeLatency({ maxLatencyMs: 800, canary: v('v3', 99, 9000), stable: v('v1', 900, 10) })
    assert.equal(few.decision, 'not-judged')
    assert.match(few.reason, /latency not judged: v3 served 99 of the 100 requests a p95 needs/)
    const empty = judgeLatency({ maxLatencyMs: 800, canary: v('v3', 100, NaN), stable: v('v1', 900, 10) })
    assert.equal(empty.decision, 'not-judged')
    assert.match(empty.reason, /no istio_request_duration_milliseconds samples of v3/)
  })
  it('passes a canary inside max-latency whatever its ratio to stable (1.5x, or a bucket apart)', () => {
    for (const canary of [72, 97.5, 242.5, 800]) {
      const r = judgeLatency({ maxLatencyMs: 800, canary: v('v3', 150, canary), stable: v('v1', 900, 48.75) })
      assert.equal(r.decision, 'pass', `${canary}`)
      assert.match(r.reason, /within max-latency 800 ms, stable v1 p95 48.8 ms/)
    }
  })
  it('rejects a canary over max-latency while stable is inside it, or when stable cannot be compared', () => {
    const slow = judgeLatency({ maxLatencyMs: 800, canary: v('v3', 150, 2425), stable: v('v1', 900, 0.5) })
    assert.equal(slow.decision, 'reject')
    assert.match(slow.reason, /the canary is slow: v3 p95 2425 ms above max-latency 800 ms, stable v1 p95 0.5 ms/)
    // At 100 %: no stable traffic, judged against max-latency alone.
    const alone = judgeLatency({ maxLatencyMs: 800, canary: v('v3', 600, 2425), stable: v('v1', 0, NaN) })
    assert.equal(alone.decision, 'reject')
    assert.match(alone.reason, /stable v1 not compared \(0 requests\)/)
    // Beyond the last bucket: +Inf is over any bound.
    assert.equal(
      judgeLatency({ maxLatencyMs: 800, canary: v('v3', 150, Infinity), stable: v('v1', 900, 1) }).decision,
      'reject',
    )
  })
  it('a slowdown that hits stable as hard is stable-unhealthy; a canary far slower than a slow stable is blamed', () => {
    const both = judgeLatency({ maxLatencyMs: 800, canary: v('v3', 150, 2425), stable: v('v1', 900, 2400) })
    assert.equal(both.decision, 'stable-unhealthy')
    assert.match(both.reason, /stable is slow too .* the canary is not blamed/)
    const worse = judgeLatency({
      maxLatencyMs: 800,
      canary: v('v3', 150, 900 * BLAME_FACTOR + 1),
      stable: v('v1', 900, 900),
    })
    assert.equal(worse.decision, 'reject')
    // Stable's p95 on too few requests of its own does not excuse the canary.
    const thin = judgeLatency({ maxLatencyMs: 800, canary: v('v3', 900, 2425), stable: v('v1', 40, 2425) })
    assert.equal(thin.decision, 'reject')
  })
})

describe('sequential canary-vs-stable test', () => {
  it('rejects a clearly worse canary and reports the statistic', () => {
    let s = initialState()
    s = observe(s, { canaryRequests: 300, canaryErrors: 30, stableRequests: 300, stableErrors: 1 })
    const e = evaluate(s, { pauseOver: false, stepTimeUp: false })
    assert.equal(e.decision, 'reject')
    assert.equal(e.test, 'canary-vs-stable')
    // 90 % of alpha on this test: ln(1 / 0.009).
    assert.ok(e.statistic >= e.threshold && Math.abs(e.threshold - Math.log(1 / 0.009)) < 1e-9)
  })
  it('spends alpha: 90 % on canary-vs-stable, the rest split between the confidence sequence and each one-sample test', () => {
    const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-12
    const plain = alphaShares({ alpha: 0.01 })
    assert.ok(close(plain.twoSample, 0.009) && close(plain.confidence, 0.0005) && close(plain.oneSample, 0.0005))
    assert.ok(close(plain.twoSample + plain.confidence + plain.oneSample, 0.01))
    const withMax = alphaShares({ alpha: 0.01, maxErrorRate: 0.02 })
    assert.ok(close(withMax.twoSample + withMax.confidence + 2 * withMax.oneSample, 0.01))
    assert.ok(
      close(
        DEFAULT_MIXTURE.reduce((a, c) => a + c.weight, 0),
        1,
      ),
      'the mixture weights sum to 1',
    )
  })
  it('logGamma matches known values (the confidence sequence rests on it)', () => {
    assert.ok(Math.abs(logGamma(0.5) - 0.5 * Math.log(Math.PI)) < 1e-10)
    assert.ok(Math.abs(logGamma(1)) < 1e-10 && Math.abs(logGamma(2)) < 1e-10)
    assert.ok(Math.abs(logGamma(10) - Math.log(362880)) < 1e-9)
    assert.ok(Math.abs(logGamma(100.5) - 361.4355404677776) < 1e-8)
  })
  it("stable's upper bound is time-uniform: over 2000 streams watched at every request, it is ever below the true rate in <= alpha", () => {
    // The bound is below p exactly when p is above the observed rate and M_n(p) >= 1/alpha (M_n rises with p there),
    // so watching M_n(p) at every request watches the bound at every request.
    const rand = prng(4242)
    const alpha = 0.05
    const threshold = Math.log(1 / alpha)
    for (const p of [0.005, 0.02]) {
      let missed = 0
      for (let path = 0; path < 2000; path++) {
        let errors = 0
        for (let n = 1; n <= 2000; n++) {
          if (rand() < p) errors++
          if (errors / n < p && logBetaBinomialMixture(errors, n, p) >= threshold) {
            missed++
            break
          }
        }
      }
      assert.ok(missed / 2000 <= alpha, `p = ${p}: below the true rate at some time in ${missed} of 2000 streams`)
    }
    // The same event through upperRate itself, and a bound tight enough to use: 8 errors in 1650 requests.
    assert.ok(upperRate(8, 1650, 0.0005) > 8 / 1650)
    assert.ok(upperRate(8, 1650, 0.0005) < 0.02, `${upperRate(8, 1650, 0.0005)}`)
    const u = upperRate(8, 1650, 0.0005)
    assert.ok(logBetaBinomialMixture(8, 1650, u * 0.999) < Math.log(1 / 0.0005))
    assert.ok(logBetaBinomialMixture(8, 1650, u * 1.001) >= Math.log(1 / 0.0005))
    assert.equal(upperRate(0, 0, 0.0005), 1, 'no stable traffic: nothing is known')
  })
  it('accepts only after min-canary-requests and the pause, else continues, then is inconclusive', () => {
    let s = initialState()
    s = observe(s, { canaryRequests: 50, canaryErrors: 0, stableRequests: 450, stableErrors: 2 })
    assert.equal(evaluate(s, { pauseOver: true, stepTimeUp: false }).decision, 'continue')
    assert.equal(evaluate(s, { pauseOver: true, stepTimeUp: true }).decision, 'inconclusive')
    s = observe(s, { canaryRequests: 60, canaryErrors: 0, stableRequests: 500, stableErrors: 2 })
    assert.equal(evaluate(s, { pauseOver: false, stepTimeUp: false }).decision, 'continue')
    assert.equal(evaluate(s, { pauseOver: true, stepTimeUp: false }).decision, 'accept')
  })
  it('does not blame the canary when stable fails alike', () => {
    let s = initialState({ maxErrorRate: 0.01 })
    s = observe(
      s,
      { canaryRequests: 300, canaryErrors: 90, stableRequests: 300, stableErrors: 95 },
      { maxErrorRate: 0.01 },
    )
    const e = evaluate(s, { pauseOver: true, stepTimeUp: false }, { maxErrorRate: 0.01 })
    assert.equal(e.decision, 'stable-unhealthy')
  })
  it('a stable that fails while the canary clearly does not: not "stable unhealthy", the canary is judged as in any step', () => {
    const opts = { maxErrorRate: 0.002 }
    // The reviewer's case: a perfect canary, stable at 0.28 % (above max-error-rate 0.2 %).
    let s = initialState(opts)
    s = observe(s, { canaryRequests: 6000, canaryErrors: 0, stableRequests: 6000, stableErrors: 17 }, opts)
    const e = evaluate(s, { pauseOver: true, stepTimeUp: false }, opts)
    assert.equal(e.decision, 'accept', e.reason)
    assert.match(e.reason, /stable errs 0\.28 % but the canary clearly less: stable's own trouble/)
    // Stable at 5 % without max-error-rate, the canary at 10 % of the traffic with no error.
    let t = initialState()
    t = observe(t, { canaryRequests: 200, canaryErrors: 0, stableRequests: 1800, stableErrors: 90 })
    assert.equal(evaluate(t, { pauseOver: true, stepTimeUp: false }).decision, 'accept')
    // The same stable, the canary erring like it: stable unhealthy, as before.
    let u = initialState()
    u = observe(u, { canaryRequests: 200, canaryErrors: 9, stableRequests: 1800, stableErrors: 90 })
    assert.equal(evaluate(u, { pauseOver: true, stepTimeUp: false }).decision, 'stable-unhealthy')
    // Too few canary requests to tell (0 errors in 20 is likely at 5 %): stable unhealthy, the step fails.
    let v = initialState()
    v = observe(v, { canaryRequests: 20, canaryErrors: 0, stableRequests: 1800, stableErrors: 90 })
    assert.equal(evaluate(v, { pauseOver: false, stepTimeUp: false }).decision, 'stable-unhealthy')
  })

  it('max-error-rate is an absolute bound at every step: a step that would pass with the canary above it fails', () => {
    const opts = { maxErrorRate: 0.01 }
    // 9 errors in 300 (3 %) at 100 %: too little for the sequential test against 1 %, but above the bound.
    let s = initialState(opts)
    s = observe(s, { canaryRequests: 300, canaryErrors: 9, stableRequests: 0, stableErrors: 0 }, opts)
    assert.equal(evaluate(s, { pauseOver: false, stepTimeUp: false }, opts).decision, 'continue')
    const e = evaluate(s, { pauseOver: true, stepTimeUp: false }, opts)
    assert.equal(e.decision, 'reject')
    assert.equal(e.test, 'canary-vs-max-error-rate')
    assert.match(
      e.reason,
      /^the canary's error rate this step, 3\.00 %, is above max-error-rate 1\.00 %: canary 9\/300/,
    )
    // At the bound: passes. max-error-rate 0: one error fails the step, none passes it.
    let at = initialState(opts)
    at = observe(at, { canaryRequests: 300, canaryErrors: 3, stableRequests: 2700, stableErrors: 8 }, opts)
    assert.equal(evaluate(at, { pauseOver: true, stepTimeUp: false }, opts).decision, 'accept')
    const zero = { maxErrorRate: 0 }
    const one = observe(
      initialState(zero),
      { canaryRequests: 200, canaryErrors: 1, stableRequests: 1800, stableErrors: 9 },
      zero,
    )
    assert.equal(evaluate(one, { pauseOver: true, stepTimeUp: false }, zero).decision, 'reject')
    const none = observe(
      initialState(zero),
      { canaryRequests: 200, canaryErrors: 0, stableRequests: 1800, stableErrors: 9 },
      zero,
    )
    assert.equal(evaluate(none, { pauseOver: true, stepTimeUp: false }, zero).decision, 'accept')
  })

  it('binomialCdf: exact lower tails', () => {
    const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-8 * b
    assert.ok(close(binomialCdf(0, 50, 0.1), 0.9 ** 50), String(binomialCdf(0, 50, 0.1)))
    assert.ok(close(binomialCdf(1, 3, 0.5), 0.5), String(binomialCdf(1, 3, 0.5)))
    assert.ok(close(binomialCdf(2, 10, 0.3), 0.3827827864), String(binomialCdf(2, 10, 0.3)))
    assert.equal(binomialCdf(5, 5, 0.3), 1)
  })

  it("at 100 % compares the canary with stable's earlier rate, and with max-error-rate", () => {
    let s = initialState()
    s = observe(s, { canaryRequests: 500, canaryErrors: 3, stableRequests: 1500, stableErrors: 8 })
    s = startStep(s)
    s = observe(s, { canaryRequests: 600, canaryErrors: 30, stableRequests: 0, stableErrors: 0 })
    const e = evaluate(s, { pauseOver: false, stepTimeUp: false })
    assert.equal(e.decision, 'reject')
    assert.equal(e.test, 'canary-vs-earlier-stable')
    let m = initialState({ maxErrorRate: 0.01 })
    m = observe(
      m,
      { canaryRequests: 600, canaryErrors: 30, stableRequests: 0, stableErrors: 0 },
      { maxErrorRate: 0.01 },
    )
    assert.equal(
      evaluate(m, { pauseOver: false, stepTimeUp: false }, { maxErrorRate: 0.01 }).test,
      'canary-vs-max-error-rate',
    )
    assert.equal(evaluate(m, { pauseOver: false, stepTimeUp: false }, { maxErrorRate: 0.01 }).decision, 'reject')
  })
  it('Monte Carlo: the targets of issue 10 at 10 req/s, default steps, 60 s pauses', () => {
    // Seeded and bounded (a fixed number of rollouts, each at most 4 x 180 evaluations): ~2 s.
    const rand = prng(20261202)
    const run = (n: number, ps: number, pc: number) => {
      const ends: Record<string, number> = {}
      const times: number[] = []
      const failed: number[] = []
      for (let i = 0; i < n; i++) {
        const r = rollout(rand, ps, pc)
        ends[r.decision] = (ends[r.decision] ?? 0) + 1
        if (r.rolledBack) {
          times.push(r.seconds)
          failed.push(r.canaryFailed)
        }
      }
      const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
      const share = (d: string): number => (ends[d] ?? 0) / n
      return { share, rolledBack: times.length / n, meanS: mean(times), meanFailed: mean(failed) }
    }
    const h05 = run(1000, 0.005, 0.005)
    const h1 = run(1000, 0.01, 0.01)
    const bad = run(400, 0.005, 0.05)
    const broken = run(200, 0.005, 1)
    const outage = run(200, 0.1, 0.1)
    const pct = (x: number): string => `${(100 * x).toFixed(2)} %`
    console.log(
      `# Monte Carlo (10 req/s, steps 10/25/50/100 %, 60 s pauses): false rollback ${pct(h05.rolledBack)} at 0.5 %, ` +
        `${pct(h1.rolledBack)} at 1 % (1000 rollouts each); 5 %-vs-0.5 % canary rolled back ${pct(bad.rolledBack)} ` +
        `after ${bad.meanS.toFixed(1)} s on average (400); 100 %-broken canary: ${broken.meanFailed.toFixed(1)} failed ` +
        `requests (200); stable and canary both at 10 %: blamed on the canary in ${pct(outage.share('reject'))} (200)`,
    )
    assert.ok(h05.rolledBack <= 0.01, `false rollback at 0.5 %: ${h05.rolledBack}`)
    assert.ok(h1.rolledBack <= 0.01, `false rollback at 1 %: ${h1.rolledBack}`)
    assert.ok(bad.rolledBack >= 0.98, `5 % canary caught: ${bad.rolledBack}`)
    assert.equal(bad.share('reject'), bad.rolledBack, 'caught by the test, not by max-step-time')
    assert.ok(broken.share('reject') === 1 && broken.meanFailed <= 20, `broken canary: ${broken.meanFailed} failed`)
    assert.ok(outage.share('reject') <= 0.01 && outage.share('stable-unhealthy') >= 0.99, 'an outage is not blamed')
    // The 90 s target is not met at analysis-alpha 0.01 (README; the bench prints the trade-off). ~101 s on average
    // (standard error ~2.5 s on 400 rollouts); the mixture before issue 10 took ~117 s here: this fails if it is back.
    assert.ok(bad.meanS <= 110, `mean time to rollback ${bad.meanS} s`)
  })
})
