// Finding a rollout's route again where it moved: a positional selector (an index, or the default route) of the
// rollout in the state annotation, when someone added or removed routes before it. Shared by every router. Pure.
import type { RouteSelector } from './router.js'
import { type RolloutState, decodeState } from './state.js'
import { canonical } from './shares.js'
import type { Route, TargetRef } from './target.js'

export interface MovedLookup {
  /** The resource's annotations (its state) and routes, as read. */
  annotations: Record<string, string> | undefined
  routes: Route[]
  /** Where the selector points in these routes (undefined: nowhere). */
  found: number | undefined
  isPreview: (route: Route) => boolean
  same: (a: Route | undefined, b: Route | undefined) => boolean
}

/**
 * Where the rollout's route is now, when the selector is this rollout's positional one and no longer points at what
 * istio-canary last wrote (`lastWritten`) while exactly one user route is that: its index, and its position among
 * the user's routes (previews not counted). Undefined otherwise: never a guess (none, or several alike).
 */
export function movedRoute(
  selector: RouteSelector,
  target: Pick<TargetRef, 'kind' | 'name'>,
  o: MovedLookup,
): { index: number; position: number } | undefined {
  if (selector.by === 'name') return undefined
  let state: RolloutState | undefined
  try {
    state = decodeState(o.annotations, target)
  } catch {
    return undefined
  }
  if (!state || canonical(state.route) !== canonical(selector)) return undefined
  const last = state.lastWritten
  if (o.found !== undefined && o.same(o.routes[o.found], last)) return undefined
  const alike = o.routes.flatMap((r, i) => (!o.isPreview(r) && o.same(r, last) ? [i] : []))
  if (alike.length !== 1) return undefined
  const index = alike[0] as number
  return { index, position: o.routes.slice(0, index).filter((r) => !o.isPreview(r)).length }
}
