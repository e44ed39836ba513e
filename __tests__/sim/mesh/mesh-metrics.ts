// The simulated data plane's telemetry, as the real proxies export it, for a real Prometheus to scrape.
//
// Istio (Envoy sidecars, istio "stats" filter): `istio_requests_total` (counter) and
// `istio_request_duration_milliseconds` (histogram), reported by the client proxy (reporter="source") and the
// server proxy (reporter="destination"), with Istio's standard labels
// (https://istio.io/latest/docs/reference/config/metrics/). The histogram's buckets are Envoy's defaults, which
// Istio keeps unless a pod sets `sidecar.istio.io/statsHistogramBuckets`
// (https://istio.io/latest/docs/reference/config/annotations/): envoyproxy/envoy
// source/common/stats/histogram_impl.cc, HistogramSettingsImpl::defaultBuckets():
// 0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000 ms,
// exported as `le="<bound>"` with fmt "{:.32g}" (source/server/admin/prometheus_stats.cc), so 3600000, never 3.6e+06.
// The value recorded is the request's duration in WHOLE milliseconds: istio/proxy
// source/extensions/filters/http/istio_stats/istio_stats.cc records
// `absl::FromChrono(duration) / absl::Milliseconds(1)` (an int64 division: a 0.7 ms request counts as 0 ms).
// Linkerd (linkerd2-proxy, https://linkerd.io/2/reference/proxy-metrics/): `response_total` and
// `response_latency_ms` with direction, deployment, namespace, classification, status_code, exported too so
// a Linkerd query can be tried later on the same traffic.
//
// Which proxies see a call depends on the data plane (RequestRecord.hop):
//  - 'sidecar' (Istio sidecars): the client's Envoy (reporter="source") and the server's (reporter="destination"),
//    and the Linkerd families as well (as before layouts were modelled: a Linkerd query can be tried on the same
//    traffic).
//  - 'waypoint' (Istio ambient, L7 through a waypoint): the waypoint reports istio_requests_total and the duration
//    histogram with reporter="waypoint" and the same standard labels (istio.io docs/ambient/migrate, post-migration
//    observability changes; src/telemetry/queries.ts); the client's Envoy, when there is one (the ingress gateway),
//    reports reporter="source"; the destination's ztunnel reports TCP only.
//  - 'ztunnel' (Istio ambient, L4): no request metrics from the mesh but an Envoy client's reporter="source";
//    ztunnel exports istio_tcp_connections_opened_total / istio_tcp_connections_closed_total /
//    istio_tcp_sent_bytes_total / istio_tcp_received_bytes_total (https://istio.io/latest/docs/reference/config/metrics/,
//    "TCP metrics"), reporter="destination" with the source and destination workloads, versions and SPIFFE
//    principals (istio/istio tests/integration/ambient/baseline_test.go buildL4Query); one connection per call here.
//  - 'linkerd' (linkerd2-proxy): response_total and response_latency_ms only: direction="inbound" from the server's
//    proxy (namespace, deployment, pod of the server) and direction="outbound" from the client's (with dst_namespace,
//    dst_deployment, dst_service of the server), no Istio family.
// The text is the Prometheus exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): written by hand for a handful of series.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

export const ISTIO_DURATION_BUCKETS_MS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
]
export const LINKERD_LATENCY_BUCKETS_MS = [
  1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 40000,
  50000,
]

export interface Workload {
  /** Deployment name, e.g. reviews-v3 */
  workload: string
  namespace: string
  /** `app` label: the canonical service */
  app: string
  version: string
  /** The pod's service account: its SPIFFE identity in the principal labels (ambient). */
  serviceAccount?: string
}

const principal = (w: Workload): string =>
  `spiffe://cluster.local/ns/${w.namespace}/sa/${w.serviceAccount ?? 'default'}`

/** Which data plane carried a call (see the head of this file). */
export type Hop = 'sidecar' | 'waypoint' | 'ztunnel' | 'linkerd'

export interface RequestRecord {
  /** Default 'sidecar'. */
  hop?: Hop
  /** Whether the client has a proxy reporting on its side (false: an ambient pod, no sidecar). Default true. */
  sourceReports?: boolean
  source: Workload
  destination: Workload & { service: string; serviceNamespace: string }
  responseCode: number
  /** Envoy response flags, '-' when none (UH: no healthy upstream). */
  responseFlags: string
  durationMs: number
  /** false when no destination proxy saw the request (e.g. no healthy upstream): only the source reports it. */
  reachedDestination: boolean
}

interface Histogram {
  buckets: number[]
  counts: number[]
  sum: number
  count: number
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
const labelText = (labels: Array<[string, string]>): string =>
  labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')

export class MeshMetrics {
  private readonly counters = new Map<string, Map<string, number>>()
  private readonly histograms = new Map<string, Map<string, Histogram>>()

  private inc(name: string, labels: Array<[string, string]>, by = 1): void {
    let m = this.counters.get(name)
    if (!m) this.counters.set(name, (m = new Map()))
    const k = labelText(labels)
    m.set(k, (m.get(k) ?? 0) + by)
  }

  private observe(name: string, buckets: number[], labels: Array<[string, string]>, v: number): void {
    let m = this.histograms.get(name)
    if (!m) this.histograms.set(name, (m = new Map()))
    const k = labelText(labels)
    let h = m.get(k)
    if (!h) m.set(k, (h = { buckets, counts: buckets.map(() => 0), sum: 0, count: 0 }))
    buckets.forEach((b, i) => {
      if (v <= b) h.counts[i]! += 1
    })
    h.sum += v
    h.count += 1
  }

  record(r: RequestRecord): void {
    const hop = r.hop ?? 'sidecar'
    if (hop === 'linkerd') {
      this.recordLinkerd(r, true)
      return
    }
    const d = r.destination
    const reporters: Array<'source' | 'destination' | 'waypoint'> = []
    if (r.sourceReports ?? true) reporters.push('source')
    if (r.reachedDestination && hop === 'sidecar') reporters.push('destination')
    if (r.reachedDestination && hop === 'waypoint') reporters.push('waypoint')
    if (r.reachedDestination && hop !== 'sidecar') this.recordTcp(r)
    for (const reporter of reporters) {
      const labels: Array<[string, string]> = [
        ['reporter', reporter],
        ['source_workload', r.source.workload],
        ['source_workload_namespace', r.source.namespace],
        ['source_app', r.source.app],
        ['source_version', r.source.version],
        ['source_canonical_service', r.source.app],
        ['source_canonical_revision', r.source.version],
        ['destination_service', `${d.service}.${d.serviceNamespace}.svc.cluster.local`],
        ['destination_service_name', d.service],
        ['destination_service_namespace', d.serviceNamespace],
        ['destination_workload', d.workload],
        ['destination_workload_namespace', d.namespace],
        ['destination_app', d.app],
        ['destination_version', d.version],
        ['destination_canonical_service', d.app],
        ['destination_canonical_revision', d.version],
        ['request_protocol', 'http'],
        ['response_code', String(r.responseCode)],
        ['response_flags', r.responseFlags],
        ['connection_security_policy', reporter === 'source' ? 'unknown' : 'mutual_tls'],
        // The waypoint knows both identities (istio/istio tests/integration/ambient/baseline_test.go buildQuery).
        ...(reporter === 'waypoint'
          ? ([
              ['source_principal', principal(r.source)],
              ['destination_principal', principal(r.destination)],
            ] as Array<[string, string]>)
          : []),
      ]
      this.inc('istio_requests_total', labels)
      this.observe('istio_request_duration_milliseconds', ISTIO_DURATION_BUCKETS_MS, labels, Math.floor(r.durationMs))
    }
    if (hop === 'sidecar') this.recordLinkerd(r, false)
  }

  /** ztunnel's L4 view of a call: one connection opened and closed, the bytes each way (estimates). */
  private recordTcp(r: RequestRecord): void {
    const d = r.destination
    const labels: Array<[string, string]> = [
      ['reporter', 'destination'],
      ['source_workload', r.source.workload],
      ['source_workload_namespace', r.source.namespace],
      ['source_canonical_service', r.source.app],
      ['source_canonical_revision', r.source.version],
      ['source_version', r.source.version],
      ['source_principal', principal(r.source)],
      ['destination_service', `${d.service}.${d.serviceNamespace}.svc.cluster.local`],
      ['destination_service_name', d.service],
      ['destination_service_namespace', d.serviceNamespace],
      ['destination_workload', d.workload],
      ['destination_workload_namespace', d.namespace],
      ['destination_canonical_service', d.app],
      ['destination_canonical_revision', d.version],
      ['destination_version', d.version],
      ['destination_principal', principal(d)],
      ['request_protocol', 'tcp'],
      ['response_flags', '-'],
      ['connection_security_policy', 'mutual_tls'],
    ]
    this.inc('istio_tcp_connections_opened_total', labels)
    this.inc('istio_tcp_connections_closed_total', labels)
    this.inc('istio_tcp_received_bytes_total', labels, 220)
    this.inc('istio_tcp_sent_bytes_total', labels, 600)
  }

  /**
   * linkerd2-proxy's response metrics: the server's inbound proxy (when the call reached it) and, when `outbound`,
   * the client's outbound proxy with the dst_ labels of the server (https://linkerd.io/2/reference/proxy-metrics/).
   */
  private recordLinkerd(r: RequestRecord, outbound: boolean): void {
    const d = r.destination
    const classification = r.responseCode >= 500 ? 'failure' : 'success'
    const authority = `${d.service}.${d.serviceNamespace}.svc.cluster.local:9080`
    const sides: Array<Array<[string, string]>> = []
    if (r.reachedDestination)
      sides.push([
        ['direction', 'inbound'],
        ['authority', authority],
        ['namespace', d.namespace],
        ['deployment', d.workload],
        ['pod_template_hash', 'sim'],
        ['tls', 'true'],
        ['status_code', String(r.responseCode)],
      ])
    if (outbound && (r.sourceReports ?? true))
      sides.push([
        ['direction', 'outbound'],
        ['authority', authority],
        ['namespace', r.source.namespace],
        ['deployment', r.source.workload],
        ['dst_namespace', d.namespace],
        ['dst_deployment', d.workload],
        ['dst_service', d.service],
        ['tls', 'true'],
        ['status_code', String(r.responseCode)],
      ])
    for (const base of sides) {
      this.inc('response_total', [...base, ['classification', classification]])
      this.observe('response_latency_ms', LINKERD_LATENCY_BUCKETS_MS, base, r.durationMs)
    }
  }

  /**
   * The sum of a counter's series whose labels include all of `match` (read from the mesh itself, not through
   * Prometheus), e.g. count('istio_requests_total', { reporter: 'destination', destination_workload:
   * 'reviews-v3', response_code: '500' }): the benchmark's count of failed user requests.
   */
  count(name: string, match: Record<string, string>): number {
    const wanted = Object.entries(match).map(([k, v]) => `${k}="${escapeLabel(v)}"`)
    let total = 0
    for (const [labels, v] of this.counters.get(name) ?? []) {
      const have = new Set(labels.split(/,(?=[a-z_]+=")/))
      if (wanted.every((w) => have.has(w))) total += v
    }
    return total
  }

  /** Exposition format text of every series. */
  text(): string {
    const out: string[] = []
    const help: Record<string, [string, string]> = {
      istio_requests_total: ['counter', 'Requests served, by Istio standard labels.'],
      istio_request_duration_milliseconds: ['histogram', 'Request durations in milliseconds.'],
      response_total: ['counter', 'Linkerd proxy: responses, by classification.'],
      response_latency_ms: ['histogram', 'Linkerd proxy: response latency in milliseconds.'],
      istio_tcp_connections_opened_total: ['counter', 'ztunnel: TCP connections opened.'],
      istio_tcp_connections_closed_total: ['counter', 'ztunnel: TCP connections closed.'],
      istio_tcp_received_bytes_total: ['counter', 'ztunnel: bytes received.'],
      istio_tcp_sent_bytes_total: ['counter', 'ztunnel: bytes sent.'],
    }
    for (const [name, series] of this.counters) {
      const [type, h] = help[name] ?? ['counter', name]
      out.push(`# HELP ${name} ${h}`, `# TYPE ${name} ${type}`)
      for (const [labels, v] of series) out.push(`${name}{${labels}} ${v}`)
    }
    for (const [name, series] of this.histograms) {
      const [type, h] = help[name] ?? ['histogram', name]
      out.push(`# HELP ${name} ${h}`, `# TYPE ${name} ${type}`)
      for (const [labels, hist] of series) {
        hist.buckets.forEach((b, i) => {
          out.push(`${name}_bucket{${labels},le="${b}"} ${hist.counts[i]}`)
        })
        out.push(`${name}_bucket{${labels},le="+Inf"} ${hist.count}`)
        out.push(`${name}_sum{${labels}} ${hist.sum}`, `${name}_count{${labels}} ${hist.count}`)
      }
    }
    return `${out.join('\n')}\n`
  }
}

export interface MetricsEndpoint {
  /** host:port, for a scrape config */
  address: string
  url: string
  close(): Promise<void>
}

/** A plain-HTTP loopback scrape endpoint: GET /stats/prometheus (the sidecar agent's path) or /metrics. */
export async function serveMetrics(metrics: MeshMetrics): Promise<MetricsEndpoint> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path !== '/stats/prometheus' && path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
      return
    }
    const body = metrics.text()
    res.writeHead(200, {
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    })
    res.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    address: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}/stats/prometheus`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
