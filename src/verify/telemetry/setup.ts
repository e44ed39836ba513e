// Which Prometheus a run judges on (SPEC section 6): `prometheus-url`, else a `prometheus-service` (or, for
// `auto`, Istio's addon Service istio-system/prometheus:9090 when it exists) through the API server's service
// proxy. With `metrics: true` one must be found and have series for the target before any change; with `auto`
// a Prometheus that cannot be used is a warning and the run is judged on the smoke test alone.
// An Azure Monitor workspace query endpoint (`*.prometheus.monitor.azure.{com,us,cn}`, or any `prometheus-url`
// given a `prometheus-scope`) without a `prometheus-token` gets Entra tokens from the AKS login's own credential,
// for the scope of the endpoint's cloud (else of `azure-cloud`).
import type { Inputs } from '../../inputs.js'
import {
  type PrometheusTarget,
  azureMonitorScope,
  createPrometheusClient,
  isAzureMonitorEndpoint,
} from '../../telemetry/prometheus.js'
import type { ClusterEndpoint, VerificationFacts, VerifierDeps } from '../verifier.js'
import { TelemetryVerifier } from './verifier.js'

export class TelemetryUnavailableError extends Error {
  override name = 'TelemetryUnavailableError'
}

/**
 * The Prometheus `prometheus-service: auto` looks for: Istio's addon (samples/addons/prometheus.yaml), or with
 * Linkerd the one linkerd-viz installs (linkerd/linkerd2 viz/charts/linkerd-viz/templates/prometheus.yaml: Service
 * prometheus, port 9090, in linkerd-viz).
 */
const ADDON = { namespace: 'istio-system', name: 'prometheus', port: 9090 }
const LINKERD_VIZ = { namespace: 'linkerd-viz', name: 'prometheus', port: 9090 }

/** The metric a flavour counts requests with, for messages. */
function metricOf(facts: VerificationFacts): string {
  if (facts.flavor === 'linkerd') return 'response_total, direction inbound'
  return `istio_requests_total, reporter ${facts.flavor === 'istio-ambient' ? 'waypoint' : 'destination'}`
}

/** A Prometheus that is configured but cannot be used as it is (no credential for it): why, for the user. */
class Unusable extends Error {}

async function findPrometheus(
  inputs: Inputs,
  cluster: ClusterEndpoint,
  azure: VerifierDeps['azure'],
  facts: VerificationFacts,
): Promise<PrometheusTarget | undefined> {
  const url = inputs['prometheus-url']
  const token = inputs['prometheus-token']
  if (url && token) return { kind: 'direct', url, token }
  if (url) {
    const given = inputs['prometheus-scope']
    if (given === undefined && !isAzureMonitorEndpoint(url)) return { kind: 'direct', url }
    const scope = given ?? azureMonitorScope(url, azure?.cloud ?? 'AzureCloud')
    if (!azure) {
      throw new Unusable(
        `prometheus-url ${url} is an Azure Monitor endpoint, which takes an Entra token (scope ${scope}), and ` +
          'without an AKS login (resource-group, cluster-name) there is no Azure credential to get one: ' +
          "set 'prometheus-token'",
      )
    }
    return { kind: 'azure', url, credential: azure.credential, scope }
  }
  const service = inputs['prometheus-service']
  if (service === 'none') return undefined
  const ref = service === 'auto' ? (facts.flavor === 'linkerd' ? LINKERD_VIZ : ADDON) : service
  if (service === 'auto' && !(await cluster.serviceExists(ref.namespace, ref.name))) return undefined
  return { kind: 'service', server: cluster.server, ...ref }
}

/**
 * The telemetry verifier, probed: undefined when the run is judged on the smoke test alone (metrics false, or
 * auto without a usable Prometheus, which is logged as a warning saying why).
 */
export async function setUpTelemetry(
  inputs: Inputs,
  facts: VerificationFacts,
  deps: VerifierDeps,
): Promise<TelemetryVerifier | undefined> {
  if (inputs.metrics === 'false' || !deps.cluster) return undefined
  const required = inputs.metrics === 'true'
  // SPEC section 6: `auto` judges on metrics "when a Prometheus is configured or found". One the inputs name is
  // what the user asked to be judged on: if it cannot be used, that is an error before any change, as with
  // `metrics: true`; only the one `auto` finds (Istio's addon, linkerd-viz) falls back to the smoke test.
  const service = inputs['prometheus-service']
  const named =
    inputs['prometheus-url'] !== undefined
      ? 'prometheus-url'
      : service !== 'auto' && service !== 'none'
        ? 'prometheus-service'
        : undefined
  const unusable = (why: string): undefined => {
    if (required) throw new TelemetryUnavailableError(`Input 'metrics' is true, but ${why}; nothing was changed`)
    if (named) {
      throw new TelemetryUnavailableError(
        `Input '${named}' names the Prometheus to judge on, but ${why}; nothing was changed ` +
          "(set 'metrics: false' to judge on the smoke test alone)",
      )
    }
    deps.warn(`Judging each step on the smoke test alone: ${why}`)
    return undefined
  }
  let target: PrometheusTarget | undefined
  try {
    target = await findPrometheus(inputs, deps.cluster, deps.azure, facts)
  } catch (err) {
    if (err instanceof Unusable) return unusable(err.message)
    throw err
  }
  if (!target) {
    const addon = facts.flavor === 'linkerd' ? LINKERD_VIZ : ADDON
    const none =
      'no Prometheus is configured (prometheus-url) or found ' +
      `(prometheus-service: ${addon.namespace}/${addon.name}:${addon.port})`
    if (required) return unusable(none)
    deps.log(`Judging each step on the smoke test alone: ${none}`)
    return undefined
  }
  const client = createPrometheusClient(target, target.kind === 'service' ? { get: deps.cluster.get } : {})
  const verifier = new TelemetryVerifier(
    {
      client,
      target: {
        namespace: facts.namespace,
        service: facts.service,
        versions: [facts.stableVersion, facts.canaryVersion],
        ...(facts.flavor ? { flavor: facts.flavor } : {}),
        ...(facts.services ? { services: facts.services } : {}),
        ...(facts.workloads ? { deployments: facts.workloads } : {}),
      },
      test: {
        alpha: inputs['analysis-alpha'],
        minCanaryRequests: inputs['min-canary-requests'],
        ...(inputs['max-error-rate'] !== undefined ? { maxErrorRate: inputs['max-error-rate'] } : {}),
      },
      ...(inputs['max-step-time'] !== undefined ? { maxStepTimeMs: inputs['max-step-time'] } : {}),
      ...(inputs['max-latency'] !== undefined ? { maxLatencyMs: inputs['max-latency'] } : {}),
    },
    { sleep: deps.sleep, now: deps.now, log: deps.log, warn: deps.warn },
  )
  let stableRequests: number
  try {
    ;({ stableRequests } = await verifier.probe())
  } catch (err) {
    return unusable(`${client.describe} cannot be queried: ${(err as Error).message}`)
  }
  if (stableRequests === 0) {
    return unusable(
      `${client.describe} has no requests of ${facts.namespace}/${facts.service} version ${facts.stableVersion} ` +
        `(${metricOf(facts)}): are the pods labelled with their version, and scraped?`,
    )
  }
  return verifier
}
