// What a rollout targets: the resource, which of its routes, and a route as data. Types only, below the
// router and the state that both speak of them.

/** One route of the target resource, as its API holds it: opaque to everything but its router. */
export type Route = Readonly<Record<string, unknown>>

/** How the `route` input (or a rollout state) names the route to shift. */
export type RouteSelector = { by: 'default' } | { by: 'name'; name: string } | { by: 'index'; index: number }

export type TargetKind = 'VirtualService' | 'HTTPRoute'

/** The resource whose route the rollout shifts, and which of its routes. */
export interface TargetRef {
  kind: TargetKind
  namespace: string
  name: string
  route: RouteSelector
}
