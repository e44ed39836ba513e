// A Prometheus behind a bearer-token-checking reverse proxy, as a self-hosted Prometheus is often exposed
// (an ingress or oauth2-proxy in front of it): loopback HTTPS with the test CA that forwards GET
// /api/v1/query (and /api/v1/query_range) to a real Prometheus only with `Authorization: Bearer <token>`;
// a missing or wrong token is 401 with `WWW-Authenticate: Bearer` (RFC 6750 section 3). For the direct path
// of the action (`prometheus-url` + `prometheus-token`).
import { type LoopbackServer, sendJson, startHttps } from '../net/https.js'
import type { TestPki } from '../net/tls.js'
import { forwardQuery, isQueryPath } from './forward.js'

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
    // Counted before it answers, as before: a test reads `forwarded` once the query is under way.
    if (isQueryPath(url.pathname)) counts.forwarded++
    await forwardQuery(req, res, o.upstream, 502)
  })
  return Object.defineProperties(srv, {
    forwarded: { get: () => counts.forwarded, enumerable: true },
    refused: { get: () => counts.refused, enumerable: true },
  }) as BearerProxySim
}
