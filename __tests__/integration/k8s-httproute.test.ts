// Kube's HttpRouteApi over HTTP against a small API server of this test's own (the simulation does not serve the
// Gateway API yet): the version it picks, the paths it calls, fieldManager on writes, a 409 as a ConflictError.
import assert from 'node:assert/strict'
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, it } from 'node:test'
import { KubeConfig } from '@kubernetes/client-node'
import { Kube } from '../../src/k8s/client.js'
import { ConflictError, type GatewayHttpRoute, KubeError } from '../../src/k8s/resources.js'

const GROUP = 'gateway.networking.k8s.io'

interface Seen {
  method: string
  url: string
}

/** An API server serving `versions` of the Gateway API group (none: not installed) and one HTTPRoute. */
async function apiServer(versions: string[]): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = []
  let stored: GatewayHttpRoute = {
    apiVersion: `${GROUP}/${versions[0] ?? 'v1'}`,
    kind: 'HTTPRoute',
    metadata: { name: 'reviews', namespace: 'bookinfo', resourceVersion: '7', generation: 1 },
    spec: { rules: [{ backendRefs: [{ name: 'reviews-v1', port: 9080 }] }] },
  }
  const json = (res: ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body))
  }
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '' })
    const path = new URL(req.url ?? '/', 'http://x').pathname
    if (path === '/apis') {
      const groups = versions.length
        ? [{ name: GROUP, versions: versions.map((v) => ({ groupVersion: `${GROUP}/${v}`, version: v })) }]
        : []
      return json(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups })
    }
    const base = `/apis/${GROUP}/${versions[0]}/namespaces/bookinfo/httproutes`
    if (req.method === 'GET' && path === base) return json(res, 200, { kind: 'HTTPRouteList', items: [stored] })
    if (req.method === 'GET' && path === `${base}/reviews`) return json(res, 200, stored)
    if (req.method === 'PUT' && path === `${base}/reviews`) {
      let text = ''
      for await (const chunk of req) text += chunk
      const body = JSON.parse(text) as GatewayHttpRoute
      if (body.metadata.resourceVersion !== stored.metadata.resourceVersion)
        return json(res, 409, { kind: 'Status', reason: 'Conflict', message: 'the object has been modified' })
      stored = {
        ...body,
        metadata: { ...body.metadata, resourceVersion: String(Number(body.metadata.resourceVersion) + 1) },
      }
      return json(res, 200, stored)
    }
    return json(res, 404, { kind: 'Status', reason: 'NotFound', message: `${path} not found` })
  }
  const server = createServer((req, res) => void handle(req, res))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server }
}

function kubeFor(url: string): Kube {
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'tok' }],
    contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
    currentContext: 'c',
  })
  return new Kube(kc, { sleep: async () => {} })
}

describe('Kube: HTTPRoutes', () => {
  const servers: Server[] = []
  after(() => {
    for (const s of servers) s.close()
  })

  it('reads, lists and replaces on v1 with fieldManager, and a stale resourceVersion is a ConflictError', async () => {
    const api = await apiServer(['v1', 'v1beta1'])
    servers.push(api.server)
    const kube = kubeFor(api.url)
    assert.equal(await kube.gatewayApiVersion(), 'v1')
    const route = await kube.getHttpRoute('bookinfo', 'reviews')
    assert.equal((await kube.listHttpRoutes('bookinfo')).length, 1)
    const rules = [{ backendRefs: [{ name: 'reviews-v1', port: 9080, weight: 90 }] }]
    const written = await kube.replaceHttpRoute({ ...route, spec: { ...route.spec, rules } })
    assert.equal(written.metadata.resourceVersion, '8')
    const put = api.seen.find((s) => s.method === 'PUT')
    assert.equal(
      put?.url,
      `/apis/${GROUP}/v1/namespaces/bookinfo/httproutes/reviews?fieldManager=istio-canary`,
      'the write names istio-canary as field manager',
    )
    await assert.rejects(kube.replaceHttpRoute(route), (err: unknown) => err instanceof ConflictError)
    assert.equal(api.seen.filter((s) => s.url === '/apis').length, 1, 'the served version is asked once')
  })

  it('falls back to v1beta1 where v1 is not served, and says how to install the CRDs when none is', async () => {
    const old = await apiServer(['v1beta1'])
    servers.push(old.server)
    const kube = kubeFor(old.url)
    assert.equal(await kube.gatewayApiVersion(), 'v1beta1')
    assert.equal((await kube.getHttpRoute('bookinfo', 'reviews')).metadata.name, 'reviews')

    const none = await apiServer([])
    servers.push(none.server)
    await assert.rejects(
      kubeFor(none.url).getHttpRoute('bookinfo', 'reviews'),
      (err: unknown) =>
        err instanceof KubeError &&
        err.status === 404 &&
        /does not serve gateway\.networking\.k8s\.io: the Gateway API CRDs are not installed/.test(err.message),
    )
  })
})
