// Smoke test through the ingress gateway: N GET requests, C in flight, per-request timeout,
// optional body expectation and per-version attribution of the responses.
//
// Requests go through node:http / node:https rather than fetch: fetch silently drops a `Host` header,
// and a Host header (plus the TLS SNI that goes with it) is how an Istio Gateway picks the
// VirtualService host, e.g. `smoke-headers: Host: bookinfo.example.com`.
import * as http from 'node:http'
import * as https from 'node:https'
import { isIP } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
import * as zlib from 'node:zlib'
import { percentile } from './stats.js'

export interface SmokeConfig {
  /** Full URL: gateway base + path. */
  url: string
  requests: number
  concurrency: number
  timeoutMs: number
  expect?: RegExp
  headers: Record<string, string>
  /** One capture group naming the version that served a response; searched in headers, then body. A 2xx/3xx
   * response in which it finds no version fails. */
  versionPattern?: RegExp
  /** When set, the result counts the requests slower than this (overall and per version). */
  maxLatencyMs?: number
}

export interface RequestOutcome {
  ok: boolean
  status?: number
  latencyMs: number
  version?: string
  error?: string
}

export interface VersionStats {
  requests: number
  successes: number
  p50Ms: number
  p95Ms: number
  /** Requests slower than max-latency, when it is set. */
  slow?: number
  /** Top 3 failure reasons of the responses that named this version, most frequent first. */
  failures?: Array<{ reason: string; count: number }>
}

export interface SmokeResult {
  requests: number
  successes: number
  successRate: number
  p50Ms: number
  p95Ms: number
  /** Requests slower than max-latency, when it is set. */
  slow?: number
  byVersion: Record<string, VersionStats>
  /** Responses in which the version pattern found no version (all of them without a pattern). */
  unattributed: number
  /** Failed responses that named no version (with a version pattern; BookInfo's error pages name none). */
  unattributedFailures?: number
  /** Top 5 distinct failure reasons, most frequent first. */
  failures: Array<{ reason: string; count: number }>
}

/** Bodies are read in full, but only this much is kept for matching. */
const MAX_BODY_BYTES = 4 * 1024 * 1024

interface Exchange {
  status: number
  headerText: string
  body: string
}

/** Drop the stateful flags so .exec/.test start at 0 every time. */
function stateless(re: RegExp): RegExp {
  return re.global || re.sticky ? new RegExp(re.source, re.flags.replace(/[gy]/g, '')) : re
}

function decoded(res: http.IncomingMessage): Readable {
  const enc = String(res.headers['content-encoding'] ?? '')
    .trim()
    .toLowerCase()
  if (enc === 'gzip' || enc === 'x-gzip') return res.pipe(zlib.createGunzip())
  if (enc === 'deflate') return res.pipe(zlib.createInflate())
  if (enc === 'br') return res.pipe(zlib.createBrotliDecompress())
  return res
}

/** One GET, body included; rejects with signal.reason as soon as the signal aborts. */
function exchange(
  url: URL,
  headers: Record<string, string>,
  agent: http.Agent,
  signal: AbortSignal,
): Promise<Exchange> {
  return new Promise<Exchange>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error)
      return
    }
    const options: https.RequestOptions = { method: 'GET', headers, agent }
    const host = Object.entries(headers).find(([k]) => k.toLowerCase() === 'host')?.[1]
    if (url.protocol === 'https:' && host) {
      const name = host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1')
      if (!isIP(name)) options.servername = name
    }
    const mod = url.protocol === 'https:' ? https : http
    let req: http.ClientRequest | undefined
    const onAbort = (): void => {
      reject(signal.reason as Error)
      req?.destroy()
    }
    signal.addEventListener('abort', onAbort, { once: true })
    const fail = (err: unknown): void => {
      signal.removeEventListener('abort', onAbort)
      reject(err as Error)
    }
    req = mod.request(url, options, (res) => {
      const chunks: Buffer[] = []
      let kept = 0
      const stream = decoded(res)
      stream.on('data', (c: Buffer) => {
        if (kept < MAX_BODY_BYTES) {
          chunks.push(c)
          kept += c.length
        }
      })
      stream.on('error', fail)
      res.on('close', () => {
        if (!res.complete)
          fail(Object.assign(new Error('connection closed before the response ended'), { code: 'ECONNRESET' }))
      })
      stream.on('end', () => {
        signal.removeEventListener('abort', onAbort)
        const lines: string[] = []
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2)
          lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`)
        resolve({
          status: res.statusCode ?? 0,
          headerText: lines.join('\n'),
          body: Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8'),
        })
      })
    })
    req.on('error', fail)
    req.end()
  })
}

/** A short reason for a network error: its code (ECONNREFUSED, ECONNRESET, CERT_HAS_EXPIRED...), else its message. */
function networkReason(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; errors?: unknown }
  if (typeof e?.code === 'string' && e.code) return e.code
  if (Array.isArray(e?.errors) && e.errors.length > 0) return networkReason(e.errors[0])
  return typeof e?.message === 'string' && e.message ? e.message : String(err)
}

function findVersion(re: RegExp, ...texts: string[]): string | undefined {
  for (const text of texts) {
    const m = re.exec(text)
    if (m) return m[1] ?? m[0]
  }
  return undefined
}

function checkConfig(cfg: SmokeConfig): URL {
  for (const [name, value] of [
    ['requests', cfg.requests],
    ['concurrency', cfg.concurrency],
    ['timeoutMs', cfg.timeoutMs],
  ] as const) {
    if (!Number.isInteger(value) || value < (name === 'requests' ? 0 : 1)) {
      throw new RangeError(
        `smoke test: ${name} must be a ${name === 'requests' ? 'non-negative' : 'positive'} integer, got ${value}`,
      )
    }
  }
  let url: URL
  try {
    url = new URL(cfg.url)
  } catch {
    throw new TypeError(`smoke test: not a valid URL: ${cfg.url}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new TypeError(`smoke test: URL must be http or https: ${cfg.url}`)
  for (const [name, value] of Object.entries(cfg.headers)) {
    try {
      http.validateHeaderName(name)
      http.validateHeaderValue(name, value)
    } catch (err) {
      throw new TypeError(`smoke test: invalid header ${JSON.stringify(name)}: ${(err as Error).message}`)
    }
  }
  return url
}

/** Sends one request and classifies it. Rethrows only when the outer signal aborted. */
async function probe(
  cfg: SmokeConfig,
  url: URL,
  agent: http.Agent,
  expect: RegExp | undefined,
  versionPattern: RegExp | undefined,
  outer: AbortSignal | undefined,
): Promise<RequestOutcome> {
  const timeout = AbortSignal.timeout(cfg.timeoutMs)
  const signal = outer ? AbortSignal.any([outer, timeout]) : timeout
  const start = performance.now()
  try {
    const ex = await exchange(url, cfg.headers, agent, signal)
    const latencyMs = performance.now() - start
    const out: RequestOutcome = { ok: true, status: ex.status, latencyMs }
    const version = versionPattern ? findVersion(versionPattern, ex.headerText, ex.body) : undefined
    if (version !== undefined) out.version = version
    if (ex.status < 200 || ex.status > 399) {
      out.ok = false
      out.error = `HTTP ${ex.status}`
    } else if (expect && !expect.test(ex.body)) {
      out.ok = false
      out.error = `body did not match ${String(expect)}`
    } else if (versionPattern && version === undefined) {
      // With a version pattern, a healthy response names the version that served it. A page that does not
      // (e.g. BookInfo's "Error fetching product reviews", served with 200) is a failure of the version behind it.
      out.ok = false
      out.error = `no version matching ${String(versionPattern)} in the response`
    }
    return out
  } catch (err) {
    const latencyMs = performance.now() - start
    if (outer?.aborted) throw outer.reason
    const error = timeout.aborted ? `timeout after ${cfg.timeoutMs} ms` : networkReason(err)
    return { ok: false, latencyMs, error }
  }
}

const round = (ms: number): number => (Number.isNaN(ms) ? 0 : Math.round(ms * 10) / 10)

/** The `limit` most frequent failure reasons, most frequent first; ties in order of first occurrence. */
function topReasons(outcomes: readonly RequestOutcome[], limit: number): Array<{ reason: string; count: number }> {
  const reasons = new Map<string, number>()
  for (const o of outcomes) {
    if (o.ok) continue
    const reason = o.error ?? 'failed'
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
  }
  // Map keeps first-seen order, and sort is stable: ties stay in order of first occurrence.
  return [...reasons]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([reason, count]) => ({ reason, count }))
}

/**
 * Aggregates outcomes; latency percentiles (nearest rank) are over every request, failed ones included. With
 * `maxLatencyMs`, counts the requests slower than it (the smoke verdict tests that share, not a p95 of few samples).
 */
export function summarize(outcomes: readonly RequestOutcome[], maxLatencyMs?: number): SmokeResult {
  const successes = outcomes.filter((o) => o.ok).length
  const groups = new Map<string, RequestOutcome[]>()
  let unattributed = 0
  let unattributedFailures = 0
  for (const o of outcomes) {
    if (o.version === undefined) {
      unattributed++
      if (!o.ok) unattributedFailures++
    } else groups.set(o.version, [...(groups.get(o.version) ?? []), o])
  }
  const slow = (list: readonly RequestOutcome[]): { slow?: number } =>
    maxLatencyMs === undefined ? {} : { slow: list.filter((o) => o.latencyMs > maxLatencyMs).length }
  const byVersion: Record<string, VersionStats> = {}
  for (const [version, list] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const lat = list.map((o) => o.latencyMs)
    const failures = topReasons(list, 3)
    byVersion[version] = {
      requests: list.length,
      successes: list.filter((o) => o.ok).length,
      p50Ms: round(percentile(lat, 50)),
      p95Ms: round(percentile(lat, 95)),
      ...slow(list),
      ...(failures.length > 0 ? { failures } : {}),
    }
  }
  const lat = outcomes.map((o) => o.latencyMs)
  return {
    requests: outcomes.length,
    successes,
    successRate: outcomes.length > 0 ? successes / outcomes.length : 0,
    p50Ms: round(percentile(lat, 50)),
    p95Ms: round(percentile(lat, 95)),
    ...slow(outcomes),
    byVersion,
    unattributed,
    unattributedFailures,
    failures: topReasons(outcomes, 5),
  }
}

/**
 * Sends exactly `cfg.requests` GETs to `cfg.url`, at most `cfg.concurrency` in flight, and aggregates them.
 * A request passes on a 2xx/3xx status (redirects are not followed) whose body matches `cfg.expect` when set.
 * When `signal` aborts, in-flight requests are cancelled and the promise rejects with its reason.
 */
export async function runSmokeTest(cfg: SmokeConfig, signal?: AbortSignal): Promise<SmokeResult> {
  const url = checkConfig(cfg)
  signal?.throwIfAborted()
  const expect = cfg.expect ? stateless(cfg.expect) : undefined
  const versionPattern = cfg.versionPattern ? stateless(cfg.versionPattern) : undefined
  const workers = Math.min(cfg.concurrency, cfg.requests)
  const agent = new (url.protocol === 'https:' ? https.Agent : http.Agent)({
    keepAlive: true,
    maxSockets: workers || 1,
  })
  const outcomes: RequestOutcome[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < cfg.requests) {
      next++
      signal?.throwIfAborted()
      outcomes.push(await probe(cfg, url, agent, expect, versionPattern, signal))
    }
  }
  try {
    await Promise.all(Array.from({ length: workers }, worker))
  } finally {
    agent.destroy()
  }
  return summarize(outcomes, cfg.maxLatencyMs)
}
