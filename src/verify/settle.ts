// Settling: after a route write, wait (bounded) until traffic follows the new weights before the step is judged.
// A route change reaches the proxies some time after the write: istiod debounces config events for at least
// PILOT_DEBOUNCE_AFTER (100 ms), up to PILOT_DEBOUNCE_MAX (10 s) while events keep coming, then pushes to each
// proxy in turn (istio/istio pilot/pkg/features/tuning.go; pilot/pkg/xds/discovery.go debounce()). Judged too
// early, a step sees the old weights: a slow push would be blamed on the canary (its share too low) or mistaken
// for success (the canary not yet serving).
//
// The test: probes through the gateway with the smoke test's own prober, each answer attributed to a version, and
// a CUSUM change detector on the canary's share, from the share before the write (p0) to the new one (p1): each
// batch adds its log-likelihood ratio, the sum never drops below 0 (answers at the old share only reset it), and
// the change is detected when it exceeds log(1000) (a false detection under the old share every ~1000x the
// samples a detection needs). Pure parts are exported for the unit tests; the loop takes its prober and clock.
import type { Sleep } from '../retry.js'
import { formatDuration } from '../parse.js'
import type { SmokeConfig, SmokeResult } from './smoke/smoke.js'

/** A route change to wait for: the canary's share of the probed requests before and after the write, in percent. */
export interface TrafficChange {
  /** revert: the run's own revert, confirmed after it is written; failing probes do not end its wait (below). */
  kind: 'step' | 'preview' | 'revert'
  from: number
  to: number
  /** Headers a probe carries (a preview's). */
  headers: Record<string, string>
  signal: AbortSignal
}

export interface Settled {
  /** settled: traffic follows the new weights; failing: too many probes fail to tell (the step's checks judge them);
   * timeout: the bound passed with traffic still on the old weights. */
  outcome: 'settled' | 'failing' | 'timeout'
  /** One line for the log: what the probes saw. */
  summary: string
  probes: number
  canary: number
  elapsedMs: number
}

export interface SettleConfig {
  /** The smoke test's request; `requests` is replaced by each batch's size. */
  request: SmokeConfig
  canaryVersions: string[]
  /** Minimum success rate of the step (0..1): more failing probes than it allows (or FAILING_PROBES of them) end
   * the wait as 'failing'. */
  threshold: number
  /** Upper bound of the wait (default SETTLE_TIMEOUT_MS). */
  timeoutMs?: number
  /** Probes per batch (default: the smoke test's concurrency). */
  batch?: number
  /** Pause between batches (default 100 ms). */
  gapMs?: number
  /** At most this many probes (default 5000). */
  maxProbes?: number
}

export interface SettleDeps {
  probe: (cfg: SmokeConfig, signal: AbortSignal) => Promise<SmokeResult>
  sleep: Sleep
  now: () => number
}

/** istiod's PILOT_DEBOUNCE_MAX (10 s) and pushes of several seconds under load, with room to spare. */
export const SETTLE_TIMEOUT_MS = 30_000

/** Failed probes that end the wait as 'failing' whatever their share. */
export const FAILING_PROBES = 3

/** After a revert: the wait ends as 'failing' once this many probes failed, and at least this share of them. */
export const REVERT_FAILING_PROBES = 20
export const REVERT_FAILING_SHARE = 0.9

/** Where the detector decides: log(1000). */
export const SETTLE_THRESHOLD = Math.log(1000)

const clamp = (p: number): number => Math.min(0.999, Math.max(0.001, p))

/** The log-likelihood ratio of `canary` canary and `other` other answers, new share p1 against old share p0. */
export function shareLlr(p0: number, p1: number, canary: number, other: number): number {
  const a = clamp(p0)
  const b = clamp(p1)
  return canary * Math.log(b / a) + other * Math.log((1 - b) / (1 - a))
}

/** One CUSUM step: the statistic after a batch (never below 0). */
export function cusum(s: number, p0: number, p1: number, canary: number, other: number): number {
  return Math.max(0, s + shareLlr(p0, p1, canary, other))
}

/** The batch's attributed answers: canary, other versions, and failed or unattributed ones. */
export function tally(
  result: SmokeResult,
  canaryVersions: readonly string[],
): { canary: number; other: number; failed: number } {
  let canary = 0
  let other = 0
  for (const [version, stats] of Object.entries(result.byVersion)) {
    if (canaryVersions.includes(version)) canary += stats.requests
    else other += stats.requests
  }
  return { canary, other, failed: result.requests - result.successes }
}

const pct = (n: number, of: number): string => (of > 0 ? `${Math.round((100 * n) / of)} %` : 'n/a')

/** Probes until traffic follows the change, too many probes fail, or the bound passes. */
export async function settleShares(config: SettleConfig, change: TrafficChange, deps: SettleDeps): Promise<Settled> {
  const started = deps.now()
  const timeoutMs = config.timeoutMs ?? SETTLE_TIMEOUT_MS
  const batch = config.batch ?? config.request.concurrency
  const gapMs = config.gapMs ?? 100
  const maxProbes = config.maxProbes ?? 5000
  const p0 = change.from / 100
  const p1 = change.to / 100
  let s = 0
  let probes = 0
  let canary = 0
  let failed = 0
  // The last few batches: what the log says traffic looks like now (not since the write).
  const window: Array<{ canary: number; attributed: number }> = []
  const done = (outcome: Settled['outcome']): Settled => {
    const elapsedMs = deps.now() - started
    const last = window.reduce((a, b) => ({ canary: a.canary + b.canary, attributed: a.attributed + b.attributed }), {
      canary: 0,
      attributed: 0,
    })
    const seen =
      `${probes} probes in ${formatDuration(Math.round(elapsedMs))}, ` +
      `the canary served ${pct(last.canary, last.attributed)} of the last ${last.attributed} attributed` +
      (change.kind === 'revert' ? " (failed answers that name no version counted as the canary's)" : '')
    const summary =
      outcome === 'settled'
        ? `traffic follows ${change.to} % (${seen})`
        : outcome === 'failing'
          ? `${failed} of ${probes} probes failed while waiting for ${change.to} % (${seen})`
          : `traffic did not follow ${change.to} % within ${formatDuration(timeoutMs)} (${seen}; before the change: ${change.from} %)`
    return { outcome, summary, probes, canary, elapsedMs }
  }
  if (change.from === change.to) return done('settled')
  const request = { ...config.request, headers: { ...config.request.headers, ...change.headers } }
  while (probes < maxProbes) {
    change.signal.throwIfAborted()
    if (deps.now() - started >= timeoutMs) return done('timeout')
    const result = await deps.probe({ ...request, requests: batch }, change.signal)
    const t = tally(result, config.canaryVersions)
    // After a revert, a failed answer that names no version is the reverted canary's (BookInfo's error pages name
    // none; the restored route passed its baseline): counted as the canary's, a broken canary's share shows, and
    // the stable answers alone do not "prove" a revert the proxies have not taken.
    const canaryLike = t.canary + (change.kind === 'revert' ? (result.unattributedFailures ?? 0) : 0)
    probes += result.requests
    canary += t.canary
    failed += t.failed
    window.push({ canary: canaryLike, attributed: canaryLike + t.other })
    if (window.length > 4) window.shift()
    s = cusum(s, p0, p1, canaryLike, t.other)
    if (s >= SETTLE_THRESHOLD) return done('settled')
    // Failing answers after a baseline that passed are the step's to judge (a broken canary's pages may name no
    // version, so its share would never show): a few of them, or more than the threshold allows, end the wait.
    // Not after a revert: until the proxies have it, the reverted canary still fails its share of the probes, and
    // only the answers of the restored route tell that they have it. There, only probes that nearly all fail (an
    // outage of stable too, or of the gateway) leave nothing to tell the versions apart by.
    if (change.kind === 'revert') {
      if (failed >= REVERT_FAILING_PROBES && failed / probes >= REVERT_FAILING_SHARE) return done('failing')
    } else if (failed >= FAILING_PROBES || (probes >= 10 && failed / probes > 1 - config.threshold)) {
      return done('failing')
    }
    await deps.sleep(gapMs, change.signal)
  }
  return done('timeout')
}
