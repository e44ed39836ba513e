// Which data plane carries the target's traffic (SPEC 7): Istio with sidecars, Istio ambient (ztunnel and waypoint
// proxies, no sidecars) or Linkerd. It decides the readiness checks and the metric names the verdict queries.
import type { Inputs } from '../inputs.js'
import type { TargetKind } from '../routing/router.js'
import type { MeshFlavor } from '../telemetry/queries.js'

export type { MeshFlavor } from '../telemetry/queries.js'

/**
 * A namespace (or pod) enrolled in ambient mode: `istio.io/dataplane-mode=ambient`
 * (https://istio.io/latest/docs/ambient/usage/add-workloads/).
 */
export const AMBIENT_LABEL = 'istio.io/dataplane-mode'
/**
 * The waypoint a namespace or Service uses: `istio.io/use-waypoint=<Gateway name>`, in the namespace of
 * `istio.io/use-waypoint-namespace` when set, `none` to opt out (https://istio.io/latest/docs/ambient/usage/waypoint/).
 */
export const USE_WAYPOINT_LABEL = 'istio.io/use-waypoint'
export const USE_WAYPOINT_NAMESPACE_LABEL = 'istio.io/use-waypoint-namespace'
/** Linkerd's proxy injection: the annotation `linkerd.io/inject: enabled` on a namespace or a pod template. */
export const LINKERD_INJECT_ANNOTATION = 'linkerd.io/inject'

export function isAmbient(labels: Record<string, string> | undefined): boolean {
  return labels?.[AMBIENT_LABEL] === 'ambient'
}

/** What the namespace itself says: ambient, Istio sidecar injection, Linkerd injection, or nothing. */
export function flavorOfNamespace(
  labels: Record<string, string> | undefined,
  annotations: Record<string, string> | undefined,
): MeshFlavor | undefined {
  if (isAmbient(labels)) return 'istio-ambient'
  if (labels?.['istio-injection'] === 'enabled' || labels?.['istio.io/rev'] !== undefined) return 'istio-sidecar'
  if (annotations?.[LINKERD_INJECT_ANNOTATION] === 'enabled') return 'linkerd'
  return undefined
}

/**
 * The data plane of a run: a VirtualService is Istio's (sidecar or ambient by the namespace); with `http-route`,
 * `mesh` decides the mesh, and `auto` reads the namespace first (its ambient label, Istio's injection labels,
 * Linkerd's inject annotation), then which control plane is installed (`found`), Istio first.
 */
export async function chooseFlavor(
  inputs: Pick<Inputs, 'mesh'>,
  kind: TargetKind,
  namespace: { labels: Record<string, string> | undefined; annotations: Record<string, string> | undefined },
  found: { istio: () => Promise<boolean>; linkerd: () => Promise<boolean> },
): Promise<MeshFlavor> {
  const istio = (): MeshFlavor => (isAmbient(namespace.labels) ? 'istio-ambient' : 'istio-sidecar')
  if (kind === 'VirtualService' || inputs.mesh === 'istio') return istio()
  if (inputs.mesh === 'linkerd') return 'linkerd'
  const declared = flavorOfNamespace(namespace.labels, namespace.annotations)
  if (declared) return declared
  if (await found.istio()) return istio()
  if (await found.linkerd()) return 'linkerd'
  return istio()
}

export function describeFlavor(flavor: MeshFlavor): string {
  return flavor === 'istio-ambient' ? 'Istio ambient mode' : flavor === 'linkerd' ? 'Linkerd' : 'Istio (sidecars)'
}
