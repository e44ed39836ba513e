// A simulated Azure Monitor workspace query endpoint: loopback HTTPS that accepts only an Entra access token
// issued by the simulated Entra for the Azure Monitor audience (https://prometheus.monitor.azure.com) and
// forwards GET /api/v1/query (and /api/v1/query_range) to a real Prometheus. As the real endpoint does, a
// missing or wrong token is 401 (https://learn.microsoft.com/azure/azure-monitor/metrics/prometheus-api-promql).
import { type LoopbackServer, sendJson, startHttps } from '../net/https.js'
import type { TestPki } from '../net/tls.js'
import { forwardQuery, isQueryPath } from '../telemetry/forward.js'

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
    // Counted before it answers, as before: a test reads `forwarded` once the query is under way.
    if (isQueryPath(url.pathname)) counts.forwarded++
    await forwardQuery(req, res, o.upstream, 503)
  })
  return Object.defineProperties(srv, {
    forwarded: { get: () => counts.forwarded, enumerable: true },
    refused: { get: () => counts.refused, enumerable: true },
  }) as AzureMonitorSim
}
