// The Kubernetes resources the action reads and writes, as it sees them, and the errors of the API.
// No I/O and no imports from the rest of the action: every other part may depend on this file.

export interface ObjectMeta {
  name: string
  namespace?: string
  resourceVersion?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  [k: string]: unknown
}

/** Istio's HTTPRoute destination (networking.istio.io Destination). */
export interface Destination {
  host: string
  subset?: string
  port?: { number?: number; [k: string]: unknown }
  [k: string]: unknown
}
export interface RouteDestination {
  destination: Destination
  weight?: number
  [k: string]: unknown
}
/** One entry of a VirtualService's spec.http (Istio's HTTPRoute message). */
export interface HttpRoute {
  name?: string
  match?: Array<Record<string, unknown>>
  route?: RouteDestination[]
  [k: string]: unknown
}
export interface VirtualServiceSpec {
  hosts?: string[]
  gateways?: string[]
  http?: HttpRoute[]
  [k: string]: unknown
}
export interface VirtualService {
  apiVersion: string
  kind: 'VirtualService'
  metadata: ObjectMeta
  spec: VirtualServiceSpec
}
export interface Subset {
  name: string
  labels?: Record<string, string>
  [k: string]: unknown
}
export interface DestinationRule {
  metadata: ObjectMeta
  spec: { host: string; subsets?: Subset[]; [k: string]: unknown }
}
export interface Gateway {
  metadata: ObjectMeta
  spec: { selector?: Record<string, string>; servers?: unknown[]; [k: string]: unknown }
}

/** A failed API call, with the Kubernetes Status reason and message. */
export class KubeError extends Error {
  override name = 'KubeError'
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message)
  }
}

export class ConflictError extends KubeError {
  override name = 'ConflictError'
}

/** A 403: the identity lacks an RBAC permission. What it was refused, as the API server's message names it. */
export class ForbiddenError extends KubeError {
  override name = 'ForbiddenError'
  constructor(
    message: string,
    readonly verb: string,
    readonly resource: string,
    readonly group: string,
    /** '' at the cluster scope. */
    readonly namespace: string,
  ) {
    super(403, 'Forbidden', message)
  }
}
