// `status`: what the verifiers see of the route as it is, read-only. The smoke test probes the current weights as
// a baseline does (its verdict at those weights); the mesh's telemetry is not judged (a status run is no step of
// the sequential test): its counters are read twice, a window apart, and the increase per version is the evidence.
import type { Sleep } from '../retry.js'
import type { Counts } from '../telemetry/sequential.js'
import { TelemetryVerifier } from '../verify/telemetry/verifier.js'
import { type Check, type Verifier, runChecks } from '../verify/verifier.js'
import { formatDuration } from '../parse.js'

/** A counter that went down was reset (a pod restarted): its whole value is new (as the telemetry verifier reads it). */
const increase = (now: number, before: number): number => (now >= before ? now - before : now)

export interface ObserveOptions {
  weight: number
  /** How long to watch the mesh's counters (bounded by the caller). */
  windowMs: number
  sleep: Sleep
  signal: AbortSignal
  /** Stable and canary, for the summary when the counters name no version. */
  versions: { stable: string; canary: string }
}

/** The telemetry evidence of a status run: the counts over the window, not judged. */
export interface ObservedTelemetry {
  observed: true
  counts: Counts
  windowMs: number
}

async function observeTelemetry(verifier: TelemetryVerifier, o: ObserveOptions): Promise<Check> {
  try {
    const before = await verifier.totals()
    await o.sleep(o.windowMs, o.signal)
    const after = await verifier.totals()
    const get = (t: typeof before, v: string, k: 'requests' | 'errors'): number => t[v]?.[k] ?? 0
    // totals() keys its answer by the version label values it queries, stable first, then canary.
    const [stable = o.versions.stable, canary = o.versions.canary] = Object.keys(after)
    const counts: Counts = {
      canaryRequests: increase(get(after, canary, 'requests'), get(before, canary, 'requests')),
      canaryErrors: increase(get(after, canary, 'errors'), get(before, canary, 'errors')),
      stableRequests: increase(get(after, stable, 'requests'), get(before, stable, 'requests')),
      stableErrors: increase(get(after, stable, 'errors'), get(before, stable, 'errors')),
    }
    const evidence: ObservedTelemetry = { observed: true, counts, windowMs: o.windowMs }
    return {
      kind: verifier.kind,
      verdict: 'pass',
      reasons: [],
      summary:
        `observed over ${formatDuration(o.windowMs)}, not judged: ${canary} ${counts.canaryErrors}/` +
        `${counts.canaryRequests} 5xx, ${stable} ${counts.stableErrors}/${counts.stableRequests} 5xx`,
      evidence,
    }
  } catch (err) {
    o.signal.throwIfAborted()
    const message = err instanceof Error ? err.message : String(err)
    return {
      kind: verifier.kind,
      verdict: 'fail',
      reasons: [`Prometheus could not be read: ${message}`],
      summary: 'Prometheus could not be read',
      evidence: { observed: true, error: message },
    }
  }
}

/** Every verifier's read-only check of the route as it is, at `weight`. */
export async function observe(verifiers: readonly Verifier[], o: ObserveOptions): Promise<Check[]> {
  const probes = verifiers.filter((v) => !(v instanceof TelemetryVerifier))
  const meshes = verifiers.filter((v): v is TelemetryVerifier => v instanceof TelemetryVerifier)
  const step = { kind: 'baseline' as const, index: 0, weight: o.weight, pauseMs: 0, headers: {}, signal: o.signal }
  const [probed, watched] = await Promise.all([
    probes.length > 0 ? runChecks(probes, step) : Promise.resolve([]),
    Promise.all(meshes.map((v) => observeTelemetry(v, o))),
  ])
  return [...probed, ...watched]
}
