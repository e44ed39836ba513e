// The verifier: what judges one step of a rollout (the smoke test today; the mesh's own telemetry next), as one
// interface. Each step runs every configured verifier; each gives a Check with its verdict and its evidence.
// One implementation per folder, registered in ./index.ts.
import type { MeshFlavor } from '../telemetry/queries.js'
import type { Sleep } from '../retry.js'
import type { AzureCloudName } from '../azure/clouds.js'
import type { HttpGet, TokenCredentialLike } from '../telemetry/prometheus.js'
import type { Settled, TrafficChange } from './settle.js'

export type { Settled, TrafficChange } from './settle.js'

/** The step a verifier judges. */
export interface StepContext {
  /** baseline: the route as it is, before any change (or as a dead run left it); preview: the header route. */
  kind: 'baseline' | 'step' | 'preview'
  /** 1-based step number (0 for a baseline). */
  index: number
  /** Canary percent of the target route in force. */
  weight: number
  /** How long the step lasts before its verdict (the pause the user set): a verifier observes or waits it. */
  pauseMs: number
  /** Headers a request must carry to reach the canary (a preview's). */
  headers: Record<string, string>
  /** Aborted on cancellation, and when another verifier of the step has already failed it. */
  signal: AbortSignal
}

/** Per-version request figures, where a check counts requests. */
export interface VersionFigures {
  requests: number
  successes: number
  p50Ms: number
  p95Ms: number
}

/** The figures every request-counting check reports the same way (for the summary's table and chart). */
export interface CheckFigures extends VersionFigures {
  successRate: number
  byVersion: Record<string, VersionFigures>
}

export interface Check {
  /** Which verifier made it, e.g. 'smoke'. */
  kind: string
  verdict: 'pass' | 'fail'
  /** Each failed criterion, readable, with numbers. */
  reasons: string[]
  /** One line for the log: what was seen. */
  summary: string
  figures?: CheckFigures
  /** What the verdict rests on, in the verifier's own shape (kept in the report). */
  evidence: unknown
}

export interface Verifier {
  readonly kind: string
  /** What it checks, for the log before the first step. */
  describe(): string
  verify(step: StepContext): Promise<Check>
  /**
   * A verifier that sees which version served each request can tell when traffic follows a route change (the
   * proxies have istiod's push): the engine waits for it after each write, before the step's checks (./settle.ts).
   */
  settle?: ((change: TrafficChange) => Promise<Settled>) | undefined
}

export const passed = (checks: readonly Check[]): boolean => checks.every((c) => c.verdict === 'pass')

export const failureReasons = (checks: readonly Check[]): string[] =>
  checks.flatMap((c) => (c.verdict === 'fail' ? c.reasons.map((r) => (checks.length > 1 ? `${c.kind}: ${r}` : r)) : []))

/**
 * Runs every verifier on the step at once. The first failing check ends the step: the others are aborted, and
 * only checks that finished are returned (a cancelled step is an error, not a check).
 */
export async function runChecks(verifiers: readonly Verifier[], step: StepContext): Promise<Check[]> {
  if (verifiers.length === 1) return [await (verifiers[0] as Verifier).verify(step)]
  const failed = new AbortController()
  const signal = AbortSignal.any([step.signal, failed.signal])
  // In the verifiers' order, whichever finishes first (the report and the summary list them so).
  const done: Array<Check | undefined> = verifiers.map(() => undefined)
  const settled = await Promise.allSettled(
    verifiers.map(async (verifier, i) => {
      const check = await verifier.verify({ ...step, signal })
      done[i] = check
      if (check.verdict === 'fail') failed.abort(new Error(`${verifier.kind} failed the step`))
    }),
  )
  const checks = done.filter((c): c is Check => c !== undefined)
  step.signal.throwIfAborted()
  if (checks.some((c) => c.verdict === 'fail')) return checks
  const error = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (error) throw error.reason
  return checks
}

/** What a verifier may use of the cluster: its API server, with the cluster credential. */
export interface ClusterEndpoint {
  /** The API server's URL (the service proxy's base). */
  server: string
  /** GET with the cluster credential. */
  get: HttpGet
  serviceExists(namespace: string, name: string): Promise<boolean>
}

/** What the mesh checks found out, for the verifiers to judge by. */
export interface VerificationFacts {
  gatewayUrl: string
  /** Version strings that mean canary (its subset name and version label), and stable. */
  canaryVersions: string[]
  stableVersions: string[]
  /** The route splits between stable and canary only (or is a preview): version shares can be tested. */
  splitIsStableCanary: boolean
  /** The application's namespace and the target's Service, and the versions' `version` label values. */
  namespace: string
  service: string
  stableVersion: string
  canaryVersion: string
  /** The data plane whose metrics judge the steps (default Istio with sidecars). */
  flavor?: MeshFlavor
  /** Every Service name the versions' requests are counted under (an HTTPRoute's backends), when more than one. */
  services?: string[]
  /** Each version label's workload (Deployment): Linkerd's metrics name versions by it. */
  workloads?: Record<string, string>
}

export interface VerifierDeps {
  sleep: Sleep
  now: () => number
  log: (message: string) => void
  warn: (message: string) => void
  /** How to reach in-cluster services (undefined: not connected to a cluster). */
  cluster?: ClusterEndpoint
  /**
   * The Azure identity of an AKS login (undefined for a kubeconfig): its credential gets Entra tokens for an Azure
   * Monitor workspace, masked as they are issued; `cloud` is the `azure-cloud` input.
   */
  azure?: { credential: TokenCredentialLike; cloud: AzureCloudName }
}
