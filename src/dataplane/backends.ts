// The backend Services of an HTTPRoute target (one Service per version, like BookInfo's reviews-v1..v3 in
// platform/kube/bookinfo-versions.yaml): each must exist and select ready pods, with the proxy its data plane needs
// (SPEC 7 rule 5). Their selectors are the versions' labels (`version` is what Istio's metrics call
// destination_version); the pods' workloads name them in Linkerd's metrics.
import type { V1Pod } from '@kubernetes/client-node'
import { hasSidecar, podReady } from '../istio/mesh.js'
import type { ReadinessApi } from '../k8s/ports.js'
import type { Subset } from '../k8s/resources.js'
import { workloadOfPod } from '../report/kiali.js'
import type { MeshFlavor } from './flavor.js'
import { hasLinkerdProxy, linkerdDeployment } from './linkerd.js'

export interface BackendFacts {
  /** Each backend as a subset: its name and the labels of its pods (the Service's selector). */
  subsets: Map<string, Subset>
  /** Each backend's workload (Deployment), as the mesh's metrics name it. */
  workloads: Map<string, string>
  failures: string[]
  notes: string[]
}

function proxyOf(flavor: MeshFlavor): { has: (p: V1Pod) => boolean; name: string; fix: string } | undefined {
  if (flavor === 'istio-sidecar') {
    return { has: hasSidecar, name: 'istio-proxy sidecar', fix: 'enable sidecar injection for the namespace' }
  }
  if (flavor === 'linkerd') {
    return {
      has: hasLinkerdProxy,
      name: 'linkerd-proxy',
      fix: 'kubectl annotate namespace <ns> linkerd.io/inject=enabled',
    }
  }
  // Ambient: ztunnel captures the pods' traffic; no sidecar is required.
  return undefined
}

export async function checkBackends(
  api: ReadinessApi,
  input: {
    namespace: string
    backends: string[]
    flavor: MeshFlavor
    /** Where a backend's name came from, for the message (e.g. "input 'canary-backend'"). */
    origin?: Record<string, string>
  },
): Promise<BackendFacts> {
  const out: BackendFacts = { subsets: new Map(), workloads: new Map(), failures: [], notes: [] }
  const { namespace, flavor } = input
  const proxy = proxyOf(flavor)
  for (const name of input.backends) {
    const svc = await api.getService(namespace, name)
    if (!svc) {
      const origin = input.origin?.[name]
      out.failures.push(
        `backend Service ${namespace}/${name}${origin ? ` (${origin})` : ''} does not exist: ` +
          'create one Service per version that selects only that ' +
          `version's pods (e.g. BookInfo's platform/kube/bookinfo-versions.yaml), or fix the backend name ` +
          `(kubectl -n ${namespace} get services)`,
      )
      continue
    }
    const selector = svc.spec?.selector ?? {}
    const sel = Object.entries(selector)
      .map(([k, v]) => `${k}=${v}`)
      .join(',')
    if (sel === '') {
      out.failures.push(
        `backend Service ${namespace}/${name} has no selector: istio-canary finds a version's pods by it ` +
          '(a Service per version selects e.g. app=reviews,version=v3)',
      )
      continue
    }
    out.subsets.set(name, { name, labels: { ...selector } })
    const pods = await api.listPods(namespace, sel)
    const ready = pods.filter(podReady)
    if (pods.length === 0) {
      out.failures.push(
        `backend Service ${namespace}/${name} selects no pods (selector ${sel}): deploy that version ` +
          `(kubectl -n ${namespace} get deployments -l ${sel})`,
      )
      continue
    }
    if (ready.length === 0) {
      out.failures.push(
        `backend Service ${namespace}/${name} has ${pods.length} pod(s) but no ready endpoint (selector ${sel}): ` +
          `kubectl -n ${namespace} describe pods -l ${sel}`,
      )
      continue
    }
    const first = ready[0] as V1Pod
    const workload =
      (flavor === 'linkerd' ? linkerdDeployment(first) : undefined) ??
      workloadOfPod(first.metadata as Parameters<typeof workloadOfPod>[0])
    if (workload) out.workloads.set(name, workload)
    if (proxy && !ready.some(proxy.has)) {
      out.failures.push(
        `backend Service ${namespace}/${name}: its ready pods have no ${proxy.name}: ` +
          `${proxy.fix.replace('<ns>', namespace)}, then kubectl -n ${namespace} rollout restart deployment -l ${sel}`,
      )
    }
  }
  return out
}
