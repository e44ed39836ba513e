// The mesh's own telemetry as a Verifier (SPEC section 6): during each step it polls Prometheus for the
// cumulative request and 5xx counters per version, differences successive polls, and feeds the sequential
// canary-vs-stable test (../../telemetry/sequential.ts), which runs through the whole rollout. A step ends as
// soon as the test decides: rejected at once, accepted at the end of the pause with enough canary requests,
// inconclusive at max-step-time. A Prometheus lost during a step fails it (the engine reverts): never a pass.
// Latency (SPEC section 6 rule 2; the rule: ../../telemetry/latency.ts): with `max-latency`, at every poll at
// which the canary has served 100 requests in the step, and at the poll that would pass it, the p95 per version
// over the step so far, computed by Prometheus from the duration histograms; a canary over the bound fails the
// step at once (or, stable as slow, the step fails as stable-unhealthy). The check's figures (requests,
// successes, p50/p95 per version over the step) come from the same counters and histograms.
import { formatDuration } from '../../parse.js'
import type { Sleep } from '../../retry.js'
import {
  type LatencyDecision,
  type LatencyVerdict,
  MIN_LATENCY_REQUESTS,
  formatP95,
  judgeLatency,
} from '../../telemetry/latency.js'
import type { PrometheusClient, QueryResult } from '../../telemetry/prometheus.js'
import {
  type LatencyQueries,
  type QueryTarget,
  buildCounterQueries,
  buildLatencyQueries,
  perVersion,
} from '../../telemetry/queries.js'
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
import type { Check, CheckFigures, StepContext, Verifier, VersionFigures } from '../verifier.js'

export interface TelemetryVerifierConfig {
  client: PrometheusClient
  /** Namespace, service and the two version label values, stable first. */
  target: QueryTarget & { versions: [string, string] }
  test: SequentialOptions
  /** max-step-time; undefined: 3 x the step's pause, at least 5 minutes. */
  maxStepTimeMs?: number
  /** max-latency: the bound on the canary's p95 (ms); undefined: latency is reported, not judged. */
  maxLatencyMs?: number
  /** How often a step polls the counters; default POLL_INTERVAL_MS (the benchmark sets the old cadence to compare). */
  pollIntervalMs?: number
}

export interface TelemetryVerifierDeps {
  sleep: Sleep
  now: () => number
  log: (message: string) => void
  /** A warning (latency not judged although max-latency is set); default: log. */
  warn?: (message: string) => void
}

/** The step's latency as kept in the report. */
export interface LatencyEvidence {
  maxLatencyMs?: number
  /** The window the quantiles are over: the step so far, in whole seconds. */
  windowSeconds: number
  queries: LatencyQueries
  /** p95 and p50 per version over the window, ms (NaN, null in JSON: no sample). */
  p95Ms: Record<string, number>
  p50Ms: Record<string, number>
  decision: LatencyDecision
  reason: string
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
  latency?: LatencyEvidence
}

type Totals = Record<string, { requests: number; errors: number }>

const MIN_STEP_TIME_MS = 5 * 60_000
/** How often a step polls the counters (see pollInterval). */
export const POLL_INTERVAL_MS = 1000

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
    // The latency query's window is the step so far: shown as a placeholder.
    const p95 = buildLatencyQueries(this.config.target, 1).p95.replace('[1s]', '[<seconds into the step>s]')
    const max = this.config.maxLatencyMs
    return (
      `Telemetry: ${this.config.client.describe}, canary ${canary} against stable ${stable} of ` +
      `${this.config.target.namespace}/${this.config.target.service}; queries: ${this.queries.requests} ; ` +
      `${this.queries.errors} ; latency (${max !== undefined ? `max-latency ${max} ms` : 'reported, not judged: no max-latency'}, ` +
      `from ${MIN_LATENCY_REQUESTS} canary requests): ${p95}`
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

  /**
   * Every second, whatever the pause: SPEC section 6 rule 1 applies the test at every scrape, and a second is the
   * shortest scrape interval in use (the simulation's). Istio's sample Prometheus scrapes every 15 s (istio/istio
   * samples/addons/prometheus.yaml, `global.scrape_interval: 15s`): there most polls see no new sample and add
   * nothing to the test, at the cost of two instant queries a second. Polling every pause / 10 (5 s at 60 s
   * pauses) added ~2.5 s to every rejection and let a broken canary fail 5 s more of users' requests.
   */
  private pollInterval(): number {
    return this.config.pollIntervalMs ?? POLL_INTERVAL_MS
  }

  /** Per-version values of a quantile query; NaN for a version without samples in the window (not 0 ms). */
  private quantiles(result: QueryResult | undefined): Record<string, number> {
    return perVersion(this.config.target, result?.type === 'vector' ? result.samples : [], NaN)
  }

  /** p95 per version over the last `windowSeconds`. */
  private async p95ByVersion(windowSeconds: number): Promise<{ p95: Record<string, number>; queries: LatencyQueries }> {
    const queries = buildLatencyQueries(this.config.target, windowSeconds)
    return { p95: this.quantiles(await this.config.client.query(queries.p95)), queries }
  }

  async verify(step: StepContext): Promise<Check> {
    if (step.kind !== 'step') return this.notJudged(step)
    this.state = startStep(this.state)
    const started = this.deps.now()
    const pauseEnds = started + step.pauseMs
    const maxStepTime = this.config.maxStepTimeMs ?? Math.max(3 * step.pauseMs, MIN_STEP_TIME_MS)
    const deadline = started + maxStepTime
    const interval = this.pollInterval()
    let last: Totals
    try {
      last = await this.totals()
    } catch (err) {
      return this.lost(err, 0, 0)
    }
    const [stable, canary] = this.config.target.versions
    const maxLatency = this.config.maxLatencyMs
    // The counters read at the start are those of the last scrape BEFORE the step began, up to one scrape interval
    // old (15 s with Istio's sample Prometheus; 30 s by default on Azure Monitor's managed Prometheus,
    // https://learn.microsoft.com/azure/azure-monitor/containers/prometheus-metrics-scrape-default, "Scrape
    // frequency"). So the first interval in which they move straddles the step's start and holds requests served at
    // the previous weight. It goes to the rollout-wide test but not to the step's counts, which thus never count a
    // request of the previous step (they may miss up to one scrape interval of the step's own: the safe side of
    // min-canary-requests).
    let straddling = true
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
      const moved = delta.canaryRequests + delta.canaryErrors + delta.stableRequests + delta.stableErrors > 0
      this.state = observe(this.state, delta, this.config.test, !(straddling && moved))
      if (moved) straddling = false
      const at = this.deps.now()
      const evaluation = evaluate(
        this.state,
        { pauseOver: at >= pauseEnds, stepTimeUp: at >= deadline },
        this.config.test,
      )
      const windowSeconds = Math.max(1, Math.floor((at - started) / 1000))
      const counted = evaluation.counts
      const latencyDue = maxLatency !== undefined && counted.canaryRequests >= MIN_LATENCY_REQUESTS
      if (evaluation.decision === 'continue' && !latencyDue) continue
      if (evaluation.decision !== 'continue' && evaluation.decision !== 'accept') {
        // Decided on the error counts: the latency figures are evidence only (best effort).
        return this.checkOf(evaluation, await this.latencyFigures(windowSeconds), polls, at - started)
      }
      // Accepting, or the canary has served enough for its p95: judge the latency now.
      let p95: Record<string, number> | undefined
      let queries: LatencyQueries | undefined
      if (latencyDue) {
        try {
          ;({ p95, queries } = await this.p95ByVersion(windowSeconds))
        } catch (err) {
          return this.lost(err, polls, this.deps.now() - started)
        }
      }
      const verdict = judgeLatency({
        maxLatencyMs: maxLatency,
        canary: { version: canary, requests: counted.canaryRequests, p95Ms: p95?.[canary] ?? NaN },
        stable: { version: stable, requests: counted.stableRequests, p95Ms: p95?.[stable] ?? NaN },
      })
      if (verdict.decision === 'reject' || verdict.decision === 'stable-unhealthy') {
        const figures = await this.latencyFigures(windowSeconds, verdict, p95 && queries ? { p95, queries } : undefined)
        return this.checkOf({ ...evaluation, decision: verdict.decision }, figures, polls, at - started)
      }
      if (evaluation.decision === 'accept') {
        if (verdict.decision === 'not-judged' && maxLatency !== undefined) {
          ;(this.deps.warn ?? this.deps.log)(`Step ${step.index} at ${step.weight} %: ${verdict.reason}`)
        }
        const figures = await this.latencyFigures(windowSeconds, verdict, p95 && queries ? { p95, queries } : undefined)
        return this.checkOf(evaluation, figures, polls, at - started)
      }
    }
  }

  /**
   * The step's p50/p95 per version and overall, for the report (best effort: a figure Prometheus cannot give
   * now is left out, the decision stands). `judged`: the p95s the latency verdict was made on, kept as they were.
   */
  private async latencyFigures(
    windowSeconds: number,
    verdict?: LatencyVerdict,
    judged?: { p95: Record<string, number>; queries: LatencyQueries },
  ): Promise<{ latency: LatencyEvidence; all?: { p50Ms: number; p95Ms: number } }> {
    const queries = judged?.queries ?? buildLatencyQueries(this.config.target, windowSeconds)
    const [p50, p95, p50All, p95All] = await Promise.allSettled([
      this.config.client.query(queries.p50),
      judged ? Promise.resolve(undefined) : this.config.client.query(queries.p95),
      this.config.client.query(queries.p50All),
      this.config.client.query(queries.p95All),
    ])
    const byVersion = (r: PromiseSettledResult<QueryResult | undefined>): Record<string, number> =>
      this.quantiles(r.status === 'fulfilled' ? r.value : undefined)
    const scalar = (r: PromiseSettledResult<QueryResult>): number | undefined => {
      if (r.status !== 'fulfilled' || r.value.type !== 'vector') return undefined
      return r.value.samples[0]?.value ?? NaN
    }
    const maxLatency = this.config.maxLatencyMs
    const p95ByVersion = judged?.p95 ?? byVersion(p95)
    const [stable, canary] = this.config.target.versions
    const shown = verdict ?? {
      decision: 'not-judged' as const,
      reason:
        maxLatency === undefined
          ? 'latency not judged: no max-latency set'
          : 'latency not judged: the step was decided on its error counts',
    }
    const latency: LatencyEvidence = {
      ...(maxLatency !== undefined ? { maxLatencyMs: maxLatency } : {}),
      windowSeconds,
      queries,
      p95Ms: p95ByVersion,
      p50Ms: byVersion(p50),
      decision: shown.decision,
      reason:
        shown.decision === 'not-judged'
          ? `${shown.reason} (p95 ${canary} ${formatP95(p95ByVersion[canary] ?? NaN)}, ${stable} ` +
            `${formatP95(p95ByVersion[stable] ?? NaN)})`
          : shown.reason,
    }
    const a50 = scalar(p50All)
    const a95 = scalar(p95All)
    return { latency, ...(a50 !== undefined && a95 !== undefined ? { all: { p50Ms: a50, p95Ms: a95 } } : {}) }
  }

  private checkOf(
    evaluation: Evaluation,
    measured: { latency: LatencyEvidence; all?: { p50Ms: number; p95Ms: number } },
    polls: number,
    observedMs: number,
  ): Check {
    const [stable, canary] = this.config.target.versions
    const counts = evaluation.counts
    const { latency } = measured
    const evidence: TelemetryEvidence = {
      queries: this.queries,
      counts,
      decision: evaluation.decision,
      test: evaluation.test,
      statistic: evaluation.statistic,
      threshold: evaluation.threshold,
      polls,
      observedMs,
      latency,
    }
    const pass = evaluation.decision === 'accept'
    const byLatency = latency.decision === 'reject' || latency.decision === 'stable-unhealthy'
    const round = (x: number): number => Math.round(x * 10) / 10
    const figures = (): CheckFigures | undefined => {
      if (!measured.all) return undefined
      const byVersion: Record<string, VersionFigures> = {}
      const add = (version: string, requests: number, errors: number): void => {
        if (requests <= 0) return
        byVersion[version] = {
          requests,
          successes: requests - errors,
          p50Ms: round(latency.p50Ms[version] ?? NaN),
          p95Ms: round(latency.p95Ms[version] ?? NaN),
        }
      }
      add(stable, counts.stableRequests, counts.stableErrors)
      add(canary, counts.canaryRequests, counts.canaryErrors)
      const requests = counts.stableRequests + counts.canaryRequests
      const successes = requests - counts.stableErrors - counts.canaryErrors
      return {
        requests,
        successes,
        successRate: requests > 0 ? successes / requests : 0,
        p50Ms: round(measured.all.p50Ms),
        p95Ms: round(measured.all.p95Ms),
        byVersion,
      }
    }
    const f = figures()
    return {
      kind: this.kind,
      verdict: pass ? 'pass' : 'fail',
      reasons: pass ? [] : [byLatency ? latency.reason : evaluation.reason],
      summary:
        `${evaluation.decision} after ${formatDuration(observedMs)}: ${canary} ${counts.canaryErrors}/` +
        `${counts.canaryRequests} 5xx, ${stable} ${counts.stableErrors}/${counts.stableRequests} 5xx; ` +
        latency.reason,
      ...(f ? { figures: f } : {}),
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
