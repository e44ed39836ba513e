// The action's modes (the `action` input) and what each one does, in one table: a new mode is one row here and
// one runner in action/modes.ts.

export const ACTIONS = ['rollout', 'promote', 'rollback', 'status', 'preview', 'preview-cleanup'] as const
export type Mode = (typeof ACTIONS)[number]

export interface ModeFacts {
  /** `canary-subset` is required. */
  needsCanary: boolean
  /** `preview-value` is required. */
  needsPreviewValue: boolean
  /** Checks the mesh and verifies each traffic step (unless the canary is already promoted). */
  verifies: boolean
  /** Changes routing, so it takes the target's lock first. */
  locks: boolean
  /** With `manifest`: the target must be in it before, and the outcome is written back to it. */
  handsBack: boolean
}

export const MODES: Record<Mode, ModeFacts> = {
  rollout: { needsCanary: true, needsPreviewValue: false, verifies: true, locks: true, handsBack: true },
  promote: { needsCanary: false, needsPreviewValue: false, verifies: true, locks: true, handsBack: true },
  rollback: { needsCanary: false, needsPreviewValue: false, verifies: false, locks: true, handsBack: true },
  status: { needsCanary: false, needsPreviewValue: false, verifies: false, locks: false, handsBack: false },
  preview: { needsCanary: true, needsPreviewValue: true, verifies: true, locks: true, handsBack: false },
  'preview-cleanup': { needsCanary: false, needsPreviewValue: true, verifies: false, locks: true, handsBack: false },
}
