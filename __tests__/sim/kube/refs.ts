// The one definition of the resources the simulation stores and the tests read: group and plural name, as
// KubeStore keys them. Simulators, tests and scripts import these rather than spell out group/resource pairs.
import type { ResourceRef } from './store.js'

const ISTIO_NETWORKING = 'networking.istio.io'
const RBAC = 'rbac.authorization.k8s.io'

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
