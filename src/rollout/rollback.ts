// The `rollback` mode: the target route back to what it was before the rollout began, as the rollout state on the
// target records it (a run's own failure reverts through ./revert.ts instead).
import { type RolloutState, STATE_ANNOTATION } from '../routing/state.js'
import { applied } from './applied.js'
import { type Result, next } from './machine.js'
import { type Outcome, RolloutError, type Run } from './run.js'
import { assertOurs } from './start.js'

/** `rollback`: the target route back to what it was before the rollout began. */
export async function rollback(run: Run): Promise<Outcome> {
  const router = run.router
  const state = router.state
  if (!state) {
    throw new RolloutError(
      `${run.ref} carries no istio-canary state (annotation ${STATE_ANNOTATION}): there is no rollout to roll back`,
    )
  }
  const out = (result: Result, weight: number): Outcome => run.outcome(result, state, weight)
  const route = router.route(state.route)
  if (state.phase === 'rolled-back' && router.same(route, state.originalRoute)) {
    run.event(`${run.ref} is already rolled back: ${router.describe(route)}`)
    return out('rolled-back', router.weightOf(route, state.canary))
  }
  // Someone already put the route back by hand: that is what rollback writes, so only the state changes.
  const byHand = !router.same(route, state.lastWritten) && router.same(route, state.originalRoute)
  if (!byHand) {
    assertOurs(run, route, state)
    run.deps.onTrafficChange?.()
  }
  const originalWeight = router.weightOf(state.originalRoute, state.canary)
  const rolledBack = next(state, { type: 'rollback', originalWeight }, run.transition()) as RolloutState
  await router.write(state.route, route, state.originalRoute, rolledBack)
  await applied(run, 'the rollback')
  const was = router.describe(route)
  run.event(
    byHand
      ? `${run.ref} was already reverted by hand to the route before the rollout (${was}): recorded as rolled back`
      : `Rolled back: ${router.describe(state.originalRoute)} (was ${was})`,
  )
  return out('rolled-back', rolledBack.weight)
}
