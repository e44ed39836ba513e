// The `rollout` mode (and `promote`, a rollout to 100): from where the target starts, each remaining step is a
// shift written with its state, then waited for and checked (./checks.ts); a failure after the first traffic change
// reverts (./revert.ts), as the state machine decides from what the run knows (./machine.ts afterFailure).
import type { Step } from '../parse.js'
import { ConcurrentChangeError, type Route, type RouteSelector, type TrafficRouter } from '../routing/router.js'
import type { RolloutState } from '../routing/state.js'
import { applied } from './applied.js'
import type { StepChecks } from './checks.js'
import { type Result, type RunContext, afterFailure, next } from './machine.js'
import { revert } from './revert.js'
import type { Outcome, Run } from './run.js'
import { alreadyPromoted, promotedAlready, stableSelector, start as startOf } from './start.js'

/** `rollout` (and `promote`, which is a rollout to 100). */
export async function rollout(run: Run, checks: StepChecks, steps: Step[], pauseMs: number): Promise<Outcome> {
  const router = run.router
  if (alreadyPromoted(run)) return promotedAlready(run)
  const start = startOf(run)
  const selector = stableSelector(run, start.route)
  const before = router.state
  const context: RunContext = {
    runId: run.deps.runId,
    now: run.now().toISOString(),
    startedAt: run.now().toISOString(),
    stable: start.stable,
    canary: start.canary,
    selector,
    originalRoute: start.base,
    ...(before ? { before } : {}),
  }
  const at = (): RunContext => ({ ...context, now: run.now().toISOString() })
  // A run that died while shifting left an unverified weight: this run verifies it first, and a failure
  // restores what that run would have restored.
  const inherited = start.continuing && before?.phase === 'shifting' ? before.revertTo : undefined
  const revertTo = inherited ?? { route: start.route, ...(before ? { state: withoutRevert(before) } : {}) }
  const outcome = (result: Result, weight: number, error?: Error, unsettled = false): Outcome =>
    run.outcome(result, start, weight, error, unsettled)
  if (start.continuing) {
    run.event(
      `Continuing the rollout of '${start.canary}' ` +
        `(${before?.phase} at ${start.weight} %, started by run ${before?.runId})`,
    )
  }
  const remaining = steps.filter((s) => s.weight > start.weight)
  run.event(
    `Target route: ${run.describeSelector(selector)}; now ${router.describe(start.route)}; ` +
      `stable '${start.stable}', canary '${start.canary}'`,
  )
  let current = start.route
  let weight = start.weight
  let attempted = false
  const commit = async (state: RolloutState | undefined, route: Route, what: string): Promise<void> => {
    await router.write(selector, current, route, state)
    await applied(run, what)
  }
  try {
    if (inherited) {
      attempted = true
      // Take the dead run's change over under this run's id first, so that this run's revert, a post step and
      // any later run all see it as this run's.
      run.deps.onTrafficChange?.()
      run.changed = true
      await commit(
        next(router.state, { type: 'take-over', weight, route: current, revertTo }, at()),
        current,
        `taking over run ${before?.runId}'s change`,
      )
      run.event(`Run ${before?.runId} ended while shifting to ${weight} %, unverified: verifying it first`)
      await checks.verifyCurrent(weight, start.route, `the weight run ${before?.runId} left unverified fails`)
    } else if (remaining.length > 0) {
      await checks.verifyCurrent(weight, start.route, 'the smoke test already fails before any change')
    }
    if (remaining.length === 0 && weight < 100) {
      const held = next(router.state, { type: 'hold', weight, route: current }, at())
      if (!sameState(router.state, held, router)) await commit(held, current, `the pause at ${weight} %`)
      run.event(`Canary at ${weight} %, no step above it: paused`)
      return outcome('paused', weight)
    }
    for (const [i, step] of remaining.entries()) {
      run.deps.checkLock?.()
      run.deps.signal.throwIfAborted()
      const route = router.atWeight(start.base, start.stable, start.canary, step.weight)
      const from = router.weightOf(current, start.canary)
      if (!run.changed) run.deps.onTrafficChange?.()
      const shifted = next(router.state, { type: 'shift', weight: step.weight, route, revertTo }, at())
      attempted = true
      await router.write(selector, current, route, shifted)
      run.changed = true
      current = route
      weight = step.weight
      run.event(`Shifted to ${router.describe(route)}`)
      await checks.appliedStep(i, step.weight)
      await checks.settle(i, from, step.weight, 'step')
      await checks.verifyStep(i, step.weight, step.pauseMs ?? pauseMs, 'step')
    }
    const finished = next(router.state, { type: 'finish', weight, route: current }, at())
    await commit(finished, current, weight === 100 ? 'the promotion' : `the pause at ${weight} %`)
    run.event(
      weight === 100
        ? `Promoted '${start.canary}': it takes 100 % of the route`
        : `Paused at ${weight} % for a later 'promote'`,
    )
    return outcome(weight === 100 ? 'promoted' : 'paused', weight)
  } catch (err) {
    const error = err as Error
    const concurrentChange = err instanceof ConcurrentChangeError
    // A write whose call failed may still have landed (its answer lost): what the cluster holds decides.
    const landed = concurrentChange ? false : await ownWriteLanded(run)
    if (landed) current = (router.state as RolloutState).lastWritten
    const targetLost = concurrentChange && run.changed && isTargetLost(router, selector, start)
    const facts = { concurrentChange, attempted, changed: run.changed, landed, targetLost }
    let decision = afterFailure(facts)
    let failure = error
    if (targetLost) {
      failure = new ConcurrentChangeError(
        `${error.message}. istio-canary cannot find its target route any more: ${run.describeSelector(selector)} ` +
          `is now another route, and no single route is what it last wrote (${router.describe(current)}). ` +
          `As far as it can tell, '${start.canary}' still takes ${router.weightOf(current, start.canary)} %: ` +
          'nothing was reverted and the rollout state is kept. Find the route by hand, then run ' +
          `'rollback' (or 'promote') once ${run.describeSelector(selector)} is it again, or give the route a name`,
        { cause: error },
      )
    }
    if ('revert' in decision) {
      run.changed = true
      let reverted = false
      try {
        await revert(run, selector, current, revertTo, error, at)
        reverted = true
        decision = afterFailure({ ...facts, revert: 'done' })
      } catch (revertError) {
        failure = revertError as Error
        // Someone else changed the route meanwhile: theirs stands.
        const overtaken = failure.cause instanceof ConcurrentChangeError
        decision = afterFailure({ ...facts, revert: overtaken ? 'overtaken' : 'failed' })
      }
      if (reverted) {
        await checks.confirmRestored(
          router.weightOf(current, start.canary),
          router.weightOf(revertTo.route, start.canary),
        )
      }
    }
    if ('revert' in decision) throw new Error('internal: the state machine asked for a second revert')
    const weights = {
      live: () => liveWeight(router, selector, start.canary, weight),
      run: () => weight,
      restored: () => router.weightOf(revertTo.route, start.canary),
      // Traffic stays where this run left it, mid-rollout: report that weight; the post step tries again.
      current: () => router.weightOf(current, start.canary),
    }
    return outcome(decision.result, weights[decision.weight](), failure, decision.unsettled)
  }
}

/**
 * After someone else's change: the selector is positional and now names a route that sends to neither the stable
 * nor the canary subset, so it is not this run's route edited but another one (the router found no single route
 * that is what the run last wrote). Named routes are never lost this way.
 */
function isTargetLost(
  router: TrafficRouter,
  selector: RouteSelector,
  start: { stable: string; canary: string },
): boolean {
  if (selector.by === 'name') return false
  const now = router.findRoute(selector)
  if (!now) return true
  const shares = router.shares(now)
  return !shares.has(start.stable) && !shares.has(start.canary)
}

/** The canary weight of the target route as last read (someone else may have changed it). */
function liveWeight(router: TrafficRouter, selector: RouteSelector, canary: string, fallback: number): number {
  const now = router.findRoute(selector)
  return now ? router.weightOf(now, canary) : fallback
}

/**
 * After a failure: does the target show a shift of this run (a write whose answer was lost)?
 * undefined: cannot tell.
 */
async function ownWriteLanded(run: Run): Promise<boolean | undefined> {
  try {
    await run.router.load()
  } catch {
    return undefined
  }
  const state = run.router.state
  return state?.runId === run.deps.runId && state.phase === 'shifting'
}

function withoutRevert(state: RolloutState): RolloutState {
  const { revertTo: _drop, ...rest } = state
  return rest
}

function sameState(a: RolloutState | undefined, b: RolloutState | undefined, router: TrafficRouter): boolean {
  return (
    a !== undefined &&
    b !== undefined &&
    a.phase === b.phase &&
    a.weight === b.weight &&
    router.same(a.lastWritten, b.lastWritten)
  )
}
