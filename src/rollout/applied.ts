// Waiting for the routing API's controllers to take a write of the target (SPEC section 7 rule 3): every write of
// a run (step, pause, promotion, rollback, revert, preview) waits here, bounded, before it goes on.
import { NotAppliedError } from '../routing/router.js'
import { type Run, capitalized } from './run.js'

/**
 * After each write of the target: the routing API's controllers must take it, bounded (the router's awaitApplied;
 * none for a VirtualService). `what` names the write in the log and the error. `signal`: the run's (cancellation
 * ends the wait), or a revert's own bound.
 */
export async function applied(run: Run, what: string, signal: AbortSignal = run.deps.signal): Promise<void> {
  const wait = run.router.awaitApplied
  if (!wait) return
  try {
    await wait.call(run.router, signal)
  } catch (err) {
    if (!(err instanceof NotAppliedError)) throw err
    const how = err.reason === 'rejected' ? 'REJECTED' : 'NOT ACCEPTED IN TIME'
    run.event(`${capitalized(what)}: ${how} (${err.message})`)
    throw new NotAppliedError(err.reason, `${what}: ${err.message}`, err.details)
  }
}
