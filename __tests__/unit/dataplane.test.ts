// The data plane's readiness checks for an HTTPRoute target (SPEC 7 rule 5) and the choice of data plane, on
// in-memory ports: each failure says what to run; every failure is reported at once.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { V1Deployment, V1Pod, V1Service } from '@kubernetes/client-node'
import { checkBackends } from '../../src/dataplane/backends.js'
import { chooseFlavor } from '../../src/dataplane/flavor.js'
import { ingressUrl } from '../../src/dataplane/ingress.js'
import { findLinkerd } from '../../src/dataplane/linkerd.js'
import { checkHttpRouteReadiness } from '../../src/dataplane/readiness.js'
import { checkWaypoints, waypointOf } from '../../src/dataplane/waypoint.js'
import type { ControlPlane } from '../../src/istio/mesh.js'
import { ReadinessError } from '../../src/istio/mesh.js'
import type { GatewayApiGateway } from '../../src/k8s/resources.js'

const NS = 'bookinfo'

function pod(
  name: string,
  labels: Record<string, string>,
  o: { ready?: boolean; proxy?: string; native?: boolean } = {},
): V1Pod {
  const proxy = o.proxy ? [{ name: o.proxy, image: 'proxy' }] : []
  return {
    metadata: {
      name,
      generateName: `${labels['app']}-${labels['version']}-5d7f8b9c4-`,
      namespace: NS,
      labels: { ...labels, 'pod-template-hash': '5d7f8b9c4' },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: `${labels['app']}-${labels['version']}-5d7f8b9c4`,
          uid: 'u',
          controller: true,
        },
      ],
    },
    spec: {
      containers: [{ name: 'app', image: 'app' }, ...(o.native ? [] : proxy)],
      ...(o.native ? { initContainers: proxy.map((c) => ({ ...c, restartPolicy: 'Always' })) } : {}),
    },
    status: {
      phase: 'Running',
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
    },
  }
}

const service = (name: string, selector?: Record<string, string>, labels?: Record<string, string>): V1Service => ({
  metadata: { name, namespace: NS, ...(labels ? { labels } : {}) },
  spec: { ...(selector ? { selector } : {}), ports: [{ port: 9080 }] },
})

const matches = (sel: string, labels: Record<string, string> | undefined): boolean =>
  sel.split(',').every((kv) => {
    const [k, v] = kv.split('=') as [string, string]
    return labels?.[k] === v
  })

/** The ports the checks read, over plain arrays. */
function world(o: {
  services?: V1Service[]
  pods?: V1Pod[]
  gateways?: GatewayApiGateway[]
  deployments?: V1Deployment[]
}) {
  const reads: string[] = []
  return {
    reads,
    getService: async (namespace: string, name: string) => {
      reads.push(`service ${namespace}/${name}`)
      return (o.services ?? []).find((s) => s.metadata?.name === name && s.metadata?.namespace === namespace)
    },
    listServices: async () => o.services ?? [],
    listPods: async (_namespace: string, sel: string) => (o.pods ?? []).filter((p) => matches(sel, p.metadata?.labels)),
    listDestinationRules: async () => [],
    getGatewayApiGateway: async (namespace: string, name: string) =>
      (o.gateways ?? []).find((g) => g.metadata.name === name && g.metadata.namespace === namespace),
    listDeployments: async (namespace: string, sel?: string) =>
      (o.deployments ?? []).filter(
        (d) => d.metadata?.namespace === namespace && (sel === undefined || matches(sel, d.metadata?.labels)),
      ),
  }
}

const versions = [
  service('reviews-v1', { app: 'reviews', version: 'v1' }),
  service('reviews-v3', { app: 'reviews', version: 'v3' }),
]

function gateway(
  name: string,
  o: { programmed?: 'True' | 'False'; address?: string; port?: number; cls?: string } = {},
): GatewayApiGateway {
  return {
    metadata: { name, namespace: NS },
    spec: {
      gatewayClassName: o.cls ?? 'istio',
      listeners: [{ name: 'http', port: o.port ?? 80, protocol: 'HTTP' }],
    },
    status: {
      ...(o.address ? { addresses: [{ type: 'IPAddress', value: o.address }] } : {}),
      conditions: o.programmed
        ? [{ type: 'Programmed', status: o.programmed, reason: o.programmed === 'True' ? 'Programmed' : 'Invalid' }]
        : [],
    },
  }
}

const linkerdDeployment = (component: string, ready = true): V1Deployment => ({
  metadata: {
    name: `linkerd-${component}`,
    namespace: 'linkerd',
    labels: {
      'linkerd.io/control-plane-component': component,
      'linkerd.io/control-plane-ns': 'linkerd',
      'app.kubernetes.io/version': 'edge-24.11.8',
    },
  },
  status: { readyReplicas: ready ? 1 : 0 },
})

describe('the data plane of a run', () => {
  const none = { istio: async () => false, linkerd: async () => false }
  it('a VirtualService is Istio: ambient by the namespace label, else sidecars; mesh decides an HTTPRoute', async () => {
    const ambient = { labels: { 'istio.io/dataplane-mode': 'ambient' }, annotations: {} }
    const plain = { labels: {}, annotations: {} }
    assert.equal(await chooseFlavor({ mesh: 'auto' }, 'VirtualService', ambient, none), 'istio-ambient')
    assert.equal(await chooseFlavor({ mesh: 'auto' }, 'VirtualService', plain, none), 'istio-sidecar')
    assert.equal(await chooseFlavor({ mesh: 'linkerd' }, 'HTTPRoute', ambient, none), 'linkerd')
    assert.equal(await chooseFlavor({ mesh: 'istio' }, 'HTTPRoute', ambient, none), 'istio-ambient')
  })
  it('mesh auto: the namespace first (ambient, injection labels, linkerd.io/inject), then the control plane found', async () => {
    let asked = 0
    const count = { istio: async () => (asked++, true), linkerd: async () => (asked++, true) }
    const linkerd = { labels: {}, annotations: { 'linkerd.io/inject': 'enabled' } }
    assert.equal(await chooseFlavor({ mesh: 'auto' }, 'HTTPRoute', linkerd, count), 'linkerd')
    assert.equal(
      await chooseFlavor(
        { mesh: 'auto' },
        'HTTPRoute',
        { labels: { 'istio.io/rev': 'asm-1-30' }, annotations: {} },
        count,
      ),
      'istio-sidecar',
    )
    assert.equal(asked, 0, 'what the namespace says needs no control-plane lookup')
    const bare = { labels: {}, annotations: {} }
    assert.equal(
      await chooseFlavor({ mesh: 'auto' }, 'HTTPRoute', bare, { istio: async () => false, linkerd: async () => true }),
      'linkerd',
    )
    assert.equal(
      await chooseFlavor({ mesh: 'auto' }, 'HTTPRoute', bare, { istio: async () => true, linkerd: async () => true }),
      'istio-sidecar',
    )
    assert.equal(
      await chooseFlavor({ mesh: 'auto' }, 'HTTPRoute', bare, none),
      'istio-sidecar',
      'none found: Istio, whose checks then say so',
    )
  })
})

describe('Linkerd control plane', () => {
  it('found by its chart labels in linkerd, with its release; missing and unready components named', async () => {
    assert.equal(await findLinkerd(world({})), undefined)
    const all = ['destination', 'identity', 'proxy-injector'].map((c) => linkerdDeployment(c))
    assert.deepEqual(await findLinkerd(world({ deployments: all })), {
      namespace: 'linkerd',
      version: 'edge-24.11.8',
      missing: [],
      notReady: [],
    })
    const partial = await findLinkerd(
      world({ deployments: [linkerdDeployment('destination', false), linkerdDeployment('identity')] }),
    )
    assert.deepEqual([partial?.missing, partial?.notReady], [['proxy-injector'], ['destination']])
  })
})

describe('ambient waypoints', () => {
  it('a Service label beats the namespace label; none opts out; another namespace by use-waypoint-namespace', () => {
    assert.deepEqual(waypointOf(NS, { 'istio.io/use-waypoint': 'waypoint' }, {}), { namespace: NS, name: 'waypoint' })
    assert.deepEqual(
      waypointOf(NS, { 'istio.io/use-waypoint': 'waypoint' }, { 'istio.io/use-waypoint': 'reviews-wp' }),
      {
        namespace: NS,
        name: 'reviews-wp',
      },
    )
    assert.equal(
      waypointOf(NS, { 'istio.io/use-waypoint': 'waypoint' }, { 'istio.io/use-waypoint': 'none' }),
      undefined,
    )
    assert.deepEqual(
      waypointOf(NS, { 'istio.io/use-waypoint': 'shared', 'istio.io/use-waypoint-namespace': 'istio-system' }, {}),
      { namespace: 'istio-system', name: 'shared' },
    )
  })
  it('each routed Service needs a Programmed waypoint; each failure says what to run', async () => {
    const ns = { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' }
    const svc = [service('reviews', { app: 'reviews' })]
    const ok = await checkWaypoints(
      world({ services: svc, gateways: [gateway('waypoint', { programmed: 'True', cls: 'istio-waypoint' })] }),
      {
        namespace: NS,
        namespaceLabels: ns,
        services: ['reviews'],
      },
    )
    assert.deepEqual(ok.failures, [])
    const missing = await checkWaypoints(world({ services: svc }), {
      namespace: NS,
      namespaceLabels: ns,
      services: ['reviews'],
    })
    assert.match(
      missing.failures[0] ?? '',
      /uses the waypoint bookinfo\/waypoint .* which does not exist: istioctl waypoint apply -n bookinfo --name waypoint/,
    )
    const unprogrammed = await checkWaypoints(
      world({ services: svc, gateways: [gateway('waypoint', { programmed: 'False' })] }),
      { namespace: NS, namespaceLabels: ns, services: ['reviews'] },
    )
    assert.match(
      unprogrammed.failures[0] ?? '',
      /the waypoint bookinfo\/waypoint of Service bookinfo\/reviews is Programmed is False \(Invalid\): kubectl -n bookinfo describe gateway waypoint/,
    )
    const unbound = await checkWaypoints(world({ services: svc }), {
      namespace: NS,
      namespaceLabels: { 'istio.io/dataplane-mode': 'ambient' },
      services: ['reviews'],
    })
    assert.match(
      unbound.failures[0] ?? '',
      /uses no waypoint, so in ambient mode its traffic is L4 only .* istioctl waypoint apply -n bookinfo --enroll-namespace/,
    )
  })
})

describe('Gateway API ingress', () => {
  it('the address the controller published, on the HTTP listener port', () => {
    assert.deepEqual(ingressUrl(gateway('gw', { address: '10.0.0.7', programmed: 'True' })), { url: 'http://10.0.0.7' })
    assert.deepEqual(ingressUrl(gateway('gw', { address: 'fd00::7', port: 8080 })), { url: 'http://[fd00::7]:8080' })
    assert.match(
      ingressUrl(gateway('gw', { programmed: 'False' })).why ?? '',
      /no address yet \(status.addresses is empty; Programmed is False\)/,
    )
    const tls = gateway('gw', { address: '10.0.0.7' })
    tls.spec.listeners = [{ name: 'https', port: 443, protocol: 'HTTPS' }]
    assert.deepEqual(ingressUrl(tls), { url: undefined, why: 'it has no HTTP listener' })
  })
})

describe('backend Services', () => {
  const pods = [
    pod('reviews-v1-a', { app: 'reviews', version: 'v1' }, { proxy: 'istio-proxy' }),
    pod('reviews-v3-a', { app: 'reviews', version: 'v3' }, { proxy: 'istio-proxy' }),
  ]
  it('each version as a subset with its selector, and its workload', async () => {
    const out = await checkBackends(world({ services: versions, pods }), {
      namespace: NS,
      backends: ['reviews-v1', 'reviews-v3'],
      flavor: 'istio-sidecar',
    })
    assert.deepEqual(out.failures, [])
    assert.deepEqual(out.subsets.get('reviews-v3'), { name: 'reviews-v3', labels: { app: 'reviews', version: 'v3' } })
    assert.deepEqual(
      [...out.workloads],
      [
        ['reviews-v1', 'reviews-v1'],
        ['reviews-v3', 'reviews-v3'],
      ],
    )
  })
  it('a missing Service, one without a selector, no pods, no ready pod, no proxy: each named with its fix', async () => {
    const out = await checkBackends(
      world({
        services: [
          service('reviews-v1', { app: 'reviews', version: 'v1' }),
          service('manual'),
          service('reviews-v2', { app: 'reviews', version: 'v2' }),
          service('reviews-v3', { app: 'reviews', version: 'v3' }),
          service('ratings-v1', { app: 'ratings', version: 'v1' }),
        ],
        pods: [
          pod('reviews-v1-a', { app: 'reviews', version: 'v1' }, { proxy: 'istio-proxy', ready: false }),
          pod('reviews-v3-a', { app: 'reviews', version: 'v3' }),
          pod('ratings-v1-a', { app: 'ratings', version: 'v1' }, { proxy: 'istio-proxy' }),
        ],
      }),
      {
        namespace: NS,
        backends: ['reviews-v9', 'manual', 'reviews-v2', 'reviews-v1', 'reviews-v3', 'ratings-v1'],
        flavor: 'istio-sidecar',
        origin: { 'reviews-v9': "input 'canary-backend'" },
      },
    )
    assert.equal(out.failures.length, 5)
    assert.match(
      out.failures[0] ?? '',
      /backend Service bookinfo\/reviews-v9 \(input 'canary-backend'\) does not exist: .*kubectl -n bookinfo get services/,
    )
    assert.match(out.failures[1] ?? '', /backend Service bookinfo\/manual has no selector/)
    assert.match(out.failures[2] ?? '', /reviews-v2 selects no pods \(selector app=reviews,version=v2\)/)
    assert.match(out.failures[3] ?? '', /reviews-v1 has 1 pod\(s\) but no ready endpoint/)
    assert.match(
      out.failures[4] ?? '',
      /reviews-v3: its ready pods have no istio-proxy sidecar: enable sidecar injection/,
    )
  })
  it('ambient needs no sidecar; Linkerd needs linkerd-proxy (a native sidecar too) and names workloads by its label', async () => {
    const bare = [
      pod('reviews-v1-a', { app: 'reviews', version: 'v1' }),
      pod('reviews-v3-a', { app: 'reviews', version: 'v3' }),
    ]
    const ambient = await checkBackends(world({ services: versions, pods: bare }), {
      namespace: NS,
      backends: ['reviews-v1', 'reviews-v3'],
      flavor: 'istio-ambient',
    })
    assert.deepEqual(ambient.failures, [])
    const noProxy = await checkBackends(world({ services: versions, pods: bare }), {
      namespace: NS,
      backends: ['reviews-v1'],
      flavor: 'linkerd',
    })
    assert.match(
      noProxy.failures[0] ?? '',
      /no linkerd-proxy: kubectl annotate namespace bookinfo linkerd.io\/inject=enabled, then kubectl -n bookinfo rollout restart/,
    )
    const meshed = [
      pod(
        'reviews-v1-a',
        { app: 'reviews', version: 'v1', 'linkerd.io/proxy-deployment': 'reviews-v1' },
        { proxy: 'linkerd-proxy', native: true },
      ),
    ]
    const linkerd = await checkBackends(world({ services: versions, pods: meshed }), {
      namespace: NS,
      backends: ['reviews-v1'],
      flavor: 'linkerd',
    })
    assert.deepEqual(linkerd.failures, [])
    assert.equal(linkerd.workloads.get('reviews-v1'), 'reviews-v1')
  })
})

describe('HTTPRoute readiness', () => {
  const cp: ControlPlane = {
    namespace: 'istio-system',
    revision: 'default',
    deployment: 'istiod',
    version: '1.31.1',
    ready: true,
    aksAddon: false,
    revisions: ['default'],
    tags: {},
  }
  const facts = {
    destinationHost: 'reviews-v1',
    gateways: [],
    gatewayApiGateways: ['bookinfo/bookinfo-gateway'],
    meshParents: ['reviews'],
  }
  const pods = [
    pod('reviews-v1-a', { app: 'reviews', version: 'v1' }),
    pod('reviews-v3-a', { app: 'reviews', version: 'v3' }),
  ]
  it('every failure at once: parents, ingress address, waypoint, backends, namespace', async () => {
    await assert.rejects(
      checkHttpRouteReadiness(world({ services: [service('reviews', { app: 'reviews' }), ...versions], pods }), {
        flavor: 'istio-ambient',
        namespace: NS,
        namespaceLabels: { 'istio.io/dataplane-mode': 'ambient' },
        route: 'bookinfo/reviews',
        facts: {
          ...facts,
          parents: {
            ok: false,
            pending: false,
            reasons: ['Service bookinfo/reviews: Accepted is False (NoMatchingParent)'],
          },
        },
        controlPlane: cp,
        gatewayUrlGiven: false,
        gatewayApiIngress: { namespace: NS, name: 'bookinfo-gateway', url: undefined, why: 'it has no address yet' },
        istioGateway: undefined,
        backends: ['reviews-v1', 'reviews-v3', 'reviews-v4'],
      }),
      (err: unknown) => {
        assert.ok(err instanceof ReadinessError)
        assert.equal(err.failures.length, 4, err.message)
        assert.match(
          err.failures[0] ?? '',
          /HTTPRoute bookinfo\/reviews is not accepted by its parents \(Service bookinfo\/reviews: Accepted is False .*kubectl -n bookinfo describe httproute reviews/,
        )
        assert.match(
          err.failures[1] ?? '',
          /Gateway bookinfo\/bookinfo-gateway cannot be reached yet: .*kubectl -n bookinfo wait --for=condition=Programmed gateway\/bookinfo-gateway, or set gateway-url/,
        )
        assert.match(err.failures[2] ?? '', /Service bookinfo\/reviews uses no waypoint/)
        assert.match(err.failures[3] ?? '', /backend Service bookinfo\/reviews-v4 does not exist/)
        return true
      },
    )
  })
  it('Linkerd: its control plane, and gateway-url when no Gateway takes the routes', async () => {
    await assert.rejects(
      checkHttpRouteReadiness(world({ services: versions, pods }), {
        flavor: 'linkerd',
        namespace: NS,
        namespaceLabels: {},
        route: 'bookinfo/reviews',
        facts: { ...facts, gatewayApiGateways: [], parents: { ok: true, pending: false, reasons: [] } },
        linkerd: undefined,
        gatewayUrlGiven: false,
        gatewayApiIngress: undefined,
        istioGateway: undefined,
        backends: ['reviews-v1'],
      }),
      (err: unknown) => {
        assert.ok(err instanceof ReadinessError)
        assert.match(err.message, /no Linkerd control plane found .*linkerd install --crds/)
        assert.match(err.message, /Linkerd has no ingress gateway of its own: set gateway-url/)
        assert.match(err.message, /reviews-v1: its ready pods have no linkerd-proxy/)
        return true
      },
    )
  })
  it('all ready: the backends as subsets', async () => {
    const meshed = pods.map((p) => ({
      ...p,
      spec: { containers: [...(p.spec?.containers ?? []), { name: 'istio-proxy' }] },
    }))
    const out = await checkHttpRouteReadiness(world({ services: versions, pods: meshed }), {
      flavor: 'istio-sidecar',
      namespace: NS,
      namespaceLabels: { 'istio-injection': 'enabled' },
      route: 'bookinfo/reviews',
      facts: { ...facts, parents: { ok: true, pending: false, reasons: [] } },
      controlPlane: cp,
      gatewayUrlGiven: false,
      gatewayApiIngress: { namespace: NS, name: 'bookinfo-gateway', url: 'http://10.0.0.7' },
      istioGateway: undefined,
      backends: ['reviews-v1', 'reviews-v3'],
    })
    assert.deepEqual([...out.subsets.keys()], ['reviews-v1', 'reviews-v3'])
  })
})
