// Where a run begins: the target route and its versions, from the rollout state on the target or from the inputs,
// validated before any change; and the guard that the target route is still what istio-canary last wrote.
import { ConcurrentChangeError, type Route, type RouteSelector } from '../routing/router.js'
import { type RolloutState, STATE_ANNOTATION, isActive } from '../routing/state.js'
import { RolloutError, type Outcome, type Run } from './run.js'

/** Where a rollout starts: the target route, its versions and the canary weight it has now. */
export interface Start {
  route: Route
  stable: string
  canary: string
  /** The route as it was before the rollout began (a continued rollout's original route). */
  base: Route
  weight: number
  continuing: boolean
}

/** What the run will do: the target route, versions and where it starts. Validates before any change. */
export function start(run: Run): Start {
  const router = run.router
  const state = router.state
  const { canarySubset, stableSubset } = run.plan
  if (state && isActive(state)) {
    if (canarySubset !== undefined && canarySubset !== state.canary) {
      throw new RolloutError(
        `${run.ref} has a rollout of canary '${state.canary}' in progress ` +
          `(${state.phase} at ${state.weight} %, run ${state.runId}); ` +
          `finish it with action 'promote' or 'rollback' before rolling out '${canarySubset}'`,
      )
    }
    if (stableSubset !== 'auto' && stableSubset !== state.stable) {
      throw new RolloutError(
        `${run.ref} has a rollout in progress whose stable subset is '${state.stable}', not '${stableSubset}'`,
      )
    }
    const route = router.route(state.route)
    assertOurs(run, route, state)
    return {
      route,
      stable: state.stable,
      canary: state.canary,
      base: state.originalRoute,
      weight: state.weight,
      continuing: true,
    }
  }
  const route = router.inputRoute()
  if (canarySubset === undefined) {
    throw new RolloutError(
      `${run.ref} has no rollout in progress; set 'canary-subset' to start one (or to promote that subset directly)`,
    )
  }
  const stable = router.resolveStable(route, stableSubset, canarySubset)
  if (stable === canarySubset) throw new RolloutError(`stable and canary subset are both '${canarySubset}'`)
  if (!router.shares(route).has(stable)) {
    throw new RolloutError(
      `${run.describeSelector(router.target.route)} of ${run.ref} does not route to stable subset '${stable}' ` +
        `(it routes: ${router.describe(route)})`,
    )
  }
  const weight = router.weightOf(route, canarySubset)
  return { route, stable, canary: canarySubset, base: route, weight, continuing: false }
}

/** The target route is what istio-canary last wrote: else someone else changed it, and theirs stands. */
export function assertOurs(run: Run, route: Route | undefined, state: RolloutState): void {
  const router = run.router
  if (!router.same(route, state.lastWritten)) {
    throw new ConcurrentChangeError(
      `the target route of ${run.ref} was changed by someone else since istio-canary last wrote it ` +
        `(run ${state.runId}); not overwriting it. ` +
        `It now routes: ${route ? router.describe(route) : '(route missing)'}; ` +
        `istio-canary wrote: ${router.describe(state.lastWritten)}. ` +
        `Decide on the route by hand, then remove the annotation ${STATE_ANNOTATION} ` +
        'to let istio-canary start afresh',
    )
  }
}

/** The selector to find the target route again: by name when it has one, else as the rollout first found it. */
export function stableSelector(run: Run, route: Route): RouteSelector {
  const state = run.router.state
  return run.router.selectorFor(route, state && isActive(state) ? state.route : run.router.target.route)
}

/**
 * The canary asked for (or the last one, when none is asked for) already has the whole route: promoted by an
 * earlier run, or no rollout in progress and the target route sends everything to canary-subset already.
 */
export function alreadyPromoted(run: Run): boolean {
  const state = run.router.state
  const canary = run.plan.canarySubset
  if (state?.phase === 'promoted') return canary === undefined || canary === state.canary
  if (isActive(state) || canary === undefined) return false
  const route = run.router.findRoute(run.router.target.route)
  return route !== undefined && run.router.weightOf(route, canary) === 100
}

/** The canary already has the whole route: nothing to do. */
export function promotedAlready(run: Run): Outcome {
  const state = run.router.state
  const canary = run.plan.canarySubset ?? state?.canary ?? ''
  if (state?.phase === 'promoted' && state.canary === canary) {
    assertOurs(run, run.router.route(state.route), state)
    run.event(`'${canary}' is already promoted (run ${state.runId}); nothing to do`)
    return run.outcome('promoted', { stable: state.stable, canary }, 100)
  }
  run.event(
    `${run.describeSelector(run.router.target.route)} of ${run.ref} already sends 100 % to '${canary}'; nothing to do`,
  )
  return run.outcome('promoted', { stable: '', canary }, 100)
}
