// The whole loopback world the action runs against in tests, the demo and the benchmark:
// Entra ID, GitHub OIDC, ARM, a Kubernetes API server with BookInfo in an Istio mesh, the mesh's
// data plane behind an ingress gateway, and an istioctl release mirror. All HTTPS (but the gateway)
// with a CA made at start.
import { randomBytes, randomUUID } from 'node:crypto'
import { type ArmFault, type ArmSim, type SimClusterKind, kubeconfigYaml, startArm } from './azure/arm.js'
import { AKS_SERVER_APP_ID, type EntraSim, startEntra } from './azure/entra.js'
import { type GithubOidcSim, startGithubOidc } from './azure/github-oidc.js'
import { NEWEST_SUPPORTED_ISTIO } from '../../src/istio/versions.js'
import { type IstioctlReleases, startIstioctlReleases } from './istioctl/istioctl.js'
import { type KubeApi, type KubeFault, startKubeApi } from './kube/server.js'
import { GatewayApiController, type GatewayControllerOptions } from './gateway/controller.js'
import { type GatewayApiSeedOptions, seedGatewayApi } from './gateway/seed-gateway-api.js'
import { type SeedInfo, type SeedOptions, seedCluster } from './kube/seed.js'
import { REFS } from './kube/refs.js'
import { KubeStore, type WriteEvent } from './kube/store.js'
import { recordManagedFields } from './kube/server.js'
import { type RbacManifest, applyRbacManifests, seedBootstrapPolicy } from './kube/rbac.js'
import { loadRbacManifest } from './kube/seed.js'
import { type Mesh, type MeshFault, type Propagation, startMesh } from './mesh/mesh.js'
import { type TestPki, makePki } from './net/tls.js'
import { type AzureMonitorSim, startAzureMonitor } from './azure/azure-monitor.js'
import { type PrometheusSim, startPrometheus } from './telemetry/prometheus.js'
import type { ServiceUpstreams } from './kube/service-proxy.js'
import type { MeshFlavor } from '../../src/telemetry/queries.js'
import { LINKERD_VIZ_NAMESPACE, type LayoutFaults, layoutFaults, seedAmbient, seedLinkerd } from './mesh/layouts.js'

export interface SimOptions {
  layout?: 'oss' | 'aks-addon'
  clusterKind?: SimClusterKind
  /** networking.istio.io versions the API server serves (['v1beta1'] = an old cluster). */
  istioApiVersions?: string[]
  seed?: Partial<Omit<SeedOptions, 'layout' | 'gatewayPort'>>
  istioctlVersions?: string[]
  tokenLifetimeSeconds?: number
  meshSeed?: number
  /** How productpage answers a failed reviews call (see MeshOptions.reviewsErrors). */
  reviewsErrors?: 'status' | 'bookinfo'
  pki?: TestPki
  /**
   * Whose permissions the action's identities (the local-account user `clusterUser` and the Entra service principal)
   * have. Default: exactly the shipped manifests deploy/rbac/istio-canary.yaml + analyze.yaml (the defaults of the
   * action), bound to them. A list names the manifests; 'cluster-admin' gives full rights (say why in the test).
   * The admin credential (`admin: true`) is in system:masters, bound to cluster-admin as on every cluster.
   */
  rbac?: RbacManifest[] | 'cluster-admin'
  /**
   * Milliseconds after each VirtualService spec change at which istiod writes its status subresource (a new
   * resourceVersion, no spec change), as istiod's status writer does with in-cluster analysis on
   * (istio/istio pilot/pkg/status/resourcelock.go: SetObservedGeneration / SetValidationMessages). Off by default.
   */
  istiodStatusDelayMs?: number
  /** How VirtualService changes reach the proxies (mesh/mesh.ts Propagation; default: istiod's debounce). */
  propagation?: Partial<Propagation>
  /**
   * Start a real Prometheus scraping the mesh's metrics every second, an Azure Monitor-style endpoint in front
   * of it, and register it as the in-cluster Service istio-system/prometheus:9090 for the service proxy.
   */
  prometheus?: boolean
  /**
   * The Gateway API (SPEC section 7), off by default (its CRDs are not part of a new AKS cluster): the
   * gateway.networking.k8s.io versions served (default ['v1', 'v1beta1']; ['v1beta1'] = Gateway API 0.x CRDs),
   * BookInfo's Gateway API objects in the application namespace (gateway/seed-gateway-api.ts; false = none) and the
   * simulated controller writing their status (gateway/controller.ts; false = none; its mesh defaults to the seed's).
   */
  gatewayApi?: {
    versions?: string[]
    seed?: Omit<GatewayApiSeedOptions, 'namespace'> | false
    controller?: GatewayControllerOptions | false
  }
  /**
   * The data plane layout (mesh/layouts.ts). 'istio-sidecar' (default): as before. 'istio-ambient': no sidecars,
   * ztunnel, a waypoint enrolled for the namespace; implies `gatewayApi: {}` when not given. 'linkerd': no Istio
   * (no control plane, no networking.istio.io served unless `istioApiVersions` says so), Linkerd's control plane,
   * linkerd-proxy in every app pod, a plain ingress; implies `gatewayApi: { seed: { mesh: 'linkerd' } }`.
   */
  dataplane?: MeshFlavor
  /** Knobs of the layouts' seed: see mesh/layouts.ts AmbientOptions and LinkerdOptions. */
  dataplaneSeed?: {
    /** Ambient: a waypoint (default true); false = ztunnel only (L4; a Service-parent route is not respected). */
    waypoint?: boolean
    /** Ambient: the waypoint's pod ready (default true). */
    waypointReady?: boolean
    /** Linkerd: the control plane ready (default true). */
    linkerdReady?: boolean
    /** Linkerd: linkerd-proxy as a native sidecar (default false, Linkerd's default). */
    nativeSidecar?: boolean
  }
}

/**
 * One place to inject faults into any simulator (the table in sim/README.md), so a test need not know which module
 * owns which fault. Each call delegates to that simulator's own call, which stays available.
 */
export interface SimFaults {
  /** The API server's next matching requests answer a status, are reset unserved, or are applied and lose their answer. */
  kube(fault: KubeFault): void
  /** A version of a mesh service fails a share of its calls (5xx) or answers late; undefined clears it. */
  mesh(service: string, version: string, fault: MeshFault | undefined): void
  /** ARM's next calls answer a status or are reset. */
  arm(fault: ArmFault): void
  /** Drops the pending API server and ARM faults and clears every mesh fault set through this facade. */
  clear(): void
}

export interface Sim {
  pki: TestPki
  store: KubeStore
  kube: KubeApi
  mesh: Mesh
  entra: EntraSim
  oidc: GithubOidcSim
  arm: ArmSim
  releases: IstioctlReleases
  info: SeedInfo
  ids: {
    tenantId: string
    clientId: string
    clientSecret: string
    subscriptionId: string
    resourceGroup: string
    clusterName: string
    objectId: string
  }
  /** The Kubernetes user names of the action's identities (RBAC subjects): local account and Entra service principal. */
  users: string[]
  tokens: { user: string; admin: string }
  /** With `prometheus: true`. */
  prometheus?: PrometheusSim
  azureMonitor?: AzureMonitorSim
  /** Services the API server's service proxy forwards to (`ns/name:port` -> URL); see kube/service-proxy.ts. */
  serviceUpstreams: ServiceUpstreams
  /** Fault injection into every simulator; see SimFaults and sim/README.md. */
  faults: SimFaults
  /** With `gatewayApi` (unless its controller is false): the simulated Gateway API controller and its knobs. */
  gatewayController?: GatewayApiController
  /** The data plane layout, and its faults (mesh/layouts.ts LayoutFaults). */
  dataplane: { flavor: MeshFlavor } & LayoutFaults
  /** A local-account kubeconfig (for the `kubeconfig` input). */
  kubeconfig(who?: 'user' | 'admin'): string
  /** Environment a GitHub runner would give the action to reach this world (OIDC, CA trust). */
  env(): Record<string, string>
  /** Inputs for AKS login against this world. */
  aksInputs(opts?: { secret?: boolean; admin?: boolean }): Record<string, string>
  close(): Promise<void>
}

export async function startSimulation(o: SimOptions = {}): Promise<Sim> {
  const flavor: MeshFlavor = o.dataplane ?? 'istio-sidecar'
  // Ambient and Linkerd route by HTTPRoutes: the Gateway API is part of those layouts.
  const gatewayApi: SimOptions['gatewayApi'] =
    o.gatewayApi ?? (flavor === 'linkerd' ? { seed: { mesh: 'linkerd' } } : flavor === 'istio-ambient' ? {} : undefined)
  const pki = o.pki ?? makePki()
  const ids = {
    tenantId: randomUUID(),
    clientId: randomUUID(),
    clientSecret: `sim-secret-${randomBytes(12).toString('base64url')}`,
    subscriptionId: randomUUID(),
    resourceGroup: 'rg-bookinfo',
    clusterName: 'aks-bookinfo',
    objectId: randomUUID(),
  }
  const tokens = { user: `user-${randomBytes(16).toString('hex')}`, admin: `admin-${randomBytes(16).toString('hex')}` }
  const oidc = await startGithubOidc(pki)
  const entra = await startEntra(pki, {
    apps: [
      {
        tenantId: ids.tenantId,
        clientId: ids.clientId,
        clientSecret: ids.clientSecret,
        objectId: ids.objectId,
        federated: [
          { issuer: oidc.issuer, audience: 'api://AzureADTokenExchange' },
          { issuer: oidc.issuer, audience: 'api://AzureADTokenExchangeUSGov' },
          { issuer: oidc.issuer, audience: 'api://AzureADTokenExchangeChina' },
        ],
      },
    ],
    trustedIssuers: [{ issuer: oidc.issuer, publicKey: oidc.publicKey }],
    ...(o.tokenLifetimeSeconds ? { tokenLifetimeSeconds: o.tokenLifetimeSeconds } : {}),
  })
  const store = new KubeStore()
  const kind = o.clusterKind ?? 'local'
  // Filled once Prometheus runs (below): the API server's service proxy forwards to these.
  const serviceUpstreams: ServiceUpstreams = new Map()
  const kube = await startKubeApi({
    pki,
    store,
    serviceUpstreams,
    authenticate: (t) => {
      if (kind !== 'entra-no-local' && t === tokens.user)
        return { user: 'clusterUser', groups: ['system:authenticated'] }
      if (kind !== 'entra-no-local' && t === tokens.admin) return { user: 'clusterAdmin', groups: ['system:masters'] }
      if (kind !== 'local') {
        const claims = entra.validate(t, AKS_SERVER_APP_ID)
        if (claims) return { user: String(claims['oid'] ?? claims['appid']), groups: ['system:authenticated'] }
      }
      return undefined
    },
    ...(o.istioApiVersions
      ? { istioVersions: o.istioApiVersions }
      : o.dataplane === 'linkerd'
        ? { istioVersions: [] }
        : {}),
    ...(gatewayApi ? { gatewayApiVersions: gatewayApi.versions ?? ['v1', 'v1beta1'] } : {}),
    rbac: true,
  })
  let gatewayController: GatewayApiController | undefined
  const mesh = await startMesh({
    store,
    seed: o.meshSeed ?? 7,
    flavor,
    gatewayApi: gatewayApi !== undefined,
    // What the controller accepts is what the proxies get (none: every existing parent).
    ...(gatewayApi && gatewayApi.controller !== false
      ? { routeProgrammed: (route, parent) => gatewayController?.programmed(route, parent) ?? true }
      : {}),
    ...(o.reviewsErrors ? { reviewsErrors: o.reviewsErrors } : {}),
    ...(o.propagation ? { propagation: o.propagation } : {}),
  })
  const layout = o.layout ?? 'oss'
  const info = seedCluster(store, {
    layout,
    gatewayPort: mesh.port,
    ...(flavor === 'linkerd' ? { controlPlane: false } : {}),
    ...(flavor !== 'istio-sidecar' ? { injection: false } : {}),
    ...(o.seed ?? {}),
  })
  const ds = o.dataplaneSeed ?? {}
  if (gatewayApi) {
    const seed = gatewayApi.seed ?? {}
    if (seed !== false) seedGatewayApi(store, { gatewayPort: mesh.port, ...seed, namespace: info.namespace })
  }
  if (flavor === 'istio-ambient')
    seedAmbient(store, {
      namespace: info.namespace,
      istioNamespace: info.istioNamespace,
      istioVersion: o.seed?.istioVersion ?? NEWEST_SUPPORTED_ISTIO,
      ...(ds.waypoint !== undefined ? { waypoint: ds.waypoint } : {}),
      ...(ds.waypointReady !== undefined ? { waypointReady: ds.waypointReady } : {}),
    })
  if (flavor === 'linkerd')
    seedLinkerd(store, {
      namespace: info.namespace,
      gatewayPort: mesh.port,
      ...(ds.linkerdReady !== undefined ? { controlPlaneReady: ds.linkerdReady } : {}),
      ...(ds.nativeSidecar !== undefined ? { nativeSidecar: ds.nativeSidecar } : {}),
    })
  if (gatewayApi) {
    const seed = gatewayApi.seed ?? {}
    const ctl = gatewayApi.controller ?? {}
    if (ctl !== false)
      gatewayController = new GatewayApiController(store, {
        mesh: (seed || {}).mesh ?? 'istio',
        ...(flavor === 'istio-ambient' ? { ambient: true } : {}),
        ...ctl,
      })
  }
  // The cluster has been up a while: its proxies have the seeded routes (later changes propagate).
  mesh.flush()
  // RBAC: the bootstrap policy of every cluster, then the shipped manifests bound to the action's identities.
  const users = ['clusterUser', ids.objectId]
  seedBootstrapPolicy(store)
  const rbac = o.rbac ?? ['istio-canary', 'analyze']
  if (rbac === 'cluster-admin') {
    store.create(REFS.clusterRoleBindings, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'sim-full-rights' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
      subjects: users.map((name) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name })),
    })
  } else {
    for (const m of rbac)
      applyRbacManifests(store, loadRbacManifest(m), {
        users,
        namespace: info.namespace,
        istioNamespace: info.istioNamespace,
      })
  }
  const arm = await startArm(pki, {
    validateToken: (t) =>
      entra.validate(t, 'https://management.azure.com/') ??
      entra.validate(t, 'https://management.usgovcloudapi.net/') ??
      entra.validate(t, 'https://management.chinacloudapi.cn/'),
    clusters: [
      {
        subscriptionId: ids.subscriptionId,
        resourceGroup: ids.resourceGroup,
        name: ids.clusterName,
        tenantId: ids.tenantId,
        kind,
        server: kube.url,
        caPem: pki.caPem,
        userToken: tokens.user,
        adminToken: tokens.admin,
      },
    ],
  })
  const timers = new Set<NodeJS.Timeout>()
  if (o.istiodStatusDelayMs !== undefined) {
    const delay = o.istiodStatusDelayMs
    store.on('write', (ev: WriteEvent) => {
      if (ev.ref.resource !== 'virtualservices' || ev.verb === 'delete') return
      const gen = ev.object.metadata.generation
      const status = ev.object['status'] as { observedGeneration?: number } | undefined
      if (status?.observedGeneration === gen) return // its own write, or already reconciled: no loop
      const t = setTimeout(() => {
        timers.delete(t)
        const cur = store.get(ev.ref, ev.namespace, ev.name)
        if (!cur || cur.metadata.generation !== gen) return
        const next = {
          ...cur,
          metadata: { ...cur.metadata },
          status: { observedGeneration: gen, validationMessages: [] },
        }
        recordManagedFields(cur, next, 'pilot-discovery', 'status')
        store.update(ev.ref, next)
      }, delay)
      timers.add(t)
    })
  }
  const releases = await startIstioctlReleases({
    pki,
    // The releases of the control planes there are (both during a canary upgrade), as `istioctl-version: auto` wants.
    versions: o.istioctlVersions ?? [
      ...new Set([
        o.seed?.istioVersion ?? NEWEST_SUPPORTED_ISTIO,
        ...(o.seed?.canaryVersion ? [o.seed.canaryVersion] : []),
      ]),
    ],
  })
  const cluster = arm.clusters[0]
  if (!cluster) throw new Error('internal: no simulated cluster')
  let prometheus: PrometheusSim | undefined
  let azureMonitor: AzureMonitorSim | undefined
  if (o.prometheus) {
    try {
      prometheus = await startPrometheus({
        // linkerd-viz scrapes the proxies as job linkerd-proxy (its prometheus.yml); Istio's samples as istio-mesh.
        targets: [
          {
            job: flavor === 'linkerd' ? 'linkerd-proxy' : 'istio-mesh',
            address: mesh.metricsEndpoint.address,
            metricsPath: flavor === 'linkerd' ? '/metrics' : '/stats/prometheus',
          },
        ],
      })
      azureMonitor = await startAzureMonitor(pki, {
        upstream: prometheus.url,
        validate: (t, aud) => entra.validate(t, aud),
      })
      if (flavor === 'linkerd') {
        // linkerd-viz's Prometheus (seeded by mesh/layouts.ts): Service linkerd-viz/prometheus, port 9090.
        serviceUpstreams.set(`${LINKERD_VIZ_NAMESPACE}/prometheus:9090`, prometheus.url)
      } else serviceUpstreams.set('istio-system/prometheus:9090', prometheus.url)
      // Istio's samples/addons/prometheus.yaml: Service istio-system/prometheus, port 9090 named http.
      if (flavor !== 'linkerd')
        store.create(REFS.services, {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'prometheus', namespace: 'istio-system', labels: { app: 'prometheus' } },
          spec: {
            selector: { app: 'prometheus' },
            ports: [{ name: 'http', port: 9090, targetPort: 9090, protocol: 'TCP' }],
          },
        })
    } catch (err) {
      gatewayController?.close()
      await Promise.allSettled([
        prometheus?.stop(),
        mesh.close(),
        kube.close(),
        arm.close(),
        entra.close(),
        oidc.close(),
        releases.close(),
      ])
      throw err
    }
  }
  const dataplane: Sim['dataplane'] = {
    flavor,
    ...layoutFaults(store, info.namespace, o.seed?.istioVersion ?? NEWEST_SUPPORTED_ISTIO),
  }
  const meshFaults = new Set<string>()
  const faults: SimFaults = {
    kube: (fault) => kube.injectFault(fault),
    mesh: (service, version, fault) => {
      mesh.setFault(service, version, fault)
      const key = JSON.stringify([service, version])
      if (fault) meshFaults.add(key)
      else meshFaults.delete(key)
    },
    arm: (fault) => arm.injectFault(fault),
    clear: () => {
      gatewayController?.clearFaults()
      dataplane.clear()
      kube.clearFaults()
      arm.clearFaults()
      for (const key of meshFaults) {
        const [service, version] = JSON.parse(key) as [string, string]
        mesh.setFault(service, version, undefined)
      }
      meshFaults.clear()
    },
  }
  return {
    pki,
    faults,
    store,
    kube,
    mesh,
    entra,
    oidc,
    arm,
    releases,
    info,
    ids,
    tokens,
    users,
    serviceUpstreams,
    ...(gatewayController ? { gatewayController } : {}),
    dataplane,
    ...(prometheus ? { prometheus } : {}),
    ...(azureMonitor ? { azureMonitor } : {}),
    kubeconfig: (who = 'user') => kubeconfigYaml({ ...cluster, kind: 'local' }, who),
    env: () => ({
      NODE_EXTRA_CA_CERTS: pki.caFile,
      ACTIONS_ID_TOKEN_REQUEST_URL: oidc.url,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: oidc.requestToken,
    }),
    aksInputs: (a = {}) => ({
      'resource-group': ids.resourceGroup,
      'cluster-name': ids.clusterName,
      'subscription-id': ids.subscriptionId,
      'tenant-id': ids.tenantId,
      'client-id': ids.clientId,
      'authority-host': entra.authorityHost,
      'arm-endpoint': arm.url,
      ...(a.secret ? { 'client-secret': ids.clientSecret } : {}),
      ...(a.admin ? { admin: 'true' } : {}),
    }),
    close: async () => {
      for (const t of timers) clearTimeout(t)
      gatewayController?.close()
      await Promise.allSettled([
        prometheus?.stop(),
        azureMonitor?.close(),
        mesh.close(),
        kube.close(),
        arm.close(),
        entra.close(),
        oidc.close(),
        releases.close(),
      ])
    },
  }
}
