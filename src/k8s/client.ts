// The action's window on the Kubernetes API: the few reads and writes it needs, typed, retried on
// transient failures, with errors turned into plain messages. Built on @kubernetes/client-node.
import {
  AdmissionregistrationV1Api,
  ApiException,
  ApisApi,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type V1Deployment,
  type V1Lease,
  type V1MutatingWebhookConfiguration,
  type V1Namespace,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node'
import { type Sleep, defaultRetry, isRetryableStatus, isTransientNetworkError, realSleep, withRetry } from '../retry.js'
import type { Ports } from './ports.js'
import {
  ConflictError,
  type DestinationRule,
  ForbiddenError,
  type Gateway,
  type GatewayApiGateway,
  type GatewayHttpRoute,
  KubeError,
  type VirtualService,
} from './resources.js'

/** Where the shipped least-privilege permissions are (and the README's list comes from). */
export const RBAC_MANIFEST = 'deploy/rbac/ of istio-canary (istio-canary.yaml, analyze.yaml, install-istio.yaml)'

/** Sent as `fieldManager` with every write, so `managedFields` show which fields istio-canary set. */
export const FIELD_MANAGER = 'istio-canary'

export interface KubeOptions {
  sleep?: Sleep
  /** Called before every request: lets a short-lived bearer token be refreshed (Entra-integrated AKS). */
  beforeRequest?: (kc: KubeConfig) => Promise<void>
  log?: (msg: string) => void
}

const ISTIO_GROUP = 'networking.istio.io'
/** Gateway API: HTTPRoute is served as v1 from Gateway API v1.0 on, as v1beta1 before (and alongside). */
const GATEWAY_GROUP = 'gateway.networking.k8s.io'

/** The Kubernetes API client: every port the action's parts use, over @kubernetes/client-node. */
export class Kube implements Ports {
  private readonly core: CoreV1Api
  private readonly apps: AppsV1Api
  private readonly coordination: CoordinationV1Api
  private readonly custom: CustomObjectsApi
  private readonly admission: AdmissionregistrationV1Api
  private istioVersion: string | undefined
  private gatewayVersion: string | undefined
  /** API requests made (for the benchmark and the report). */
  requests = 0

  constructor(
    readonly kc: KubeConfig,
    private readonly opts: KubeOptions = {},
  ) {
    this.core = kc.makeApiClient(CoreV1Api)
    this.apps = kc.makeApiClient(AppsV1Api)
    this.coordination = kc.makeApiClient(CoordinationV1Api)
    this.custom = kc.makeApiClient(CustomObjectsApi)
    this.admission = kc.makeApiClient(AdmissionregistrationV1Api)
  }

  get server(): string {
    return this.kc.getCurrentCluster()?.server ?? '(unknown server)'
  }

  /** One API call with retries of throttling, 5xx and connection failures; errors become KubeError. */
  async call<T>(what: string, fn: () => Promise<T>, opts: { retry?: boolean } = {}): Promise<T> {
    return withRetry(
      async () => {
        await this.opts.beforeRequest?.(this.kc)
        this.requests++
        try {
          return await fn()
        } catch (err) {
          throw toKubeError(err, what, this.server)
        }
      },
      {
        ...defaultRetry,
        attempts: opts.retry === false ? 1 : defaultRetry.attempts,
        sleep: this.opts.sleep ?? realSleep,
        retryable: (err) =>
          err instanceof KubeError && (isRetryableStatus(err.status) || err.reason === 'NetworkError'),
        onRetry: (err, attempt, delay) =>
          this.opts.log?.(`${what}: ${(err as Error).message}; retry ${attempt} in ${delay} ms`),
      },
    )
  }

  /** networking.istio.io version to use: v1 where served (Istio >= 1.22), else v1beta1. */
  async istioApiVersion(): Promise<string> {
    this.istioVersion ??= await this.servedVersion(
      ISTIO_GROUP,
      "Istio's CRDs are not installed (install Istio, or enable the AKS Istio add-on: az aks mesh enable)",
    )
    return this.istioVersion
  }

  /** gateway.networking.k8s.io version to use: v1 where served (Gateway API >= 1.0), else v1beta1. */
  async gatewayApiVersion(): Promise<string> {
    this.gatewayVersion ??= await this.servedVersion(
      GATEWAY_GROUP,
      'the Gateway API CRDs are not installed (install them: kubectl apply -f ' +
        'https://github.com/kubernetes-sigs/gateway-api/releases/download/<version>/standard-install.yaml, ' +
        "or use 'virtual-service')",
    )
    return this.gatewayVersion
  }

  /** v1 where the group serves it, else v1beta1, else its preferred version; a 404 when it is not served. */
  private async servedVersion(groupName: string, missing: string): Promise<string> {
    const list = await this.call('list API groups', () => this.kc.makeApiClient(ApisApi).getAPIVersions())
    const group = list.groups.find((g) => g.name === groupName)
    if (!group)
      throw new KubeError(404, 'NotFound', `the cluster at ${this.server} does not serve ${groupName}: ${missing}`)
    const versions = group.versions.map((v) => v.version)
    return versions.includes('v1')
      ? 'v1'
      : versions.includes('v1beta1')
        ? 'v1beta1'
        : (group.preferredVersion?.version ?? 'v1')
  }

  private async istio<T>(
    what: string,
    fn: (version: string) => Promise<T>,
    opts: { retry?: boolean } = {},
  ): Promise<T> {
    const version = await this.istioApiVersion()
    return this.call(what, () => fn(version), opts)
  }

  async getVirtualService(namespace: string, name: string): Promise<VirtualService> {
    return this.istio(
      `read VirtualService ${namespace}/${name}`,
      (version) =>
        this.custom.getNamespacedCustomObject({
          group: ISTIO_GROUP,
          version,
          namespace,
          plural: 'virtualservices',
          name,
        }) as Promise<VirtualService>,
    )
  }

  async listVirtualServices(namespace: string): Promise<VirtualService[]> {
    const list = await this.istio(
      `list VirtualServices in ${namespace}`,
      (version) =>
        this.custom.listNamespacedCustomObject({
          group: ISTIO_GROUP,
          version,
          namespace,
          plural: 'virtualservices',
        }) as Promise<{ items: VirtualService[] }>,
    )
    return list.items
  }

  /** PUT conditional on metadata.resourceVersion: a 409 (someone else wrote) is a ConflictError and is not retried. */
  async replaceVirtualService(vs: VirtualService): Promise<VirtualService> {
    if (!vs.metadata.resourceVersion)
      throw new Error('internal: a VirtualService write must carry the resourceVersion it was read at')
    const { namespace, name } = vs.metadata as { namespace: string; name: string }
    return this.istio(
      `update VirtualService ${namespace}/${name}`,
      (version) =>
        this.custom.replaceNamespacedCustomObject({
          group: ISTIO_GROUP,
          version,
          namespace,
          plural: 'virtualservices',
          name,
          body: { ...vs, apiVersion: `${ISTIO_GROUP}/${version}` },
          fieldManager: FIELD_MANAGER,
        }) as Promise<VirtualService>,
    )
  }

  private async gateway<T>(what: string, fn: (version: string) => Promise<T>): Promise<T> {
    const version = await this.gatewayApiVersion()
    return this.call(what, () => fn(version))
  }

  async getHttpRoute(namespace: string, name: string): Promise<GatewayHttpRoute> {
    return this.gateway(
      `read HTTPRoute ${namespace}/${name}`,
      (version) =>
        this.custom.getNamespacedCustomObject({
          group: GATEWAY_GROUP,
          version,
          namespace,
          plural: 'httproutes',
          name,
        }) as Promise<GatewayHttpRoute>,
    )
  }

  async listHttpRoutes(namespace: string): Promise<GatewayHttpRoute[]> {
    const list = await this.gateway(
      `list HTTPRoutes in ${namespace}`,
      (version) =>
        this.custom.listNamespacedCustomObject({
          group: GATEWAY_GROUP,
          version,
          namespace,
          plural: 'httproutes',
        }) as Promise<{ items: GatewayHttpRoute[] }>,
    )
    return list.items
  }

  /** PUT conditional on metadata.resourceVersion (status, a subresource, is left as it is by the server). */
  async replaceHttpRoute(route: GatewayHttpRoute): Promise<GatewayHttpRoute> {
    if (!route.metadata.resourceVersion)
      throw new Error('internal: an HTTPRoute write must carry the resourceVersion it was read at')
    const { namespace, name } = route.metadata as { namespace: string; name: string }
    return this.gateway(
      `update HTTPRoute ${namespace}/${name}`,
      (version) =>
        this.custom.replaceNamespacedCustomObject({
          group: GATEWAY_GROUP,
          version,
          namespace,
          plural: 'httproutes',
          name,
          body: { ...route, apiVersion: `${GATEWAY_GROUP}/${version}` },
          fieldManager: FIELD_MANAGER,
        }) as Promise<GatewayHttpRoute>,
    )
  }

  async listDestinationRules(namespace: string): Promise<DestinationRule[]> {
    const list = await this.istio(
      `list DestinationRules in ${namespace}`,
      (version) =>
        this.custom.listNamespacedCustomObject({
          group: ISTIO_GROUP,
          version,
          namespace,
          plural: 'destinationrules',
        }) as Promise<{ items: DestinationRule[] }>,
    )
    return list.items
  }

  async getGateway(namespace: string, name: string): Promise<Gateway | undefined> {
    return orUndefined(
      this.istio(
        `read Gateway ${namespace}/${name}`,
        (version) =>
          this.custom.getNamespacedCustomObject({
            group: ISTIO_GROUP,
            version,
            namespace,
            plural: 'gateways',
            name,
          }) as Promise<Gateway>,
      ),
    )
  }

  /** A Gateway API Gateway (an ingress Gateway, or an ambient waypoint); undefined when there is none. */
  async getGatewayApiGateway(namespace: string, name: string): Promise<GatewayApiGateway | undefined> {
    return orUndefined(
      this.gateway(
        `read Gateway ${namespace}/${name} (${GATEWAY_GROUP})`,
        (version) =>
          this.custom.getNamespacedCustomObject({
            group: GATEWAY_GROUP,
            version,
            namespace,
            plural: 'gateways',
            name,
          }) as Promise<GatewayApiGateway>,
      ),
    )
  }

  async getNamespace(name: string): Promise<V1Namespace | undefined> {
    return orUndefined(this.call(`read Namespace ${name}`, () => this.core.readNamespace({ name })))
  }

  async listPods(namespace: string, labelSelector: string): Promise<V1Pod[]> {
    return (
      await this.call(`list Pods in ${namespace}`, () => this.core.listNamespacedPod({ namespace, labelSelector }))
    ).items
  }

  async getService(namespace: string, name: string): Promise<V1Service | undefined> {
    return orUndefined(
      this.call(`read Service ${namespace}/${name}`, () => this.core.readNamespacedService({ namespace, name })),
    )
  }

  async listServices(namespace: string | undefined, labelSelector?: string): Promise<V1Service[]> {
    const sel = labelSelector === undefined ? {} : { labelSelector }
    const list =
      namespace === undefined
        ? await this.call('list Services', () => this.core.listServiceForAllNamespaces(sel))
        : await this.call(`list Services in ${namespace}`, () => this.core.listNamespacedService({ namespace, ...sel }))
    return list.items
  }

  async listDeployments(namespace: string, labelSelector?: string): Promise<V1Deployment[]> {
    const sel = labelSelector === undefined ? {} : { labelSelector }
    return (
      await this.call(`list Deployments in ${namespace}`, () =>
        this.apps.listNamespacedDeployment({ namespace, ...sel }),
      )
    ).items
  }

  async listMutatingWebhookConfigurations(labelSelector: string): Promise<V1MutatingWebhookConfiguration[]> {
    return (
      await this.call('list MutatingWebhookConfigurations', () =>
        this.admission.listMutatingWebhookConfiguration({ labelSelector }),
      )
    ).items
  }

  async getLease(namespace: string, name: string): Promise<V1Lease | undefined> {
    return orUndefined(
      this.call(`read Lease ${namespace}/${name}`, () => this.coordination.readNamespacedLease({ namespace, name })),
    )
  }

  async createLease(namespace: string, body: V1Lease): Promise<V1Lease> {
    return this.call(
      `create Lease ${namespace}/${body.metadata?.name}`,
      () => this.coordination.createNamespacedLease({ namespace, body, fieldManager: FIELD_MANAGER }),
      { retry: false },
    )
  }

  async replaceLease(namespace: string, body: V1Lease): Promise<V1Lease> {
    const name = body.metadata?.name as string
    return this.call(`update Lease ${namespace}/${name}`, () =>
      this.coordination.replaceNamespacedLease({ namespace, name, body, fieldManager: FIELD_MANAGER }),
    )
  }

  async deleteLease(namespace: string, name: string, resourceVersion: string): Promise<void> {
    await this.call(`delete Lease ${namespace}/${name}`, () =>
      this.coordination.deleteNamespacedLease({ namespace, name, body: { preconditions: { resourceVersion } } }),
    )
  }
}

async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p
  } catch (err) {
    if (err instanceof KubeError && err.status === 404) return undefined
    throw err
  }
}

interface StatusBody {
  kind?: string
  message?: string
  reason?: string
}

function parseBody(body: unknown): StatusBody | undefined {
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as StatusBody
    } catch {
      return { message: body.slice(0, 300) }
    }
  }
  return body && typeof body === 'object' ? (body as StatusBody) : undefined
}

export function toKubeError(err: unknown, what: string, server: string): KubeError {
  if (err instanceof KubeError) return err
  if (err instanceof ApiException) {
    const code = Number(err.code)
    const status = parseBody(err.body)
    const reason = status?.reason ?? `HTTP${code}`
    const message = status?.message ?? `HTTP ${code}`
    if (code === 403) return forbiddenError(what, message)
    const hint = code === 401 ? ' (the credential was refused: check the kubeconfig or Azure login)' : ''
    const Cls = code === 409 && reason === 'Conflict' ? ConflictError : KubeError
    return new Cls(code, reason, `${what} failed: ${message}${hint}`)
  }
  if (isTransientNetworkError(err)) {
    return new KubeError(
      0,
      'NetworkError',
      `${what} failed: cannot reach the Kubernetes API at ${server} (${(err as Error).message})`,
    )
  }
  const e = err as Error
  const cause = (e as { cause?: Error }).cause
  return new KubeError(0, 'Error', `${what} failed: ${e.message}${cause?.message ? ` (${cause.message})` : ''}`)
}

// The API server's 403 message (k8s.io/apiserver pkg/endpoints/handlers/responsewriters/errors.go forbiddenMessage):
// `... User "<u>" cannot <verb> resource "<resource>" in API group "<group>" in the namespace "<ns>"`
// or `at the cluster scope`.
const FORBIDDEN =
  /cannot (\S+) resource "([^"]*)" in API group "([^"]*)" (?:in the namespace "([^"]*)"|at the cluster scope)/

function forbiddenError(what: string, message: string): ForbiddenError {
  const m = FORBIDDEN.exec(message)
  const [verb, resource, group, namespace] = m
    ? [m[1] as string, m[2] as string, m[3] as string, m[4] ?? '']
    : ['?', '?', '?', '']
  const where = namespace ? `in namespace ${namespace}` : 'cluster-wide'
  const what403 = m
    ? `the permission to ${verb} ${group ? `${resource}.${group}` : resource} ${where}`
    : 'an RBAC permission'
  return new ForbiddenError(
    `${what} failed: the identity lacks ${what403} (${message}). ` +
      `Grant it: apply the Roles and bindings in ${RBAC_MANIFEST}, ` +
      `as the README's "Permissions in the cluster" lists them`,
    verb,
    resource,
    group,
    namespace,
  )
}

export function loadKubeConfig(text: string): KubeConfig {
  const kc = new KubeConfig()
  kc.loadFromString(text)
  return kc
}
