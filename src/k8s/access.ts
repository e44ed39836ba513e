// Where the cluster credential of a run comes from: the one shape that the inputs produce and a session opens.
// aks: AKS login (an Entra ID credential, then the cluster's kubeconfig from ARM); kubeconfig: the 'kubeconfig'
// input's content; runner: neither, the runner's own KUBECONFIG or ~/.kube/config.
import type { AksCluster } from '../azure/login.js'

export type ClusterAccess =
  | ({ kind: 'aks' } & AksCluster)
  | { kind: 'kubeconfig'; content: string }
  | { kind: 'runner' }
