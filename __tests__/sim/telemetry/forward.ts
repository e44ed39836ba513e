// What the simulated Prometheus front doors (Azure Monitor-style endpoint, bearer-token proxy) do once a request
// is authorized: only the query API is served, and it is forwarded to the real Prometheus as it answers.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { request } from 'node:http'
import { sendJson } from '../net/https.js'

/** The paths of Prometheus's query API the front doors serve. */
export const isQueryPath = (pathname: string): boolean =>
  pathname === '/api/v1/query' || pathname === '/api/v1/query_range'

/**
 * Forwards a query-API request to `upstream`; any other path is a 404. `unavailable` is the status when the
 * upstream cannot be reached. Returns false for a path it does not serve (nothing forwarded).
 */
export async function forwardQuery(
  req: IncomingMessage,
  res: ServerResponse,
  upstream: string,
  unavailable: number,
): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'https://prometheus')
  if (!isQueryPath(url.pathname)) {
    sendJson(res, 404, { status: 'error', errorType: 'not_found', error: `path ${url.pathname} not found` })
    return false
  }
  await new Promise<void>((resolve) => {
    const up = request(new URL(url.pathname + url.search, upstream), { method: 'GET', timeout: 10_000 }, (r) => {
      res.writeHead(r.statusCode ?? 502, { 'content-type': r.headers['content-type'] ?? 'application/json' })
      r.pipe(res)
      r.on('end', resolve)
      r.on('error', () => resolve())
    })
    up.on('timeout', () => up.destroy(new Error('timeout')))
    up.on('error', (err) => {
      if (!res.headersSent)
        sendJson(res, unavailable, { status: 'error', errorType: 'unavailable', error: err.message })
      resolve()
    })
    up.end()
  })
  return true
}
