// BookInfo with the Gateway API, from Istio's own sample manifests (__tests__/fixtures/istio-samples/, parsed, not
// retyped): BookInfo's Services (platform/kube/bookinfo.yaml, unless seedCluster made them), one Service per version (platform/kube/bookinfo-versions.yaml, what HTTPRoute backendRefs name instead of
// DestinationRule subsets), the north-south Gateway `bookinfo-gateway` with the `bookinfo` HTTPRoute
// (gateway-api/bookinfo-gateway.yaml), and the mesh (GAMMA) route of reviews whose parent is the reviews Service
// (gateway-api/route-reviews-*.yaml). With Istio, the GatewayClass `istio` that istiod creates for its gateway
// controller (istio/istio pilot/pkg/config/kube/gateway, the default classes). Objects go into the store with the
// CRD schema's defaults, as the API server would have stored them (schema.ts).
import type { KubeObject, KubeStore } from '../kube/store.js'
import { REFS, refOfManifest } from '../kube/refs.js'
import { loadFixture, serviceDefaults } from '../kube/seed.js'
import { ISTIO_GATEWAY_CONTROLLER } from './controller.js'
import { defaultGatewayApi, defaultStatus } from './schema.js'

type Obj = Record<string, unknown>

export type ReviewsRouteFixture =
  | 'route-reviews-v1.yaml'
  | 'route-reviews-90-10.yaml'
  | 'route-reviews-50-v3.yaml'
  | 'route-reviews-v3.yaml'

export interface GatewayApiSeedOptions {
  /** The application namespace (created when missing). Default 'bookinfo'. */
  namespace?: string
  /** 'istio' (default): GatewayClass istio, the Gateway and its route; 'linkerd': mesh routes only. */
  mesh?: 'istio' | 'linkerd'
  /** The reviews HTTPRoute's fixture. Default route-reviews-v1.yaml (all to reviews-v1). */
  reviewsRoute?: ReviewsRouteFixture
  /** The north-south Gateway and the bookinfo HTTPRoute. Default: with Istio. */
  northSouth?: boolean
  /** The simulated gateway's port: the Gateway's HTTP listener and the Service Istio makes for it use it. */
  gatewayPort?: number
  /**
   * Keep the VirtualServices, DestinationRules and Istio Gateway seedCluster made in the namespace. Default false:
   * they are deleted, as in Istio's Gateway API BookInfo (istio.io docs/setup/getting-started and
   * tasks/traffic-management/request-routing, Gateway API tab: bookinfo.yaml, bookinfo-versions.yaml and
   * gateway-api/bookinfo-gateway.yaml, no networking.istio.io object). true: both APIs route the same hosts (an
   * HTTPRoute with the Service as parent is selected before the VirtualService: mesh/mesh.ts callTarget).
   */
  keepVirtualServices?: boolean
}

export interface GatewayApiSeedInfo {
  namespace: string
  gatewayClass?: string
  gateway?: string
  /** The HTTPRoutes seeded, by name. */
  routes: string[]
}

/** Creates one object of a Gateway API fixture (or a Service), with the schema defaults the API server applies. */
function create(store: KubeStore, doc: KubeObject, namespace: string | undefined): KubeObject {
  const ref = refOfManifest(doc)
  if (!ref) throw new Error(`unexpected ${String(doc.kind)} in a Gateway API fixture`)
  const obj: KubeObject = structuredClone({
    ...doc,
    metadata: { ...doc.metadata, ...(namespace !== undefined ? { namespace } : {}) },
  })
  if (ref === REFS.services) return store.create(ref, serviceDefaults(obj))
  defaultGatewayApi(ref.resource, obj)
  const status = defaultStatus(ref.resource)
  if (status) obj['status'] = status
  else delete obj['status']
  return store.create(ref, obj)
}

/**
 * The Service Istio's gateway deployment controller makes for a Gateway of class istio (istio/istio
 * pilot/pkg/config/kube/gateway/deploymentcontroller.go: named `<gateway>-<class>`, labelled
 * gateway.networking.k8s.io/gateway-name, type LoadBalancer, one port per listener), with the load balancer's address
 * the simulated mesh answers at (127.0.0.1).
 */
function gatewayService(store: KubeStore, gw: KubeObject, port: number): void {
  const spec = gw['spec'] as Obj
  const name = `${gw.metadata.name}-${String(spec['gatewayClassName'])}`
  if (store.get(REFS.services, gw.metadata.namespace, name)) return
  const svc = serviceDefaults({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace: gw.metadata.namespace ?? 'default',
      labels: {
        'gateway.networking.k8s.io/gateway-name': gw.metadata.name,
        'gateway.istio.io/managed': 'istio.io-gateway-controller',
      },
    },
    spec: {
      type: 'LoadBalancer',
      selector: { 'gateway.networking.k8s.io/gateway-name': gw.metadata.name },
      ports: [{ name: `http`, port, protocol: 'TCP', appProtocol: 'http' }],
    },
  })
  // The cloud's load balancer has given it an address (the defaults leave status.loadBalancer empty).
  svc['status'] = { loadBalancer: { ingress: [{ ip: '127.0.0.1', ipMode: 'VIP' }] } }
  store.create(REFS.services, svc)
}

export function seedGatewayApi(store: KubeStore, opts: GatewayApiSeedOptions = {}): GatewayApiSeedInfo {
  const ns = opts.namespace ?? 'bookinfo'
  const mesh = opts.mesh ?? 'istio'
  if (!store.get(REFS.namespaces, undefined, ns)) {
    store.create(REFS.namespaces, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    })
  }
  const info: GatewayApiSeedInfo = { namespace: ns, routes: [] }
  // The application's own Services (platform/kube/bookinfo.yaml: reviews is the mesh route's parent, productpage the
  // Gateway route's backend) where seedCluster has not made them, then one Service per version.
  for (const svc of loadFixture('platform/kube/bookinfo.yaml').filter((d) => d.kind === 'Service')) {
    if (!store.get(REFS.services, ns, svc.metadata.name)) create(store, svc, ns)
  }
  for (const svc of loadFixture('platform/kube/bookinfo-versions.yaml')) {
    if (!store.get(REFS.services, ns, svc.metadata.name)) create(store, svc, ns)
  }
  if (mesh === 'istio' && !store.get(REFS.gatewayClasses, undefined, 'istio')) {
    create(
      store,
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'GatewayClass',
        metadata: { name: 'istio' },
        spec: { controllerName: ISTIO_GATEWAY_CONTROLLER, description: 'The default Istio GatewayClass' },
      },
      undefined,
    )
    info.gatewayClass = 'istio'
  }
  if (opts.northSouth ?? mesh === 'istio') {
    for (const doc of loadFixture('gateway-api/bookinfo-gateway.yaml')) {
      if (doc.kind === 'Gateway' && opts.gatewayPort !== undefined) {
        // The one change to the fixture: its listener's port 80 becomes the simulated gateway's loopback port (a
        // test cannot bind 80), so that the address Istio publishes, on that port, is where the mesh listens.
        const listeners = ((doc['spec'] as Obj)['listeners'] ?? []) as Obj[]
        for (const l of listeners) if (l['protocol'] === 'HTTP') l['port'] = opts.gatewayPort
      }
      const o = create(store, doc, ns)
      if (o.kind === 'Gateway') {
        info.gateway = o.metadata.name
        if (opts.gatewayPort !== undefined) gatewayService(store, o, opts.gatewayPort)
      } else info.routes.push(o.metadata.name)
    }
  }
  for (const doc of loadFixture(`gateway-api/${opts.reviewsRoute ?? 'route-reviews-v1.yaml'}`)) {
    info.routes.push(create(store, doc, ns).metadata.name)
  }
  if (!opts.keepVirtualServices) {
    for (const ref of [REFS.virtualServices, REFS.destinationRules, REFS.gateways])
      for (const o of store.list(ref, ns)) store.delete(ref, ns, o.metadata.name)
  }
  return info
}
