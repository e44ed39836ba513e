// The verifiers, one per way of judging a step: a new one is a folder entry and one line in VERIFIERS.
import type { Inputs } from '../inputs.js'
import type { Sleep } from '../retry.js'
import { SmokeVerifier } from './smoke/verifier.js'
import type { Verifier } from './verifier.js'

/** What the mesh checks found out, for the verifiers to judge by. */
export interface VerificationFacts {
  gatewayUrl: string
  /** Version strings that mean canary (its subset name and version label), and stable. */
  canaryVersions: string[]
  stableVersions: string[]
  /** The route splits between stable and canary only (or is a preview): version shares can be tested. */
  splitIsStableCanary: boolean
}

export interface VerifierDeps {
  sleep: Sleep
  log: (message: string) => void
}

interface Registration {
  /** Whether the inputs ask for this verifier. */
  enabled: (inputs: Inputs) => boolean
  create: (inputs: Inputs, facts: VerificationFacts, deps: VerifierDeps) => Verifier
}

const VERIFIERS: Registration[] = [
  {
    enabled: () => true,
    create: (inputs, facts, deps) =>
      new SmokeVerifier(
        {
          request: {
            url: `${facts.gatewayUrl}${inputs['smoke-path']}`,
            requests: inputs['smoke-requests'],
            concurrency: inputs['smoke-concurrency'],
            timeoutMs: inputs['smoke-timeout'],
            headers: inputs['smoke-headers'],
            ...(inputs['smoke-expect'] ? { expect: inputs['smoke-expect'] } : {}),
            ...(inputs['version-pattern'] ? { versionPattern: inputs['version-pattern'] } : {}),
          },
          threshold: inputs['success-threshold'],
          ...(inputs['max-latency'] !== undefined ? { maxLatencyMs: inputs['max-latency'] } : {}),
          canaryVersions: facts.canaryVersions,
          stableVersions: facts.stableVersions,
          checkShares: inputs['version-pattern'] !== undefined && facts.splitIsStableCanary,
        },
        deps,
      ),
  },
]

/** Every verifier the inputs ask for, in a fixed order. */
export function createVerifiers(inputs: Inputs, facts: VerificationFacts, deps: VerifierDeps): Verifier[] {
  return VERIFIERS.filter((r) => r.enabled(inputs)).map((r) => r.create(inputs, facts, deps))
}
