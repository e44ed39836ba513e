// Restoring the target route as it was before a run, after a failure of the run (SPEC section 4 rule 4) or from the
// post step of a run that was killed while shifting: bounded in time, not cancellable, and when it fails it says
// what to do by hand.
import { formatDuration } from '../parse.js'
import { ConcurrentChangeError, type Route, type RouteSelector } from '../routing/router.js'
import type { RolloutState } from '../routing/state.js'
import { type TransitionContext, TransitionError, next } from './machine.js'
import { applied } from './applied.js'
import { RolloutError, type Run } from './run.js'

/** A failure whose revert failed too: traffic is still where the run left it. */
export class RevertFailedError extends Error {
  override name = 'RevertFailedError'
}

/** Restores the route (and state) as they were when the run began. Bounded in time, not cancellable. */
export async function revert(
  run: Run,
  selector: RouteSelector,
  current: Route,
  to: { route: Route; state?: RolloutState },
  cause: Error,
  at: () => TransitionContext,
): Promise<void> {
  const router = run.router
  run.event(`Reverting ${run.ref} after: ${cause.message}`)
  let written = false
  const restore = async (signal: AbortSignal): Promise<void> => {
    const state = router.state
    const restoredWeight = state ? router.weightOf(to.route, state.canary) : 0
    const event = { type: 'revert', route: to.route, restoredWeight, ...(to.state ? { to: to.state } : {}) } as const
    let reverted: RolloutState | undefined
    try {
      reverted = next(state, event, at())
    } catch (err) {
      if (!(err instanceof TransitionError)) throw err
      // Only someone else can have put the target in a state this run's revert cannot follow.
      throw new ConcurrentChangeError(
        `the rollout state of ${run.ref} was changed by someone else during the run ` +
          `(now: ${state ? `run ${state.runId}, ${state.phase}` : 'removed'}); not overwriting it`,
        { cause: err },
      )
    }
    await router.write(selector, current, to.route, reverted)
    written = true
    // The revert waits for its parents too: a revert they do not take leaves traffic where the run left it.
    await applied(run, 'the revert', signal)
  }
  await bounded(run, restore, cause, () =>
    written
      ? 'The revert was written but is not in effect: traffic may still follow the change this run made, and ' +
        "the run is unsettled. Look at the status of the route's parents; once they accept it, the route is " +
        `restored (else restore it by hand: ${JSON.stringify(to.route)})`
      : `Restore the route by hand: ${JSON.stringify(to.route)}`,
  )
  run.event(`Restored the route as it was before the run: ${router.describe(to.route)}`)
}

/**
 * A revert: bounded in time (it does not obey the cancelled signal, only its own bound, which `work` is given to
 * end its waits with); its failure says what to do by hand.
 */
export async function bounded(
  run: Run,
  work: (signal: AbortSignal) => Promise<unknown>,
  cause: Error,
  byHand: string | (() => string),
): Promise<void> {
  const timeout = run.deps.revertTimeoutMs ?? 60_000
  const bound = new AbortController()
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      work(bound.signal),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const late = new RolloutError(`reverting ${run.ref} did not finish within ${formatDuration(timeout)}`)
          bound.abort(late)
          reject(late)
        }, timeout)
      }),
    ])
  } catch (err) {
    run.event(`REVERT FAILED: ${(err as Error).message}`)
    const what = typeof byHand === 'string' ? byHand : byHand()
    throw new RevertFailedError(`${cause.message}. REVERT FAILED: ${(err as Error).message}. ${what}`, {
      cause: err,
    })
  } finally {
    clearTimeout(timer)
  }
}

/** Post step: finish the revert of a run that was killed while shifting. */
export async function finishRevert(run: Run, runId: string): Promise<boolean> {
  const router = run.router
  const state = router.state
  if (!state || state.runId !== runId || state.phase !== 'shifting' || !state.revertTo) return false
  if (!router.same(router.findRoute(state.route), state.lastWritten)) {
    run.event('The target route was changed by someone else since this run wrote it: leaving it as it is')
    return false
  }
  run.changed = true
  await revert(
    run,
    state.route,
    state.lastWritten,
    state.revertTo,
    new Error('the main step ended before finishing its run'),
    () => run.transition(),
  )
  return true
}
