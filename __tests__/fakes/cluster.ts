// An in-memory cluster behind the ports the routers and the lock use (VirtualServiceApi, HttpRouteApi, LeaseApi):
// optimistic concurrency as the API server does it (a PUT whose resourceVersion is not the stored one is a 409),
// and faults a test arms per call. HTTPRoutes are stored as the API server stores them: the CRD schema's defaults
// written in, metadata.generation raised on a change of spec, status kept across a PUT (a subresource), and rule
// names pruned when `pruneRuleNames` plays a CRD older than Gateway API v1.2. For in-process tests; no I/O.
import { isDeepStrictEqual } from 'node:util'
import type { V1Lease } from '@kubernetes/client-node'
import type { HttpRouteApi, LeaseApi, VirtualServiceApi } from '../../src/k8s/ports.js'
import {
  ConflictError,
  type GatewayHttpRoute,
  type HttpRouteRule,
  KubeError,
  type VirtualService,
} from '../../src/k8s/resources.js'

/** What a played Gateway API controller does with a generation: report it accepted, reject it, or say nothing. */
export type ControllerVerdict = 'accept' | 'reject' | 'silent'

export type Operation =
  | 'getVirtualService'
  | 'replaceVirtualService'
  | 'listVirtualServices'
  | 'getHttpRoute'
  | 'replaceHttpRoute'
  | 'listHttpRoutes'

/** What an armed fault does to one call. */
export interface CallFault {
  /** The error the call throws. */
  error: Error
  /** The write is applied first and only its answer is lost (as after a connection reset). */
  afterApplying?: boolean
}

/**
 * What the HTTPRoute CRD's schema defaults (kubernetes-sigs/gateway-api apis/v1: +kubebuilder:default on
 * HTTPRouteRule.Matches, HTTPRouteMatch.Path, HTTPHeaderMatch.Type, BackendObjectReference.Group/Kind,
 * BackendRef.Weight, ParentReference.Group/Kind), written into a copy of the rules as the API server stores them.
 */
function defaulted(rules: HttpRouteRule[], pruneNames: boolean): HttpRouteRule[] {
  return rules.map((rule) => {
    const r = structuredClone(rule)
    if (pruneNames) delete r.name
    if (!r.matches || r.matches.length === 0) r.matches = [{ path: { type: 'PathPrefix', value: '/' } }]
    for (const m of r.matches) {
      m.path = { type: 'PathPrefix', value: '/', ...(m.path ?? {}) }
      for (const h of m.headers ?? []) h.type ??= 'Exact'
    }
    for (const b of r.backendRefs ?? []) {
      b.group ??= ''
      b.kind ??= 'Service'
      b.weight ??= 1
    }
    return r
  })
}

export class FakeCluster implements VirtualServiceApi, HttpRouteApi, LeaseApi {
  private readonly virtualServices = new Map<string, VirtualService>()
  private readonly httpRoutes = new Map<string, GatewayHttpRoute>()
  /** Plays an HTTPRoute CRD without rule names (before Gateway API v1.2): the API server prunes them. */
  pruneRuleNames = false
  /** Runs after an HTTPRoute is stored: a test plays the gateway controller writing status. */
  afterHttpRouteWrite: ((route: GatewayHttpRoute) => void) | undefined
  private readonly leases = new Map<string, V1Lease>()
  private version = 1
  private readonly faults: Array<{ op: Operation; fault: CallFault }> = []
  /** Runs before a replace is applied: a test plays someone else writing at that moment. */
  beforeReplace: ((cluster: FakeCluster) => void) | undefined
  /** Every call, in order. */
  readonly calls: Operation[] = []

  private key(namespace: string, name: string): string {
    return `${namespace}/${name}`
  }

  private nextVersion(): string {
    this.version += 1
    return String(this.version)
  }

  /** Stores a VirtualService as someone else would (a new resourceVersion), returning the stored copy. */
  put(vs: VirtualService): VirtualService {
    const stored = structuredClone(vs)
    stored.metadata.resourceVersion = this.nextVersion()
    this.virtualServices.set(this.key(stored.metadata.namespace ?? '', stored.metadata.name), stored)
    return structuredClone(stored)
  }

  /** The stored VirtualService (a copy). */
  virtualService(namespace: string, name: string): VirtualService {
    const vs = this.virtualServices.get(this.key(namespace, name))
    if (!vs) throw new Error(`fake: no VirtualService ${namespace}/${name}`)
    return structuredClone(vs)
  }

  /**
   * Plays a Gateway API controller that reports on each new generation at once, as the status subresource holds it
   * (one status.parents entry per parentRef, observedGeneration the route's): `verdict` decides per write (default:
   * accept); 'reject' sets Accepted False (UnsupportedValue) with ResolvedRefs True, 'silent' leaves the status of
   * the older generation in place. Replaces afterHttpRouteWrite. Returns the generations it was asked about (of every route).
   */
  playGatewayController(
    verdict: (route: GatewayHttpRoute) => ControllerVerdict = () => 'accept',
    controllerName = 'istio.io/gateway-controller',
  ): number[] {
    const seen: number[] = []
    const reported = new Map<string, number>()
    this.afterHttpRouteWrite = (route) => {
      const generation = route.metadata.generation ?? 0
      const key = this.key(route.metadata.namespace ?? '', route.metadata.name)
      // A status write does not raise the generation; one report per generation, as a controller reconciles it.
      if (reported.get(key) === generation) return
      seen.push(generation)
      const v = verdict(route)
      if (v === 'silent') return
      reported.set(key, generation)
      const accepted = v === 'accept'
      route.status = {
        parents: (route.spec.parentRefs ?? []).map((parentRef) => ({
          parentRef: structuredClone(parentRef),
          controllerName,
          conditions: [
            {
              type: 'Accepted',
              status: accepted ? 'True' : 'False',
              reason: accepted ? 'Accepted' : 'UnsupportedValue',
              ...(accepted ? {} : { message: 'played rejection of this generation' }),
              observedGeneration: generation,
            },
            { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', observedGeneration: generation },
          ],
        })),
      }
      route.metadata.resourceVersion = this.nextVersion()
    }
    return seen
  }

  /** Stores an HTTPRoute (as someone else would: defaults, a new resourceVersion and generation), returning the copy. */
  putHttpRoute(route: GatewayHttpRoute): GatewayHttpRoute {
    const key = this.key(route.metadata.namespace ?? '', route.metadata.name)
    return structuredClone(this.storeHttpRoute(key, route, this.httpRoutes.get(key), true))
  }

  /** The stored HTTPRoute (a copy). */
  httpRoute(namespace: string, name: string): GatewayHttpRoute {
    const route = this.httpRoutes.get(this.key(namespace, name))
    if (!route) throw new Error(`fake: no HTTPRoute ${namespace}/${name}`)
    return structuredClone(route)
  }

  /** Replaces the stored HTTPRoute's status (the status subresource: no new generation). */
  setHttpRouteStatus(namespace: string, name: string, status: GatewayHttpRoute['status']): void {
    const route = this.httpRoutes.get(this.key(namespace, name))
    if (!route) throw new Error(`fake: no HTTPRoute ${namespace}/${name}`)
    if (status) route.status = structuredClone(status)
    else delete route.status
    route.metadata.resourceVersion = this.nextVersion()
  }

  private storeHttpRoute(
    key: string,
    route: GatewayHttpRoute,
    stored: GatewayHttpRoute | undefined,
    withStatus: boolean,
  ): GatewayHttpRoute {
    const next = structuredClone(route)
    next.spec = { ...next.spec, rules: defaulted(next.spec.rules ?? [], this.pruneRuleNames) }
    for (const p of next.spec.parentRefs ?? []) {
      p.group ??= 'gateway.networking.k8s.io'
      p.kind ??= 'Gateway'
    }
    const generation = stored?.metadata.generation ?? 0
    next.metadata.generation = stored && isDeepStrictEqual(stored.spec, next.spec) ? generation : generation + 1
    if (!withStatus) {
      if (stored?.status) next.status = structuredClone(stored.status)
      else delete next.status
    }
    next.metadata.resourceVersion = this.nextVersion()
    this.httpRoutes.set(key, next)
    this.afterHttpRouteWrite?.(next)
    return next
  }

  async getHttpRoute(namespace: string, name: string): Promise<GatewayHttpRoute> {
    this.calls.push('getHttpRoute')
    const fault = this.takeFault('getHttpRoute')
    if (fault) throw fault.error
    const route = this.httpRoutes.get(this.key(namespace, name))
    if (!route) throw new KubeError(404, 'NotFound', `httproutes.gateway.networking.k8s.io "${name}" not found`)
    return structuredClone(route)
  }

  async listHttpRoutes(namespace: string): Promise<GatewayHttpRoute[]> {
    this.calls.push('listHttpRoutes')
    const fault = this.takeFault('listHttpRoutes')
    if (fault) throw fault.error
    return [...this.httpRoutes.values()]
      .filter((r) => r.metadata.namespace === namespace)
      .map((r) => structuredClone(r))
  }

  async replaceHttpRoute(route: GatewayHttpRoute): Promise<GatewayHttpRoute> {
    this.calls.push('replaceHttpRoute')
    const fault = this.takeFault('replaceHttpRoute')
    if (fault && !fault.afterApplying) throw fault.error
    this.beforeReplace?.(this)
    const key = this.key(route.metadata.namespace ?? '', route.metadata.name)
    const stored = this.httpRoutes.get(key)
    if (!stored)
      throw new KubeError(404, 'NotFound', `httproutes.gateway.networking.k8s.io "${route.metadata.name}" not found`)
    if (stored.metadata.resourceVersion !== route.metadata.resourceVersion) {
      throw new ConflictError(
        409,
        'Conflict',
        'Operation cannot be fulfilled on httproutes.gateway.networking.k8s.io: the object has been modified; ' +
          'please apply your changes to the latest version and try again',
      )
    }
    const written = this.storeHttpRoute(key, route, stored, false)
    if (fault) throw fault.error
    return structuredClone(written)
  }

  /** Arms a fault for the next call of `op` (faults of one op fire in the order armed). */
  fail(op: Operation, fault: CallFault): void {
    this.faults.push({ op, fault })
  }

  private takeFault(op: Operation): CallFault | undefined {
    const index = this.faults.findIndex((f) => f.op === op)
    if (index < 0) return undefined
    return this.faults.splice(index, 1)[0]?.fault
  }

  async getVirtualService(namespace: string, name: string): Promise<VirtualService> {
    this.calls.push('getVirtualService')
    const fault = this.takeFault('getVirtualService')
    if (fault) throw fault.error
    const vs = this.virtualServices.get(this.key(namespace, name))
    if (!vs) throw new KubeError(404, 'NotFound', `virtualservices.networking.istio.io "${name}" not found`)
    return structuredClone(vs)
  }

  async listVirtualServices(namespace: string): Promise<VirtualService[]> {
    this.calls.push('listVirtualServices')
    const fault = this.takeFault('listVirtualServices')
    if (fault) throw fault.error
    return [...this.virtualServices.values()]
      .filter((v) => v.metadata.namespace === namespace)
      .map((v) => structuredClone(v))
  }

  async replaceVirtualService(vs: VirtualService): Promise<VirtualService> {
    this.calls.push('replaceVirtualService')
    const fault = this.takeFault('replaceVirtualService')
    if (fault && !fault.afterApplying) throw fault.error
    this.beforeReplace?.(this)
    const key = this.key(vs.metadata.namespace ?? '', vs.metadata.name)
    const stored = this.virtualServices.get(key)
    if (!stored)
      throw new KubeError(404, 'NotFound', `virtualservices.networking.istio.io "${vs.metadata.name}" not found`)
    if (stored.metadata.resourceVersion !== vs.metadata.resourceVersion) {
      throw new ConflictError(
        409,
        'Conflict',
        'the object has been modified; please apply your changes to the latest version and try again',
      )
    }
    const written = structuredClone(vs)
    written.metadata.resourceVersion = this.nextVersion()
    this.virtualServices.set(key, written)
    if (fault) throw fault.error
    return structuredClone(written)
  }

  async getLease(namespace: string, name: string): Promise<V1Lease | undefined> {
    const lease = this.leases.get(this.key(namespace, name))
    return lease && structuredClone(lease)
  }

  async createLease(namespace: string, body: V1Lease): Promise<V1Lease> {
    const key = this.key(namespace, body.metadata?.name ?? '')
    if (this.leases.has(key))
      throw new KubeError(409, 'AlreadyExists', `leases "${body.metadata?.name}" already exists`)
    const lease = { ...structuredClone(body), metadata: { ...body.metadata, resourceVersion: this.nextVersion() } }
    this.leases.set(key, lease)
    return structuredClone(lease)
  }

  async replaceLease(namespace: string, body: V1Lease): Promise<V1Lease> {
    const key = this.key(namespace, body.metadata?.name ?? '')
    const stored = this.leases.get(key)
    if (!stored || stored.metadata?.resourceVersion !== body.metadata?.resourceVersion) {
      throw new ConflictError(409, 'Conflict', 'the object has been modified')
    }
    const lease = { ...structuredClone(body), metadata: { ...body.metadata, resourceVersion: this.nextVersion() } }
    this.leases.set(key, lease)
    return structuredClone(lease)
  }

  async deleteLease(namespace: string, name: string, resourceVersion: string): Promise<void> {
    const key = this.key(namespace, name)
    const stored = this.leases.get(key)
    if (!stored) throw new KubeError(404, 'NotFound', `leases "${name}" not found`)
    if (stored.metadata?.resourceVersion !== resourceVersion)
      throw new ConflictError(409, 'Conflict', 'precondition failed')
    this.leases.delete(key)
  }
}
