// Kube's Gateway API calls, in-process against the simulated API server over HTTPS (which serves
// gateway.networking.k8s.io as the CRDs do): the version it picks, fieldManager on writes (in managedFields), a
// stale resourceVersion as a ConflictError, the CRDs missing as an error saying how to install them, and the
// Gateways the readiness checks read (an ingress's address, a waypoint's Programmed condition).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { KubeConfig } from '@kubernetes/client-node'
import { Kube } from '../../src/k8s/client.js'
import { ConflictError, KubeError } from '../../src/k8s/resources.js'
import { seedGatewayApi } from '../sim/gateway/seed-gateway-api.js'
import { type KubeApi, startKubeApi } from '../sim/kube/server.js'
import { seedCluster } from '../sim/kube/seed.js'
import { KubeStore } from '../sim/kube/store.js'
import { type TestPki, makePki } from '../sim/net/tls.js'

let pki: TestPki
const apis: KubeApi[] = []

function kubeFor(api: KubeApi): Kube {
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'sim', server: api.url, caData: Buffer.from(pki.caPem).toString('base64') }],
    users: [{ name: 'u', token: 'tok' }],
    contexts: [{ name: 'sim', cluster: 'sim', user: 'u' }],
    currentContext: 'sim',
  })
  return new Kube(kc, { sleep: async () => {} })
}

async function cluster(gatewayApiVersions: string[]): Promise<{ api: KubeApi; store: KubeStore }> {
  const store = new KubeStore()
  seedCluster(store, { layout: 'oss', gatewayPort: 1 })
  if (gatewayApiVersions.length > 0) seedGatewayApi(store, { keepVirtualServices: true })
  const api = await startKubeApi({
    pki,
    store,
    authenticate: (t) => (t === 'tok' ? { user: 'u' } : undefined),
    gatewayApiVersions,
  })
  apis.push(api)
  return { api, store }
}

before(() => {
  pki = makePki()
})
after(() => {
  for (const api of apis) api.close()
})

describe('Kube: Gateway API', () => {
  it('reads, lists and replaces HTTPRoutes on v1 as istio-canary; a stale resourceVersion is a ConflictError', async () => {
    const { api } = await cluster(['v1', 'v1beta1'])
    const kube = kubeFor(api)
    assert.equal(await kube.gatewayApiVersion(), 'v1')
    const route = await kube.getHttpRoute('bookinfo', 'reviews')
    assert.equal(route.apiVersion, 'gateway.networking.k8s.io/v1')
    assert.ok((await kube.listHttpRoutes('bookinfo')).some((r) => r.metadata.name === 'reviews'))
    const rules = [{ ...route.spec.rules?.[0], backendRefs: [{ name: 'reviews-v1', port: 9080, weight: 90 }] }]
    const written = await kube.replaceHttpRoute({ ...route, spec: { ...route.spec, rules } })
    assert.notEqual(written.metadata.resourceVersion, route.metadata.resourceVersion)
    assert.equal(written.spec.rules?.[0]?.backendRefs?.[0]?.weight, 90)
    const managers = ((written.metadata['managedFields'] ?? []) as Array<{ manager: string }>).map((m) => m.manager)
    assert.ok(managers.includes('istio-canary'), `the write names istio-canary as field manager: ${managers}`)
    await assert.rejects(kube.replaceHttpRoute(route), (err: unknown) => err instanceof ConflictError)
  })

  it('falls back to v1beta1 where v1 is not served, and says how to install the CRDs when none is', async () => {
    const old = kubeFor((await cluster(['v1beta1'])).api)
    assert.equal(await old.gatewayApiVersion(), 'v1beta1')
    assert.equal((await old.getHttpRoute('bookinfo', 'reviews')).apiVersion, 'gateway.networking.k8s.io/v1beta1')
    await assert.rejects(
      kubeFor((await cluster([])).api).getHttpRoute('bookinfo', 'reviews'),
      (err: unknown) =>
        err instanceof KubeError &&
        err.status === 404 &&
        /does not serve gateway\.networking\.k8s\.io: the Gateway API CRDs are not installed/.test(err.message),
    )
  })

  it('reads a Gateway API Gateway (not Istio’s Gateway of the same name); undefined when there is none', async () => {
    const kube = kubeFor((await cluster(['v1'])).api)
    const gw = await kube.getGatewayApiGateway('bookinfo', 'bookinfo-gateway')
    assert.equal(gw?.spec.gatewayClassName, 'istio')
    assert.ok(gw?.spec.listeners?.some((l) => l.protocol === 'HTTP'))
    assert.equal(await kube.getGatewayApiGateway('bookinfo', 'waypoint'), undefined)
    // BookInfo's Istio Gateway has the same name: each API reads its own kind.
    assert.ok((await kube.getGateway('bookinfo', 'bookinfo-gateway'))?.spec.servers)
  })
})
