// The data plane layouts besides Istio sidecars, laid over what seedCluster made (kube/seed.ts), as a cluster has
// them after the documented install; and the one question the data plane asks of them live: which waypoint a
// Service's calls go through. Looked up:
//  - Istio ambient (https://istio.io/latest/docs/ambient/getting-started/, .../usage/add-workloads/,
//    .../usage/waypoint/): the namespace labelled istio.io/dataplane-mode=ambient, app pods without istio-proxy, the
//    istio-cni-node and ztunnel DaemonSets in istio-system; `istioctl waypoint apply -n bookinfo --enroll-namespace`
//    makes a Gateway `waypoint` (gatewayClassName istio-waypoint, label istio.io/waypoint-for=service, listener
//    `mesh` port 15008 protocol HBONE), which istiod deploys as Deployment + Service `waypoint` (pods labelled
//    gateway.networking.k8s.io/gateway-name=waypoint), and labels the namespace istio.io/use-waypoint=waypoint. A
//    Service's own istio.io/use-waypoint label wins over its namespace's ("none" opts out);
//    istio.io/use-waypoint-namespace names another namespace's waypoint. The class istio-waypoint belongs to
//    istio.io/mesh-controller. A route with a Service parent needs that binding: istiod reports ResolvedWaypoints
//    False "istio.io/use-waypoint label missing from parent and parent namespace; in ambient mode, route will not be
//    respected" (istio/istio pilot/pkg/config/kube/gateway/conditions.go, conversion.go): ztunnel alone is L4.
//    By default the ingress gateway sends to the destination directly, not through its waypoint (the Service label
//    istio.io/ingress-use-waypoint=true changes that: .../usage/waypoint/, not modelled).
//  - Linkerd (https://linkerd.io/2/tasks/install/, /2/features/proxy-injection/, /2/reference/proxy-metrics/): the
//    control plane in namespace `linkerd` (linkerd-destination, linkerd-identity, linkerd-proxy-injector), the
//    application namespace annotated linkerd.io/inject=enabled; the injector adds the linkerd-init init container
//    and the linkerd-proxy container (first); as a native sidecar (an init container with restartPolicy Always) only
//    when the pod or namespace opts in with config.beta.linkerd.io/proxy-enable-native-sidecar=true (Linkerd 2.19
//    release notes; config.alpha.linkerd.io/... before). linkerd-viz's Prometheus: Service linkerd-viz/prometheus,
//    port 9090. No ingress of its own (/2/tasks/using-ingress/): an ingress controller meshed with
//    linkerd.io/inject=ingress; here ingress-nginx's controller Service, LoadBalancer, which the simulated cloud
//    controller (mesh.ts) gives 127.0.0.1 and the mesh server's port.
// Choices not looked up: the waypoint's Programmed condition follows its pod's readiness (reason NoResources when
// none is ready); a Service bound to a waypoint that does not exist is routed at L4 (no waypoint); one bound to a
// waypoint without a ready pod fails its calls with 503 (ztunnel cannot connect).
import type { MeshFlavor } from '../../../src/telemetry/queries.js'
import { REFS } from '../kube/refs.js'
import { addSettledWorkload, deploymentManifest, serviceDefaults } from '../kube/seed.js'
import type { KubeObject, KubeStore, ResourceRef } from '../kube/store.js'
import { podReady } from './mesh.js'

type Obj = Record<string, unknown>

/** apps/v1 DaemonSets: kept in the store (for tests) though the simulated API server does not serve them. */
export const DAEMONSETS: ResourceRef = { group: 'apps', resource: 'daemonsets' }
export const WAYPOINT_CLASS = 'istio-waypoint'
export const MESH_CONTROLLER = 'istio.io/mesh-controller'
export const LINKERD_NAMESPACE = 'linkerd'
export const LINKERD_VIZ_NAMESPACE = 'linkerd-viz'
export const LINKERD_CONTROL_PLANE = ['linkerd-destination', 'linkerd-identity', 'linkerd-proxy-injector']
export const LINKERD_VERSION = 'edge-25.11.1'
export const INGRESS_NGINX_NAMESPACE = 'ingress-nginx'
export const INGRESS_NGINX_SERVICE = 'ingress-nginx-controller'

export type Dataplane = MeshFlavor

export interface AmbientOptions {
  namespace: string
  istioNamespace: string
  istioVersion: string
  /** Default true: the waypoint `waypoint`, enrolled for the namespace. false: ztunnel only (L4). */
  waypoint?: boolean
  /** Default true: the waypoint's pod ready. */
  waypointReady?: boolean
}

export interface LinkerdOptions {
  namespace: string
  gatewayPort: number
  /** Default true: the control plane's Deployments ready. */
  controlPlaneReady?: boolean
  /** linkerd-proxy as a native sidecar (init container, restartPolicy Always). Default false, as Linkerd's default. */
  nativeSidecar?: boolean
}

/** The waypoint a call to this Service goes through, by the use-waypoint labels; undefined: L4 only. */
export function waypointOf(
  store: KubeStore,
  service: string,
  namespace: string,
): { name: string; namespace: string; pod: string; ready: boolean } | undefined {
  const svc = store.get(REFS.services, namespace, service)
  const ns = store.get(REFS.namespaces, undefined, namespace)
  const svcLabels = svc?.metadata.labels ?? {}
  const nsLabels = ns?.metadata.labels ?? {}
  const own = svcLabels['istio.io/use-waypoint']
  const name = own ?? nsLabels['istio.io/use-waypoint']
  if (name === undefined || name === 'none') return undefined
  const wpNs =
    (own !== undefined ? svcLabels['istio.io/use-waypoint-namespace'] : nsLabels['istio.io/use-waypoint-namespace']) ??
    namespace
  const gw = store.get(REFS.gatewayApiGateways, wpNs, name)
  if (!gw || (gw['spec'] as Obj | undefined)?.['gatewayClassName'] !== WAYPOINT_CLASS) return undefined
  const forWhat = gw.metadata.labels?.['istio.io/waypoint-for'] ?? 'service'
  if (forWhat !== 'service' && forWhat !== 'all') return undefined
  const pods = store.list(REFS.pods, wpNs, `gateway.networking.k8s.io/gateway-name=${name}`)
  const ready = pods.find(podReady)
  return { name, namespace: wpNs, pod: (ready ?? pods[0])?.metadata.name ?? name, ready: ready !== undefined }
}

function relabel(store: KubeStore, ref: ResourceRef, o: KubeObject, change: (m: KubeObject['metadata']) => void): void {
  const next = structuredClone(o)
  change(next.metadata)
  delete next.metadata.resourceVersion
  store.update(ref, next)
}

/** A DaemonSet and its one pod (one node), settled. */
function daemonSet(store: KubeStore, name: string, ns: string, labels: Record<string, string>, container: Obj): void {
  const t0 = new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z')
  const ds = store.create(DAEMONSETS, {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace: ns, labels },
    spec: { selector: { matchLabels: { 'k8s-app': name } }, template: { metadata: { labels }, spec: {} } },
    status: { currentNumberScheduled: 1, desiredNumberScheduled: 1, numberAvailable: 1, numberReady: 1 },
  })
  store.create(REFS.pods, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${name}-x7k2p`,
      namespace: ns,
      labels: { ...labels, 'k8s-app': name },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name, uid: ds.metadata.uid, controller: true }],
    },
    spec: { containers: [container], nodeName: 'aks-nodepool1-31687461-vmss000000', restartPolicy: 'Always' },
    status: {
      phase: 'Running',
      conditions: [
        { type: 'Ready', status: 'True', lastTransitionTime: t0 },
        { type: 'ContainersReady', status: 'True', lastTransitionTime: t0 },
      ],
      containerStatuses: [{ name: container['name'], image: container['image'], ready: true, restartCount: 0 }],
      startTime: t0,
    },
  })
}

/** The waypoint as `istioctl waypoint apply -n <ns> --enroll-namespace` and istiod's deployment controller make it. */
export function addWaypoint(store: KubeStore, namespace: string, istioVersion: string, ready = true): void {
  if (!store.get(REFS.gatewayClasses, undefined, WAYPOINT_CLASS)) {
    store.create(REFS.gatewayClasses, {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: WAYPOINT_CLASS },
      spec: { controllerName: MESH_CONTROLLER, description: 'The default Istio waypoint GatewayClass' },
    })
  }
  store.create(REFS.gatewayApiGateways, {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'waypoint', namespace, labels: { 'istio.io/waypoint-for': 'service' } },
    spec: {
      gatewayClassName: WAYPOINT_CLASS,
      listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', allowedRoutes: { namespaces: { from: 'Same' } } }],
    },
    status: {
      conditions: [
        {
          type: 'Accepted',
          status: 'Unknown',
          reason: 'Pending',
          message: 'Waiting for controller',
          observedGeneration: 0,
          lastTransitionTime: '1970-01-01T00:00:00Z',
        },
      ],
    },
  })
  const podLabels = {
    'gateway.networking.k8s.io/gateway-name': 'waypoint',
    'gateway.networking.k8s.io/gateway-class-name': WAYPOINT_CLASS,
    'istio.io/dataplane-mode': 'none',
    'service.istio.io/canonical-name': 'waypoint',
    'service.istio.io/canonical-revision': 'latest',
  }
  addSettledWorkload(
    store,
    deploymentManifest(
      'waypoint',
      namespace,
      { 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'gateway.istio.io/managed': MESH_CONTROLLER },
      podLabels,
      { 'gateway.networking.k8s.io/gateway-name': 'waypoint' },
      [
        {
          name: 'istio-proxy',
          image: `docker.io/istio/proxyv2:${istioVersion}`,
          args: ['proxy', 'waypoint', '--domain', `${namespace}.svc.cluster.local`],
          ports: [
            { containerPort: 15020, name: 'metrics', protocol: 'TCP' },
            { containerPort: 15021, name: 'status-port', protocol: 'TCP' },
            { containerPort: 15090, name: 'http-envoy-prom', protocol: 'TCP' },
          ],
        },
      ],
      { serviceAccountName: 'waypoint' },
    ),
    ready,
  )
  store.create(
    REFS.services,
    serviceDefaults({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'waypoint', namespace, labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } },
      spec: {
        selector: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' },
        ports: [
          { name: 'status-port', port: 15021, targetPort: 15021, protocol: 'TCP' },
          { name: 'mesh', port: 15008, targetPort: 15008, protocol: 'TCP' },
        ],
      },
    }),
  )
}

/** Istio ambient over a seedCluster made with `injection: false` (no sidecars). */
export function seedAmbient(store: KubeStore, o: AmbientOptions): void {
  const ns = store.get(REFS.namespaces, undefined, o.namespace)
  if (!ns) throw new Error(`seed: no namespace ${o.namespace}`)
  const waypoint = o.waypoint ?? true
  relabel(store, REFS.namespaces, ns, (m) => {
    m.labels = {
      ...m.labels,
      'istio.io/dataplane-mode': 'ambient',
      ...(waypoint ? { 'istio.io/use-waypoint': 'waypoint' } : {}),
    }
  })
  daemonSet(
    store,
    'istio-cni-node',
    o.istioNamespace,
    { 'k8s-app': 'istio-cni-node', 'sidecar.istio.io/inject': 'false' },
    { name: 'install-cni', image: `docker.io/istio/install-cni:${o.istioVersion}` },
  )
  daemonSet(
    store,
    'ztunnel',
    o.istioNamespace,
    { app: 'ztunnel', 'sidecar.istio.io/inject': 'false', 'istio.io/dataplane-mode': 'none' },
    { name: 'istio-proxy', image: `docker.io/istio/ztunnel:${o.istioVersion}`, args: ['proxy', 'ztunnel'] },
  )
  if (waypoint) addWaypoint(store, o.namespace, o.istioVersion, o.waypointReady ?? true)
}

/** The injected pod: linkerd-init and linkerd-proxy (first container, or a native sidecar), its labels. */
function injectLinkerd(store: KubeStore, pod: KubeObject, nativeSidecar: boolean): void {
  const next = structuredClone(pod)
  const spec = next['spec'] as Obj
  const status = next['status'] as Obj
  const owner = pod.metadata.labels?.['app'] ? `${pod.metadata.labels['app']}-${pod.metadata.labels['version']}` : ''
  const proxy: Obj = {
    name: 'linkerd-proxy',
    image: `cr.l5d.io/linkerd/proxy:${LINKERD_VERSION}`,
    ports: [
      { containerPort: 4143, name: 'linkerd-proxy', protocol: 'TCP' },
      { containerPort: 4191, name: 'linkerd-admin', protocol: 'TCP' },
    ],
    ...(nativeSidecar ? { restartPolicy: 'Always' } : {}),
  }
  const init: Obj = {
    name: 'linkerd-init',
    image: `cr.l5d.io/linkerd/proxy-init:v2.4.3`,
    args: ['--incoming-proxy-port', '4143'],
  }
  const app = (spec['containers'] as Obj[]) ?? []
  spec['initContainers'] = nativeSidecar ? [init, proxy] : [init]
  spec['containers'] = nativeSidecar ? app : [proxy, ...app]
  const statusOf = (c: Obj, ready: boolean): Obj => ({ name: c['name'], image: c['image'], ready, restartCount: 0 })
  const appStatuses = (status['containerStatuses'] as Obj[] | undefined) ?? []
  status['initContainerStatuses'] = [
    { ...statusOf(init, false), state: { terminated: { exitCode: 0, reason: 'Completed' } } },
    ...(nativeSidecar ? [{ ...statusOf(proxy, true), started: true }] : []),
  ]
  status['containerStatuses'] = nativeSidecar ? appStatuses : [statusOf(proxy, true), ...appStatuses]
  next.metadata.labels = {
    ...next.metadata.labels,
    'linkerd.io/control-plane-ns': LINKERD_NAMESPACE,
    'linkerd.io/workload-ns': pod.metadata.namespace ?? 'default',
    ...(owner ? { 'linkerd.io/proxy-deployment': owner } : {}),
  }
  next.metadata.annotations = {
    ...next.metadata.annotations,
    'linkerd.io/created-by': `linkerd/proxy-injector ${LINKERD_VERSION}`,
    'linkerd.io/proxy-version': LINKERD_VERSION,
    'linkerd.io/inject': 'enabled',
    ...(nativeSidecar ? { 'config.beta.linkerd.io/proxy-enable-native-sidecar': 'true' } : {}),
  }
  delete next.metadata.resourceVersion
  store.update(REFS.pods, next)
}

/** Linkerd over a seedCluster made with `controlPlane: false` (no Istio at all). */
export function seedLinkerd(store: KubeStore, o: LinkerdOptions): void {
  const ready = o.controlPlaneReady ?? true
  const nativeSidecar = o.nativeSidecar ?? false
  // Istio's BookInfo routing objects are not part of a Linkerd cluster (nor are its CRDs: startSimulation serves none).
  for (const ref of [REFS.virtualServices, REFS.destinationRules, REFS.gateways])
    for (const x of store.list(ref, o.namespace)) store.delete(ref, o.namespace, x.metadata.name)
  const nsObj = (name: string, labels: Record<string, string>, annotations: Record<string, string> = {}): void => {
    store.create(REFS.namespaces, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels }, annotations },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    })
  }
  nsObj(LINKERD_NAMESPACE, {
    'linkerd.io/is-control-plane': 'true',
    'linkerd.io/control-plane-ns': LINKERD_NAMESPACE,
    'config.linkerd.io/admission-webhooks': 'disabled',
  })
  for (const name of LINKERD_CONTROL_PLANE) {
    const component = name.replace(/^linkerd-/, '')
    const labels = {
      'linkerd.io/control-plane-component': component,
      'linkerd.io/control-plane-ns': LINKERD_NAMESPACE,
      'app.kubernetes.io/name': component,
      'app.kubernetes.io/part-of': 'Linkerd',
      'app.kubernetes.io/version': LINKERD_VERSION,
    }
    addSettledWorkload(
      store,
      deploymentManifest(
        name,
        LINKERD_NAMESPACE,
        labels,
        { ...labels, 'linkerd.io/workload-ns': LINKERD_NAMESPACE },
        { 'linkerd.io/control-plane-component': component, 'linkerd.io/control-plane-ns': LINKERD_NAMESPACE },
        [{ name: component, image: `cr.l5d.io/linkerd/controller:${LINKERD_VERSION}` }],
        { serviceAccountName: name },
      ),
      ready,
    )
  }
  nsObj(LINKERD_VIZ_NAMESPACE, { 'linkerd.io/extension': 'viz' }, { 'linkerd.io/inject': 'enabled' })
  const promLabels = { component: 'prometheus', 'linkerd.io/extension': 'viz' }
  addSettledWorkload(
    store,
    deploymentManifest('prometheus', LINKERD_VIZ_NAMESPACE, promLabels, promLabels, { component: 'prometheus' }, [
      { name: 'prometheus', image: 'prom/prometheus:v3.5.0' },
    ]),
  )
  store.create(
    REFS.services,
    serviceDefaults({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'prometheus', namespace: LINKERD_VIZ_NAMESPACE, labels: promLabels },
      spec: { selector: { component: 'prometheus' }, ports: [{ name: 'admin-http', port: 9090, targetPort: 9090 }] },
    }),
  )
  // The application namespace: annotated for injection, every pod injected.
  const app = store.get(REFS.namespaces, undefined, o.namespace)
  if (!app) throw new Error(`seed: no namespace ${o.namespace}`)
  relabel(store, REFS.namespaces, app, (m) => {
    m.annotations = { ...m.annotations, 'linkerd.io/inject': 'enabled' }
  })
  for (const pod of store.list(REFS.pods, o.namespace)) injectLinkerd(store, pod, nativeSidecar)
  // The ingress: ingress-nginx's controller, meshed in ingress mode, behind a LoadBalancer Service.
  nsObj(INGRESS_NGINX_NAMESPACE, { 'app.kubernetes.io/name': 'ingress-nginx' }, { 'linkerd.io/inject': 'ingress' })
  const ingLabels = { 'app.kubernetes.io/name': 'ingress-nginx', 'app.kubernetes.io/component': 'controller' }
  addSettledWorkload(
    store,
    deploymentManifest(INGRESS_NGINX_SERVICE, INGRESS_NGINX_NAMESPACE, ingLabels, ingLabels, ingLabels, [
      { name: 'controller', image: 'registry.k8s.io/ingress-nginx/controller:v1.13.0' },
    ]),
  )
  for (const pod of store.list(REFS.pods, INGRESS_NGINX_NAMESPACE)) injectLinkerd(store, pod, nativeSidecar)
  store.create(REFS.services, {
    ...serviceDefaults({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: INGRESS_NGINX_SERVICE, namespace: INGRESS_NGINX_NAMESPACE, labels: ingLabels },
      spec: {
        type: 'LoadBalancer',
        selector: ingLabels,
        ports: [{ name: 'http', port: o.gatewayPort, targetPort: 'http', protocol: 'TCP' }],
      },
    }),
    status: { loadBalancer: { ingress: [{ ip: '127.0.0.1', ipMode: 'VIP' }] } },
  })
}

/** Faults of the layouts, each a change of the cluster a real failure makes. */
export interface LayoutFaults {
  /** Istio ambient: the waypoint Gateway (and its Deployment, pods, Service) deleted: calls fall back to L4. */
  removeWaypoint(): void
  /** Istio ambient: the waypoint's pods ready or not (not: Programmed False, bound calls fail with 503). */
  setWaypointReady(ready: boolean): void
  /** Linkerd: the control plane's Deployments and pods ready or not. */
  setLinkerdReady(ready: boolean): void
  /** Undoes the faults set through these calls (a removed waypoint is made again): sim.faults.clear(). */
  clear(): void
}

/** Sets readiness of a Deployment and its pods, as a crash loop or a recovery does. */
export function setWorkloadReady(store: KubeStore, namespace: string, deployment: string, ready: boolean): void {
  const d = store.get(REFS.deployments, namespace, deployment)
  if (!d) throw new Error(`no Deployment ${namespace}/${deployment}`)
  const next = structuredClone(d)
  const st = (next['status'] ?? {}) as Obj
  st['readyReplicas'] = ready ? 1 : 0
  st['availableReplicas'] = ready ? 1 : 0
  if (!ready) st['unavailableReplicas'] = 1
  else delete st['unavailableReplicas']
  next['status'] = st
  delete next.metadata.resourceVersion
  store.update(REFS.deployments, next)
  const selector = (((d['spec'] as Obj)['selector'] as Obj)['matchLabels'] ?? {}) as Record<string, string>
  for (const pod of store.list(REFS.pods, namespace)) {
    const labels = pod.metadata.labels ?? {}
    if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) continue
    const p = structuredClone(pod)
    const ps = (p['status'] ?? {}) as Obj
    ps['conditions'] = ((ps['conditions'] as Obj[] | undefined) ?? []).map((c) =>
      c['type'] === 'Ready' || c['type'] === 'ContainersReady' ? { ...c, status: ready ? 'True' : 'False' } : c,
    )
    ps['containerStatuses'] = ((ps['containerStatuses'] as Obj[] | undefined) ?? []).map((c) => ({ ...c, ready }))
    delete p.metadata.resourceVersion
    store.update(REFS.pods, p)
  }
}

export function layoutFaults(store: KubeStore, namespace: string, istioVersion: string): LayoutFaults {
  let removed = false
  let waypointDown = false
  let linkerdDown = false
  return {
    clear() {
      if (removed) addWaypoint(store, namespace, istioVersion, true)
      else if (waypointDown) setWorkloadReady(store, namespace, 'waypoint', true)
      if (linkerdDown) for (const name of LINKERD_CONTROL_PLANE) setWorkloadReady(store, LINKERD_NAMESPACE, name, true)
      removed = waypointDown = linkerdDown = false
    },
    removeWaypoint() {
      removed = true
      store.delete(REFS.gatewayApiGateways, namespace, 'waypoint')
      if (store.get(REFS.deployments, namespace, 'waypoint')) store.delete(REFS.deployments, namespace, 'waypoint')
      // The garbage collector's cascade: the Deployment's ReplicaSets.
      for (const rs of store.list(REFS.replicaSets, namespace))
        if (
          ((rs.metadata['ownerReferences'] ?? []) as Obj[]).some(
            (o) => o['kind'] === 'Deployment' && o['name'] === 'waypoint',
          )
        )
          store.delete(REFS.replicaSets, namespace, rs.metadata.name)
      for (const p of store.list(REFS.pods, namespace, 'gateway.networking.k8s.io/gateway-name=waypoint'))
        store.delete(REFS.pods, namespace, p.metadata.name)
      if (store.get(REFS.services, namespace, 'waypoint')) store.delete(REFS.services, namespace, 'waypoint')
    },
    setWaypointReady(ready) {
      setWorkloadReady(store, namespace, 'waypoint', ready)
      waypointDown = !ready
    },
    setLinkerdReady(ready) {
      linkerdDown = !ready
      for (const name of LINKERD_CONTROL_PLANE) setWorkloadReady(store, LINKERD_NAMESPACE, name, ready)
    },
  }
}
