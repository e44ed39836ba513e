// The `status` mode: changes nothing. Reports the rollout state and the target route, and, when verifiers are set,
// their read-only evidence at the current weights (./observe.ts).
import type { Observation } from '../report/report.js'
import { realSleep } from '../retry.js'
import type { Route } from '../routing/router.js'
import { observe } from './observe.js'
import type { Outcome, Run } from './run.js'

/** What `status` looks at: the target route and its versions (state first, then the inputs). Reads only. */
export function statusTarget(run: Run): { route: Route; stable: string; canary: string } {
  const router = run.router
  const state = router.state
  const canary = state?.canary ?? run.plan.canarySubset ?? ''
  // Without a rollout the input names the route: a bad `route` is an error naming the input (as in every mode).
  const route = state?.route ? router.route(state.route) : router.inputRoute({ shadowed: 'allow' })
  const stableSubset = run.plan.stableSubset
  const stable = state?.stable ?? (stableSubset === 'auto' ? run.safeStable(route, canary) : stableSubset)
  return { route, stable, canary }
}

/**
 * `status`: change nothing. Reports the state and the route, and, when verifiers are set, their read-only
 * evidence at the current weights (a smoke probe; the mesh's counts over `windowMs`). A failing probe is
 * reported, never acted on. `statusNotes`: why some evidence is missing, said before `o.notes`.
 */
export async function status(
  run: Run,
  statusNotes: readonly string[],
  o: { windowMs?: number; notes?: string[] } = {},
): Promise<Outcome> {
  const router = run.router
  const state = router.state
  const { route, stable, canary } = statusTarget(run)
  run.event(
    state
      ? `Rollout state: ${state.phase} at ${state.weight} % (canary '${state.canary}', stable '${state.stable}', ` +
          `run ${state.runId}, updated ${state.updatedAt})`
      : `No istio-canary rollout state on this ${router.target.kind}`,
  )
  run.event(`Target route now: ${router.describe(route)}`)
  const weight = canary ? router.weightOf(route, canary) : 0
  const weights = [...router.shares(route)].map(([subset, share]) => ({ subset, weight: share }))
  const notes = [...statusNotes, ...(o.notes ?? [])]
  const observation: Observation = {
    at: run.now().toISOString(),
    ...(state
      ? {
          state: {
            phase: state.phase,
            weight: state.weight,
            stable: state.stable,
            canary: state.canary,
            runId: state.runId,
            startedAt: state.startedAt,
            updatedAt: state.updatedAt,
          },
        }
      : {}),
    weights,
    checks: [],
    notes,
  }
  const verifiers = run.deps.verifiers ?? []
  if (verifiers.length > 0) {
    run.deps.signal.throwIfAborted()
    observation.checks = await observe(verifiers, {
      weight,
      windowMs: o.windowMs ?? 0,
      sleep: run.deps.sleep ?? realSleep,
      signal: run.deps.signal,
      versions: { stable, canary },
    })
    observation.at = run.now().toISOString()
    for (const check of observation.checks) {
      const failed = check.verdict === 'fail' ? ` (FAIL at these weights: ${check.reasons.join('; ')})` : ''
      run.event(`Status ${check.kind}: ${check.summary}${failed}`)
    }
  }
  for (const note of observation.notes) run.event(`Status: ${note}`)
  return { ...run.outcome('unchanged', { stable, canary }, weight), observation }
}
