// The rollout state machine. Every transition is written to the VirtualService (route and state annotation
// in one conditional write) before the action acts on it; a failure after the first traffic change restores
// the target route as it was when the run began.
import type { SmokeResult } from '../smoke/smoke.js'
import type { Verdict } from '../smoke/verdict.js'
import type { StepRecord } from '../report/report.js'
import type { VirtualServiceApi } from '../k8s/ports.js'
import { ConflictError, type VirtualService } from '../k8s/resources.js'
import type { Sleep } from '../retry.js'
import { formatDuration, type Step } from '../parse.js'
import {
  type HttpRoute,
  type RouteSelector,
  canaryWeightOf,
  describeSelector,
  describeSplit,
  findRouteIndex,
  RouteError,
  canonical,
  isCatchAll,
  previewRouteName,
  resolveStableSubset,
  routeAtWeight,
  sameRoute,
  withPreviewRoute,
  withoutPreviewRoute,
} from './routes.js'
import { type RolloutState, STATE_ANNOTATION, decodeState, encodeState, isActive } from './state.js'

export type Result = 'promoted' | 'rolled-back' | 'paused' | 'previewed' | 'cleaned-up' | 'unchanged'

export interface Target {
  namespace: string
  virtualService: string
  route: RouteSelector
  stableSubset: string | 'auto'
  canarySubset?: string
}

export interface Verification {
  result: SmokeResult
  verdict: Verdict
}

export interface EngineDeps {
  kube: VirtualServiceApi
  /** Smoke-tests the gateway with the canary expected at `weight` percent of the traffic. */
  verify: (weight: number, headers: Record<string, string>, signal: AbortSignal) => Promise<Verification>
  sleep: Sleep
  /** Aborted on cancellation (SIGINT/SIGTERM). */
  signal: AbortSignal
  runId: string
  log: (msg: string) => void
  /** Called before the first traffic change with what a post step needs to finish a revert. */
  onTrafficChange?: () => void
  /** Raises when the lock was lost (checked before each change). */
  checkLock?: () => void
  now?: () => Date
  /** Upper bound for a revert after a failure (it does not obey the cancelled signal). */
  revertTimeoutMs?: number
}

export interface Outcome {
  result: Result
  stable: string
  canary: string
  canaryWeight: number
  steps: StepRecord[]
  /** Set when the run failed (after any revert): the step fails with it. */
  error?: Error
  /** The run cannot tell that its traffic change settled (its revert failed, or a write's outcome is unknown). */
  unsettled?: boolean
  events: Array<{ at: string; message: string }>
}

/** Someone else changed the target route: the action stops rather than overwrite it. */
export class ConcurrentChangeError extends Error {
  override name = 'ConcurrentChangeError'
}

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

export class Engine {
  private vs!: VirtualService
  private state: RolloutState | undefined
  readonly steps: StepRecord[] = []
  readonly events: Array<{ at: string; message: string }> = []
  private changed = false

  constructor(
    private readonly d: EngineDeps,
    private readonly t: Target,
  ) {}

  /** What a mode ends with: its result and subsets, with this run's steps and events. */
  private outcome(
    result: Result,
    subsets: { stable: string; canary: string },
    canaryWeight: number,
    error?: Error,
    unsettled = false,
  ): Outcome {
    return {
      result,
      stable: subsets.stable,
      canary: subsets.canary,
      canaryWeight,
      steps: this.steps,
      events: this.events,
      ...(error ? { error } : {}),
      ...(unsettled ? { unsettled } : {}),
    }
  }

  /** The smoke test, known once the gateway is found. */
  setVerifier(verify: EngineDeps['verify']): void {
    this.d.verify = verify
  }

  private now(): Date {
    return this.d.now?.() ?? new Date()
  }

  private event(message: string): void {
    this.events.push({ at: this.now().toISOString(), message })
    this.d.log(message)
  }

  private get ref(): string {
    return `VirtualService ${this.t.namespace}/${this.t.virtualService}`
  }

  async load(): Promise<void> {
    this.vs = await this.d.kube.getVirtualService(this.t.namespace, this.t.virtualService)
    this.state = decodeState(this.vs.metadata.annotations, this.t.virtualService)
  }

  get currentState(): RolloutState | undefined {
    return this.state
  }

  get virtualService(): VirtualService {
    return this.vs
  }

  private http(vs: VirtualService = this.vs): HttpRoute[] {
    return vs.spec.http ?? []
  }

  /** The selector to find the target route again: by name when it has one, else as the rollout first found it. */
  private stableSelector(route: HttpRoute): RouteSelector {
    if (typeof route.name === 'string' && route.name !== '') return { by: 'name', name: route.name }
    return this.state && isActive(this.state) ? this.state.route : this.t.route
  }

  /**
   * Index of the route the `route` input names (no rollout in progress): a missing route is the input's error,
   * and a route that an earlier catch-all route (no match) shadows gets no traffic, so it is refused.
   */
  inputRouteIndex(o: { shadowed: 'refuse' | 'allow' } = { shadowed: 'refuse' }): number {
    let index: number
    try {
      index = findRouteIndex(this.vs.spec, this.t.route, this.t.virtualService)
    } catch (err) {
      if (err instanceof RouteError && this.t.route.by !== 'default')
        throw new RouteError(`Input 'route': ${err.message}`)
      throw err
    }
    const http = this.http()
    const shadow = http.slice(0, index).findIndex(isCatchAll)
    if (shadow >= 0 && o.shadowed === 'refuse') {
      const shadowName = http[shadow]?.name
      const name = shadowName ? `'${shadowName}'` : `#${shadow}`
      throw new RouteError(
        `Input 'route': ${describeSelector(this.t.route)} of ${this.ref} receives no traffic: http route ${name} before it has no match and takes every request. ` +
          `Shift route ${name} instead, or give it a match`,
      )
    }
    return index
  }

  /** What the run will do: the target route, subsets and where it starts. Validates before any change. */
  plan(): {
    index: number
    route: HttpRoute
    stable: string
    canary: string
    base: HttpRoute
    weight: number
    continuing: boolean
  } {
    const s = this.state
    if (s && isActive(s)) {
      if (this.t.canarySubset !== undefined && this.t.canarySubset !== s.canary) {
        throw new RolloutError(
          `${this.ref} has a rollout of canary '${s.canary}' in progress (${s.phase} at ${s.weight} %, run ${s.runId}); finish it with action 'promote' or 'rollback' before rolling out '${this.t.canarySubset}'`,
        )
      }
      if (this.t.stableSubset !== 'auto' && this.t.stableSubset !== s.stable) {
        throw new RolloutError(
          `${this.ref} has a rollout in progress whose stable subset is '${s.stable}', not '${this.t.stableSubset}'`,
        )
      }
      const index = findRouteIndex(this.vs.spec, s.route, this.t.virtualService)
      const route = this.http()[index] as HttpRoute
      this.assertOurs(route, s)
      return {
        index,
        route,
        stable: s.stable,
        canary: s.canary,
        base: s.originalRoute,
        weight: s.weight,
        continuing: true,
      }
    }
    const index = this.inputRouteIndex()
    const route = this.http()[index] as HttpRoute
    const canary = this.t.canarySubset
    if (canary === undefined)
      throw new RolloutError(
        `${this.ref} has no rollout in progress; set 'canary-subset' to start one (or to promote that subset directly)`,
      )
    const stable = resolveStableSubset(route, this.t.stableSubset, canary)
    if (stable === canary) throw new RolloutError(`stable and canary subset are both '${canary}'`)
    if (!(route.route ?? []).some((d) => d.destination.subset === stable)) {
      throw new RolloutError(
        `${describeSelector(this.t.route)} of ${this.ref} does not route to stable subset '${stable}' (it routes: ${describeSplit(route)})`,
      )
    }
    return { index, route, stable, canary, base: route, weight: canaryWeightOf(route, canary), continuing: false }
  }

  private assertOurs(route: HttpRoute | undefined, s: RolloutState): void {
    if (!sameRoute(route, s.lastWritten)) {
      throw new ConcurrentChangeError(
        `the target route of ${this.ref} was changed by someone else since istio-canary last wrote it (run ${s.runId}); ` +
          `not overwriting it. It now routes: ${route ? describeSplit(route) : '(route missing)'}; istio-canary wrote: ${describeSplit(s.lastWritten)}. ` +
          `Decide on the route by hand, then remove the annotation ${STATE_ANNOTATION} to let istio-canary start afresh`,
      )
    }
  }

  /**
   * Conditional write of the target route and the state. On a conflict: re-read, and go on only where the
   * target route is still what this action last wrote (`expected`); else stop without overwriting.
   */
  private async write(
    selector: RouteSelector,
    expected: HttpRoute,
    route: HttpRoute,
    state: RolloutState | undefined,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const next: VirtualService = structuredClone(this.vs)
      const index = safeIndex(next.spec, selector, this.t.virtualService)
      const http = next.spec.http ?? []
      if (index < 0) {
        throw new ConcurrentChangeError(
          `the target route of ${this.ref} (${describeSelector(selector)}) is gone: someone else changed the VirtualService during the run; not writing it`,
        )
      }
      if (!sameRoute(http[index], expected)) {
        throw new ConcurrentChangeError(
          `the target route of ${this.ref} was changed by someone else during the run; not overwriting it. ` +
            `It now routes: ${describeSplit(http[index] as HttpRoute)}; istio-canary expected: ${describeSplit(expected)}. ` +
            `Check who changed it (kubectl -n ${this.t.namespace} get virtualservice ${this.t.virtualService} -o yaml)`,
        )
      }
      http[index] = route
      const annotations = { ...(next.metadata.annotations ?? {}) }
      if (state) annotations[STATE_ANNOTATION] = encodeState(state)
      else delete annotations[STATE_ANNOTATION]
      next.metadata.annotations = annotations
      try {
        this.vs = await this.d.kube.replaceVirtualService(next)
        this.state = state
        return
      } catch (err) {
        if (!(err instanceof ConflictError) || attempt >= 5) throw err
        this.d.log(
          `${this.ref} changed since it was read (resourceVersion ${this.vs.metadata.resourceVersion}); re-reading`,
        )
        this.vs = await this.d.kube.getVirtualService(this.t.namespace, this.t.virtualService)
        const fresh = decodeState(this.vs.metadata.annotations, this.t.virtualService)
        const freshRoute = this.http()[safeIndex(this.vs.spec, selector, this.t.virtualService)]
        if (sameRoute(freshRoute, route) && canonical(fresh) === canonical(state)) {
          // Our own write went through and only its answer was lost (a retried PUT then conflicts with itself).
          this.state = state
          return
        }
        if (this.state && fresh?.runId !== this.state.runId) {
          throw new ConcurrentChangeError(
            `the rollout state of ${this.ref} was changed by someone else during the run (now: ${fresh ? `run ${fresh.runId}, ${fresh.phase}` : 'removed'}); not overwriting it`,
          )
        }
      }
    }
  }

  private async pause(ms: number): Promise<void> {
    if (ms <= 0) return
    this.d.log(`Pausing ${formatDuration(ms)}`)
    await this.d.sleep(ms, this.d.signal)
  }

  private async verifyStep(
    index: number,
    weight: number,
    pauseMs: number,
    headers: Record<string, string> = {},
  ): Promise<void> {
    const startedAt = this.now().toISOString()
    await this.pause(pauseMs)
    this.d.signal.throwIfAborted()
    const { result, verdict } = await this.d.verify(weight, headers, this.d.signal)
    const rec: StepRecord = {
      index: index + 1,
      weight,
      pauseMs,
      startedAt,
      endedAt: this.now().toISOString(),
      smoke: result,
      verdict: verdict.pass ? 'pass' : 'fail',
      reasons: verdict.reasons,
    }
    this.steps.push(rec)
    const rate = result.requests ? `${((100 * result.successes) / result.requests).toFixed(1)} %` : 'n/a'
    this.event(
      `Step ${index + 1} at ${weight} %: ${result.successes}/${result.requests} passed (${rate}), p95 ${Math.round(result.p95Ms)} ms: ${verdict.pass ? 'pass' : `FAIL (${verdict.reasons.join('; ')})`}`,
    )
    if (!verdict.pass) throw new StepFailedError(`smoke test failed at ${weight} %: ${verdict.reasons.join('; ')}`)
  }

  /**
   * The canary asked for (or the last one, when none is asked for) already has the whole route: promoted by an
   * earlier run, or no rollout in progress and the target route sends everything to canary-subset already.
   */
  alreadyPromoted(): boolean {
    const s = this.state
    if (s?.phase === 'promoted') return this.t.canarySubset === undefined || this.t.canarySubset === s.canary
    if (isActive(s) || this.t.canarySubset === undefined) return false
    const route = this.http()[safeIndex(this.vs.spec, this.t.route, this.t.virtualService)]
    return route !== undefined && canaryWeightOf(route, this.t.canarySubset) === 100
  }

  /**
   * Smoke test of the route as it is: before the first change, so that a rollout never starts into an application
   * that already fails (a failing stable version would otherwise be blamed on the canary); and of a weight a dead
   * run left unverified.
   */
  private async verifyCurrent(weight: number, route: HttpRoute, failure: string): Promise<void> {
    this.d.signal.throwIfAborted()
    const { result, verdict } = await this.d.verify(weight, {}, this.d.signal)
    this.event(
      `Smoke test of the route as it is (${describeSplit(route)}): ${result.successes}/${result.requests} passed: ${verdict.pass ? 'pass' : `FAIL (${verdict.reasons.join('; ')})`}`,
    )
    if (!verdict.pass) {
      const what = this.changed ? '' : ' Nothing was changed; fix the application or the smoke test inputs first.'
      throw new RolloutError(
        `${failure}, with the route at ${describeSplit(route)}: ${verdict.reasons.join('; ')}.${what}`,
      )
    }
  }

  /** `rollout` (and `promote`, which is a rollout to 100). */
  async rollout(steps: Step[], pauseMs: number): Promise<Outcome> {
    if (this.alreadyPromoted()) {
      const s = this.state
      const canary = this.t.canarySubset ?? s?.canary ?? ''
      if (s?.phase === 'promoted' && s.canary === canary) {
        this.assertOurs(this.http()[findRouteIndex(this.vs.spec, s.route, this.t.virtualService)], s)
        this.event(`'${canary}' is already promoted (run ${s.runId}); nothing to do`)
        return this.outcome('promoted', { stable: s.stable, canary }, 100)
      }
      this.event(`${describeSelector(this.t.route)} of ${this.ref} already sends 100 % to '${canary}'; nothing to do`)
      return this.outcome('promoted', { stable: '', canary }, 100)
    }
    const p = this.plan()
    const selector = this.stableSelector(p.route)
    const startedAt = this.now().toISOString()
    const before: RolloutState | undefined = this.state
    const base: Omit<RolloutState, 'phase' | 'weight' | 'lastWritten'> =
      p.continuing && before
        ? { ...before, runId: this.d.runId, route: selector }
        : {
            version: 1,
            runId: this.d.runId,
            stable: p.stable,
            canary: p.canary,
            route: selector,
            originalRoute: p.base,
            startedAt,
            updatedAt: startedAt,
          }
    delete (base as Partial<RolloutState>).revertTo
    // A run that died while shifting left an unverified weight: this run verifies it first, and a failure
    // restores what that run would have restored.
    const inherited = p.continuing && before?.phase === 'shifting' ? before.revertTo : undefined
    const revertTo = inherited ?? { route: p.route, ...(before ? { state: withoutRevert(before) } : {}) }
    const outcome = (result: Result, weight: number, error?: Error, unsettled = false): Outcome =>
      this.outcome(result, p, weight, error, unsettled)
    if (p.continuing)
      this.event(
        `Continuing the rollout of '${p.canary}' (${before?.phase} at ${p.weight} %, started by run ${before?.runId})`,
      )
    const remaining = steps.filter((s) => s.weight > p.weight)
    this.event(
      `Target route: ${describeSelector(selector)}; now ${describeSplit(p.route)}; stable '${p.stable}', canary '${p.canary}'`,
    )
    let current = p.route
    let weight = p.weight
    let attempted = false
    try {
      if (inherited) {
        attempted = true
        // Take the dead run's change over under this run's id first, so that this run's revert, a post step and
        // any later run all see it as this run's.
        this.d.onTrafficChange?.()
        this.changed = true
        await this.write(selector, current, current, {
          ...base,
          phase: 'shifting',
          weight: p.weight,
          lastWritten: current,
          revertTo,
          updatedAt: this.now().toISOString(),
        })
        this.event(`Run ${before?.runId} ended while shifting to ${p.weight} %, unverified: verifying it first`)
        await this.verifyCurrent(p.weight, p.route, `the weight run ${before?.runId} left unverified fails`)
      } else if (remaining.length > 0) {
        await this.verifyCurrent(p.weight, p.route, 'the smoke test already fails before any change')
      }
      if (remaining.length === 0 && weight < 100) {
        const st: RolloutState = {
          ...base,
          phase: 'paused',
          weight,
          lastWritten: current,
          updatedAt: this.now().toISOString(),
        }
        if (!sameState(this.state, st)) await this.write(selector, current, current, st)
        this.event(`Canary at ${weight} %, no step above it: paused`)
        return outcome('paused', weight)
      }
      for (const [i, step] of remaining.entries()) {
        this.d.checkLock?.()
        this.d.signal.throwIfAborted()
        const route = routeAtWeight(p.base, p.stable, p.canary, step.weight)
        if (!this.changed) this.d.onTrafficChange?.()
        const st: RolloutState = {
          ...base,
          phase: 'shifting',
          weight: step.weight,
          lastWritten: route,
          revertTo,
          updatedAt: this.now().toISOString(),
        }
        attempted = true
        await this.write(selector, current, route, st)
        this.changed = true
        current = route
        weight = step.weight
        this.event(`Shifted to ${describeSplit(route)}`)
        await this.verifyStep(i, step.weight, step.pauseMs ?? pauseMs)
      }
      const final = weight === 100 ? 'promoted' : 'paused'
      const st: RolloutState = {
        ...base,
        phase: final,
        weight,
        lastWritten: current,
        updatedAt: this.now().toISOString(),
      }
      await this.write(selector, current, current, st)
      this.event(
        final === 'promoted'
          ? `Promoted '${p.canary}': it takes 100 % of the route`
          : `Paused at ${weight} % for a later 'promote'`,
      )
      return outcome(final, weight)
    } catch (err) {
      const error = err as Error
      if (err instanceof ConcurrentChangeError)
        return outcome('unchanged', this.liveWeight(selector, p.canary, weight), error)
      // A write whose call failed may still have landed (its answer lost): what the cluster holds decides.
      const landed = await this.ownWriteLanded()
      if (landed === undefined && attempted && !this.changed) return outcome('unchanged', weight, error, true)
      if (landed) {
        this.changed = true
        current = (this.state as RolloutState).lastWritten
      }
      if (!this.changed) return outcome('unchanged', weight, error)
      try {
        const restored = await this.revert(selector, current, revertTo, error)
        return outcome('rolled-back', canaryWeightOf(restored, p.canary), error)
      } catch (revertError) {
        if ((revertError as Error).cause instanceof ConcurrentChangeError) {
          // Someone else changed the route meanwhile: theirs stands.
          return outcome('unchanged', this.liveWeight(selector, p.canary, weight), revertError as Error)
        }
        // Traffic stays where this run left it, mid-rollout: report that weight; the post step tries again.
        return outcome('paused', canaryWeightOf(current, p.canary), revertError as Error, true)
      }
    }
  }

  /** The canary weight of the target route as last read (someone else may have changed it). */
  private liveWeight(selector: RouteSelector, canary: string, fallback: number): number {
    const now = this.http()[safeIndex(this.vs.spec, selector, this.t.virtualService)]
    return now ? canaryWeightOf(now, canary) : fallback
  }

  /** After a failure: does the VirtualService show a shift of this run (a write whose answer was lost)? undefined: cannot tell. */
  private async ownWriteLanded(): Promise<boolean | undefined> {
    try {
      await this.load()
    } catch {
      return undefined
    }
    return this.state?.runId === this.d.runId && this.state.phase === 'shifting'
  }

  /** Restores the route (and state) as they were when the run began. Bounded in time, not cancellable. */
  private async revert(
    selector: RouteSelector,
    current: HttpRoute,
    to: { route: HttpRoute; state?: RolloutState },
    cause: Error,
  ): Promise<HttpRoute> {
    this.event(`Reverting ${this.ref} after: ${cause.message}`)
    const st: RolloutState | undefined = to.state
      ? { ...to.state, lastWritten: to.route, updatedAt: this.now().toISOString() }
      : this.state && {
          ...withoutRevert(this.state),
          phase: 'rolled-back',
          weight: canaryWeightOf(to.route, this.state.canary),
          lastWritten: to.route,
          updatedAt: this.now().toISOString(),
        }
    await this.bounded(
      () => this.write(selector, current, to.route, st),
      cause,
      `Restore the route by hand: ${JSON.stringify(to.route)}`,
    )
    this.event(`Restored the route as it was before the run: ${describeSplit(to.route)}`)
    return to.route
  }

  /** A revert: bounded in time (it does not obey the cancelled signal); its failure says what to do by hand. */
  private async bounded(work: () => Promise<void>, cause: Error, byHand: string): Promise<void> {
    const timeout = this.d.revertTimeoutMs ?? 60_000
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        work(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new RolloutError(`reverting ${this.ref} did not finish within ${formatDuration(timeout)}`)),
            timeout,
          )
        }),
      ])
    } catch (err) {
      this.event(`REVERT FAILED: ${(err as Error).message}`)
      throw new RevertFailedError(`${cause.message}. REVERT FAILED: ${(err as Error).message}. ${byHand}`, {
        cause: err,
      })
    } finally {
      clearTimeout(timer)
    }
  }

  /** `rollback`: the target route back to what it was before the rollout began. */
  async rollback(): Promise<Outcome> {
    const s = this.state
    if (!s) {
      throw new RolloutError(
        `${this.ref} carries no istio-canary state (annotation ${STATE_ANNOTATION}): there is no rollout to roll back`,
      )
    }
    const out = (result: Result, weight: number): Outcome => this.outcome(result, s, weight)
    const index = findRouteIndex(this.vs.spec, s.route, this.t.virtualService)
    const route = this.http()[index] as HttpRoute
    if (s.phase === 'rolled-back' && sameRoute(route, s.originalRoute)) {
      this.event(`${this.ref} is already rolled back: ${describeSplit(route)}`)
      return out('rolled-back', canaryWeightOf(route, s.canary))
    }
    // Someone already put the route back by hand: that is what rollback writes, so only the state changes.
    const byHand = !sameRoute(route, s.lastWritten) && sameRoute(route, s.originalRoute)
    if (!byHand) {
      this.assertOurs(route, s)
      this.d.onTrafficChange?.()
    }
    const st: RolloutState = {
      ...withoutRevert(s),
      runId: this.d.runId,
      phase: 'rolled-back',
      weight: canaryWeightOf(s.originalRoute, s.canary),
      lastWritten: s.originalRoute,
      updatedAt: this.now().toISOString(),
    }
    await this.write(s.route, route, s.originalRoute, st)
    this.event(
      byHand
        ? `${this.ref} was already reverted by hand to the route before the rollout (${describeSplit(route)}): recorded as rolled back`
        : `Rolled back: ${describeSplit(s.originalRoute)} (was ${describeSplit(route)})`,
    )
    return out('rolled-back', st.weight)
  }

  /** `status`: change nothing. */
  status(): Outcome {
    const s = this.state
    const canary = s?.canary ?? this.t.canarySubset ?? ''
    const selector = s?.route ?? this.t.route
    const route = this.http()[findRouteIndex(this.vs.spec, selector, this.t.virtualService)] as HttpRoute
    const stable = s?.stable ?? (this.t.stableSubset === 'auto' ? safeStable(route, canary) : this.t.stableSubset)
    this.event(
      s
        ? `Rollout state: ${s.phase} at ${s.weight} % (canary '${s.canary}', stable '${s.stable}', run ${s.runId}, updated ${s.updatedAt})`
        : 'No istio-canary rollout state on this VirtualService',
    )
    this.event(`Target route now: ${describeSplit(route)}`)
    return this.outcome('unchanged', { stable, canary }, canary ? canaryWeightOf(route, canary) : 0)
  }

  /** `preview`: a header-matched route to the canary before every other route; the default route is untouched. */
  async preview(header: string, value: string, pauseMs: number): Promise<Outcome> {
    const canary = this.t.canarySubset as string
    // A preview route goes before every other route: a shadowed target only lends it its destination host.
    const index = this.inputRouteIndex({ shadowed: 'allow' })
    const target = this.http()[index] as HttpRoute
    const stable = safeStable(target, canary)
    const out = (result: Result, error?: Error, unsettled = false): Outcome =>
      this.outcome(result, { stable, canary }, canaryWeightOf(target, canary), error, unsettled)
    const name = previewRouteName(value)
    const before = this.previewRoute(value)
    let attempted = false
    try {
      this.d.checkLock?.()
      this.d.onTrafficChange?.()
      attempted = true
      await this.writeSpec((spec) =>
        withPreviewRoute(spec, findRouteIndex(spec, this.t.route, this.t.virtualService), canary, header, value),
      )
      this.changed = true
      this.event(`Preview route '${name}': requests with '${header}: ${value}' go to '${canary}'`)
      await this.verifyStep(0, 100, pauseMs, { [header]: value })
      return out('previewed')
    } catch (err) {
      // A failed write may still have landed: the post step looks again.
      if (!this.changed) return out('unchanged', err as Error, attempted)
      this.event(`Removing the preview route after: ${(err as Error).message}`)
      try {
        await this.bounded(
          async () => void (await this.restorePreview(value, before)),
          err as Error,
          `Remove the http route '${name}' of ${this.ref} by hand`,
        )
      } catch (revertError) {
        // The preview route is still live (the post step tries again).
        return out('previewed', revertError as Error, true)
      }
      return out('rolled-back', err as Error)
    }
  }

  /** The preview route for this value, as it is now. */
  previewRoute(value: string): HttpRoute | undefined {
    return this.http().find((r) => r.name === previewRouteName(value))
  }

  /** Puts the preview route for this value back as it was before a run: removed, or the earlier one first again. */
  async restorePreview(value: string, before: HttpRoute | undefined): Promise<boolean> {
    return this.writeSpec((spec) => {
      const removed = withoutPreviewRoute(spec, value).spec
      return before ? { ...removed, http: [before, ...(removed.http ?? [])] } : removed
    })
  }

  /** `preview-cleanup`: remove the preview route for this value. */
  async previewCleanup(value: string): Promise<Outcome> {
    const canary = this.t.canarySubset ?? ''
    const name = previewRouteName(value)
    const has = this.http().some((r) => r.name === name)
    if (has) {
      await this.writeSpec((spec) => withoutPreviewRoute(spec, value).spec)
      this.event(`Removed preview route '${name}'`)
    } else {
      this.event(`No preview route '${name}' on ${this.ref}: nothing to remove`)
    }
    return this.outcome(
      has ? 'cleaned-up' : 'unchanged',
      { stable: this.t.stableSubset === 'auto' ? '' : this.t.stableSubset, canary },
      0,
    )
  }

  /**
   * Conditional write of a spec change that only adds/removes preview routes: re-applied on a fresh read after a
   * conflict. Returns false when the spec already was as the change makes it (nothing written).
   */
  private async writeSpec(change: (spec: VirtualService['spec']) => VirtualService['spec']): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const next = structuredClone(this.vs)
      next.spec = change(next.spec)
      if (canonical(next.spec) === canonical(this.vs.spec)) return false
      try {
        this.vs = await this.d.kube.replaceVirtualService(next)
        return true
      } catch (err) {
        if (!(err instanceof ConflictError) || attempt >= 5) throw err
        this.d.log(`${this.ref} changed since it was read; re-reading`)
        this.vs = await this.d.kube.getVirtualService(this.t.namespace, this.t.virtualService)
      }
    }
  }

  /** Post step: finish the revert of a run that was killed while shifting. */
  async finishRevert(runId: string): Promise<boolean> {
    const s = this.state
    if (!s || s.runId !== runId || s.phase !== 'shifting' || !s.revertTo) return false
    const index = findRouteIndex(this.vs.spec, s.route, this.t.virtualService)
    if (!sameRoute(this.http()[index], s.lastWritten)) {
      this.event(`The target route was changed by someone else since this run wrote it: leaving it as it is`)
      return false
    }
    this.changed = true
    await this.revert(s.route, s.lastWritten, s.revertTo, new Error('the main step ended before finishing its run'))
    return true
  }
}

function withoutRevert(s: RolloutState): RolloutState {
  const { revertTo: _drop, ...rest } = s
  return rest
}

function sameState(a: RolloutState | undefined, b: RolloutState): boolean {
  return a !== undefined && a.phase === b.phase && a.weight === b.weight && sameRoute(a.lastWritten, b.lastWritten)
}

function safeStable(route: HttpRoute, canary: string): string {
  try {
    return resolveStableSubset(route, 'auto', canary)
  } catch {
    return ''
  }
}

function safeIndex(spec: VirtualService['spec'], selector: RouteSelector, name: string): number {
  try {
    return findRouteIndex(spec, selector, name)
  } catch {
    return -1
  }
}
