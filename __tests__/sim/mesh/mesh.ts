// The simulated Istio data plane: a plain-HTTP server on loopback that stands for the ingress gateway
// (Envoy) in front of BookInfo. Every request is routed (Gateway -> VirtualService -> DestinationRule subset ->
// ready Pods) with Istio's match and weight semantics, from the routing config THAT PROXY has: istiod pushes a
// change of VirtualServices, DestinationRules or Gateways some time after the write (see Propagation), and the
// ingress gateway and each sidecar apply it at their own time. Pods and Services (endpoints) are read live.
// productpage is rendered like the real BookInfo page and calls `reviews` through the reviews
// VirtualService with the incoming headers propagated. A small "cloud load balancer controller"
// gives ingress gateway LoadBalancer Services the address 127.0.0.1 and this server's port.
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { REFS } from '../kube/refs.js'
import type { KubeObject, KubeStore, WriteEvent } from '../kube/store.js'
import { prng } from '../../support/prng.js'
import type { MeshFlavor } from '../../../src/telemetry/queries.js'
import { MeshMetrics, type MetricsEndpoint, type Hop, type Workload, serveMetrics } from './mesh-metrics.js'
import {
  type HttpRequestFacts,
  chooseBackend,
  hostnameAdmits,
  orderCandidates,
  parentIsGateway,
  parentIsService,
  selectRule,
} from './httproute.js'
import { waypointOf } from './layouts.js'
import { ISTIO_GATEWAY_CONTROLLER } from '../gateway/controller.js'

/** A fault of one version of a mesh service (its pods answer 5xx, or late); named apart from KubeFault, the API server's. */
export interface MeshFault {
  /** Share (0..1) of the calls to this version that fail. */
  errorRate?: number
  /** Added latency of every call to this version. */
  delayMs?: number
}

export interface Mesh {
  port: number
  /** http://127.0.0.1:<port> */
  url: string
  /** Per-version fault of a service, e.g. setFault('reviews', 'v3', { errorRate: 0.5, delayMs: 200 }); undefined clears it. */
  setFault(service: string, version: string, fault: MeshFault | undefined): void
  /** Calls each `<service>-<version>` answered (including the ones a fault made fail), e.g. {'reviews-v1': 12}. */
  served: Record<string, number>
  /**
   * How route changes reach the proxies; a partial setting keeps the rest. Takes effect for pushes not yet
   * applied, e.g. setPropagation({ pushMs: () => Infinity }) holds every later change back from every proxy.
   */
  setPropagation(p: Partial<Propagation>): void
  /** Every proxy has the config as the store has it now (a cluster up for a while: for a simulation's start). */
  flush(): void
  /** The proxies that have not applied istiod's latest push yet (names as `istioctl proxy-status` prints them). */
  stale(): string[]
  /** Istio (and Linkerd) request metrics of every call served, as the proxies export them. */
  metrics: MeshMetrics
  /** The scrape endpoint of those metrics: plain HTTP on loopback, /stats/prometheus. */
  metricsEndpoint: MetricsEndpoint
  close(): Promise<void>
}

export interface MeshOptions {
  store: KubeStore
  /** Application namespace: where productpage's own calls resolve when its Service's namespace is unknown. */
  namespace?: string
  /** Seed of the PRNG behind weighted routing, pod choice and faults. */
  seed?: number
  /**
   * How productpage answers when its reviews call fails. 'status' (default): the page fails with 500.
   * 'bookinfo': as the real productpage.py does, it tries the call twice, then renders the page with 200 and an
   * "Error fetching product reviews" block that names no reviews pod.
   */
  reviewsErrors?: 'status' | 'bookinfo'
  /** How route changes reach the proxies (default DEFAULT_PROPAGATION). */
  propagation?: Partial<Propagation>
  /**
   * Route by Gateway API HTTPRoutes too (the `gatewayApi` option of startSimulation): north-south by routes whose
   * parent is a Gateway, service to service by routes whose parent is the Service (GAMMA). Default false: by
   * VirtualServices only, as before the Gateway API was modelled.
   */
  gatewayApi?: boolean
  /**
   * Whether the controller programs a route for one parent (Accepted for the route's current generation). The
   * proxies get a route only for the parents it is programmed for (istiod converts only the routes it accepts:
   * pilot/pkg/config/kube/gateway/conversion.go; Linkerd's policy controller likewise). Default: the parent exists.
   */
  routeProgrammed?: (route: KubeObject, parentRef: Record<string, unknown>) => boolean
  /**
   * Which data plane carries the calls (default 'istio-sidecar'): Envoy sidecars; Istio ambient (ztunnel, L4 only,
   * and L7 through the waypoint a Service or namespace is bound to); Linkerd's proxies. See layouts.ts.
   */
  flavor?: MeshFlavor
}

/**
 * When a change of routing config reaches a proxy. istiod debounces config events: it pushes once no new event
 * came for PILOT_DEBOUNCE_AFTER (default 100 ms), or PILOT_DEBOUNCE_MAX (default 10 s) after the first one of a
 * burst (istio/istio pilot/pkg/features/tuning.go, DebounceAfter / DebounceMax; the loop is debounce() in
 * pilot/pkg/xds/discovery.go). An update whose spec did not change (a status write) triggers no push
 * (pilot/pkg/bootstrap/server.go, initRegistryEventHandlers: "skipping push for %s as spec has not changed").
 * Each proxy then gets the push at its own time (pushes are throttled, PILOT_PUSH_THROTTLE, and queued per
 * proxy): `pushMs(proxy)` after the push starts; Infinity: never (a stuck proxy, or a lost xDS stream).
 */
export interface Propagation {
  debounceAfterMs: number
  debounceMaxMs: number
  /**
   * Per proxy, as `istioctl proxy-status` names it: `istio-ingressgateway` for the ingress gateway,
   * `<pod>.<namespace>` for a sidecar.
   */
  pushMs: (proxy: string) => number
}

/** The gateway's proxy name in Propagation.pushMs. */
export const GATEWAY_PROXY = 'istio-ingressgateway'

/**
 * istiod's defaults, and a push that takes each proxy 10..60 ms (a small mesh; tests set seconds to model load),
 * fixed per proxy name.
 */
export const DEFAULT_PROPAGATION: Propagation = {
  debounceAfterMs: 100,
  debounceMaxMs: 10_000,
  pushMs: (proxy) => {
    let h = 0x811c9dc5
    for (const c of proxy) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0
    return 10 + (h % 51)
  },
}

/** Every change applied on the next request (the simulation before propagation was modelled; for unit-like tests). */
export const IMMEDIATE_PROPAGATION: Propagation = { debounceAfterMs: 0, debounceMaxMs: 0, pushMs: () => 0 }

/** The routing config a proxy holds: what istiod pushed, as the store had it when the push started. */
interface ConfigView {
  virtualServices: KubeObject[]
  destinationRules: KubeObject[]
  gateways: KubeObject[]
  /** HTTPRoutes with the parentRefs they are programmed for (only those with at least one). */
  httpRoutes: Array<{ route: KubeObject; parents: Obj[] }>
  gatewayApiGateways: KubeObject[]
}

/** `istio` label values of the ingress gateways (open source and AKS add-on external gateway). */
export const INGRESS_GATEWAY_LABELS = ['ingressgateway', 'aks-istio-ingressgateway-external']

// ---------------------------------------------------------------------------------------------
// Loose accessors for unstructured objects

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const obj = (v: unknown): Obj => (isObj(v) ? v : {})
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)
const strMap = (v: unknown): Record<string, string> =>
  Object.fromEntries(Object.entries(obj(v)).filter((e): e is [string, string] => typeof e[1] === 'string'))
const spec = (o: KubeObject): Obj => obj(o['spec'])
const labelsMatch = (want: Record<string, string>, have: Record<string, string>): boolean =>
  Object.entries(want).every(([k, v]) => have[k] === v)

// ---------------------------------------------------------------------------------------------
// Istio HTTP route semantics

export interface RouteRequest {
  /** Path without the query string. */
  path: string
  query: URLSearchParams
  method: string
  authority: string
  /** Lower-case names. */
  headers: Record<string, string | undefined>
  /** Names a match's `gateways` may list: 'mesh' for sidecar traffic, else the gateway's name and ns/name. */
  gateways: Set<string>
  sourceLabels: Record<string, string>
}

/** Istio StringMatch: exact, prefix or (RE2, whole-string) regex; an empty match only asks for presence. */
export function stringMatches(m: unknown, value: string | undefined, ignoreCase = false): boolean {
  if (value === undefined) return false
  const sm = obj(m)
  const fold = (s: string): string => (ignoreCase ? s.toLowerCase() : s)
  const exact = str(sm['exact'])
  if (exact !== undefined) return fold(value) === fold(exact)
  const prefix = str(sm['prefix'])
  if (prefix !== undefined) return fold(value).startsWith(fold(prefix))
  const regex = str(sm['regex'])
  if (regex !== undefined) return new RegExp(`^(?:${regex})$`, ignoreCase ? 'i' : '').test(value)
  return true
}

/** One HTTPMatchRequest: every field it sets must hold. */
export function conditionMatches(c: Obj, r: RouteRequest): boolean {
  if (c['uri'] !== undefined && !stringMatches(c['uri'], r.path, c['ignoreUriCase'] === true)) return false
  if (c['method'] !== undefined && !stringMatches(c['method'], r.method)) return false
  if (c['authority'] !== undefined && !stringMatches(c['authority'], r.authority)) return false
  for (const [name, m] of Object.entries(obj(c['headers']))) {
    if (!stringMatches(m, r.headers[name.toLowerCase()])) return false
  }
  for (const [name, m] of Object.entries(obj(c['withoutHeaders']))) {
    if (stringMatches(m, r.headers[name.toLowerCase()])) return false
  }
  for (const [name, m] of Object.entries(obj(c['queryParams']))) {
    if (!stringMatches(m, r.query.get(name) ?? undefined)) return false
  }
  if (c['sourceLabels'] !== undefined && !labelsMatch(strMap(c['sourceLabels']), r.sourceLabels)) return false
  const gws = arr(c['gateways']).filter((g): g is string => typeof g === 'string')
  if (gws.length > 0 && !gws.some((g) => r.gateways.has(g))) return false
  return true
}

/** A route without `match` matches everything; otherwise its conditions are OR'ed. */
export function routeMatches(route: Obj, r: RouteRequest): boolean {
  const conditions = arr(route['match'])
  return conditions.length === 0 || conditions.some((c) => conditionMatches(obj(c), r))
}

/** Picks a destination by weight. A single destination takes all traffic; weight 0 is never picked. */
export function pickWeighted(route: Obj, rand: () => number): Obj | undefined {
  const dests = arr(route['route']).map(obj)
  if (dests.length <= 1) return dests[0]
  const weights = dests.map((d) => (typeof d['weight'] === 'number' && d['weight'] > 0 ? d['weight'] : 0))
  const total = weights.reduce((a, b) => a + b, 0)
  if (total <= 0) return undefined
  let x = rand() * total
  for (let i = 0; i < dests.length; i++) {
    x -= weights[i]!
    if (x < 0 && weights[i]! > 0) return dests[i]
  }
  return dests[weights.findLastIndex((w) => w > 0)]
}

/** `reviews`, `reviews.bookinfo` or `reviews.bookinfo.svc.cluster.local`, relative to a namespace. */
export function resolveHost(host: string, namespace: string): { name: string; namespace: string; fqdn: string } {
  const [name = host, ns = namespace] = host.split('.')
  return { name, namespace: ns, fqdn: `${name}.${ns}.svc.cluster.local` }
}

/** Host matching with Istio wildcards (`*`, `*.example.com`); `ns/host` forms of Gateway hosts are accepted. */
function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.includes('/') ? pattern.slice(pattern.indexOf('/') + 1) : pattern
  if (p === '*') return true
  if (p.startsWith('*.')) return host.endsWith(p.slice(1))
  return p.toLowerCase() === host.toLowerCase()
}

const hostSpecificity = (h: string): number => (h === '*' ? 0 : h.startsWith('*') ? 1 : 2)

// ---------------------------------------------------------------------------------------------

type Backend =
  | { ok: true; pod: KubeObject; service: string; namespace: string; version: string }
  | { ok: false; status: number; body: string; headers?: Record<string, string> }

interface Reply {
  status: number
  headers: Record<string, string | string[]>
  body: string
}

const NO_HEALTHY_UPSTREAM: Backend = { ok: false, status: 503, body: 'no healthy upstream' }
/** ztunnel's answer when the waypoint a Service uses has no ready pod: the connection to it fails. */
const WAYPOINT_UNREACHABLE: Backend = {
  ok: false,
  status: 503,
  body: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure',
}
/** Headers BookInfo's productpage.py passes on to details and reviews, and `x-canary-preview`. */
const FORWARDED = new Set([
  'x-request-id',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  'b3',
  'traceparent',
  'tracestate',
  'x-ot-span-context',
  'x-datadog-trace-id',
  'x-datadog-parent-id',
  'x-datadog-sampling-priority',
  'x-cloud-trace-context',
  'grpc-trace-bin',
  'sw8',
  'user-agent',
  'cookie',
  'authorization',
  'jwt',
  'x-canary-preview',
])

const HOP_BY_HOP = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
])

export function podReady(p: KubeObject): boolean {
  const st = obj(p['status'])
  if (st['phase'] !== 'Running' || p.metadata['deletionTimestamp'] !== undefined) return false
  return arr(st['conditions']).some((c) => obj(c)['type'] === 'Ready' && obj(c)['status'] === 'True')
}

function isIngressGatewayService(svc: KubeObject): boolean {
  if (spec(svc)['type'] !== 'LoadBalancer') return false
  const labels = svc.metadata.labels ?? {}
  // The plain ingress of the Linkerd layout (layouts.ts): Linkerd has no ingress of its own.
  return INGRESS_GATEWAY_LABELS.includes(labels['istio'] ?? '') || labels['app.kubernetes.io/name'] === 'ingress-nginx'
}

export async function startMesh(opts: MeshOptions): Promise<Mesh> {
  const { store } = opts
  // One random stream per decision point (a VirtualService's weighted pick, a service's pod pick, a version's
  // faults): the k-th decision at a point gets the k-th number whatever the order concurrent requests arrive in,
  // so a test's outcome does not depend on scheduling.
  const seed = opts.seed ?? 20240601
  const streams = new Map<string, () => number>()
  const stream = (key: string): (() => number) => {
    let s = streams.get(key)
    if (!s) {
      let h = seed >>> 0
      for (const c of key) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0
      s = prng(h)
      streams.set(key, s)
    }
    return s
  }
  const faults = new Map<string, MeshFault>()
  const served: Record<string, number> = {}
  const metrics = new MeshMetrics()
  let port = 0
  const GATEWAY_SOURCE: Workload = {
    workload: 'istio-ingressgateway',
    namespace: 'istio-system',
    app: 'istio-ingressgateway',
    version: 'unknown',
    serviceAccount: 'istio-ingressgateway-service-account',
  }
  /** The plain ingress of the Linkerd layout (layouts.ts), meshed in Linkerd's ingress mode. */
  const LINKERD_INGRESS_SOURCE: Workload = {
    workload: 'ingress-nginx-controller',
    namespace: 'ingress-nginx',
    app: 'ingress-nginx',
    version: 'unknown',
  }
  const ingressSource = (): Workload => (opts.flavor === 'linkerd' ? LINKERD_INGRESS_SOURCE : GATEWAY_SOURCE)
  const workloadOf = (pod: KubeObject, service: string): Workload => {
    const l = pod.metadata.labels ?? {}
    const version = l['version'] ?? 'unknown'
    const app = l['service.istio.io/canonical-name'] ?? l['app'] ?? service
    const sa = str(spec(pod)['serviceAccountName'])
    return {
      workload: `${app}-${version}`,
      namespace: pod.metadata.namespace ?? 'default',
      app,
      version,
      ...(sa ? { serviceAccount: sa } : {}),
    }
  }

  // ---- cloud load balancer controller ----
  // Gives an ingress gateway LoadBalancer Service the address 127.0.0.1 and this server's port as its http2
  // port: at start for every such Service, afterwards for those that have no address yet (like a cloud
  // controller, it provisions once; a second mesh on the same store takes the gateways over at its start).
  const reconcileLoadBalancer = (svc: KubeObject, claim: boolean): void => {
    if (!isIngressGatewayService(svc) || port === 0) return
    const s = spec(svc)
    const ports = arr(s['ports']).map(obj)
    const target = ports.find((p) => p['name'] === 'http2') ?? ports.find((p) => p['name'] === 'http')
    const ingress = arr(obj(obj(svc['status'])['loadBalancer'])['ingress']).map(obj)
    if (ingress.length > 0 && !claim) return
    if (target?.['port'] === port && ingress[0]?.['ip'] === '127.0.0.1') return
    if (target) target['port'] = port
    else ports.push({ name: 'http2', port, protocol: 'TCP', targetPort: 8080 })
    const next: KubeObject = {
      ...svc,
      metadata: { ...svc.metadata },
      spec: { ...s, ports },
      status: { ...obj(svc['status']), loadBalancer: { ingress: [{ ip: '127.0.0.1', ipMode: 'VIP' }] } },
    }
    delete next.metadata.resourceVersion
    try {
      store.update(REFS.services, next)
    } catch {
      // deleted meanwhile: nothing to provision
    }
  }
  const onWrite = (ev: WriteEvent): void => {
    if (ev.verb === 'delete' || ev.ref.group !== '' || ev.ref.resource !== 'services') return
    // Like a real controller, act after the write has been answered (and seen by watchers).
    queueMicrotask(() => {
      const cur = store.get(REFS.services, ev.namespace, ev.name)
      if (cur) reconcileLoadBalancer(cur, false)
    })
  }

  // ---- propagation: istiod's pushes and each proxy's view ----
  let propagation: Propagation = { ...DEFAULT_PROPAGATION, ...(opts.propagation ?? {}) }
  const flavor: MeshFlavor = opts.flavor ?? 'istio-sidecar'
  const gatewayApi = opts.gatewayApi ?? false
  // Keyed by group too: a Gateway API Gateway and an Istio Gateway may share namespace and name (BookInfo's do).
  const configRefs = [
    REFS.virtualServices,
    REFS.destinationRules,
    REFS.gateways,
    ...(gatewayApi ? [REFS.httpRoutes, REFS.gatewayApiGateways] : []),
  ]
  const CONFIG_KINDS = new Set(configRefs.map((r) => `${r.group}/${r.resource}`))
  const parentExists = (route: KubeObject, p: Obj): boolean => {
    const ns = str(p['namespace']) ?? route.metadata.namespace ?? 'default'
    const name = str(p['name']) ?? ''
    return p['kind'] === 'Service' && (str(p['group']) ?? '') === ''
      ? store.get(REFS.services, ns, name) !== undefined
      : store.get(REFS.gatewayApiGateways, ns, name) !== undefined
  }
  const programmed = opts.routeProgrammed ?? parentExists
  /** The HTTPRoutes as istiod (or Linkerd's controller) programs them now: each with its accepted parents. */
  const programmedRoutes = (): ConfigView['httpRoutes'] => {
    if (!gatewayApi) return []
    const out: ConfigView['httpRoutes'] = []
    for (const route of store.list(REFS.httpRoutes)) {
      const parents = arr(spec(route)['parentRefs'])
        .map(obj)
        .filter((p) => programmed(route, p))
      if (parents.length > 0) out.push({ route, parents })
    }
    return out
  }
  const snapshot = (): ConfigView => ({
    virtualServices: store.list(REFS.virtualServices),
    destinationRules: store.list(REFS.destinationRules),
    gateways: store.list(REFS.gateways),
    httpRoutes: programmedRoutes(),
    gatewayApiGateways: gatewayApi ? store.list(REFS.gatewayApiGateways) : [],
  })
  // Every push so far, oldest first; the first is the config the proxies had when they connected.
  interface Push {
    at: number
    /** Increases with every push (and flush): which of two a proxy applied last. */
    seq: number
    config: ConfigView
  }
  let pushSeq = 0
  const pushes: Push[] = [{ at: Number.NEGATIVE_INFINITY, seq: pushSeq++, config: snapshot() }]
  /** The newest push each proxy has been seen to have: a push once applied stays (a later delay cannot undo it). */
  const applied = new Map<string, Push>()
  let burst: { first: number; last: number; timer?: NodeJS.Timeout } | undefined
  const push = (): void => {
    if (burst?.timer) clearTimeout(burst.timer)
    burst = undefined
    pushes.push({ at: performance.now(), seq: pushSeq++, config: snapshot() })
    // A proxy only ever needs the newest push it can have: keep a bounded history.
    if (pushes.length > 64) pushes.splice(0, pushes.length - 64)
  }
  /** The burst's push when it is due: now (synchronously, for a zero debounce), or on a timer. */
  const schedule = (): void => {
    if (!burst) return
    if (burst.timer) clearTimeout(burst.timer)
    const due = Math.min(burst.last + propagation.debounceAfterMs, burst.first + propagation.debounceMaxMs)
    const wait = due - performance.now()
    if (wait <= 0) {
      push()
      return
    }
    burst.timer = setTimeout(push, wait)
    burst.timer.unref()
  }
  const specOf = new Map<string, string>()
  const keyOf = (ev: WriteEvent): string => `${ev.ref.group}/${ev.ref.resource}/${ev.namespace ?? ''}/${ev.name}`
  for (const kind of configRefs) {
    for (const o of store.list(kind)) {
      specOf.set(
        `${kind.group}/${kind.resource}/${o.metadata.namespace ?? ''}/${o.metadata.name}`,
        JSON.stringify(o['spec']),
      )
    }
  }
  const onConfigWrite = (ev: WriteEvent): void => {
    if (!CONFIG_KINDS.has(`${ev.ref.group}/${ev.ref.resource}`)) return
    const key = keyOf(ev)
    const spec = ev.verb === 'delete' ? undefined : JSON.stringify(ev.object['spec'])
    const before = specOf.get(key)
    if (spec === undefined) specOf.delete(key)
    else specOf.set(key, spec)
    if (ev.verb === 'update' && spec === before) return // a status or metadata write: no push
    const now = performance.now()
    if (burst) burst.last = now
    else burst = { first: now, last: now }
    schedule()
  }
  /** The config this proxy has now: the newest push that has reached it. */
  const viewOf = (proxy: string): ConfigView => {
    const now = performance.now()
    const delay = propagation.pushMs(proxy)
    let best = pushes[0] as Push
    for (let i = pushes.length - 1; i > 0; i--) {
      const p = pushes[i] as Push
      if (p.at + delay <= now) {
        best = p
        break
      }
    }
    const had = applied.get(proxy)
    if (had && had.seq > best.seq) best = had
    applied.set(proxy, best)
    return best.config
  }
  const proxiesSeen = new Set<string>([GATEWAY_PROXY])
  const proxyOf = (pod: KubeObject): string => `${pod.metadata.name}.${pod.metadata.namespace ?? 'default'}`

  // ---- routing against the proxy's config and the current endpoints ----
  const serviceOf = (name: string, namespace: string): KubeObject | undefined =>
    store.get(REFS.services, namespace, name)

  function ingressWorkloadLabels(): Array<Record<string, string>> {
    const sets: Array<Record<string, string>> = []
    for (const svc of store.list(REFS.services)) {
      if (!isIngressGatewayService(svc)) continue
      sets.push(svc.metadata.labels ?? {}, strMap(spec(svc)['selector']))
    }
    for (const d of store.list(REFS.deployments)) {
      const labels = strMap(obj(obj(spec(d)['template'])['metadata'])['labels'])
      if (INGRESS_GATEWAY_LABELS.includes(labels['istio'] ?? '')) sets.push(labels)
    }
    return sets
  }

  /** VirtualServices bound to a Gateway served by the ingress gateway, for this Host; most specific host first. */
  function gatewayRoutes(host: string, view: ConfigView): Array<{ vs: KubeObject; gateways: Set<string> }> {
    const workloads = ingressWorkloadLabels()
    const gateways = view.gateways.filter((g) => {
      const selector = strMap(spec(g)['selector'])
      if (Object.keys(selector).length === 0 || !workloads.some((l) => labelsMatch(selector, l))) return false
      return arr(spec(g)['servers']).some((s) =>
        arr(obj(s)['hosts']).some((h) => typeof h === 'string' && hostMatches(h, host)),
      )
    })
    const out: Array<{ vs: KubeObject; gateways: Set<string>; rank: number; created: string }> = []
    for (const vs of view.virtualServices) {
      const ns = vs.metadata.namespace ?? 'default'
      const bound = new Set<string>()
      for (const ref of arr(spec(vs)['gateways'])) {
        if (typeof ref !== 'string' || ref === 'mesh') continue
        const [gns, gname] = ref.includes('/') ? (ref.split('/') as [string, string]) : [ns, ref]
        if (gateways.some((g) => g.metadata.name === gname && g.metadata.namespace === gns))
          bound.add(ref).add(`${gns}/${gname}`)
      }
      const hosts = arr(spec(vs)['hosts']).filter((h): h is string => typeof h === 'string' && hostMatches(h, host))
      if (bound.size === 0 || hosts.length === 0) continue
      out.push({
        vs,
        gateways: bound,
        rank: Math.max(...hosts.map(hostSpecificity)),
        created: vs.metadata.creationTimestamp ?? '',
      })
    }
    out.sort(
      (a, b) =>
        b.rank - a.rank || a.created.localeCompare(b.created) || a.vs.metadata.name.localeCompare(b.vs.metadata.name),
    )
    return out
  }

  /** Mesh-internal VirtualServices for a service (no `gateways`, or `mesh` among them). */
  function meshRoutes(service: string, namespace: string, view: ConfigView): KubeObject[] {
    const fqdn = `${service}.${namespace}.svc.cluster.local`
    return view.virtualServices
      .filter((vs) => {
        const gws = arr(spec(vs)['gateways'])
        if (gws.length > 0 && !gws.includes('mesh')) return false
        const ns = vs.metadata.namespace ?? 'default'
        return arr(spec(vs)['hosts']).some(
          (h) => typeof h === 'string' && h !== '*' && resolveHost(h, ns).fqdn === fqdn,
        )
      })
      .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''))
  }

  function subsetLabels(
    fqdn: string,
    serviceNs: string,
    subset: string,
    view: ConfigView,
  ): Record<string, string> | undefined {
    const rules = view.destinationRules
      .filter(
        (dr) =>
          typeof spec(dr)['host'] === 'string' &&
          resolveHost(spec(dr)['host'] as string, dr.metadata.namespace ?? 'default').fqdn === fqdn,
      )
      .sort((a, b) => Number(b.metadata.namespace === serviceNs) - Number(a.metadata.namespace === serviceNs))
    for (const dr of rules) {
      const s = arr(spec(dr)['subsets'])
        .map(obj)
        .find((x) => x['name'] === subset)
      if (s) return strMap(s['labels'])
    }
    return undefined
  }

  /** Destination (host, subset) => a ready pod, picked at random, or Envoy's 503. */
  function backend(dest: Obj, vsNamespace: string, view: ConfigView): Backend {
    const host = str(dest['host'])
    if (!host) return NO_HEALTHY_UPSTREAM
    const { name, namespace, fqdn } = resolveHost(host, vsNamespace)
    const svc = serviceOf(name, namespace)
    if (!svc) return NO_HEALTHY_UPSTREAM
    let want = strMap(spec(svc)['selector'])
    const subset = str(dest['subset'])
    if (subset !== undefined) {
      const labels = subsetLabels(fqdn, namespace, subset, view)
      if (!labels) return NO_HEALTHY_UPSTREAM
      want = { ...want, ...labels }
    }
    const pod = readyPod(namespace, name, want)
    if (!pod) return NO_HEALTHY_UPSTREAM
    return { ok: true, pod, service: name, namespace, version: pod.metadata.labels?.['version'] ?? 'unknown' }
  }

  /** A ready pod of `namespace` with the labels `want` (none: no endpoint), picked at random per Service. */
  function readyPod(namespace: string, name: string, want: Record<string, string>): KubeObject | undefined {
    if (Object.keys(want).length === 0) return undefined
    const pods = store
      .list(REFS.pods, namespace)
      .filter((p) => podReady(p) && labelsMatch(want, p.metadata.labels ?? {}))
    return pods[Math.floor(stream(`pods ${namespace}/${name}`)() * pods.length)]
  }

  /**
   * A Service backend of an HTTPRoute: a ready pod its selector picks. No such Service: 500 (Istio answers a
   * Gateway API route's missing cluster with 500, route.go ClusterNotFoundResponseCode); no ready endpoint: Envoy's 503.
   */
  function serviceBackend(name: string, namespace: string): Backend {
    const svc = serviceOf(name, namespace)
    if (!svc) return { ok: false, status: 500, body: '' }
    const pod = readyPod(namespace, name, strMap(spec(svc)['selector']))
    if (!pod) return NO_HEALTHY_UPSTREAM
    const l = pod.metadata.labels ?? {}
    // The application a backend Service (reviews-v2) fronts is its pods' `app` (reviews): what they serve.
    return { ok: true, pod, service: l['app'] ?? name, namespace, version: l['version'] ?? 'unknown' }
  }

  /** Routing by HTTPRoutes (all attached to one parent): the rule of highest precedence that matches, its backend. */
  function viaHttpRoutes(routes: KubeObject[], r: HttpRequestFacts): Backend {
    const c = selectRule(orderCandidates(routes), r)
    // "When no rules matching a request have been successfully attached to the parent ... 404" (httproute_types.go).
    if (!c) return { ok: false, status: 404, body: '' }
    const choice = chooseBackend(c, r, stream(`httproute ${c.route.metadata.namespace}/${c.route.metadata.name}`))
    if (choice.kind === 'direct') return { ok: false, status: choice.status, body: '', headers: choice.headers }
    if (choice.kind === 'invalid') return { ok: false, status: 500, body: '' }
    return serviceBackend(choice.name, choice.namespace)
  }

  /** Whether a Gateway API Gateway is of a class Istio's gateway controller implements (read live, like istiod). */
  function istioGateway(gw: KubeObject): boolean {
    const cls = store.get(REFS.gatewayClasses, undefined, str(spec(gw)['gatewayClassName']) ?? '')
    return cls !== undefined && spec(cls)['controllerName'] === ISTIO_GATEWAY_CONTROLLER
  }

  /** HTTPRoutes programmed for an Istio-implemented Gateway API Gateway, admitting this Host. */
  function gatewayHttpRoutes(host: string, view: ConfigView): KubeObject[] {
    if (!gatewayApi || flavor === 'linkerd') return []
    const gws = view.gatewayApiGateways.filter(istioGateway)
    return view.httpRoutes
      .filter(
        ({ route, parents }) =>
          hostnameAdmits(route, host) &&
          parents.some((p) => gws.some((g) => parentIsGateway(p, route.metadata.namespace ?? 'default', g))),
      )
      .map((x) => x.route)
  }

  /** HTTPRoutes programmed for this Service as their parent (GAMMA), for calls to its port 9080. */
  function serviceHttpRoutes(service: string, namespace: string, view: ConfigView): KubeObject[] {
    if (!gatewayApi) return []
    return view.httpRoutes
      .filter(({ route, parents }) =>
        parents.some((p) => parentIsService(p, route.metadata.namespace ?? 'default', service, namespace, 9080)),
      )
      .map((x) => x.route)
  }

  /**
   * How a call from a pod to `service` travels, by data plane: the proxy whose config routes it (undefined: none, L4
   * only) and which telemetry it yields. Istio ambient: L7 only through the waypoint the Service (or its namespace)
   * uses (layouts.ts waypointOf); without one, ztunnel forwards to the Service's endpoints.
   */
  function hopOf(service: string, namespace: string, source: KubeObject): { hop: Hop; proxy?: string } | 'broken' {
    if (flavor === 'linkerd') return { hop: 'linkerd', proxy: proxyOf(source) }
    if (flavor === 'istio-sidecar') return { hop: 'sidecar', proxy: proxyOf(source) }
    const wp = waypointOf(store, service, namespace)
    if (!wp) return { hop: 'ztunnel' }
    if (!wp.ready) return 'broken'
    return { hop: 'waypoint', proxy: `${wp.pod}.${wp.namespace}` }
  }

  /**
   * A call to `service` as the proxy that routes it sees it: Linkerd and Istio (sidecar or waypoint) by the HTTPRoutes
   * whose parent is the Service, when there are any; Istio then by its VirtualService (a route converted from an
   * HTTPRoute is selected before the VirtualServices of the same host, and a mesh host takes one route: no merging:
   * istio/istio pilot/pkg/model/virtualservice.go SelectVirtualServices, gateway-semantics routes of the proxy's
   * namespace first; istio/istio#36621); no route: any ready pod of the Service.
   */
  function callTarget(service: string, namespace: string, r: RouteRequest, view: ConfigView | undefined): Backend {
    if (!view) return backend({ host: service }, namespace, (pushes.at(-1) as { config: ConfigView }).config)
    const gamma = serviceHttpRoutes(service, namespace, view)
    if (gamma.length > 0) return viaHttpRoutes(gamma, r)
    if (flavor === 'linkerd') return backend({ host: service }, namespace, view)
    const routes = meshRoutes(service, namespace, view)
    if (routes.length === 0) return backend({ host: service }, namespace, view)
    for (const vs of routes) {
      for (const route of arr(spec(vs)['http']).map(obj)) {
        if (!routeMatches(route, r)) continue
        const dest = pickWeighted(route, stream(`route ${vs.metadata.namespace}/${vs.metadata.name}`))
        return dest ? backend(obj(dest['destination']), vs.metadata.namespace ?? namespace, view) : NO_HEALTHY_UPSTREAM
      }
    }
    return { ok: false, status: 404, body: '' }
  }

  /** Counts the call, applies the version's fault: true when the call fails. */
  async function serve(
    b: Extract<Backend, { ok: true }>,
    source: Workload = ingressSource(),
    hop: Hop = flavor === 'linkerd' ? 'linkerd' : flavor === 'istio-ambient' ? 'ztunnel' : 'sidecar',
    sourceReports = true,
  ): Promise<boolean> {
    const started = performance.now()
    const failed = await applyFault(b)
    metrics.record({
      hop,
      sourceReports,
      source,
      destination: { ...workloadOf(b.pod, b.service), service: b.service, serviceNamespace: b.namespace },
      responseCode: failed ? 500 : 200,
      responseFlags: '-',
      durationMs: performance.now() - started,
      reachedDestination: true,
    })
    return failed
  }

  async function applyFault(b: Extract<Backend, { ok: true }>): Promise<boolean> {
    const key = `${b.service}-${b.version}`
    served[key] = (served[key] ?? 0) + 1
    const f = faults.get(key)
    if (!f) return false
    if (f.delayMs) await sleep(f.delayMs)
    return f.errorRate !== undefined && f.errorRate > 0 && stream(`fault ${key}`)() < f.errorRate
  }

  // ---- BookInfo ----
  async function productpage(req: IncomingMessage, body: Buffer, url: URL, pod: KubeObject): Promise<Reply> {
    const ns = pod.metadata.namespace ?? opts.namespace ?? 'bookinfo'
    const path = url.pathname
    const html = { 'content-type': 'text/html; charset=utf-8' }
    const cookies = parseCookies(req.headers.cookie)
    const user = cookies['session'] || undefined

    if (path === '/login') {
      const form = new URLSearchParams(req.method === 'POST' ? body.toString('utf8') : url.search)
      const name = form.get('username') ?? ''
      const headers: Record<string, string> = { location: '/productpage', 'content-type': 'text/html; charset=utf-8' }
      if (name) headers['set-cookie'] = `session=${encodeURIComponent(name)}; Path=/`
      return { status: 302, headers, body: redirectPage('/productpage') }
    }
    if (path === '/logout') {
      return {
        status: 302,
        headers: {
          location: '/productpage',
          'set-cookie': 'session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/',
          ...html,
        },
        body: redirectPage('/productpage'),
      }
    }
    if (path.startsWith('/static/')) {
      const type = path.endsWith('.css')
        ? 'text/css; charset=utf-8'
        : path.endsWith('.js')
          ? 'text/javascript; charset=utf-8'
          : 'application/octet-stream'
      return { status: 200, headers: { 'content-type': type }, body: `/* ${path} */\n` }
    }

    // Like the real productpage, calls to other services carry only the headers it forwards (tracing, user-agent,
    // cookie, authorization...) — plus the preview header, as an application set up for istio-canary previews does —
    // and end-user when signed in.
    const headers: Record<string, string | undefined> = {}
    for (const [k, v] of Object.entries(req.headers))
      if (FORWARDED.has(k) && !HOP_BY_HOP.has(k)) headers[k] = Array.isArray(v) ? v.join(', ') : v
    if (user) headers['end-user'] = user
    const call = async (service: string, callPath: string): Promise<Backend | 'failed'> => {
      const r: RouteRequest = {
        path: callPath,
        query: new URLSearchParams(),
        method: 'GET',
        authority: `${service}:9080`,
        headers,
        gateways: new Set(['mesh']),
        sourceLabels: pod.metadata.labels ?? {},
      }
      const how = hopOf(service, ns, pod)
      if (how === 'broken') return WAYPOINT_UNREACHABLE
      if (how.proxy) proxiesSeen.add(how.proxy)
      const b = callTarget(service, ns, r, how.proxy === undefined ? undefined : viewOf(how.proxy))
      if (!b.ok) return b
      return (await serve(b, workloadOf(pod, 'productpage'), how.hop, flavor !== 'istio-ambient')) ? 'failed' : b
    }

    const products = path.match(/^\/api\/v1\/products(?:\/(\d+)(?:\/(reviews|ratings))?)?$/)
    if (products) {
      const json = { 'content-type': 'application/json' }
      const [, id, part] = products
      if (id === undefined) return { status: 200, headers: json, body: JSON.stringify([PRODUCT]) }
      if (part === undefined) return { status: 200, headers: json, body: JSON.stringify(DETAILS(Number(id))) }
      const reviews = await call('reviews', `/reviews/${id}`)
      if (reviews === 'failed')
        return {
          status: 500,
          headers: json,
          body: JSON.stringify({ error: 'Sorry, product reviews are currently unavailable for this book.' }),
        }
      if (!reviews.ok) return { status: reviews.status, headers: { 'content-type': 'text/plain' }, body: reviews.body }
      const payload = reviewsPayload(id, reviews)
      return {
        status: 200,
        headers: json,
        body: JSON.stringify(
          part === 'reviews' ? payload : { id: Number(id), ratings: { Reviewer1: 5, Reviewer2: 4 } },
        ),
      }
    }
    if (path !== '/productpage' && path !== '/' && path !== '/index.html') {
      return { status: 404, headers: html, body: NOT_FOUND_PAGE }
    }
    if (path !== '/productpage') {
      return {
        status: 200,
        headers: html,
        body: page(
          user,
          '<p><a href="productpage?u=normal">Normal user</a></p><p><a href="productpage?u=test">Test user</a></p>',
        ),
      }
    }

    const details = await call('details', '/details/0')
    let reviews = await call('reviews', '/reviews/0')
    if (opts.reviewsErrors === 'bookinfo' && (reviews === 'failed' || !reviews.ok))
      reviews = await call('reviews', '/reviews/0')
    if (opts.reviewsErrors !== 'bookinfo' && reviews !== 'failed' && !reviews.ok && reviews.status === 503) {
      return { status: 503, headers: { 'content-type': 'text/plain' }, body: reviews.body }
    }
    const detailsHtml = details !== 'failed' && details.ok ? detailsBlock() : ERROR_BLOCK('details')
    const reviewsHtml = reviews !== 'failed' && reviews.ok ? reviewsBlock(reviews) : ERROR_BLOCK('reviews')
    const status = (reviews !== 'failed' && reviews.ok) || opts.reviewsErrors === 'bookinfo' ? 200 : 500
    return { status, headers: html, body: page(user, productBody(detailsHtml, reviewsHtml)) }
  }

  /** A service other than productpage reached straight from the gateway. */
  function directService(b: Extract<Backend, { ok: true }>, url: URL): Reply {
    const json = { 'content-type': 'application/json' }
    const m = url.pathname.match(/^\/(reviews|details|ratings)\/(\d+)$/)
    if (m && m[1] === b.service) {
      const id = m[2]!
      const body =
        b.service === 'reviews'
          ? reviewsPayload(id, b)
          : b.service === 'details'
            ? DETAILS(Number(id))
            : { id: Number(id), ratings: { Reviewer1: 5, Reviewer2: 4 } }
      return { status: 200, headers: json, body: JSON.stringify(body) }
    }
    if (url.pathname === '/health') return { status: 200, headers: json, body: '{"status":"OK"}' }
    return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'Not Found' }
  }

  async function handle(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const started = Date.now()
    const url = new URL(req.url ?? '/', 'http://gateway')
    const authority = req.headers.host ?? ''
    const host = authority.replace(/:\d+$/, '')
    if (!req.headers['x-request-id']) req.headers['x-request-id'] = randomUUID()
    const headers: Record<string, string | undefined> = {}
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v
    const base: Omit<RouteRequest, 'gateways'> = {
      path: url.pathname,
      query: url.searchParams,
      method: req.method ?? 'GET',
      authority,
      headers,
      sourceLabels: {},
    }

    let reply: Reply | undefined
    let upstream = false
    const view = viewOf(GATEWAY_PROXY)
    /** The reply of the upstream a route picked, or the proxy's own answer when there is none. */
    const answer = async (b: Backend): Promise<Reply> => {
      if (!b.ok)
        return { status: b.status, headers: { 'content-type': 'text/plain', ...(b.headers ?? {}) }, body: b.body }
      upstream = true
      if (await serve(b))
        return { status: 500, headers: { 'content-type': 'text/html; charset=utf-8' }, body: INTERNAL_ERROR_PAGE }
      return b.service === 'productpage' ? await productpage(req, body, url, b.pod) : directService(b, url)
    }
    if (flavor === 'linkerd') {
      // Linkerd has no ingress of its own (https://linkerd.io/2/tasks/using-ingress/: an ingress controller, meshed):
      // the layout's plain ingress sends every request to productpage:9080, as a one-rule Ingress does.
      reply = await answer(serviceBackend('productpage', opts.namespace ?? 'bookinfo'))
    } else {
      // Gateway API routes of a Gateway first (this one server stands for both ingress gateways: README).
      const routes = gatewayHttpRoutes(host, view)
      if (routes.length > 0) reply = await answer(viaHttpRoutes(routes, base))
    }
    if (!reply)
      outer: for (const { vs, gateways } of gatewayRoutes(host, view)) {
        for (const route of arr(spec(vs)['http']).map(obj)) {
          if (!routeMatches(route, { ...base, gateways })) continue
          if (route['directResponse'] !== undefined) {
            const d = obj(route['directResponse'])
            reply = {
              status: typeof d['status'] === 'number' ? d['status'] : 200,
              headers: { 'content-type': 'text/plain' },
              body: str(obj(d['body'])['string']) ?? '',
            }
            break outer
          }
          if (route['redirect'] !== undefined) {
            const rd = obj(route['redirect'])
            const location = `${str(rd['authority']) ? `http://${str(rd['authority'])}` : ''}${str(rd['uri']) ?? url.pathname}`
            reply = {
              status: typeof rd['redirectCode'] === 'number' ? rd['redirectCode'] : 301,
              headers: { location },
              body: '',
            }
            break outer
          }
          const dest = pickWeighted(route, stream(`route ${vs.metadata.namespace}/${vs.metadata.name}`))
          const b = dest
            ? backend(obj(dest['destination']), vs.metadata.namespace ?? 'default', view)
            : NO_HEALTHY_UPSTREAM
          reply = await answer(b)
          break outer
        }
      }
    reply ??= { status: 404, headers: {}, body: '' }
    const out: Record<string, string | string[] | number> = {
      ...reply.headers,
      'content-length': Buffer.byteLength(reply.body),
      date: new Date().toUTCString(),
      server: 'istio-envoy',
    }
    if (upstream) out['x-envoy-upstream-service-time'] = String(Date.now() - started)
    res.writeHead(reply.status, out)
    res.end(req.method === 'HEAD' ? undefined : reply.body)
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks)).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain', server: 'istio-envoy' })
        res.end(String(err))
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
  const metricsEndpoint = await serveMetrics(metrics)
  for (const svc of store.list(REFS.services)) reconcileLoadBalancer(svc, true)
  store.on('write', onWrite)
  store.on('write', onConfigWrite)

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    served,
    metrics,
    metricsEndpoint,
    setPropagation(p) {
      propagation = { ...propagation, ...p }
      schedule()
    },
    flush() {
      if (burst?.timer) clearTimeout(burst.timer)
      burst = undefined
      pushes.splice(0, pushes.length, { at: Number.NEGATIVE_INFINITY, seq: pushSeq++, config: snapshot() })
      applied.clear()
    },
    stale() {
      const latest = pushes.at(-1) as { config: ConfigView }
      return [...proxiesSeen].filter((p) => viewOf(p) !== latest.config || burst !== undefined).sort()
    },
    setFault(service, version, fault) {
      if (fault) faults.set(`${service}-${version}`, { ...fault })
      else faults.delete(`${service}-${version}`)
    },
    close: () =>
      new Promise<void>((resolve) => {
        store.off('write', onWrite)
        store.off('write', onConfigWrite)
        if (burst) clearTimeout(burst.timer)
        void metricsEndpoint.close()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

// ---------------------------------------------------------------------------------------------
// BookInfo productpage content (shaped like the real productpage templates)

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=')
    if (i > 0) out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim())
  }
  return out
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const PRODUCT = {
  id: 0,
  title: 'The Comedy of Errors',
  descriptionHtml:
    '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare\'s</b> early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play.',
}

const DETAILS = (id: number): Obj => ({
  id,
  author: 'William Shakespeare',
  year: 1595,
  type: 'paperback',
  pages: 200,
  publisher: 'PublisherA',
  language: 'English',
  'ISBN-10': '1234567890',
  'ISBN-13': '123-1234567890',
})

const REVIEWS = [
  {
    reviewer: 'Reviewer1',
    text: 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!',
    stars: 5,
  },
  {
    reviewer: 'Reviewer2',
    text: 'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.',
    stars: 4,
  },
]

/** v1 shows no ratings, v2 black stars, v3 red stars. */
const starColor = (version: string): string | undefined =>
  version === 'v2' ? 'black' : version === 'v3' ? 'red' : undefined

function reviewsPayload(id: string, b: Extract<Backend, { ok: true }>): Obj {
  const color = starColor(b.version)
  return {
    id,
    podname: b.pod.metadata.name,
    clustername: 'null',
    reviews: REVIEWS.map((r) => ({
      reviewer: r.reviewer,
      text: r.text,
      ...(color ? { rating: { stars: r.stars, color } } : {}),
    })),
  }
}

function detailsBlock(): string {
  const d = DETAILS(0)
  return `<h4 class="text-center text-primary">Book Details</h4>
      <dl>
        <dt>Type:</dt>${String(d['type'])}
        <dt>Pages:</dt>${String(d['pages'])}
        <dt>Publisher:</dt>${String(d['publisher'])}
        <dt>Language:</dt>${String(d['language'])}
        <dt>ISBN-10:</dt>${String(d['ISBN-10'])}
        <dt>ISBN-13:</dt>${String(d['ISBN-13'])}
      </dl>`
}

function reviewsBlock(b: Extract<Backend, { ok: true }>): string {
  const color = starColor(b.version)
  const quotes = REVIEWS.map((r) => {
    const stars = color
      ? `\n        <font color="${color}">${'<span class="glyphicon glyphicon-star"></span>'.repeat(r.stars)}${'<span class="glyphicon glyphicon-star-empty"></span>'.repeat(5 - r.stars)}</font>`
      : ''
    return `      <blockquote>
        <p>${esc(r.text)}</p>
        <small>${r.reviewer}</small>${stars}
      </blockquote>`
  }).join('\n')
  return `<h4 class="text-center text-primary">Book Reviews</h4>
${quotes}
      <dl>
        <dt>Reviews served by:</dt>
        <u>${esc(b.pod.metadata.name)}</u>
      </dl>`
}

const ERROR_BLOCK = (
  what: 'details' | 'reviews',
): string => `<h4 class="text-center text-primary">Error fetching product ${what}!</h4>
      <p>Sorry, product ${what} are currently unavailable for this book.</p>`

function productBody(details: string, reviews: string): string {
  return `<div class="container-fluid">
  <div class="row">
    <div class="col-md-12">
      <h3 class="text-center text-primary">${PRODUCT.title}</h3>
      <p>Summary: ${PRODUCT.descriptionHtml}</p>
    </div>
  </div>
  <div class="row">
    <div class="col-md-6">
      ${details}
    </div>
    <div class="col-md-6">
      ${reviews}
    </div>
  </div>
</div>`
}

function page(user: string | undefined, content: string): string {
  const account = user
    ? `<p class="navbar-text navbar-right">
      <i class="glyphicon glyphicon-user" aria-hidden="true"></i>
      <span style="padding-left: 5px;">${esc(user)} ( <a href="logout">sign out</a> )</span>
    </p>`
    : '<button type="button" class="btn btn-default navbar-btn navbar-right" data-toggle="modal" href="#login-modal">Sign in</button>'
  return `<!DOCTYPE html>
<html>
  <head>
    <title>Simple Bookstore App</title>
    <meta charset="utf-8">
    <meta http-equiv="X-UA-Compatible" content="IE=edge">
    <meta name="viewport" content="width=device-width, initial-scale=1.0">
    <link rel="stylesheet" href="static/bootstrap/css/bootstrap.min.css">
  </head>
  <body>
<nav class="navbar navbar-inverse navbar-static-top">
  <div class="container">
    <div class="navbar-header">
      <a class="navbar-brand" href="#">BookInfo Sample</a>
    </div>
    ${account}
  </div>
</nav>
${content}
  </body>
</html>
`
}

const redirectPage = (to: string): string =>
  `<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target URL: <a href="${to}">${to}</a>. If not, click the link.\n`

const NOT_FOUND_PAGE =
  '<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n'

const INTERNAL_ERROR_PAGE =
  '<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.</p>\n'
