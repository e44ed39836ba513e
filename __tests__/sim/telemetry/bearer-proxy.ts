// A Prometheus behind a bearer-token-checking reverse proxy, as a self-hosted Prometheus is often exposed
// (an ingress or oauth2-proxy in front of it): loopback HTTPS with the test CA that forwards GET
// /api/v1/query (and /api/v1/query_range) to a real Prometheus only with `Authorization: Bearer <token>`;
// a missing or wrong token is 401 with `WWW-Authenticate: Bearer` (RFC 6750 section 3). For the direct path
// of the action (`prometheus-url` + `prometheus-token`).
import { request } from 'node:http'
import { type LoopbackServer, sendJson, startHttps } from '../net/https.js'
import type { TestPki } from '../net/tls.js'

export interface BearerProxySim extends LoopbackServer {
  /** Queries forwarded, and refused (401). */
  forwarded: number
  refused: number
}

export async function startBearerProxy(pki: TestPki, o: { upstream: string; token: string }): Promise<BearerProxySim> {
  const counts = { forwarded: 0, refused: 0 }
  const srv = await startHttps(pki, async (req, res) => {
    const url = new URL(req.url ?? '/', 'https://prometheus')
    if (req.headers.authorization !== `Bearer ${o.token}`) {
      counts.refused++
      sendJson(res, 401, { error: 'unauthorized' }, { 'www-authenticate': 'Bearer realm="prometheus"' })
      return
    }
    if (url.pathname !== '/api/v1/query' && url.pathname !== '/api/v1/query_range') {
      sendJson(res, 404, { status: 'error', errorType: 'not_found', error: `path ${url.pathname} not found` })
      return
    }
    counts.forwarded++
    await new Promise<void>((resolve) => {
      const up = request(new URL(url.pathname + url.search, o.upstream), { method: 'GET', timeout: 10_000 }, (r) => {
        res.writeHead(r.statusCode ?? 502, { 'content-type': r.headers['content-type'] ?? 'application/json' })
        r.pipe(res)
        r.on('end', resolve)
        r.on('error', () => resolve())
      })
      up.on('timeout', () => up.destroy(new Error('timeout')))
      up.on('error', (err) => {
        if (!res.headersSent) sendJson(res, 502, { status: 'error', errorType: 'unavailable', error: err.message })
        resolve()
      })
      up.end()
    })
  })
  return Object.defineProperties(srv, {
    forwarded: { get: () => counts.forwarded, enumerable: true },
    refused: { get: () => counts.refused, enumerable: true },
  }) as BearerProxySim
}
