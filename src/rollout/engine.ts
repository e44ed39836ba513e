// The rollout engine: loads the target, asks the state machine (./machine.ts) what comes next, and commits each
// transition through the traffic router (route and state in one conditional write) before acting on it. A
// failure after the first traffic change restores the target route as it was when the run began.
import type { Observation, StepRecord } from '../report/report.js'
import { type Step, formatDuration } from '../parse.js'
import { type Sleep, realSleep } from '../retry.js'
import {
  ConcurrentChangeError,
  NotAppliedError,
  type Route,
  type RouteSelector,
  type TrafficRouter,
  describeSelector,
  describeTarget,
} from '../routing/router.js'
import { type RolloutState, STATE_ANNOTATION, isActive } from '../routing/state.js'
import { type Check, type StepContext, type Verifier, failureReasons, passed, runChecks } from '../verify/verifier.js'
import { type Result, type RunContext, type TransitionContext, TransitionError, afterFailure, next } from './machine.js'
import { observe } from './observe.js'

export type { Result } from './machine.js'

/** What the inputs ask of the rollout (the router knows the target and its route). */
export interface Plan {
  stableSubset: string | 'auto'
  canarySubset?: string
}

/** Where a change that never reaches the proxies is seen on Istio. */
export const ISTIO_PROPAGATION_HINT = 'istiod has not pushed it to every proxy: see istioctl proxy-status'

export interface EngineDeps {
  router: TrafficRouter
  /** Each step's verifiers: known once the mesh is checked (setVerifiers). */
  verifiers?: Verifier[]
  /** Aborted on cancellation (SIGINT/SIGTERM). */
  signal: AbortSignal
  runId: string
  log: (message: string) => void
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

export { ConcurrentChangeError, NotAppliedError }

export class RolloutError extends Error {
  override name = 'RolloutError'
}

/** A failure whose revert failed too: traffic is still where the run left it. */
export class RevertFailedError extends Error {
  override name = 'RevertFailedError'
}

export class StepFailedError extends Error {
  override name = 'StepFailedError'
}

/** Traffic did not follow a route change within the bound: the step was not judged. */
export class NotSettledError extends StepFailedError {
  override name = 'NotSettledError'
}

/** Where a rollout starts: the target route, its versions and the canary weight it has now. */
export interface Start {
  route: Route
  stable: string
  canary: string
  /** The route as it was before the rollout began (a continued rollout's original route). */
  base: Route
  weight: number
  continuing: boolean
}

const capitalized = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1)

export class Engine {
  readonly steps: StepRecord[] = []
  readonly events: Array<{ at: string; message: string }> = []
  /** `status`: why some evidence is missing (a verifier that could not be set up), for its report. */
  readonly statusNotes: string[] = []
  /** A traffic change of this run is known to have landed. */
  private changed = false
  private readonly router: TrafficRouter

  constructor(
    private readonly deps: EngineDeps,
    private readonly plan: Plan,
  ) {
    this.router = deps.router
  }

  /** What a mode ends with: its result and versions, with this run's steps and events. */
  private outcome(
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

  /** The step's verifiers, known once the gateway is found. */
  setVerifiers(verifiers: Verifier[]): void {
    this.deps.verifiers = verifiers
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date()
  }

  /** Who writes a restoring transition (revert, rollback) and when: all the machine needs for one. */
  private transition(): TransitionContext {
    return { runId: this.deps.runId, now: this.now().toISOString() }
  }

  private event(message: string): void {
    this.events.push({ at: this.now().toISOString(), message })
    this.deps.log(message)
  }

  private get ref(): string {
    return describeTarget(this.router.target)
  }

  /** The selector in the words of the target's API ("the default rule" of an HTTPRoute). */
  private describeSelector(selector: RouteSelector): string {
    return describeSelector(selector, this.router.target.kind)
  }

  private get inputSelector(): RouteSelector {
    return this.router.target.route
  }

  async load(): Promise<void> {
    await this.router.load()
  }

  get currentState(): RolloutState | undefined {
    return this.router.state
  }

  /** The selector to find the target route again: by name when it has one, else as the rollout first found it. */
  private stableSelector(route: Route): RouteSelector {
    const state = this.router.state
    return this.router.selectorFor(route, state && isActive(state) ? state.route : this.inputSelector)
  }

  /** What the run will do: the target route, versions and where it starts. Validates before any change. */
  start(): Start {
    const state = this.router.state
    const { canarySubset, stableSubset } = this.plan
    if (state && isActive(state)) {
      if (canarySubset !== undefined && canarySubset !== state.canary) {
        throw new RolloutError(
          `${this.ref} has a rollout of canary '${state.canary}' in progress ` +
            `(${state.phase} at ${state.weight} %, run ${state.runId}); ` +
            `finish it with action 'promote' or 'rollback' before rolling out '${canarySubset}'`,
        )
      }
      if (stableSubset !== 'auto' && stableSubset !== state.stable) {
        throw new RolloutError(
          `${this.ref} has a rollout in progress whose stable subset is '${state.stable}', not '${stableSubset}'`,
        )
      }
      const route = this.router.route(state.route)
      this.assertOurs(route, state)
      return {
        route,
        stable: state.stable,
        canary: state.canary,
        base: state.originalRoute,
        weight: state.weight,
        continuing: true,
      }
    }
    const route = this.router.inputRoute()
    if (canarySubset === undefined) {
      throw new RolloutError(
        `${this.ref} has no rollout in progress; set 'canary-subset' to start one (or to promote that subset directly)`,
      )
    }
    const stable = this.router.resolveStable(route, stableSubset, canarySubset)
    if (stable === canarySubset) throw new RolloutError(`stable and canary subset are both '${canarySubset}'`)
    if (!this.router.shares(route).has(stable)) {
      throw new RolloutError(
        `${this.describeSelector(this.inputSelector)} of ${this.ref} does not route to stable subset '${stable}' ` +
          `(it routes: ${this.router.describe(route)})`,
      )
    }
    const weight = this.router.weightOf(route, canarySubset)
    return { route, stable, canary: canarySubset, base: route, weight, continuing: false }
  }

  private assertOurs(route: Route | undefined, state: RolloutState): void {
    if (!this.router.same(route, state.lastWritten)) {
      throw new ConcurrentChangeError(
        `the target route of ${this.ref} was changed by someone else since istio-canary last wrote it ` +
          `(run ${state.runId}); not overwriting it. ` +
          `It now routes: ${route ? this.router.describe(route) : '(route missing)'}; ` +
          `istio-canary wrote: ${this.router.describe(state.lastWritten)}. ` +
          `Decide on the route by hand, then remove the annotation ${STATE_ANNOTATION} ` +
          'to let istio-canary start afresh',
      )
    }
  }

  private get verifiers(): Verifier[] {
    const verifiers = this.deps.verifiers
    if (!verifiers || verifiers.length === 0) throw new Error('internal: no verifier configured')
    return verifiers
  }

  /** What the step's log lines call its checks: "smoke", "smoke + telemetry". */
  private get checkLabel(): string {
    return this.verifiers.map((v) => v.kind).join(' + ')
  }

  private async check(step: Omit<StepContext, 'signal'>): Promise<Check[]> {
    this.deps.signal.throwIfAborted()
    return runChecks(this.verifiers, { ...step, signal: this.deps.signal })
  }

  /**
   * After each write of the target (SPEC section 7 rule 3): the routing API's controllers must take it, bounded
   * (the router's awaitApplied; none for a VirtualService). `what` names the write in the log and the error.
   * `signal`: the run's (cancellation ends the wait), or a revert's own bound.
   */
  private async applied(what: string, signal: AbortSignal = this.deps.signal): Promise<void> {
    const wait = this.router.awaitApplied
    if (!wait) return
    try {
      await wait.call(this.router, signal)
    } catch (err) {
      if (!(err instanceof NotAppliedError)) throw err
      const how = err.reason === 'rejected' ? 'REJECTED' : 'NOT ACCEPTED IN TIME'
      this.event(`${capitalized(what)}: ${how} (${err.message})`)
      throw new NotAppliedError(err.reason, `${what}: ${err.message}`, err.details)
    }
  }

  /** A shift's wait for its controllers: one they do not take is the step's failure, unjudged, in the report too. */
  private async appliedStep(index: number, weight: number): Promise<void> {
    const startedAt = this.now().toISOString()
    try {
      await this.applied(`step ${index + 1} at ${weight} %`)
    } catch (err) {
      if (err instanceof NotAppliedError) {
        this.steps.push({
          index: index + 1,
          weight,
          pauseMs: 0,
          startedAt,
          endedAt: this.now().toISOString(),
          checks: [],
          verdict: 'fail',
          reasons: [...(err.details.length > 0 ? err.details : [err.message])],
        })
      }
      throw err
    }
  }

  /** Said once a run: no verifier can tell when traffic follows a change. */
  private unconfirmedSaid = false

  /**
   * After a route write, before the step's checks: waits (bounded) until traffic follows the change, so that a
   * slow push of istiod is neither blamed on the canary nor mistaken for its success. A change that does not
   * arrive fails the step unjudged.
   */
  private async settle(
    index: number,
    from: number,
    to: number,
    kind: 'step' | 'preview',
    headers: Record<string, string> = {},
  ): Promise<void> {
    const settlers = this.verifiers.filter((v) => v.settle !== undefined)
    if (settlers.length === 0) {
      if (!this.unconfirmedSaid) {
        this.event(
          "Whether the proxies have the new route cannot be confirmed without 'version-pattern': " +
            'each step is judged after its pause',
        )
      }
      this.unconfirmedSaid = true
      return
    }
    const startedAt = this.now().toISOString()
    for (const verifier of settlers) {
      this.deps.signal.throwIfAborted()
      const settled = await (verifier.settle as NonNullable<Verifier['settle']>)({
        kind,
        from,
        to,
        headers,
        signal: this.deps.signal,
      })
      const what = kind === 'preview' ? 'the preview route' : `${to} %`
      if (settled.outcome === 'settled') {
        this.event(`Settled at ${what}: ${settled.summary}`)
      } else if (settled.outcome === 'failing') {
        this.event(`Not settled at ${what}, the probes fail: ${settled.summary}; judging the step on them`)
      } else {
        const reason =
          `the proxies did not take the new route: ${settled.summary}. ` +
          `The step was not judged (${this.deps.propagationHint?.() ?? ISTIO_PROPAGATION_HINT})`
        this.steps.push({
          index: index + 1,
          weight: to,
          pauseMs: 0,
          startedAt,
          endedAt: this.now().toISOString(),
          checks: [],
          verdict: 'fail',
          reasons: [reason],
        })
        this.event(`Step ${index + 1} at ${to} %: NOT SETTLED (${reason})`)
        throw new NotSettledError(`step ${index + 1} at ${to} % unsettled: ${reason}`)
      }
    }
  }

  private async verifyStep(
    index: number,
    weight: number,
    pauseMs: number,
    kind: 'step' | 'preview',
    headers: Record<string, string> = {},
  ): Promise<void> {
    const startedAt = this.now().toISOString()
    const checks = await this.check({ kind, index: index + 1, weight, pauseMs, headers })
    const pass = passed(checks)
    const reasons = failureReasons(checks)
    this.steps.push({
      index: index + 1,
      weight,
      pauseMs,
      startedAt,
      endedAt: this.now().toISOString(),
      checks,
      verdict: pass ? 'pass' : 'fail',
      reasons,
    })
    const seen = checks.map((c) => c.summary).join('; ')
    this.event(`Step ${index + 1} at ${weight} %: ${seen}: ${pass ? 'pass' : `FAIL (${reasons.join('; ')})`}`)
    if (!pass) throw new StepFailedError(`${this.checkLabel} test failed at ${weight} %: ${reasons.join('; ')}`)
  }

  /**
   * The canary asked for (or the last one, when none is asked for) already has the whole route: promoted by an
   * earlier run, or no rollout in progress and the target route sends everything to canary-subset already.
   */
  alreadyPromoted(): boolean {
    const state = this.router.state
    const canary = this.plan.canarySubset
    if (state?.phase === 'promoted') return canary === undefined || canary === state.canary
    if (isActive(state) || canary === undefined) return false
    const route = this.router.findRoute(this.inputSelector)
    return route !== undefined && this.router.weightOf(route, canary) === 100
  }

  /**
   * Check of the route as it is: before the first change, so that a rollout never starts into an application
   * that already fails (a failing stable version would otherwise be blamed on the canary); and of a weight a dead
   * run left unverified.
   */
  private async verifyCurrent(weight: number, route: Route, failure: string): Promise<void> {
    const checks = await this.check({ kind: 'baseline', index: 0, weight, pauseMs: 0, headers: {} })
    const pass = passed(checks)
    const reasons = failureReasons(checks)
    const seen = checks.map((c) => c.summary.replace(/ \(.*$/, '')).join('; ')
    this.event(
      `${capitalized(this.checkLabel)} test of the route as it is (${this.router.describe(route)}): ${seen}: ` +
        `${pass ? 'pass' : `FAIL (${reasons.join('; ')})`}`,
    )
    if (!pass) {
      const what = this.changed ? '' : ' Nothing was changed; fix the application or the smoke test inputs first.'
      throw new RolloutError(
        `${failure}, with the route at ${this.router.describe(route)}: ${reasons.join('; ')}.${what}`,
      )
    }
  }

  /** `rollout` (and `promote`, which is a rollout to 100). */
  async rollout(steps: Step[], pauseMs: number): Promise<Outcome> {
    if (this.alreadyPromoted()) return this.promotedAlready()
    const start = this.start()
    const selector = this.stableSelector(start.route)
    const before = this.router.state
    const context: RunContext = {
      runId: this.deps.runId,
      now: this.now().toISOString(),
      startedAt: this.now().toISOString(),
      stable: start.stable,
      canary: start.canary,
      selector,
      originalRoute: start.base,
      ...(before ? { before } : {}),
    }
    const at = (): RunContext => ({ ...context, now: this.now().toISOString() })
    // A run that died while shifting left an unverified weight: this run verifies it first, and a failure
    // restores what that run would have restored.
    const inherited = start.continuing && before?.phase === 'shifting' ? before.revertTo : undefined
    const revertTo = inherited ?? { route: start.route, ...(before ? { state: withoutRevert(before) } : {}) }
    const outcome = (result: Result, weight: number, error?: Error, unsettled = false): Outcome =>
      this.outcome(result, start, weight, error, unsettled)
    if (start.continuing) {
      this.event(
        `Continuing the rollout of '${start.canary}' ` +
          `(${before?.phase} at ${start.weight} %, started by run ${before?.runId})`,
      )
    }
    const remaining = steps.filter((s) => s.weight > start.weight)
    this.event(
      `Target route: ${this.describeSelector(selector)}; now ${this.router.describe(start.route)}; ` +
        `stable '${start.stable}', canary '${start.canary}'`,
    )
    let current = start.route
    let weight = start.weight
    let attempted = false
    const commit = async (state: RolloutState | undefined, route: Route, what: string): Promise<void> => {
      await this.router.write(selector, current, route, state)
      await this.applied(what)
    }
    try {
      if (inherited) {
        attempted = true
        // Take the dead run's change over under this run's id first, so that this run's revert, a post step and
        // any later run all see it as this run's.
        this.deps.onTrafficChange?.()
        this.changed = true
        await commit(
          next(this.router.state, { type: 'take-over', weight, route: current, revertTo }, at()),
          current,
          `taking over run ${before?.runId}'s change`,
        )
        this.event(`Run ${before?.runId} ended while shifting to ${weight} %, unverified: verifying it first`)
        await this.verifyCurrent(weight, start.route, `the weight run ${before?.runId} left unverified fails`)
      } else if (remaining.length > 0) {
        await this.verifyCurrent(weight, start.route, 'the smoke test already fails before any change')
      }
      if (remaining.length === 0 && weight < 100) {
        const held = next(this.router.state, { type: 'hold', weight, route: current }, at())
        if (!sameState(this.router.state, held, this.router)) await commit(held, current, `the pause at ${weight} %`)
        this.event(`Canary at ${weight} %, no step above it: paused`)
        return outcome('paused', weight)
      }
      for (const [i, step] of remaining.entries()) {
        this.deps.checkLock?.()
        this.deps.signal.throwIfAborted()
        const route = this.router.atWeight(start.base, start.stable, start.canary, step.weight)
        const from = this.router.weightOf(current, start.canary)
        if (!this.changed) this.deps.onTrafficChange?.()
        const shifted = next(this.router.state, { type: 'shift', weight: step.weight, route, revertTo }, at())
        attempted = true
        await this.router.write(selector, current, route, shifted)
        this.changed = true
        current = route
        weight = step.weight
        this.event(`Shifted to ${this.router.describe(route)}`)
        await this.appliedStep(i, step.weight)
        await this.settle(i, from, step.weight, 'step')
        await this.verifyStep(i, step.weight, step.pauseMs ?? pauseMs, 'step')
      }
      const finished = next(this.router.state, { type: 'finish', weight, route: current }, at())
      await commit(finished, current, weight === 100 ? 'the promotion' : `the pause at ${weight} %`)
      this.event(
        weight === 100
          ? `Promoted '${start.canary}': it takes 100 % of the route`
          : `Paused at ${weight} % for a later 'promote'`,
      )
      return outcome(weight === 100 ? 'promoted' : 'paused', weight)
    } catch (err) {
      const error = err as Error
      const concurrentChange = err instanceof ConcurrentChangeError
      // A write whose call failed may still have landed (its answer lost): what the cluster holds decides.
      const landed = concurrentChange ? false : await this.ownWriteLanded()
      if (landed) current = (this.router.state as RolloutState).lastWritten
      const targetLost = concurrentChange && this.changed && this.targetLost(selector, start)
      const facts = { concurrentChange, attempted, changed: this.changed, landed, targetLost }
      let decision = afterFailure(facts)
      let failure = error
      if (targetLost) {
        failure = new ConcurrentChangeError(
          `${error.message}. istio-canary cannot find its target route any more: ${this.describeSelector(selector)} ` +
            `is now another route, and no single route is what it last wrote (${this.router.describe(current)}). ` +
            `As far as it can tell, '${start.canary}' still takes ${this.router.weightOf(current, start.canary)} %: ` +
            'nothing was reverted and the rollout state is kept. Find the route by hand, then run ' +
            `'rollback' (or 'promote') once ${this.describeSelector(selector)} is it again, or give the route a name`,
          { cause: error },
        )
      }
      if ('revert' in decision) {
        this.changed = true
        try {
          await this.revert(selector, current, revertTo, error, at)
          decision = afterFailure({ ...facts, revert: 'done' })
        } catch (revertError) {
          failure = revertError as Error
          // Someone else changed the route meanwhile: theirs stands.
          const overtaken = failure.cause instanceof ConcurrentChangeError
          decision = afterFailure({ ...facts, revert: overtaken ? 'overtaken' : 'failed' })
        }
      }
      if ('revert' in decision) throw new Error('internal: the state machine asked for a second revert')
      const weights = {
        live: () => this.liveWeight(selector, start.canary, weight),
        run: () => weight,
        restored: () => this.router.weightOf(revertTo.route, start.canary),
        // Traffic stays where this run left it, mid-rollout: report that weight; the post step tries again.
        current: () => this.router.weightOf(current, start.canary),
      }
      return outcome(decision.result, weights[decision.weight](), failure, decision.unsettled)
    }
  }

  /** The canary already has the whole route: nothing to do. */
  private promotedAlready(): Outcome {
    const state = this.router.state
    const canary = this.plan.canarySubset ?? state?.canary ?? ''
    if (state?.phase === 'promoted' && state.canary === canary) {
      this.assertOurs(this.router.route(state.route), state)
      this.event(`'${canary}' is already promoted (run ${state.runId}); nothing to do`)
      return this.outcome('promoted', { stable: state.stable, canary }, 100)
    }
    this.event(
      `${this.describeSelector(this.inputSelector)} of ${this.ref} already sends 100 % to '${canary}'; nothing to do`,
    )
    return this.outcome('promoted', { stable: '', canary }, 100)
  }

  /**
   * After someone else's change: the selector is positional and now names a route that sends to neither the stable
   * nor the canary subset, so it is not this run's route edited but another one (the router found no single route
   * that is what the run last wrote). Named routes are never lost this way.
   */
  private targetLost(selector: RouteSelector, start: { stable: string; canary: string }): boolean {
    if (selector.by === 'name') return false
    const now = this.router.findRoute(selector)
    if (!now) return true
    const shares = this.router.shares(now)
    return !shares.has(start.stable) && !shares.has(start.canary)
  }

  /** The canary weight of the target route as last read (someone else may have changed it). */
  private liveWeight(selector: RouteSelector, canary: string, fallback: number): number {
    const now = this.router.findRoute(selector)
    return now ? this.router.weightOf(now, canary) : fallback
  }

  /**
   * After a failure: does the target show a shift of this run (a write whose answer was lost)?
   * undefined: cannot tell.
   */
  private async ownWriteLanded(): Promise<boolean | undefined> {
    try {
      await this.router.load()
    } catch {
      return undefined
    }
    const state = this.router.state
    return state?.runId === this.deps.runId && state.phase === 'shifting'
  }

  /** Restores the route (and state) as they were when the run began. Bounded in time, not cancellable. */
  private async revert(
    selector: RouteSelector,
    current: Route,
    to: { route: Route; state?: RolloutState },
    cause: Error,
    at: () => TransitionContext,
  ): Promise<void> {
    this.event(`Reverting ${this.ref} after: ${cause.message}`)
    let written = false
    const restore = async (signal: AbortSignal): Promise<void> => {
      const state = this.router.state
      const restoredWeight = state ? this.router.weightOf(to.route, state.canary) : 0
      const event = { type: 'revert', route: to.route, restoredWeight, ...(to.state ? { to: to.state } : {}) } as const
      let reverted: RolloutState | undefined
      try {
        reverted = next(state, event, at())
      } catch (err) {
        if (!(err instanceof TransitionError)) throw err
        // Only someone else can have put the target in a state this run's revert cannot follow.
        throw new ConcurrentChangeError(
          `the rollout state of ${this.ref} was changed by someone else during the run ` +
            `(now: ${state ? `run ${state.runId}, ${state.phase}` : 'removed'}); not overwriting it`,
          { cause: err },
        )
      }
      await this.router.write(selector, current, to.route, reverted)
      written = true
      // The revert waits for its parents too: a revert they do not take leaves traffic where the run left it.
      await this.applied('the revert', signal)
    }
    await this.bounded(restore, cause, () =>
      written
        ? 'The revert was written but is not in effect: traffic may still follow the change this run made, and ' +
          "the run is unsettled. Look at the status of the route's parents; once they accept it, the route is " +
          `restored (else restore it by hand: ${JSON.stringify(to.route)})`
        : `Restore the route by hand: ${JSON.stringify(to.route)}`,
    )
    this.event(`Restored the route as it was before the run: ${this.router.describe(to.route)}`)
  }

  /**
   * A revert: bounded in time (it does not obey the cancelled signal, only its own bound, which `work` is given to
   * end its waits with); its failure says what to do by hand.
   */
  private async bounded(
    work: (signal: AbortSignal) => Promise<unknown>,
    cause: Error,
    byHand: string | (() => string),
  ): Promise<void> {
    const timeout = this.deps.revertTimeoutMs ?? 60_000
    const bound = new AbortController()
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        work(bound.signal),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const late = new RolloutError(`reverting ${this.ref} did not finish within ${formatDuration(timeout)}`)
            bound.abort(late)
            reject(late)
          }, timeout)
        }),
      ])
    } catch (err) {
      this.event(`REVERT FAILED: ${(err as Error).message}`)
      const what = typeof byHand === 'string' ? byHand : byHand()
      throw new RevertFailedError(`${cause.message}. REVERT FAILED: ${(err as Error).message}. ${what}`, {
        cause: err,
      })
    } finally {
      clearTimeout(timer)
    }
  }

  /** `rollback`: the target route back to what it was before the rollout began. */
  async rollback(): Promise<Outcome> {
    const state = this.router.state
    if (!state) {
      throw new RolloutError(
        `${this.ref} carries no istio-canary state (annotation ${STATE_ANNOTATION}): there is no rollout to roll back`,
      )
    }
    const out = (result: Result, weight: number): Outcome => this.outcome(result, state, weight)
    const route = this.router.route(state.route)
    if (state.phase === 'rolled-back' && this.router.same(route, state.originalRoute)) {
      this.event(`${this.ref} is already rolled back: ${this.router.describe(route)}`)
      return out('rolled-back', this.router.weightOf(route, state.canary))
    }
    // Someone already put the route back by hand: that is what rollback writes, so only the state changes.
    const byHand = !this.router.same(route, state.lastWritten) && this.router.same(route, state.originalRoute)
    if (!byHand) {
      this.assertOurs(route, state)
      this.deps.onTrafficChange?.()
    }
    const originalWeight = this.router.weightOf(state.originalRoute, state.canary)
    const rolledBack = next(state, { type: 'rollback', originalWeight }, this.transition()) as RolloutState
    await this.router.write(state.route, route, state.originalRoute, rolledBack)
    await this.applied('the rollback')
    const was = this.router.describe(route)
    this.event(
      byHand
        ? `${this.ref} was already reverted by hand to the route before the rollout (${was}): recorded as rolled back`
        : `Rolled back: ${this.router.describe(state.originalRoute)} (was ${was})`,
    )
    return out('rolled-back', rolledBack.weight)
  }

  /** What `status` looks at: the target route and its versions (state first, then the inputs). Reads only. */
  statusTarget(): { route: Route; stable: string; canary: string } {
    const state = this.router.state
    const canary = state?.canary ?? this.plan.canarySubset ?? ''
    // Without a rollout the input names the route: a bad `route` is an error naming the input (as in every mode).
    const route = state?.route ? this.router.route(state.route) : this.router.inputRoute({ shadowed: 'allow' })
    const stableSubset = this.plan.stableSubset
    const stable = state?.stable ?? (stableSubset === 'auto' ? this.safeStable(route, canary) : stableSubset)
    return { route, stable, canary }
  }

  /**
   * `status`: change nothing. Reports the state and the route, and, when verifiers are set, their read-only
   * evidence at the current weights (a smoke probe; the mesh's counts over `windowMs`). A failing probe is
   * reported, never acted on.
   */
  async status(o: { windowMs?: number; notes?: string[] } = {}): Promise<Outcome> {
    const state = this.router.state
    const { route, stable, canary } = this.statusTarget()
    this.event(
      state
        ? `Rollout state: ${state.phase} at ${state.weight} % (canary '${state.canary}', stable '${state.stable}', ` +
            `run ${state.runId}, updated ${state.updatedAt})`
        : `No istio-canary rollout state on this ${this.router.target.kind}`,
    )
    this.event(`Target route now: ${this.router.describe(route)}`)
    const weight = canary ? this.router.weightOf(route, canary) : 0
    const weights = [...this.router.shares(route)].map(([subset, share]) => ({ subset, weight: share }))
    const notes = [...this.statusNotes, ...(o.notes ?? [])]
    const observation: Observation = {
      at: this.now().toISOString(),
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
    const verifiers = this.deps.verifiers ?? []
    if (verifiers.length > 0) {
      this.deps.signal.throwIfAborted()
      observation.checks = await observe(verifiers, {
        weight,
        windowMs: o.windowMs ?? 0,
        sleep: this.deps.sleep ?? realSleep,
        signal: this.deps.signal,
        versions: { stable, canary },
      })
      observation.at = this.now().toISOString()
      for (const check of observation.checks) {
        const failed = check.verdict === 'fail' ? ` (FAIL at these weights: ${check.reasons.join('; ')})` : ''
        this.event(`Status ${check.kind}: ${check.summary}${failed}`)
      }
    }
    for (const note of observation.notes) this.event(`Status: ${note}`)
    return { ...this.outcome('unchanged', { stable, canary }, weight), observation }
  }

  /** `preview`: a header-matched route to the canary before every other route; the default route is untouched. */
  async preview(header: string, value: string, pauseMs: number): Promise<Outcome> {
    const canary = this.plan.canarySubset as string
    // A preview route goes before every other route: a shadowed target only lends it its destination host.
    const target = this.router.inputRoute({ shadowed: 'allow' })
    const stable = this.safeStable(target, canary)
    const out = (result: Result, error?: Error, unsettled = false): Outcome =>
      this.outcome(result, { stable, canary }, this.router.weightOf(target, canary), error, unsettled)
    const name = this.router.previewName(value)
    const before = this.router.previewRoute(value)
    let attempted = false
    try {
      this.deps.checkLock?.()
      this.deps.onTrafficChange?.()
      attempted = true
      const wrote = await this.router.setPreview(canary, header, value)
      this.changed = true
      this.event(`Preview route '${name}': requests with '${header}: ${value}' go to '${canary}'`)
      if (wrote) await this.applied(`the preview route '${name}'`)
      // Until the proxies have it, requests with the header follow the target route.
      await this.settle(0, before ? 100 : this.router.weightOf(target, canary), 100, 'preview', { [header]: value })
      await this.verifyStep(0, 100, pauseMs, 'preview', { [header]: value })
      return out('previewed')
    } catch (err) {
      // A failed write may still have landed: the post step looks again.
      if (!this.changed) return out('unchanged', err as Error, attempted)
      this.event(`Removing the preview route after: ${(err as Error).message}`)
      try {
        await this.bounded(
          (signal) => this.restorePreview(value, before, signal),
          err as Error,
          `Remove the ${this.router.target.kind === 'HTTPRoute' ? 'rule' : 'http route'} '${name}' of ${this.ref} by hand`,
        )
      } catch (revertError) {
        // The preview route is still live (the post step tries again).
        return out('revert-failed', revertError as Error, true)
      }
      return out('rolled-back', err as Error)
    }
  }

  /** The preview route for this value, as it is now. */
  previewRoute(value: string): Route | undefined {
    return this.router.previewRoute(value)
  }

  /**
   * Puts the preview route for this value back as it was before a run: removed, or the earlier one first again; a
   * write waits for the routing API's controllers to take it (bounded; `signal` ends the wait).
   */
  async restorePreview(
    value: string,
    before: Route | undefined,
    signal: AbortSignal = this.deps.signal,
  ): Promise<boolean> {
    const written = await this.router.restorePreview(value, before)
    if (written) await this.applied(`restoring the preview route '${this.router.previewName(value)}'`, signal)
    return written
  }

  /** `preview-cleanup`: remove the preview route for this value. */
  async previewCleanup(value: string): Promise<Outcome> {
    const canary = this.plan.canarySubset ?? ''
    const name = this.router.previewName(value)
    const removed = await this.router.restorePreview(value, undefined)
    if (removed) await this.applied(`removing the preview route '${name}'`)
    this.event(
      removed ? `Removed preview route '${name}'` : `No preview route '${name}' on ${this.ref}: nothing to remove`,
    )
    const stable = this.plan.stableSubset === 'auto' ? '' : this.plan.stableSubset
    return this.outcome(removed ? 'cleaned-up' : 'unchanged', { stable, canary }, 0)
  }

  /** Post step: finish the revert of a run that was killed while shifting. */
  async finishRevert(runId: string): Promise<boolean> {
    const state = this.router.state
    if (!state || state.runId !== runId || state.phase !== 'shifting' || !state.revertTo) return false
    if (!this.router.same(this.router.findRoute(state.route), state.lastWritten)) {
      this.event('The target route was changed by someone else since this run wrote it: leaving it as it is')
      return false
    }
    this.changed = true
    await this.revert(
      state.route,
      state.lastWritten,
      state.revertTo,
      new Error('the main step ended before finishing its run'),
      () => this.transition(),
    )
    return true
  }

  private safeStable(route: Route, canary: string): string {
    try {
      return this.router.resolveStable(route, 'auto', canary)
    } catch {
      return ''
    }
  }
}

function withoutRevert(state: RolloutState): RolloutState {
  const { revertTo: _drop, ...rest } = state
  return rest
}

function sameState(a: RolloutState | undefined, b: RolloutState | undefined, router: TrafficRouter): boolean {
  return (
    a !== undefined &&
    b !== undefined &&
    a.phase === b.phase &&
    a.weight === b.weight &&
    router.same(a.lastWritten, b.lastWritten)
  )
}
