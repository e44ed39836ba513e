// Simulated user traffic: a bounded background load through the simulated ingress gateway, so a rollout step
// has real traffic for the telemetry to judge (not only the smoke test's requests). Open-loop at a fixed
// rate (requests are sent on schedule whether or not earlier ones have answered, as real users do), with a
// user mix: a share of the requests carry a signed-in session (BookInfo's `jason`, which the reviews
// VirtualService of the Istio samples routes by the `end-user` header productpage adds).
// Bounded three ways: duration, total requests, and requests in flight.
import { setTimeout as sleep } from 'node:timers/promises'

export interface LoadOptions {
  /** Gateway base URL, e.g. mesh.url */
  url: string
  /** Requests per second (default 10, at most 500). */
  rate?: number
  /** Share (0..1) of requests signed in as `user` (default 0.2). */
  loggedInShare?: number
  user?: string
  /** Stops after this long (default 60 s, at most 10 min). */
  durationMs?: number
  /** Stops after this many requests (default rate x duration). */
  maxRequests?: number
  /** At most this many requests in flight; beyond, a request is counted as dropped (default 200). */
  maxInFlight?: number
  path?: string
  /** Per-request timeout (default 5 s). */
  timeoutMs?: number
  /** Deterministic user mix. */
  random?: () => number
}

export interface LoadStats {
  sent: number
  ok: number
  /** 5xx answers, or an error block in a 200 page (BookInfo's retry-then-render), or transport errors. */
  failed: number
  dropped: number
  byStatus: Record<string, number>
}

export interface Load {
  stats: LoadStats
  /** Resolves when the load has ended by itself (duration or max requests) and every request has answered. */
  done: Promise<LoadStats>
  /** Stops sending; requests in flight may answer (bounded by their timeout), or are aborted with `abort`. */
  stop(opts?: { abort?: boolean }): Promise<LoadStats>
}

export function startLoad(o: LoadOptions): Load {
  const rate = Math.min(Math.max(o.rate ?? 10, 0.1), 500)
  const durationMs = Math.min(o.durationMs ?? 60_000, 600_000)
  const maxRequests = o.maxRequests ?? Math.ceil((rate * durationMs) / 1000)
  const maxInFlight = o.maxInFlight ?? 200
  const random = o.random ?? Math.random
  const loggedIn = o.loggedInShare ?? 0.2
  const user = o.user ?? 'jason'
  const path = o.path ?? '/productpage'
  const stats: LoadStats = { sent: 0, ok: 0, failed: 0, dropped: 0, byStatus: {} }
  const inFlight = new Set<Promise<void>>()
  const abort = new AbortController()
  let stopped = false

  const one = async (): Promise<void> => {
    const headers: Record<string, string> = {}
    if (random() < loggedIn) headers['cookie'] = `session=${encodeURIComponent(user)}`
    try {
      const r = await fetch(o.url + path, {
        headers,
        redirect: 'manual',
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(o.timeoutMs ?? 5000)]),
      })
      const body = await r.text()
      stats.byStatus[r.status] = (stats.byStatus[r.status] ?? 0) + 1
      if (r.status >= 500 || body.includes('Error fetching product')) stats.failed++
      else stats.ok++
    } catch {
      stats.byStatus['error'] = (stats.byStatus['error'] ?? 0) + 1
      stats.failed++
    }
  }

  const run = async (): Promise<LoadStats> => {
    const start = performance.now()
    const interval = 1000 / rate
    while (!stopped && stats.sent < maxRequests) {
      const due = start + stats.sent * interval
      if (due - start >= durationMs) break
      const wait = due - performance.now()
      if (wait > 0) await sleep(wait)
      if (stopped) break
      stats.sent++
      if (inFlight.size >= maxInFlight) {
        stats.dropped++
        continue
      }
      const p = one().finally(() => inFlight.delete(p))
      inFlight.add(p)
    }
    await Promise.allSettled([...inFlight])
    return stats
  }
  const done = run()
  return {
    stats,
    done,
    async stop(opts = {}) {
      stopped = true
      if (opts.abort) abort.abort()
      return done
    },
  }
}
