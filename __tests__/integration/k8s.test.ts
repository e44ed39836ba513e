// The Kubernetes client wrapper and the Lease lock, in-process against the simulated API server over HTTPS.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { KubeConfig } from '@kubernetes/client-node'
import { Kube } from '../../src/k8s/client.js'
import { ConflictError, KubeError } from '../../src/k8s/resources.js'
import { LockHeldError, RolloutLock, leaseName } from '../../src/rollout/lock.js'
import { decodeState, encodeState, type RolloutState } from '../../src/routing/state.js'
import { type KubeApi, startKubeApi } from '../sim/kube/server.js'
import { seedCluster } from '../sim/kube/seed.js'
import { REFS } from '../sim/kube/refs.js'
import { KubeStore } from '../sim/kube/store.js'
import { type TestPki, makePki } from '../sim/net/tls.js'

const LEASES = REFS.leases
let pki: TestPki

function kubeFor(api: KubeApi, token = 'tok', sleeps: number[] = []): Kube {
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'sim', server: api.url, caData: Buffer.from(pki.caPem).toString('base64') }],
    users: [{ name: 'u', token }],
    contexts: [{ name: 'sim', cluster: 'sim', user: 'u' }],
    currentContext: 'sim',
  })
  return new Kube(kc, { sleep: async (ms) => void sleeps.push(ms) })
}

async function cluster(istioVersions?: string[]): Promise<{ api: KubeApi; store: KubeStore }> {
  const store = new KubeStore()
  seedCluster(store, { layout: 'oss', gatewayPort: 1 })
  const api = await startKubeApi({
    pki,
    store,
    authenticate: (t) => (t === 'tok' ? { user: 'u' } : undefined),
    ...(istioVersions ? { istioVersions } : {}),
  })
  return { api, store }
}

before(() => {
  pki = makePki()
})

describe('Kube client', () => {
  let api: KubeApi
  before(async () => {
    api = (await cluster()).api
  })
  after(() => api.close())

  it('prefers networking.istio.io/v1 and falls back to v1beta1 on older clusters', async () => {
    assert.equal(await kubeFor(api).istioApiVersion(), 'v1')
    const old = await cluster(['v1beta1'])
    try {
      const k = kubeFor(old.api)
      assert.equal(await k.istioApiVersion(), 'v1beta1')
      const vs = await k.getVirtualService('bookinfo', 'reviews')
      assert.equal(vs.apiVersion, 'networking.istio.io/v1beta1')
      await k.replaceVirtualService(vs)
      assert.ok(
        old.api.requests.some((r) => r.method === 'PUT' && r.path.startsWith('/apis/networking.istio.io/v1beta1/')),
      )
    } finally {
      await old.api.close()
    }
  })

  it('says clearly when Istio is not installed', async () => {
    const bare = await cluster([])
    try {
      await assert.rejects(
        kubeFor(bare.api).getVirtualService('bookinfo', 'reviews'),
        /does not serve networking\.istio\.io: Istio's CRDs are not installed/,
      )
    } finally {
      await bare.api.close()
    }
  })

  it('turns a stale resourceVersion into a ConflictError, never retried', async () => {
    const k = kubeFor(api)
    const vs = await k.getVirtualService('bookinfo', 'reviews')
    await k.replaceVirtualService(vs)
    const before = api.requests.length
    await assert.rejects(
      k.replaceVirtualService(vs),
      (err: unknown) => err instanceof ConflictError && err.status === 409 && /has been modified/.test(err.message),
    )
    assert.equal(api.requests.length, before + 1)
  })

  it('retries 429/503 and connection resets with backoff, then succeeds', async () => {
    const sleeps: number[] = []
    const k = kubeFor(api, 'tok', sleeps)
    await k.istioApiVersion()
    api.injectFault({ method: 'GET', path: /virtualservices\/reviews/, status: 503, times: 1 })
    api.injectFault({ method: 'GET', path: /virtualservices\/reviews/, status: 'reset', times: 1 })
    api.injectFault({ method: 'GET', path: /virtualservices\/reviews/, status: 429, times: 1, retryAfterSeconds: 1 })
    const vs = await k.getVirtualService('bookinfo', 'reviews')
    assert.equal(vs.metadata.name, 'reviews')
    assert.equal(sleeps.length, 3)
    assert.ok(sleeps.every((ms) => ms >= 0 && ms <= 10_000))
  })

  it('gives up after the attempts and reports the API error', async () => {
    const k = kubeFor(api)
    await k.istioApiVersion()
    const before = api.requests.length
    api.injectFault({ method: 'GET', path: /virtualservices\/reviews/, status: 500, times: 5 })
    await assert.rejects(
      k.getVirtualService('bookinfo', 'reviews'),
      (err: unknown) =>
        err instanceof KubeError &&
        err.status === 500 &&
        /read VirtualService bookinfo\/reviews failed/.test(err.message),
    )
    assert.equal(api.requests.length, before + 5, 'five attempts in all')
    assert.equal((await k.getVirtualService('bookinfo', 'reviews')).metadata.name, 'reviews', 'the faults are used up')
  })

  it('explains 401 and 404', async () => {
    await assert.rejects(kubeFor(api, 'bad').getNamespace('bookinfo'), /the credential was refused/)
    assert.equal(await kubeFor(api).getNamespace('nope'), undefined)
    await assert.rejects(
      kubeFor(api).getVirtualService('bookinfo', 'nope'),
      (err: unknown) => err instanceof KubeError && err.status === 404,
    )
  })
})

describe('RolloutLock', () => {
  let api: KubeApi
  let store: KubeStore
  before(async () => {
    ;({ api, store } = await cluster())
  })
  after(() => api.close())

  it('takes, refuses a second holder, and releases', async () => {
    const a = new RolloutLock(kubeFor(api), {
      target: { kind: 'VirtualService', namespace: 'bookinfo', name: 'reviews' },
      holder: 'run-a',
      ttlMs: 60_000,
    })
    const b = new RolloutLock(kubeFor(api), {
      target: { kind: 'VirtualService', namespace: 'bookinfo', name: 'reviews' },
      holder: 'run-b',
      ttlMs: 60_000,
    })
    await a.acquire()
    const lease = store.get(
      LEASES,
      'bookinfo',
      leaseName({ kind: 'VirtualService', namespace: 'bookinfo', name: 'reviews' }),
    )
    assert.equal((lease?.['spec'] as { holderIdentity: string }).holderIdentity, 'run-a')
    assert.match(
      (lease?.['spec'] as { renewTime: string }).renewTime,
      /\.\d{6}Z$/,
      'MicroTime with six fractional digits',
    )
    await assert.rejects(
      b.acquire(),
      (err: unknown) => err instanceof LockHeldError && /held by 'run-a'/.test(err.message),
    )
    await a.release()
    assert.equal(
      store.get(LEASES, 'bookinfo', leaseName({ kind: 'VirtualService', namespace: 'bookinfo', name: 'reviews' })),
      undefined,
    )
    await b.acquire()
    await b.release()
  })

  it('takes over a lease whose holder stopped renewing it', async () => {
    let now = Date.now()
    const clock = (): Date => new Date(now)
    // a run that took the lease and then died: never released
    const stale = new RolloutLock(kubeFor(api), {
      target: { kind: 'VirtualService', namespace: 'bookinfo', name: 'ratings' },
      holder: 'dead-run',
      ttlMs: 20_000,
      now: clock,
    })
    await stale.acquire()
    const live = new RolloutLock(kubeFor(api), {
      target: { kind: 'VirtualService', namespace: 'bookinfo', name: 'ratings' },
      holder: 'new-run',
      ttlMs: 20_000,
      now: clock,
    })
    await assert.rejects(live.acquire(), LockHeldError)
    now += 21_000
    await live.acquire()
    const spec = store.get(
      LEASES,
      'bookinfo',
      leaseName({ kind: 'VirtualService', namespace: 'bookinfo', name: 'ratings' }),
    )?.['spec'] as {
      holderIdentity: string
      leaseTransitions: number
    }
    assert.equal(spec.holderIdentity, 'new-run')
    assert.equal(spec.leaseTransitions, 1)
    await live.release()
    // the stale holder's timer is stopped without touching the new holder's lease
    await stale.release()
  })
})

describe('state annotation', () => {
  const s: RolloutState = {
    version: 1,
    phase: 'paused',
    runId: 'r',
    stable: 'v1',
    canary: 'v3',
    route: { by: 'default' },
    originalRoute: { route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
    lastWritten: {
      route: [
        { destination: { host: 'reviews', subset: 'v1' }, weight: 50 },
        { destination: { host: 'reviews', subset: 'v3' }, weight: 50 },
      ],
    },
    weight: 50,
    startedAt: 't',
    updatedAt: 't',
  }
  it('round-trips', () => {
    assert.deepEqual(
      decodeState({ 'istio-canary.io/state': encodeState(s) }, { kind: 'VirtualService' as const, name: 'reviews' }),
      s,
    )
    assert.equal(decodeState({}, { kind: 'VirtualService' as const, name: 'reviews' }), undefined)
  })
  it('refuses a damaged annotation with what to do', () => {
    assert.throws(
      () => decodeState({ 'istio-canary.io/state': '{nope' }, { kind: 'VirtualService' as const, name: 'reviews' }),
      /not valid JSON; remove it \(kubectl annotate virtualservice reviews istio-canary.io\/state-\)/,
    )
    assert.throws(
      () =>
        decodeState({ 'istio-canary.io/state': '{"version":2}' }, { kind: 'VirtualService' as const, name: 'reviews' }),
      /not a state this version of istio-canary understands/,
    )
  })
})
