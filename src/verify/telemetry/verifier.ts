// The mesh's own telemetry as a Verifier (SPEC section 6): during each step it polls Prometheus for the
// cumulative request and 5xx counters per version, differences successive polls, and feeds the sequential
// canary-vs-stable test (../../telemetry/sequential.ts), which runs through the whole rollout. A step ends as
// soon as the test decides: rejected at once, accepted at the end of the pause with enough canary requests,
// inconclusive at max-step-time. A Prometheus lost during a step fails it (the engine reverts): never a pass.
import { formatDuration } from '../../parse.js'
import type { Sleep } from '../../retry.js'
import type { PrometheusClient } from '../../telemetry/prometheus.js'
import { type QueryTarget, buildCounterQueries, perVersion } from '../../telemetry/queries.js'
import {
  type Counts,
  type Evaluation,
  type SequentialOptions,
  type SequentialState,
  evaluate,
  initialState,
  observe,
  startStep,
} from '../../telemetry/sequential.js'
import type { Check, StepContext, Verifier } from '../verifier.js'

export interface TelemetryVerifierConfig {
  client: PrometheusClient
  /** Namespace, service and the two version label values, stable first. */
  target: QueryTarget & { versions: [string, string] }
  test: SequentialOptions
  /** max-step-time; undefined: 3 x the step's pause, at least 5 minutes. */
  maxStepTimeMs?: number
}

export interface TelemetryVerifierDeps {
  sleep: Sleep
  now: () => number
  log: (message: string) => void
}

/** What a telemetry check keeps in the report. */
export interface TelemetryEvidence {
  queries: { requests: string; errors: string }
  /** The step's counts (requests and 5xx per version, from the mesh's counters). */
  counts: Counts
  decision: Evaluation['decision']
  test: Evaluation['test']
  statistic: number
  threshold: number
  polls: number
  /** How long the step was observed. */
  observedMs: number
}

type Totals = Record<string, { requests: number; errors: number }>

const MIN_STEP_TIME_MS = 5 * 60_000

/** A counter that went down was reset (a pod restarted): its whole value is new. */
const increase = (now: number, before: number): number => (now >= before ? now - before : now)

export class TelemetryVerifier implements Verifier {
  readonly kind = 'telemetry'
  private state: SequentialState
  private readonly queries: { requests: string; errors: string }

  constructor(
    private readonly config: TelemetryVerifierConfig,
    private readonly deps: TelemetryVerifierDeps,
  ) {
    this.state = initialState(config.test)
    const built = buildCounterQueries(config.target)
    this.queries = { requests: built.requests, errors: built.errors }
  }

  describe(): string {
    const [stable, canary] = this.config.target.versions
    return (
      `Telemetry: ${this.config.client.describe}, canary ${canary} against stable ${stable} of ` +
      `${this.config.target.namespace}/${this.config.target.service}; queries: ${this.queries.requests} ; ` +
      `${this.queries.errors}`
    )
  }

  /** Cumulative requests and 5xx per version now. */
  async totals(): Promise<Totals> {
    const [requests, errors] = await Promise.all([
      this.config.client.query(this.queries.requests),
      this.config.client.query(this.queries.errors),
    ])
    const samples = (r: typeof requests) => (r.type === 'vector' ? r.samples : [])
    const byRequests = perVersion(this.config.target, samples(requests))
    const byErrors = perVersion(this.config.target, samples(errors))
    const out: Totals = {}
    for (const version of this.config.target.versions) {
      out[version] = { requests: byRequests[version] ?? 0, errors: byErrors[version] ?? 0 }
    }
    return out
  }

  /**
   * Before any change: the target must have series (a stable that served requests), else the queries match
   * nothing (mislabelled pods, wrong namespace) and no step could ever be judged.
   */
  async probe(): Promise<{ stableRequests: number }> {
    const totals = await this.totals()
    const stable = totals[this.config.target.versions[0]]?.requests ?? 0
    return { stableRequests: stable }
  }

  private pollInterval(pauseMs: number): number {
    return Math.max(1000, Math.min(5000, Math.round(pauseMs / 10)))
  }

  async verify(step: StepContext): Promise<Check> {
    if (step.kind !== 'step') return this.notJudged(step)
    this.state = startStep(this.state)
    const started = this.deps.now()
    const pauseEnds = started + step.pauseMs
    const maxStepTime = this.config.maxStepTimeMs ?? Math.max(3 * step.pauseMs, MIN_STEP_TIME_MS)
    const deadline = started + maxStepTime
    const interval = this.pollInterval(step.pauseMs)
    let last: Totals
    try {
      last = await this.totals()
    } catch (err) {
      return this.lost(err, 0, 0)
    }
    const [stable, canary] = this.config.target.versions
    // Bounded: every round sleeps `interval` and the loop ends at the deadline.
    for (let polls = 1; ; polls++) {
      await this.deps.sleep(Math.max(0, Math.min(interval, deadline - this.deps.now())), step.signal)
      let now: Totals
      try {
        now = await this.totals()
      } catch (err) {
        return this.lost(err, polls, this.deps.now() - started)
      }
      const delta: Counts = {
        canaryRequests: increase(now[canary]?.requests ?? 0, last[canary]?.requests ?? 0),
        canaryErrors: increase(now[canary]?.errors ?? 0, last[canary]?.errors ?? 0),
        stableRequests: increase(now[stable]?.requests ?? 0, last[stable]?.requests ?? 0),
        stableErrors: increase(now[stable]?.errors ?? 0, last[stable]?.errors ?? 0),
      }
      last = now
      this.state = observe(this.state, delta, this.config.test)
      const at = this.deps.now()
      const evaluation = evaluate(
        this.state,
        { pauseOver: at >= pauseEnds, stepTimeUp: at >= deadline },
        this.config.test,
      )
      if (evaluation.decision !== 'continue') return this.checkOf(evaluation, polls, at - started)
    }
  }

  private checkOf(evaluation: Evaluation, polls: number, observedMs: number): Check {
    const [stable, canary] = this.config.target.versions
    const counts = evaluation.counts
    const evidence: TelemetryEvidence = {
      queries: this.queries,
      counts,
      decision: evaluation.decision,
      test: evaluation.test,
      statistic: evaluation.statistic,
      threshold: evaluation.threshold,
      polls,
      observedMs,
    }
    const pass = evaluation.decision === 'accept'
    return {
      kind: this.kind,
      verdict: pass ? 'pass' : 'fail',
      reasons: pass ? [] : [evaluation.reason],
      summary:
        `${evaluation.decision} after ${formatDuration(observedMs)}: ${canary} ${counts.canaryErrors}/` +
        `${counts.canaryRequests} 5xx, ${stable} ${counts.stableErrors}/${counts.stableRequests} 5xx`,
      evidence,
    }
  }

  private lost(err: unknown, polls: number, observedMs: number): Check {
    const message = err instanceof Error ? err.message : String(err)
    return {
      kind: this.kind,
      verdict: 'fail',
      reasons: [`the step cannot be judged: ${message}`],
      summary: `Prometheus lost after ${polls} poll(s)`,
      evidence: { queries: this.queries, error: message, polls, observedMs },
    }
  }

  /** A baseline (nothing shifted yet) or a preview (its traffic is header-selected): nothing to compare. */
  private notJudged(step: StepContext): Check {
    return {
      kind: this.kind,
      verdict: 'pass',
      reasons: [],
      summary: `not judged (${step.kind})`,
      evidence: { queries: this.queries, judged: false },
    }
  }
}
