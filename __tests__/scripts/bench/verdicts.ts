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

/** Optional figures a verdict may give beyond the shared ones. */
export interface ExtraFigures {
  /** The check before the first change failed: the rollout never started, no traffic moved (not a rollback). */
  pStoppedBeforeChange?: number
  /** Steps that ended undecided (telemetry's max-step-time), reverted as inconclusive. */
  pInconclusive?: number
}

const pctCell = (p: number | undefined): string =>
  p === undefined || Number.isNaN(p) ? '—' : p === 0 ? '0' : p < 0.001 ? '<0.1 %' : `${(100 * p).toFixed(1)} %`
const num = (x: number, unit = ''): string => (Number.isFinite(x) ? `${x.toFixed(x >= 100 ? 0 : 1)}${unit}` : '—')

/** The scenario as a title: 'canary 5 % vs stable 0.5 %'. */
export const scenarioTitle = (s: Scenario): string =>
  `canary ${+(100 * s.canaryErrorRate).toFixed(2)} % vs stable ${+(100 * s.stableErrorRate).toFixed(2)} %` +
  (isHealthy(s) ? ' (healthy canary)' : '')

/**
 * The verdicts side by side, one block per scenario (in SCENARIOS order, then any other scenario), one row per verdict
 * and method: P(rollback) at each of DEFAULT_STEPS, P(promoted), P(stopped before any change), for healthy canaries the
 * false rollback rate (all steps together), and at each of RATES the mean time to rollback and the failed user
 * requests before the revert.
 */
export function printVerdictTable(figures: VerdictFigures[]): string {
  const key = (s: Scenario): string => `${s.canaryErrorRate}/${s.stableErrorRate}`
  const order = [...SCENARIOS.map(key), ...figures.map((f) => key(f.scenario))].filter(
    (k, i, all) => all.indexOf(k) === i,
  )
  const header = [
    'verdict',
    'method',
    'rollouts',
    ...DEFAULT_STEPS.map((w) => `rb@${w}`),
    'promoted',
    'stopped',
    'false rb',
    ...RATES.flatMap((r) => [`t_rb@${r}/s`, `failed@${r}/s`]),
  ]
  const lines: string[] = []
  for (const k of order) {
    const rows = figures.filter((f) => key(f.scenario) === k)
    if (rows.length === 0) continue
    const scenario = rows[0]?.scenario as Scenario
    const cells = rows.map((f) => {
      const extra = f as VerdictFigures & ExtraFigures
      const rolledBack = f.pRollbackByStep.reduce((a, b) => a + b, 0)
      return [
        f.verdict,
        f.method,
        String(f.rollouts),
        ...DEFAULT_STEPS.map((_, i) => pctCell(f.pRollbackByStep[i])),
        pctCell(f.pPromoted),
        pctCell(extra.pStoppedBeforeChange),
        isHealthy(scenario) ? pctCell(rolledBack) : '',
        ...RATES.flatMap((r) => [
          num(f.byRate[r]?.meanTimeToRollbackS ?? Number.NaN, ' s'),
          num(f.byRate[r]?.failedUserRequests ?? Number.NaN),
        ]),
      ]
    })
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)))
    const fmt = (c: string[]): string =>
      c.map((x, i) => (i < 2 ? x.padEnd(widths[i] ?? 0) : x.padStart(widths[i] ?? 0))).join('  ')
    lines.push(scenarioTitle(scenario), fmt(header), ...cells.map(fmt), '')
  }
  return lines.join('\n')
}

/** Issue 10's targets (default steps, 60 s pauses, 10 req/s), as checks on a verdict's Monte Carlo figures. */
export const TARGETS = {
  /** A 5 % canary against a 0.5 % stable is rolled back in at least this share of rollouts. */
  detection: 0.98,
  /** ...after at most this many seconds on average at 10 req/s. */
  meanTimeToRollbackS: 90,
  /** A healthy canary is rolled back in at most this share, at 0.5 % and 1 % baselines. */
  falseRollback: 0.01,
  /** A canary failing every request costs at most this many failed user requests at 10 req/s. */
  brokenCanaryFailed: 20,
} as const

/**
 * One line per target for `verdict`'s Monte Carlo figures: the figure, the target, and whether it is met, so the
 * bench says plainly which targets a setting meets (not only the numbers to compare by eye).
 */
export function targetLines(figures: VerdictFigures[], verdict: string): string[] {
  const mc = figures.filter((f) => f.verdict === verdict && f.method === 'monte carlo')
  const find = (canary: number, stable: number): VerdictFigures | undefined =>
    mc.find((f) => f.scenario.canaryErrorRate === canary && f.scenario.stableErrorRate === stable)
  const rate = RATES[0]
  const pct = (p: number): string => `${(100 * p).toFixed(2)} %`
  const line = (what: string, figure: string, target: string, met: boolean): string =>
    `  ${met ? 'met    ' : 'NOT met'}  ${what}: ${figure} (target ${target})`
  const lines: string[] = []
  const bad = find(0.05, 0.005)
  if (bad) {
    const caught = 1 - bad.pPromoted
    lines.push(
      line('5 %-vs-0.5 % canary rolled back', pct(caught), `>= ${pct(TARGETS.detection)}`, caught >= TARGETS.detection),
    )
    const t = bad.byRate[rate]?.meanTimeToRollbackS ?? Number.NaN
    lines.push(
      line(
        `its mean time to rollback at ${rate} req/s`,
        `${t.toFixed(1)} s`,
        `<= ${TARGETS.meanTimeToRollbackS} s`,
        t <= TARGETS.meanTimeToRollbackS,
      ),
    )
  }
  for (const baseline of [0.005, 0.01]) {
    const healthy = find(baseline, baseline)
    if (!healthy) continue
    const rolledBack = healthy.pRollbackByStep.reduce((a, b) => a + b, 0)
    lines.push(
      line(
        `healthy canary rolled back at a ${pct(baseline)} baseline`,
        pct(rolledBack),
        `<= ${pct(TARGETS.falseRollback)}`,
        rolledBack <= TARGETS.falseRollback,
      ),
    )
  }
  for (const stable of [0, 0.005]) {
    const broken = find(1, stable)
    const failed = broken?.byRate[rate]?.failedUserRequests
    if (failed === undefined) continue
    lines.push(
      line(
        `100 %-broken canary (stable ${pct(stable)}): failed user requests at ${rate} req/s`,
        failed.toFixed(1),
        `<= ${TARGETS.brokenCanaryFailed}`,
        failed <= TARGETS.brokenCanaryFailed,
      ),
    )
  }
  return lines
}
