// A simulated Azure Monitor workspace query endpoint: loopback HTTPS that accepts only an Entra access token
// issued by the simulated Entra for the Azure Monitor audience (https://prometheus.monitor.azure.com) and
// forwards GET /api/v1/query (and /api/v1/query_range) to a real Prometheus. As the real endpoint does, a
// missing or wrong token is 401 (https://learn.microsoft.com/azure/azure-monitor/metrics/prometheus-api-promql).
import { request } from 'node:http'
import { type LoopbackServer, sendJson, startHttps } from '../net/https.js'
import type { TestPki } from '../net/tls.js'

export interface AzureMonitorSim extends LoopbackServer {
  /** Queries forwarded, and refused (401). */
  forwarded: number
  refused: number
}

export async function startAzureMonitor(
  pki: TestPki,
  o: {
    upstream: string
    validate(token: string, audience: string): unknown
    audience?: string
  },
): Promise<AzureMonitorSim> {
  const audience = o.audience ?? 'https://prometheus.monitor.azure.com'
  const counts = { forwarded: 0, refused: 0 }
  const srv = await startHttps(pki, async (req, res) => {
    const url = new URL(req.url ?? '/', 'https://workspace')
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
    if (!m || !o.validate(m[1]!, audience)) {
      counts.refused++
      sendJson(
        res,
        401,
        {
          error: {
            code: 'InvalidAuthenticationToken',
            message: `The access token is missing or invalid: audience ${audience} expected`,
          },
        },
        { 'www-authenticate': 'Bearer' },
      )
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
        if (!res.headersSent) sendJson(res, 503, { status: 'error', errorType: 'unavailable', error: err.message })
        resolve()
      })
      up.end()
    })
  })
  return Object.defineProperties(srv, {
    forwarded: { get: () => counts.forwarded, enumerable: true },
    refused: { get: () => counts.refused, enumerable: true },
  }) as AzureMonitorSim
}
