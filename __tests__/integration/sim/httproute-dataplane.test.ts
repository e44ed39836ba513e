// The simulated data plane routing by Gateway API HTTPRoutes (startSimulation({ gatewayApi })): north-south by the
// routes of the Gateway, productpage -> reviews by the routes whose parent is the reviews Service, with the Gateway
// API's precedence (not list order), relative weights, 500 for no weight or an unresolvable backend, 503 without a
// ready endpoint, the routes the controller programs only, and changes reaching the proxies as istiod pushes them.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startSimulation, type Sim } from '../../sim/index.js'
import { REFS } from '../../sim/kube/refs.js'
import type { KubeObject } from '../../sim/kube/store.js'
import { type HttpRequestFacts, chooseBackend, orderCandidates, selectRule } from '../../sim/mesh/httproute.js'
import { GATEWAY_PROXY, IMMEDIATE_PROPAGATION } from '../../sim/mesh/mesh.js'
import { makePki, type TestPki } from '../../sim/net/tls.js'

type Obj = Record<string, unknown>
const NS = 'bookinfo'
let pki: TestPki

const servedBy = (body: string): string | undefined => /Reviews served by:<\/dt>\s*<u>(reviews-v\d+)-/.exec(body)?.[1]
const podOf = (body: string): string | undefined =>
  /^(reviews-v\d+)-/.exec(String((JSON.parse(body) as Obj)['podname']))?.[1]

async function get(
  sim: Sim,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const res = await fetch(sim.mesh.url + path, { headers, redirect: 'manual', signal: AbortSignal.timeout(5000) })
  return { status: res.status, body: await res.text() }
}

/** The reviews version of `n` productpage requests, counted. */
async function versions(sim: Sim, n: number, headers: Record<string, string> = {}): Promise<Record<string, number>> {
  const seen: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const r = await get(sim, '/productpage', headers)
    const v = r.status === 200 ? (servedBy(r.body) ?? 'none') : `status ${r.status}`
    seen[v] = (seen[v] ?? 0) + 1
  }
  return seen
}

const ref = (name: string, weight?: number): Obj => ({
  group: '',
  kind: 'Service',
  name,
  port: 9080,
  ...(weight === undefined ? {} : { weight }),
})

/** Replaces the reviews route's rules (as someone's kubectl apply does). */
function setReviewsRules(sim: Sim, rules: Obj[]): KubeObject {
  const cur = sim.store.get(REFS.httpRoutes, NS, 'reviews')!
  return sim.store.update(REFS.httpRoutes, { ...cur, spec: { ...(cur['spec'] as Obj), rules } })
}

/** An HTTPRoute of the Gateway bookinfo-gateway. */
function gatewayRoute(name: string, rules: Obj[]): KubeObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: NS },
    spec: {
      parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'bookinfo-gateway' }],
      rules,
    },
  }
}

const rule = (matches: Obj[], backend: string): Obj => ({ matches, backendRefs: [ref(backend)] })
const exact = (value: string): Obj => ({ path: { type: 'Exact', value } })
const prefix = (value: string): Obj => ({ path: { type: 'PathPrefix', value } })

before(() => {
  pki = makePki()
})

describe('data plane by HTTPRoutes (gatewayApi)', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation({
      pki,
      gatewayApi: { controller: { delayMs: 0 } },
      propagation: IMMEDIATE_PROPAGATION,
    })
  })
  after(async () => {
    await sim.close()
  })

  it('seeds the Gateway API BookInfo without VirtualServices; the Gateway route serves productpage, 404 elsewhere', async () => {
    assert.deepEqual(sim.store.list(REFS.virtualServices, NS), [], 'the seed drops the VirtualServices')
    assert.deepEqual(sim.store.list(REFS.destinationRules, NS), [])
    const page = await get(sim, '/productpage')
    assert.equal(page.status, 200)
    assert.equal(servedBy(page.body), 'reviews-v1', 'route-reviews-v1.yaml: all to reviews-v1')
    assert.equal((await get(sim, '/api/v1/products')).status, 200, 'PathPrefix /api/v1/products')
    // No rule of the Gateway's routes matches: 404 (httproute_types.go).
    assert.equal((await get(sim, '/productpage/extra')).status, 404, 'Exact /productpage only')
    assert.equal((await get(sim, '/staticfoo')).status, 404, 'PathPrefix /static matches by path element')
    assert.equal((await get(sim, '/static/x.css')).status, 200)
  })

  it('a header match beats the default rule listed before it (precedence, not list order)', async () => {
    setReviewsRules(sim, [
      { backendRefs: [ref('reviews-v1')] },
      {
        matches: [{ headers: [{ type: 'Exact', name: 'end-user', value: 'jason' }] }],
        backendRefs: [ref('reviews-v2')],
      },
    ])
    assert.deepEqual(await versions(sim, 10, { cookie: 'session=jason' }), { 'reviews-v2': 10 })
    assert.deepEqual(await versions(sim, 10), { 'reviews-v1': 10 })
    // Header names are case-insensitive.
    setReviewsRules(sim, [
      { backendRefs: [ref('reviews-v1')] },
      {
        matches: [{ headers: [{ type: 'Exact', name: 'End-User', value: 'jason' }] }],
        backendRefs: [ref('reviews-v3')],
      },
    ])
    assert.deepEqual(await versions(sim, 5, { cookie: 'session=jason' }), { 'reviews-v3': 5 })
    setReviewsRules(sim, [{ backendRefs: [ref('reviews-v1')] }])
  })

  it('an exact path beats a prefix, the longest prefix beats a shorter one, prefixes match whole path elements', async () => {
    sim.store.create(
      REFS.httpRoutes,
      gatewayRoute('reviews-direct', [
        rule([prefix('/reviews')], 'reviews-v1'),
        rule([prefix('/reviews/1/')], 'reviews-v2'),
        rule([exact('/reviews/0')], 'reviews-v3'),
      ]),
    )
    try {
      const via = async (path: string): Promise<string | undefined> => {
        const r = await get(sim, path)
        assert.equal(r.status, 200, `${path}: ${r.body}`)
        return podOf(r.body)
      }
      assert.equal(await via('/reviews/0'), 'reviews-v3', 'Exact beats PathPrefix')
      assert.equal(await via('/reviews/1'), 'reviews-v2', 'the longest prefix, its trailing / ignored')
      assert.equal(await via('/reviews/10'), 'reviews-v1', '/reviews/1 is no prefix of /reviews/10')
      assert.equal(await via('/reviews/2'), 'reviews-v1')
    } finally {
      sim.store.delete(REFS.httpRoutes, NS, 'reviews-direct')
    }
  })

  it('equal matches in two routes: the older route wins, then namespace/name', async () => {
    sim.store.create(REFS.httpRoutes, gatewayRoute('zz-old', [rule([exact('/reviews/0')], 'reviews-v2')]))
    // The next second: creationTimestamp has second resolution.
    const t0 = sim.store.get(REFS.httpRoutes, NS, 'zz-old')!.metadata.creationTimestamp
    for (let i = 0; i < 30 && new Date().toISOString().replace(/\.\d+Z$/, 'Z') === t0; i++)
      await new Promise((r) => setTimeout(r, 50))
    sim.store.create(REFS.httpRoutes, gatewayRoute('aa-new', [rule([exact('/reviews/0')], 'reviews-v3')]))
    try {
      assert.notEqual(sim.store.get(REFS.httpRoutes, NS, 'aa-new')!.metadata.creationTimestamp, t0)
      for (let i = 0; i < 5; i++) assert.equal(podOf((await get(sim, '/reviews/0')).body), 'reviews-v2', 'older wins')
      // Same creation time: "{namespace}/{name}" decides. Both recreated within one second (retried if not).
      let same = false
      for (let attempt = 0; attempt < 5 && !same; attempt++) {
        sim.store.delete(REFS.httpRoutes, NS, 'zz-old')
        sim.store.delete(REFS.httpRoutes, NS, 'aa-new')
        sim.store.create(REFS.httpRoutes, gatewayRoute('zz-old', [rule([exact('/reviews/0')], 'reviews-v2')]))
        sim.store.create(REFS.httpRoutes, gatewayRoute('aa-new', [rule([exact('/reviews/0')], 'reviews-v3')]))
        const [a, z] = ['aa-new', 'zz-old'].map(
          (n) => sim.store.get(REFS.httpRoutes, NS, n)!.metadata.creationTimestamp,
        )
        same = a === z
      }
      assert.ok(same, 'two routes created within one second')
      assert.equal(podOf((await get(sim, '/reviews/0')).body), 'reviews-v3', 'bookinfo/aa-new before bookinfo/zz-old')
    } finally {
      sim.store.delete(REFS.httpRoutes, NS, 'zz-old')
      sim.store.delete(REFS.httpRoutes, NS, 'aa-new')
    }
  })

  it('weights are relative: 90/10 within binomial bounds; 9/1 the same; a weight-0 backend never picked', async () => {
    setReviewsRules(sim, [{ backendRefs: [ref('reviews-v1', 90), ref('reviews-v2', 10)] }])
    const n = 400
    const seen = await versions(sim, n)
    assert.deepEqual(Object.keys(seen).sort(), ['reviews-v1', 'reviews-v2'], JSON.stringify(seen))
    // mean 40, sd 6: 4 sd either side
    assert.ok(seen['reviews-v2']! >= 16 && seen['reviews-v2']! <= 64, JSON.stringify(seen))
    setReviewsRules(sim, [{ backendRefs: [ref('reviews-v1', 9), ref('reviews-v2', 1), ref('reviews-v3', 0)] }])
    const again = await versions(sim, n)
    assert.equal(again['reviews-v3'], undefined, JSON.stringify(again))
    assert.ok(again['reviews-v2']! >= 16 && again['reviews-v2']! <= 64, JSON.stringify(again))
    // No weight given: 1 each (about half and half: mean 100, sd 7).
    setReviewsRules(sim, [{ backendRefs: [ref('reviews-v1'), ref('reviews-v3')] }])
    const even = await versions(sim, 200)
    assert.ok(even['reviews-v3']! >= 72 && even['reviews-v3']! <= 128, JSON.stringify(even))
    setReviewsRules(sim, [{ backendRefs: [ref('reviews-v1')] }])
  })

  it('every backend weight 0: 500 (Istio direct response), no reviews pod called', async () => {
    setReviewsRules(sim, [{ backendRefs: [ref('reviews-v1', 0), ref('reviews-v2', 0)] }])
    const before = { ...sim.mesh.served }
    assert.deepEqual(await versions(sim, 5), { 'status 500': 5 })
    for (const v of ['reviews-v1', 'reviews-v2', 'reviews-v3'])
      assert.equal(sim.mesh.served[v], before[v], `${v} not called`)
    setReviewsRules(sim, [{ backendRefs: [ref('reviews-v1')] }])
  })

  it('an unresolvable backend answers 500 for its share; the controller reports BackendNotFound', async () => {
    const r = setReviewsRules(sim, [{ backendRefs: [ref('reviews-v1', 1), ref('reviews-v9', 1)] }])
    const seen = await versions(sim, 100)
    assert.deepEqual(Object.keys(seen).sort(), ['reviews-v1', 'status 500'], JSON.stringify(seen))
    assert.ok(seen['status 500']! >= 30 && seen['status 500']! <= 70, JSON.stringify(seen))
    const gen = r.metadata.generation
    let resolved: Obj | undefined
    for (let i = 0; i < 100 && !resolved; i++) {
      const parents = ((sim.store.get(REFS.httpRoutes, NS, 'reviews')!['status'] as Obj)['parents'] ?? []) as Obj[]
      resolved = ((parents[0]?.['conditions'] ?? []) as Obj[]).find(
        (c) => c['type'] === 'ResolvedRefs' && c['observedGeneration'] === gen,
      )
      if (!resolved) await new Promise((res) => setTimeout(res, 10))
    }
    assert.equal(resolved?.['status'], 'False')
    assert.equal(resolved?.['reason'], 'BackendNotFound')
    setReviewsRules(sim, [{ backendRefs: [ref('reviews-v1')] }])
  })

  it('a route the controller rejects is not programmed: reviews falls back to its Service (every version)', async () => {
    sim.gatewayController!.rejectNextGeneration(NS, 'reviews')
    setReviewsRules(sim, [{ backendRefs: [ref('reviews-v3')] }])
    const seen = await versions(sim, 60)
    assert.deepEqual(Object.keys(seen).sort(), ['reviews-v1', 'reviews-v2', 'reviews-v3'], JSON.stringify(seen))
    setReviewsRules(sim, [{ backendRefs: [ref('reviews-v1')] }])
    assert.deepEqual(await versions(sim, 10), { 'reviews-v1': 10 }, 'the next generation is accepted again')
  })
})

describe('HTTPRoute data plane: endpoints, propagation, VirtualService beside it', () => {
  it('a backend Service without a ready endpoint: 503 no healthy upstream', async () => {
    const sim = await startSimulation({
      pki,
      seed: { readyVersions: { v3: false } },
      gatewayApi: { seed: { reviewsRoute: 'route-reviews-v3.yaml' }, controller: { delayMs: 0 } },
      propagation: IMMEDIATE_PROPAGATION,
    })
    try {
      const r = await get(sim, '/productpage')
      assert.equal(r.status, 503)
      assert.equal(r.body, 'no healthy upstream')
      assert.equal(sim.mesh.served['reviews-v3'], undefined)
    } finally {
      await sim.close()
    }
  })

  it("an HTTPRoute change reaches the proxies after istiod's debounce and each proxy's push; stale() and flush()", async () => {
    const sim = await startSimulation({ pki, gatewayApi: { controller: { delayMs: 0 } } })
    try {
      assert.deepEqual(await versions(sim, 3), { 'reviews-v1': 3 })
      assert.deepEqual(sim.mesh.stale(), [])
      const t0 = performance.now()
      setReviewsRules(sim, [{ backendRefs: [ref('reviews-v3')] }])
      assert.deepEqual(await versions(sim, 1), { 'reviews-v1': 1 }, 'not on the next request')
      assert.ok(sim.mesh.stale().includes(GATEWAY_PROXY))
      assert.ok(sim.mesh.stale().some((p) => p.startsWith('productpage-v1-')))
      let ms = Number.POSITIVE_INFINITY
      for (let i = 0; i < 400 && performance.now() - t0 < 5000; i++) {
        if (servedBy((await get(sim, '/productpage')).body) === 'reviews-v3') {
          ms = performance.now() - t0
          break
        }
        await new Promise((r) => setTimeout(r, 5))
      }
      assert.ok(ms >= 100 && ms < 1000, `applied after ${ms} ms`)
      // A push that never arrives, then flush(): the proxies have what the store has.
      sim.mesh.setPropagation({ pushMs: () => Number.POSITIVE_INFINITY })
      setReviewsRules(sim, [{ backendRefs: [ref('reviews-v2')] }])
      await new Promise((r) => setTimeout(r, 200))
      assert.deepEqual(await versions(sim, 2), { 'reviews-v3': 2 })
      sim.mesh.flush()
      assert.deepEqual(await versions(sim, 2), { 'reviews-v2': 2 })
    } finally {
      await sim.close()
    }
  })

  it('a VirtualService and an HTTPRoute for reviews: the HTTPRoute routes the mesh (keepVirtualServices)', async () => {
    const sim = await startSimulation({
      pki,
      gatewayApi: {
        seed: { reviewsRoute: 'route-reviews-v3.yaml', keepVirtualServices: true },
        controller: { delayMs: 0 },
      },
      propagation: IMMEDIATE_PROPAGATION,
    })
    try {
      assert.ok(sim.store.get(REFS.virtualServices, NS, 'reviews'), 'the all-v1 VirtualService is kept')
      assert.deepEqual(await versions(sim, 10), { 'reviews-v3': 10 })
      // Without the HTTPRoute, the VirtualService routes again.
      sim.store.delete(REFS.httpRoutes, NS, 'reviews')
      assert.deepEqual(await versions(sim, 10), { 'reviews-v1': 10 })
    } finally {
      await sim.close()
    }
  })

  it('without gatewayApi the data plane ignores HTTPRoutes (defaults unchanged)', async () => {
    const sim = await startSimulation({ pki, propagation: IMMEDIATE_PROPAGATION })
    try {
      assert.ok(sim.store.get(REFS.virtualServices, NS, 'reviews'))
      assert.deepEqual(await versions(sim, 5), { 'reviews-v1': 5 })
      assert.equal(sim.dataplane.flavor, 'istio-sidecar')
    } finally {
      await sim.close()
    }
  })
})

describe("HTTPRoute precedence (the data plane's ordering, mesh/httproute.ts)", () => {
  const route = (name: string, created: string, matches: Obj[][]): KubeObject => ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: NS, creationTimestamp: created },
    spec: { rules: matches.map((m, i) => ({ matches: m, backendRefs: [ref(`${name}-${i}`)] })) },
  })
  const facts = (path: string, method = 'GET', headers: Record<string, string> = {}, query = ''): HttpRequestFacts => ({
    path,
    method,
    headers,
    query: new URLSearchParams(query),
  })
  const pick = (routes: KubeObject[], r: HttpRequestFacts): string | undefined => {
    const c = selectRule(orderCandidates(routes), r)
    return c ? `${c.route.metadata.name}-${c.ruleIndex}` : undefined
  }

  it('path kind and length, then method, then header count, then query count; regex below prefix (Istio)', () => {
    const t = '2026-01-01T00:00:00Z'
    const routes = [
      route('r', t, [
        [{ path: { type: 'PathPrefix', value: '/' } }],
        [{ path: { type: 'PathPrefix', value: '/' }, queryParams: [{ type: 'Exact', name: 'q', value: '1' }] }],
        [{ path: { type: 'PathPrefix', value: '/' }, headers: [{ type: 'Exact', name: 'x', value: '1' }] }],
        [{ path: { type: 'PathPrefix', value: '/' }, method: 'POST' }],
        [{ path: { type: 'RegularExpression', value: '/a/.*' } }],
        [{ path: { type: 'PathPrefix', value: '/a' } }],
      ]),
    ]
    assert.equal(pick(routes, facts('/x')), 'r-0')
    assert.equal(pick(routes, facts('/x', 'GET', {}, 'q=1')), 'r-1')
    assert.equal(pick(routes, facts('/x', 'GET', { x: '1' }, 'q=1')), 'r-2', 'headers before query params')
    assert.equal(pick(routes, facts('/x', 'POST', { x: '1' }, 'q=1')), 'r-3', 'method before headers')
    assert.equal(pick(routes, facts('/a/b', 'POST', { x: '1' })), 'r-5', 'a longer prefix before a method')
    assert.equal(
      pick([route('s', t, [[{ path: { type: 'RegularExpression', value: '/a/.*' } }]])], facts('/a/b')),
      's-0',
    )
    assert.equal(pick(routes, facts('/a/b')), 'r-5', 'PathPrefix ranks above RegularExpression')
    // Within a route the first rule wins a tie; across routes the older, then namespace/name.
    const tie = [
      route('b', t, [[{ path: { type: 'Exact', value: '/e' } }], [{ path: { type: 'Exact', value: '/e' } }]]),
    ]
    assert.equal(pick(tie, facts('/e')), 'b-0')
    assert.equal(
      pick([...tie, route('a', '2026-01-01T00:00:01Z', [[{ path: { type: 'Exact', value: '/e' } }]])], facts('/e')),
      'b-0',
    )
    assert.equal(pick([...tie, route('a', t, [[{ path: { type: 'Exact', value: '/e' } }]])], facts('/e')), 'a-0')
    assert.equal(pick(tie, facts('/f')), undefined, 'no rule matches: none (404)')
  })

  it('relative weights of chooseBackend: default 1, 0 never, all 0 a 500, another kind invalid', () => {
    let x = 0
    const rand = (): number => {
      x = (x + 0.37) % 1
      return x
    }
    const cand = (backendRefs: Obj[]) => ({
      route: route('w', '2026-01-01T00:00:00Z', []),
      ruleIndex: 0,
      rule: { backendRefs },
      match: {},
    })
    const r = facts('/')
    const names = new Set<string>()
    for (let i = 0; i < 50; i++) {
      const c = chooseBackend(cand([ref('a'), ref('b', 0), ref('c')]), r, rand)
      assert.equal(c.kind, 'service')
      if (c.kind === 'service') names.add(c.name)
    }
    assert.deepEqual([...names].sort(), ['a', 'c'])
    assert.deepEqual(chooseBackend(cand([ref('a', 0)]), r, rand), { kind: 'direct', status: 500, headers: {} })
    assert.equal(chooseBackend(cand([{ group: 'example.com', kind: 'Thing', name: 'x' }]), r, rand).kind, 'invalid')
    assert.equal(chooseBackend(cand([{ ...ref('a'), namespace: 'other' }]), r, rand).kind, 'invalid')
  })
})
