// The rollout as an explicit state machine: which state each write of a run puts on the VirtualService, which
// transitions the engine makes from which phase, and what a run decides after a failure. Pure: no I/O, no
// clock, no route arithmetic. Routes are opaque to the machine (it stores them, never reads them) and every
// weight comes from the caller, who computes it from the routes.
import type { Phase, RolloutState } from '../routing/state.js'

/** A target route as the state records it; the machine only carries it. */
type Route = RolloutState['lastWritten']

/** How a run finds its target route again. */
type Selector = RolloutState['route']

/** What a failure of a shifting run restores: the route (and state) as they were when that run began. */
export type RevertTarget = NonNullable<RolloutState['revertTo']>

/** Who writes a transition and when: every state a run writes carries its id and the time of the write. */
export interface TransitionContext {
  runId: string
  /** ISO time of this transition (the state's updatedAt). */
  now: string
}

/**
 * What a rollout run knows once it has planned, from which every state it writes is built. The engine takes a
 * fresh `now` for each write but one `startedAt` for the whole run, so both are given.
 */
export interface RunContext extends TransitionContext {
  /** ISO time the run began: the startedAt of a rollout it starts afresh. */
  startedAt: string
  stable: string
  canary: string
  /** How this run finds its target route (by name once the route has one). */
  selector: Selector
  /** The target route as it was before the rollout began (for a rollout started afresh). */
  originalRoute: Route
  /** The state on the VirtualService when the run began; an active one is continued. */
  before?: RolloutState | undefined
}

/** A dead run left a weight it never verified: this run claims it under its own id and keeps its revertTo. */
export interface TakeOverEvent {
  type: 'take-over'
  weight: number
  route: Route
  revertTo: RevertTarget
}

/** A step: the route at a new weight, to be verified; a failure restores revertTo. */
export interface ShiftEvent {
  type: 'shift'
  weight: number
  route: Route
  revertTo: RevertTarget
}

/** No step above the current weight: the rollout stays where it is, paused. */
export interface HoldEvent {
  type: 'hold'
  weight: number
  route: Route
}

/** Every step verified: promoted at 100, else paused at the last step for a later promote. */
export interface FinishEvent {
  type: 'finish'
  weight: number
  route: Route
}

/** A failure's revert: `route` written back, and `to` (the state the run began from) restored when there was one. */
export interface RevertEvent {
  type: 'revert'
  route: Route
  /** The canary weight of `route`, recorded when there is no earlier state to restore. */
  restoredWeight: number
  to?: RolloutState | undefined
}

/** The `rollback` mode: the route before the rollout began, recorded as rolled back by this run. */
export interface RollbackEvent {
  type: 'rollback'
  /** The canary weight of the state's originalRoute. */
  originalWeight: number
}

/** The events of a rollout run: they build on what the run began with (RunContext). */
export type RunEvent = TakeOverEvent | ShiftEvent | HoldEvent | FinishEvent

/** The events that put a route back: they build on the current state and need no plan. */
export type RestoreEvent = RevertEvent | RollbackEvent

export type TransitionEvent = RunEvent | RestoreEvent

export type EventType = TransitionEvent['type']

/** The phase a transition starts from: 'none' when the VirtualService carries no rollout state. */
export type FromPhase = 'none' | Phase

/** The phase of a state, 'none' for no state. */
export function phaseOf(state: RolloutState | undefined): FromPhase {
  return state === undefined ? 'none' : state.phase
}

/**
 * The events the engine makes from each phase. A rollout starts afresh from no state or a finished one and
 * continues an active one; a revert follows a failure whose re-read may show the run's own last write or no
 * state at all; a rollback needs a state to take the original route from.
 */
export const TRANSITIONS = {
  // Nothing to continue: a rollout starts afresh (the route already at 100 is promoted before any transition);
  // a revert when the re-read after a failure finds the annotation removed by hand (the route still ours).
  none: ['shift', 'hold', 'revert'],
  // A dead run's is taken over first; this run's steps on, holds or finishes; a failure or post step reverts it.
  shifting: ['take-over', 'shift', 'hold', 'finish', 'revert', 'rollback'],
  // Continued by promote/rollout (finish: a paused state at 100); revert: a lost answer to the pausing write.
  paused: ['shift', 'hold', 'finish', 'revert', 'rollback'],
  // A new canary starts afresh; revert: a lost answer to the promoting write; rollback keeps its original route.
  promoted: ['shift', 'hold', 'revert', 'rollback'],
  // A new rollout starts afresh; rollback again when the route was changed after the earlier one. No revert:
  // no live run writes rolled-back, so it is someone else's, and the route with it.
  'rolled-back': ['shift', 'hold', 'rollback'],
} as const satisfies Record<FromPhase, readonly EventType[]>

/** An event the machine does not allow from the current state: a bug in the caller, never a cluster condition. */
export class TransitionError extends Error {
  override name = 'TransitionError'

  constructor(
    readonly from: FromPhase,
    readonly event: EventType,
    reason = 'not allowed from that phase',
  ) {
    super(`no transition '${event}' from ${from}: ${reason}`)
  }
}

/** Throws unless the table allows the event from the state's phase (and a take-over is of another run). */
function assertAllowed(state: RolloutState | undefined, event: TransitionEvent, runId: string): void {
  const from = phaseOf(state)
  const allowed: readonly EventType[] = TRANSITIONS[from]
  if (!allowed.includes(event.type)) throw new TransitionError(from, event.type)
  // A take-over claims a dead run's change: this run's own shifting state has nothing to claim.
  if (event.type === 'take-over' && state?.runId === runId)
    throw new TransitionError(from, event.type, `the shifting state is this run's own (run ${runId})`)
}

function withoutRevert(state: RolloutState): RolloutState {
  const { revertTo: _drop, ...rest } = state
  return rest
}

/** What every state of a rollout run shares; each write adds its phase, weight, route and time. */
type Base = Omit<RolloutState, 'phase' | 'weight' | 'lastWritten' | 'revertTo'>

/**
 * Built from the state the run began with, never from the state its previous write left, as the engine does:
 * an active state is continued (its subsets, original route and startedAt kept, taken over under this run's
 * id), anything else is replaced by a rollout that starts now. No revertTo: only a shifting state has one.
 */
function baseOf(ctx: RunContext): Base {
  const before = ctx.before
  if (before !== undefined && (before.phase === 'shifting' || before.phase === 'paused')) {
    const { revertTo: _drop, ...continued } = before
    return { ...continued, runId: ctx.runId, route: ctx.selector }
  }
  return {
    version: 1,
    runId: ctx.runId,
    stable: ctx.stable,
    canary: ctx.canary,
    route: ctx.selector,
    originalRoute: ctx.originalRoute,
    startedAt: ctx.startedAt,
    updatedAt: ctx.startedAt,
  }
}

/** A shifting state: the only phase with a revertTo, so that a failure or a post step can restore it. */
function shifting(ctx: RunContext, event: TakeOverEvent | ShiftEvent): RolloutState {
  return {
    ...baseOf(ctx),
    phase: 'shifting',
    weight: event.weight,
    lastWritten: event.route,
    revertTo: event.revertTo,
    updatedAt: ctx.now,
  }
}

/** A settled state of the run: paused, or promoted once the canary has the whole route. */
function settled(ctx: RunContext, phase: 'paused' | 'promoted', event: HoldEvent | FinishEvent): RolloutState {
  return { ...baseOf(ctx), phase, weight: event.weight, lastWritten: event.route, updatedAt: ctx.now }
}

/**
 * The revert as ./revert.ts builds it: the state the run began from, now recording the route written back;
 * without one, the current state rolled back; without either, no state (the annotation is removed).
 */
function reverted(
  state: RolloutState | undefined,
  event: RevertEvent,
  ctx: TransitionContext,
): RolloutState | undefined {
  if (event.to !== undefined) return { ...withoutRevert(event.to), lastWritten: event.route, updatedAt: ctx.now }
  if (state === undefined) return undefined
  return {
    ...withoutRevert(state),
    phase: 'rolled-back',
    weight: event.restoredWeight,
    lastWritten: event.route,
    updatedAt: ctx.now,
  }
}

/** The rollback mode: the original route, recorded under this run's id (whoever began the rollout). */
function rolledBack(state: RolloutState, event: RollbackEvent, ctx: TransitionContext): RolloutState {
  return {
    ...withoutRevert(state),
    runId: ctx.runId,
    phase: 'rolled-back',
    weight: event.originalWeight,
    lastWritten: state.originalRoute,
    updatedAt: ctx.now,
  }
}

/**
 * The state to write for an event from the current state (undefined: no state annotation). Throws a
 * TransitionError for an event TRANSITIONS does not allow. Never changes its arguments.
 */
export function next(
  state: RolloutState | undefined,
  event: RestoreEvent,
  ctx: TransitionContext,
): RolloutState | undefined
export function next(state: RolloutState | undefined, event: TransitionEvent, ctx: RunContext): RolloutState | undefined
export function next(
  state: RolloutState | undefined,
  event: TransitionEvent,
  ctx: RunContext | TransitionContext,
): RolloutState | undefined {
  assertAllowed(state, event, ctx.runId)
  // The overloads give a run event a RunContext; only a restore may come with the bare TransitionContext.
  switch (event.type) {
    case 'take-over':
    case 'shift':
      return shifting(ctx as RunContext, event)
    case 'hold':
      return settled(ctx as RunContext, 'paused', event)
    case 'finish':
      return settled(ctx as RunContext, event.weight === 100 ? 'promoted' : 'paused', event)
    case 'revert':
      return reverted(state, event, ctx)
    case 'rollback':
      // The table refuses a rollback without state.
      return rolledBack(state as RolloutState, event, ctx)
  }
}

/** What a mode ends with, as the engine reports it; revert-failed is a revert that failed after a failure. */
export type Result = 'promoted' | 'rolled-back' | 'paused' | 'previewed' | 'cleaned-up' | 'unchanged' | 'revert-failed'

/** The six values the action's `result` output documents. */
export type OutputResult = Exclude<Result, 'revert-failed'>

/**
 * The `result` output: a failed revert leaves traffic where the run stopped, which the output calls paused; for
 * a preview, the preview route is still live, so it is still previewed.
 */
export function outputResult(result: Result, mode?: string): OutputResult {
  if (result !== 'revert-failed') return result
  return mode === 'preview' ? 'previewed' : 'paused'
}

/** What a run knows after a failure, in the order the engine learns it. */
export interface FailureFacts {
  /** The failure is someone else's change of the target route or state: the run stops without writing. */
  concurrentChange: boolean
  /**
   * With a concurrent change after this run's change: the run cannot find its target route any more (an unnamed
   * route moved, and no single route is what it last wrote): the traffic is as it left it as far as it can tell.
   */
  targetLost?: boolean
  /** A write was sent (its outcome may be unknown). */
  attempted: boolean
  /** A change of this run is known to have landed. */
  changed: boolean
  /** After re-reading: this run's shifting state is in the cluster; undefined: the re-read failed. */
  landed: boolean | undefined
  /** How the revert went, once afterFailure asked for one: overtaken when it found someone else's change. */
  revert?: 'done' | 'failed' | 'overtaken' | undefined
}

/**
 * Which canary weight a failed run reports. live: the route as last read (someone else's); run: the weight the
 * run had reached before the failure; restored: the route the revert wrote; current: the route the run last wrote.
 */
export type ReportedWeight = 'live' | 'run' | 'restored' | 'current'

/** How a failed run ends; unsettled: it cannot tell where traffic is (a post step looks again). */
export interface FailureOutcome {
  result: 'unchanged' | 'rolled-back' | 'revert-failed'
  weight: ReportedWeight
  unsettled: boolean
}

/** Revert now, then ask again with the revert's outcome. */
export interface RevertNeeded {
  revert: true
}

export type FailureDecision = RevertNeeded | FailureOutcome

/**
 * The decision of the engine's catch block. Someone else's change stands; a write whose outcome is unknown
 * (the re-read failed too) leaves the run unsettled; a write the re-read finds landed counts as a change; with
 * no change there is nothing to revert; else the run reverts, and the revert's outcome decides.
 */
export function afterFailure(facts: FailureFacts): FailureDecision {
  const decision = beforeRevert(facts)
  if ('result' in decision) {
    if (facts.revert !== undefined)
      throw new Error(`a revert outcome ('${facts.revert}') for a failure that needs no revert`)
    return decision
  }
  return facts.revert === undefined ? decision : afterRevert(facts.revert)
}

/** The decision before any revert: a final outcome, or a revert. */
function beforeRevert(facts: FailureFacts): FailureDecision {
  if (facts.concurrentChange && facts.targetLost && facts.changed)
    return { result: 'revert-failed', weight: 'current', unsettled: true }
  if (facts.concurrentChange) return { result: 'unchanged', weight: 'live', unsettled: false }
  // The write may or may not have landed, and the cluster could not be read to tell.
  if (facts.landed === undefined && facts.attempted && !facts.changed)
    return { result: 'unchanged', weight: 'run', unsettled: true }
  const changed = facts.changed || facts.landed === true
  if (!changed) return { result: 'unchanged', weight: 'run', unsettled: false }
  return { revert: true }
}

/** A revert's outcome: done restores the route; overtaken leaves someone else's; failed leaves the run's. */
function afterRevert(revert: 'done' | 'failed' | 'overtaken'): FailureOutcome {
  switch (revert) {
    case 'done':
      return { result: 'rolled-back', weight: 'restored', unsettled: false }
    case 'overtaken':
      return { result: 'unchanged', weight: 'live', unsettled: false }
    case 'failed':
      return { result: 'revert-failed', weight: 'current', unsettled: true }
  }
}
