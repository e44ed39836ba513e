// The rollout's state, kept in one annotation on the target resource so that any later run
// (workflow_dispatch promote/rollback, a post step) can continue it. Pure encode/decode.
import type { Route, RouteSelector, TargetRef } from './target.js'

export const STATE_ANNOTATION = 'istio-canary.io/state'

/**
 * shifting: a weight was written and is being verified (an unfinished run; a post step reverts it)
 * paused: stopped at a weight below 100 by choice (steps ended below 100), for a later promote/rollout/rollback
 * promoted / rolled-back: finished; the original route is kept so a later `rollback` can still restore it
 */
export type Phase = 'shifting' | 'paused' | 'promoted' | 'rolled-back'

export interface RolloutState {
  version: 1
  phase: Phase
  runId: string
  stable: string
  canary: string
  /** How to find the target route again: its name when it has one, else how the run selected it. */
  route: RouteSelector
  /** The target route exactly as it was before the rollout began. */
  originalRoute: Route
  /** The target route exactly as this action last wrote it (conflict detection). */
  lastWritten: Route
  weight: number
  /** While a run is shifting: what its failure restores (the route and state as they were when that run began). */
  revertTo?: { route: Route; state?: RolloutState }
  startedAt: string
  updatedAt: string
}

export function isActive(s: RolloutState | undefined): boolean {
  return s !== undefined && (s.phase === 'shifting' || s.phase === 'paused')
}

export class StateError extends Error {
  override name = 'StateError'
}

export function decodeState(
  annotations: Record<string, string> | undefined,
  target: Pick<TargetRef, 'kind' | 'name'>,
): RolloutState | undefined {
  const on = `${target.kind} '${target.name}'`
  const raw = annotations?.[STATE_ANNOTATION]
  if (raw === undefined) return undefined
  let s: unknown
  try {
    s = JSON.parse(raw)
  } catch {
    throw new StateError(
      `annotation ${STATE_ANNOTATION} on ${on} is not valid JSON; remove it ` +
        `(kubectl annotate ${target.kind.toLowerCase()} ${target.name} ${STATE_ANNOTATION}-) ` +
        'after checking the route by hand',
    )
  }
  const o = s as Partial<RolloutState>
  const phases: Phase[] = ['shifting', 'paused', 'promoted', 'rolled-back']
  if (
    o.version !== 1 ||
    !phases.includes(o.phase as Phase) ||
    typeof o.stable !== 'string' ||
    typeof o.canary !== 'string' ||
    typeof o.weight !== 'number' ||
    typeof o.route !== 'object' ||
    !o.originalRoute ||
    !o.lastWritten ||
    typeof o.runId !== 'string'
  ) {
    throw new StateError(
      `annotation ${STATE_ANNOTATION} on ${on} is not a state this version of istio-canary understands`,
    )
  }
  return o as RolloutState
}

export function encodeState(s: RolloutState): string {
  return JSON.stringify(s)
}
