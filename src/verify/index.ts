// The verifiers, one per way of judging a step: a new one is a folder entry and one line in VERIFIERS.
import type { Inputs } from '../inputs.js'
import { SMOKE_GATE_ALPHA, SMOKE_ROLLOUT_ALPHA } from './smoke/verdict.js'
import { SmokeVerifier } from './smoke/verifier.js'
import { setUpTelemetry } from './telemetry/setup.js'
import type { VerificationFacts, Verifier, VerifierDeps } from './verifier.js'

export type { VerificationFacts, VerifierDeps } from './verifier.js'

interface Registration {
  /**
   * The verifier the inputs ask for, ready (probed); undefined: not asked for, or not usable here. `ready`: the
   * verifiers made before it (those listed after it in VERIFIERS, which are made first).
   */
  create: (
    inputs: Inputs,
    facts: VerificationFacts,
    deps: VerifierDeps,
    ready: readonly Verifier[],
  ) => Promise<Verifier | undefined>
}

/** In the order the checks are reported; made in reverse, so the smoke test knows whether telemetry judges too. */
const VERIFIERS: Registration[] = [
  {
    create: async (inputs, facts, deps, ready) =>
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
          steps: inputs.action === 'rollout' ? inputs.steps.length : 1,
          ...(inputs['max-latency'] !== undefined ? { maxLatencyMs: inputs['max-latency'] } : {}),
          canaryVersions: facts.canaryVersions,
          stableVersions: facts.stableVersions,
          checkShares: inputs['version-pattern'] !== undefined && facts.splitIsStableCanary,
          // Beside the mesh's own counts the smoke test is the reachability gate and spends little of the budget.
          rolloutAlpha: ready.some((v) => v.kind === 'telemetry') ? SMOKE_GATE_ALPHA : SMOKE_ROLLOUT_ALPHA,
        },
        deps,
      ),
  },
  // A preview's traffic is selected by a header: there is no canary-vs-stable split to judge.
  {
    create: (inputs, facts, deps) =>
      inputs.action === 'preview' ? Promise.resolve(undefined) : setUpTelemetry(inputs, facts, deps),
  },
]

/** Every verifier the inputs ask for, in a fixed order. */
export async function createVerifiers(
  inputs: Inputs,
  facts: VerificationFacts,
  deps: VerifierDeps,
): Promise<Verifier[]> {
  const verifiers: Verifier[] = []
  for (const registration of [...VERIFIERS].reverse()) {
    const verifier = await registration.create(inputs, facts, deps, verifiers)
    if (verifier) verifiers.unshift(verifier)
  }
  return verifiers
}
