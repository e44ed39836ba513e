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
  /** destination_service_name (Istio). */
  service: string
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

/** A label value for an equality/regex matcher: quotes and backslashes escaped; regex metacharacters too when `regex`. */
export function quoteLabel(v: string, regex = false): string {
  const body = regex ? v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : v
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

export function buildQueries(t: QueryTarget, windowSeconds: number): StepQueries {
  if (t.versions.length === 0) throw new Error('no versions to compare')
  const w = windowOf(windowSeconds)
  const flavor = t.flavor ?? 'istio-sidecar'
  if (flavor === 'linkerd') {
    const deps = t.versions.map((v) => t.deployments?.[v] ?? `${t.service}-${v}`)
    const sel = `namespace=${quoteLabel(t.namespace)},direction="inbound",deployment=~${regexAlternatives(deps)}`
    return {
      by: 'deployment',
      requests: `sum by (deployment) (increase(response_total{${sel}}${w}))`,
      errors: `sum by (deployment) (increase(response_total{${sel},classification="failure"}${w}))`,
      p95: `histogram_quantile(0.95, sum by (le, deployment) (rate(response_latency_ms_bucket{${sel}}${w})))`,
    }
  }
  const reporter = flavor === 'istio-ambient' ? 'waypoint' : 'destination'
  const sel = `reporter="${reporter}",destination_workload_namespace=${quoteLabel(t.namespace)},destination_service_name=${quoteLabel(t.service)},destination_version=~${regexAlternatives(t.versions)}`
  return {
    by: 'destination_version',
    requests: `sum by (destination_version) (increase(istio_requests_total{${sel}}${w}))`,
    errors: `sum by (destination_version) (increase(istio_requests_total{${sel},response_code=~"5.."}${w}))`,
    p95: `histogram_quantile(0.95, sum by (le, destination_version) (rate(istio_request_duration_milliseconds_bucket{${sel}}${w})))`,
  }
}

/** Cumulative counters (not increases) per version: for a sequential test that differences successive scrapes. */
export function buildCounterQueries(t: QueryTarget): { requests: string; errors: string; by: string } {
  const q = buildQueries(t, 60)
  const strip = (s: string): string => s.replace(/increase\((.*)\[\d+s\]\)/, '$1')
  return { by: q.by, requests: strip(q.requests), errors: strip(q.errors) }
}

/** Per-version values of a vector result, keyed by the grouping label (Linkerd deployments mapped back to versions). */
export function perVersion(
  t: QueryTarget,
  samples: Array<{ labels: Record<string, string>; value: number }>,
): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(t.versions.map((v) => [v, 0]))
  for (const s of samples) {
    let v: string | undefined
    if ((t.flavor ?? 'istio-sidecar') === 'linkerd') {
      const d = s.labels['deployment']
      v = t.versions.find((x) => (t.deployments?.[x] ?? `${t.service}-${x}`) === d)
    } else v = s.labels['destination_version']
    if (v !== undefined && v in out) out[v] = s.value
  }
  return out
}
