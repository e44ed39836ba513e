// The traffic router: what the rollout needs from a routing API (an Istio VirtualService today, a Gateway API
// HTTPRoute next), as one interface. The engine, the lock and the reports speak of a "target" and its routes
// through it, never of a routing API's fields. One implementation per API, registered in ./index.ts.
import type { RolloutState } from './state.js'
import type { Route, RouteSelector, TargetKind, TargetRef } from './target.js'

export type { Route, RouteSelector, TargetKind, TargetRef } from './target.js'

/** A route that cannot be found or shifted as asked (the message names the input where one is to blame). */
export class RouteError extends Error {
  override name = 'RouteError'
}

/** Someone else changed the target route: the action stops rather than overwrite it. */
export class ConcurrentChangeError extends Error {
  override name = 'ConcurrentChangeError'
}

/**
 * The routing API's controllers did not take a write: one rejected it, or none reported on it within the bound.
 * The write itself landed; what the data plane does with it is not known.
 */
export class NotAppliedError extends Error {
  override name = 'NotAppliedError'
  constructor(
    readonly reason: 'rejected' | 'timeout',
    message: string,
    /** One line per parent (or controller) and what it said or did not say. */
    readonly details: readonly string[] = [],
  ) {
    super(message)
  }
}

/** How messages name the route a selector picks, in the words of the target's API (routes, or HTTPRoute rules). */
export function describeSelector(selector: RouteSelector, kind: TargetKind = 'VirtualService'): string {
  if (kind === 'HTTPRoute') {
    if (selector.by === 'default') return 'the default rule (the last rule without matches)'
    if (selector.by === 'name') return `rule '${selector.name}'`
    return `rule #${selector.index}`
  }
  if (selector.by === 'default') return 'the default route (the last http route without match)'
  if (selector.by === 'name') return `route '${selector.name}'`
  return `http route #${selector.index}`
}

export function describeTarget(target: Pick<TargetRef, 'kind' | 'namespace' | 'name'>): string {
  return `${target.kind} ${target.namespace}/${target.name}`
}

/** What a GitOps manifest must hold for the target: its resource and route, and the destinations to write. */
export interface ManifestTarget {
  kind: TargetKind
  namespace: string
  name: string
  /** The route's index among the user's routes (the action's previews not counted). */
  routeIndex: number
  routeName?: string
  destinations: unknown
}

/** What the mesh checks need to know of the target route. */
export interface MeshFacts {
  /** The Service host the route sends to (its first destination). */
  destinationHost: string
  /** Istio Gateways (namespace/name) the namespace's routes are bound to, to find the ingress gateway through. */
  gateways: string[]
  /** Gateway API Gateways (namespace/name) the namespace's HTTPRoutes attach to: the ingress, by their addresses. */
  gatewayApiGateways?: string[]
  /** Services the target routes at L7 as a mesh (GAMMA) parent: in ambient mode each needs a waypoint. */
  meshParents?: string[]
  /** Whether the target's parents accept it as it is now (a Gateway API route; undefined for others). */
  parents?: { ok: boolean; pending: boolean; reasons: string[] }
}

export interface TrafficRouter {
  readonly target: TargetRef
  /** Reads the target resource (again); `state` and `revision` follow it. */
  load(): Promise<void>
  /** The rollout state stored on the target resource, as last read. */
  readonly state: RolloutState | undefined
  /** The resource's version as last read: a change between two reads shows in it. */
  readonly revision: string | undefined

  /** The route the selector names (a RouteError when there is none or it has no destinations). */
  route(selector: RouteSelector): Route
  /** The same, or undefined instead of an error. */
  findRoute(selector: RouteSelector): Route | undefined
  /**
   * The route the `route` input names, before a rollout: a missing route is the input's error, and one that an
   * earlier catch-all route shadows receives no traffic, so it is refused unless `shadowed` is 'allow'.
   */
  inputRoute(options?: { shadowed: 'refuse' | 'allow' }): Route
  /** How to find this route again: by its name when it has one, else `fallback`. */
  selectorFor(route: Route, fallback: RouteSelector): RouteSelector

  /** Percent of the route's traffic per version (subset), as integers summing to 100. */
  shares(route: Route): Map<string, number>
  weightOf(route: Route, version: string): number
  /** `requested`, or for 'auto' the version with the highest share other than the canary. */
  resolveStable(route: Route, requested: string, canary: string | undefined): string
  /** The route at a canary weight, derived from the route before the rollout (`base`). */
  atWeight(base: Route, stable: string, canary: string, weight: number): Route
  same(a: Route | undefined, b: Route | undefined): boolean
  /** A readable split, e.g. "v1 90 % / v3 10 %". */
  describe(route: Route): string

  /**
   * One conditional write of the route `selector` names (expected to be `expected`, to become `next`) and the
   * rollout state (undefined: removed). A conflict is re-read and retried while the route is still `expected`;
   * else a ConcurrentChangeError. A write whose answer was lost but which landed counts as written.
   */
  write(selector: RouteSelector, expected: Route, next: Route, state: RolloutState | undefined): Promise<void>

  /**
   * After every write (a shift, a revert, a preview change): waits, bounded, until the API's controllers have taken
   * the resource's new generation; a NotAppliedError when one rejects it or none reports in time. `signal` ends the
   * wait early (with its reason). Absent where the API reports nothing of the kind to wait for (a VirtualService:
   * istiod's status is opt-in there, and each step's settle checks that traffic follows instead).
   */
  awaitApplied?(signal: AbortSignal): Promise<void>

  /** The name of the preview route for a header value. */
  previewName(value: string): string
  /** The preview route for a header value, as it is now. */
  previewRoute(value: string): Route | undefined
  /** Inserts (or replaces) the preview route before every other route; false when it already was so. */
  setPreview(canary: string, header: string, value: string): Promise<boolean>
  /** The preview route for `value` back as it was before a run: removed, or `before` again. */
  restorePreview(value: string, before: Route | undefined): Promise<boolean>

  /** For the GitOps hand-back: where the route the selector names is in a manifest, and what it routes. */
  manifestTarget(selector: RouteSelector): ManifestTarget
  /** For the mesh checks. */
  meshFacts(route: Route): Promise<MeshFacts>
}
