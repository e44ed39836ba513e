// Judging a step: the check of the route as it is before any change, the wait after a shift for the route's
// controllers and then for traffic to follow it (settling), and the step's checks; each records its StepRecord in
// the run's report and its line in the run's log.
import type { Route } from '../routing/router.js'
import { NotAppliedError } from '../routing/router.js'
import {
  type Check,
  type Settled,
  type StepContext,
  type Verifier,
  failureReasons,
  passed,
  runChecks,
} from '../verify/verifier.js'
import { applied } from './applied.js'
import { RolloutError, type Run, capitalized } from './run.js'

/** Where a change that never reaches the proxies is seen on Istio. */
export const ISTIO_PROPAGATION_HINT = 'istiod has not pushed it to every proxy: see istioctl proxy-status'

export class StepFailedError extends Error {
  override name = 'StepFailedError'
}

/** Traffic did not follow a route change within the bound: the step was not judged. */
export class NotSettledError extends StepFailedError {
  override name = 'NotSettledError'
}

/** The checks of one run's steps, with the verifiers its deps hold (set once the mesh is checked). */
export class StepChecks {
  /** Said once a run: no verifier can tell when traffic follows a change. */
  private unconfirmedSaid = false

  constructor(private readonly run: Run) {}

  private get verifiers(): Verifier[] {
    const verifiers = this.run.deps.verifiers
    if (!verifiers || verifiers.length === 0) throw new Error('internal: no verifier configured')
    return verifiers
  }

  /** The verifiers that can tell when traffic follows a route change (./settle.ts), with their settle wait. */
  private settlers(
    verifiers: readonly Verifier[] = this.run.deps.verifiers ?? [],
  ): Array<{ settle: NonNullable<Verifier['settle']> }> {
    // Bound to its verifier: a settle may be a method that reads its own fields.
    return verifiers.flatMap((v) => {
      const settle = v.settle
      return settle ? [{ settle: settle.bind(v) }] : []
    })
  }

  /** Where to look when the proxies do not take a change, in the mesh's words. */
  private get propagationHint(): string {
    return this.run.deps.propagationHint?.() ?? ISTIO_PROPAGATION_HINT
  }

  /** What the step's log lines call its checks: "smoke", "smoke + telemetry". */
  private get checkLabel(): string {
    return this.verifiers.map((v) => v.kind).join(' + ')
  }

  private async check(step: Omit<StepContext, 'signal'>): Promise<Check[]> {
    this.run.deps.signal.throwIfAborted()
    return runChecks(this.verifiers, { ...step, signal: this.run.deps.signal })
  }

  /** A step that failed before its checks could run (its change not taken): in the report with its reasons alone. */
  private unjudged(index: number, weight: number, startedAt: string, reasons: string[]): void {
    this.run.steps.push({
      index: index + 1,
      weight,
      pauseMs: 0,
      startedAt,
      endedAt: this.run.now().toISOString(),
      checks: [],
      verdict: 'fail',
      reasons,
    })
  }

  /** A shift's wait for its controllers: one they do not take is the step's failure, unjudged, in the report too. */
  async appliedStep(index: number, weight: number): Promise<void> {
    const startedAt = this.run.now().toISOString()
    try {
      await applied(this.run, `step ${index + 1} at ${weight} %`)
    } catch (err) {
      if (err instanceof NotAppliedError) {
        this.unjudged(index, weight, startedAt, [...(err.details.length > 0 ? err.details : [err.message])])
      }
      throw err
    }
  }

  /**
   * After a route write, before the step's checks: waits (bounded) until traffic follows the change, so that a
   * slow push of istiod is neither blamed on the canary nor mistaken for its success. A change that does not
   * arrive fails the step unjudged.
   */
  async settle(
    index: number,
    from: number,
    to: number,
    kind: 'step' | 'preview',
    headers: Record<string, string> = {},
  ): Promise<void> {
    const run = this.run
    const settlers = this.settlers(this.verifiers)
    if (settlers.length === 0) {
      if (!this.unconfirmedSaid) {
        run.event(
          "Whether the proxies have the new route cannot be confirmed without 'version-pattern': " +
            'each step is judged after its pause',
        )
      }
      this.unconfirmedSaid = true
      return
    }
    const startedAt = run.now().toISOString()
    for (const verifier of settlers) {
      run.deps.signal.throwIfAborted()
      const settled = await verifier.settle({
        kind,
        from,
        to,
        headers,
        signal: run.deps.signal,
      })
      const what = kind === 'preview' ? 'the preview route' : `${to} %`
      if (settled.outcome === 'settled') {
        run.event(`Settled at ${what}: ${settled.summary}`)
      } else if (settled.outcome === 'failing') {
        run.event(`Not settled at ${what}, the probes fail: ${settled.summary}; judging the step on them`)
      } else {
        const reason =
          `the proxies did not take the new route: ${settled.summary}. ` +
          `The step was not judged (${this.propagationHint})`
        this.unjudged(index, to, startedAt, [reason])
        run.event(`Step ${index + 1} at ${to} %: NOT SETTLED (${reason})`)
        throw new NotSettledError(`step ${index + 1} at ${to} % unsettled: ${reason}`)
      }
    }
  }

  /**
   * After a revert is written (and, for an HTTPRoute, accepted): whether traffic follows the restored route, with
   * the same probes and bound as a step's settling. Report only: the route is right whatever the proxies do, and
   * writing it again would not push it sooner; but until the push arrives users still reach the canary at the
   * weight the run left, and "restored" alone would hide that. Skipped when the run is being cancelled (the runner
   * kills it seconds after) and when no verifier can attribute answers to versions.
   */
  async confirmRestored(from: number, to: number): Promise<void> {
    const run = this.run
    const settlers = this.settlers()
    if (settlers.length === 0 || run.deps.signal.aborted) return
    for (const verifier of settlers) {
      let settled: Settled
      try {
        settled = await verifier.settle({
          kind: 'revert',
          from,
          to,
          headers: {},
          signal: run.deps.signal,
        })
      } catch (err) {
        const why = run.deps.signal.aborted ? 'the run is being cancelled' : (err as Error).message
        run.event(`Not confirmed that traffic follows the restored route: ${why}`)
        return
      }
      if (settled.outcome === 'settled') {
        run.event(`Traffic follows the restored route: ${settled.summary}`)
      } else if (settled.outcome === 'failing') {
        run.warning(
          `Not confirmed that traffic follows the restored route, nearly every probe fails: ${settled.summary}`,
        )
      } else {
        run.warning(
          `The restored route is in place, but traffic does not follow it yet: ${settled.summary}. ` +
            `Until it does, users still reach the canary (${this.propagationHint})`,
        )
      }
    }
  }

  /** A step's checks at its weight, after its pause: a failure is a StepFailedError (the caller reverts). */
  async verifyStep(
    index: number,
    weight: number,
    pauseMs: number,
    kind: 'step' | 'preview',
    headers: Record<string, string> = {},
  ): Promise<void> {
    const run = this.run
    const startedAt = run.now().toISOString()
    const checks = await this.check({ kind, index: index + 1, weight, pauseMs, headers })
    const pass = passed(checks)
    const reasons = failureReasons(checks)
    run.steps.push({
      index: index + 1,
      weight,
      pauseMs,
      startedAt,
      endedAt: run.now().toISOString(),
      checks,
      verdict: pass ? 'pass' : 'fail',
      reasons,
    })
    const seen = checks.map((c) => c.summary).join('; ')
    run.event(`Step ${index + 1} at ${weight} %: ${seen}: ${pass ? 'pass' : `FAIL (${reasons.join('; ')})`}`)
    if (!pass) throw new StepFailedError(`${this.checkLabel} test failed at ${weight} %: ${reasons.join('; ')}`)
  }

  /**
   * Check of the route as it is: before the first change, so that a rollout never starts into an application
   * that already fails (a failing stable version would otherwise be blamed on the canary); and of a weight a dead
   * run left unverified.
   */
  async verifyCurrent(weight: number, route: Route, failure: string): Promise<void> {
    const run = this.run
    const checks = await this.check({ kind: 'baseline', index: 0, weight, pauseMs: 0, headers: {} })
    const pass = passed(checks)
    const reasons = failureReasons(checks)
    const seen = checks.map((c) => c.summary.replace(/ \(.*$/, '')).join('; ')
    run.event(
      `${capitalized(this.checkLabel)} test of the route as it is (${run.router.describe(route)}): ${seen}: ` +
        `${pass ? 'pass' : `FAIL (${reasons.join('; ')})`}`,
    )
    if (!pass) {
      const what = run.changed ? '' : ' Nothing was changed; fix the application or the smoke test inputs first.'
      throw new RolloutError(
        `${failure}, with the route at ${run.router.describe(route)}: ${reasons.join('; ')}.${what}`,
      )
    }
  }
}
