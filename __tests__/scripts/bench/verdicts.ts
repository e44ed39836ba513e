// The figures `npm run bench` prints side by side for each verdict (old smoke, calibrated smoke,
// telemetry): the same scenarios, the same columns, so one table compares them.
// Each verdict's figures come from its own module (smoke.ts, telemetry.ts beside this file).

/** One canary-vs-stable situation: per-request error rates, 0..1. */
export interface Scenario {
  canaryErrorRate: number
  stableErrorRate: number
}

/** The rollout the targets are stated for: default steps, 60 s pauses. */
export const DEFAULT_STEPS = [10, 25, 50, 100] as const
export const PAUSE_S = 60
/** User traffic rates (req/s) the time and cost columns are given for. */
export const RATES = [10, 100] as const

/** Canary error rates 100/50/20/10/5/2 % against stable 0 % and 0.5 %, then healthy canaries at 0.5 % and 1 %. */
export const SCENARIOS: Scenario[] = [
  ...[0, 0.005].flatMap((stable) =>
    [1, 0.5, 0.2, 0.1, 0.05, 0.02].map((canary) => ({ canaryErrorRate: canary, stableErrorRate: stable })),
  ),
  { canaryErrorRate: 0.005, stableErrorRate: 0.005 },
  { canaryErrorRate: 0.01, stableErrorRate: 0.01 },
]

export const isHealthy = (s: Scenario): boolean => s.canaryErrorRate <= s.stableErrorRate

export interface RateFigures {
  /** Mean seconds from the first change to the reverted route, over rolled-back rollouts (NaN: none). */
  meanTimeToRollbackS: number
  /** Mean user requests that failed on the canary before the revert, over rolled-back rollouts. */
  failedUserRequests: number
}

export interface VerdictFigures {
  /** 'old smoke' | 'calibrated smoke' | 'telemetry' ... */
  verdict: string
  /** 'monte carlo' or 'end to end' (through the simulation and the real Prometheus). */
  method: string
  scenario: Scenario
  /** Rollouts drawn (Monte Carlo) or run (end to end). */
  rollouts: number
  /** P(rolled back at step i) for each of DEFAULT_STEPS; sums with pPromoted (and pInconclusive) to 1. */
  pRollbackByStep: number[]
  pPromoted: number
  /** Keyed by req/s, RATES. */
  byRate: Record<number, RateFigures>
}
