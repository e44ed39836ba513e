// What the end-to-end test files share: resource references, the runner environment and BookInfo inputs.
import { readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import type { StepResult } from '../runner/harness.js'
import { type Sim, type SimOptions, startSimulation } from '../sim/index.js'
import { REFS } from '../sim/kube/refs.js'
import type { KubeObject, ResourceRef } from '../sim/kube/store.js'
import type { MeshFault } from '../sim/mesh/mesh.js'

/** The resources e2e tests read most, by their short names (defined in sim/kube/refs.ts). */
export const VS: ResourceRef = REFS.virtualServices
export const LEASES: ResourceRef = REFS.leases
export const STATE = 'istio-canary.io/state'

/** The simulation's runner environment, with Node 24 first on PATH (the fake istioctl is `#!/usr/bin/env node`). */
export function runnerEnv(sim: Sim): Record<string, string> {
  return { ...sim.env(), PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? '/usr/bin:/bin'}` }
}

/** A BookInfo reviews v1 -> v3 canary with AKS login (OIDC unless `aks.secret`), no pauses. */
export function bookinfoInputs(
  sim: Sim,
  extra: Record<string, string> = {},
  aks: { secret?: boolean; admin?: boolean } = {},
): Record<string, string> {
  return {
    ...sim.aksInputs(aks),
    namespace: 'bookinfo',
    'virtual-service': 'reviews',
    'canary-subset': 'v3',
    pause: '0',
    'version-pattern': 'reviews-(v[0-9]+)',
    'smoke-expect': '<title>Simple Bookstore App</title>',
    'istioctl-mirror': sim.releases.url,
    ...extra,
  }
}

/** The BookInfo reviews VirtualService as the API server holds it now. */
export const reviews = (sim: Sim): KubeObject => sim.store.get(VS, 'bookinfo', 'reviews') as KubeObject

/** How many VirtualService writes the store has seen (since the `since`-th write of any kind). */
export const vsWrites = (sim: Sim, since = 0): number =>
  sim.store.writes.slice(since).filter((w) => w.ref.resource === 'virtualservices').length

/** The action's state annotation of a VirtualService, parsed; undefined when there is none. */
export function stateOf(vs: KubeObject): Record<string, unknown> | undefined {
  const raw = vs.metadata.annotations?.[STATE]
  return raw === undefined || raw === '' ? undefined : (JSON.parse(raw) as Record<string, unknown>)
}

/** A fresh simulation for one test, always closed. */
export async function withSim(o: SimOptions, fn: (sim: Sim) => Promise<void>): Promise<void> {
  const sim = await startSimulation(o)
  try {
    await fn(sim)
  } finally {
    await sim.close()
  }
}

/** Runs `fn` with a fault on a reviews version (none: `undefined`), cleared afterwards whatever happens. */
export async function withFault(
  sim: Sim,
  version: string,
  fault: MeshFault | undefined,
  fn: () => Promise<void>,
): Promise<void> {
  sim.faults.mesh('reviews', version, fault)
  try {
    await fn()
  } finally {
    sim.faults.mesh('reviews', version, undefined)
  }
}

/** The Gateway API HTTPRoute resource (SPEC 7). */
export const HR: ResourceRef = REFS.httpRoutes

/**
 * BookInfo reviews-v1 -> reviews-v3 on the reviews HTTPRoute (SPEC 7): bookinfoInputs with `http-route` and
 * `canary-backend` in place of `virtual-service` and `canary-subset`.
 */
export function httpRouteInputs(
  sim: Sim,
  extra: Record<string, string> = {},
  aks: { secret?: boolean; admin?: boolean } = {},
): Record<string, string> {
  const { 'virtual-service': _vs, 'canary-subset': _canary, ...rest } = bookinfoInputs(sim, {}, aks)
  return { ...rest, 'http-route': 'reviews', 'canary-backend': 'reviews-v3', ...extra }
}

/** The BookInfo reviews HTTPRoute as the API server holds it now. */
export const reviewsRoute = (sim: Sim): KubeObject => sim.store.get(HR, 'bookinfo', 'reviews') as KubeObject

/** The rules of an HTTPRoute (spec.rules). */
export const rulesOf = (o: KubeObject): Array<Record<string, unknown>> =>
  ((o['spec'] as { rules?: Array<Record<string, unknown>> }).rules ?? []) as Array<Record<string, unknown>>

/**
 * Writes other than a Gateway API controller's status reports (since the `since`-th write): an HTTPRoute write
 * whose spec and annotations are those of the object's previous write is a status write and does not count.
 */
export function changesSince(sim: Sim, since = 0): Array<{ resource: string; name: string; verb: string }> {
  const last = new Map<string, string>()
  const out: Array<{ resource: string; name: string; verb: string }> = []
  const content = (o: KubeObject): string => JSON.stringify({ spec: o['spec'], annotations: o.metadata.annotations })
  sim.store.writes.forEach((w, i) => {
    const key = `${w.ref.group}/${w.ref.resource}/${w.namespace}/${w.name}`
    const now = content(w.object)
    const statusOnly = w.ref.group === HR.group && w.verb === 'update' && last.get(key) === now
    last.set(key, now)
    if (i >= since && !statusOnly) out.push({ resource: w.ref.resource, name: w.name, verb: w.verb })
  })
  return out
}

/**
 * Waits (at most `timeoutMs`) until every parent of the HTTPRoute reports Accepted and ResolvedRefs True for its
 * current generation, as the simulated controller does after its delay; an Error when it does not.
 */
export async function untilAccepted(sim: Sim, name: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const hr = sim.store.get(HR, 'bookinfo', name) as KubeObject
    const generation = hr.metadata['generation'] as number | undefined
    const parents = (hr['status'] as { parents?: Array<{ conditions?: Array<Record<string, unknown>> }> })?.parents
    const ok =
      (parents ?? []).length > 0 &&
      (parents ?? []).every((p) =>
        ['Accepted', 'ResolvedRefs'].every((type) =>
          (p.conditions ?? []).some(
            (c) => c['type'] === type && c['status'] === 'True' && c['observedGeneration'] === generation,
          ),
        ),
      )
    if (ok) return
    if (Date.now() > deadline) throw new Error(`HTTPRoute bookinfo/${name} not accepted within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** The JSON report of a run (the `report` output), as far as the telemetry tests read it. */
export interface StepsReport {
  steps: Array<{ weight: number; verdict: string; checks: Array<{ kind: string; verdict: string; evidence: unknown }> }>
}

/** The evidence of a step's telemetry check. */
export interface TelemetryEvidence {
  decision: string
  counts: { canaryRequests: number; canaryErrors: number; stableRequests: number; stableErrors: number }
  queries: { requests: string; errors: string }
}

export const reportOf = (main: StepResult): StepsReport =>
  JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as StepsReport

export const telemetryOf = (report: StepsReport, step: number): TelemetryEvidence | undefined =>
  report.steps[step]?.checks.find((c) => c.kind === 'telemetry')?.evidence as TelemetryEvidence | undefined
