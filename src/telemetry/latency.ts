// The latency verdict of a step (SPEC section 6 rule 2), pure: the canary's p95 over the step's window, from the
// duration histograms (Prometheus computes it: ./queries.ts buildLatencyQueries), against `max-latency` and
// against stable's p95 over the same window.
//
// What "against stable's p95" means here:
//  - `max-latency` is the bound the canary is held to. A canary inside it passes, however it compares with
//    stable: a canary at 1.5x stable's p95 that users still get within the bound is not rolled back. (Istio's
//    histograms are coarse — Envoy's default buckets 0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500 ms... —
//    and histogram_quantile interpolates linearly within a bucket, so a ratio of two p95s can be off by a whole
//    bucket, 2x to 5x: a relative bound alone would roll back healthy canaries.)
//  - Stable's p95 decides whom a p95 over the bound is blamed on. Over the bound while stable is inside it (or
//    far faster): the canary is slow, reject. Over the bound while stable, on enough requests of its own, is
//    over it too and the canary is at most BLAME_FACTOR times slower: a slowdown that hits stable as hard (a
//    shared dependency, the node, the network): the step fails as "stable unhealthy", the canary not blamed.
//  - Never judged on fewer than MIN_LATENCY_REQUESTS canary requests in the step (a p95 of a few samples is the
//    slowest one or two), nor without `max-latency`: then the verdict says that latency was not judged, and why.
//    At 100 %, where stable serves nothing, the canary is judged against `max-latency` alone.

export const MIN_LATENCY_REQUESTS = 100
/** Both over max-latency: the canary is blamed only when its p95 is more than this many times stable's. */
export const BLAME_FACTOR = 2

export interface VersionLatency {
  version: string
  /** Requests the version served in the step (from the counters). */
  requests: number
  /** p95 over the step's window, ms; NaN when the window holds no histogram sample. */
  p95Ms: number
}

export type LatencyDecision = 'not-judged' | 'pass' | 'reject' | 'stable-unhealthy'

export interface LatencyVerdict {
  decision: LatencyDecision
  reason: string
}

/** A p95 for a sentence: `97.5 ms`, `+Inf ms` (beyond the last bucket), `no samples`. */
export const formatP95 = (ms: number): string =>
  Number.isNaN(ms) ? 'no samples' : ms === Infinity ? 'above the last bucket' : `${Math.round(ms * 10) / 10} ms`

export function judgeLatency(o: {
  maxLatencyMs: number | undefined
  canary: VersionLatency
  stable: VersionLatency
  minRequests?: number
}): LatencyVerdict {
  const { canary, stable } = o
  const min = o.minRequests ?? MIN_LATENCY_REQUESTS
  if (o.maxLatencyMs === undefined) return { decision: 'not-judged', reason: 'latency not judged: no max-latency set' }
  const max = o.maxLatencyMs
  if (canary.requests < min) {
    return {
      decision: 'not-judged',
      reason: `latency not judged: ${canary.version} served ${canary.requests} of the ${min} requests a p95 needs`,
    }
  }
  if (Number.isNaN(canary.p95Ms)) {
    return {
      decision: 'not-judged',
      reason:
        `latency not judged: Prometheus has no istio_request_duration_milliseconds samples of ` +
        `${canary.version} in the step`,
    }
  }
  const stableKnown = stable.requests >= min && !Number.isNaN(stable.p95Ms)
  const stableText = stableKnown
    ? `stable ${stable.version} p95 ${formatP95(stable.p95Ms)}`
    : `stable ${stable.version} not compared (${stable.requests} requests)`
  if (canary.p95Ms <= max) {
    return {
      decision: 'pass',
      reason: `${canary.version} p95 ${formatP95(canary.p95Ms)} within max-latency ${max} ms, ${stableText}`,
    }
  }
  if (stableKnown && stable.p95Ms > max && canary.p95Ms <= BLAME_FACTOR * stable.p95Ms) {
    return {
      decision: 'stable-unhealthy',
      reason:
        `stable is slow too (${stable.version} p95 ${formatP95(stable.p95Ms)}, ${canary.version} ` +
        `${formatP95(canary.p95Ms)}, both above max-latency ${max} ms), the canary is not blamed`,
    }
  }
  return {
    decision: 'reject',
    reason: `the canary is slow: ${canary.version} p95 ${formatP95(canary.p95Ms)} above max-latency ${max} ms, ${stableText}`,
  }
}
