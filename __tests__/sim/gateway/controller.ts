// A simulated Gateway API controller: what istiod (Istio) or Linkerd's policy controller writes into the status of
// GatewayClasses, Gateways and HTTPRoutes after each change, a while after it, through the status subresource.
// Semantics from kubernetes-sigs/gateway-api:
//  - apis/v1/shared_types.go: RouteParentStatus (parentRef as in spec, controllerName, conditions); condition types
//    Accepted (reasons Accepted / NotAllowedByListeners / NoMatchingParent / UnsupportedValue / Pending) and
//    ResolvedRefs (ResolvedRefs / RefNotPermitted / InvalidKind / BackendNotFound); "A Route MUST be considered
//    Accepted if at least one of the Route's rules is implemented": an unresolvable backend leaves the route
//    Accepted with ResolvedRefs False (apis/v1/httproute_types.go, HTTPBackendRef: requests to an invalid backend get
//    500s, the rest is routed).
//  - apis/v1/gateway_types.go: Gateway conditions Accepted / Programmed (reasons Accepted, Programmed);
//    apis/v1/gatewayclass_types.go: GatewayClass Accepted (reason Accepted), for the classes whose
//    spec.controllerName is the controller's.
//  - every condition is a metav1.Condition: observedGeneration = the generation it was computed from;
//    lastTransitionTime changes only when its status changes.
//  - cross-namespace backendRefs need a ReferenceGrant (not served here): always RefNotPermitted.
// Controller names: Istio's gateway controller `istio.io/gateway-controller` (the GatewayClass `istio`; istio/istio
// pkg/config/constants ManagedGatewayController) reports on Gateway parents and on mesh (GAMMA) parents alike: the
// request-routing task of istio.io (content/*/docs/tasks/traffic-management/request-routing, Gateway API tab) shows
// the reviews route's Service parent with `controllerName: istio.io/gateway-controller`, "Route was valid" and "All
// references resolved" (`istio.io/mesh-controller` is the class of waypoints, istio-waypoint, not a route's reporter
// in sidecar mode). Linkerd: `linkerd.io/policy-controller` (linkerd2 policy-controller POLICY_CONTROLLER_NAME),
// Service parents only (it implements no Gateway).
// Delay: istiod reconciles config after its debounce (PILOT_DEBOUNCE_AFTER, 100 ms by default, pilot/pkg/features)
// and writes status from a worker queue afterwards. The default, 300 ms, is that debounce plus the status write: an
// estimate, not a measurement (the same is used for Linkerd); 0 writes on the next tick.
// Choices not looked up: a parent Gateway of another class gets no entry from this controller; a parent Gateway or
// Service that does not exist gets Accepted False NoMatchingParent (what Istio writes for a missing parent may differ).
import type { KubeObject, KubeStore, WriteEvent } from '../kube/store.js'
import { REFS } from '../kube/refs.js'
import { recordManagedFields } from '../kube/server.js'
import { GATEWAY_API_GROUP } from './schema.js'

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const each = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : [])

export const ISTIO_GATEWAY_CONTROLLER = 'istio.io/gateway-controller'
/** The controller of Istio's waypoint class istio-waypoint (istio/istio pkg/config/constants ManagedGatewayMeshController). */
export const ISTIO_MESH_CONTROLLER = 'istio.io/mesh-controller'
export const LINKERD_POLICY_CONTROLLER = 'linkerd.io/policy-controller'
export const DEFAULT_STATUS_DELAY_MS = 300

export interface GatewayControllerOptions {
  /** Whose controller: Istio (Gateways of controllerName istio.io/gateway-controller, and Service parents) or Linkerd. */
  mesh?: 'istio' | 'linkerd'
  /** Time from a change to its status write. Default DEFAULT_STATUS_DELAY_MS. */
  delayMs?: number
  /**
   * Istio with ambient enabled: each route parent also gets ResolvedWaypoints. istiod writes it with status True
   * and reason ResolvedWaypoints whatever it finds, the message telling: "All waypoints resolved", or for a Service
   * parent without an istio.io/use-waypoint label on it or its namespace "istio.io/use-waypoint label missing from
   * parent and parent namespace; in ambient mode, route will not be respected" (istio/istio
   * pilot/pkg/config/kube/gateway/conditions.go: the condition carries the WaypointError's message, no error).
   */
  ambient?: boolean
}

export interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason: string
  message: string
  observedGeneration: number
  lastTransitionTime: string
}

/** A planned rejection of a route's next generation (the "parent rejects the change" fault). */
interface Rejection {
  after: number
  reason: string
  message: string
}

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z')
const key = (ns: string | undefined, name: string): string => `${ns ?? ''}/${name}`

/** Conditions with lastTransitionTime kept where the status did not change (metav1.Condition semantics). */
function carry(prev: unknown, next: Omit<Condition, 'lastTransitionTime'>[]): Condition[] {
  const old = each(prev)
  return next.map((c) => {
    const o = old.find((x) => x['type'] === c.type)
    const same = o !== undefined && o['status'] === c.status && typeof o['lastTransitionTime'] === 'string'
    return { ...c, lastTransitionTime: same ? String(o['lastTransitionTime']) : now() }
  })
}

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

export class GatewayApiController {
  readonly mesh: 'istio' | 'linkerd'
  readonly ambient: boolean
  delayMs: number
  private stopped = false
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly rejections = new Map<string, Rejection>()
  /**
   * When each object's current generation was first seen: a pass started by an earlier write must not observe a
   * generation younger than the delay (a controller reports a spec change only after it has processed it).
   */
  private readonly seen = new Map<string, { generation: number; at: number }>()
  private readonly listener = (ev: WriteEvent): void => this.onWrite(ev)
  /** Status writes made, in order (for tests: how many, of what). */
  readonly writes: Array<{ resource: string; namespace: string | undefined; name: string; generation: number }> = []

  constructor(
    private readonly store: KubeStore,
    opts: GatewayControllerOptions = {},
  ) {
    this.mesh = opts.mesh ?? 'istio'
    this.ambient = opts.ambient ?? false
    this.delayMs = opts.delayMs ?? DEFAULT_STATUS_DELAY_MS
    store.on('write', this.listener)
    // What is there already is reconciled as a starting controller does (after the same delay).
    this.schedule()
  }

  /** The controllerName of a parent: Istio's gateway or mesh controller, or Linkerd's policy controller. */
  controllerFor(parentKind: 'Gateway' | 'Service'): string | undefined {
    if (this.mesh === 'linkerd') return parentKind === 'Service' ? LINKERD_POLICY_CONTROLLER : undefined
    return ISTIO_GATEWAY_CONTROLLER
  }

  /**
   * Fault: every parent of this controller rejects the route's next spec change (the generation after the current
   * one): Accepted False for it; the generation after that (a revert) is accepted again.
   */
  rejectNextGeneration(namespace: string, name: string, reason = 'UnsupportedValue', message?: string): void {
    const cur = this.store.get(REFS.httpRoutes, namespace, name)
    if (!cur) throw new Error(`no HTTPRoute ${namespace}/${name} to reject`)
    this.rejections.set(key(namespace, name), {
      after: cur.metadata.generation ?? 1,
      reason,
      message: message ?? 'the parent rejected this generation of the route (simulated)',
    })
  }

  /** Fault: the controller stops (no status is written any more, pending writes are dropped); resume() restarts it. */
  stop(): void {
    this.stopped = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
  }

  resume(): void {
    this.stopped = false
    this.schedule()
  }

  /** Every fault gone: planned rejections dropped, a stopped controller resumed (sim.faults.clear()). */
  clearFaults(): void {
    this.rejections.clear()
    if (this.stopped) this.resume()
  }

  /** Whether status writes are pending. */
  get busy(): boolean {
    return this.timers.size > 0
  }

  /** Detaches from the store and drops pending writes. */
  close(): void {
    this.stop()
    this.store.off('write', this.listener)
  }

  private onWrite(ev: WriteEvent): void {
    if (ev.ref.group === GATEWAY_API_GROUP) {
      const k = `${ev.ref.resource}/${ev.namespace ?? ''}/${ev.name}`
      const generation = ev.object.metadata.generation ?? 1
      if (ev.verb === 'delete') this.seen.delete(k)
      else if (this.seen.get(k)?.generation !== generation) this.seen.set(k, { generation, at: Date.now() })
    }
    const watched = ['services', 'namespaces', 'pods']
    if (ev.ref.group === GATEWAY_API_GROUP || (ev.ref.group === '' && watched.includes(ev.ref.resource))) {
      this.schedule()
    }
  }

  private schedule(): void {
    if (this.stopped) return
    const t = setTimeout(() => {
      this.timers.delete(t)
      if (!this.stopped) this.reconcileAll()
    }, this.delayMs)
    this.timers.add(t)
  }

  /** One pass over every Gateway API object: the status each should have now, written where it differs. */
  reconcileAll(): void {
    for (const gc of this.store.list(REFS.gatewayClasses)) this.reconcileClass(gc)
    for (const gw of this.store.list(REFS.gatewayApiGateways)) this.reconcileGateway(gw)
    for (const hr of this.store.list(REFS.httpRoutes)) this.reconcileRoute(hr)
  }

  private ownsClass(className: unknown): boolean {
    if (typeof className !== 'string') return false
    const gc = this.store.get(REFS.gatewayClasses, undefined, className)
    const spec = isObj(gc?.['spec']) ? (gc['spec'] as Obj) : {}
    return this.ownsController(spec['controllerName'])
  }

  /** Istio's controller handles its gateway class and (istiod's waypoint support) the waypoint class. */
  private ownsController(name: unknown): boolean {
    if (this.mesh === 'linkerd') return false
    return name === ISTIO_GATEWAY_CONTROLLER || name === ISTIO_MESH_CONTROLLER
  }

  /**
   * Whether a route is programmed for this parent now: the Accepted condition this controller reports for the
   * route's current generation is True (what the data plane gets: mesh/mesh.ts `routeProgrammed`). Parents of other
   * controllers: true when they exist (not this controller's to say).
   */
  programmed(route: KubeObject, parentRef: Obj): boolean {
    const ns = route.metadata.namespace ?? 'default'
    const accepted = this.acceptance(parentRef, ns)
    if (!accepted) {
      const pns = typeof parentRef['namespace'] === 'string' ? parentRef['namespace'] : ns
      const ref = parentRef['kind'] === 'Service' ? REFS.services : REFS.gatewayApiGateways
      return this.store.get(ref, pns, String(parentRef['name'])) !== undefined
    }
    if (accepted.condition.status !== 'True') return false
    const rejection = this.rejections.get(key(ns, route.metadata.name))
    return !(rejection && (route.metadata.generation ?? 1) === rejection.after + 1)
  }

  private writeStatus(ref: { group: string; resource: string }, cur: KubeObject, status: Obj): void {
    if (sameJson(cur['status'], status)) return
    const next: KubeObject = { ...cur, metadata: { ...cur.metadata }, status }
    recordManagedFields(cur, next, this.mesh === 'linkerd' ? 'policy-controller' : 'pilot-discovery', 'status')
    try {
      this.store.update(ref, next)
      this.writes.push({
        resource: ref.resource,
        namespace: cur.metadata.namespace,
        name: cur.metadata.name,
        generation: cur.metadata.generation ?? 1,
      })
    } catch {
      // A conflict with a concurrent write: that write schedules another pass.
    }
  }

  private reconcileClass(gc: KubeObject): void {
    if (this.tooYoung(REFS.gatewayClasses.resource, gc)) return
    const spec = isObj(gc['spec']) ? gc['spec'] : {}
    if (!this.ownsController(spec['controllerName'])) return
    const generation = gc.metadata.generation ?? 1
    const status = isObj(gc['status']) ? gc['status'] : {}
    const conditions = carry(status['conditions'], [
      {
        type: 'Accepted',
        status: 'True',
        reason: 'Accepted',
        message: 'Handled by Istio controller',
        observedGeneration: generation,
      },
    ])
    this.writeStatus(REFS.gatewayClasses, gc, { ...status, conditions })
  }

  private reconcileGateway(gw: KubeObject): void {
    if (this.tooYoung(REFS.gatewayApiGateways.resource, gw)) return
    const spec = isObj(gw['spec']) ? gw['spec'] : {}
    if (!this.ownsClass(spec['gatewayClassName'])) return
    const generation = gw.metadata.generation ?? 1
    const status = isObj(gw['status']) ? gw['status'] : {}
    // A waypoint is Programmed once its deployment has a ready pod (mesh/layouts.ts: a choice, not looked up).
    const waypoint = spec['gatewayClassName'] === 'istio-waypoint'
    const deployed =
      !waypoint ||
      this.store
        .list(REFS.pods, gw.metadata.namespace, `gateway.networking.k8s.io/gateway-name=${gw.metadata.name}`)
        .some((p) =>
          each((p['status'] as Obj | undefined)?.['conditions']).some(
            (c) => c['type'] === 'Ready' && c['status'] === 'True',
          ),
        )
    const conditions = carry(status['conditions'], [
      {
        type: 'Accepted',
        status: 'True',
        reason: 'Accepted',
        message: 'Resource accepted',
        observedGeneration: generation,
      },
      deployed
        ? {
            type: 'Programmed',
            status: 'True',
            reason: 'Programmed',
            message: 'Resource programmed, assigned to service(s)',
            observedGeneration: generation,
          }
        : {
            type: 'Programmed',
            status: 'False',
            reason: 'NoResources',
            message: `Deployment ${gw.metadata.name} has no ready replicas`,
            observedGeneration: generation,
          },
    ])
    const listeners = each(spec['listeners']).map((l) => ({
      name: l['name'],
      attachedRoutes: this.attachedRoutes(gw, String(l['name'])),
      supportedKinds: [{ group: GATEWAY_API_GROUP, kind: 'HTTPRoute' }],
      conditions: carry(
        each(status['listeners']).find((x) => x['name'] === l['name'])?.['conditions'],
        ['Accepted', 'Programmed', 'ResolvedRefs'].map((type) => ({
          type,
          status: 'True' as const,
          reason: type,
          message: 'No errors found',
          observedGeneration: generation,
        })),
      ),
    }))
    const addresses = waypoint ? undefined : this.addressesOf(gw)
    this.writeStatus(REFS.gatewayApiGateways, gw, {
      ...status,
      ...(addresses ? { addresses } : {}),
      conditions,
      listeners,
    })
  }

  /**
   * The addresses Istio publishes for an ingress Gateway: those of the Service its deployment controller made for it
   * (`<gateway>-<class>`, labelled gateway.networking.k8s.io/gateway-name), the load balancer's IP (type IPAddress)
   * or hostname (type Hostname), as in Istio's status golden files (pilot/pkg/config/kube/gateway/testdata/
   * *.status.yaml: `addresses: [{type: IPAddress, value: 1.2.3.4}]`). None while the Service has no address.
   */
  private addressesOf(gw: KubeObject): Array<{ type: string; value: string }> | undefined {
    const spec = (gw['spec'] ?? {}) as Obj
    const name = `${gw.metadata.name}-${String(spec['gatewayClassName'])}`
    const svc = this.store.get(REFS.services, gw.metadata.namespace, name)
    const ingress = each(((svc?.['status'] as Obj | undefined)?.['loadBalancer'] as Obj | undefined)?.['ingress'])
    const out = ingress.flatMap((i) =>
      typeof i['ip'] === 'string'
        ? [{ type: 'IPAddress', value: i['ip'] }]
        : typeof i['hostname'] === 'string'
          ? [{ type: 'Hostname', value: i['hostname'] }]
          : [],
    )
    return out.length > 0 ? out : undefined
  }

  /**
   * Routes attached to one listener: those of any namespace with a parentRef to this Gateway that names this listener
   * (or no sectionName) and that this controller accepts (ListenerStatus.attachedRoutes, apis/v1/gateway_types.go:
   * "the total number of Routes that have been successfully attached to this Listener").
   */
  private attachedRoutes(gw: KubeObject, listener: string): number {
    return this.store.list(REFS.httpRoutes).filter((hr) => {
      const routeNs = hr.metadata.namespace ?? 'default'
      return each((hr['spec'] as Obj | undefined)?.['parentRefs']).some(
        (p) =>
          p['group'] === GATEWAY_API_GROUP &&
          p['kind'] === 'Gateway' &&
          p['name'] === gw.metadata.name &&
          (p['namespace'] ?? routeNs) === gw.metadata.namespace &&
          (p['sectionName'] === undefined || p['sectionName'] === listener) &&
          this.acceptance(p, routeNs)?.condition.status === 'True',
      )
    }).length
  }

  /** Whether this object's generation has been seen for less than the delay (a later pass reconciles it). */
  private tooYoung(resource: string, o: KubeObject): boolean {
    const s = this.seen.get(`${resource}/${o.metadata.namespace ?? ''}/${o.metadata.name}`)
    return s !== undefined && s.generation === (o.metadata.generation ?? 1) && Date.now() - s.at < this.delayMs - 1
  }

  private reconcileRoute(hr: KubeObject): void {
    if (this.tooYoung(REFS.httpRoutes.resource, hr)) return
    const spec = isObj(hr['spec']) ? hr['spec'] : {}
    const ns = hr.metadata.namespace ?? 'default'
    const generation = hr.metadata.generation ?? 1
    const status = isObj(hr['status']) ? hr['status'] : {}
    const previous = each(status['parents'])
    const mine = new Set([this.controllerFor('Gateway'), this.controllerFor('Service')].filter(Boolean))
    // Entries of other controllers stay as they are (each controller owns its own entries).
    const parents: Obj[] = previous.filter((p) => !mine.has(String(p['controllerName'])))
    const resolved = this.resolveRefs(spec, ns)
    const rejection = this.rejections.get(key(ns, hr.metadata.name))
    for (const parentRef of each(spec['parentRefs'])) {
      const accepted = this.acceptance(parentRef, ns)
      if (!accepted) continue
      const controllerName = accepted.controller
      let acc = accepted.condition
      if (rejection && generation === rejection.after + 1 && acc.status === 'True') {
        acc = { status: 'False', reason: rejection.reason, message: rejection.message }
      }
      const old = previous.find((p) => p['controllerName'] === controllerName && sameJson(p['parentRef'], parentRef))
      parents.push({
        parentRef,
        controllerName,
        conditions: carry(old?.['conditions'], [
          { type: 'Accepted', ...acc, observedGeneration: generation },
          { type: 'ResolvedRefs', ...resolved, observedGeneration: generation },
          ...(this.ambient && this.mesh === 'istio'
            ? [
                {
                  type: 'ResolvedWaypoints',
                  status: 'True' as const,
                  reason: 'ResolvedWaypoints',
                  message: this.waypointMessage(parentRef, ns),
                  observedGeneration: generation,
                },
              ]
            : []),
        ]),
      })
    }
    // A route none of whose parents is this controller's gets no status from it (its entries, if any, removed).
    if (parents.length === previous.length && previous.every((p) => !mine.has(String(p['controllerName'])))) return
    this.writeStatus(REFS.httpRoutes, hr, { ...status, parents })
  }

  private waypointMessage(p: Obj, routeNs: string): string {
    if (p['kind'] !== 'Service') return 'All waypoints resolved'
    const ns = typeof p['namespace'] === 'string' ? p['namespace'] : routeNs
    const svc = this.store.get(REFS.services, ns, String(p['name']))
    if (!svc) return 'parent not found'
    const labelled = (o: KubeObject | undefined): boolean => o?.metadata.labels?.['istio.io/use-waypoint'] !== undefined
    return labelled(svc) || labelled(this.store.get(REFS.namespaces, undefined, ns))
      ? 'All waypoints resolved'
      : 'istio.io/use-waypoint label missing from parent and parent namespace; in ambient mode, route will not be respected'
  }

  /** The Accepted condition this controller reports for one parentRef, or undefined when it is not its parent. */
  private acceptance(
    p: Obj,
    routeNs: string,
  ): { controller: string; condition: { status: 'True' | 'False'; reason: string; message: string } } | undefined {
    const ns = typeof p['namespace'] === 'string' ? p['namespace'] : routeNs
    const name = String(p['name'])
    if (p['group'] === '' && p['kind'] === 'Service') {
      const controller = this.controllerFor('Service')
      if (!controller) return undefined
      const svc = this.store.get(REFS.services, ns, name)
      if (!svc)
        return {
          controller,
          condition: { status: 'False', reason: 'NoMatchingParent', message: `parent Service ${ns}/${name} not found` },
        }
      const ports = each((svc['spec'] as Obj | undefined)?.['ports']).map((x) => x['port'])
      if (p['port'] !== undefined && !ports.includes(p['port'])) {
        return {
          controller,
          condition: {
            status: 'False',
            reason: 'NoMatchingParent',
            message: `Service ${ns}/${name} has no port ${String(p['port'])}`,
          },
        }
      }
      return { controller, condition: { status: 'True', reason: 'Accepted', message: 'Route was valid' } }
    }
    if (p['group'] !== GATEWAY_API_GROUP || p['kind'] !== 'Gateway') return undefined
    const controller = this.controllerFor('Gateway')
    if (!controller) return undefined
    const gw = this.store.get(REFS.gatewayApiGateways, ns, name)
    if (!gw)
      return {
        controller,
        condition: { status: 'False', reason: 'NoMatchingParent', message: `parent Gateway ${ns}/${name} not found` },
      }
    const gspec = isObj(gw['spec']) ? gw['spec'] : {}
    if (!this.ownsClass(gspec['gatewayClassName'])) return undefined
    const listeners = each(gspec['listeners']).filter(
      (l) =>
        (p['sectionName'] === undefined || l['name'] === p['sectionName']) &&
        (p['port'] === undefined || l['port'] === p['port']),
    )
    if (listeners.length === 0) {
      return {
        controller,
        condition: {
          status: 'False',
          reason: 'NoMatchingParent',
          message: "no listener matches the parentRef's sectionName or port",
        },
      }
    }
    const allowed = listeners.some((l) => {
      if (l['protocol'] !== 'HTTP' && l['protocol'] !== 'HTTPS') return false
      const from = (((l['allowedRoutes'] as Obj | undefined)?.['namespaces'] as Obj | undefined)?.['from'] ??
        'Same') as string
      if (from === 'All') return true
      if (from === 'Same') return routeNs === gw.metadata.namespace
      if (from === 'Selector') {
        const sel = (((l['allowedRoutes'] as Obj)['namespaces'] as Obj)['selector'] as Obj | undefined)?.['matchLabels']
        const labels = this.store.get(REFS.namespaces, undefined, routeNs)?.metadata.labels ?? {}
        return isObj(sel) && Object.entries(sel).every(([k, v]) => labels[k] === v)
      }
      return false
    })
    if (!allowed) {
      return {
        controller,
        condition: {
          status: 'False',
          reason: 'NotAllowedByListeners',
          message: 'no listener of the Gateway allows this route',
        },
      }
    }
    return { controller, condition: { status: 'True', reason: 'Accepted', message: 'Route was valid' } }
  }

  /** ResolvedRefs over every backendRef of every rule: the first problem found, else True. */
  private resolveRefs(spec: Obj, ns: string): { status: 'True' | 'False'; reason: string; message: string } {
    for (const rule of each(spec['rules'])) {
      for (const b of each(rule['backendRefs'])) {
        const name = String(b['name'])
        if (b['group'] !== '' || b['kind'] !== 'Service') {
          return {
            status: 'False',
            reason: 'InvalidKind',
            message: `referencing unsupported backendRef: group "${String(b['group'])}" kind "${String(b['kind'])}"`,
          }
        }
        const bns = typeof b['namespace'] === 'string' ? b['namespace'] : ns
        if (bns !== ns) {
          return {
            status: 'False',
            reason: 'RefNotPermitted',
            message: `backendRef ${name}/${bns} not accessible to a HTTPRoute in namespace "${ns}" (missing a ReferenceGrant?)`,
          }
        }
        if (!this.store.get(REFS.services, bns, name)) {
          return {
            status: 'False',
            reason: 'BackendNotFound',
            message: `backend(${name}.${bns}.svc.cluster.local) not found`,
          }
        }
      }
    }
    return { status: 'True', reason: 'ResolvedRefs', message: 'All references resolved' }
  }
}
