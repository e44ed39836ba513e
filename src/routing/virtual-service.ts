// The TrafficRouter for an Istio VirtualService: its spec.http routes, weights per destination subset, the
// rollout state in an annotation, and preview routes inserted before every other route. What every router does
// alike (reads, lookups, conditional writes) is ./resource-router.ts; this file holds what is Istio's.
import type { VirtualServiceApi } from '../k8s/ports.js'
import type { HttpRoute, VirtualService, VirtualServiceSpec } from '../k8s/resources.js'
import { ResourceRouter, type RouterDeps, type RouteWords } from './resource-router.js'
import type { MeshFacts, Route, RouteSelector, TargetRef, TrafficRouter } from './router.js'
import {
  canaryWeightOf,
  canonical,
  describeSplit,
  findRouteIndex,
  isCatchAll,
  isPreviewRoute,
  resolveStableSubset,
  routeAtWeight,
  sameRoute,
  weightsOf,
  withPreviewRoute,
  withoutPreviewRoute,
} from './vs-routes.js'

const asHttp = (route: Route): HttpRoute => route as HttpRoute

export class VirtualServiceRouter
  extends ResourceRouter<VirtualService, VirtualServiceSpec, HttpRoute>
  implements TrafficRouter
{
  protected readonly words: RouteWords = {
    one: 'http route',
    many: 'routes',
    noun: 'route',
    shadows: 'has no match and takes every request',
    unshadow: 'give it a match',
  }

  constructor(
    private readonly api: VirtualServiceApi,
    target: TargetRef,
    deps: RouterDeps,
  ) {
    super(target, deps)
  }

  protected readResource(): Promise<VirtualService> {
    return this.api.getVirtualService(this.target.namespace, this.target.name)
  }

  protected replaceResource(vs: VirtualService): Promise<VirtualService> {
    return this.api.replaceVirtualService(vs)
  }

  protected entries(spec: VirtualServiceSpec): HttpRoute[] {
    return spec.http ?? []
  }

  protected setEntries(spec: VirtualServiceSpec, http: HttpRoute[]): void {
    spec.http = http
  }

  protected findIndex(spec: VirtualServiceSpec, selector: RouteSelector): number {
    return findRouteIndex(spec, selector, this.target.name)
  }

  protected isPreview(route: HttpRoute): boolean {
    return isPreviewRoute(route)
  }

  /**
   * Istio takes the first http route that matches, in list order, so an earlier route without match takes every
   * request (istio.io docs/reference/config/analysis/ist0130: "only the last rule can have no matches").
   */
  protected shadowing(http: HttpRoute[], index: number): number {
    return http.slice(0, index).findIndex(isCatchAll)
  }

  protected sameSpec(next: VirtualServiceSpec, current: VirtualServiceSpec): boolean {
    return canonical(next) === canonical(current)
  }

  protected withoutPreview(spec: VirtualServiceSpec, value: string): VirtualServiceSpec {
    return withoutPreviewRoute(spec, value).spec
  }

  protected destinations(route: HttpRoute): unknown {
    return route.route ?? []
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

  setPreview(canary: string, header: string, value: string): Promise<boolean> {
    return this.writeSpec((spec) =>
      withPreviewRoute(spec, findRouteIndex(spec, this.target.route, this.target.name), canary, header, value),
    )
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
