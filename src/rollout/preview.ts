// The preview modes: `preview` puts a header-matched route to the canary before every other route and checks it
// (the default route is untouched), removing it again when it fails; `preview-cleanup` removes it; and the restore
// of a preview route as it was before a run, which the post step uses too.
import type { Route } from '../routing/router.js'
import { applied } from './applied.js'
import type { StepChecks } from './checks.js'
import type { Result } from './machine.js'
import { bounded } from './revert.js'
import type { Outcome, Run } from './run.js'

/** `preview`: a header-matched route to the canary before every other route; the default route is untouched. */
export async function preview(
  run: Run,
  checks: StepChecks,
  header: string,
  value: string,
  pauseMs: number,
): Promise<Outcome> {
  const router = run.router
  const canary = run.plan.canarySubset as string
  // A preview route goes before every other route: a shadowed target only lends it its destination host.
  const target = router.inputRoute({ shadowed: 'allow' })
  const stable = run.safeStable(target, canary)
  const out = (result: Result, error?: Error, unsettled = false): Outcome =>
    run.outcome(result, { stable, canary }, router.weightOf(target, canary), error, unsettled)
  const name = router.previewName(value)
  const before = router.previewRoute(value)
  let attempted = false
  try {
    run.deps.checkLock?.()
    run.deps.onTrafficChange?.()
    attempted = true
    const wrote = await router.setPreview(canary, header, value)
    run.changed = true
    run.event(`Preview route '${name}': requests with '${header}: ${value}' go to '${canary}'`)
    if (wrote) await applied(run, `the preview route '${name}'`)
    // Until the proxies have it, requests with the header follow the target route.
    await checks.settle(0, before ? 100 : router.weightOf(target, canary), 100, 'preview', { [header]: value })
    await checks.verifyStep(0, 100, pauseMs, 'preview', { [header]: value })
    return out('previewed')
  } catch (err) {
    // A failed write may still have landed: the post step looks again.
    if (!run.changed) return out('unchanged', err as Error, attempted)
    run.event(`Removing the preview route after: ${(err as Error).message}`)
    try {
      await bounded(
        run,
        (signal) => restorePreview(run, value, before, signal),
        err as Error,
        `Remove the ${router.target.kind === 'HTTPRoute' ? 'rule' : 'http route'} '${name}' of ${run.ref} by hand`,
      )
    } catch (revertError) {
      // The preview route is still live (the post step tries again).
      return out('revert-failed', revertError as Error, true)
    }
    return out('rolled-back', err as Error)
  }
}

/**
 * Puts the preview route for this value back as it was before a run: removed, or the earlier one first again; a
 * write waits for the routing API's controllers to take it (bounded; `signal` ends the wait).
 */
export async function restorePreview(
  run: Run,
  value: string,
  before: Route | undefined,
  signal: AbortSignal = run.deps.signal,
): Promise<boolean> {
  const written = await run.router.restorePreview(value, before)
  if (written) await applied(run, `restoring the preview route '${run.router.previewName(value)}'`, signal)
  return written
}

/** `preview-cleanup`: remove the preview route for this value. */
export async function previewCleanup(run: Run, value: string): Promise<Outcome> {
  const router = run.router
  const canary = run.plan.canarySubset ?? ''
  const name = router.previewName(value)
  const removed = await router.restorePreview(value, undefined)
  if (removed) await applied(run, `removing the preview route '${name}'`)
  run.event(removed ? `Removed preview route '${name}'` : `No preview route '${name}' on ${run.ref}: nothing to remove`)
  const stable = run.plan.stableSubset === 'auto' ? '' : run.plan.stableSubset
  return run.outcome(removed ? 'cleaned-up' : 'unchanged', { stable, canary }, 0)
}
