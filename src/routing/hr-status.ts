// What an HTTPRoute's parents say of its current spec (SPEC section 7 rule 3), and the bounded wait after a write
// until every one of them has taken it. A Gateway API write is only a request: the controller of each parent (a
// Gateway, or a Service for a mesh route) decides whether it programs it, and says so in status.parents, one
// entry per parent and controller, with conditions that carry the generation they speak of.
//
// kubernetes-sigs/gateway-api apis/v1/shared_types.go, RouteParentStatus.conditions: controllers "MUST always
// update the observedGeneration field of the Condition to the metadata.generation" of the route they reconciled,
// `Accepted` False when the parent refuses the route (NotAllowedByListeners, NoMatchingParent, UnsupportedValue...)
// and `ResolvedRefs` False when a backendRef does not resolve (BackendNotFound, InvalidKind, RefNotPermitted).
import type { GatewayHttpRoute, ParentRef, RouteCondition } from '../k8s/resources.js'
import { formatDuration } from '../parse.js'
import type { Sleep } from '../retry.js'
import { NotAppliedError } from './router.js'
import { canonical } from './shares.js'

const GATEWAY_GROUP = 'gateway.networking.k8s.io'

/** The conditions every parent must show True for the current generation. */
const REQUIRED = ['Accepted', 'ResolvedRefs'] as const

/**
 * How long a write waits for its parents: the Gateway API conformance suite's default for a route's conditions to
 * show (HTTPRouteMustHaveCondition, 60 s, kubernetes-sigs/gateway-api conformance/utils/config/timeout.go) is for a
 * fresh cluster; a change of one generation on parents that already accepted the route is reported in about a
 * second by Istio's and Linkerd's controllers (an estimate, not a figure looked up), so half of that bound.
 */
export const ACCEPT_TIMEOUT_MS = 30_000

/** Between two reads of the route's status. */
export const ACCEPT_POLL_MS = 250

/** What the parents' status says of the route's current generation. */
export interface Acceptance {
  /** Every parent shows Accepted and ResolvedRefs True for metadata.generation. */
  ok: boolean
  /** Not ok only because some parent has not reported on this generation yet: worth waiting for. */
  pending: boolean
  /** Why not, one per parent and condition. */
  reasons: string[]
}

/** A parentRef with the API's defaults (group gateway.networking.k8s.io, kind Gateway, the route's namespace). */
export function parentKey(p: ParentRef, namespace: string): string {
  return canonical({
    group: p.group ?? GATEWAY_GROUP,
    kind: p.kind ?? 'Gateway',
    namespace: p.namespace ?? namespace,
    name: p.name,
    sectionName: p.sectionName ?? null,
    port: p.port ?? null,
  })
}

export function describeParent(p: ParentRef, namespace: string): string {
  const section = p.sectionName ? `/${p.sectionName}` : p.port ? `:${p.port}` : ''
  return `${p.kind ?? 'Gateway'} ${p.namespace ?? namespace}/${p.name}${section}`
}

/** Whether every parent accepted `hr` as it is (its metadata.generation); `what` names it in the reasons. */
export function acceptanceOf(hr: GatewayHttpRoute, what: string): Acceptance {
  const namespace = hr.metadata.namespace ?? ''
  const generation = hr.metadata.generation
  const statuses = hr.status?.parents ?? []
  const reasons: string[] = []
  let pending = false
  let rejected = false
  const parents = hr.spec.parentRefs ?? []
  if (parents.length === 0) return { ok: false, pending: false, reasons: [`${what} has no parentRefs`] }
  for (const parent of parents) {
    const key = parentKey(parent, namespace)
    const who = describeParent(parent, namespace)
    const entries = statuses.filter((s) => parentKey(s.parentRef, namespace) === key)
    if (entries.length === 0) {
      pending = true
      reasons.push(`${who} has not reported on ${what} yet (no status.parents entry)`)
      continue
    }
    for (const type of REQUIRED) {
      for (const entry of entries) {
        const by = entry.controllerName ? ` (${entry.controllerName})` : ''
        const condition = entry.conditions?.find((c: RouteCondition) => c.type === type)
        if (!condition) {
          pending = true
          reasons.push(`${who}${by} shows no ${type} condition yet`)
        } else if (
          generation !== undefined &&
          (condition.observedGeneration === undefined || condition.observedGeneration < generation)
        ) {
          pending = true
          reasons.push(
            `${who}${by} has not observed generation ${generation} yet ` +
              `(${type} is of generation ${condition.observedGeneration ?? 'unknown'})`,
          )
        } else if (condition.status !== 'True') {
          rejected = true
          const why = [condition.reason, condition.message].filter(Boolean).join(': ')
          reasons.push(`${who}${by}: ${type} is ${condition.status}${why ? ` (${why})` : ''}`)
        }
      }
    }
  }
  return { ok: reasons.length === 0, pending: pending && !rejected, reasons }
}

export interface AcceptanceWait {
  /** Reads the route again (its status and generation as the API server has them now). */
  read: () => Promise<GatewayHttpRoute>
  what: string
  signal: AbortSignal
  sleep: Sleep
  now: () => number
  timeoutMs?: number
  pollMs?: number
}

/**
 * Reads the route until every parent has accepted its current generation (resolves), one rejects it (a
 * NotAppliedError 'rejected'), or the bound passes with some parent silent on it (a NotAppliedError 'timeout' naming
 * the parents). Aborted with the signal, between reads and during a pause. Bounded in time and in reads.
 */
export async function awaitAcceptance(w: AcceptanceWait): Promise<Acceptance> {
  const timeoutMs = w.timeoutMs ?? ACCEPT_TIMEOUT_MS
  const pollMs = Math.max(1, w.pollMs ?? ACCEPT_POLL_MS)
  const started = w.now()
  const maxReads = Math.ceil(timeoutMs / pollMs) + 2
  let last: Acceptance = { ok: false, pending: true, reasons: [] }
  for (let reads = 0; reads < maxReads; reads++) {
    w.signal.throwIfAborted()
    last = acceptanceOf(await w.read(), w.what)
    if (last.ok) return last
    if (!last.pending) {
      throw new NotAppliedError(
        'rejected',
        `a parent of ${w.what} rejected the change: ${last.reasons.join('; ')}`,
        last.reasons,
      )
    }
    if (w.now() - started >= timeoutMs) break
    await w.sleep(pollMs, w.signal)
  }
  throw new NotAppliedError(
    'timeout',
    `the change of ${w.what} was not accepted within ${formatDuration(timeoutMs)}: ${last.reasons.join('; ')}`,
    last.reasons,
  )
}
