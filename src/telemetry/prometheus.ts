// A small Prometheus query client: instant queries (GET /api/v1/query?query=&time=) parsed into vectors or
// scalars, every failure turned into one clear error. Three ways to reach a Prometheus behind one interface:
//  - direct:  a base URL, optionally with a bearer token;
//  - service: an in-cluster Service through the Kubernetes API server's service proxy,
//             {server}/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/api/v1/query, with the cluster
//             credential (https://kubernetes.io/docs/tasks/access-application-cluster/access-cluster-services/);
//  - azure:   an Azure Monitor workspace query endpoint with an Entra token for
//             https://prometheus.monitor.azure.com/.default (US Government .azure.us, China .azure.cn: the
//             scopes KEDA and Grafana use per cloud) from a TokenCredential-shaped object
//             (https://learn.microsoft.com/azure/azure-monitor/metrics/prometheus-api-promql).
// Response shape and error format: https://prometheus.io/docs/prometheus/latest/querying/api/ —
// {"status":"success","data":{"resultType":"vector"|"scalar"|...,"result":...}} or
// {"status":"error","errorType":"bad_data"|"timeout"|"execution"|...,"error":"..."} with 400/422/503.
import { request as httpRequest } from 'node:http'
import { request as httpsRequest, type RequestOptions } from 'node:https'
import { AZURE_CLOUDS, type AzureCloudName } from '../azure/clouds.js'

export interface Sample {
  labels: Record<string, string>
  value: number
}

export type QueryResult = { type: 'vector'; samples: Sample[] } | { type: 'scalar'; value: number }

export interface PrometheusClient {
  /** What this client reaches, for logs (never a secret). */
  readonly describe: string
  /** Instant query at `time` (default now). */
  query(promql: string, time?: Date): Promise<QueryResult>
}

/** Why a query failed: `kind` lets a caller tell "cannot reach" from "refused" from "bad query". */
export class PrometheusError extends Error {
  constructor(
    message: string,
    readonly kind: 'unreachable' | 'timeout' | 'http' | 'forbidden' | 'unauthorized' | 'query' | 'malformed',
    readonly status?: number,
  ) {
    super(message)
    this.name = 'PrometheusError'
  }
}

export interface HttpResponse {
  status: number
  body: string
}

/** GET with headers; resolves on any HTTP status, rejects only when no answer came. */
export type HttpGet = (url: string, headers: Record<string, string>, timeoutMs: number) => Promise<HttpResponse>

/** A node:http(s) getter; `tls` adds options such as `ca`, `cert`, `key` (as the kubeconfig gives them). */
export function nodeHttpGet(tls: Pick<RequestOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> = {}): HttpGet {
  return (url, headers, timeoutMs) =>
    new Promise((resolve, reject) => {
      const u = new URL(url)
      const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
        u,
        { method: 'GET', headers, ...(u.protocol === 'https:' ? tls : {}) },
        (res) => {
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (c: Buffer) => {
            size += c.length
            if (size <= 16 * 1024 * 1024) chunks.push(c)
          })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
          res.on('error', reject)
        },
      )
      req.setTimeout(timeoutMs, () =>
        req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      )
      req.on('error', reject)
      req.end()
    })
}

/** The @azure/identity TokenCredential shape (only what is used). */
export interface TokenCredentialLike {
  getToken(scopes: string | string[]): Promise<{ token: string; expiresOnTimestamp: number } | null>
}

/** Audiences of Azure Monitor query endpoints, one per cloud; the scope is `<audience>/.default`. */
const PROMETHEUS_AUDIENCES = Object.values(AZURE_CLOUDS).map((cloud) => cloud.prometheusAudience)

/** The Entra scope for a workspace query endpoint: from its host suffix, else from the cloud name. */
export function azureMonitorScope(endpoint: string, cloud: AzureCloudName = 'AzureCloud'): string {
  const host = new URL(endpoint).hostname.toLowerCase()
  for (const aud of PROMETHEUS_AUDIENCES) {
    if (host.endsWith(`.${new URL(aud).hostname}`)) return `${aud}/.default`
  }
  return `${AZURE_CLOUDS[cloud].prometheusAudience}/.default`
}

/** True for an Azure Monitor workspace query endpoint (`*.prometheus.monitor.azure.{com,us,cn}`). */
export function isAzureMonitorEndpoint(url: string): boolean {
  try {
    const host = new URL(url).hostname.toLowerCase()
    return PROMETHEUS_AUDIENCES.some((a) => host.endsWith(`.${new URL(a).hostname}`))
  } catch {
    return false
  }
}

export type PrometheusTarget =
  | { kind: 'direct'; url: string; token?: string }
  | { kind: 'service'; server: string; namespace: string; name: string; port: number | string }
  | { kind: 'azure'; url: string; credential: TokenCredentialLike; scope?: string }

export interface ClientOptions {
  /**
   * Transport (default nodeHttpGet()). For `service`, one that applies the cluster credential: see
   * kubeconfigHttpGet.
   */
  get?: HttpGet
  timeoutMs?: number
}

/** `namespace/name:port` (the `prometheus-service` input). */
export function parseServiceRef(ref: string): { namespace: string; name: string; port: number | string } {
  const m = ref.trim().match(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9-]+)$/)
  if (!m) throw new Error(`prometheus-service '${ref}' is not namespace/name:port (e.g. istio-system/prometheus:9090)`)
  const [, namespace = '', , name = '', , portName = ''] = m
  return { namespace, name, port: /^\d+$/.test(portName) ? Number(portName) : portName }
}

const trimSlash = (u: string): string => u.replace(/\/+$/, '')

export function createPrometheusClient(target: PrometheusTarget, opts: ClientOptions = {}): PrometheusClient {
  const get = opts.get ?? nodeHttpGet()
  const timeoutMs = opts.timeoutMs ?? 10_000
  let base: string
  let describe: string
  let auth: () => Promise<Record<string, string>>
  switch (target.kind) {
    case 'direct':
      base = trimSlash(target.url)
      describe = `Prometheus at ${base} (prometheus-url)`
      auth = async () => (target.token ? { authorization: `Bearer ${target.token}` } : {})
      break
    case 'service': {
      const svc = `${encodeURIComponent(target.name)}:${encodeURIComponent(String(target.port))}`
      const namespace = encodeURIComponent(target.namespace)
      base = `${trimSlash(target.server)}/api/v1/namespaces/${namespace}/services/${svc}/proxy`
      describe =
        `Prometheus service ${target.namespace}/${target.name}:${target.port} ` +
        "through the API server's service proxy"
      auth = async () => ({})
      break
    }
    case 'azure': {
      base = trimSlash(target.url)
      const scope = target.scope ?? azureMonitorScope(target.url)
      describe = `Azure Monitor workspace ${base} (Entra scope ${scope})`
      auth = async () => {
        let t: Awaited<ReturnType<TokenCredentialLike['getToken']>>
        try {
          t = await target.credential.getToken(scope)
        } catch (err) {
          throw new PrometheusError(
            `could not get an Entra token for ${scope}: ${err instanceof Error ? err.message : String(err)}`,
            'unauthorized',
          )
        }
        if (!t) throw new PrometheusError(`the Azure credential gave no token for ${scope}`, 'unauthorized')
        return { authorization: `Bearer ${t.token}` }
      }
      break
    }
  }

  return {
    describe,
    async query(promql, time) {
      const params = new URLSearchParams({ query: promql })
      if (time) params.set('time', (time.getTime() / 1000).toFixed(3))
      const url = `${base}/api/v1/query?${params}`
      const headers = { accept: 'application/json', ...(await auth()) }
      let res: HttpResponse
      try {
        res = await get(url, headers, timeoutMs)
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code === 'ETIMEDOUT')
          throw new PrometheusError(`${describe} did not answer within ${timeoutMs} ms`, 'timeout')
        throw new PrometheusError(
          `${describe} is unreachable: ${err instanceof Error ? err.message : String(err)}`,
          'unreachable',
        )
      }
      return parseQueryResponse(res, describe)
    },
  }
}

/** Parses an /api/v1/query answer (any status) into a result, or throws a PrometheusError saying what went wrong. */
export function parseQueryResponse(res: HttpResponse, describe = 'Prometheus'): QueryResult {
  let json: unknown
  try {
    json = JSON.parse(res.body)
  } catch {
    json = undefined
  }
  const j = typeof json === 'object' && json !== null ? (json as Record<string, unknown>) : undefined
  if (j?.['status'] === 'error') {
    const type = typeof j['errorType'] === 'string' ? j['errorType'] : 'error'
    const msg = typeof j['error'] === 'string' ? j['error'] : 'no message'
    throw new PrometheusError(
      `${describe} refused the query (${type}, HTTP ${res.status}): ${msg}`,
      type === 'timeout' ? 'timeout' : 'query',
      res.status,
    )
  }
  const azure = describe.startsWith('Azure Monitor workspace')
  if (res.status === 401)
    throw new PrometheusError(
      `${describe} answered 401 Unauthorized: the credential was not accepted` +
        (azure ? " (the token's scope must be the workspace's audience: check azure-cloud and prometheus-scope)" : ''),
      'unauthorized',
      401,
    )
  if (res.status === 403) {
    const hint = describe.includes('service proxy')
      ? ' (the identity needs get on services/proxy in that namespace)'
      : azure
        ? ' (the identity needs the Monitoring Data Reader role on the Azure Monitor workspace)'
        : ''
    throw new PrometheusError(`${describe} answered 403 Forbidden${hint}: ${snippet(res.body)}`, 'forbidden', 403)
  }
  if (res.status < 200 || res.status >= 300)
    throw new PrometheusError(`${describe} answered HTTP ${res.status}: ${snippet(res.body)}`, 'http', res.status)
  const data = j?.['data']
  if (j?.['status'] !== 'success' || typeof data !== 'object' || data === null) {
    throw new PrometheusError(
      `${describe} gave an answer that is not a Prometheus query result: ${snippet(res.body)}`,
      'malformed',
      res.status,
    )
  }
  const d = data as Record<string, unknown>
  if (d['resultType'] === 'scalar') return { type: 'scalar', value: sampleValue(d['result'], describe) }
  if (d['resultType'] === 'vector' && Array.isArray(d['result'])) {
    return {
      type: 'vector',
      samples: d['result'].map((s: unknown) => {
        const o = (typeof s === 'object' && s !== null ? s : {}) as Record<string, unknown>
        const m = (typeof o['metric'] === 'object' && o['metric'] !== null ? o['metric'] : {}) as Record<
          string,
          unknown
        >
        const labels = Object.fromEntries(
          Object.entries(m).filter((e): e is [string, string] => typeof e[1] === 'string'),
        )
        return { labels, value: sampleValue(o['value'], describe) }
      }),
    }
  }
  throw new PrometheusError(
    `${describe} answered a ${String(d['resultType'])} result; an instant vector or scalar was expected`,
    'malformed',
    res.status,
  )
}

/** [unixSeconds, "value"]; values are strings, NaN and ±Inf included. */
function sampleValue(v: unknown, describe: string): number {
  if (!Array.isArray(v) || v.length !== 2 || typeof v[1] !== 'string')
    throw new PrometheusError(`${describe} gave a malformed sample`, 'malformed')
  const text = v[1]
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  return Number(text)
}

const snippet = (s: string): string => {
  const t = s.replace(/\s+/g, ' ').trim()
  return t.length > 200 ? `${t.slice(0, 200)}...` : t || '(empty body)'
}

/**
 * An HttpGet that applies a kubeconfig's current-context credential (CA, client certificate, bearer token,
 * exec/auth-provider tokens) the way @kubernetes/client-node's own requests do: KubeConfig.applyToHTTPSOptions.
 * `kc` is structurally typed so this module does not pull in the client library.
 */
export function kubeconfigHttpGet(kc: { applyToHTTPSOptions(o: RequestOptions): Promise<void> }): HttpGet {
  return async (url, headers, timeoutMs) => {
    const o: RequestOptions = { headers: {} }
    await kc.applyToHTTPSOptions(o)
    const extra = Object.fromEntries(Object.entries(o.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]))
    const tls: Pick<RequestOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> = {}
    if (o.ca !== undefined) tls.ca = o.ca
    if (o.cert !== undefined) tls.cert = o.cert
    if (o.key !== undefined) tls.key = o.key
    if (o.rejectUnauthorized !== undefined) tls.rejectUnauthorized = o.rejectUnauthorized
    return nodeHttpGet(tls)(url, { ...extra, ...headers }, timeoutMs)
  }
}
