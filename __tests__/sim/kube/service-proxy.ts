// The Kubernetes API server's service proxy, for the simulated API server to mount:
//   /api/v1/namespaces/<ns>/services/[<scheme>:]<name>[:<port>]/proxy/<path...>
// forwards to the Service's upstream (here: a real Prometheus on loopback), with the query string, and
// answers as the API server does when it cannot: 404 with a Status object for an unknown Service, 503 when
// the upstream is unreachable (https://kubernetes.io/docs/tasks/access-application-cluster/access-cluster-services/,
// section "Manually constructing apiserver proxy URLs").
// Authentication and RBAC (`get` on `services/proxy`) stay the server's job, before this handler runs.
import { request } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** `ns/name:port` -> upstream base URL (http://127.0.0.1:9090). The port may be a number or a port name. */
export type ServiceUpstreams = Map<string, string>

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  const body = JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  })
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** Matches a service proxy path; parts are the path split on '/', without the leading empty part. */
export function parseServiceProxyPath(
  parts: string[],
): { namespace: string; name: string; port: string; rest: string } | undefined {
  // api, v1, namespaces, <ns>, services, <svc>, proxy, ...rest
  if (
    parts.length < 7 ||
    parts[0] !== 'api' ||
    parts[1] !== 'v1' ||
    parts[2] !== 'namespaces' ||
    parts[4] !== 'services' ||
    parts[6] !== 'proxy'
  )
    return undefined
  const seg = decodeURIComponent(parts[5]!).split(':')
  const [name, port = ''] = seg.length === 3 ? seg.slice(1) : seg
  return { namespace: parts[3]!, name: name!, port, rest: `/${parts.slice(7).join('/')}` }
}

/** Handles a service proxy request: true when the path was one (answered), false to let the router go on. */
export async function handleServiceProxy(
  req: IncomingMessage,
  res: ServerResponse,
  parts: string[],
  upstreams: ServiceUpstreams,
): Promise<boolean> {
  const p = parseServiceProxyPath(parts)
  if (!p) return false
  const upstream =
    upstreams.get(`${p.namespace}/${p.name}:${p.port}`) ??
    (p.port === '' ? [...upstreams].find(([k]) => k.startsWith(`${p.namespace}/${p.name}:`))?.[1] : undefined)
  if (!upstream) {
    status(res, 404, 'NotFound', `services "${p.name}" not found`)
    return true
  }
  const query = (req.url ?? '').includes('?') ? (req.url ?? '').slice((req.url ?? '').indexOf('?')) : ''
  const target = new URL(p.rest + query, upstream)
  await new Promise<void>((resolve) => {
    const out = request(
      target,
      { method: req.method ?? 'GET', headers: { accept: req.headers.accept ?? '*/*' }, timeout: 10_000 },
      (up) => {
        const headers: Record<string, string> = {}
        for (const h of ['content-type', 'content-encoding'])
          if (typeof up.headers[h] === 'string') headers[h] = up.headers[h] as string
        res.writeHead(up.statusCode ?? 502, headers)
        up.pipe(res)
        up.on('end', resolve)
        up.on('error', () => resolve())
      },
    )
    out.on('timeout', () => out.destroy(new Error('upstream timeout')))
    out.on('error', (err) => {
      if (!res.headersSent) status(res, 503, 'ServiceUnavailable', `error trying to reach service: ${err.message}`)
      else res.destroy()
      resolve()
    })
    out.end()
  })
  return true
}
