// The one definition of the resources the simulation stores and the tests read: group and plural name, as
// KubeStore keys them. Simulators, tests and scripts import these rather than spell out group/resource pairs.
import type { ResourceRef } from './store.js'

const ISTIO_NETWORKING = 'networking.istio.io'
const RBAC = 'rbac.authorization.k8s.io'
export const GATEWAY_API = 'gateway.networking.k8s.io'

export const REFS = {
  namespaces: { group: '', resource: 'namespaces' },
  pods: { group: '', resource: 'pods' },
  services: { group: '', resource: 'services' },
  configmaps: { group: '', resource: 'configmaps' },
  secrets: { group: '', resource: 'secrets' },
  serviceAccounts: { group: '', resource: 'serviceaccounts' },
  deployments: { group: 'apps', resource: 'deployments' },
  replicaSets: { group: 'apps', resource: 'replicasets' },
  leases: { group: 'coordination.k8s.io', resource: 'leases' },
  gateways: { group: ISTIO_NETWORKING, resource: 'gateways' },
  virtualServices: { group: ISTIO_NETWORKING, resource: 'virtualservices' },
  destinationRules: { group: ISTIO_NETWORKING, resource: 'destinationrules' },
  roles: { group: RBAC, resource: 'roles' },
  roleBindings: { group: RBAC, resource: 'rolebindings' },
  clusterRoles: { group: RBAC, resource: 'clusterroles' },
  clusterRoleBindings: { group: RBAC, resource: 'clusterrolebindings' },
  mutatingWebhookConfigurations: { group: 'admissionregistration.k8s.io', resource: 'mutatingwebhookconfigurations' },
  // Gateway API (kubernetes-sigs/gateway-api config/crd/standard): not Istio's networking.istio.io gateways.
  gatewayClasses: { group: GATEWAY_API, resource: 'gatewayclasses' },
  gatewayApiGateways: { group: GATEWAY_API, resource: 'gateways' },
  httpRoutes: { group: GATEWAY_API, resource: 'httproutes' },
} as const satisfies Record<string, ResourceRef>

/** The resource of a manifest's `kind`, for the kinds the simulation applies from files (fixtures, deploy/rbac). */
export const REF_OF_KIND: Readonly<Record<string, ResourceRef>> = {
  Namespace: REFS.namespaces,
  Service: REFS.services,
  ServiceAccount: REFS.serviceAccounts,
  ConfigMap: REFS.configmaps,
  Deployment: REFS.deployments,
  Gateway: REFS.gateways,
  VirtualService: REFS.virtualServices,
  DestinationRule: REFS.destinationRules,
  Role: REFS.roles,
  RoleBinding: REFS.roleBindings,
  ClusterRole: REFS.clusterRoles,
  ClusterRoleBinding: REFS.clusterRoleBindings,
  MutatingWebhookConfiguration: REFS.mutatingWebhookConfigurations,
}

/** The Gateway API kinds, by kind (their group is told by apiVersion: a Gateway of Istio is another resource). */
const GATEWAY_API_KINDS: Readonly<Record<string, ResourceRef>> = {
  GatewayClass: REFS.gatewayClasses,
  Gateway: REFS.gatewayApiGateways,
  HTTPRoute: REFS.httpRoutes,
}

/** The resource of a manifest by its apiVersion and kind (Gateway API kinds by group, the others by kind). */
export function refOfManifest(doc: { apiVersion?: string; kind?: string }): ResourceRef | undefined {
  const group = (doc.apiVersion ?? '').includes('/') ? (doc.apiVersion ?? '').split('/')[0] : ''
  if (group === GATEWAY_API) return GATEWAY_API_KINDS[String(doc.kind)]
  return REF_OF_KIND[String(doc.kind)]
}
