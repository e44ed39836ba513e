// The API server's service proxy handler, mounted on a tiny server, forwarding to a tiny upstream.
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { handleServiceProxy, parseServiceProxyPath } from '../../sim/kube/service-proxy.js'

const listen = async (s: Server): Promise<string> => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`
}
const close = (s: Server): Promise<void> =>
  new Promise((r) => {
    s.closeAllConnections()
    s.close(() => r())
  })

describe('service proxy handler', () => {
  let upstream: Server
  let api: Server
  let apiUrl = ''
  const seen: string[] = []

  before(async () => {
    upstream = createServer((req, res) => {
      seen.push(req.url ?? '')
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end('{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}')
    })
    const up = await listen(upstream)
    const dead = createServer()
    const deadUrl = await listen(dead)
    await close(dead)
    const upstreams = new Map([
      ['istio-system/prometheus:9090', up],
      ['monitoring/prom:http-web', up],
      ['monitoring/gone:9090', deadUrl],
    ])
    api = createServer((req, res) => {
      const parts = new URL(req.url ?? '/', 'http://x').pathname.split('/').slice(1)
      void handleServiceProxy(req, res, parts, upstreams).then((handled) => {
        if (!handled) res.writeHead(418).end()
      })
    })
    apiUrl = await listen(api)
  })
  after(async () => {
    await Promise.allSettled([close(api), close(upstream)])
  })

  it('parses the proxy path forms (name:port, scheme:name:port, name)', () => {
    assert.deepEqual(
      parseServiceProxyPath('api/v1/namespaces/istio-system/services/prometheus:9090/proxy/api/v1/query'.split('/')),
      { namespace: 'istio-system', name: 'prometheus', port: '9090', rest: '/api/v1/query' },
    )
    assert.deepEqual(parseServiceProxyPath('api/v1/namespaces/m/services/http:prom:web/proxy/'.split('/')), {
      namespace: 'm',
      name: 'prom',
      port: 'web',
      rest: '/',
    })
    assert.equal(parseServiceProxyPath('api/v1/namespaces/m/services/prom'.split('/')), undefined)
    assert.equal(parseServiceProxyPath('api/v1/namespaces/m/pods/p/proxy/x'.split('/')), undefined)
  })

  it('forwards path and query string to the upstream', async () => {
    const r = await fetch(
      `${apiUrl}/api/v1/namespaces/istio-system/services/prometheus:9090/proxy/api/v1/query?query=up&time=1`,
    )
    assert.equal(r.status, 200)
    assert.match(await r.text(), /"success"/)
    assert.equal(seen.at(-1), '/api/v1/query?query=up&time=1')
    assert.equal(
      (await fetch(`${apiUrl}/api/v1/namespaces/monitoring/services/prom:http-web/proxy/api/v1/query?query=x`)).status,
      200,
    )
  })

  it('answers 404 Status for an unknown service, 503 for an unreachable one, and leaves other paths alone', async () => {
    const nf = await fetch(`${apiUrl}/api/v1/namespaces/default/services/prometheus:9090/proxy/api/v1/query`)
    assert.equal(nf.status, 404)
    assert.deepEqual(((await nf.json()) as { kind: string; reason: string }).reason, 'NotFound')
    const down = await fetch(`${apiUrl}/api/v1/namespaces/monitoring/services/gone:9090/proxy/api/v1/query`)
    assert.equal(down.status, 503)
    assert.match(await down.text(), /error trying to reach service/)
    assert.equal((await fetch(`${apiUrl}/api/v1/namespaces/default/pods`)).status, 418)
  })
})
