// The smoke test as a Verifier: after the step's pause, N requests through the ingress gateway, judged against the
// smoke test of the route before the rollout (the baseline step the engine runs first), on their failures, latency
// and (with a version pattern) the share of answers each version gave; `success-threshold` is an absolute floor.
import { formatDuration } from '../../parse.js'
import type { Sleep } from '../../retry.js'
import type { Check, StepContext, Verifier } from '../verifier.js'
import { type SmokeConfig, type SmokeResult, runSmokeTest } from './smoke.js'
import { BASELINE_FACTOR, type Verdict, judge, stepAlpha, testsPerStep } from './verdict.js'
import { type Settled, type TrafficChange, settleShares } from '../settle.js'

export interface SmokeVerifierConfig {
  /** The smoke test of every step; the step's headers are added to `request.headers`. */
  request: SmokeConfig
  /** Absolute floor on the success rate, 0..1. */
  threshold: number
  /** Steps of the rollout (the `steps` input): the false-rollback bound is split over them. */
  steps: number
  maxLatencyMs?: number
  /** Version strings that mean canary (its subset name and version label), and stable. */
  canaryVersions: string[]
  stableVersions: string[]
  /** The answers' version shares are tested against the weights (version pattern set, split stable/canary only). */
  checkShares: boolean
  /** Bound on false rollbacks over the rollout: SMOKE_ROLLOUT_ALPHA alone, SMOKE_GATE_ALPHA beside telemetry. */
  rolloutAlpha: number
  /** Upper bound of the wait for traffic to follow a route change (default SETTLE_TIMEOUT_MS). */
  settleTimeoutMs?: number
}

export interface SmokeVerifierDeps {
  sleep: Sleep
  log: (message: string) => void
  /** Clock of the settle wait (default Date.now). */
  now?: () => number
}

/** A smoke test's result and verdict as a Check. */
export function smokeCheck(result: SmokeResult, verdict: Verdict): Check {
  const rate = result.requests ? `${((100 * result.successes) / result.requests).toFixed(1)} %` : 'n/a'
  return {
    kind: 'smoke',
    verdict: verdict.pass ? 'pass' : 'fail',
    reasons: verdict.reasons,
    summary: `${result.successes}/${result.requests} passed (${rate}), p95 ${Math.round(result.p95Ms)} ms`,
    figures: {
      requests: result.requests,
      successes: result.successes,
      successRate: result.successRate,
      p50Ms: result.p50Ms,
      p95Ms: result.p95Ms,
      byVersion: result.byVersion,
    },
    evidence: result,
  }
}

export class SmokeVerifier implements Verifier {
  readonly kind = 'smoke'
  /** The smoke test of the route as it was before the first change (the engine's baseline check). */
  private baseline: SmokeResult | undefined

  constructor(
    private readonly config: SmokeVerifierConfig,
    private readonly deps: SmokeVerifierDeps,
  ) {}

  describe(): string {
    const r = this.config.request
    return (
      `Smoke test: ${r.requests} requests to ${r.url} per step (${r.concurrency} at once), each step compared ` +
      `with a baseline of ${r.requests * BASELINE_FACTOR} requests to the route before the first change ` +
      `(exact tests at ${this.alpha().toExponential(2)} each: at most ${100 * this.config.rolloutAlpha} % false ` +
      `rollbacks over ${this.config.steps} step(s)); floor success-threshold ${this.config.threshold}`
    )
  }

  private alpha(): number {
    return stepAlpha(
      this.config.steps,
      testsPerStep({
        versionPattern: this.config.request.versionPattern !== undefined,
        maxLatency: this.config.maxLatencyMs !== undefined,
      }),
      this.config.rolloutAlpha,
    )
  }

  /** Only with a version pattern can answers be attributed: without it, undefined (settle is not defined). */
  get settle(): ((change: TrafficChange) => Promise<Settled>) | undefined {
    if (!this.config.request.versionPattern) return undefined
    return (change) =>
      settleShares(
        {
          request: this.config.request,
          canaryVersions: this.config.canaryVersions,
          threshold: this.config.threshold,
          ...(this.config.settleTimeoutMs !== undefined ? { timeoutMs: this.config.settleTimeoutMs } : {}),
        },
        change,
        { probe: runSmokeTest, sleep: this.deps.sleep, now: this.deps.now ?? Date.now },
      )
  }

  async verify(step: StepContext): Promise<Check> {
    if (step.pauseMs > 0) {
      this.deps.log(`Pausing ${formatDuration(step.pauseMs)}`)
      await this.deps.sleep(step.pauseMs, step.signal)
    }
    step.signal.throwIfAborted()
    const request: SmokeConfig = {
      ...this.config.request,
      // The baseline every step is compared with: a larger sample (no traffic has moved yet).
      ...(step.kind === 'baseline' ? { requests: this.config.request.requests * BASELINE_FACTOR } : {}),
      headers: { ...this.config.request.headers, ...step.headers },
      ...(this.config.maxLatencyMs !== undefined ? { maxLatencyMs: this.config.maxLatencyMs } : {}),
    }
    const result = await runSmokeTest(request, step.signal)
    // A step is compared with the baseline; the baseline itself, and a preview (header-selected, no baseline),
    // only with the absolute rules.
    const baseline = step.kind === 'step' ? this.baseline : undefined
    const verdict = judge({
      result,
      alpha: this.alpha(),
      ...(baseline ? { baseline } : {}),
      threshold: this.config.threshold,
      canaryWeight: step.weight,
      canaryVersions: this.config.canaryVersions,
      stableVersions: this.config.stableVersions,
      checkShares: this.config.checkShares,
      ...(this.config.maxLatencyMs !== undefined ? { maxLatencyMs: this.config.maxLatencyMs } : {}),
    })
    if (step.kind === 'baseline' && verdict.pass) this.baseline = result
    return smokeCheck(result, verdict)
  }
}

/** The smoke test's result among a step's checks (a report's reader's accessor). */
export function smokeEvidence(checks: readonly Check[]): SmokeResult | undefined {
  return checks.find((c) => c.kind === 'smoke')?.evidence as SmokeResult | undefined
}
