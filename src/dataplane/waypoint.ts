// Istio ambient mode's L7 proxy: a waypoint (a Gateway API Gateway, gatewayClassName istio-waypoint) that a namespace
// or Service uses through the label istio.io/use-waypoint (https://istio.io/latest/docs/ambient/usage/waypoint/:
// "a Service label takes precedence over the namespace label"; the value `none` opts out;
// istio.io/use-waypoint-namespace names a waypoint in another namespace). Without one, ztunnel carries the traffic
// at L4 only and an HTTPRoute whose parent is the Service has no effect: the weights would not apply.
import type { GatewayApi, GatewayApiGatewayApi } from '../k8s/ports.js'
import type { RouteCondition } from '../k8s/resources.js'
import { USE_WAYPOINT_LABEL, USE_WAYPOINT_NAMESPACE_LABEL } from './flavor.js'

/** The waypoint a Service uses, by its labels over its namespace's; undefined: none. */
export function waypointOf(
  namespace: string,
  namespaceLabels: Record<string, string> | undefined,
  serviceLabels: Record<string, string> | undefined,
): { namespace: string; name: string } | undefined {
  const from = serviceLabels?.[USE_WAYPOINT_LABEL] !== undefined ? serviceLabels : namespaceLabels
  const name = from?.[USE_WAYPOINT_LABEL]
  if (name === undefined || name === '' || name === 'none') return undefined
  return { namespace: from?.[USE_WAYPOINT_NAMESPACE_LABEL] ?? namespace, name }
}

export function condition(conditions: RouteCondition[] | undefined, type: string): RouteCondition | undefined {
  return conditions?.find((c) => c.type === type)
}

/**
 * Each Service whose traffic the target routes at L7 (an HTTPRoute's Service parents, a VirtualService's
 * destination host) must use a Programmed waypoint. Failures, each with what to run.
 */
export async function checkWaypoints(
  api: Pick<GatewayApi, 'getService'> & GatewayApiGatewayApi,
  input: { namespace: string; namespaceLabels: Record<string, string> | undefined; services: string[] },
): Promise<{ failures: string[]; notes: string[] }> {
  const failures: string[] = []
  const notes: string[] = []
  const { namespace } = input
  for (const service of input.services) {
    const svc = await api.getService(namespace, service)
    if (!svc) continue // the backend checks report a missing Service
    const waypoint = waypointOf(namespace, input.namespaceLabels, svc.metadata?.labels)
    if (!waypoint) {
      failures.push(
        `Service ${namespace}/${service} uses no waypoint, so in ambient mode its traffic is L4 only and the route's ` +
          `weights do not apply: istioctl waypoint apply -n ${namespace} --enroll-namespace --wait ` +
          `(or kubectl label service -n ${namespace} ${service} ${USE_WAYPOINT_LABEL}=<waypoint>)`,
      )
      continue
    }
    const where = `${waypoint.namespace}/${waypoint.name}`
    const gw = await api.getGatewayApiGateway(waypoint.namespace, waypoint.name)
    if (!gw) {
      failures.push(
        `Service ${namespace}/${service} uses the waypoint ${where} (label ${USE_WAYPOINT_LABEL}), which does not ` +
          `exist: istioctl waypoint apply -n ${waypoint.namespace} --name ${waypoint.name} --wait`,
      )
      continue
    }
    const programmed = condition(gw.status?.conditions, 'Programmed')
    if (programmed?.status !== 'True') {
      const why = programmed
        ? `Programmed is ${programmed.status}${programmed.reason ? ` (${programmed.reason})` : ''}`
        : 'not Programmed yet'
      failures.push(
        `the waypoint ${where} of Service ${namespace}/${service} is ${why}: ` +
          `kubectl -n ${waypoint.namespace} describe gateway ${waypoint.name} ` +
          `(and kubectl -n ${waypoint.namespace} get pods -l gateway.networking.k8s.io/gateway-name=${waypoint.name})`,
      )
      continue
    }
    notes.push(`Service ${namespace}/${service}: waypoint ${where} (Programmed)`)
  }
  return { failures, notes }
}
