import { after, before, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadAll } from 'js-yaml'
import { KubeStore, type KubeObject } from '../../sim/kube/store.js'
import { seedCluster } from '../../sim/kube/seed.js'
import { REFS } from '../../sim/kube/refs.js'
import { GATEWAY_PROXY, IMMEDIATE_PROPAGATION, startMesh, type Mesh } from '../../sim/mesh/mesh.js'
import { ISTIO_SAMPLES } from '../../support/paths.js'

const FIXTURES = `${ISTIO_SAMPLES}/`
const NS = 'bookinfo'
const NAMESPACES = REFS.namespaces

function fixture(path: string): KubeObject[] {
  return (loadAll(readFileSync(join(FIXTURES, path), 'utf8')) as Array<KubeObject | null>).filter(
    (d): d is KubeObject => d !== null,
  )
}

const refOf = (kind: string | undefined) =>
  ({
    Service: REFS.services,
    Deployment: REFS.deployments,
    Gateway: REFS.gateways,
    VirtualService: REFS.virtualServices,
    DestinationRule: REFS.destinationRules,
  })[kind ?? '']

/** Creates or replaces the fixture's objects in the bookinfo namespace. */
function apply(store: KubeStore, path: string): void {
  for (const doc of fixture(path)) {
    const ref = refOf(doc.kind)
    if (!ref) continue
    const o = { ...doc, metadata: { ...doc.metadata, namespace: NS } }
    if (store.get(ref, NS, o.metadata.name)) store.update(ref, o)
    else store.create(ref, o)
  }
}

function readyPod(deploy: KubeObject, i: number): KubeObject {
  const template = (deploy['spec'] as { template: { metadata: { labels: Record<string, string> } } }).template
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${deploy.metadata.name}-7dbcdcbc5${i}-4xk2${i}`,
      namespace: NS,
      labels: { ...template.metadata.labels, 'pod-template-hash': `7dbcdcbc5${i}` },
    },
    spec: { containers: [{ name: 'app' }, { name: 'istio-proxy' }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  }
}

/** BookInfo (real sample manifests) with one ready pod per Deployment, the gateway and an OSS ingress gateway Service. */
function cluster(): KubeStore {
  const store = new KubeStore()
  store.create(NAMESPACES, { metadata: { name: NS, labels: { 'istio-injection': 'enabled' } } })
  store.create(NAMESPACES, { metadata: { name: 'istio-system' } })
  apply(store, 'platform/kube/bookinfo.yaml')
  for (const d of store.list(REFS.deployments, NS)) store.create(REFS.pods, readyPod(d, 1))
  apply(store, 'networking/bookinfo-gateway.yaml')
  apply(store, 'networking/destination-rule-all.yaml')
  store.create(REFS.services, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: 'istio-ingressgateway',
      namespace: 'istio-system',
      labels: { app: 'istio-ingressgateway', istio: 'ingressgateway' },
    },
    spec: {
      type: 'LoadBalancer',
      selector: { app: 'istio-ingressgateway', istio: 'ingressgateway' },
      ports: [
        { name: 'status-port', port: 15021 },
        { name: 'http2', port: 80, targetPort: 8080 },
        { name: 'https', port: 443, targetPort: 8443 },
      ],
    },
    status: { loadBalancer: {} },
  })
  return store
}

const servedBy = (body: string): string | undefined => /Reviews served by:<\/dt>\s*<u>(reviews-v\d+)-/.exec(body)?.[1]

async function get(
  mesh: Mesh,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: Headers; ms: number }> {
  const t0 = Date.now()
  const res = await fetch(mesh.url + path, { headers, redirect: 'manual' })
  return { status: res.status, body: await res.text(), headers: res.headers, ms: Date.now() - t0 }
}

describe('simulated mesh data plane', () => {
  let store: KubeStore
  let mesh: Mesh

  beforeEach(async () => {
    await mesh?.close()
    store = cluster()
    mesh = await startMesh({ store, seed: 7, propagation: IMMEDIATE_PROPAGATION })
  })
  after(async () => {
    await mesh?.close()
  })

  it('gives the ingress gateway Service the loopback address and its http2 port (cloud LB controller)', async () => {
    const svc = store.get(REFS.services, 'istio-system', 'istio-ingressgateway')!
    const ports = (svc['spec'] as { ports: Array<{ name: string; port: number }> }).ports
    assert.equal(ports.find((p) => p.name === 'http2')?.port, mesh.port)
    assert.equal(ports.find((p) => p.name === 'https')?.port, 443)
    assert.deepEqual((svc['status'] as { loadBalancer: unknown }).loadBalancer, {
      ingress: [{ ip: '127.0.0.1', ipMode: 'VIP' }],
    })

    // A gateway created later (AKS add-on layout) is provisioned right after its write.
    store.create(NAMESPACES, { metadata: { name: 'aks-istio-ingress' } })
    store.create(REFS.services, {
      metadata: {
        name: 'aks-istio-ingressgateway-external',
        namespace: 'aks-istio-ingress',
        labels: { istio: 'aks-istio-ingressgateway-external' },
      },
      spec: { type: 'LoadBalancer', ports: [{ name: 'http2', port: 80 }] },
    })
    const fresh = store.get(REFS.services, 'aks-istio-ingress', 'aks-istio-ingressgateway-external')!
    assert.equal(fresh['status'], undefined)
    await new Promise((r) => setImmediate(r))
    const done = store.get(REFS.services, 'aks-istio-ingress', 'aks-istio-ingressgateway-external')!
    assert.equal((done['spec'] as { ports: Array<{ port: number }> }).ports[0]!.port, mesh.port)
    assert.equal(
      (done['status'] as { loadBalancer: { ingress: Array<{ ip: string }> } }).loadBalancer.ingress[0]!.ip,
      '127.0.0.1',
    )
    // A ClusterIP Service is left alone.
    const reviews = store.get(REFS.services, NS, 'reviews')!
    assert.equal((reviews['spec'] as { ports: Array<{ port: number }> }).ports[0]!.port, 9080)
  })

  it('renders the BookInfo productpage through the gateway, with Envoy headers', async () => {
    apply(store, 'networking/virtual-service-all-v1.yaml')
    const r = await get(mesh, '/productpage')
    assert.equal(r.status, 200)
    assert.match(r.body, /<title>Simple Bookstore App<\/title>/)
    assert.match(r.body, /Reviews served by:<\/dt>\s*<u>reviews-v1-7dbcdcbc51-4xk21<\/u>/)
    assert.match(r.body, /Book Details/)
    assert.equal(r.headers.get('server'), 'istio-envoy')
    assert.match(r.headers.get('x-envoy-upstream-service-time') ?? '', /^\d+$/)
    assert.equal((r.body.match(/reviews-v\d/g) ?? []).length, 1, 'the page names exactly one reviews version')
    assert.deepEqual(mesh.served, { 'productpage-v1': 1, 'details-v1': 1, 'reviews-v1': 1 })

    const api = await get(mesh, '/api/v1/products/0/reviews')
    assert.equal(api.status, 200)
    assert.match(JSON.parse(api.body).podname, /^reviews-v1-/)
    assert.equal((await get(mesh, '/static/bootstrap/css/bootstrap.min.css')).status, 200)
  })

  it('answers 404 for paths no route matches, and when no Gateway selects the ingress gateway', async () => {
    const r = await get(mesh, '/nope')
    assert.equal(r.status, 404)
    assert.equal(r.headers.get('server'), 'istio-envoy')
    assert.equal(r.headers.get('x-envoy-upstream-service-time'), null)
    assert.equal((await get(mesh, '/productpage')).status, 200)

    const gw = store.get(REFS.gateways, NS, 'bookinfo-gateway')!
    store.update(REFS.gateways, {
      ...gw,
      spec: { ...(gw['spec'] as object), selector: { istio: 'aks-istio-ingressgateway-external' } },
    })
    assert.equal((await get(mesh, '/productpage')).status, 404)
  })

  it('splits traffic by the VirtualService weights (80/20 within binomial bounds)', async () => {
    apply(store, 'networking/virtual-service-reviews-80-20.yaml')
    const n = 400
    const seen: Record<string, number> = {}
    for (let i = 0; i < n; i++) {
      const r = await get(mesh, '/productpage')
      assert.equal(r.status, 200)
      const v = servedBy(r.body) ?? 'none'
      seen[v] = (seen[v] ?? 0) + 1
    }
    assert.deepEqual(Object.keys(seen).sort(), ['reviews-v1', 'reviews-v2'])
    // mean 80, sd 8: 4 sd either side
    assert.ok(seen['reviews-v2']! >= 48 && seen['reviews-v2']! <= 112, JSON.stringify(seen))
    assert.equal(mesh.served['reviews-v1'], seen['reviews-v1'])
    assert.equal(mesh.served['reviews-v2'], seen['reviews-v2'])
    assert.equal(mesh.served['reviews-v3'], undefined)
  })

  it('is deterministic for a seed', async () => {
    apply(store, 'networking/virtual-service-reviews-50-v3.yaml')
    const run = async (m: Mesh): Promise<string> => {
      let s = ''
      for (let i = 0; i < 30; i++) s += servedBy((await get(m, '/productpage')).body)
      return s
    }
    const other = await startMesh({ store, seed: 7, propagation: IMMEDIATE_PROPAGATION })
    try {
      const a = await run(mesh)
      const b = await run(other)
      assert.equal(a, b)
      assert.match(a, /reviews-v1/)
      assert.match(a, /reviews-v3/)
    } finally {
      await other.close()
    }
  })

  it('applies a VirtualService change on the very next request', async () => {
    apply(store, 'networking/virtual-service-all-v1.yaml')
    assert.equal(servedBy((await get(mesh, '/productpage')).body), 'reviews-v1')
    apply(store, 'networking/virtual-service-reviews-v3.yaml')
    assert.equal(servedBy((await get(mesh, '/productpage')).body), 'reviews-v3')
    store.delete(REFS.virtualServices, NS, 'reviews')
    // No reviews VirtualService: any ready reviews pod.
    const versions = new Set<string | undefined>()
    for (let i = 0; i < 30; i++) versions.add(servedBy((await get(mesh, '/productpage')).body))
    assert.deepEqual([...versions].sort(), ['reviews-v1', 'reviews-v2', 'reviews-v3'])
  })

  it('routes a signed-in jason to v2 through the end-user header (cookie session)', async () => {
    apply(store, 'networking/virtual-service-reviews-jason-v2-v3.yaml')
    assert.equal(servedBy((await get(mesh, '/productpage')).body), 'reviews-v3')
    const login = await fetch(`${mesh.url}/login`, {
      method: 'POST',
      body: new URLSearchParams({ username: 'jason', passwd: 'x' }),
      redirect: 'manual',
    })
    assert.equal(login.status, 302)
    const cookie = login.headers.getSetCookie()[0]!.split(';')[0]!
    assert.equal(cookie, 'session=jason')
    for (let i = 0; i < 5; i++) {
      const r = await get(mesh, '/productpage', { cookie })
      assert.equal(servedBy(r.body), 'reviews-v2')
      assert.match(r.body, /jason \( <a href="logout">sign out<\/a> \)/)
    }
    assert.equal(servedBy((await get(mesh, '/productpage', { cookie: 'session=alice' })).body), 'reviews-v3')
    const logout = await get(mesh, '/logout', { cookie })
    assert.equal(logout.status, 302)
    assert.match(logout.headers.getSetCookie()[0]!, /^session=;/)
  })

  it('routes a preview header, propagated from the incoming request, to its subset', async () => {
    const vs = fixture('networking/virtual-service-all-v1.yaml').find((d) => d.metadata.name === 'reviews')!
    const route = (vs['spec'] as { http: unknown[] }).http
    route.unshift({
      name: 'preview',
      match: [{ headers: { 'x-canary-preview': { exact: 'pr-1' } } }],
      route: [{ destination: { host: 'reviews', subset: 'v3' } }],
    })
    store.create(REFS.virtualServices, { ...vs, metadata: { ...vs.metadata, namespace: NS } })
    for (let i = 0; i < 5; i++) {
      assert.equal(servedBy((await get(mesh, '/productpage', { 'x-canary-preview': 'pr-1' })).body), 'reviews-v3')
      assert.equal(servedBy((await get(mesh, '/productpage', { 'x-canary-preview': 'pr-2' })).body), 'reviews-v1')
      assert.equal(servedBy((await get(mesh, '/productpage')).body), 'reviews-v1')
    }
  })

  it('injects per-version faults: delay and a share of 500s', async () => {
    apply(store, 'networking/virtual-service-reviews-v3.yaml')
    mesh.setFault('reviews', 'v3', { errorRate: 0.5, delayMs: 40 })
    let errors = 0
    for (let i = 0; i < 40; i++) {
      const r = await get(mesh, '/productpage')
      assert.ok(r.ms >= 35, `delayed (${r.ms} ms)`)
      assert.ok(Number(r.headers.get('x-envoy-upstream-service-time')) >= 35)
      if (r.status === 500) {
        errors++
        assert.match(r.body, /Sorry, product reviews are currently unavailable for this book\./)
        assert.match(r.body, /<title>Simple Bookstore App<\/title>/)
        assert.equal(servedBy(r.body), undefined)
      } else {
        assert.equal(r.status, 200)
        assert.equal(servedBy(r.body), 'reviews-v3')
      }
    }
    assert.ok(errors >= 8 && errors <= 32, `errors ${errors}`)
    assert.equal(mesh.served['reviews-v3'], 40)
    mesh.setFault('reviews', 'v3', undefined)
    for (let i = 0; i < 10; i++) assert.equal((await get(mesh, '/productpage')).status, 200)
  })

  it("reviewsErrors 'bookinfo': like productpage.py, a failed reviews call is tried again, then rendered with 200 and no pod", async () => {
    await mesh.close()
    mesh = await startMesh({ store, seed: 7, propagation: IMMEDIATE_PROPAGATION, reviewsErrors: 'bookinfo' })
    apply(store, 'networking/virtual-service-reviews-50-v3.yaml') // v1 50 % / v3 50 %
    mesh.setFault('reviews', 'v3', { errorRate: 1 })
    let errorPages = 0
    let v1 = 0
    for (let i = 0; i < 40; i++) {
      const r = await get(mesh, '/productpage')
      assert.equal(r.status, 200)
      assert.match(r.body, /<title>Simple Bookstore App<\/title>/)
      const by = servedBy(r.body)
      if (by === undefined) {
        errorPages++
        assert.match(r.body, /Error fetching product reviews!/)
      } else {
        assert.equal(by, 'reviews-v1', 'v3 never serves a page')
        v1++
      }
    }
    // a page fails only when both tries land on v3 (1 in 4 at 50 %); the retry rescues the rest
    assert.ok(errorPages >= 2 && errorPages <= 20, `error pages ${errorPages}`)
    assert.equal(errorPages + v1, 40)
    // every v1 call made a page; an error page cost two v3 calls; other v3 calls were retried onto v1
    assert.equal(mesh.served['reviews-v1'], v1)
    // retries: every page whose first call hit v3 made a second one, so v3 calls exceed the error pages' two each
    assert.ok((mesh.served['reviews-v3'] ?? 0) >= errorPages * 2)
  })

  it('answers 503 no healthy upstream without a ready pod or for an unknown subset', async () => {
    apply(store, 'networking/virtual-service-reviews-v3.yaml')
    const pod = store.list(REFS.pods, NS, 'app=reviews,version=v3')[0]!
    store.update(REFS.pods, { ...pod, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] } })
    let r = await get(mesh, '/productpage')
    assert.equal(r.status, 503)
    assert.equal(r.body, 'no healthy upstream')

    apply(store, 'networking/virtual-service-all-v1.yaml')
    assert.equal((await get(mesh, '/productpage')).status, 200)
    const vs = store.get(REFS.virtualServices, NS, 'reviews')!
    store.update(REFS.virtualServices, {
      ...vs,
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v9' } }] }] },
    })
    r = await get(mesh, '/productpage')
    assert.equal(r.status, 503)
    assert.equal(r.body, 'no healthy upstream')

    // productpage itself without a ready pod: the gateway answers 503.
    store.delete(REFS.pods, NS, store.list(REFS.pods, NS, 'app=productpage')[0]!.metadata.name)
    r = await get(mesh, '/productpage')
    assert.equal(r.status, 503)
    assert.equal(r.body, 'no healthy upstream')
  })
})

describe('mesh routing edge cases', () => {
  let store: KubeStore
  let mesh: Mesh
  before(async () => {
    store = cluster()
    mesh = await startMesh({ store, seed: 1, propagation: IMMEDIATE_PROPAGATION })
  })
  after(async () => {
    await mesh.close()
  })

  it('matches uri regex, methods, query params and never picks a weight-0 destination', async () => {
    const vs = store.get(REFS.virtualServices, NS, 'bookinfo')!
    store.update(REFS.virtualServices, {
      ...vs,
      spec: {
        hosts: ['*'],
        gateways: ['bookinfo-gateway'],
        http: [
          {
            match: [
              { uri: { regex: '/reviews/[0-9]+' }, method: { exact: 'GET' }, queryParams: { v: { exact: '3' } } },
            ],
            route: [{ destination: { host: 'reviews', subset: 'v3' } }],
          },
          {
            match: [{ uri: { prefix: '/reviews/' } }],
            route: [
              { destination: { host: 'reviews.bookinfo.svc.cluster.local', subset: 'v1' }, weight: 0 },
              { destination: { host: 'reviews', subset: 'v2' }, weight: 100 },
            ],
          },
        ],
      },
    })
    const q = JSON.parse((await get(mesh, '/reviews/0?v=3')).body)
    assert.match(q.podname, /^reviews-v3-/)
    assert.equal(q.reviews[0].rating.color, 'red')
    for (let i = 0; i < 20; i++) assert.match(JSON.parse((await get(mesh, '/reviews/0')).body).podname, /^reviews-v2-/)
    assert.equal((await get(mesh, '/reviews/x')).status, 404)
    assert.equal((await get(mesh, '/productpage')).status, 404)
  })
})

describe('mesh over seeded clusters', () => {
  for (const layout of ['oss', 'aks-addon'] as const) {
    it(`serves BookInfo through the ${layout} ingress gateway`, async () => {
      const store = new KubeStore()
      const mesh = await startMesh({ store, seed: 3, propagation: IMMEDIATE_PROPAGATION })
      try {
        const info = seedCluster(store, { layout, gatewayPort: mesh.port, readyVersions: { v3: false } })
        const svc = store.get(REFS.services, info.ingressNamespace, info.ingressService)!
        assert.equal(
          (svc['spec'] as { ports: Array<{ name: string; port: number }> }).ports.find((p) => p.name === 'http2')?.port,
          mesh.port,
        )
        const r = await get(mesh, '/productpage')
        assert.equal(r.status, 200)
        assert.equal(servedBy(r.body), 'reviews-v1')
        const vs = fixture('networking/virtual-service-reviews-v3.yaml')[0]!
        const cur = store.get(REFS.virtualServices, NS, 'reviews')!
        store.update(REFS.virtualServices, { ...cur, spec: vs['spec'] })
        assert.equal((await get(mesh, '/productpage')).status, 503)
      } finally {
        await mesh.close()
      }
    })
  }
})

describe('propagation: a route change reaches each proxy after istiod debounces and pushes it', () => {
  const toV3 = (store: KubeStore): void => {
    const cur = store.get(REFS.virtualServices, NS, 'reviews')!
    store.update(REFS.virtualServices, {
      ...cur,
      spec: fixture('networking/virtual-service-reviews-v3.yaml')[0]!['spec'],
    })
  }
  /** The reviews version productpage's sidecar picks, polled until `want` or the bound (ms since the write). */
  const until = async (mesh: Mesh, want: string, boundMs: number): Promise<number> => {
    const t0 = performance.now()
    for (let i = 0; i < 2000 && performance.now() - t0 < boundMs; i++) {
      if (servedBy((await get(mesh, '/productpage')).body) === want) return performance.now() - t0
      await new Promise((r) => setTimeout(r, 5))
    }
    return Number.POSITIVE_INFINITY
  }

  it("default: istiod's 100 ms debounce, then each proxy's own push time; never on the next request", async () => {
    const store = cluster()
    apply(store, 'networking/virtual-service-all-v1.yaml')
    const mesh = await startMesh({ store, seed: 7 })
    try {
      mesh.flush()
      assert.equal(servedBy((await get(mesh, '/productpage')).body), 'reviews-v1')
      toV3(store)
      assert.equal(servedBy((await get(mesh, '/productpage')).body), 'reviews-v1', 'not on the next request')
      assert.deepEqual(mesh.stale(), [GATEWAY_PROXY, 'productpage-v1-7dbcdcbc51-4xk21.bookinfo'].sort())
      const ms = await until(mesh, 'reviews-v3', 5000)
      assert.ok(ms >= 100 && ms < 1000, `applied after ${ms} ms`)
      // Each proxy at its own time (10..60 ms after the push): the gateway may still be on its way.
      await new Promise((r) => setTimeout(r, 80))
      assert.deepEqual(mesh.stale(), [])
    } finally {
      await mesh.close()
    }
  })

  it('per proxy: a slow sidecar push delays the mesh route; the gateway has its own; a status write pushes nothing', async () => {
    const store = cluster()
    apply(store, 'networking/virtual-service-all-v1.yaml')
    const mesh = await startMesh({
      store,
      seed: 7,
      propagation: { debounceAfterMs: 20, pushMs: (p) => (p === GATEWAY_PROXY ? 0 : 600) },
    })
    try {
      mesh.flush()
      const t0 = performance.now()
      toV3(store)
      // A status write right after (istiod's own): the spec is the same, so it neither pushes nor delays the push.
      const cur = store.get(REFS.virtualServices, NS, 'reviews')!
      store.update(REFS.virtualServices, { ...cur, status: { observedGeneration: cur.metadata.generation } })
      await until(mesh, 'reviews-v3', 5000)
      const ms = performance.now() - t0
      assert.ok(ms >= 600 && ms < 2500, `the sidecar applied it after ${ms} ms`)
      // The gateway's own route (bookinfo VirtualService) changes as soon as its push arrives.
      const bookinfo = store.get(REFS.virtualServices, NS, 'bookinfo')!
      store.update(REFS.virtualServices, {
        ...bookinfo,
        spec: { ...(bookinfo['spec'] as object), http: [{ directResponse: { status: 418 } }] },
      })
      await new Promise((r) => setTimeout(r, 60))
      assert.equal((await get(mesh, '/productpage')).status, 418)
    } finally {
      await mesh.close()
    }
  })

  it('a push that never arrives: the proxy keeps the old route until its push is let through', async () => {
    const store = cluster()
    apply(store, 'networking/virtual-service-all-v1.yaml')
    const mesh = await startMesh({ store, seed: 7, propagation: { debounceAfterMs: 10, pushMs: () => Infinity } })
    try {
      mesh.flush()
      const before = servedBy((await get(mesh, '/productpage')).body)
      toV3(store)
      assert.equal(await until(mesh, 'reviews-v3', 400), Number.POSITIVE_INFINITY)
      assert.notEqual(before, 'reviews-v3')
      mesh.setPropagation({ pushMs: () => 0 })
      assert.ok((await until(mesh, 'reviews-v3', 1000)) < 1000)
    } finally {
      await mesh.close()
    }
  })

  it('debounce: writes closer than PILOT_DEBOUNCE_AFTER keep delaying the push, up to PILOT_DEBOUNCE_MAX', async () => {
    const store = cluster()
    apply(store, 'networking/virtual-service-all-v1.yaml')
    const mesh = await startMesh({
      store,
      seed: 7,
      propagation: { debounceAfterMs: 100, debounceMaxMs: 400, pushMs: () => 0 },
    })
    try {
      mesh.flush()
      const t0 = performance.now()
      // A label change every 50 ms never leaves 100 ms of quiet: the push comes at the 400 ms maximum.
      toV3(store)
      let pushedAt = Number.POSITIVE_INFINITY
      for (let i = 0; i < 40 && performance.now() - t0 < 1500; i++) {
        if (pushedAt === Number.POSITIVE_INFINITY && mesh.stale().length === 0) pushedAt = performance.now() - t0
        const cur = store.get(REFS.virtualServices, NS, 'reviews')!
        store.update(REFS.virtualServices, {
          ...cur,
          spec: { ...(cur['spec'] as object), exportTo: i % 2 ? ['*'] : ['.', '*'] },
        })
        await new Promise((r) => setTimeout(r, 50))
      }
      assert.ok(pushedAt >= 380 && pushedAt < 900, `pushed after ${pushedAt} ms`)
    } finally {
      await mesh.close()
    }
  })
})
