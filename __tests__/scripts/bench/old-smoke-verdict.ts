// FROZEN COPY of judge() from src/verify/smoke/verdict.ts as it was on main at af6bdb6 (before the calibrated
// verdict): the absolute success-threshold (0.95 on 20 requests) the benchmark compares the calibrated verdict with.
// Not used by the action; do not update it with src/.
// Pass/fail of one step's smoke test (old).
import type { SmokeResult } from '../../../src/verify/smoke/smoke.js'
import { pct, weightShareCheck } from '../../../src/verify/smoke/stats.js'

export interface VerdictInput {
  result: SmokeResult
  /** Minimum success rate, 0..1. */
  threshold: number
  maxLatencyMs?: number
  /** Canary weight (percent) in force during the test. */
  canaryWeight: number
  /** Version strings that mean canary, e.g. ['v3'] (subset name and its version label). */
  canaryVersions: string[]
  stableVersions: string[]
  /** versionPattern set and the route split is stable+canary only. */
  checkShares: boolean
}

export interface Verdict {
  pass: boolean
  /** Each failed criterion, human readable with numbers. */
  reasons: string[]
}

/** Significance level of the share check: a correct rollout fails it once in a thousand tests. */
export const SHARE_ALPHA = 0.001

export function judge(v: VerdictInput): Verdict {
  const { result: r, threshold } = v
  const reasons: string[] = []

  if (r.requests === 0) reasons.push('no smoke request was made')
  else if (r.successes === 0) reasons.push(`no request succeeded (0/${r.requests})`)
  if (r.requests > 0 && r.successRate < threshold) {
    reasons.push(`success rate ${pct(r.successRate)} (${r.successes}/${r.requests}) below threshold ${pct(threshold)}`)
  }

  const canarySet = new Set(v.canaryVersions)
  let canaryServed = 0
  let canaryOk = 0
  let attributed = 0
  const canaryP95: number[] = []
  for (const [version, s] of Object.entries(r.byVersion)) {
    attributed += s.requests
    if (canarySet.has(version)) {
      canaryServed += s.requests
      canaryOk += s.successes
      canaryP95.push(s.p95Ms)
    }
  }
  const canaryLabel = v.canaryVersions.join('/') || 'canary'

  if (canaryServed > 0 && canaryOk / canaryServed < threshold) {
    reasons.push(
      `canary (${canaryLabel}) success rate ${pct(canaryOk / canaryServed)} (${canaryOk}/${canaryServed}) ` +
        `below threshold ${pct(threshold)}`,
    )
  }

  if (v.checkShares && attributed > 0) {
    const share = weightShareCheck(canaryServed, attributed, v.canaryWeight, SHARE_ALPHA)
    if (!share.ok) {
      if (canaryServed === 0 && v.canaryWeight > 0) {
        reasons.push(
          `canary (${canaryLabel}) served none of ${attributed} attributed responses at weight ${v.canaryWeight} % ` +
            `(binomial p=${share.pValue.toExponential(2)} < ${SHARE_ALPHA}): ` +
            'is the canary reachable through the route?',
        )
      } else {
        reasons.push(`served shares do not follow the weights: ${share.message}`)
      }
    }
  }

  // With a stable+canary split, a version that is neither is traffic the weights do not account for.
  if (v.checkShares && v.stableVersions.length > 0 && v.canaryVersions.length > 0) {
    const known = new Set([...v.canaryVersions, ...v.stableVersions])
    const strays = Object.entries(r.byVersion).filter(([version]) => !known.has(version))
    if (strays.length > 0) {
      const list = strays.map(([version, s]) => `${version} (${s.requests})`).join(', ')
      reasons.push(
        `responses from versions that are neither stable (${v.stableVersions.join('/')}) ` +
          `nor canary (${canaryLabel}): ${list}`,
      )
    }
  }

  if (v.maxLatencyMs !== undefined) {
    if (r.requests > 0 && r.p95Ms > v.maxLatencyMs) {
      reasons.push(`p95 latency ${r.p95Ms} ms above max-latency ${v.maxLatencyMs} ms`)
    }
    // The canary's p95: per version when the canary has several version labels, the worst of them.
    const worst = Math.max(...canaryP95)
    if (canaryServed > 0 && worst > v.maxLatencyMs) {
      reasons.push(`canary (${canaryLabel}) p95 latency ${worst} ms above max-latency ${v.maxLatencyMs} ms`)
    }
  }

  return { pass: reasons.length === 0, reasons }
}
