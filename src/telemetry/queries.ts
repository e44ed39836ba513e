// PromQL built from the rollout target: requests and 5xx per version over a window, and p95 latency per
// version from the duration histograms. Pure; the strings are logged and kept in the report.
// Istio labels: https://istio.io/latest/docs/reference/config/metrics/ (reporter is "source" or
// "destination" for sidecars; in ambient mode the waypoint proxy reports L7 metrics with
// reporter="waypoint"). Linkerd: https://linkerd.io/2/reference/proxy-metrics/ (response_total with
// classification="failure", response_latency_ms_bucket, per `deployment`, direction="inbound").

export type MeshFlavor = 'istio-sidecar' | 'istio-ambient' | 'linkerd'

export interface QueryTarget {
  /** Namespace of the destination workloads. */
  namespace: string
  /** destination_service_name (Istio): the target's Service. */
  service: string
  /**
   * Every destination_service_name the versions' requests may carry, when more than `service`: an HTTPRoute sends
   * to one backend Service per version (reviews-v1, reviews-v3) besides its parent Service (reviews).
   */
  services?: string[]
  /** Version label values to compare, e.g. ['v1', 'v3'] (stable first). */
  versions: string[]
  flavor?: MeshFlavor
  /** Linkerd: deployment per version (default `<service>-<version>`). */
  deployments?: Record<string, string>
}

export interface StepQueries {
  requests: string
  errors: string
  p95: string
  /** The label the per-version results are grouped by. */
  by: string
}

/**
 * A label value for an equality/regex matcher: quotes and backslashes escaped; regex metacharacters too when
 * `regex`.
 */
export function quoteLabel(value: string, regex = false): string {
  const body = regex ? value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : value
  return JSON.stringify(body)
}

/** A quoted RE2 alternation matching exactly these values. */
const regexAlternatives = (values: string[]): string =>
  JSON.stringify(values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'))

/** `[60s]`: a window in whole seconds, at least 1. */
export function windowOf(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new Error(`query window must be a positive number of seconds, got ${seconds}`)
  return `[${Math.max(1, Math.round(seconds))}s]`
}

export function buildQueries(target: QueryTarget, windowSeconds: number): StepQueries {
  if (target.versions.length === 0) throw new Error('no versions to compare')
  const range = windowOf(windowSeconds)
  const flavor = target.flavor ?? 'istio-sidecar'
  if (flavor === 'linkerd') {
    const deployments = target.versions.map((v) => target.deployments?.[v] ?? `${target.service}-${v}`)
    const namespace = quoteLabel(target.namespace)
    const sel = `namespace=${namespace},direction="inbound",deployment=~${regexAlternatives(deployments)}`
    return {
      by: 'deployment',
      requests: `sum by (deployment) (increase(response_total{${sel}}${range}))`,
      errors: `sum by (deployment) (increase(response_total{${sel},classification="failure"}${range}))`,
      p95: `histogram_quantile(0.95, sum by (le, deployment) (rate(response_latency_ms_bucket{${sel}}${range})))`,
    }
  }
  const reporter = flavor === 'istio-ambient' ? 'waypoint' : 'destination'
  const sel =
    `reporter="${reporter}",destination_workload_namespace=${quoteLabel(target.namespace)},` +
    (target.services && target.services.length > 0
      ? `destination_service_name=~${regexAlternatives(target.services)},`
      : `destination_service_name=${quoteLabel(target.service)},`) +
    `destination_version=~${regexAlternatives(target.versions)}`
  return {
    by: 'destination_version',
    requests: `sum by (destination_version) (increase(istio_requests_total{${sel}}${range}))`,
    errors: `sum by (destination_version) (increase(istio_requests_total{${sel},response_code=~"5.."}${range}))`,
    p95:
      'histogram_quantile(0.95, sum by (le, destination_version) ' +
      `(rate(istio_request_duration_milliseconds_bucket{${sel}}${range})))`,
  }
}

/** The quantile queries of a step's latency: per version, and over both versions ("all"). */
export interface LatencyQueries {
  p50: string
  p95: string
  p50All: string
  p95All: string
  by: string
}

/**
 * Latency quantiles over the last `windowSeconds` from the duration histograms, computed by Prometheus itself:
 * `histogram_quantile(q, sum by (le, <version label>) (rate(<histogram>_bucket{...}[window])))`
 * (https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile: linear interpolation
 * within the bucket the quantile falls in; NaN when the window holds no request).
 */
export function buildLatencyQueries(target: QueryTarget, windowSeconds: number): LatencyQueries {
  const queries = buildQueries(target, windowSeconds)
  const byVersion = (q: number): string => queries.p95.replace('histogram_quantile(0.95,', `histogram_quantile(${q},`)
  const overall = (q: number): string => byVersion(q).replace(`sum by (le, ${queries.by})`, 'sum by (le)')
  return { by: queries.by, p50: byVersion(0.5), p95: queries.p95, p50All: overall(0.5), p95All: overall(0.95) }
}

/** Cumulative counters (not increases) per version: for a sequential test that differences successive scrapes. */
export function buildCounterQueries(target: QueryTarget): { requests: string; errors: string; by: string } {
  const queries = buildQueries(target, 60)
  const strip = (query: string): string => query.replace(/increase\((.*)\[\d+s\]\)/, '$1')
  return { by: queries.by, requests: strip(queries.requests), errors: strip(queries.errors) }
}

/** Per-version values of a vector result, keyed by the grouping label (Linkerd deployments mapped back to versions). */
export function perVersion(
  target: QueryTarget,
  samples: Array<{ labels: Record<string, string>; value: number }>,
  /** The value of a version the result does not name: 0 for counters, NaN for quantiles (no sample). */
  missing = 0,
): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(target.versions.map((v) => [v, missing]))
  for (const sample of samples) {
    let version: string | undefined
    if ((target.flavor ?? 'istio-sidecar') === 'linkerd') {
      const deployment = sample.labels['deployment']
      version = target.versions.find((v) => (target.deployments?.[v] ?? `${target.service}-${v}`) === deployment)
    } else version = sample.labels['destination_version']
    if (version !== undefined && version in out) out[version] = sample.value
  }
  return out
}
