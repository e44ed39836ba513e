// What each mode runs, once the checks passed and the lock is held (the table of what each mode needs is
// ../modes.ts).
import type { Inputs } from '../inputs.js'
import type { Mode } from '../modes.js'
import type { Engine, Outcome } from '../rollout/engine.js'
import type { JobState } from './job-state.js'

type Runner = (engine: Engine, inputs: Inputs, jobState: JobState) => Promise<Outcome>

/** The longest telemetry window a `status` run watches. */
export const STATUS_WINDOW_MAX_MS = 5 * 60_000

const previewValue = (inputs: Inputs): string => inputs['preview-value'] as string

export const RUNNERS: Record<Mode, Runner> = {
  rollout: (engine, inputs) => engine.rollout(inputs.steps, inputs.pause),
  promote: (engine, inputs) => engine.rollout([{ weight: 100 }], inputs.pause),
  rollback: (engine) => engine.rollback(),
  // The mesh's counters are watched over `pause` (at most 5 minutes): the evidence of a recent window.
  status: (engine, inputs) => engine.status({ windowMs: Math.min(inputs.pause, STATUS_WINDOW_MAX_MS) }),
  preview: (engine, inputs, jobState) => {
    // Before the change: the post step of a killed run restores exactly this.
    jobState.save('preview', { value: previewValue(inputs), before: engine.previewRoute(previewValue(inputs)) ?? null })
    return engine.preview(inputs['preview-header'], previewValue(inputs), inputs.pause)
  },
  'preview-cleanup': (engine, inputs) => engine.previewCleanup(previewValue(inputs)),
}
