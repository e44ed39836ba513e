// AKS login: an Entra ID credential (client secret or GitHub OIDC federation), then the cluster's
// kubeconfig from ARM (listClusterUserCredential / listClusterAdminCredential). For Entra-integrated
// clusters the kubelogin exec user is replaced by a bearer token for the AKS server application.
import { ClientAssertionCredential, ClientSecretCredential, type TokenCredential } from '@azure/identity'
import { dump, load } from 'js-yaml'
import {
  causeChain,
  defaultRetry,
  isRetryableStatus,
  isTransientNetworkError,
  withRetry,
  type Sleep,
} from '../retry.js'
import { AKS_SERVER_APP_ID, getAzureCloud, type AzureCloudName } from './clouds.js'

/** The AKS cluster and the Entra ID identity to reach it with: what the action's AKS login inputs give. */
export interface AksCluster {
  cloud: AzureCloudName
  /** Entra authority host override; when set, instance discovery is disabled. */
  authorityHost?: string
  /** ARM endpoint override (e.g. a private or simulated endpoint). */
  armEndpoint?: string
  /** ARM token scope override (Azure Stack); default the cloud's. */
  armScope?: string
  /** OIDC audience; default the cloud's. */
  audience?: string
  tenantId: string
  clientId: string
  clientSecret?: string
  subscriptionId: string
  resourceGroup: string
  clusterName: string
  admin: boolean
}

export interface AksLoginOptions extends AksCluster {
  /** The caller passes core.getIDToken. */
  getIdToken: (audience: string) => Promise<string>
  /** The caller passes core.setSecret. */
  setSecret: (value: string) => void
  log: (msg: string) => void
  sleep?: Sleep
  /** ARM API version. Default 2024-09-01. */
  apiVersion?: string
  /** Per-request timeout of ARM calls in ms. Default 30000. */
  timeoutMs?: number
}

export interface AksLogin {
  /** Kubeconfig YAML ready to use (Entra clusters: the exec user replaced by a bearer token). */
  kubeconfig: string
  entra: boolean
  /** For entra: returns a fresh AKS token (credential caches; refreshes near expiry). */
  aksToken?: () => Promise<{ token: string; expiresOnTimestamp: number }>
  /**
   * The Entra credential the login used, for other Azure resources of the run (an Azure Monitor workspace's query
   * endpoint): every token it gives is masked (setSecret) before it is returned, and its errors are the login's
   * readable ones with secrets scrubbed. One scope per call, as the client credentials grant takes.
   */
  credential: TokenCredential
}

/** A login failure with a message meant for the user; `code` is the AADSTS or ARM error code when there is one. */
export class AzureLoginError extends Error {
  readonly code: string | undefined
  readonly status: number | undefined
  constructor(message: string, opts: { code?: string | undefined; status?: number | undefined; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'AzureLoginError'
    this.code = opts.code
    this.status = opts.status
  }
}

export const DEFAULT_ARM_API_VERSION = '2024-09-01'

export async function loginToAks(options: AksLoginOptions): Promise<AksLogin> {
  const cloud = getAzureCloud(options.cloud)
  for (const [name, value] of [
    ['tenant-id', options.tenantId],
    ['client-id', options.clientId],
    ['subscription-id', options.subscriptionId],
    ['resource-group', options.resourceGroup],
    ['cluster-name', options.clusterName],
  ] as const) {
    if (value.trim() === '') throw new AzureLoginError(`Input '${name}' is required for AKS login.`)
  }
  const secrets = new Set<string>()
  const mask = (value: string | undefined): void => {
    if (value === undefined || value === '' || secrets.has(value)) return
    secrets.add(value)
    options.setSecret(value)
  }
  const scrub = (text: string): string => {
    let out = text
    for (const secret of secrets) out = out.split(secret).join('***')
    return out
  }
  mask(options.clientSecret)

  const armEndpoint = orDefault(options.armEndpoint, cloud.armEndpoint).replace(/\/+$/, '')
  const armScope = orDefault(options.armScope, cloud.armScope)
  const audience = orDefault(options.audience, cloud.oidcAudience)
  const authorityHost = orDefault(options.authorityHost, cloud.authorityHost).replace(/\/+$/, '')
  for (const [name, value] of [
    ['authority-host', authorityHost],
    ['arm-endpoint', armEndpoint],
  ] as const) {
    if (!URL.canParse(value) || new URL(value).protocol !== 'https:') {
      throw new AzureLoginError(`Input '${name}' must be an https:// URL, got '${value}'.`)
    }
  }
  const credential = makeCredential(options, authorityHost, audience, mask)
  const principal = `client '${options.clientId}' in tenant '${options.tenantId}'`

  const getToken = async (scope: string): Promise<{ token: string; expiresOnTimestamp: number }> => {
    try {
      const accessToken = await credential.getToken(scope)
      if (!accessToken) throw new Error(`no access token was returned for scope ${scope}`)
      mask(accessToken.token)
      return { token: accessToken.token, expiresOnTimestamp: accessToken.expiresOnTimestamp }
    } catch (err) {
      throw entraError(
        err,
        principal,
        `${authorityHost}/${options.tenantId}`,
        scope,
        options.clientSecret !== undefined,
        scrub,
      )
    }
  }

  const how = options.clientSecret !== undefined ? 'a client secret' : `a GitHub OIDC token (audience ${audience})`
  options.log(`Signing in to Entra ID as ${principal} with ${how}`)
  await getToken(armScope)

  const action = options.admin ? 'listClusterAdminCredential' : 'listClusterUserCredential'
  const clusterId =
    `/subscriptions/${encodeURIComponent(options.subscriptionId)}` +
    `/resourceGroups/${encodeURIComponent(options.resourceGroup)}` +
    `/providers/Microsoft.ContainerService/managedClusters/${encodeURIComponent(options.clusterName)}`
  const apiVersion = encodeURIComponent(options.apiVersion ?? DEFAULT_ARM_API_VERSION)
  const url = `${armEndpoint}${clusterId}/${action}?api-version=${apiVersion}`
  options.log(
    `Fetching the ${options.admin ? 'admin' : 'user'} credential of AKS cluster ` +
      `${options.resourceGroup}/${options.clusterName} (subscription ${options.subscriptionId})`,
  )

  const retry = { ...defaultRetry, ...(options.sleep ? { sleep: options.sleep } : {}) }
  const body = await withRetry(
    async () => {
      const { token } = await getToken(armScope)
      return callArm(url, token, options.timeoutMs ?? 30_000)
    },
    {
      ...retry,
      retryable: (err) =>
        err instanceof ArmHttpError ? isRetryableStatus(err.status) : isTransientNetworkError(err) || isTimeout(err),
      retryAfterMs: (err) => (err instanceof ArmHttpError ? err.retryAfterMs : undefined),
      onRetry: (err, attempt, delayMs) =>
        options.log(
          `ARM ${action} failed (${describeTransient(err)}); ` +
            `retrying in ${delayMs} ms (attempt ${attempt + 1} of ${retry.attempts})`,
        ),
    },
  ).catch((err: unknown) => {
    throw armError(err, action, options, scrub)
  })

  const shared: TokenCredential = {
    getToken: async (scopes) => {
      const list = typeof scopes === 'string' ? [scopes] : scopes
      if (list.length !== 1) throw new AzureLoginError(`One Entra scope per token request, got ${list.length}.`)
      return getToken(list[0] as string)
    },
  }

  const kubeconfig = firstKubeconfig(body, action)
  mask(kubeconfig.base64)
  const config = parseKubeconfig(kubeconfig.yaml)
  for (const entry of config.users ?? []) {
    const user = entry.user ?? {}
    mask(stringOrUndefined(user['token']))
    mask(stringOrUndefined(user['client-key-data']))
    mask(stringOrUndefined(user['client-certificate-data']))
    mask(stringOrUndefined(user['password']))
  }

  let entra = false
  let serverId = AKS_SERVER_APP_ID
  for (const entry of config.users ?? []) {
    const id = entraServerId(entry.user)
    if (id !== undefined) {
      entra = true
      serverId = id
    }
  }
  if (!entra) return { kubeconfig: kubeconfig.yaml, entra: false, credential: shared }

  const aksScope = `${serverId}/.default`
  const aksToken = (): Promise<{ token: string; expiresOnTimestamp: number }> => getToken(aksScope)
  const { token } = await aksToken()
  for (const entry of config.users ?? []) {
    if (entraServerId(entry.user) !== undefined) entry.user = { token }
  }
  options.log(
    `Cluster ${options.clusterName} uses Entra ID: ` +
      `using an access token for the AKS server application (${serverId}) instead of kubelogin`,
  )
  return { kubeconfig: dump(config, { lineWidth: -1 }), entra: true, aksToken, credential: shared }
}

function makeCredential(
  options: AksLoginOptions,
  authorityHost: string,
  audience: string,
  mask: (v: string) => void,
): TokenCredential {
  // An overridden authority host (Azure Stack, private clouds, simulation) is not in Microsoft's instance discovery.
  const credentialOptions =
    orDefault(options.authorityHost, '') !== '' ? { authorityHost, disableInstanceDiscovery: true } : { authorityHost }
  if (options.clientSecret !== undefined) {
    return new ClientSecretCredential(options.tenantId, options.clientId, options.clientSecret, credentialOptions)
  }
  // MSAL asks for the assertion before every token request, cache hits included: reuse the GitHub
  // token while it has at least a minute left, so long runs do not call the OIDC endpoint each time.
  let cached: { token: string; exp: number } | undefined
  return new ClientAssertionCredential(
    options.tenantId,
    options.clientId,
    async () => {
      if (cached && cached.exp - Date.now() / 1000 > 60) return cached.token
      let idToken: string
      try {
        idToken = await options.getIdToken(audience)
      } catch (err) {
        throw new AzureLoginError(
          `Could not get a GitHub OIDC token (audience ${audience}): ${message(err)}. Give the job ` +
            "'permissions: id-token: write', or set 'client-secret' to sign in with a service principal secret.",
          { cause: err },
        )
      }
      mask(idToken)
      const exp = jwtExpiry(idToken)
      cached = exp === undefined ? undefined : { token: idToken, exp }
      return idToken
    },
    credentialOptions,
  )
}

/** The `exp` claim (seconds) of a JWT, if readable. */
function jwtExpiry(jwt: string): number | undefined {
  try {
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as unknown
    const exp = isObject(claims) ? claims['exp'] : undefined
    return typeof exp === 'number' ? exp : undefined
  } catch {
    return undefined
  }
}

// ---- ARM ----------------------------------------------------------------------------------------------

class ArmHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly armMessage: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(`HTTP ${status} ${code}: ${armMessage}`)
    this.name = 'ArmHttpError'
  }
}

async function callArm(url: string, token: string, timeoutMs: number): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, accept: 'application/json', 'content-length': '0' },
    signal: AbortSignal.timeout(timeoutMs),
  })
  const text = await res.text()
  let json: unknown
  try {
    json = text === '' ? undefined : JSON.parse(text)
  } catch {
    json = undefined
  }
  if (res.ok) return json
  // ARM wraps errors as {error:{code,message}}; some resource providers answer {code,message}.
  const armBody = isObject(json) ? json : {}
  const problem = isObject(armBody['error']) ? armBody['error'] : armBody
  const code = typeof problem['code'] === 'string' ? problem['code'] : res.statusText || 'Error'
  const msg = typeof problem['message'] === 'string' ? problem['message'] : text.slice(0, 300)
  const retryAfter = res.headers.get('retry-after')
  const seconds = retryAfter !== null && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) : undefined
  throw new ArmHttpError(res.status, code, msg, seconds === undefined ? undefined : seconds * 1000)
}

function armError(err: unknown, action: string, options: AksLoginOptions, scrub: (s: string) => string): Error {
  if (err instanceof AzureLoginError) return err
  const cluster =
    `AKS cluster '${options.clusterName}' in resource group '${options.resourceGroup}' ` +
    `(subscription '${options.subscriptionId}')`
  if (!(err instanceof ArmHttpError)) {
    const armEndpoint = orDefault(options.armEndpoint, getAzureCloud(options.cloud).armEndpoint)
    return new AzureLoginError(
      scrub(
        `Could not reach Azure Resource Manager at ${armEndpoint} ` +
          `to fetch the credential of ${cluster}: ${messageChain(err).replaceAll('\n', ': ')}` +
          (/certificate|CERT_|SELF_SIGNED/i.test(messageChain(err))
            ? '. If the endpoint uses a private CA, add it with NODE_EXTRA_CA_CERTS.'
            : ''),
      ),
      { cause: err },
    )
  }
  const detail = scrub(`${err.code}: ${err.armMessage}`)
  const opt = { code: err.code, status: err.status }
  if (err.status === 401) {
    return new AzureLoginError(
      `Azure Resource Manager rejected the access token of client '${options.clientId}' (${detail}). ` +
        "Check that 'tenant-id' is the tenant of the subscription " +
        "and that 'azure-cloud' / 'arm-endpoint' match the cloud.",
      opt,
    )
  }
  if (err.status === 403) {
    const role = options.admin
      ? 'Azure Kubernetes Service Cluster Admin Role'
      : 'Azure Kubernetes Service Cluster User Role'
    return new AzureLoginError(
      `Client '${options.clientId}' is not allowed to ${action} on ${cluster} (${detail}). Grant it the ` +
        `'${role}' on the cluster, e.g. ` +
        `az role assignment create --assignee ${options.clientId} --role "${role}" --scope ` +
        `/subscriptions/${options.subscriptionId}/resourceGroups/${options.resourceGroup}` +
        `/providers/Microsoft.ContainerService/managedClusters/${options.clusterName}`,
      opt,
    )
  }
  if (err.status === 404) {
    return new AzureLoginError(
      `${cluster} was not found (${detail}). Check 'cluster-name', 'resource-group' and 'subscription-id'` +
        ` (and 'azure-cloud').`,
      opt,
    )
  }
  if (err.status === 400 && /disable local accounts/i.test(err.armMessage)) {
    return new AzureLoginError(
      `${cluster} has local accounts disabled, so its admin credential cannot be fetched (admin: true). ` +
        'Use the user credential (admin: false) with Entra ID RBAC: ' +
        `give client '${options.clientId}' a Kubernetes role on the cluster, ` +
        "e.g. 'Azure Kubernetes Service RBAC Cluster Admin' or 'Azure Kubernetes Service RBAC Writer'.",
      opt,
    )
  }
  return new AzureLoginError(`Azure Resource Manager ${action} on ${cluster} failed: HTTP ${err.status} ${detail}`, opt)
}

function firstKubeconfig(body: unknown, action: string): { base64: string; yaml: string } {
  const list = isObject(body) ? body['kubeconfigs'] : undefined
  const first: unknown = Array.isArray(list) ? list[0] : undefined
  const value = isObject(first) ? first['value'] : undefined
  if (typeof value !== 'string' || value === '') {
    throw new AzureLoginError(`Azure Resource Manager ${action} answered without a kubeconfig.`)
  }
  return { base64: value, yaml: Buffer.from(value, 'base64').toString('utf8') }
}

// ---- kubeconfig ---------------------------------------------------------------------------------------

interface KubeconfigDoc {
  users?: Array<{ name?: string; user?: Record<string, unknown> }>
  [key: string]: unknown
}

function parseKubeconfig(yamlText: string): KubeconfigDoc {
  let doc: unknown
  try {
    doc = load(yamlText)
  } catch {
    doc = undefined
  }
  if (!isObject(doc) || (doc['users'] !== undefined && !Array.isArray(doc['users']))) {
    throw new AzureLoginError('The kubeconfig returned by Azure Resource Manager is not a valid kubeconfig.')
  }
  return doc as KubeconfigDoc
}

/** The AKS server app id if this kubeconfig user needs Entra ID (kubelogin exec or the legacy azure auth-provider). */
function entraServerId(user: Record<string, unknown> | undefined): string | undefined {
  if (!user) return undefined
  const exec = user['exec']
  if (isObject(exec) && typeof exec['command'] === 'string' && /(^|[/\\])kubelogin(\.exe)?$/.test(exec['command'])) {
    const args = Array.isArray(exec['args']) ? exec['args'].map(String) : []
    const flag = args.indexOf('--server-id')
    return flag >= 0 && args[flag + 1] ? args[flag + 1] : AKS_SERVER_APP_ID
  }
  const provider = user['auth-provider']
  if (isObject(provider) && provider['name'] === 'azure') {
    const cfg = provider['config']
    const id = isObject(cfg) ? cfg['apiserver-id'] : undefined
    return typeof id === 'string' && id !== '' ? id : AKS_SERVER_APP_ID
  }
  return undefined
}

// ---- errors -------------------------------------------------------------------------------------------

const AADSTS_HINTS: Record<string, string> = {
  '7000215': "the client secret is wrong or expired: set 'client-secret' to the secret's value (not its ID)",
  '7000222': "the client secret has expired: create a new one and update 'client-secret'",
  '700016': "no application with this 'client-id' exists in the tenant: check 'client-id' and 'tenant-id'",
  '90002': "the tenant was not found: check 'tenant-id' and 'azure-cloud'",
  '70021':
    'no federated credential of the app matches the GitHub token: add one for this repository and ref/environment',
  '700211': "no federated credential of the app has the token's issuer (https://token.actions.githubusercontent.com)",
  '700212':
    "no federated credential of the app has the token's audience: " +
    "check 'audience' (default api://AzureADTokenExchange)",
  '700213':
    "no federated credential of the app has the token's subject " +
    '(e.g. repo:<owner>/<repo>:ref:refs/heads/<branch> or :environment:<name>); subjects are case-sensitive',
  '7002138': "no federated credential of the app has the token's subject; subjects are case-sensitive",
  '700024': 'the GitHub OIDC token is outside its validity period (expired or clock skew)',
  '7000218': "set 'client-secret', or give the job 'permissions: id-token: write' for OIDC",
  '500011': "the resource is unknown in this tenant: check 'azure-cloud' / 'arm-endpoint'",
}

function entraError(
  err: unknown,
  principal: string,
  authority: string,
  scope: string,
  withSecret: boolean,
  scrub: (s: string) => string,
): Error {
  if (err instanceof AzureLoginError) return err
  const cause = causeChain(err).find((e) => e instanceof AzureLoginError)
  if (cause instanceof AzureLoginError) return cause
  const text = messageChain(err)
  const code = /AADSTS(\d+)/.exec(text)?.[1]
  const description = /AADSTS\d+:[^\r\n]*/.exec(text)?.[0]?.replace(/\s*Trace ID:.*$/, '')
  const how = withSecret ? 'client secret' : 'GitHub OIDC federated credential'
  if (code !== undefined) {
    const hint = AADSTS_HINTS[code]
    return new AzureLoginError(
      scrub(
        `Entra ID sign-in failed for ${principal} (${how}, scope ${scope}): ${description ?? `AADSTS${code}`}` +
          (hint ? ` Hint: ${hint}.` : ''),
      ),
      { code: `AADSTS${code}`, cause: err },
    )
  }
  if (/endpoints_resolution_error/.test(text)) {
    return new AzureLoginError(
      scrub(
        `Entra ID sign-in failed for ${principal}: the authority ${authority} did not serve its OpenID ` +
          "configuration (unknown tenant or unreachable host). Check 'tenant-id', 'azure-cloud' and 'authority-host'.",
      ),
      { code: 'endpoints_resolution_error', cause: err },
    )
  }
  return new AzureLoginError(
    scrub(`Entra ID sign-in failed for ${principal} (${how}, scope ${scope}): ${message(err)}`),
    { cause: err },
  )
}

function messageChain(err: unknown): string {
  return causeChain(err).map(message).join('\n')
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function describeTransient(err: unknown): string {
  if (err instanceof ArmHttpError) return `HTTP ${err.status} ${err.code}`
  const code = (
    causeChain(err).find((e) => typeof (e as { code?: unknown }).code === 'string') as { code?: string } | undefined
  )?.code
  return code ?? message(err)
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function orDefault(value: string | undefined, fallback: string): string {
  return value === undefined || value.trim() === '' ? fallback : value.trim()
}

function stringOrUndefined(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}
