// The routers, one per routing API: a new one is a file (or folder) here, its kind in target.ts, one line in ROUTERS.
import type { HttpRouteApi, VirtualServiceApi } from '../k8s/ports.js'
import { HttpRouteRouter } from './http-route.js'
import type { RouterDeps } from './resource-router.js'
import type { TargetKind, TargetRef, TrafficRouter } from './router.js'
import { VirtualServiceRouter } from './virtual-service.js'

/** What a router may use of the cluster. */
export type RouterApi = VirtualServiceApi & HttpRouteApi

const ROUTERS: Record<TargetKind, (api: RouterApi, target: TargetRef, deps: RouterDeps) => TrafficRouter> = {
  VirtualService: (api, target, deps) => new VirtualServiceRouter(api, target, deps),
  HTTPRoute: (api, target, deps) => new HttpRouteRouter(api, target, deps),
}

export function createRouter(api: RouterApi, target: TargetRef, deps: RouterDeps): TrafficRouter {
  return ROUTERS[target.kind](api, target, deps)
}
