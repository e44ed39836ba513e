// The ingress a smoke test enters through when the application is exposed by a Gateway API Gateway: the address its
// controller published in status.addresses (GatewayStatusAddress, apis/v1/gateway_types.go: type IPAddress by
// default, or Hostname) on the port of an HTTP listener. Istio publishes the address of the Service it made for the
// Gateway (<name>-<class>, e.g. bookinfo-gateway-istio); any other implementation does the same, so nothing here is
// Istio's own.
import type { GatewayApiGatewayApi } from '../k8s/ports.js'
import type { GatewayApiGateway } from '../k8s/resources.js'
import { condition } from './waypoint.js'

export interface GatewayApiIngress {
  namespace: string
  name: string
  /** Base URL, or undefined while the Gateway has no address (or no HTTP listener). */
  url: string | undefined
  /** Why there is no URL, for the readiness failure. */
  why?: string
}

export function ingressUrl(gw: GatewayApiGateway): { url: string | undefined; why?: string } {
  const address = gw.status?.addresses?.[0]?.value
  const listener = (gw.spec.listeners ?? []).find((l) => l.protocol === 'HTTP')
  if (!listener) return { url: undefined, why: 'it has no HTTP listener' }
  if (!address) {
    const programmed = condition(gw.status?.conditions, 'Programmed')
    const state = programmed ? `Programmed is ${programmed.status}` : 'not Programmed yet'
    return { url: undefined, why: `it has no address yet (status.addresses is empty; ${state})` }
  }
  const host = address.includes(':') ? `[${address}]` : address
  return { url: listener.port === 80 ? `http://${host}` : `http://${host}:${listener.port}` }
}

/** The first Gateway (namespace/name, as the router found them) that exists; undefined when none does. */
export async function findGatewayApiIngress(
  api: GatewayApiGatewayApi,
  gateways: string[],
): Promise<GatewayApiIngress | undefined> {
  for (const ref of gateways) {
    const [namespace, name] = ref.split('/') as [string, string]
    const gw = await api.getGatewayApiGateway(namespace, name)
    if (gw) return { namespace, name, ...ingressUrl(gw) }
  }
  return undefined
}
