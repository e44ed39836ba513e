// Fills a KubeStore like a real cluster running BookInfo in an Istio mesh (open-source Istio or the
// AKS Istio add-on), from the real sample manifests under __tests__/fixtures/istio-samples/.
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadAll } from 'js-yaml'
import { REFS, REF_OF_KIND } from './refs.js'
import type { KubeObject, KubeStore, ResourceRef } from './store.js'

export interface SeedOptions {
  /**
   * Open-source Istio (istio-system) or the AKS Istio add-on (aks-istio-system, aks-istio-ingress, revision
   * asm-1-NN).
   */
  layout: 'oss' | 'aks-addon'
  /** Default '1.24.2'. */
  istioVersion?: string
  /** Default true; false = no istiod and no ingress gateway (and so no sidecars in the app pods). */
  controlPlane?: boolean
  /** Default 'bookinfo'. */
  namespace?: string
  /** Default true: namespace labelled for injection and (with a control plane) pods carry istio-proxy. */
  injection?: boolean
  /** The real loopback port of the simulated ingress gateway (the `http2` port of its Service). */
  gatewayPort: number
  /** Initial reviews VirtualService. Default 'all-v1'. */
  reviewsRoute?: 'all-v1' | 'jason-v2-v1'
  /** Readiness by version label (`v3`) or by Deployment name (`reviews-v3`, wins); default ready. */
  readyVersions?: Record<string, boolean>
}

export interface SeedInfo {
  istioNamespace: string
  revision: string
  ingressNamespace: string
  ingressService: string
  namespace: string
}

type Obj = Record<string, unknown>

const NODE = 'aks-nodepool1-31687461-vmss000000'
const HOST_IP = '10.224.0.4'

/** The directory of the Istio sample fixtures, found by walking up from this file (works from src and build). */
export function fixturesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, '__tests__', 'fixtures', 'istio-samples')
    if (existsSync(candidate)) return candidate
    dir = dirname(dir)
  }
  const fromCwd = join(process.cwd(), '__tests__', 'fixtures', 'istio-samples')
  if (existsSync(fromCwd)) return fromCwd
  throw new Error('cannot find __tests__/fixtures/istio-samples above ' + fileURLToPath(import.meta.url))
}

/**
 * The documents of the shipped RBAC manifest deploy/rbac/<name>.yaml (found like the fixtures, from the repository
 * root).
 */
export function loadRbacManifest(name: string): KubeObject[] {
  const file = join(dirname(dirname(fixturesDir())), '..', 'deploy', 'rbac', `${name}.yaml`)
  return loadAll(readFileSync(file, 'utf8')).filter((d): d is KubeObject => typeof d === 'object' && d !== null)
}

/** All documents of a fixture file (comment-only documents dropped). */
export function loadFixture(relPath: string): KubeObject[] {
  const text = readFileSync(join(fixturesDir(), relPath), 'utf8')
  return loadAll(text).filter((d): d is KubeObject => typeof d === 'object' && d !== null)
}

const hash = (s: string): Buffer => createHash('sha256').update(s).digest()
/** Deterministic random-looking string over an alphabet (kube's SafeEncodeString letters). */
function token(seed: string, n: number, alphabet: string): string {
  const h = hash(seed)
  let s = ''
  for (let i = 0; i < n; i++) s += alphabet[h[i]! % alphabet.length]
  return s
}
// Letters both in kube's safe alphabet (bcdfghjklmnpqrstvwxz2456789) and in hex, as the brief asks for hex.
const templateHash = (deploy: string): string => token(`${deploy}/template`, 10, 'bcdf2456789')
const podSuffix = (deploy: string): string => token(`${deploy}/pod`, 5, 'bcdfghjklmnpqrstvwxz2456789')
const containerId = (seed: string): string => `containerd://${hash(seed).toString('hex')}`

function put(store: KubeStore, ref: ResourceRef, obj: KubeObject): KubeObject {
  return store.create(ref, obj)
}

function namespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  }
}

let ipCounter = 0
function nextIp(prefix: string): string {
  ipCounter++
  return `${prefix}.${Math.floor(ipCounter / 250)}.${(ipCounter % 250) + 2}`
}

function serviceDefaults(svc: KubeObject): KubeObject {
  const spec = { ...(svc['spec'] as Obj) }
  const ip = nextIp('10.0')
  spec['type'] ??= 'ClusterIP'
  spec['clusterIP'] = ip
  spec['clusterIPs'] = [ip]
  spec['ipFamilies'] = ['IPv4']
  spec['ipFamilyPolicy'] = 'SingleStack'
  spec['internalTrafficPolicy'] = 'Cluster'
  spec['sessionAffinity'] = 'None'
  spec['ports'] = ((spec['ports'] as Obj[] | undefined) ?? []).map((p) => ({
    protocol: 'TCP',
    targetPort: p['port'],
    ...p,
  }))
  return { ...svc, spec, status: { loadBalancer: {} } }
}

interface Workload {
  deployment: KubeObject
  ready: boolean
  /** Inject the sidecar into the pod (app workloads in an injected namespace). */
  inject: boolean
}

interface MeshInfo {
  revision: string
  proxyImage: string
  version: string
}

function sidecarStatus(revision: string): string {
  return JSON.stringify({
    initContainers: ['istio-init'],
    containers: ['istio-proxy'],
    volumes: [
      'workload-socket',
      'credential-socket',
      'workload-certs',
      'istio-envoy',
      'istio-data',
      'istio-podinfo',
      'istio-token',
      'istiod-ca-cert',
    ],
    imagePullSecrets: null,
    revision,
  })
}

function proxyContainer(mesh: MeshInfo, mode: 'sidecar' | 'router'): Obj {
  return {
    name: 'istio-proxy',
    image: mesh.proxyImage,
    args: [
      'proxy',
      mode,
      '--domain',
      '$(POD_NAMESPACE).svc.cluster.local',
      '--proxyLogLevel=warning',
      '--proxyComponentLogLevel=misc:error',
      '--log_output_level=default:info',
    ],
    ports: [
      ...(mode === 'router'
        ? [
            { containerPort: 15021, name: 'status-port', protocol: 'TCP' },
            { containerPort: 8080, name: 'http2', protocol: 'TCP' },
            { containerPort: 8443, name: 'https', protocol: 'TCP' },
          ]
        : []),
      { containerPort: 15090, name: 'http-envoy-prom', protocol: 'TCP' },
    ],
    readinessProbe: {
      failureThreshold: 4,
      httpGet: { path: '/healthz/ready', port: 15021, scheme: 'HTTP' },
      periodSeconds: 15,
      successThreshold: 1,
      timeoutSeconds: 3,
    },
    resources: { limits: { cpu: '2', memory: '1Gi' }, requests: { cpu: '100m', memory: '128Mi' } },
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsGroup: 1337,
      runAsNonRoot: true,
      runAsUser: 1337,
    },
  }
}

function containerStatus(c: Obj, ready: boolean, startedAt: string, seed: string): Obj {
  const image = String(c['image'])
  return {
    name: c['name'],
    image,
    imageID: `${image.split(':')[0]}@sha256:${hash(image).toString('hex')}`,
    containerID: containerId(seed + String(c['name'])),
    ready,
    restartCount: 0,
    started: true,
    state: { running: { startedAt } },
  }
}

/** A Deployment with its ReplicaSet and one Pod, all with the status a settled cluster shows. */
function addWorkload(store: KubeStore, w: Workload, mesh: MeshInfo | undefined, t0: string): void {
  const d = structuredClone(w.deployment)
  const name = d.metadata.name
  const ns = d.metadata.namespace!
  const spec = d['spec'] as Obj
  const template = spec['template'] as { metadata: Obj; spec: Obj }
  const h = templateHash(name)
  const rsName = `${name}-${h}`
  const replicas = 1
  d.metadata.annotations = { 'deployment.kubernetes.io/revision': '1', ...d.metadata.annotations }
  d['spec'] = {
    progressDeadlineSeconds: 600,
    revisionHistoryLimit: 10,
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
    ...spec,
    replicas,
  }
  d['status'] = w.ready
    ? {
        observedGeneration: 1,
        replicas,
        updatedReplicas: replicas,
        readyReplicas: replicas,
        availableReplicas: replicas,
        conditions: [
          {
            type: 'Available',
            status: 'True',
            lastUpdateTime: t0,
            lastTransitionTime: t0,
            reason: 'MinimumReplicasAvailable',
            message: 'Deployment has minimum availability.',
          },
          {
            type: 'Progressing',
            status: 'True',
            lastUpdateTime: t0,
            lastTransitionTime: t0,
            reason: 'NewReplicaSetAvailable',
            message: `ReplicaSet "${rsName}" has successfully progressed.`,
          },
        ],
      }
    : {
        observedGeneration: 1,
        replicas,
        updatedReplicas: replicas,
        unavailableReplicas: replicas,
        conditions: [
          {
            type: 'Available',
            status: 'False',
            lastUpdateTime: t0,
            lastTransitionTime: t0,
            reason: 'MinimumReplicasUnavailable',
            message: 'Deployment does not have minimum availability.',
          },
          {
            type: 'Progressing',
            status: 'True',
            lastUpdateTime: t0,
            lastTransitionTime: t0,
            reason: 'ReplicaSetUpdated',
            message: `ReplicaSet "${rsName}" is progressing.`,
          },
        ],
      }
  const dep = put(store, REFS.deployments, d)

  const podLabels: Record<string, string> = {
    ...(template.metadata['labels'] as Record<string, string>),
    'pod-template-hash': h,
  }
  const rs = put(store, REFS.replicaSets, {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: rsName,
      namespace: ns,
      labels: podLabels,
      annotations: {
        'deployment.kubernetes.io/desired-replicas': String(replicas),
        'deployment.kubernetes.io/max-replicas': String(replicas + 1),
        'deployment.kubernetes.io/revision': '1',
      },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          name,
          uid: dep.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      replicas,
      selector: { matchLabels: { ...((spec['selector'] as Obj)['matchLabels'] as Obj), 'pod-template-hash': h } },
      template: { ...template, metadata: { ...template.metadata, labels: podLabels } },
    },
    status: {
      replicas,
      fullyLabeledReplicas: replicas,
      observedGeneration: 1,
      ...(w.ready ? { readyReplicas: replicas, availableReplicas: replicas } : {}),
    },
  })

  const podName = `${rsName}-${podSuffix(name)}`
  const labels = { ...podLabels }
  const annotations: Record<string, string> = {
    ...(template.metadata['annotations'] as Record<string, string> | undefined),
  }
  const podSpec = structuredClone(template.spec)
  const appContainers = (podSpec['containers'] as Obj[]).map(
    (c): Obj => ({
      terminationMessagePath: '/dev/termination-log',
      terminationMessagePolicy: 'File',
      ...c,
    }),
  )
  let containers: Obj[] = appContainers
  let initContainers: Obj[] = []
  const injected = w.inject && mesh !== undefined
  if (injected) {
    const app = labels['app'] ?? name
    Object.assign(labels, {
      'security.istio.io/tlsMode': 'istio',
      'service.istio.io/canonical-name': app,
      'service.istio.io/canonical-revision': labels['version'] ?? 'latest',
    })
    Object.assign(annotations, {
      'istio.io/rev': mesh.revision,
      'kubectl.kubernetes.io/default-container': String(appContainers[0]?.['name']),
      'kubectl.kubernetes.io/default-logs-container': String(appContainers[0]?.['name']),
      'prometheus.io/path': '/stats/prometheus',
      'prometheus.io/port': '15020',
      'prometheus.io/scrape': 'true',
      'sidecar.istio.io/status': sidecarStatus(mesh.revision),
    })
    initContainers = [
      {
        name: 'istio-init',
        image: mesh.proxyImage,
        args: [
          'istio-iptables',
          '-p',
          '15001',
          '-z',
          '15006',
          '-u',
          '1337',
          '-m',
          'REDIRECT',
          '-i',
          '*',
          '-x',
          '',
          '-b',
          '*',
          '-d',
          '15090,15021,15020',
          '--log_output_level=default:info',
        ],
      },
    ]
    containers = [...appContainers, proxyContainer(mesh, 'sidecar')]
  }
  const podIp = nextIp('10.244')
  const notReady = containers.filter((c) => c['name'] !== 'istio-proxy').map((c) => String(c['name']))
  const cond = (type: string, ok: boolean, extra: Obj = {}): Obj => ({
    type,
    status: ok ? 'True' : 'False',
    lastProbeTime: null,
    lastTransitionTime: t0,
    ...extra,
  })
  const why = { reason: 'ContainersNotReady', message: `containers with unready status: [${notReady.join(' ')}]` }
  put(store, REFS.pods, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName,
      namespace: ns,
      labels,
      ...(Object.keys(annotations).length ? { annotations } : {}),
      generateName: `${rsName}-`,
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: rsName,
          uid: rs.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      ...podSpec,
      ...(initContainers.length ? { initContainers } : {}),
      containers,
      nodeName: NODE,
      restartPolicy: 'Always',
      schedulerName: 'default-scheduler',
      dnsPolicy: 'ClusterFirst',
      terminationGracePeriodSeconds: 30,
      serviceAccount: podSpec['serviceAccountName'] ?? 'default',
      serviceAccountName: podSpec['serviceAccountName'] ?? 'default',
    },
    status: {
      phase: 'Running',
      conditions: [
        cond('PodReadyToStartContainers', true),
        cond('Initialized', true),
        cond('Ready', w.ready, w.ready ? {} : why),
        cond('ContainersReady', w.ready, w.ready ? {} : why),
        cond('PodScheduled', true),
      ],
      hostIP: HOST_IP,
      hostIPs: [{ ip: HOST_IP }],
      podIP: podIp,
      podIPs: [{ ip: podIp }],
      qosClass: injected ? 'Burstable' : 'BestEffort',
      startTime: t0,
      ...(initContainers.length
        ? {
            initContainerStatuses: initContainers.map((c) => ({
              ...containerStatus(c, true, t0, podName),
              started: false,
              state: {
                terminated: {
                  exitCode: 0,
                  reason: 'Completed',
                  startedAt: t0,
                  finishedAt: t0,
                  containerID: containerId(podName + 'istio-init'),
                },
              },
            })),
          }
        : {}),
      containerStatuses: containers.map((c) => containerStatus(c, w.ready || c['name'] === 'istio-proxy', t0, podName)),
    },
  })
}

function deployment(
  name: string,
  ns: string,
  labels: Record<string, string>,
  podLabels: Record<string, string>,
  selector: Record<string, string>,
  containers: Obj[],
  extra: Obj = {},
): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: selector },
      template: { metadata: { labels: podLabels }, spec: { containers, ...extra } },
    },
  }
}

function meshConfig(istioNs: string, istiodService: string): string {
  return [
    'defaultConfig:',
    `  discoveryAddress: ${istiodService}.${istioNs}.svc:15012`,
    'defaultProviders:',
    '  metrics:',
    '  - prometheus',
    'enablePrometheusMerge: true',
    `rootNamespace: ${istioNs}`,
    'trustDomain: cluster.local',
    '',
  ].join('\n')
}

export function seedCluster(store: KubeStore, opts: SeedOptions): SeedInfo {
  const version = opts.istioVersion ?? '1.24.2'
  const [major, minor] = version.split('.')
  const aks = opts.layout === 'aks-addon'
  const revision = aks ? `asm-${major}-${minor}` : 'default'
  const istioNamespace = aks ? 'aks-istio-system' : 'istio-system'
  const ingressNamespace = aks ? 'aks-istio-ingress' : 'istio-system'
  const ingressService = aks ? 'aks-istio-ingressgateway-external' : 'istio-ingressgateway'
  const ns = opts.namespace ?? 'bookinfo'
  const controlPlane = opts.controlPlane ?? true
  const injection = opts.injection ?? true
  const t0 = new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z')
  const mesh: MeshInfo | undefined = controlPlane
    ? {
        revision,
        version,
        proxyImage: aks
          ? `mcr.microsoft.com/oss/istio/proxyv2:${version}-distroless`
          : `docker.io/istio/proxyv2:${version}`,
      }
    : undefined

  // Namespaces
  for (const n of ['default', 'kube-node-lease', 'kube-public', 'kube-system'])
    put(store, REFS.namespaces, namespace(n))
  if (controlPlane) {
    put(store, REFS.namespaces, namespace(istioNamespace))
    if (aks) put(store, REFS.namespaces, namespace(ingressNamespace))
  }
  const injectionLabel: Record<string, string> = !injection
    ? {}
    : aks
      ? { 'istio.io/rev': revision }
      : { 'istio-injection': 'enabled' }
  put(store, REFS.namespaces, namespace(ns, injectionLabel))

  // Control plane and ingress gateway
  if (mesh) {
    const istiod = aks ? `istiod-${revision}` : 'istiod'
    const common = aks
      ? {
          'install.operator.istio.io/owning-resource': 'unknown',
          'operator.istio.io/component': 'Pilot',
          release: 'azure-service-mesh-istio-discovery',
        }
      : {
          'install.operator.istio.io/owning-resource': 'unknown',
          'operator.istio.io/component': 'Pilot',
          release: 'istio',
        }
    const istiodLabels = { app: 'istiod', istio: 'pilot', 'istio.io/rev': revision, ...common }
    const pilotImage = aks
      ? `mcr.microsoft.com/oss/istio/pilot:${version}-distroless`
      : `docker.io/istio/pilot:${version}`
    addWorkload(
      store,
      {
        deployment: deployment(
          istiod,
          istioNamespace,
          istiodLabels,
          { app: 'istiod', istio: 'pilot', 'istio.io/rev': revision, 'sidecar.istio.io/inject': 'false', ...common },
          { istio: 'pilot', 'istio.io/rev': revision },
          [
            {
              name: 'discovery',
              image: pilotImage,
              args: [
                'discovery',
                '--monitoringAddr=:15014',
                '--log_output_level=default:info',
                '--domain',
                'cluster.local',
                '--keepaliveMaxServerConnectionAge',
                '30m',
              ],
              ports: [
                { containerPort: 8080, protocol: 'TCP' },
                { containerPort: 15010, protocol: 'TCP' },
                { containerPort: 15017, protocol: 'TCP' },
              ],
              readinessProbe: {
                httpGet: { path: '/ready', port: 8080, scheme: 'HTTP' },
                initialDelaySeconds: 1,
                periodSeconds: 3,
                timeoutSeconds: 5,
              },
              env: [
                { name: 'REVISION', value: revision },
                { name: 'PILOT_CERT_PROVIDER', value: 'istiod' },
              ],
            },
          ],
          { serviceAccountName: `istiod${aks ? `-${revision}` : ''}` },
        ),
        ready: true,
        inject: false,
      },
      mesh,
      t0,
    )
    put(
      store,
      REFS.services,
      serviceDefaults({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: istiod, namespace: istioNamespace, labels: istiodLabels },
        spec: {
          selector: { app: 'istiod', 'istio.io/rev': revision },
          ports: [
            { name: 'grpc-xds', port: 15010, targetPort: 15010 },
            { name: 'https-dns', port: 15012, targetPort: 15012 },
            { name: 'https-webhook', port: 443, targetPort: 15017 },
            { name: 'http-monitoring', port: 15014, targetPort: 15014 },
          ],
        },
      }),
    )
    put(store, REFS.configmaps, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: aks ? `istio-${revision}` : 'istio',
        namespace: istioNamespace,
        labels: { 'istio.io/rev': revision, ...common },
      },
      data: { mesh: meshConfig(istioNamespace, istiod), meshNetworks: 'networks: {}' },
    })

    const gwName = aks ? `${ingressService}-${revision}` : ingressService
    const gwApp = ingressService
    const gwIstio = aks ? ingressService : 'ingressgateway'
    const gwLabels = aks
      ? { app: gwApp, istio: gwIstio, 'istio.io/rev': revision }
      : {
          app: gwApp,
          istio: gwIstio,
          'istio.io/rev': revision,
          'install.operator.istio.io/owning-resource': 'unknown',
          'operator.istio.io/component': 'IngressGateways',
          release: 'istio',
        }
    addWorkload(
      store,
      {
        deployment: deployment(
          gwName,
          ingressNamespace,
          gwLabels,
          {
            ...gwLabels,
            'sidecar.istio.io/inject': 'false',
            'service.istio.io/canonical-name': gwApp,
            'service.istio.io/canonical-revision': 'latest',
          },
          { app: gwApp, istio: gwIstio },
          [proxyContainer(mesh, 'router')],
          { serviceAccountName: aks ? gwName : 'istio-ingressgateway-service-account' },
        ),
        ready: true,
        inject: false,
      },
      mesh,
      t0,
    )
    const nodePort = (n: number): number => 30000 + (hash(`${gwName}/${n}`).readUInt16BE(0) % 2767)
    put(store, REFS.services, {
      ...serviceDefaults({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: ingressService, namespace: ingressNamespace, labels: gwLabels },
        spec: {
          type: 'LoadBalancer',
          externalTrafficPolicy: 'Cluster',
          allocateLoadBalancerNodePorts: true,
          selector: { app: gwApp, istio: gwIstio },
          ports: [
            { name: 'status-port', port: 15021, targetPort: 15021, protocol: 'TCP', nodePort: nodePort(15021) },
            { name: 'http2', port: opts.gatewayPort, targetPort: 8080, protocol: 'TCP', nodePort: nodePort(80) },
            { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP', nodePort: nodePort(443) },
          ],
        },
      }),
      status: { loadBalancer: { ingress: [{ ip: '127.0.0.1', ipMode: 'VIP' }] } },
    })
  }

  // BookInfo: Services, ServiceAccounts, Deployments (+ ReplicaSets, Pods)
  const ready = opts.readyVersions ?? {}
  for (const doc of loadFixture('platform/kube/bookinfo.yaml')) {
    const obj: KubeObject = { ...doc, metadata: { ...doc.metadata, namespace: ns } }
    if (obj.kind === 'Service') put(store, REFS.services, serviceDefaults(obj))
    else if (obj.kind === 'ServiceAccount') put(store, REFS.serviceAccounts, obj)
    else if (obj.kind === 'Deployment') {
      const v = obj.metadata.labels?.['version'] ?? ''
      const isReady = ready[obj.metadata.name] ?? ready[v] ?? true
      addWorkload(store, { deployment: obj, ready: isReady, inject: injection }, mesh, t0)
    } else {
      throw new Error(`unexpected ${String(obj.kind)} in bookinfo.yaml`)
    }
  }

  // Istio networking
  const istioObj = (doc: KubeObject): KubeObject => ({ ...doc, metadata: { ...doc.metadata, namespace: ns } })
  for (const dr of loadFixture('networking/destination-rule-all.yaml')) put(store, REFS.destinationRules, istioObj(dr))
  for (const doc of loadFixture('networking/bookinfo-gateway.yaml')) {
    const o = istioObj(doc)
    if (o.kind === 'Gateway' && aks) (o['spec'] as Obj)['selector'] = { istio: 'aks-istio-ingressgateway-external' }
    put(store, REF_OF_KIND[String(o.kind)]!, o)
  }
  for (const vs of loadFixture('networking/virtual-service-all-v1.yaml')) {
    let o = istioObj(vs)
    if (o.metadata.name === 'reviews' && opts.reviewsRoute === 'jason-v2-v1') {
      const jason = loadFixture('networking/virtual-service-reviews-jason-v2-v3.yaml')[0]!
      o = istioObj(jason)
      const http = (o['spec'] as { http: Array<{ match?: unknown; route: Array<{ destination: Obj }> }> }).http
      const def = http.find((r) => r.match === undefined)!
      for (const d of def.route) d.destination['subset'] = 'v1'
    }
    put(store, REFS.virtualServices, o)
  }

  return { istioNamespace, revision, ingressNamespace, ingressService, namespace: ns }
}
