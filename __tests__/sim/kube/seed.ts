// Fills a KubeStore like a real cluster running BookInfo in an Istio mesh (open-source Istio or the
// AKS Istio add-on), from the real sample manifests under __tests__/fixtures/istio-samples/.
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadAll } from 'js-yaml'
import { NEWEST_SUPPORTED_ISTIO } from '../../../src/istio/versions.js'
import { REFS, REF_OF_KIND } from './refs.js'
import type { KubeObject, KubeStore, ResourceRef } from './store.js'

export interface SeedOptions {
  /**
   * Open-source Istio (istio-system) or the AKS Istio add-on (aks-istio-system, aks-istio-ingress, revision
   * asm-1-NN).
   */
  layout: 'oss' | 'aks-addon'
  /** The (stable) control plane's Istio version. Default: the newest supported (src/istio/versions.ts). */
  istioVersion?: string
  /**
   * A canary upgrade in progress: a second control plane revision of this version beside the first, as
   * `az aks mesh upgrade start --revision asm-1-NN` deploys it (AKS: revision asm-<major>-<minor>; open source:
   * `istioctl install --set revision=<major>-<minor>-<patch>`), with its own istiod, injector webhook and mesh config.
   */
  canaryVersion?: string
  /**
   * Revision tags as `istioctl tag set <tag> --revision <revision> --istioNamespace <ns>` makes them: tag -> revision
   * (a revision of this cluster, or 'canary' / 'stable' for the canary upgrade's and the first one's).
   */
  tags?: Record<string, string>
  /**
   * The application namespace's injection labels instead of the layout's default (`istio-injection=enabled` on open
   * source, `istio.io/rev=<revision>` on AKS), e.g. `{ 'istio.io/rev': 'prod-stable' }`. Values 'canary' / 'stable'
   * name those revisions. Its pods are injected by the webhook whose namespaceSelector matches, or not at all.
   */
  namespaceLabels?: Record<string, string>
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
  /** The first (stable) revision. */
  revision: string
  /** The canary upgrade's revision, with `canaryVersion`. */
  canaryRevision?: string
  /** The revision that injected the application's pods (undefined: none did, no sidecars). */
  injectedBy?: string
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

export function serviceDefaults(svc: KubeObject): KubeObject {
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

/**
 * A Deployment with its ReplicaSet and one settled Pod without an Istio sidecar: the workloads of the other data
 * plane layouts (mesh/layouts.ts: ztunnel's waypoint, Linkerd's control plane), made as seedCluster makes its own.
 */
export function addSettledWorkload(store: KubeStore, deploy: KubeObject, ready = true): void {
  const t0 = new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z')
  addWorkload(store, { deployment: deploy, ready, inject: false }, undefined, t0)
}

/** A Deployment manifest (one replica) as seedCluster writes them. */
export function deploymentManifest(
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

/** The revision name of a version: asm-1-31 on the AKS add-on (one per minor), 1-31-1 for an open-source canary. */
function revisionName(version: string, aks: boolean): string {
  const [major, minor, patch] = version.split('.')
  return aks ? `asm-${major}-${minor}` : `${major}-${minor}-${(patch ?? '0').split('-')[0]}`
}

type Expr = { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }
const inj = (prefix: string, service: string, ns: string, namespaceSelector: Expr[], objectSelector: Expr[]): Obj => ({
  name: `${prefix}sidecar-injector.istio.io`,
  clientConfig: { service: { name: service, namespace: ns, path: '/inject', port: 443 } },
  sideEffects: 'None',
  rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
  failurePolicy: 'Fail',
  reinvocationPolicy: 'Never',
  admissionReviewVersions: ['v1'],
  namespaceSelector: { matchExpressions: namespaceSelector },
  objectSelector: { matchExpressions: objectSelector },
})
const NOT_DISABLED: Expr = { key: 'sidecar.istio.io/inject', operator: 'NotIn', values: ['false'] }

/**
 * The injector MutatingWebhookConfiguration of a revision, or of a revision tag, as Istio's charts render them
 * (istio/istio manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml for a revision:
 * istio-sidecar-injector[-<rev>], label istio.io/rev; templates/revision-tags-mwc.yaml for `istioctl tag set`:
 * istio-revision-tag-<tag>, labels istio.io/tag and istio.io/rev; both with -<namespace> outside istio-system). The
 * webhooks of the default revision (or of the tag `default`) also select istio-injection=enabled namespaces.
 */
function injectorWebhook(revision: string, istioNs: string, tag: string | undefined, common: Obj): KubeObject {
  const suffix = istioNs === 'istio-system' ? '' : `-${istioNs}`
  const name =
    tag !== undefined
      ? `istio-revision-tag-${tag}${suffix}`
      : `istio-sidecar-injector${revision === 'default' ? '' : `-${revision}`}${suffix}`
  const service = revision === 'default' ? 'istiod' : `istiod-${revision}`
  const selects = tag ?? revision
  const hooks = [
    inj(
      'rev.namespace.',
      service,
      istioNs,
      [
        { key: 'istio.io/rev', operator: 'In', values: [selects] },
        { key: 'istio-injection', operator: 'DoesNotExist' },
      ],
      [NOT_DISABLED],
    ),
    inj(
      'rev.object.',
      service,
      istioNs,
      [
        { key: 'istio.io/rev', operator: 'DoesNotExist' },
        { key: 'istio-injection', operator: 'DoesNotExist' },
      ],
      [NOT_DISABLED, { key: 'istio.io/rev', operator: 'In', values: [selects] }],
    ),
  ]
  if (selects === 'default') {
    hooks.push(
      inj(
        'namespace.',
        service,
        istioNs,
        [{ key: 'istio-injection', operator: 'In', values: ['enabled'] }],
        [NOT_DISABLED],
      ),
      inj(
        'object.',
        service,
        istioNs,
        [
          { key: 'istio-injection', operator: 'DoesNotExist' },
          { key: 'istio.io/rev', operator: 'DoesNotExist' },
        ],
        [
          { key: 'sidecar.istio.io/inject', operator: 'In', values: ['true'] },
          { key: 'istio.io/rev', operator: 'DoesNotExist' },
        ],
      ),
    )
  }
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: {
      name,
      labels: {
        ...(tag !== undefined ? { 'istio.io/tag': tag } : {}),
        'istio.io/rev': revision,
        ...common,
        app: 'sidecar-injector',
        'app.kubernetes.io/name': 'istiod',
      },
    },
    webhooks: hooks,
  }
}

/** A label selector's matchExpressions against labels (k8s.io/apimachinery pkg/labels: In, NotIn, Exists, DoesNotExist). */
function matches(exprs: Expr[], labels: Record<string, string>): boolean {
  return exprs.every((e) => {
    const has = e.key in labels
    if (e.operator === 'Exists') return has
    if (e.operator === 'DoesNotExist') return !has
    if (e.operator === 'In') return has && (e.values ?? []).includes(labels[e.key]!)
    return !has || !(e.values ?? []).includes(labels[e.key]!)
  })
}

/**
 * The revision whose webhook injects a new pod (no pod labels of its own) in a namespace with these labels: the
 * API server calls every webhook whose namespaceSelector and objectSelector match; Istio's selectors are made so
 * that at most one revision does. undefined: none does (no sidecar).
 */
export function injectingRevision(webhooks: KubeObject[], nsLabels: Record<string, string>): string | undefined {
  for (const mwc of webhooks) {
    for (const hook of (mwc['webhooks'] as Obj[] | undefined) ?? []) {
      const exprs = (sel: unknown): Expr[] => {
        const o = (sel ?? {}) as { matchExpressions?: Expr[]; matchLabels?: Record<string, string> }
        const eq = Object.entries(o.matchLabels ?? {}).map(([key, v]): Expr => ({ key, operator: 'In', values: [v] }))
        return [...eq, ...(o.matchExpressions ?? [])]
      }
      if (matches(exprs(hook['namespaceSelector']), nsLabels) && matches(exprs(hook['objectSelector']), {}))
        return mwc.metadata.labels?.['istio.io/rev']
    }
  }
  return undefined
}

export function seedCluster(store: KubeStore, opts: SeedOptions): SeedInfo {
  const version = opts.istioVersion ?? NEWEST_SUPPORTED_ISTIO
  const aks = opts.layout === 'aks-addon'
  const revision = aks ? revisionName(version, true) : 'default'
  const canaryRevision = opts.canaryVersion === undefined ? undefined : revisionName(opts.canaryVersion, aks)
  const named = (r: string): string => (r === 'canary' ? (canaryRevision ?? r) : r === 'stable' ? revision : r)
  const istioNamespace = aks ? 'aks-istio-system' : 'istio-system'
  const ingressNamespace = aks ? 'aks-istio-ingress' : 'istio-system'
  const ingressService = aks ? 'aks-istio-ingressgateway-external' : 'istio-ingressgateway'
  const ns = opts.namespace ?? 'bookinfo'
  const controlPlane = opts.controlPlane ?? true
  const injection = opts.injection ?? true
  const t0 = new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z')
  const meshOf = (rev: string, v: string): MeshInfo => ({
    revision: rev,
    version: v,
    proxyImage: aks ? `mcr.microsoft.com/oss/istio/proxyv2:${v}-distroless` : `docker.io/istio/proxyv2:${v}`,
  })
  const mesh: MeshInfo | undefined = controlPlane ? meshOf(revision, version) : undefined
  const revisions = controlPlane
    ? [mesh!, ...(canaryRevision && opts.canaryVersion ? [meshOf(canaryRevision, opts.canaryVersion)] : [])]
    : []

  // Namespaces
  for (const n of ['default', 'kube-node-lease', 'kube-public', 'kube-system'])
    put(store, REFS.namespaces, namespace(n))
  if (controlPlane) {
    put(store, REFS.namespaces, namespace(istioNamespace))
    if (aks) put(store, REFS.namespaces, namespace(ingressNamespace))
  }
  const injectionLabel: Record<string, string> = !injection
    ? {}
    : opts.namespaceLabels
      ? Object.fromEntries(
          Object.entries(opts.namespaceLabels).map(([k, v]) => [k, k === 'istio.io/rev' ? named(v) : v]),
        )
      : aks
        ? { 'istio.io/rev': revision }
        : { 'istio-injection': 'enabled' }
  const appNamespace = put(store, REFS.namespaces, namespace(ns, injectionLabel))

  // Control plane revisions (istiod, its Service, mesh config, injector webhook), the revision tags
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
  for (const cp of revisions) {
    const rev = cp.revision
    const istiod = rev === 'default' ? 'istiod' : `istiod-${rev}`
    const istiodLabels = { app: 'istiod', istio: 'pilot', 'istio.io/rev': rev, ...common }
    const pilotImage = aks
      ? `mcr.microsoft.com/oss/istio/pilot:${cp.version}-distroless`
      : `docker.io/istio/pilot:${cp.version}`
    addWorkload(
      store,
      {
        deployment: deploymentManifest(
          istiod,
          istioNamespace,
          istiodLabels,
          { app: 'istiod', istio: 'pilot', 'istio.io/rev': rev, 'sidecar.istio.io/inject': 'false', ...common },
          { istio: 'pilot', 'istio.io/rev': rev },
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
                { name: 'REVISION', value: rev },
                { name: 'PILOT_CERT_PROVIDER', value: 'istiod' },
              ],
            },
          ],
          { serviceAccountName: rev === 'default' ? 'istiod' : `istiod-${rev}` },
        ),
        ready: true,
        inject: false,
      },
      cp,
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
          selector: { app: 'istiod', 'istio.io/rev': rev },
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
        name: rev === 'default' ? 'istio' : `istio-${rev}`,
        namespace: istioNamespace,
        labels: { 'istio.io/rev': rev, ...common },
      },
      data: { mesh: meshConfig(istioNamespace, istiod), meshNetworks: 'networks: {}' },
    })
    put(store, REFS.mutatingWebhookConfigurations, injectorWebhook(rev, istioNamespace, undefined, common))
  }
  for (const [tag, target] of Object.entries(opts.tags ?? {})) {
    const rev = named(target)
    // istioctl tag set refuses a revision without its injector webhook (istioctl/pkg/tag/generate.go
    // checkControlPlaneExistenceOrDuplicate) and a tag named like a revision but `default`
    // (checkTagNameCollidesWithRevisionName).
    if (!revisions.some((r) => r.revision === rev)) throw new Error(`seed: tag ${tag} names no revision (${rev})`)
    if (tag !== 'default' && revisions.some((r) => r.revision === tag))
      throw new Error(`seed: tag ${tag} collides with a revision`)
    put(store, REFS.mutatingWebhookConfigurations, injectorWebhook(rev, istioNamespace, tag, common))
    // `istioctl tag set default` makes the default revision's own injector ineffectual without deleting it: every
    // webhook's selectors become NeverMatch (istioctl/pkg/tag/util.go DeactivateIstioInjectionWebhook,
    // istioctl/pkg/util/common.go NeverMatch).
    const own = store.list(REFS.mutatingWebhookConfigurations, undefined, 'istio.io/rev=default,!istio.io/tag')
    if (tag === 'default' && own[0]) {
      const never = { matchLabels: { 'istio.io/deactivated': 'never-match' } }
      const hooks = ((own[0]['webhooks'] as Obj[]) ?? []).map((w) => ({
        ...w,
        namespaceSelector: never,
        objectSelector: never,
      }))
      store.update(REFS.mutatingWebhookConfigurations, { ...own[0], webhooks: hooks })
    }
  }
  // Which revision injects the application's pods: the webhook the namespace's labels select, as admission does.
  const injectedBy = injectingRevision(
    store.list(REFS.mutatingWebhookConfigurations),
    appNamespace.metadata.labels ?? {},
  )
  const appMesh = revisions.find((r) => r.revision === injectedBy)

  if (mesh) {
    // On the AKS add-on the ingress gateway is deployed per revision, behind one Service whose address stays
    // during an upgrade (https://learn.microsoft.com/azure/aks/istio-upgrade, "Minor revision upgrades with ingress
    // and egress gateways"): aks-istio-ingressgateway-external-asm-1-NN for each.
    const gwName = aks ? `${ingressService}-${revision}` : ingressService
    const gwApp = ingressService
    const gwIstio = aks ? ingressService : 'ingressgateway'
    const gwLabelsOf = (rev: string): Record<string, string> =>
      aks
        ? { app: gwApp, istio: gwIstio, 'istio.io/rev': rev }
        : {
            app: gwApp,
            istio: gwIstio,
            'istio.io/rev': rev,
            'install.operator.istio.io/owning-resource': 'unknown',
            'operator.istio.io/component': 'IngressGateways',
            release: 'istio',
          }
    const gwLabels = gwLabelsOf(revision)
    for (const cp of aks ? revisions : [mesh]) {
      const name = aks ? `${ingressService}-${cp.revision}` : ingressService
      const labels = gwLabelsOf(cp.revision)
      addWorkload(
        store,
        {
          deployment: deploymentManifest(
            name,
            ingressNamespace,
            labels,
            {
              ...labels,
              'sidecar.istio.io/inject': 'false',
              'service.istio.io/canonical-name': gwApp,
              'service.istio.io/canonical-revision': 'latest',
            },
            { app: gwApp, istio: gwIstio, ...(aks ? { 'istio.io/rev': cp.revision } : {}) },
            [proxyContainer(cp, 'router')],
            { serviceAccountName: aks ? name : 'istio-ingressgateway-service-account' },
          ),
          ready: true,
          inject: false,
        },
        cp,
        t0,
      )
    }
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
      addWorkload(store, { deployment: obj, ready: isReady, inject: appMesh !== undefined }, appMesh, t0)
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

  return {
    istioNamespace,
    revision,
    ...(canaryRevision ? { canaryRevision } : {}),
    ...(injectedBy ? { injectedBy } : {}),
    ingressNamespace,
    ingressService,
    namespace: ns,
  }
}
