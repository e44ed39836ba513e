// The Kubernetes resources the action reads and writes, as it sees them, and the errors of the API.
// No I/O and no imports from the rest of the action: every other part may depend on this file.

export interface ObjectMeta {
  name: string
  namespace?: string
  resourceVersion?: string
  /** Incremented by the API server on every change of spec (status writes leave it). */
  generation?: number
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

// Gateway API (gateway.networking.k8s.io v1) HTTPRoute, as kubernetes-sigs/gateway-api apis/v1/httproute_types.go
// and shared_types.go define it. Named Gateway*/HttpRouteRule so as not to clash with Istio's HttpRoute above.
// Only the fields the action reads are typed; every other field is carried over as read.

/** A route's parent (spec.parentRefs[]): a Gateway (group gateway.networking.k8s.io by default) or, for the mesh
 * (GAMMA), a Service (group ''). namespace defaults to the route's own. */
export interface ParentRef {
  group?: string
  kind?: string
  namespace?: string
  name: string
  sectionName?: string
  port?: number
  [k: string]: unknown
}
/** spec.rules[].backendRefs[] (HTTPBackendRef): a Service by default (group '', kind Service); `weight` is relative
 * (weight / sum of the rule's weights), default 1, 0..1000000. */
export interface BackendRef {
  group?: string
  kind?: string
  name: string
  namespace?: string
  port?: number
  weight?: number
  filters?: unknown[]
  [k: string]: unknown
}
export interface HttpHeaderMatch {
  /** Exact (the default) or RegularExpression. */
  type?: string
  name: string
  value: string
  [k: string]: unknown
}
export interface HttpRouteMatch {
  path?: { type?: string; value?: string; [k: string]: unknown }
  headers?: HttpHeaderMatch[]
  queryParams?: unknown[]
  method?: string
  [k: string]: unknown
}
/** One entry of an HTTPRoute's spec.rules (HTTPRouteRule). `name` is served from Gateway API v1.2 on. */
export interface HttpRouteRule {
  name?: string
  matches?: HttpRouteMatch[]
  filters?: unknown[]
  backendRefs?: BackendRef[]
  [k: string]: unknown
}
export interface GatewayHttpRouteSpec {
  parentRefs?: ParentRef[]
  hostnames?: string[]
  rules?: HttpRouteRule[]
  [k: string]: unknown
}
/** metav1.Condition, as a route's parent status holds it. */
export interface RouteCondition {
  type: string
  status: 'True' | 'False' | 'Unknown' | string
  reason?: string
  message?: string
  observedGeneration?: number
  [k: string]: unknown
}
export interface RouteParentStatus {
  parentRef: ParentRef
  controllerName?: string
  conditions?: RouteCondition[]
  [k: string]: unknown
}
export interface GatewayHttpRoute {
  apiVersion: string
  kind: 'HTTPRoute'
  metadata: ObjectMeta
  spec: GatewayHttpRouteSpec
  status?: { parents?: RouteParentStatus[]; [k: string]: unknown }
}

/**
 * A Gateway API Gateway (gateway.networking.k8s.io, apis/v1/gateway_types.go): an ingress (north-south) Gateway, or
 * in Istio ambient mode a waypoint (gatewayClassName istio-waypoint). Only what the readiness checks read is typed.
 */
export interface GatewayApiGateway {
  metadata: ObjectMeta
  spec: {
    gatewayClassName?: string
    listeners?: Array<{ name: string; port: number; protocol: string; hostname?: string; [k: string]: unknown }>
    [k: string]: unknown
  }
  status?: {
    /** GatewayStatusAddress: type IPAddress (default) or Hostname, the address the Gateway is reached at. */
    addresses?: Array<{ type?: string; value: string }>
    conditions?: RouteCondition[]
    [k: string]: unknown
  }
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
