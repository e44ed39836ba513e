import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import * as tls from 'node:tls'
import { gzipSync } from 'node:zlib'
import { runSmokeTest, summarize, type SmokeConfig } from '../../src/verify/smoke/smoke.js'
import { SmokeVerifier } from '../../src/verify/smoke/verifier.js'
import { SMOKE_ROLLOUT_ALPHA } from '../../src/verify/smoke/verdict.js'
import type { StepContext } from '../../src/verify/verifier.js'
import { startHttps, type LoopbackServer } from '../sim/net/https.js'
import { makePki, type TestPki } from '../sim/net/tls.js'

interface TestServer {
  url: string
  inFlight: number
  maxInFlight: number
  hits: number
  seen: IncomingMessage['headers'][]
  close(): Promise<void>
}

let switchFailing = false
const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A plain HTTP server on 127.0.0.1 with a few behaviours chosen by path. */
async function startServer(): Promise<TestServer> {
  const state: TestServer = { url: '', inFlight: 0, maxInFlight: 0, hits: 0, seen: [], close: async () => {} }
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const u = new URL(req.url ?? '/', 'http://x')
    const n = state.hits++
    state.seen.push(req.headers)
    switch (u.pathname) {
      case '/slow':
        await delay(Number(u.searchParams.get('ms') ?? '30'))
        res.end('<title>Simple Bookstore App</title>')
        return
      case '/hang':
        return // never answers
      case '/503':
        res.writeHead(503, { 'content-type': 'text/plain' })
        res.end('no healthy upstream')
        return
      case '/mixed': // every 4th request 503
        if (n % 4 === 3) {
          res.writeHead(503)
          res.end('upstream connect error')
        } else res.end('ok')
        return
      case '/redirect':
        res.writeHead(302, { location: '/elsewhere' })
        res.end()
        return
      case '/body-version': {
        // 1 in 4 served by v3 (and those fail), the rest by v1
        const v = n % 4 === 0 ? 'v3' : 'v1'
        res.writeHead(v === 'v3' ? 500 : 200, { 'content-type': 'text/html' })
        res.end(`<html><p>Reviews served by: reviews-${v}-5f7d8b9c4-x2k8q</p></html>`)
        return
      }
      case '/switch': // every 4th request 503 while `switchFailing` is set
        if (switchFailing && n % 4 === 3) {
          res.writeHead(503)
          res.end('upstream connect error')
        } else res.end('ok')
        return
      case '/header-version':
        res.writeHead(200, { 'x-app-version': n % 2 === 0 ? 'reviews-v2' : 'reviews-v3' })
        res.end('no version in this body')
        return
      case '/gzip':
        res.writeHead(200, { 'content-encoding': 'gzip' })
        res.end(gzipSync('compressed <title>Simple Bookstore App</title> reviews-v2'))
        return
      default:
        res.end('ok')
    }
  }
  const server = createServer((req, res) => {
    state.inFlight++
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight)
    res.on('close', () => state.inFlight--)
    void handle(req, res)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  state.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections()
      server.close(() => r())
    })
  return state
}

const cfg = (url: string, over: Partial<SmokeConfig> = {}): SmokeConfig => ({
  url,
  requests: 8,
  concurrency: 2,
  timeoutMs: 2000,
  headers: {},
  ...over,
})

describe('runSmokeTest', () => {
  let srv: TestServer
  before(async () => {
    srv = await startServer()
  })
  after(async () => {
    await srv.close()
  })
  const reset = (): void => {
    srv.hits = 0
    srv.maxInFlight = 0
    srv.seen = []
  }

  it('sends exactly `requests` requests with at most `concurrency` in flight', async () => {
    reset()
    const r = await runSmokeTest(cfg(`${srv.url}/slow?ms=40`, { requests: 12, concurrency: 3 }))
    assert.equal(srv.hits, 12)
    assert.equal(srv.maxInFlight, 3)
    assert.equal(r.requests, 12)
    assert.equal(r.successes, 12)
    assert.equal(r.successRate, 1)
    assert.ok(r.p50Ms >= 35 && r.p95Ms >= r.p50Ms, `p50 ${r.p50Ms} p95 ${r.p95Ms}`)
    assert.deepEqual(r.failures, [])
    assert.deepEqual(r.byVersion, {})
    assert.equal(r.unattributed, 12)
  })

  it('concurrency above requests only opens as many as needed; 0 requests is an empty result', async () => {
    reset()
    const r = await runSmokeTest(cfg(`${srv.url}/slow?ms=30`, { requests: 2, concurrency: 10 }))
    assert.equal(srv.hits, 2)
    assert.equal(srv.maxInFlight, 2)
    assert.equal(r.successes, 2)
    const empty = await runSmokeTest(cfg(`${srv.url}/`, { requests: 0 }))
    assert.equal(empty.requests, 0)
    assert.equal(empty.successRate, 0)
    assert.equal(empty.p95Ms, 0)
  })

  it('a request over the timeout fails with "timeout after N ms"', async () => {
    reset()
    const t0 = Date.now()
    const r = await runSmokeTest(cfg(`${srv.url}/hang`, { requests: 2, concurrency: 2, timeoutMs: 150 }))
    assert.ok(Date.now() - t0 < 1500)
    assert.equal(r.successes, 0)
    assert.deepEqual(r.failures, [{ reason: 'timeout after 150 ms', count: 2 }])
    assert.ok(r.p50Ms >= 140, `latency ${r.p50Ms}`)
  })

  it('checks the body against `expect` (stateless even with the g flag)', async () => {
    reset()
    const good = await runSmokeTest(cfg(`${srv.url}/slow?ms=1`, { expect: /<title>Simple Bookstore App<\/title>/g }))
    assert.equal(good.successes, 8)
    const bad = await runSmokeTest(cfg(`${srv.url}/`, { expect: /Bookstore/i }))
    assert.equal(bad.successes, 0)
    assert.deepEqual(bad.failures, [{ reason: 'body did not match /Bookstore/i', count: 8 }])
  })

  it('decodes compressed bodies before matching', async () => {
    reset()
    const r = await runSmokeTest(
      cfg(`${srv.url}/gzip`, {
        requests: 2,
        expect: /Simple Bookstore/,
        versionPattern: /reviews-(v\d+)/,
        headers: { 'Accept-Encoding': 'gzip' },
      }),
    )
    assert.equal(r.successes, 2)
    assert.equal(r.byVersion['v2']?.requests, 2)
  })

  it('sends the configured headers, Host included', async () => {
    reset()
    await runSmokeTest(
      cfg(`${srv.url}/`, {
        requests: 3,
        headers: { 'x-canary-preview': 'pr-123', Host: 'bookinfo.example.com', Authorization: 'Bearer t' },
      }),
    )
    assert.equal(srv.seen.length, 3)
    for (const h of srv.seen) {
      assert.equal(h['x-canary-preview'], 'pr-123')
      assert.equal(h.host, 'bookinfo.example.com')
      assert.equal(h.authorization, 'Bearer t')
    }
  })

  it('rejects invalid headers and URLs before sending anything', async () => {
    reset()
    await assert.rejects(
      runSmokeTest(cfg(`${srv.url}/`, { headers: { 'bad name': 'x' } })),
      /invalid header "bad name"/,
    )
    await assert.rejects(runSmokeTest(cfg(`${srv.url}/`, { headers: { ok: 'a\nb' } })), /invalid header "ok"/)
    await assert.rejects(runSmokeTest(cfg('ftp://127.0.0.1/')), /http or https/)
    await assert.rejects(runSmokeTest(cfg(`${srv.url}/`, { concurrency: 0 })), RangeError)
    assert.equal(srv.hits, 0)
  })

  it('attributes versions from the body, failures included', async () => {
    reset()
    const r = await runSmokeTest(
      cfg(`${srv.url}/body-version`, { requests: 20, concurrency: 1, versionPattern: /reviews-(v\d+)-/ }),
    )
    assert.deepEqual(Object.keys(r.byVersion), ['v1', 'v3'])
    assert.equal(r.byVersion['v1']?.requests, 15)
    assert.equal(r.byVersion['v1']?.successes, 15)
    assert.equal(r.byVersion['v3']?.requests, 5)
    assert.equal(r.byVersion['v3']?.successes, 0)
    // the error responses that name their version are the canary's, with their reasons
    assert.deepEqual(r.byVersion['v3']?.failures, [{ reason: 'HTTP 500', count: 5 }])
    assert.equal(r.byVersion['v1']?.failures, undefined)
    assert.equal(r.unattributed, 0)
    assert.equal(r.unattributedFailures, 0)
    assert.deepEqual(r.failures, [{ reason: 'HTTP 500', count: 5 }])
    assert.equal(r.successRate, 0.75)
  })

  it('with maxLatencyMs, counts the requests slower than it, overall and per version', async () => {
    reset()
    const fast = await runSmokeTest(cfg(`${srv.url}/slow?ms=1`, { requests: 4, maxLatencyMs: 1000 }))
    assert.equal(fast.slow, 0)
    const slow = await runSmokeTest(
      cfg(`${srv.url}/slow?ms=60`, { requests: 4, maxLatencyMs: 30, versionPattern: /(Simple)/ }),
    )
    assert.equal(slow.slow, 4)
    assert.equal(slow.byVersion['Simple']?.slow, 4)
    assert.equal((await runSmokeTest(cfg(`${srv.url}/slow?ms=1`, { requests: 2 }))).slow, undefined)
  })

  it('attributes versions from a response header', async () => {
    reset()
    const r = await runSmokeTest(
      cfg(`${srv.url}/header-version`, {
        requests: 10,
        concurrency: 1,
        versionPattern: /x-app-version: reviews-(v\d+)/i,
      }),
    )
    assert.equal(r.byVersion['v2']?.requests, 5)
    assert.equal(r.byVersion['v3']?.requests, 5)
    assert.equal(r.unattributed, 0)
  })

  it('a pattern that matches nothing leaves the responses unattributed, and failed', async () => {
    reset()
    const r = await runSmokeTest(cfg(`${srv.url}/`, { requests: 4, versionPattern: /reviews-(v\d+)/ }))
    assert.deepEqual(r.byVersion, {})
    assert.equal(r.unattributed, 4)
    assert.equal(r.successes, 0)
    assert.deepEqual(r.failures, [{ reason: 'no version matching /reviews-(v\\d+)/ in the response', count: 4 }])
    // without a pattern the same responses pass
    assert.equal((await runSmokeTest(cfg(`${srv.url}/`, { requests: 4 }))).successes, 4)
  })

  it('503s fail with "HTTP 503"; 3xx passes without following the redirect', async () => {
    reset()
    const r = await runSmokeTest(cfg(`${srv.url}/503`, { requests: 4 }))
    assert.equal(r.successes, 0)
    assert.deepEqual(r.failures, [{ reason: 'HTTP 503', count: 4 }])
    const mixed = await runSmokeTest(cfg(`${srv.url}/mixed`, { requests: 8, concurrency: 1 }))
    assert.equal(mixed.successes, 6)
    assert.equal(mixed.successRate, 0.75)
    reset()
    const redirect = await runSmokeTest(cfg(`${srv.url}/redirect`, { requests: 3 }))
    assert.equal(redirect.successes, 3)
    assert.equal(srv.hits, 3) // /elsewhere never requested
  })

  it('a refused connection fails with ECONNREFUSED', async () => {
    const tmp = createServer()
    await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r))
    const port = (tmp.address() as AddressInfo).port
    await new Promise<void>((r) => tmp.close(() => r()))
    const r = await runSmokeTest(cfg(`http://127.0.0.1:${port}/`, { requests: 3 }))
    assert.equal(r.successes, 0)
    assert.deepEqual(r.failures, [{ reason: 'ECONNREFUSED', count: 3 }])
  })

  it('an outer abort stops promptly and rejects with its reason', async () => {
    reset()
    const ac = new AbortController()
    const reason = new Error('workflow cancelled')
    const t0 = Date.now()
    const p = runSmokeTest(cfg(`${srv.url}/hang`, { requests: 50, concurrency: 4, timeoutMs: 30_000 }), ac.signal)
    setTimeout(() => ac.abort(reason), 100)
    await assert.rejects(p, (err) => err === reason)
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`)
    assert.equal(srv.hits, 4) // no request started after the abort
    // an already aborted signal sends nothing
    reset()
    await assert.rejects(runSmokeTest(cfg(`${srv.url}/`), AbortSignal.abort(reason)), (err) => err === reason)
    assert.equal(srv.hits, 0)
  })
})

describe('runSmokeTest over https', () => {
  let pki: TestPki
  let srv: LoopbackServer
  const sni: Array<string | false> = []
  const defaults = tls.getCACertificates('default')
  before(async () => {
    pki = makePki()
    srv = await startHttps(pki, (req, res) => {
      sni.push((req.socket as Socket & { servername?: string | false }).servername ?? false)
      res.end('reviews-v1')
    })
  })
  after(async () => {
    tls.setDefaultCACertificates(defaults)
    await srv.close()
  })

  it('an untrusted certificate is a failure with its TLS code', async () => {
    const r = await runSmokeTest(cfg(`${srv.url}/`, { requests: 2 }))
    assert.equal(r.successes, 0)
    assert.equal(r.failures.length, 1)
    assert.match(
      r.failures[0]?.reason ?? '',
      /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/,
    )
  })

  it('trusting the CA passes; a Host header becomes the TLS server name, as a gateway routes by SNI', async () => {
    tls.setDefaultCACertificates([...defaults, pki.caPem])
    sni.length = 0
    const plain = await runSmokeTest(
      cfg(`${srv.url}/`, { requests: 2, concurrency: 1, versionPattern: /reviews-(v\d)/ }),
    )
    assert.equal(plain.successes, 2)
    assert.equal(plain.byVersion['v1']?.requests, 2)
    assert.deepEqual(sni, [false, false]) // no SNI for an IP address
    sni.length = 0
    const named = await runSmokeTest(
      cfg(`${srv.url}/`, { requests: 2, concurrency: 1, headers: { Host: 'localhost' } }),
    )
    assert.equal(named.successes, 2)
    assert.deepEqual(sni, ['localhost', 'localhost'])
    // the certificate must then be valid for that host
    const other = await runSmokeTest(cfg(`${srv.url}/`, { requests: 1, headers: { Host: 'bookinfo.example.com' } }))
    assert.deepEqual(other.failures, [{ reason: 'ERR_TLS_CERT_ALTNAME_INVALID', count: 1 }])
  })
})

describe('summarize', () => {
  it('keeps the 5 most frequent failure reasons, ties in order of first occurrence', () => {
    const outcomes = [
      ...['a', 'b', 'b', 'c', 'd', 'e', 'f', 'f', 'f'].map((error) => ({ ok: false, latencyMs: 1, error })),
      { ok: true, latencyMs: 2 },
    ]
    const r = summarize(outcomes)
    assert.deepEqual(
      r.failures.map((f) => `${f.reason}${f.count}`),
      ['f3', 'b2', 'a1', 'c1', 'd1'],
    )
    assert.equal(r.successRate, 0.1)
  })
})

// judge() (the verdict) is pure: its tests are in __tests__/unit/smoke-verdict.test.ts.

describe('SmokeVerifier: each step against the baseline the engine runs first', () => {
  let srv: TestServer
  before(async () => {
    srv = await startServer()
  })
  after(() => srv.close())

  const verifier = (): SmokeVerifier =>
    new SmokeVerifier(
      {
        request: { url: `${srv.url}/switch`, requests: 20, concurrency: 1, timeoutMs: 2000, headers: {} },
        threshold: 0.5,
        steps: 1,
        canaryVersions: ['v3'],
        stableVersions: ['v1'],
        checkShares: false,
        rolloutAlpha: SMOKE_ROLLOUT_ALPHA,
      },
      { sleep: async () => {}, log: () => {} },
    )
  const step = (kind: StepContext['kind'], weight: number): StepContext => ({
    kind,
    index: kind === 'baseline' ? 0 : 1,
    weight,
    pauseMs: 0,
    headers: {},
    signal: new AbortController().signal,
  })

  it('the baseline sends twice the requests; 5 failures of 20 against none of 40 fail the step, above the floor', async () => {
    const v = verifier()
    switchFailing = false
    srv.hits = 0
    const base = await v.verify(step('baseline', 0))
    assert.equal(base.verdict, 'pass')
    assert.equal(srv.hits, 40)
    switchFailing = true
    srv.hits = 0
    const check = await v.verify(step('step', 100))
    assert.equal(srv.hits, 20)
    assert.equal(check.verdict, 'fail')
    // p = C(20,5) / C(60,5) = 0.0028 < 1 % (one step, one test)
    assert.deepEqual(check.reasons, [
      '5/20 requests failed (25.0 %) against 0/40 (0.0 %) before the rollout: more than the baseline explains ' +
        '(one-sided Fisher exact p=0.0028 < 0.0100) (HTTP 503 ×5)',
    ])
    assert.match(
      v.describe(),
      /each step compared with a baseline of 40 requests .*at most 1 % false rollbacks over 1 step/,
    )
  })

  it('without a baseline (a preview), or when the baseline failed as much, only the floor applies', async () => {
    switchFailing = true
    srv.hits = 0
    assert.equal((await verifier().verify(step('preview', 100))).verdict, 'pass')
    const v = verifier()
    srv.hits = 0
    assert.equal((await v.verify(step('baseline', 0))).verdict, 'pass')
    srv.hits = 0
    assert.equal((await v.verify(step('step', 100))).verdict, 'pass')
    switchFailing = false
  })
})
