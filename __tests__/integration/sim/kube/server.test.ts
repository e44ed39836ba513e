// The simulated kube-apiserver, exercised through real HTTPS with @kubernetes/client-node 2 and raw requests.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:https'
import * as k8s from '@kubernetes/client-node'
import { makePki, type TestPki } from '../../../sim/net/tls.js'
import { REFS } from '../../../sim/kube/refs.js'
import { KubeStore, type KubeObject } from '../../../sim/kube/store.js'
import { startKubeApi, type KubeApi } from '../../../sim/kube/server.js'
import { seedCluster } from '../../../sim/kube/seed.js'
import { isTransientNetworkError, withRetry } from '../../../../src/retry.js'

const ISTIO = { group: 'networking.istio.io', version: 'v1', plural: 'virtualservices', namespace: 'bookinfo' }
const MERGE = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)

interface Raw {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Record<string, unknown>
}

function raw(
  api: KubeApi,
  pki: TestPki,
  method: string,
  path: string,
  o: { token?: string; body?: unknown; contentType?: string } = {},
): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const text = o.body === undefined ? undefined : JSON.stringify(o.body)
    const req = request(
      `${api.url}${path}`,
      {
        method,
        ca: pki.caPem,
        headers: {
          ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
          ...(text
            ? { 'content-type': o.contentType ?? 'application/json', 'content-length': Buffer.byteLength(text) }
            : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          try {
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
            })
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

function kubeConfig(api: KubeApi, pki: TestPki, token: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig()
  kc.loadFromOptions({
    clusters: [
      { name: 'sim', server: api.url, caData: Buffer.from(pki.caPem).toString('base64'), skipTLSVerify: false },
    ],
    users: [{ name: 'u', token }],
    contexts: [{ name: 'sim', cluster: 'sim', user: 'u' }],
    currentContext: 'sim',
  })
  return kc
}

/** The Status body of a failed client-node call (ApiException keeps the body as text). */
async function apiError(
  p: Promise<unknown>,
): Promise<{ code: number; status: Record<string, unknown>; headers: Record<string, string> }> {
  try {
    await p
  } catch (err) {
    assert.ok(err instanceof k8s.ApiException, `expected ApiException, got ${String(err)}`)
    const e = err as k8s.ApiException<unknown>
    const status = (typeof e.body === 'string' ? JSON.parse(e.body) : (e.body ?? {})) as Record<string, unknown>
    return { code: e.code, status, headers: e.headers }
  }
  assert.fail('expected the call to fail')
}

type VS = KubeObject & {
  spec: { http: Array<{ route: Array<{ destination: { host: string; subset: string }; weight?: number }> }> }
}

describe('simulated kube-apiserver', () => {
  let pki: TestPki
  let store: KubeStore
  let api: KubeApi
  let kc: k8s.KubeConfig

  before(async () => {
    pki = makePki()
    store = new KubeStore()
    seedCluster(store, { layout: 'oss', gatewayPort: 18080, readyVersions: { v3: false } })
    api = await startKubeApi({
      pki,
      store,
      authenticate: (t) =>
        t === 'admin-token'
          ? { user: 'admin' }
          : t === 'viewer-token'
            ? { user: 'viewer', groups: ['viewers'] }
            : undefined,
      authorize: (user, verb) => user === 'admin' || ['get', 'list', 'watch'].includes(verb),
    })
    kc = kubeConfig(api, pki, 'admin-token')
  })
  after(async () => {
    await api.close()
  })

  it('answers 401 Unauthorized without a token and with an unknown one', async () => {
    const none = await raw(api, pki, 'GET', '/api/v1/namespaces')
    assert.equal(none.status, 401)
    assert.deepEqual(none.body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Unauthorized',
      reason: 'Unauthorized',
      code: 401,
    })
    const bad = await raw(api, pki, 'GET', '/api/v1/namespaces', { token: 'nope' })
    assert.equal(bad.status, 401)
    assert.equal(bad.body['reason'], 'Unauthorized')
    // client-node turns a 401 into ApiException(401) (its generated code drops the body of a 401).
    await assert.rejects(
      kubeConfig(api, pki, 'nope').makeApiClient(k8s.CoreV1Api).listNamespace(),
      (e: unknown) => e instanceof k8s.ApiException && e.code === 401,
    )
  })

  it('answers 403 Forbidden with an RBAC-like message when authorize says no', async () => {
    const viewer = kubeConfig(api, pki, 'viewer-token').makeApiClient(k8s.CustomObjectsApi)
    const vs = (await viewer.getNamespacedCustomObject({ ...ISTIO, name: 'reviews' })) as VS
    assert.equal(vs.metadata.name, 'reviews')
    const e = await apiError(
      viewer.patchNamespacedCustomObject(
        { ...ISTIO, name: 'reviews', body: { metadata: { labels: { a: 'b' } } } },
        MERGE,
      ),
    )
    assert.equal(e.code, 403)
    assert.equal(e.status['reason'], 'Forbidden')
    assert.equal(
      e.status['message'],
      'virtualservices.networking.istio.io "reviews" is forbidden: User "viewer" cannot patch resource "virtualservices" in API group "networking.istio.io" in the namespace "bookinfo"',
    )
    assert.deepEqual(e.status['details'], { name: 'reviews', group: 'networking.istio.io', kind: 'virtualservices' })
    const ns = await apiError(
      kubeConfig(api, pki, 'viewer-token').makeApiClient(k8s.CoreV1Api).deleteNamespace({ name: 'bookinfo' }),
    )
    assert.equal(
      ns.status['message'],
      'namespaces "bookinfo" is forbidden: User "viewer" cannot delete resource "namespaces" in API group "" in the namespace "bookinfo"',
    )
  })

  it('serves discovery: version, core, groups with both Istio versions, resource lists', async () => {
    const version = await raw(api, pki, 'GET', '/version', { token: 'admin-token' })
    assert.match(String(version.body['gitVersion']), /^v1\.31\.\d+$/)
    const core = await raw(api, pki, 'GET', '/api', { token: 'admin-token' })
    assert.deepEqual(core.body['versions'], ['v1'])
    const groups = await raw(api, pki, 'GET', '/apis', { token: 'admin-token' })
    assert.equal(groups.body['kind'], 'APIGroupList')
    const istio = (groups.body['groups'] as Array<Record<string, unknown>>).find(
      (g) => g['name'] === 'networking.istio.io',
    )
    assert.deepEqual(istio, {
      name: 'networking.istio.io',
      versions: [
        { groupVersion: 'networking.istio.io/v1', version: 'v1' },
        { groupVersion: 'networking.istio.io/v1beta1', version: 'v1beta1' },
      ],
      preferredVersion: { groupVersion: 'networking.istio.io/v1', version: 'v1' },
    })
    const names = (groups.body['groups'] as Array<{ name: string }>).map((g) => g.name)
    assert.ok(names.includes('apps') && names.includes('coordination.k8s.io'))
    const list = await raw(api, pki, 'GET', '/apis/networking.istio.io/v1beta1', { token: 'admin-token' })
    const vs = (list.body['resources'] as Array<Record<string, unknown>>).find((r) => r['name'] === 'virtualservices')
    assert.equal(vs?.['kind'], 'VirtualService')
    assert.equal(vs?.['namespaced'], true)
    assert.ok((vs?.['verbs'] as string[]).includes('patch'))
    const v1 = await raw(api, pki, 'GET', '/api/v1', { token: 'admin-token' })
    const ns = (v1.body['resources'] as Array<Record<string, unknown>>).find((r) => r['name'] === 'namespaces')
    assert.equal(ns?.['namespaced'], false)
    // The generic client resolves kinds through discovery.
    const generic = k8s.KubernetesObjectApi.makeApiClient(kc)
    const dr = await generic.read({
      apiVersion: 'networking.istio.io/v1beta1',
      kind: 'DestinationRule',
      metadata: { name: 'reviews', namespace: 'bookinfo' },
    })
    assert.equal(dr.apiVersion, 'networking.istio.io/v1beta1')
  })

  it('serves the same objects at v1 and v1beta1, only v1beta1 on an old cluster', async () => {
    const co = kc.makeApiClient(k8s.CustomObjectsApi)
    const beta = (await co.getNamespacedCustomObject({ ...ISTIO, version: 'v1beta1', name: 'reviews' })) as VS
    assert.equal(beta.apiVersion, 'networking.istio.io/v1beta1')
    const old = await startKubeApi({ pki, store, authenticate: () => ({ user: 'admin' }), istioVersions: ['v1beta1'] })
    try {
      const groups = await raw(old, pki, 'GET', '/apis', { token: 't' })
      const istio = (groups.body['groups'] as Array<Record<string, unknown>>).find(
        (g) => g['name'] === 'networking.istio.io',
      )
      assert.deepEqual(istio?.['versions'], [{ groupVersion: 'networking.istio.io/v1beta1', version: 'v1beta1' }])
      assert.deepEqual(istio?.['preferredVersion'], { groupVersion: 'networking.istio.io/v1beta1', version: 'v1beta1' })
      const missing = await raw(
        old,
        pki,
        'GET',
        '/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/reviews',
        { token: 't' },
      )
      assert.equal(missing.status, 404)
      assert.equal(missing.body['message'], 'the server could not find the requested resource')
      assert.equal((await raw(old, pki, 'GET', '/apis/networking.istio.io/v1', { token: 't' })).status, 404)
      const ok = await raw(
        old,
        pki,
        'GET',
        '/apis/networking.istio.io/v1beta1/namespaces/bookinfo/virtualservices/reviews',
        { token: 't' },
      )
      assert.equal(ok.status, 200)
      old.istioVersions = []
      const none = await raw(old, pki, 'GET', '/apis', { token: 't' })
      assert.ok(!(none.body['groups'] as Array<{ name: string }>).some((g) => g.name === 'networking.istio.io'))
    } finally {
      await old.close()
    }
  })

  it('gets and lists with label and field selectors, in a namespace and across all', async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api)
    const pods = await core.listNamespacedPod({
      namespace: 'bookinfo',
      labelSelector: 'app=reviews,version in (v2,v3)',
    })
    assert.deepEqual(pods.items.map((p) => p.metadata?.labels?.['version']).sort(), ['v2', 'v3'])
    assert.ok(pods.metadata?.resourceVersion)
    const apps = kc.makeApiClient(k8s.AppsV1Api)
    const istiod = await apps.listDeploymentForAllNamespaces({ labelSelector: 'app=istiod' })
    assert.equal(istiod.items.length, 1)
    assert.equal(istiod.items[0]?.metadata?.namespace, 'istio-system')
    const dep = await apps.readNamespacedDeployment({ namespace: 'bookinfo', name: 'reviews-v1' })
    assert.equal(dep.status?.readyReplicas, 1)
    const co = kc.makeApiClient(k8s.CustomObjectsApi)
    const list = (await co.listNamespacedCustomObject({ ...ISTIO, fieldSelector: 'metadata.name=reviews' })) as {
      kind: string
      metadata: { resourceVersion: string }
      items: VS[]
    }
    assert.equal(list.kind, 'VirtualServiceList')
    assert.match(list.metadata.resourceVersion, /^\d+$/)
    assert.deepEqual(
      list.items.map((i) => [i.apiVersion, i.metadata.name]),
      [['networking.istio.io/v1', 'reviews']],
    )
    const missing = await apiError(co.getNamespacedCustomObject({ ...ISTIO, name: 'nope' }))
    assert.equal(missing.code, 404)
    assert.equal(missing.status['message'], 'virtualservices.networking.istio.io "nope" not found')
    assert.equal(missing.status['reason'], 'NotFound')
    const badField = await raw(
      api,
      pki,
      'GET',
      '/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices?fieldSelector=spec.hosts%3Dx',
      { token: 'admin-token' },
    )
    assert.equal(badField.status, 400)
  })

  it('rejects an update with a stale resourceVersion with 409 Conflict, and an unconditional one on a CRD with 422', async () => {
    const co = kc.makeApiClient(k8s.CustomObjectsApi)
    const vs = (await co.getNamespacedCustomObject({ ...ISTIO, name: 'ratings' })) as VS
    const next = structuredClone(vs)
    next.metadata.labels = { touched: 'yes' }
    const updated = (await co.replaceNamespacedCustomObject({ ...ISTIO, name: 'ratings', body: next })) as VS
    assert.notEqual(updated.metadata.resourceVersion, vs.metadata.resourceVersion)
    const e = await apiError(co.replaceNamespacedCustomObject({ ...ISTIO, name: 'ratings', body: vs }))
    assert.equal(e.code, 409)
    assert.equal(e.status['reason'], 'Conflict')
    assert.equal(
      e.status['message'],
      'Operation cannot be fulfilled on virtualservices.networking.istio.io "ratings": the object has been modified; please apply your changes to the latest version and try again',
    )
    const noRv = structuredClone(updated)
    delete noRv.metadata.resourceVersion
    const inv = await apiError(co.replaceNamespacedCustomObject({ ...ISTIO, name: 'ratings', body: noRv }))
    assert.equal(inv.code, 422)
    assert.match(
      String(inv.status['message']),
      /metadata\.resourceVersion: Invalid value: 0x0: must be specified for an update/,
    )
    const renamed = await apiError(
      co.replaceNamespacedCustomObject({
        ...ISTIO,
        name: 'ratings',
        body: { ...updated, metadata: { ...updated.metadata, name: 'other' } },
      }),
    )
    assert.equal(renamed.code, 400)
    // Built-ins allow unconditional updates.
    const core = kc.makeApiClient(k8s.CoreV1Api)
    const svc = await core.readNamespacedService({ namespace: 'bookinfo', name: 'details' })
    delete svc.metadata!.resourceVersion
    await core.replaceNamespacedService({ namespace: 'bookinfo', name: 'details', body: svc })
  })

  it('applies a JSON patch; a failed test is 422 Invalid and writes nothing', async () => {
    const co = kc.makeApiClient(k8s.CustomObjectsApi)
    const vs = (await co.getNamespacedCustomObject({ ...ISTIO, name: 'reviews' })) as VS
    const writes = store.writes.length
    const failed = await apiError(
      co.patchNamespacedCustomObject({
        ...ISTIO,
        name: 'reviews',
        body: [
          { op: 'test', path: '/metadata/resourceVersion', value: '1' },
          { op: 'replace', path: '/spec/http/0/route/0/destination/subset', value: 'v3' },
        ],
      }),
    )
    assert.equal(failed.code, 422)
    assert.deepEqual(failed.status, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'the server rejected our request due to an error in our request',
      reason: 'Invalid',
      details: {},
      code: 422,
    })
    assert.equal(store.writes.length, writes)
    const route = [
      { destination: { host: 'reviews', subset: 'v1' }, weight: 90 },
      { destination: { host: 'reviews', subset: 'v3' }, weight: 10 },
    ]
    const ok = (await co.patchNamespacedCustomObject({
      ...ISTIO,
      name: 'reviews',
      body: [
        { op: 'test', path: '/metadata/resourceVersion', value: vs.metadata.resourceVersion },
        { op: 'replace', path: '/spec/http/0/route', value: route },
      ],
    })) as VS
    assert.deepEqual(ok.spec.http[0]?.route, route)
    assert.equal(ok.metadata.generation, 2)
    // Removing a member that is not there fails like a failed test.
    const gone = await apiError(
      co.patchNamespacedCustomObject({ ...ISTIO, name: 'reviews', body: [{ op: 'remove', path: '/spec/tcp' }] }),
    )
    assert.equal(gone.code, 422)
  })

  it('applies merge patches; a stale resourceVersion in one is 409; SMP on a CRD is 415', async () => {
    const co = kc.makeApiClient(k8s.CustomObjectsApi)
    const vs = (await co.getNamespacedCustomObject({ ...ISTIO, name: 'details' })) as VS
    const patched = (await co.patchNamespacedCustomObject(
      {
        ...ISTIO,
        name: 'details',
        body: { metadata: { annotations: { 'istio-canary/state': '{"step":1}' } } },
      },
      MERGE,
    )) as VS
    assert.equal(patched.metadata.annotations?.['istio-canary/state'], '{"step":1}')
    assert.deepEqual(patched.spec, vs.spec)
    const removed = (await co.patchNamespacedCustomObject(
      { ...ISTIO, name: 'details', body: { metadata: { annotations: { 'istio-canary/state': null } } } },
      MERGE,
    )) as VS
    assert.equal(removed.metadata.annotations?.['istio-canary/state'], undefined)
    const stale = await apiError(
      co.patchNamespacedCustomObject(
        {
          ...ISTIO,
          name: 'details',
          body: { metadata: { resourceVersion: vs.metadata.resourceVersion, labels: { x: 'y' } } },
        },
        MERGE,
      ),
    )
    assert.equal(stale.code, 409)
    assert.equal(stale.status['reason'], 'Conflict')
    const smp = await apiError(
      co.patchNamespacedCustomObject(
        { ...ISTIO, name: 'details', body: { metadata: { labels: { x: 'y' } } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
      ),
    )
    assert.equal(smp.code, 415)
    // Built-ins take a strategic merge patch (treated as a merge patch here).
    const core = kc.makeApiClient(k8s.CoreV1Api)
    const cm = await core.patchNamespacedConfigMap(
      { namespace: 'istio-system', name: 'istio', body: { data: { extra: '1' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    )
    assert.equal(cm.data?.['extra'], '1')
    assert.ok(cm.data?.['mesh'])
  })

  it('server-side apply: fieldManager required and force only for apply (422 PatchOptions), a conflict 409', async () => {
    const co = kc.makeApiClient(k8s.CustomObjectsApi)
    const SSA = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply)
    const config = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'details', namespace: 'bookinfo', labels: { owner: 'gitops' } },
      spec: { hosts: ['details'], http: [{ route: [{ destination: { host: 'details', subset: 'v2' } }] }] },
    }
    const noManager = await apiError(co.patchNamespacedCustomObject({ ...ISTIO, name: 'details', body: config }, SSA))
    assert.equal(noManager.code, 422)
    assert.equal(
      noManager.status['message'],
      'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
    )
    const forceMerge = await apiError(
      co.patchNamespacedCustomObject({ ...ISTIO, name: 'details', body: { metadata: {} }, force: true }, MERGE),
    )
    assert.equal(forceMerge.code, 422)
    assert.match(String(forceMerge.status['message']), /force: Forbidden: may not be specified for non-apply patch/)
    // Someone edits spec.http (an Update of manager 'kubectl-edit'): applying another value conflicts with it.
    await co.patchNamespacedCustomObject(
      {
        ...ISTIO,
        name: 'details',
        body: { spec: { http: [{ timeout: '3s', route: [{ destination: { host: 'details', subset: 'v1' } }] }] } },
        fieldManager: 'kubectl-edit',
      },
      MERGE,
    )
    const refused = await apiError(
      co.patchNamespacedCustomObject({ ...ISTIO, name: 'details', body: config, fieldManager: 'flux' }, SSA),
    )
    assert.equal(refused.code, 409)
    assert.equal(refused.status['reason'], 'Conflict')
    assert.match(
      String(refused.status['message']),
      /^Apply failed with 1 conflict: conflict with "kubectl-edit" using networking\.istio\.io\/v1 at \S+Z: \.spec\.http$/,
    )
    const causes = (refused.status['details'] as { causes: Array<{ reason: string; field: string }> }).causes
    assert.ok(
      causes.some((c) => c.reason === 'FieldManagerConflict' && c.field === '.spec.http'),
      JSON.stringify(causes),
    )
    const forced = (await co.patchNamespacedCustomObject(
      { ...ISTIO, name: 'details', body: config, fieldManager: 'flux', force: true },
      SSA,
    )) as VS & { metadata: { managedFields?: Array<{ manager: string; operation: string }> } }
    assert.deepEqual(forced.spec.http?.[0]?.route, [{ destination: { host: 'details', subset: 'v2' } }])
    assert.ok(forced.metadata.managedFields?.some((e) => e.manager === 'flux' && e.operation === 'Apply'))
  })

  it('keeps status on writes to the main resource of a Deployment', async () => {
    const apps = kc.makeApiClient(k8s.AppsV1Api)
    const d = await apps.patchNamespacedDeployment(
      {
        namespace: 'bookinfo',
        name: 'ratings-v1',
        body: { status: { readyReplicas: 7 }, metadata: { labels: { p: 'q' } } },
      },
      MERGE,
    )
    assert.equal(d.status?.readyReplicas, 1)
    assert.equal(d.metadata?.labels?.['p'], 'q')
  })

  it('with dryRun=All validates and answers without storing', async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api)
    const co = kc.makeApiClient(k8s.CustomObjectsApi)
    const writes = store.writes.length
    const cm = await core.createNamespacedConfigMap({
      namespace: 'bookinfo',
      body: { metadata: { name: 'dry' }, data: { a: '1' } },
      dryRun: 'All',
    })
    assert.equal(cm.metadata?.name, 'dry')
    assert.equal(store.get(REFS.configmaps, 'bookinfo', 'dry'), undefined)
    const before = (await co.getNamespacedCustomObject({ ...ISTIO, name: 'productpage' })) as VS
    const dry = (await co.patchNamespacedCustomObject(
      { ...ISTIO, name: 'productpage', dryRun: 'All', body: { metadata: { labels: { dry: 'run' } } } },
      MERGE,
    )) as VS
    assert.equal(dry.metadata.labels?.['dry'], 'run')
    await co.deleteNamespacedCustomObject({ ...ISTIO, name: 'productpage', dryRun: 'All' })
    const after = (await co.getNamespacedCustomObject({ ...ISTIO, name: 'productpage' })) as VS
    assert.deepEqual(after, before)
    const conflict = await apiError(
      co.replaceNamespacedCustomObject({
        ...ISTIO,
        name: 'productpage',
        dryRun: 'All',
        body: { ...before, metadata: { ...before.metadata, resourceVersion: '1' } },
      }),
    )
    assert.equal(conflict.code, 409)
    assert.equal(store.writes.length, writes)
  })

  it('creates, refuses a duplicate with 409 AlreadyExists, deletes', async () => {
    const co = kc.makeApiClient(k8s.CustomObjectsApi)
    const body = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'extra' },
      spec: { hosts: ['extra'], http: [{ route: [{ destination: { host: 'extra' } }] }] },
    }
    const created = (await co.createNamespacedCustomObject({ ...ISTIO, body })) as VS
    assert.equal(created.metadata.namespace, 'bookinfo')
    assert.ok(created.metadata.uid)
    const dup = await apiError(co.createNamespacedCustomObject({ ...ISTIO, body }))
    assert.equal(dup.code, 409)
    assert.equal(dup.status['reason'], 'AlreadyExists')
    assert.equal(dup.status['message'], 'virtualservices.networking.istio.io "extra" already exists')
    const wrongNs = await apiError(
      co.createNamespacedCustomObject({ ...ISTIO, body: { ...body, metadata: { name: 'x', namespace: 'default' } } }),
    )
    assert.equal(wrongNs.code, 400)
    const noKind = await apiError(co.createNamespacedCustomObject({ ...ISTIO, body: { metadata: { name: 'x' } } }))
    assert.equal(noKind.code, 400)
    const del = (await co.deleteNamespacedCustomObject({ ...ISTIO, name: 'extra' })) as Record<string, unknown>
    assert.equal(del['status'], 'Success')
    const gone = await apiError(co.deleteNamespacedCustomObject({ ...ISTIO, name: 'extra' }))
    assert.equal(gone.code, 404)
    // Leases: client-node's V1MicroTime is the format the server parses; a plain Date is refused like a real server does.
    const leases = kc.makeApiClient(k8s.CoordinationV1Api)
    const badTime = await apiError(
      leases.createNamespacedLease({
        namespace: 'bookinfo',
        body: { metadata: { name: 'lock' }, spec: { holderIdentity: 'a', renewTime: new Date() } },
      }),
    )
    assert.equal(badTime.code, 400)
    const lease = await leases.createNamespacedLease({
      namespace: 'bookinfo',
      body: {
        metadata: { name: 'lock' },
        spec: { holderIdentity: 'a', leaseDurationSeconds: 60, renewTime: new k8s.V1MicroTime() },
      },
    })
    assert.match(String(lease.spec?.renewTime), /\.\d{6}Z$/)
    const pre = await raw(api, pki, 'DELETE', '/apis/coordination.k8s.io/v1/namespaces/bookinfo/leases/lock', {
      token: 'admin-token',
      body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { resourceVersion: '1' } },
    })
    assert.equal(pre.status, 409)
    await leases.deleteNamespacedLease({ namespace: 'bookinfo', name: 'lock' })
    const noNs = await apiError(
      kc
        .makeApiClient(k8s.CoreV1Api)
        .createNamespacedConfigMap({ namespace: 'nowhere', body: { metadata: { name: 'c' } } }),
    )
    assert.equal(noNs.status['message'], 'namespaces "nowhere" not found')
    const post = await raw(api, pki, 'POST', '/api/v1/namespaces/bookinfo/configmaps/x', {
      token: 'admin-token',
      body: {},
    })
    assert.equal(post.status, 405)
    assert.equal(post.body['reason'], 'MethodNotAllowed')
  })

  it("emulates istiod's validation webhook for VirtualService weights and match headers, as strict as Istio and no stricter", async () => {
    const co = kc.makeApiClient(k8s.CustomObjectsApi)
    const dest = (subset: string, weight?: number) => ({
      destination: { host: 'reviews', subset },
      ...(weight === undefined ? {} : { weight }),
    })
    const setRoute = (value: unknown[]) =>
      co.patchNamespacedCustomObject({
        ...ISTIO,
        name: 'reviews',
        body: [{ op: 'replace', path: '/spec/http/0/route', value }],
      })
    const denied = 'admission webhook "validation.istio.io" denied the request: configuration is invalid: '
    // Relative weights (Istio >= 1.15): 80/10 is accepted and means 89 % / 11 %.
    await setRoute([dest('v1', 80), dest('v3', 10)])
    const zero = await apiError(setRoute([dest('v1', 0), dest('v3', 0)]))
    assert.equal(zero.code, 400)
    assert.equal(zero.status['message'], `${denied}total destination weight = 0`)
    const negative = await apiError(setRoute([dest('v1', 105), dest('v3', -5)]))
    assert.equal(negative.status['message'], `${denied}weight -5 < 0`)
    const header = await apiError(
      co.patchNamespacedCustomObject({
        ...ISTIO,
        name: 'reviews',
        body: [{ op: 'add', path: '/spec/http/0/match', value: [{ headers: { 'x.canary': { exact: 'pr-1' } } }] }],
      }),
    )
    assert.equal(header.code, 400)
    assert.match(String(header.status['message']), /x\.canary/)
    const typed = await apiError(
      co.patchNamespacedCustomObject({
        ...ISTIO,
        name: 'reviews',
        body: [{ op: 'add', path: '/spec/http/0/route/0/weight', value: '50' }],
      }),
    )
    assert.equal(typed.code, 422)
    await setRoute([dest('v1')])
  })

  it('injects faults: 429 with Retry-After, 5xx, connection resets; then recovers', async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api)
    api.injectFault({ method: 'GET', path: /\/namespaces\/bookinfo$/, status: 429, times: 1, retryAfterSeconds: 2 })
    const throttled = await apiError(core.readNamespace({ name: 'bookinfo' }))
    assert.equal(throttled.code, 429)
    assert.equal(throttled.headers['retry-after'], '2')
    assert.equal(throttled.status['reason'], 'TooManyRequests')
    const ns = await core.readNamespace({ name: 'bookinfo' })
    assert.equal(ns.metadata?.labels?.['istio-injection'], 'enabled')
    const last = api.requests.slice(-2).map((r) => [r.method, r.path, r.status])
    assert.deepEqual(last, [
      ['GET', '/api/v1/namespaces/bookinfo', 429],
      ['GET', '/api/v1/namespaces/bookinfo', 200],
    ])
    assert.equal(api.requests.at(-1)?.userAgent?.startsWith('kubernetes-client-javascript/'), true)

    api.injectFault({ status: 503, times: 2 })
    api.injectFault({ path: /configmaps/, status: 'reset', times: 1 })
    let attempts = 0
    const got = await withRetry(
      async () => {
        attempts++
        return core.readNamespacedConfigMap({ namespace: 'istio-system', name: 'istio' })
      },
      {
        attempts: 5,
        baseMs: 1,
        maxMs: 1,
        sleep: async () => {},
        retryable: (e) => isTransientNetworkError(e) || (e instanceof k8s.ApiException && [429, 503].includes(e.code)),
      },
    )
    assert.equal(got.metadata?.name, 'istio')
    assert.equal(attempts, 4)
    const reset = api.requests.filter((r) => r.status === 0)
    assert.equal(reset.length, 1)
  })
})

describe('seedCluster', () => {
  const pods = REFS.pods

  it('oss layout: istiod, ingress gateway with a loopback LB address, injected BookInfo', () => {
    const store = new KubeStore()
    const info = seedCluster(store, {
      layout: 'oss',
      gatewayPort: 31080,
      readyVersions: { v3: false },
      istioVersion: '1.24.2',
    })
    assert.deepEqual(info, {
      istioNamespace: 'istio-system',
      revision: 'default',
      injectedBy: 'default',
      ingressNamespace: 'istio-system',
      ingressService: 'istio-ingressgateway',
      namespace: 'bookinfo',
    })
    assert.equal(store.get(REFS.namespaces, undefined, 'bookinfo')?.metadata.labels?.['istio-injection'], 'enabled')
    const istiod = store.get(REFS.deployments, 'istio-system', 'istiod')!
    assert.deepEqual(
      { ...istiod.metadata.labels },
      { ...istiod.metadata.labels, app: 'istiod', istio: 'pilot', 'istio.io/rev': 'default' },
    )
    const image = (istiod['spec'] as { template: { spec: { containers: Array<{ image: string }> } } }).template.spec
      .containers[0]?.image
    assert.equal(image, 'docker.io/istio/pilot:1.24.2')
    assert.equal(store.list(pods, 'istio-system', 'app=istiod').length, 1)
    const gw = store.get(REFS.services, 'istio-system', 'istio-ingressgateway')!
    const spec = gw['spec'] as { type: string; ports: Array<{ name: string; port: number; targetPort: number }> }
    assert.equal(spec.type, 'LoadBalancer')
    assert.deepEqual(
      spec.ports.map((p) => [p.name, p.port, p.targetPort]),
      [
        ['status-port', 15021, 15021],
        ['http2', 31080, 8080],
        ['https', 443, 8443],
      ],
    )
    assert.equal(
      (gw['status'] as { loadBalancer: { ingress: Array<{ ip: string }> } }).loadBalancer.ingress[0]?.ip,
      '127.0.0.1',
    )
    assert.ok(store.get(REFS.configmaps, 'istio-system', 'istio'))

    const bookinfo = store.list(pods, 'bookinfo')
    assert.equal(bookinfo.length, 6)
    for (const p of bookinfo) {
      assert.match(p.metadata.name, /^[a-z]+-v\d-[0-9a-f]{10}-[a-z0-9]{5}$/)
      const names = (p['spec'] as { containers: Array<{ name: string }> }).containers.map((c) => c.name)
      assert.equal(names.at(-1), 'istio-proxy')
      assert.ok(p.metadata.annotations?.['sidecar.istio.io/status'])
      assert.equal((p['status'] as { phase: string }).phase, 'Running')
    }
    const ready = (p: KubeObject): string | undefined =>
      (p['status'] as { conditions: Array<{ type: string; status: string }> }).conditions.find(
        (c) => c.type === 'Ready',
      )?.status
    assert.equal(ready(store.list(pods, 'bookinfo', 'app=reviews,version=v3')[0]!), 'False')
    assert.equal(ready(store.list(pods, 'bookinfo', 'app=reviews,version=v2')[0]!), 'True')
    const v3 = store.get(REFS.deployments, 'bookinfo', 'reviews-v3')!
    assert.equal((v3['status'] as { readyReplicas?: number }).readyReplicas, undefined)
    const drs = store.list(REFS.destinationRules, 'bookinfo').map((d) => d.metadata.name)
    assert.deepEqual(drs, ['details', 'productpage', 'ratings', 'reviews'])
    const vss = store.list(REFS.virtualServices, 'bookinfo').map((d) => d.metadata.name)
    assert.deepEqual(vss, ['bookinfo', 'details', 'productpage', 'ratings', 'reviews'])
    const reviews = store.get(REFS.virtualServices, 'bookinfo', 'reviews') as VS
    assert.deepEqual(reviews.spec.http, [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }])
    const gateway = store.get(REFS.gateways, 'bookinfo', 'bookinfo-gateway')!
    assert.deepEqual((gateway['spec'] as { selector: unknown }).selector, { istio: 'ingressgateway' })
  })

  it('aks-addon layout: revisioned istiod, aks-istio-ingress gateway, rev-labelled namespace', () => {
    const store = new KubeStore()
    const info = seedCluster(store, {
      layout: 'aks-addon',
      gatewayPort: 31081,
      reviewsRoute: 'jason-v2-v1',
      istioVersion: '1.24.2',
    })
    assert.deepEqual(info, {
      istioNamespace: 'aks-istio-system',
      revision: 'asm-1-24',
      injectedBy: 'asm-1-24',
      ingressNamespace: 'aks-istio-ingress',
      ingressService: 'aks-istio-ingressgateway-external',
      namespace: 'bookinfo',
    })
    assert.equal(store.get(REFS.namespaces, undefined, 'bookinfo')?.metadata.labels?.['istio.io/rev'], 'asm-1-24')
    const istiod = store.get(REFS.deployments, 'aks-istio-system', 'istiod-asm-1-24')!
    assert.equal(istiod.metadata.labels?.['istio.io/rev'], 'asm-1-24')
    assert.match(JSON.stringify(istiod['spec']), /mcr\.microsoft\.com\/oss\/istio\/pilot:1\.24\.2-distroless/)
    const svc = store.get(REFS.services, 'aks-istio-ingress', 'aks-istio-ingressgateway-external')!
    assert.equal(
      (svc['spec'] as { ports: Array<{ name: string; port: number }> }).ports.find((p) => p.name === 'http2')?.port,
      31081,
    )
    assert.equal(store.list(pods, 'aks-istio-ingress', 'istio=aks-istio-ingressgateway-external').length, 1)
    const gateway = store.get(REFS.gateways, 'bookinfo', 'bookinfo-gateway')!
    assert.deepEqual((gateway['spec'] as { selector: unknown }).selector, {
      istio: 'aks-istio-ingressgateway-external',
    })
    const reviews = store.get(REFS.virtualServices, 'bookinfo', 'reviews') as VS & {
      spec: { http: Array<{ match?: unknown }> }
    }
    assert.equal(reviews.spec.http.length, 2)
    assert.equal(reviews.spec.http[0]?.route[0]?.destination.subset, 'v2')
    assert.equal(reviews.spec.http[1]?.route[0]?.destination.subset, 'v1')
    const pod = store.list(pods, 'bookinfo', 'app=reviews,version=v1')[0]!
    assert.match(JSON.stringify(pod['spec']), /proxyv2:1\.24\.2-distroless/)
    assert.match(pod.metadata.annotations?.['sidecar.istio.io/status'] ?? '', /"revision":"asm-1-24"/)
  })

  it('a canary upgrade: two istiods of their own versions, injector and tag webhooks, pods injected as the labels select', () => {
    const sidecarOf = (store: KubeStore): { image: string; revision: string } | undefined => {
      const pod = store.list(pods, 'bookinfo', 'app=reviews,version=v1')[0]!
      const proxy = (pod['spec'] as { containers: Array<{ name: string; image: string }> }).containers.find(
        (c) => c.name === 'istio-proxy',
      )
      return proxy ? { image: proxy.image, revision: pod.metadata.annotations?.['istio.io/rev'] ?? '' } : undefined
    }
    const mwc = REFS.mutatingWebhookConfigurations
    // AKS's guide: prod-stable -> asm-1-29, prod-canary -> asm-1-30, namespace labelled by the tag.
    const tagged = new KubeStore()
    const info = seedCluster(tagged, {
      layout: 'aks-addon',
      gatewayPort: 1,
      istioVersion: '1.29.8',
      canaryVersion: '1.30.5',
      tags: { 'prod-stable': 'stable', 'prod-canary': 'canary' },
      namespaceLabels: { 'istio.io/rev': 'prod-stable' },
    })
    assert.equal(info.revision, 'asm-1-29')
    assert.equal(info.canaryRevision, 'asm-1-30')
    assert.equal(info.injectedBy, 'asm-1-29')
    const images = tagged
      .list(REFS.deployments, 'aks-istio-system', 'app=istiod')
      .map((d) => [d.metadata.name, JSON.stringify(d['spec']).match(/pilot:([^"]+)/)?.[1]])
    assert.deepEqual(images, [
      ['istiod-asm-1-29', '1.29.8-distroless'],
      ['istiod-asm-1-30', '1.30.5-distroless'],
    ])
    assert.deepEqual(
      tagged
        .list(mwc)
        .map((w) => [w.metadata.name, w.metadata.labels?.['istio.io/tag'], w.metadata.labels?.['istio.io/rev']]),
      [
        ['istio-revision-tag-prod-canary-aks-istio-system', 'prod-canary', 'asm-1-30'],
        ['istio-revision-tag-prod-stable-aks-istio-system', 'prod-stable', 'asm-1-29'],
        ['istio-sidecar-injector-asm-1-29-aks-istio-system', undefined, 'asm-1-29'],
        ['istio-sidecar-injector-asm-1-30-aks-istio-system', undefined, 'asm-1-30'],
      ],
    )
    assert.deepEqual(sidecarOf(tagged), {
      image: 'mcr.microsoft.com/oss/istio/proxyv2:1.29.8-distroless',
      revision: 'asm-1-29',
    })
    // Relabelled to the canary revision itself (and restarted): its proxies.
    const moved = new KubeStore()
    seedCluster(moved, {
      layout: 'aks-addon',
      gatewayPort: 1,
      istioVersion: '1.29.8',
      canaryVersion: '1.30.5',
      namespaceLabels: { 'istio.io/rev': 'canary' },
    })
    assert.equal(sidecarOf(moved)?.revision, 'asm-1-30')
    // A label naming neither: no webhook selects the namespace, no sidecar (as admission does it).
    const unknown = new KubeStore()
    const none = seedCluster(unknown, {
      layout: 'aks-addon',
      gatewayPort: 1,
      namespaceLabels: { 'istio.io/rev': 'prod' },
    })
    assert.equal(none.injectedBy, undefined)
    assert.equal(sidecarOf(unknown), undefined)
    // Open source: istio-injection=enabled is the default revision's, or the revision the tag `default` points to.
    const oss = new KubeStore()
    const o = seedCluster(oss, { layout: 'oss', gatewayPort: 1, canaryVersion: '1.31.1', tags: { default: 'canary' } })
    assert.equal(o.canaryRevision, '1-31-1')
    assert.ok(oss.get(mwc, undefined, 'istio-revision-tag-default'))
    // istioctl tag set default deactivated the default revision's own injector: the tag's revision injects.
    assert.equal(o.injectedBy, '1-31-1')
    assert.match(JSON.stringify(oss.get(mwc, undefined, 'istio-sidecar-injector')), /never-match/)
    assert.throws(
      () => seedCluster(new KubeStore(), { layout: 'oss', gatewayPort: 1, tags: { x: 'nope' } }),
      /names no revision/,
    )
  })

  it('without injection or without a control plane, pods have no sidecar', () => {
    const plain = new KubeStore()
    seedCluster(plain, { layout: 'oss', gatewayPort: 1, injection: false })
    assert.equal(plain.get(REFS.namespaces, undefined, 'bookinfo')?.metadata.labels?.['istio-injection'], undefined)
    const noCp = new KubeStore()
    seedCluster(noCp, { layout: 'oss', gatewayPort: 1, controlPlane: false, namespace: 'shop' })
    assert.equal(noCp.list(REFS.deployments, undefined, 'app=istiod').length, 0)
    assert.equal(noCp.get(REFS.namespaces, undefined, 'istio-system'), undefined)
    for (const [s, ns] of [
      [plain, 'bookinfo'],
      [noCp, 'shop'],
    ] as const) {
      for (const p of s.list(pods, ns)) {
        const names = (p['spec'] as { containers: Array<{ name: string }> }).containers.map((c) => c.name)
        assert.ok(!names.includes('istio-proxy'), p.metadata.name)
      }
    }
    assert.equal(noCp.list(pods, 'shop').length, 6)
  })
})
