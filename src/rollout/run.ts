// What one engine run shares with every part of it (./engine.ts builds one; ./checks.ts, ./revert.ts, ./rollout.ts,
// ./preview.ts, ./status.ts and the rest are given it): the router, the deps and plan, the steps and events it
// records, its clock, and whether a traffic change of the run has landed. One object, passed, never copied, so
// that every part records into the same report and log.
import type { Observation, StepRecord } from '../report/report.js'
import type { Sleep } from '../retry.js'
import {
  type Route,
  type RouteSelector,
  type TrafficRouter,
  describeSelector,
  describeTarget,
} from '../routing/router.js'
import type { Verifier } from '../verify/verifier.js'
import type { Result, TransitionContext } from './machine.js'

/** What the inputs ask of the rollout (the router knows the target and its route). */
export interface Plan {
  stableSubset: string | 'auto'
  canarySubset?: string
}

export interface EngineDeps {
  router: TrafficRouter
  /** Each step's verifiers: known once the mesh is checked (setVerifiers). */
  verifiers?: Verifier[]
  /** Aborted on cancellation (SIGINT/SIGTERM). */
  signal: AbortSignal
  runId: string
  log: (message: string) => void
  /** A warning (a GitHub annotation); default: log. */
  warn?: (message: string) => void
  /** Called before the first traffic change with what a post step needs to finish a revert. */
  onTrafficChange?: () => void
  /** Raises when the lock was lost (checked before each change). */
  checkLock?: () => void
  now?: () => Date
  /** Upper bound for a revert after a failure (it does not obey the cancelled signal). */
  revertTimeoutMs?: number
  /** How `status` waits out its telemetry window (tests: a fake). */
  sleep?: Sleep
  /** Where to look when proxies do not take a route change, in the mesh's words (default Istio's). */
  propagationHint?: () => string
}

export interface Outcome {
  result: Result
  stable: string
  canary: string
  canaryWeight: number
  steps: StepRecord[]
  /** `status`: the route now and what the verifiers saw of it. */
  observation?: Observation
  /** Set when the run failed (after any revert): the step fails with it. */
  error?: Error
  /** The run cannot tell that its traffic change settled (its revert failed, or a write's outcome is unknown). */
  unsettled?: boolean
  events: Array<{ at: string; message: string }>
}

/** The run cannot go on as asked: a plan at odds with the target's state, a failing baseline, a late revert. */
export class RolloutError extends Error {
  override name = 'RolloutError'
}

/** "smoke" -> "Smoke": a log line that begins with a name. */
export const capitalized = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1)

export class Run {
  readonly steps: StepRecord[] = []
  readonly events: Array<{ at: string; message: string }> = []
  /** A traffic change of this run is known to have landed. */
  changed = false
  readonly router: TrafficRouter

  constructor(
    readonly deps: EngineDeps,
    readonly plan: Plan,
  ) {
    this.router = deps.router
  }

  now(): Date {
    return this.deps.now?.() ?? new Date()
  }

  /** Who writes a restoring transition (revert, rollback) and when: all the machine needs for one. */
  transition(): TransitionContext {
    return { runId: this.deps.runId, now: this.now().toISOString() }
  }

  event(message: string): void {
    this.events.push({ at: this.now().toISOString(), message })
    this.deps.log(message)
  }

  /** An event the user must see: in the report like any other, and a warning in the log. */
  warning(message: string): void {
    this.events.push({ at: this.now().toISOString(), message })
    ;(this.deps.warn ?? this.deps.log)(message)
  }

  get ref(): string {
    return describeTarget(this.router.target)
  }

  /** The selector in the words of the target's API ("the default rule" of an HTTPRoute). */
  describeSelector(selector: RouteSelector): string {
    return describeSelector(selector, this.router.target.kind)
  }

  /** What a mode ends with: its result and versions, with this run's steps and events. */
  outcome(
    result: Result,
    versions: { stable: string; canary: string },
    canaryWeight: number,
    error?: Error,
    unsettled = false,
  ): Outcome {
    return {
      result,
      stable: versions.stable,
      canary: versions.canary,
      canaryWeight,
      steps: this.steps,
      events: this.events,
      ...(error ? { error } : {}),
      ...(unsettled ? { unsettled } : {}),
    }
  }

  /** The stable subset `auto` finds on this route, or '' when it finds none (reports only, never a write). */
  safeStable(route: Route, canary: string): string {
    try {
      return this.router.resolveStable(route, 'auto', canary)
    } catch {
      return ''
    }
  }
}
