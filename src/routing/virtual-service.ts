// The TrafficRouter for an Istio VirtualService: its spec.http routes, weights per destination subset, the
// rollout state in an annotation, and preview routes inserted before every other route.
import type { VirtualServiceApi } from '../k8s/ports.js'
import type { Sleep } from '../retry.js'
import type { HttpRoute, VirtualService, VirtualServiceSpec } from '../k8s/resources.js'
import { writeConditionally } from './conditional.js'
import { movedRoute } from './moved.js'
import { type RouteStore, writeRouteAndState } from './route-write.js'
import {
  type ManifestTarget,
  type MeshFacts,
  type Route,
  RouteError,
  type RouteSelector,
  type TargetRef,
  type TrafficRouter,
  describeSelector,
  describeTarget,
} from './router.js'
import { type RolloutState, decodeState, isActive } from './state.js'
import {
  canaryWeightOf,
  canonical,
  describeSplit,
  findRouteIndex,
  isCatchAll,
  isPreviewRoute,
  previewRouteName,
  resolveStableSubset,
  routeAtWeight,
  sameRoute,
  weightsOf,
  withPreviewRoute,
  withoutPreviewRoute,
} from './vs-routes.js'

export interface RouterDeps {
  log: (message: string) => void
  /** How a router waits between reads of its controllers' status (awaitApplied); default: real time. */
  sleep?: Sleep
  now?: () => number
  /** Bound of awaitApplied (default: the router's own, e.g. ACCEPT_TIMEOUT_MS). */
  applyTimeoutMs?: number
}

const asHttp = (route: Route): HttpRoute => route as HttpRoute

export class VirtualServiceRouter implements TrafficRouter {
  private resource: VirtualService | undefined
  private stateRead: RolloutState | undefined

  constructor(
    private readonly api: VirtualServiceApi,
    readonly target: TargetRef,
    private readonly deps: RouterDeps,
  ) {}

  private get ref(): string {
    return describeTarget(this.target)
  }

  private get vs(): VirtualService {
    if (!this.resource) throw new Error(`internal: ${this.ref} was not read`)
    return this.resource
  }

  private http(spec: VirtualServiceSpec = this.vs.spec): HttpRoute[] {
    return spec.http ?? []
  }

  private set(vs: VirtualService): void {
    this.resource = vs
    this.stateRead = decodeState(vs.metadata.annotations, this.target)
  }

  async load(): Promise<void> {
    this.set(await this.api.getVirtualService(this.target.namespace, this.target.name))
  }

  get state(): RolloutState | undefined {
    return this.stateRead
  }

  get revision(): string | undefined {
    return this.resource?.metadata.resourceVersion
  }

  /**
   * Where the selector's route is in `vs`. A rollout's positional selector (an index, or the default route) is
   * checked against what istio-canary last wrote there (the state annotation's `lastWritten`): when someone added
   * or removed routes before it, the route is found again where exactly one user route is what the action last
   * wrote. Never a guess: none, or several alike, leave the selector's own answer (and the write's conflict check).
   */
  private index(selector: RouteSelector, vs: VirtualService = this.vs, literal = false): number {
    let found: number | undefined
    let error: unknown
    try {
      found = findRouteIndex(vs.spec, selector, this.target.name)
    } catch (err) {
      error = err
    }
    const moved = literal ? undefined : this.movedRoute(selector, vs, found)
    if (moved !== undefined) return moved
    if (error !== undefined) throw error
    return found as number
  }

  private readonly told = new Set<string>()

  private movedRoute(selector: RouteSelector, vs: VirtualService, found: number | undefined): number | undefined {
    const moved = movedRoute(selector, this.target, {
      annotations: vs.metadata.annotations,
      routes: this.http(vs.spec),
      found,
      isPreview: (r) => isPreviewRoute(asHttp(r)),
      same: (a, b) => this.same(a, b),
    })
    if (!moved) return undefined
    const message =
      `${describeSelector(selector)} of ${this.ref} moved (routes were added or removed before it): ` +
      `found it by what istio-canary last wrote, now http route #${moved.position}`
    if (!this.told.has(message)) {
      this.told.add(message)
      this.deps.log(message)
    }
    return moved.index
  }

  private safeIndex(selector: RouteSelector, vs: VirtualService = this.vs): number {
    try {
      return this.index(selector, vs)
    } catch {
      return -1
    }
  }

  route(selector: RouteSelector): Route {
    return this.http()[this.index(selector)] as HttpRoute
  }

  findRoute(selector: RouteSelector): Route | undefined {
    return this.http()[this.safeIndex(selector)]
  }

  inputRoute(options: { shadowed: 'refuse' | 'allow' } = { shadowed: 'refuse' }): Route {
    const selector = this.target.route
    let index: number
    try {
      // A new rollout takes the input as it reads now; only one in progress follows its route where it moved.
      index = this.index(selector, this.vs, !isActive(this.stateRead))
    } catch (err) {
      if (err instanceof RouteError && selector.by !== 'default') throw new RouteError(`Input 'route': ${err.message}`)
      throw err
    }
    const http = this.http()
    const shadow = http.slice(0, index).findIndex(isCatchAll)
    if (shadow >= 0 && options.shadowed === 'refuse') {
      const shadowName = http[shadow]?.name
      const name = shadowName ? `'${shadowName}'` : `#${shadow}`
      throw new RouteError(
        `Input 'route': ${describeSelector(selector)} of ${this.ref} receives no traffic: ` +
          `http route ${name} before it has no match and takes every request. ` +
          `Shift route ${name} instead, or give it a match`,
      )
    }
    return http[index] as HttpRoute
  }

  selectorFor(route: Route, fallback: RouteSelector): RouteSelector {
    const name = asHttp(route).name
    return typeof name === 'string' && name !== '' ? { by: 'name', name } : fallback
  }

  shares(route: Route): Map<string, number> {
    return weightsOf(asHttp(route))
  }

  weightOf(route: Route, version: string): number {
    return canaryWeightOf(asHttp(route), version)
  }

  resolveStable(route: Route, requested: string, canary: string | undefined): string {
    return resolveStableSubset(asHttp(route), requested, canary)
  }

  atWeight(base: Route, stable: string, canary: string, weight: number): Route {
    return routeAtWeight(asHttp(base), stable, canary, weight)
  }

  same(a: Route | undefined, b: Route | undefined): boolean {
    return sameRoute(a as HttpRoute | undefined, b as HttpRoute | undefined)
  }

  describe(route: Route): string {
    return describeSplit(asHttp(route))
  }

  async write(selector: RouteSelector, expected: Route, next: Route, state: RolloutState | undefined): Promise<void> {
    const store: RouteStore<VirtualService> = {
      target: this.target,
      what: this.ref,
      noun: 'route',
      kubectl: `kubectl -n ${this.target.namespace} get virtualservice ${this.target.name} -o yaml`,
      read: () => this.api.getVirtualService(this.target.namespace, this.target.name),
      replace: (vs) => this.api.replaceVirtualService(vs),
      log: this.deps.log,
      routes: (vs) => this.http(vs.spec),
      setRoutes: (vs, routes) => {
        vs.spec.http = routes as HttpRoute[]
      },
      indexOf: (vs) => this.safeIndex(selector, vs),
      same: (a, b) => this.same(a, b),
      describe: (route) => this.describe(route),
      selector: describeSelector(selector),
    }
    const change = { current: this.vs, expected, next, state, before: this.stateRead }
    // Every fresh read is kept at once: after a refusal the caller decides on what the cluster holds now.
    this.resource = await writeRouteAndState(store, change, (fresh) => {
      this.resource = fresh
    })
    this.stateRead = state
  }

  previewName(value: string): string {
    return previewRouteName(value)
  }

  previewRoute(value: string): Route | undefined {
    return this.http().find((r) => r.name === previewRouteName(value))
  }

  setPreview(canary: string, header: string, value: string): Promise<boolean> {
    return this.writeSpec((spec) =>
      withPreviewRoute(spec, findRouteIndex(spec, this.target.route, this.target.name), canary, header, value),
    )
  }

  restorePreview(value: string, before: Route | undefined): Promise<boolean> {
    return this.writeSpec((spec) => {
      const removed = withoutPreviewRoute(spec, value).spec
      return before ? { ...removed, http: [asHttp(before), ...(removed.http ?? [])] } : removed
    })
  }

  /** A spec change that only adds/removes preview routes: re-applied on a fresh read after a conflict. */
  private async writeSpec(change: (spec: VirtualServiceSpec) => VirtualServiceSpec): Promise<boolean> {
    const { resource, written } = await writeConditionally<VirtualService>({
      current: this.vs,
      read: async () => {
        this.set(await this.api.getVirtualService(this.target.namespace, this.target.name))
        return this.vs
      },
      replace: (vs) => this.api.replaceVirtualService(vs),
      what: this.ref,
      log: this.deps.log,
      change: (vs) => {
        const spec = change(vs.spec)
        return canonical(spec) === canonical(vs.spec) ? undefined : { ...vs, spec }
      },
    })
    this.set(resource)
    return written
  }

  manifestTarget(selector: RouteSelector): ManifestTarget {
    const http = this.http()
    const index = this.index(selector)
    const route = http[index] as HttpRoute
    return {
      kind: 'VirtualService',
      namespace: this.target.namespace,
      name: this.target.name,
      routeIndex: http.slice(0, index).filter((r) => !isPreviewRoute(r)).length,
      ...(typeof route.name === 'string' && route.name !== '' ? { routeName: route.name } : {}),
      destinations: route.route ?? [],
    }
  }

  async meshFacts(route: Route): Promise<MeshFacts> {
    const gateways = new Set<string>()
    for (const vs of await this.api.listVirtualServices(this.target.namespace)) {
      for (const gateway of vs.spec.gateways ?? []) {
        if (gateway !== 'mesh') gateways.add(gateway.includes('/') ? gateway : `${this.target.namespace}/${gateway}`)
      }
    }
    return { destinationHost: asHttp(route).route?.[0]?.destination.host ?? '', gateways: [...gateways].sort() }
  }
}
