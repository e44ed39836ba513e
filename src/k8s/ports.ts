// What each part of the action needs from the Kubernetes API, as small interfaces (ports). `Kube` implements
// them all against a real API server; tests may give a part an in-memory implementation of just its port.
import type {
  V1Deployment,
  V1Lease,
  V1MutatingWebhookConfiguration,
  V1Namespace,
  V1Pod,
  V1Service,
} from '@kubernetes/client-node'
import type { DestinationRule, Gateway, GatewayApiGateway, GatewayHttpRoute, VirtualService } from './resources.js'

/** The traffic router's: read and conditionally replace VirtualServices. */
export interface VirtualServiceApi {
  getVirtualService(namespace: string, name: string): Promise<VirtualService>
  listVirtualServices(namespace: string): Promise<VirtualService[]>
  /** PUT conditional on metadata.resourceVersion: a 409 is a ConflictError. */
  replaceVirtualService(vs: VirtualService): Promise<VirtualService>
}

/** The traffic router's for a Gateway API target: read and conditionally replace HTTPRoutes. */
export interface HttpRouteApi {
  getHttpRoute(namespace: string, name: string): Promise<GatewayHttpRoute>
  listHttpRoutes(namespace: string): Promise<GatewayHttpRoute[]>
  /** PUT conditional on metadata.resourceVersion: a 409 is a ConflictError. */
  replaceHttpRoute(route: GatewayHttpRoute): Promise<GatewayHttpRoute>
}

/** The rollout lock's: one coordination.k8s.io Lease per target. */
export interface LeaseApi {
  getLease(namespace: string, name: string): Promise<V1Lease | undefined>
  createLease(namespace: string, body: V1Lease): Promise<V1Lease>
  replaceLease(namespace: string, body: V1Lease): Promise<V1Lease>
  deleteLease(namespace: string, name: string, resourceVersion: string): Promise<void>
}

/** Finding the control plane (istiod) an application namespace belongs to. */
export interface ControlPlaneApi {
  getNamespace(name: string): Promise<V1Namespace | undefined>
  listDeployments(namespace: string, labelSelector?: string): Promise<V1Deployment[]>
  /** Cluster-scoped; the revision tags of `istioctl tag set` are these webhooks (labels istio.io/tag, istio.io/rev). */
  listMutatingWebhookConfigurations(labelSelector: string): Promise<V1MutatingWebhookConfiguration[]>
}

/** Finding the ingress gateway the target is reached through. */
export interface GatewayApi {
  getGateway(namespace: string, name: string): Promise<Gateway | undefined>
  getService(namespace: string, name: string): Promise<V1Service | undefined>
  listServices(namespace: string | undefined, labelSelector?: string): Promise<V1Service[]>
}

/** The Gateway API side of readiness: an ingress Gateway's address, an ambient waypoint's Programmed condition. */
export interface GatewayApiGatewayApi {
  getGatewayApiGateway(namespace: string, name: string): Promise<GatewayApiGateway | undefined>
}

/** The readiness checks: subsets, their Service and pods. */
export interface ReadinessApi {
  listDestinationRules(namespace: string): Promise<DestinationRule[]>
  getService(namespace: string, name: string): Promise<V1Service | undefined>
  listPods(namespace: string, labelSelector: string): Promise<V1Pod[]>
}

export type Ports = VirtualServiceApi &
  HttpRouteApi &
  LeaseApi &
  ControlPlaneApi &
  GatewayApi &
  GatewayApiGatewayApi &
  ReadinessApi
