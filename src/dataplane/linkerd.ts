// Linkerd's control plane and proxies, as the readiness checks see them (SPEC 7 rule 5). Linkerd's chart labels
// each control-plane Deployment `linkerd.io/control-plane-component` (destination, identity, proxy-injector) and
// `linkerd.io/control-plane-ns`, with the release in `app.kubernetes.io/version` (linkerd/linkerd2
// charts/linkerd-control-plane/templates/*.yaml); the injector adds the `linkerd-proxy` container to each pod, as a
// native sidecar (an init container with restartPolicy Always) when proxy.nativeSidecar is set, and labels the pod
// `linkerd.io/proxy-deployment=<Deployment>`, which the proxy's metrics carry as `deployment`.
import type { V1Deployment, V1Pod } from '@kubernetes/client-node'
import type { ControlPlaneApi } from '../k8s/ports.js'

export const LINKERD_NAMESPACE = 'linkerd'
/** The components a meshed workload needs: service discovery and policy, mTLS identities, proxy injection. */
export const LINKERD_COMPONENTS = ['destination', 'identity', 'proxy-injector'] as const

export interface LinkerdControlPlane {
  namespace: string
  /** e.g. edge-24.11.8 or stable-2.14.10; 'unknown' when the Deployments do not say. */
  version: string
  /** Components with no Deployment, and those without a ready replica. */
  missing: string[]
  notReady: string[]
}

const component = (d: V1Deployment): string | undefined => d.metadata?.labels?.['linkerd.io/control-plane-component']

/** Linkerd's control plane in `namespace`, or undefined when none of its Deployments is there. */
export async function findLinkerd(
  api: Pick<ControlPlaneApi, 'listDeployments'>,
  namespace = LINKERD_NAMESPACE,
): Promise<LinkerdControlPlane | undefined> {
  const deployments = await api.listDeployments(namespace, `linkerd.io/control-plane-ns=${namespace}`)
  if (deployments.length === 0) return undefined
  const byComponent = new Map(deployments.map((d) => [component(d), d]))
  const missing = LINKERD_COMPONENTS.filter((c) => !byComponent.has(c))
  const notReady = LINKERD_COMPONENTS.filter((c) => {
    const d = byComponent.get(c)
    return d !== undefined && (d.status?.readyReplicas ?? 0) < 1
  })
  const version =
    deployments.map((d) => d.metadata?.labels?.['app.kubernetes.io/version']).find((v) => v !== undefined) ?? 'unknown'
  return { namespace, version, missing: [...missing], notReady: [...notReady] }
}

export function hasLinkerdProxy(pod: V1Pod): boolean {
  const spec = pod.spec
  return (
    (spec?.containers ?? []).some((c) => c.name === 'linkerd-proxy') ||
    (spec?.initContainers ?? []).some((c) => c.name === 'linkerd-proxy' && c.restartPolicy === 'Always')
  )
}

/** The `deployment` label of a pod's proxy metrics. */
export function linkerdDeployment(pod: V1Pod): string | undefined {
  return pod.metadata?.labels?.['linkerd.io/proxy-deployment']
}
