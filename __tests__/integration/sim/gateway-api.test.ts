// The simulated API server's Gateway API (gateway.networking.k8s.io v1 and v1beta1: GatewayClass, Gateway,
// HTTPRoute) and the simulated Gateway API controller, over real HTTPS: discovery per install, CRUD through both
// versions, the status subresource, the CRD schema's defaults, the controller's conditions after its delay, its
// faults, RBAC with and without the shipped manifest, and the action's own client and router on top.
import assert from 'node:assert/strict'
import { request } from 'node:https'
import { after, before, describe, it } from 'node:test'
import { KubeConfig } from '@kubernetes/client-node'
import { Kube } from '../../../src/k8s/client.js'
import { ConflictError, type GatewayHttpRoute, KubeError } from '../../../src/k8s/resources.js'
import { HttpRouteRouter } from '../../../src/routing/http-route.js'
import {
  DEFAULT_STATUS_DELAY_MS,
  GatewayApiController,
  type GatewayControllerOptions,
  ISTIO_GATEWAY_CONTROLLER,
  LINKERD_POLICY_CONTROLLER,
} from '../../sim/gateway/controller.js'
import { type GatewayApiSeedOptions, seedGatewayApi } from '../../sim/gateway/seed-gateway-api.js'
import { REFS } from '../../sim/kube/refs.js'
import { applyRbacManifests, seedBootstrapPolicy } from '../../sim/kube/rbac.js'
import { loadRbacManifest } from '../../sim/kube/seed.js'
import { type KubeApi, startKubeApi } from '../../sim/kube/server.js'
import { type KubeObject, KubeStore } from '../../sim/kube/store.js'
import { type TestPki, makePki } from '../../sim/net/tls.js'
import { startSimulation } from '../../sim/index.js'

const GROUP = 'gateway.networking.k8s.io'
const NS = 'bookinfo'
const ADMIN = 'admin-token'
const USER = 'user-token'
type Obj = Record<string, unknown>

interface World {
  api: KubeApi
  store: KubeStore
  ctl: GatewayApiController | undefined
  close(): Promise<void>
}

let pki: TestPki
const open: World[] = []
before(() => {
  pki = makePki()
})
after(async () => {
  for (const w of open) await w.close()
})

/**
 * An API server with RBAC (the bootstrap policy; `manifest`: deploy/rbac/istio-canary.yaml bound to the user),
 * BookInfo's Gateway API objects unless `seed` is false, and a controller unless `controller` is false.
 */
async function world(
  o: {
    versions?: string[]
    manifest?: boolean
    seed?: GatewayApiSeedOptions | false
    controller?: GatewayControllerOptions | false
  } = {},
): Promise<World> {
  const store = new KubeStore()
  const api = await startKubeApi({
    pki,
    store,
    rbac: true,
    gatewayApiVersions: o.versions ?? ['v1', 'v1beta1'],
    authenticate: (t) =>
      t === ADMIN ? { user: 'admin', groups: ['system:masters'] } : t === USER ? { user: 'sim-user' } : undefined,
  })
  seedBootstrapPolicy(store)
  if (o.manifest)
    applyRbacManifests(store, loadRbacManifest('istio-canary'), {
      users: ['sim-user'],
      namespace: NS,
      istioNamespace: 'istio-system',
    })
  if (o.seed !== false) seedGatewayApi(store, o.seed ?? {})
  else store.create(REFS.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } })
  const ctl = o.controller === false ? undefined : new GatewayApiController(store, o.controller ?? { delayMs: 0 })
  const w: World = {
    api,
    store,
    ctl,
    close: async () => {
      ctl?.close()
      await api.close()
    },
  }
  open.push(w)
  return w
}

interface Raw {
  status: number
  body: Obj
}

function raw(api: KubeApi, method: string, path: string, body?: unknown, token = ADMIN): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body)
    const req = request(
      `${api.url}${path}`,
      {
        method,
        ca: pki.caPem,
        headers: {
          authorization: `Bearer ${token}`,
          ...(text
            ? {
                'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
                'content-length': Buffer.byteLength(text),
              }
            : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Obj })
          } catch (err) {
            reject(err as Error)
          }
        })
      },
    )
    req.on('error', reject)
    req.end(text)
  })
}

const routes = (v: string, name = ''): string =>
  `/apis/${GROUP}/${v}/namespaces/${NS}/httproutes${name ? `/${name}` : ''}`
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls the store until `ok` holds (at most `ms`), returning the object; fails the test otherwise. */
async function until(store: KubeStore, name: string, ok: (o: KubeObject) => boolean, ms = 5000): Promise<KubeObject> {
  const deadline = Date.now() + ms
  for (;;) {
    const o = store.get(REFS.httpRoutes, NS, name)
    if (o && ok(o)) return o
    if (Date.now() > deadline)
      assert.fail(`${name}: condition not reached in ${ms} ms: ${JSON.stringify(o?.['status'])}`)
    await sleep(10)
  }
}

interface Cond {
  type: string
  status: string
  reason: string
  message: string
  observedGeneration: number
  lastTransitionTime: string
}
interface ParentStatus {
  parentRef: Obj
  controllerName: string
  conditions: Cond[]
}
const parentsOf = (o: KubeObject): ParentStatus[] =>
  ((o['status'] as Obj | undefined)?.['parents'] ?? []) as ParentStatus[]
const cond = (p: ParentStatus | undefined, type: string): Cond | undefined => p?.conditions.find((c) => c.type === type)
const observed = (o: KubeObject, gen: number): boolean =>
  parentsOf(o).length > 0 && parentsOf(o).every((p) => p.conditions.every((c) => c.observedGeneration === gen))

function withWeights(o: KubeObject, weights: Record<string, number>): KubeObject {
  const next = structuredClone(o)
  const rule = ((next['spec'] as Obj)['rules'] as Obj[])[0]!
  rule['backendRefs'] = Object.entries(weights).map(([name, weight]) => ({ name, port: 9080, weight }))
  return next
}

function kubeFor(api: KubeApi, token: string): Kube {
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'sim', server: api.url, caData: Buffer.from(pki.caPem).toString('base64') }],
    users: [{ name: 'u', token }],
    contexts: [{ name: 'sim', cluster: 'sim', user: 'u' }],
    currentContext: 'sim',
  })
  return new Kube(kc, { sleep: async () => {} })
}

describe('simulated API server: gateway.networking.k8s.io', () => {
  it('discovery: not installed, v1beta1 only (Gateway API 0.x CRDs), and v1 + v1beta1', async () => {
    const none = await world({ versions: [], seed: false, controller: false })
    const groups = (await raw(none.api, 'GET', '/apis')).body['groups'] as Array<{ name: string }>
    assert.ok(!groups.some((g) => g.name === GROUP), 'no Gateway API group')
    assert.ok(
      groups.some((g) => g.name === 'apps'),
      'the list itself is served',
    )
    assert.equal((await raw(none.api, 'GET', `/apis/${GROUP}`)).status, 404)
    assert.equal((await raw(none.api, 'GET', routes('v1'))).status, 404)
    await assert.rejects(
      kubeFor(none.api, ADMIN).gatewayApiVersion(),
      (e: unknown) =>
        e instanceof KubeError && e.status === 404 && /Gateway API CRDs are not installed/.test(e.message),
    )

    const old = await world({ versions: ['v1beta1'], seed: false, controller: false })
    const g = (await raw(old.api, 'GET', `/apis/${GROUP}`)).body
    assert.deepEqual(g['versions'], [{ groupVersion: `${GROUP}/v1beta1`, version: 'v1beta1' }])
    assert.deepEqual(g['preferredVersion'], { groupVersion: `${GROUP}/v1beta1`, version: 'v1beta1' })
    assert.equal((await raw(old.api, 'GET', `/apis/${GROUP}/v1`)).status, 404)
    assert.equal((await raw(old.api, 'GET', routes('v1'))).status, 404)
    assert.equal((await raw(old.api, 'GET', routes('v1beta1'))).status, 200)
    assert.equal(await kubeFor(old.api, ADMIN).gatewayApiVersion(), 'v1beta1')

    const both = await world({ seed: false, controller: false })
    const b = (await raw(both.api, 'GET', `/apis/${GROUP}`)).body
    assert.deepEqual(
      (b['versions'] as Array<{ version: string }>).map((v) => v.version),
      ['v1', 'v1beta1'],
    )
    assert.deepEqual(b['preferredVersion'], { groupVersion: `${GROUP}/v1`, version: 'v1' })
    const list = (await raw(both.api, 'GET', `/apis/${GROUP}/v1`)).body['resources'] as Obj[]
    const byName = Object.fromEntries(list.map((r) => [r['name'], r]))
    assert.deepEqual(Object.keys(byName).sort(), [
      'gatewayclasses',
      'gatewayclasses/status',
      'gateways',
      'gateways/status',
      'httproutes',
      'httproutes/status',
    ])
    assert.equal(byName['gatewayclasses']!['namespaced'], false)
    assert.deepEqual(byName['gatewayclasses']!['shortNames'], ['gc'])
    assert.equal(byName['httproutes']!['namespaced'], true)
    assert.equal(byName['httproutes']!['kind'], 'HTTPRoute')
    assert.deepEqual(byName['httproutes/status']!['verbs'], ['get', 'patch', 'update'])
    assert.equal(await kubeFor(both.api, ADMIN).gatewayApiVersion(), 'v1')
    // Installing the CRDs while running.
    none.api.gatewayApiVersions.push('v1')
    assert.equal((await raw(none.api, 'GET', routes('v1'))).status, 200)
  })

  it('one object through both versions, with the CRD defaults stored, conflicts and validation as Status bodies', async () => {
    const w = await world({ seed: false, controller: false })
    const created = await raw(w.api, 'POST', routes('v1beta1'), {
      apiVersion: `${GROUP}/v1beta1`,
      kind: 'HTTPRoute',
      metadata: { name: 'reviews' },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }],
        rules: [{ backendRefs: [{ name: 'reviews-v1', port: 9080 }] }],
      },
    })
    assert.equal(created.status, 201)
    assert.equal(created.body['apiVersion'], `${GROUP}/v1beta1`)
    const v1 = await raw(w.api, 'GET', routes('v1', 'reviews'))
    assert.equal(v1.body['apiVersion'], `${GROUP}/v1`)
    const meta = v1.body['metadata'] as Obj
    assert.equal(meta['uid'], (created.body['metadata'] as Obj)['uid'], 'the same object')
    assert.equal(meta['generation'], 1)
    assert.equal(v1.body['status'], undefined, 'no status before a controller writes one')
    // The schema's defaults, as stored: the rule's catch-all match, the backendRef's group, kind and weight.
    assert.deepEqual((v1.body['spec'] as Obj)['rules'], [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/' } }],
        backendRefs: [{ name: 'reviews-v1', port: 9080, group: '', kind: 'Service', weight: 1 }],
      },
    ])
    const listed = (await raw(w.api, 'GET', routes('v1beta1'))).body
    assert.equal(listed['kind'], 'HTTPRouteList')
    assert.equal((listed['items'] as Obj[])[0]!['apiVersion'], `${GROUP}/v1beta1`)

    // A write through v1 at the resourceVersion read through v1beta1, then a stale one: 409 with the real Status.
    const ok = await raw(
      w.api,
      'PUT',
      routes('v1', 'reviews'),
      withWeights(v1.body as KubeObject, { 'reviews-v1': 90, 'reviews-v2': 10 }),
    )
    assert.equal(ok.status, 200)
    assert.equal((ok.body['metadata'] as Obj)['generation'], 2)
    const stale = await raw(w.api, 'PUT', routes('v1beta1', 'reviews'), {
      ...v1.body,
      apiVersion: `${GROUP}/v1beta1`,
    })
    assert.equal(stale.status, 409)
    assert.deepEqual(stale.body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'Operation cannot be fulfilled on httproutes.gateway.networking.k8s.io "reviews": the object has been ' +
        'modified; please apply your changes to the latest version and try again',
      reason: 'Conflict',
      details: { name: 'reviews', group: GROUP, kind: 'httproutes' },
      code: 409,
    })
    // A custom resource has no unconditional update; weights are integers in 0..1000000.
    const cur = ok.body as KubeObject
    const noRv = { ...cur, metadata: { ...cur.metadata, resourceVersion: undefined } }
    assert.equal((await raw(w.api, 'PUT', routes('v1', 'reviews'), noRv)).status, 422)
    const neg = await raw(w.api, 'PUT', routes('v1', 'reviews'), withWeights(cur, { 'reviews-v1': -1 }))
    assert.equal(neg.status, 422)
    assert.match(
      String(neg.body['message']),
      /spec\.rules\[0\]\.backendRefs\[0\]\.weight in body should be greater than or equal to 0/,
    )
    const frac = await raw(w.api, 'PUT', routes('v1', 'reviews'), withWeights(cur, { 'reviews-v1': 0.5 }))
    assert.equal(frac.status, 422)
    assert.match(String(frac.body['message']), /must be of type integer/)
    assert.equal(
      (await raw(w.api, 'PUT', routes('v1', 'reviews'), withWeights(cur, { 'reviews-v1': 1000001 }))).status,
      422,
    )
    // Cluster-scoped GatewayClass: no namespace in its path; a new one shows the schema's default status.
    const gc = await raw(w.api, 'POST', `/apis/${GROUP}/v1/gatewayclasses`, {
      apiVersion: `${GROUP}/v1`,
      kind: 'GatewayClass',
      metadata: { name: 'istio' },
      spec: { controllerName: ISTIO_GATEWAY_CONTROLLER },
      status: { conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'forged' }] },
    })
    assert.equal(gc.status, 201)
    assert.deepEqual((gc.body['status'] as Obj)['conditions'], [
      {
        lastTransitionTime: '1970-01-01T00:00:00Z',
        message: 'Waiting for controller',
        reason: 'Pending',
        status: 'Unknown',
        type: 'Accepted',
      },
    ])
    assert.equal((await raw(w.api, 'GET', `/apis/${GROUP}/v1beta1/gatewayclasses/istio`)).status, 200)
    assert.equal((await raw(w.api, 'GET', `/apis/${GROUP}/v1/namespaces/${NS}/gatewayclasses/istio`)).status, 404)
    assert.equal((await raw(w.api, 'DELETE', routes('v1beta1', 'reviews'))).status, 200)
    assert.equal((await raw(w.api, 'GET', routes('v1', 'reviews'))).status, 404)
  })

  it('status subresource: a main write keeps status, a /status write keeps spec; generation follows spec only', async () => {
    const w = await world({ controller: false })
    const read = async (): Promise<KubeObject> => (await raw(w.api, 'GET', routes('v1', 'reviews'))).body as KubeObject
    const r0 = await read()
    const status = { parents: [{ parentRef: { name: 'reviews' }, controllerName: 'x.io/c', conditions: [] }] }
    // /status: status written, the spec change in the same body ignored, generation kept.
    const s = await raw(w.api, 'PUT', `${routes('v1', 'reviews')}/status`, {
      ...withWeights(r0, { 'reviews-v3': 1 }),
      status,
    })
    assert.equal(s.status, 200)
    assert.deepEqual(s.body['status'], status)
    assert.deepEqual(s.body['spec'], r0['spec'])
    assert.equal((s.body['metadata'] as Obj)['generation'], 1)
    // Main resource: the status in the body ignored; a metadata-only change keeps the generation.
    const r1 = await read()
    const labelled = { ...r1, metadata: { ...r1.metadata, labels: { team: 'reviews' } }, status: { parents: [] } }
    const m = await raw(w.api, 'PUT', routes('v1', 'reviews'), labelled)
    assert.deepEqual(m.body['status'], status, 'the stored status stays')
    assert.equal((m.body['metadata'] as Obj)['generation'], 1, 'no spec change, no new generation')
    // The same spec with its keys in another order is no change (compared by content, as the apiserver does).
    const r2 = await read()
    const reordered = Object.fromEntries(Object.entries(r2['spec'] as Obj).reverse())
    const same = await raw(w.api, 'PUT', routes('v1', 'reviews'), { ...r2, spec: reordered })
    assert.equal(same.status, 200)
    assert.equal((same.body['metadata'] as Obj)['generation'], 1)
    // A merge patch of status through the main resource is ignored too; a spec patch bumps the generation.
    const p = await raw(w.api, 'PATCH', routes('v1', 'reviews'), { status: null, spec: { hostnames: ['reviews'] } })
    assert.equal(p.status, 200)
    assert.deepEqual(p.body['status'], status)
    assert.equal((p.body['metadata'] as Obj)['generation'], 2)
    // The status subresource's conflicts are the object's: a stale resourceVersion is 409.
    const stale = await raw(w.api, 'PUT', `${routes('v1', 'reviews')}/status`, { ...r1, status: { parents: [] } })
    assert.equal(stale.status, 409)
  })

  it('the controller: Gateway, GatewayClass and both routes accepted after its delay; a new generation observed after it again', async () => {
    const delay = 150
    const w = await world({ controller: { delayMs: delay } })
    const t0 = Date.now()
    assert.equal(w.store.get(REFS.httpRoutes, NS, 'reviews')!['status'], undefined, 'nothing before the delay')
    const reviews = await until(w.store, 'reviews', (o) => observed(o, 1))
    assert.ok(Date.now() - t0 >= delay - 5, 'not before the delay')
    const [mesh] = parentsOf(reviews)
    assert.deepEqual(mesh!.parentRef, { group: '', kind: 'Service', name: 'reviews', port: 9080 })
    assert.equal(mesh!.controllerName, ISTIO_GATEWAY_CONTROLLER, 'as istio.io shows it for a Service parent')
    assert.deepEqual(
      mesh!.conditions.map((c) => [c.type, c.status, c.reason, c.observedGeneration]),
      [
        ['Accepted', 'True', 'Accepted', 1],
        ['ResolvedRefs', 'True', 'ResolvedRefs', 1],
      ],
    )
    assert.match(mesh!.conditions[0]!.lastTransitionTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    const north = await until(w.store, 'bookinfo', (o) => observed(o, 1))
    assert.equal(parentsOf(north)[0]!.controllerName, ISTIO_GATEWAY_CONTROLLER)
    assert.deepEqual(parentsOf(north)[0]!.parentRef, { name: 'bookinfo-gateway', group: GROUP, kind: 'Gateway' })
    assert.deepEqual(
      parentsOf(north)[0]!.conditions.map((c) => [c.type, c.status, c.reason]),
      [
        ['Accepted', 'True', 'Accepted'],
        ['ResolvedRefs', 'True', 'ResolvedRefs'],
      ],
    )
    const gw = w.store.get(REFS.gatewayApiGateways, NS, 'bookinfo-gateway')!
    const gwConds = (gw['status'] as { conditions: Cond[] }).conditions
    assert.deepEqual(
      gwConds.map((c) => [c.type, c.status, c.reason]),
      [
        ['Accepted', 'True', 'Accepted'],
        ['Programmed', 'True', 'Programmed'],
      ],
    )
    const listeners = (gw['status'] as { listeners: Array<{ name: string; attachedRoutes: number }> }).listeners
    assert.deepEqual(
      listeners.map((l) => [l.name, l.attachedRoutes]),
      [['http', 1]],
    )
    const gc = w.store.get(REFS.gatewayClasses, undefined, 'istio')!
    assert.deepEqual(
      (gc['status'] as { conditions: Cond[] }).conditions.map((c) => [c.type, c.status, c.reason]),
      [['Accepted', 'True', 'Accepted']],
    )

    // A spec change: generation 2, still reported as of generation 1 right after, then observed after the delay.
    const before = cond(mesh, 'Accepted')!.lastTransitionTime
    await sleep(1100) // so that a changed lastTransitionTime (seconds) would show
    const t1 = Date.now()
    const put = await raw(
      w.api,
      'PUT',
      routes('v1', 'reviews'),
      withWeights(reviews, { 'reviews-v1': 90, 'reviews-v2': 10 }),
    )
    assert.equal((put.body['metadata'] as Obj)['generation'], 2)
    assert.ok(observed(put.body as KubeObject, 1), 'the answer still shows the old generation observed')
    const r2 = await until(w.store, 'reviews', (o) => observed(o, 2))
    assert.ok(Date.now() - t1 >= delay - 5)
    assert.equal(cond(parentsOf(r2)[0], 'Accepted')!.lastTransitionTime, before, 'still True: no transition')
    assert.equal(
      w.store.get(REFS.httpRoutes, NS, 'reviews')!.metadata.generation,
      2,
      'status writes keep the generation',
    )
  })

  it('the controller rejects what the spec says to reject: BackendNotFound (still Accepted), InvalidKind, RefNotPermitted, listeners', async () => {
    const w = await world()
    const r1 = await until(w.store, 'reviews', (o) => observed(o, 1))
    await raw(w.api, 'PUT', routes('v1', 'reviews'), withWeights(r1, { 'reviews-v1': 50, 'reviews-v9': 50 }))
    const r2 = await until(w.store, 'reviews', (o) => observed(o, 2))
    assert.equal(cond(parentsOf(r2)[0], 'Accepted')!.status, 'True', 'the spec: still Accepted')
    const rr = cond(parentsOf(r2)[0], 'ResolvedRefs')!
    assert.deepEqual([rr.status, rr.reason], ['False', 'BackendNotFound'])
    assert.match(rr.message, /reviews-v9/)
    // Each write at the resourceVersion of the controller's last status write (an older one would be a conflict).
    const kind = structuredClone(r2)
    ;(((kind['spec'] as Obj)['rules'] as Obj[])[0]!['backendRefs'] as Obj[])[1] = {
      kind: 'ConfigMap',
      group: '',
      name: 'x',
      weight: 1,
    }
    await raw(w.api, 'PUT', routes('v1', 'reviews'), kind)
    const r3 = await until(w.store, 'reviews', (o) => observed(o, 3))
    assert.equal(cond(parentsOf(r3)[0], 'ResolvedRefs')!.reason, 'InvalidKind')
    const cross = withWeights(r3, { 'reviews-v1': 1 })
    ;(((cross['spec'] as Obj)['rules'] as Obj[])[0]!['backendRefs'] as Obj[])[0]!['namespace'] = 'other'
    await raw(w.api, 'PUT', routes('v1', 'reviews'), cross)
    const r4 = await until(w.store, 'reviews', (o) => observed(o, 4))
    assert.equal(cond(parentsOf(r4)[0], 'ResolvedRefs')!.reason, 'RefNotPermitted')

    // North-south: a listener that is not there, and a route of another namespace (allowedRoutes from: Same).
    const b1 = await until(w.store, 'bookinfo', (o) => observed(o, 1))
    const sect = structuredClone(b1)
    ;((sect['spec'] as Obj)['parentRefs'] as Obj[])[0]!['sectionName'] = 'https'
    await raw(w.api, 'PUT', routes('v1', 'bookinfo'), sect)
    const b2 = await until(w.store, 'bookinfo', (o) => observed(o, 2))
    assert.deepEqual(
      [cond(parentsOf(b2)[0], 'Accepted')!.status, cond(parentsOf(b2)[0], 'Accepted')!.reason],
      ['False', 'NoMatchingParent'],
    )
    w.store.create(REFS.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } })
    const foreign = await raw(w.api, 'POST', `/apis/${GROUP}/v1/namespaces/other/httproutes`, {
      apiVersion: `${GROUP}/v1`,
      kind: 'HTTPRoute',
      metadata: { name: 'foreign' },
      spec: { parentRefs: [{ name: 'bookinfo-gateway', namespace: NS }], rules: [{ backendRefs: [] }] },
    })
    assert.equal(foreign.status, 201)
    const deadline = Date.now() + 5000
    let f: KubeObject | undefined
    while (Date.now() < deadline) {
      f = w.store.get(REFS.httpRoutes, 'other', 'foreign')
      if (f && parentsOf(f).length) break
      await sleep(10)
    }
    assert.equal(cond(parentsOf(f!)[0], 'Accepted')!.reason, 'NotAllowedByListeners')
    // Neither the route of the listener that is not there nor the foreign one counts as attached.
    const listeners = (w.store.get(REFS.gatewayApiGateways, NS, 'bookinfo-gateway')!['status'] as Obj)['listeners']
    assert.deepEqual(
      (listeners as Obj[]).map((l) => l['attachedRoutes']),
      [0],
    )
  })

  it('faults: the next generation rejected (then a revert accepted); a stopped controller never reports', async () => {
    const w = await world({ controller: { delayMs: 20 } })
    const ctl = w.ctl!
    const r1 = await until(w.store, 'reviews', (o) => observed(o, 1))
    ctl.rejectNextGeneration(NS, 'reviews')
    await raw(w.api, 'PUT', routes('v1', 'reviews'), withWeights(r1, { 'reviews-v1': 90, 'reviews-v2': 10 }))
    const r2 = await until(w.store, 'reviews', (o) => observed(o, 2))
    const acc = cond(parentsOf(r2)[0], 'Accepted')!
    assert.deepEqual([acc.status, acc.reason, acc.observedGeneration], ['False', 'UnsupportedValue', 2])
    const revert = await raw(w.api, 'PUT', routes('v1', 'reviews'), { ...r1, metadata: r2.metadata })
    assert.equal(revert.status, 200)
    const r3 = await until(w.store, 'reviews', (o) => observed(o, 3))
    assert.equal(cond(parentsOf(r3)[0], 'Accepted')!.status, 'True', 'only that one generation is rejected')

    ctl.stop()
    await raw(w.api, 'PUT', routes('v1', 'reviews'), withWeights(r3, { 'reviews-v1': 50, 'reviews-v2': 50 }))
    await sleep(200)
    const stuck = w.store.get(REFS.httpRoutes, NS, 'reviews')!
    assert.equal(stuck.metadata.generation, 4)
    assert.ok(observed(stuck, 3), 'the status still speaks of generation 3')
    ctl.resume()
    await until(w.store, 'reviews', (o) => observed(o, 4))
  })

  it('Linkerd: the policy controller reports on Service parents only', async () => {
    const w = await world({ seed: { mesh: 'linkerd', northSouth: true }, controller: { mesh: 'linkerd', delayMs: 0 } })
    const r = await until(w.store, 'reviews', (o) => observed(o, 1))
    assert.deepEqual(
      parentsOf(r).map((p) => p.controllerName),
      [LINKERD_POLICY_CONTROLLER],
    )
    await sleep(50)
    assert.equal(w.store.get(REFS.gatewayClasses, undefined, 'istio'), undefined, 'no Istio GatewayClass')
    assert.equal(w.store.get(REFS.httpRoutes, NS, 'bookinfo')!['status'], undefined, 'no controller of this Gateway')
    assert.equal(DEFAULT_STATUS_DELAY_MS, 300)
  })

  it('RBAC: httproutes checked like any resource; the shipped manifest grants exactly get, list, update', async () => {
    const bare = await world({ controller: false })
    const denied = await raw(bare.api, 'GET', routes('v1', 'reviews'), undefined, USER)
    assert.equal(denied.status, 403)
    assert.equal(
      denied.body['message'],
      'httproutes.gateway.networking.k8s.io "reviews" is forbidden: User "sim-user" cannot get resource ' +
        '"httproutes" in API group "gateway.networking.k8s.io" in the namespace "bookinfo"',
    )
    await assert.rejects(
      kubeFor(bare.api, USER).getHttpRoute(NS, 'reviews'),
      (e: unknown) => e instanceof KubeError && e.status === 403,
    )

    const w = await world({ manifest: true, controller: false })
    const got = await raw(w.api, 'GET', routes('v1', 'reviews'), undefined, USER)
    assert.equal(got.status, 200)
    assert.equal((await raw(w.api, 'GET', routes('v1beta1'), undefined, USER)).status, 200)
    const body = withWeights(got.body as KubeObject, { 'reviews-v1': 90, 'reviews-v2': 10 })
    assert.equal((await raw(w.api, 'PUT', routes('v1', 'reviews'), body, USER)).status, 200)
    const forbidden = async (method: string, path: string, b?: unknown): Promise<void> => {
      const r = await raw(w.api, method, path, b, USER)
      assert.equal(r.status, 403, `${method} ${path}`)
    }
    await forbidden('PUT', `${routes('v1', 'reviews')}/status`, { ...got.body, status: { parents: [] } })
    await forbidden('PATCH', routes('v1', 'reviews'), { metadata: { labels: { a: 'b' } } })
    await forbidden('DELETE', routes('v1', 'reviews'))
    // Gateways may be read (the ingress's address, an ambient waypoint), not listed nor written.
    assert.equal(
      (await raw(w.api, 'GET', `/apis/${GROUP}/v1/namespaces/${NS}/gateways/bookinfo-gateway`, undefined, USER)).status,
      200,
    )
    await forbidden('GET', `/apis/${GROUP}/v1/namespaces/${NS}/gateways`)
    await forbidden('DELETE', `/apis/${GROUP}/v1/namespaces/${NS}/gateways/bookinfo-gateway`)
    await forbidden('GET', `/apis/${GROUP}/v1/gatewayclasses/istio`)
    await forbidden('GET', `/apis/${GROUP}/v1/namespaces/other/httproutes/reviews`)
  })

  it("the action's client and router: read, conditional write, then accepted() once the controller has observed it", async () => {
    const w = await world({ manifest: true, controller: { delayMs: 100 } })
    const kube = kubeFor(w.api, USER)
    await until(w.store, 'reviews', (o) => observed(o, 1))
    const router = new HttpRouteRouter(
      kube,
      { kind: 'HTTPRoute', namespace: NS, name: 'reviews', route: { by: 'default' } },
      { log: () => {} },
    )
    await router.load()
    assert.deepEqual(router.accepted(), { ok: true, pending: false, reasons: [] })
    const hr = await kube.getHttpRoute(NS, 'reviews')
    assert.equal(hr.apiVersion, `${GROUP}/v1`)
    const rules = structuredClone(hr.spec.rules ?? [])
    rules[0]!.backendRefs = [
      { name: 'reviews-v1', port: 9080, weight: 90 },
      { name: 'reviews-v3', port: 9080, weight: 10 },
    ]
    const written = await kube.replaceHttpRoute({ ...hr, spec: { ...hr.spec, rules } })
    assert.equal(written.metadata.generation, 2)
    assert.deepEqual(
      w.api.requests.filter((r) => r.method === 'PUT').map((r) => r.path),
      [`/apis/${GROUP}/v1/namespaces/${NS}/httproutes/reviews?fieldManager=istio-canary`],
    )
    await assert.rejects(kube.replaceHttpRoute(hr), (e: unknown) => e instanceof ConflictError)
    await router.load()
    const now = router.accepted()
    assert.equal(now.ok, false)
    assert.equal(now.pending, true)
    assert.match(now.reasons.join('\n'), /has not observed generation 2 yet/)
    let ok = false
    for (let i = 0; i < 100 && !ok; i++) {
      await sleep(20)
      await router.load()
      ok = router.accepted().ok
    }
    assert.ok(ok, 'accepted within 2 s')

    // A parent that rejects the change: not pending, a failure naming the reason.
    w.ctl!.rejectNextGeneration(NS, 'reviews')
    const cur: GatewayHttpRoute = await kube.getHttpRoute(NS, 'reviews')
    const r2 = structuredClone(cur.spec.rules ?? [])
    r2[0]!.backendRefs = [
      { name: 'reviews-v1', port: 9080, weight: 50 },
      { name: 'reviews-v3', port: 9080, weight: 50 },
    ]
    await kube.replaceHttpRoute({ ...cur, spec: { ...cur.spec, rules: r2 } })
    await until(w.store, 'reviews', (o) => observed(o, 3))
    await router.load()
    const rejected = router.accepted()
    assert.equal(rejected.ok, false)
    assert.equal(rejected.pending, false)
    assert.match(rejected.reasons.join('\n'), /Accepted is False \(UnsupportedValue/)

    // v1beta1-only CRDs: the same client picks v1beta1 and reads the seeded route.
    const old = await world({ versions: ['v1beta1'], manifest: true })
    const oldKube = kubeFor(old.api, USER)
    const viaBeta = await oldKube.getHttpRoute(NS, 'reviews')
    assert.equal(viaBeta.apiVersion, `${GROUP}/v1beta1`)
    assert.equal((await oldKube.listHttpRoutes(NS)).length, 2)
  })

  it("startSimulation({ gatewayApi }): served, seeded next to seedCluster's BookInfo, reported on, the shipped RBAC", async () => {
    const plain = await startSimulation({ pki })
    try {
      assert.deepEqual(plain.kube.gatewayApiVersions, [], 'not installed unless asked')
      assert.equal(plain.gatewayController, undefined)
    } finally {
      await plain.close()
    }
    const sim = await startSimulation({ pki, gatewayApi: { controller: { delayMs: 0 } } })
    try {
      assert.deepEqual(sim.kube.gatewayApiVersions, ['v1', 'v1beta1'])
      const r = await until(sim.store, 'reviews', (o) => observed(o, 1))
      assert.equal(cond(parentsOf(r)[0], 'Accepted')!.status, 'True')
      const kube = kubeFor(sim.kube, sim.tokens.user)
      assert.equal((await kube.listHttpRoutes(sim.info.namespace)).length, 2)
      sim.gatewayController!.stop()
      sim.faults.clear()
      const hr = await kube.getHttpRoute(NS, 'reviews')
      await kube.replaceHttpRoute({ ...hr, spec: { ...hr.spec, hostnames: ['reviews'] } })
      await until(sim.store, 'reviews', (o) => observed(o, 2))
    } finally {
      await sim.close()
    }
  })
})
