// Readiness of a Gateway API HTTPRoute target before any traffic change (SPEC 7 rule 5), per data plane: the
// parents accept the route; the ingress has an address; each backend Service selects ready pods with the proxy
// its data plane needs; Istio's control plane and namespace (sidecar injection, or ambient mode with a Programmed
// waypoint for each Service routed at L7); Linkerd's control plane ready. Every failure says what to run.
import type { ControlPlane, GatewayInfo } from '../istio/mesh.js'
import { ReadinessError, controlPlaneFailures, gatewayFailures, namespaceFailures } from '../istio/mesh.js'
import type { GatewayApi, GatewayApiGatewayApi, ReadinessApi } from '../k8s/ports.js'
import type { MeshFacts } from '../routing/router.js'
import { type BackendFacts, checkBackends } from './backends.js'
import type { MeshFlavor } from './flavor.js'
import type { GatewayApiIngress } from './ingress.js'
import { LINKERD_COMPONENTS, type LinkerdControlPlane } from './linkerd.js'
import { checkWaypoints } from './waypoint.js'

export interface HttpRouteReadinessInput {
  flavor: MeshFlavor
  namespace: string
  /** The namespace's labels; undefined: no such namespace. */
  namespaceLabels: Record<string, string> | undefined
  /** The HTTPRoute, e.g. bookinfo/reviews, for messages. */
  route: string
  facts: MeshFacts
  /** Istio's control plane (Istio data planes). */
  controlPlane?: ControlPlane | undefined
  /** Linkerd's control plane (Linkerd). */
  linkerd?: LinkerdControlPlane | undefined
  /** The ingress: gateway-url given, a Gateway API Gateway, else Istio's ingress gateway Service. */
  gatewayUrlGiven: boolean
  gatewayApiIngress: GatewayApiIngress | undefined
  istioGateway: GatewayInfo | undefined
  /** The backends (versions) that must be ready. */
  backends: string[]
  /** Where a backend's name came from, for messages (e.g. "input 'canary-backend'"). */
  backendOrigin?: Record<string, string>
}

export function linkerdFailures(cp: LinkerdControlPlane | undefined): string[] {
  const install =
    'linkerd install --crds | kubectl apply -f - && linkerd install | kubectl apply -f - && linkerd check ' +
    '(https://linkerd.io/2/getting-started/)'
  if (!cp) return [`no Linkerd control plane found (no Deployment in namespace linkerd): ${install}`]
  const failures: string[] = []
  if (cp.missing.length > 0) {
    failures.push(
      `the Linkerd control plane in ${cp.namespace} lacks ${cp.missing.join(', ')} ` +
        `(it needs ${LINKERD_COMPONENTS.join(', ')}): ${install}`,
    )
  }
  for (const component of cp.notReady) {
    failures.push(
      `the Linkerd ${component} in ${cp.namespace} has no ready replica: ` +
        `kubectl -n ${cp.namespace} rollout status deployment/linkerd-${component} (and linkerd check)`,
    )
  }
  return failures
}

function ingressFailures(input: HttpRouteReadinessInput): string[] {
  if (input.gatewayUrlGiven) return []
  const gw = input.gatewayApiIngress
  if (gw) {
    if (gw.url) return []
    return [
      `the Gateway ${gw.namespace}/${gw.name} cannot be reached yet: ${gw.why ?? 'no address'}: ` +
        `kubectl -n ${gw.namespace} wait --for=condition=Programmed gateway/${gw.name}, or set gateway-url`,
    ]
  }
  if (input.flavor === 'linkerd') {
    return [
      `no Gateway API Gateway with an address takes the namespace's HTTPRoutes, and Linkerd has no ingress gateway ` +
        'of its own: set gateway-url (the ingress in front of the application, e.g. http://ingress.example.com)',
    ]
  }
  return gatewayFailures(input.istioGateway, input.controlPlane, false)
}

function parentFailures(input: HttpRouteReadinessInput): string[] {
  const parents = input.facts.parents
  if (!parents || parents.ok) return []
  const state = parents.pending ? 'has not been accepted by all its parents yet' : 'is not accepted by its parents'
  const [namespace, name] = input.route.split('/')
  return [
    `HTTPRoute ${input.route} ${state} (${parents.reasons.join('; ')}): ` +
      `kubectl -n ${namespace} describe httproute ${name}`,
  ]
}

/** Every check; all failures together in one ReadinessError. */
export async function checkHttpRouteReadiness(
  api: ReadinessApi & Pick<GatewayApi, 'getService'> & GatewayApiGatewayApi,
  input: HttpRouteReadinessInput,
): Promise<BackendFacts> {
  const { flavor, namespace } = input
  const failures: string[] = []
  const notes: string[] = []
  if (flavor === 'linkerd') {
    failures.push(...linkerdFailures(input.linkerd))
    if (!input.namespaceLabels)
      failures.push(`namespace ${namespace} does not exist: kubectl create namespace ${namespace}`)
  } else {
    failures.push(...controlPlaneFailures(input.controlPlane))
    failures.push(
      ...namespaceFailures(namespace, input.namespaceLabels, input.controlPlane, flavor === 'istio-ambient'),
    )
  }
  failures.push(...parentFailures(input), ...ingressFailures(input))
  if (flavor === 'istio-ambient') {
    const services = input.facts.meshParents ?? []
    const waypoints = await checkWaypoints(api, { namespace, namespaceLabels: input.namespaceLabels, services })
    failures.push(...waypoints.failures)
    notes.push(...waypoints.notes)
  }
  const backends = await checkBackends(api, {
    namespace,
    backends: input.backends,
    flavor,
    ...(input.backendOrigin ? { origin: input.backendOrigin } : {}),
  })
  failures.push(...backends.failures)
  if (failures.length > 0) throw new ReadinessError(failures)
  return { ...backends, failures: [], notes: [...notes, ...backends.notes] }
}
