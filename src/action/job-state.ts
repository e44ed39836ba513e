// What the main step hands to the post step, behind one typed provider (GitHub's saveState/getState underneath,
// which keeps strings only). Each key is written where its fact becomes true, so a main step killed at any point
// leaves exactly what it had done.
import * as core from '@actions/core'
import type { Route, TargetRef } from '../routing/router.js'

/** A preview run's value and its preview route before the run (null: none), for the post step to restore. */
export interface PreviewBefore {
  value: string
  before: Route | null
}

export interface JobStateValues {
  /** The bundle's second invocation is the post step. */
  isPost: boolean
  runId: string
  /** A temporary directory (the kubeconfig) the post step removes. */
  tempDir: string
  target: Pick<TargetRef, 'kind' | 'namespace' | 'name'>
  mainDone: boolean
  /** A traffic change of this run began. */
  changed: boolean
  /** This run may hold the lock: saved just before the Lease create, so a step killed right after it landed leaves
   * the post step a Lease to release (only if its holder is this run). */
  lockHolder: string
  preview: PreviewBefore
  /** The main step ended without knowing its traffic change settled (its revert failed, or a write's outcome
   * was unknown): the post step looks again. */
  unsettled: boolean
}

export interface JobState {
  save<K extends keyof JobStateValues>(key: K, value: JobStateValues[K]): void
  get<K extends keyof JobStateValues>(key: K): JobStateValues[K] | undefined
}

/** Kept as plain text (as earlier releases wrote them, and as a reader of GITHUB_STATE expects); the rest as JSON. */
const TEXT_KEYS: ReadonlySet<keyof JobStateValues> = new Set(['runId', 'tempDir', 'lockHolder'])

/** The runner's job state in GITHUB_STATE. */
export const actionsJobState: JobState = {
  save(key, value) {
    core.saveState(key, TEXT_KEYS.has(key) ? String(value) : JSON.stringify(value))
  },
  get(key) {
    const raw = core.getState(key)
    if (raw === '') return undefined
    if (TEXT_KEYS.has(key)) return raw as JobStateValues[typeof key]
    try {
      return JSON.parse(raw)
    } catch {
      return undefined
    }
  },
}
