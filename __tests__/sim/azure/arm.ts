// Simulated Azure Resource Manager, limited to the AKS credential actions:
//   POST /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}/listClusterUserCredential
//   POST .../listClusterAdminCredential
// Bearer tokens are checked by a callback (the Entra simulation), errors use ARM's {error:{code,message}} bodies.
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { dump } from 'js-yaml'
import { AKS_SERVER_APP_ID, type JwtClaims } from './entra.js'
import { sendJson, startHttps } from '../net/https.js'
import type { TestPki } from '../net/tls.js'

/** AKS's public client app that kubelogin uses for interactive logins. */
export const AKS_CLIENT_APP_ID = '80faf920-1908-4b52-b5ef-a8e7bedfc67a'

/**
 * `local`: Kubernetes RBAC, static tokens for user and admin.
 * `entra`: Entra ID integrated; the user kubeconfig needs kubelogin, admin still static.
 * `entra-no-local`: Entra ID integrated with local accounts disabled: no admin credential.
 */
export type SimClusterKind = 'local' | 'entra' | 'entra-no-local'

export interface SimCluster {
  subscriptionId: string
  resourceGroup: string
  name: string
  /** Tenant that owns the subscription; tokens of other tenants are refused. */
  tenantId: string
  kind: SimClusterKind
  /** Kubernetes API server URL and its CA (PEM). */
  server: string
  caPem: string
  /** Static tokens put in the local-account kubeconfigs. */
  userToken: string
  adminToken: string
  /** Azure RBAC: client ids (`appid`) allowed each action; omitted = any authenticated principal. Admin implies user. */
  allow?: { user?: string[]; admin?: string[] }
}

export interface ArmFault {
  /** HTTP status to answer, or 'reset' to drop the connection. */
  status: number | 'reset'
  times: number
  retryAfterSeconds?: number
}

export interface ArmCall {
  method: string
  path: string
  action: 'listClusterUserCredential' | 'listClusterAdminCredential' | 'other'
  status: number | 'reset'
  /** `appid` of the caller's token when it was valid. */
  clientId?: string
}

export interface ArmOptions {
  /** Claims of a valid ARM access token, else undefined (e.g. `(t) => entra.validate(t, 'https://management.azure.com/')`). */
  validateToken: (token: string) => JwtClaims | undefined
  clusters?: SimCluster[]
  /** kubelogin `--environment` in exec kubeconfigs. Default AzurePublicCloud. */
  environment?: string
}

export interface ArmSim {
  url: string
  /** Live list: tests may push/modify clusters. */
  clusters: SimCluster[]
  calls: ArmCall[]
  injectFault(fault: ArmFault): void
  /** Drops the faults not yet used up. */
  clearFaults(): void
  close(): Promise<void>
}

const PATH =
  /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.containerservice\/managedclusters\/([^/]+)\/(listclusterusercredential|listclusteradmincredential)$/i

export async function startArm(pki: TestPki, opts: ArmOptions): Promise<ArmSim> {
  const clusters = opts.clusters ?? []
  const calls: ArmCall[] = []
  const faults: ArmFault[] = []
  const environment = opts.environment ?? 'AzurePublicCloud'

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1')
    const m = PATH.exec(url.pathname)
    const action: ArmCall['action'] = !m
      ? 'other'
      : m[4]?.toLowerCase() === 'listclusteradmincredential'
        ? 'listClusterAdminCredential'
        : 'listClusterUserCredential'
    const call: ArmCall = { method: req.method ?? '', path: url.pathname, action, status: 0 }
    calls.push(call)
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      call.status = status
      const requestId = randomUUID()
      sendJson(res, status, body, {
        'x-ms-request-id': requestId,
        'x-ms-correlation-request-id': requestId,
        ...headers,
      })
    }
    const error = (status: number, code: string, message: string, headers: Record<string, string> = {}): void =>
      reply(status, { error: { code, message } }, headers)

    const fault = faults[0]
    if (fault) {
      if (--fault.times <= 0) faults.shift()
      if (fault.status === 'reset') {
        call.status = 'reset'
        req.socket.destroy()
        return
      }
      const headers: Record<string, string> =
        fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {}
      if (fault.status === 429) {
        error(
          429,
          'SubscriptionRequestsThrottled',
          `Number of 'write' requests for subscription actor exceeded. Please try again after ` +
            `'${fault.retryAfterSeconds ?? 5}' seconds after additional tip: The throttling is per subscription.`,
          headers,
        )
      } else {
        error(
          fault.status,
          fault.status === 503 ? 'ServiceUnavailable' : 'InternalServerError',
          'The server is currently unable to handle the request. Please retry the request later.',
          headers,
        )
      }
      return
    }

    const auth = req.headers.authorization
    if (auth === undefined) {
      error(401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing.", {
        'www-authenticate':
          'Bearer authorization_uri="https://login.windows.net/", error="invalid_token", error_description="The authentication failed because of missing \'Authorization\' header."',
      })
      return
    }
    const bearer = /^Bearer (\S+)$/i.exec(auth)
    if (!bearer) {
      error(
        401,
        'AuthenticationFailed',
        "Authentication failed. The 'Authorization' header is provided in an invalid format.",
      )
      return
    }
    const claims = opts.validateToken(bearer[1] ?? '')
    if (!claims) {
      error(401, 'InvalidAuthenticationToken', 'The access token is invalid.', {
        'www-authenticate':
          'Bearer authorization_uri="https://login.windows.net/", error="invalid_token", error_description="The access token is invalid."',
      })
      return
    }
    const clientId = String(claims['appid'] ?? '')
    call.clientId = clientId
    if (!m) {
      error(
        404,
        'InvalidResourceType',
        `The resource type could not be found in the namespace for path '${url.pathname}'.`,
      )
      return
    }
    if (req.method !== 'POST') {
      error(405, 'MethodNotAllowed', `The requested method '${req.method ?? ''}' is not allowed for '${action}'.`)
      return
    }
    const apiVersion = url.searchParams.get('api-version')
    if (apiVersion === null) {
      error(
        400,
        'MissingApiVersionParameter',
        'The api-version query parameter (?api-version=) is required for all requests.',
      )
      return
    }
    if (!/^\d{4}-\d{2}-\d{2}(-preview)?$/.test(apiVersion)) {
      error(
        400,
        'InvalidApiVersionParameter',
        `The api-version '${apiVersion}' is invalid. The supported versions are '2024-09-01,2024-05-01,2023-08-01'.`,
      )
      return
    }
    const [sub, rg, name] = [
      decodeURIComponent(m[1] ?? ''),
      decodeURIComponent(m[2] ?? ''),
      decodeURIComponent(m[3] ?? ''),
    ]
    const eq = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()
    const inSub = clusters.filter((c) => eq(c.subscriptionId, sub))
    const first = inSub[0]
    if (!first) {
      error(404, 'SubscriptionNotFound', `The subscription '${sub}' could not be found.`)
      return
    }
    if (claims['tid'] !== first.tenantId) {
      error(
        401,
        'InvalidAuthenticationTokenTenant',
        `The access token is from the wrong issuer '${String(claims['iss'])}'. It must match ` +
          `the tenant 'https://sts.windows.net/${first.tenantId}/' associated with this subscription. Please use the authority (URL) ` +
          `'https://login.windows.net/${first.tenantId}' to get the token.`,
      )
      return
    }
    const inRg = inSub.filter((c) => eq(c.resourceGroup, rg))
    if (inRg.length === 0) {
      error(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`)
      return
    }
    const cluster = inRg.find((c) => eq(c.name, name))
    if (!cluster) {
      error(
        404,
        'ResourceNotFound',
        `The Resource 'Microsoft.ContainerService/managedClusters/${name}' under resource group '${rg}' ` +
          'was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix',
      )
      return
    }
    const admin = action === 'listClusterAdminCredential'
    if (cluster.allow) {
      const allowed = admin
        ? (cluster.allow.admin ?? [])
        : [...(cluster.allow.user ?? []), ...(cluster.allow.admin ?? [])]
      if (!allowed.includes(clientId)) {
        const oid = String(claims['oid'] ?? '')
        const scope = `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.ContainerService/managedClusters/${name}`
        error(
          403,
          'AuthorizationFailed',
          `The client '${oid}' with object id '${oid}' does not have authorization to perform action ` +
            `'Microsoft.ContainerService/managedClusters/${action}/action' over scope '${scope}' or the scope is invalid. ` +
            'If access was recently granted, please refresh your credentials.',
        )
        return
      }
    }
    if (admin && cluster.kind === 'entra-no-local') {
      reply(400, {
        code: 'BadRequest',
        details: null,
        message: 'Getting static credential is not allowed because this cluster is set to disable local accounts.',
        subcode: '',
      })
      return
    }
    const kubeconfig = admin
      ? kubeconfigYaml(cluster, 'admin', environment)
      : kubeconfigYaml(cluster, 'user', environment)
    reply(200, {
      kubeconfigs: [
        { name: admin ? 'clusterAdmin' : 'clusterUser', value: Buffer.from(kubeconfig).toString('base64') },
      ],
    })
  }

  const server = await startHttps(pki, handler)
  return {
    url: server.url,
    clusters,
    calls,
    injectFault(fault: ArmFault): void {
      if (fault.times > 0) faults.push({ ...fault })
    },
    clearFaults(): void {
      faults.length = 0
    },
    close: () => server.close(),
  }
}

/** The kubeconfig AKS returns, laid out as AKS lays it out. */
export function kubeconfigYaml(c: SimCluster, who: 'user' | 'admin', environment = 'AzurePublicCloud'): string {
  const userName = `${who === 'admin' ? 'clusterAdmin' : 'clusterUser'}_${c.resourceGroup}_${c.name}`
  const contextName = who === 'admin' ? `${c.name}-admin` : c.name
  const user =
    who === 'user' && c.kind !== 'local'
      ? {
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1beta1',
            args: [
              'get-token',
              '--environment',
              environment,
              '--server-id',
              AKS_SERVER_APP_ID,
              '--client-id',
              AKS_CLIENT_APP_ID,
              '--tenant-id',
              c.tenantId,
              '--login',
              'devicecode',
            ],
            command: 'kubelogin',
            env: null,
            installHint:
              '\nkubelogin is not installed which is required to connect to AAD enabled cluster.\n\n' +
              'To learn more, please go to https://aka.ms/aks/kubelogin\n',
            provideClusterInfo: false,
          },
        }
      : { token: who === 'admin' ? c.adminToken : c.userToken }
  return dump(
    {
      apiVersion: 'v1',
      clusters: [
        {
          cluster: { 'certificate-authority-data': Buffer.from(c.caPem).toString('base64'), server: c.server },
          name: c.name,
        },
      ],
      contexts: [{ context: { cluster: c.name, user: userName }, name: contextName }],
      'current-context': contextName,
      kind: 'Config',
      preferences: {},
      users: [{ name: userName, user }],
    },
    { lineWidth: -1 },
  )
}
