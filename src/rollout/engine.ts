// The rollout engine: the one entry of every mode. It loads the target and hands each mode to the module that runs
// it, all sharing one Run (./run.ts): `rollout`/`promote` (./rollout.ts, which asks the state machine ./machine.ts
// what comes next and commits each transition through the traffic router before acting on it), `rollback`
// (./rollback.ts), `status` (./status.ts), the preview modes (./preview.ts) and the post step's revert
// (./revert.ts). A failure after the first traffic change restores the target route as it was when the run began.
import type { StepRecord } from '../report/report.js'
import type { Step } from '../parse.js'
import type { Route } from '../routing/router.js'
import type { RolloutState } from '../routing/state.js'
import type { Verifier } from '../verify/verifier.js'
import { StepChecks } from './checks.js'
import { preview, previewCleanup, restorePreview } from './preview.js'
import { rollback } from './rollback.js'
import { rollout } from './rollout.js'
import { finishRevert } from './revert.js'
import { type EngineDeps, type Outcome, type Plan, Run } from './run.js'
import { type Start, alreadyPromoted, start } from './start.js'
import { status, statusTarget } from './status.js'

export type { Result } from './machine.js'
export type { EngineDeps, Outcome, Plan } from './run.js'
export type { Start } from './start.js'
export { ConcurrentChangeError, NotAppliedError } from '../routing/router.js'
export { RolloutError } from './run.js'
export { RevertFailedError } from './revert.js'
export { ISTIO_PROPAGATION_HINT, NotSettledError, StepFailedError } from './checks.js'

export class Engine {
  readonly steps: StepRecord[]
  readonly events: Array<{ at: string; message: string }>
  /** `status`: why some evidence is missing (a verifier that could not be set up), for its report. */
  readonly statusNotes: string[] = []
  /** What every part of this run shares: its router, deps, plan, report, log and clock. */
  private readonly run: Run
  private readonly checks: StepChecks

  constructor(deps: EngineDeps, plan: Plan) {
    this.run = new Run(deps, plan)
    this.checks = new StepChecks(this.run)
    this.steps = this.run.steps
    this.events = this.run.events
  }

  /** The step's verifiers, known once the gateway is found. */
  setVerifiers(verifiers: Verifier[]): void {
    this.run.deps.verifiers = verifiers
  }

  async load(): Promise<void> {
    await this.run.router.load()
  }

  get currentState(): RolloutState | undefined {
    return this.run.router.state
  }

  /** What the run will do: the target route, versions and where it starts. Validates before any change. */
  start(): Start {
    return start(this.run)
  }

  /**
   * The canary asked for (or the last one, when none is asked for) already has the whole route: promoted by an
   * earlier run, or no rollout in progress and the target route sends everything to canary-subset already.
   */
  alreadyPromoted(): boolean {
    return alreadyPromoted(this.run)
  }

  /** `rollout` (and `promote`, which is a rollout to 100). */
  rollout(steps: Step[], pauseMs: number): Promise<Outcome> {
    return rollout(this.run, this.checks, steps, pauseMs)
  }

  /** `rollback`: the target route back to what it was before the rollout began. */
  rollback(): Promise<Outcome> {
    return rollback(this.run)
  }

  /** What `status` looks at: the target route and its versions (state first, then the inputs). Reads only. */
  statusTarget(): { route: Route; stable: string; canary: string } {
    return statusTarget(this.run)
  }

  /** `status`: change nothing; report the state, the route and the verifiers' read-only evidence. */
  status(o: { windowMs?: number; notes?: string[] } = {}): Promise<Outcome> {
    return status(this.run, this.statusNotes, o)
  }

  /** `preview`: a header-matched route to the canary before every other route; the default route is untouched. */
  preview(header: string, value: string, pauseMs: number): Promise<Outcome> {
    return preview(this.run, this.checks, header, value, pauseMs)
  }

  /** The preview route for this value, as it is now. */
  previewRoute(value: string): Route | undefined {
    return this.run.router.previewRoute(value)
  }

  /** Puts the preview route for this value back as it was before a run (the post step's restore too). */
  restorePreview(
    value: string,
    before: Route | undefined,
    signal: AbortSignal = this.run.deps.signal,
  ): Promise<boolean> {
    return restorePreview(this.run, value, before, signal)
  }

  /** `preview-cleanup`: remove the preview route for this value. */
  previewCleanup(value: string): Promise<Outcome> {
    return previewCleanup(this.run, value)
  }

  /** Post step: finish the revert of a run that was killed while shifting. */
  finishRevert(runId: string): Promise<boolean> {
    return finishRevert(this.run, runId)
  }
}
