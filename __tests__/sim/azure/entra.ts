// Simulated Microsoft Entra ID token service: enough of the v2.0 endpoints for MSAL (as used by
// @azure/identity 4 with `disableInstanceDiscovery: true`) to run the client credentials grant with a
// client secret or a federated client assertion (GitHub OIDC). Errors carry real AADSTS bodies.
import {
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  sign,
  timingSafeEqual,
  verify,
  type KeyObject,
} from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { sendJson, startHttps } from '../net/https.js'
import type { TestPki } from '../net/tls.js'

// ---- JWT (RS256) helpers shared by the identity simulations ----------------------------------------

export type JwtClaims = Record<string, unknown>

export interface DecodedJwt {
  header: JwtClaims
  claims: JwtClaims
  signingInput: string
  signature: Buffer
}

const b64url = (v: Buffer | string): string => Buffer.from(v).toString('base64url')

export function signJwt(claims: JwtClaims, key: KeyObject, kid: string): string {
  const input = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', kid }))}.${b64url(JSON.stringify(claims))}`
  return `${input}.${b64url(sign('sha256', Buffer.from(input), key))}`
}

/** Splits and parses a compact JWT; undefined when it is not one. Does not check the signature. */
export function decodeJwt(token: string): DecodedJwt | undefined {
  const parts = token.split('.')
  if (parts.length !== 3) return undefined
  const [h, c, s] = parts as [string, string, string]
  try {
    const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as unknown
    const claims = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown
    if (!isRecord(header) || !isRecord(claims)) return undefined
    return { header, claims, signingInput: `${h}.${c}`, signature: Buffer.from(s, 'base64url') }
  } catch {
    return undefined
  }
}

export function verifyJwtSignature(jwt: DecodedJwt, key: KeyObject): boolean {
  return jwt.header['alg'] === 'RS256' && verify('sha256', Buffer.from(jwt.signingInput), key, jwt.signature)
}

function isRecord(v: unknown): v is JwtClaims {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000)

// ---- Entra simulation -------------------------------------------------------------------------------

export const AKS_SERVER_APP_ID = '6dae42f8-4368-4678-94ff-3960e28e3630'
export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

export interface FederatedCredential {
  issuer: string
  /** Exact subject, e.g. `repo:octo-org/octo-repo:ref:refs/heads/main`; omitted = any subject. */
  subject?: string
  audience: string
}

export interface EntraApp {
  tenantId: string
  clientId: string
  clientSecret?: string
  federated?: FederatedCredential | FederatedCredential[]
  /** Object id of the service principal (`oid` claim); generated when omitted. */
  objectId?: string
}

export interface TrustedIssuer {
  issuer: string
  publicKey: KeyObject
}

export interface EntraOptions {
  apps: EntraApp[]
  /** Issuers whose tokens federated credentials accept (Entra would fetch their JWKS). */
  trustedIssuers?: TrustedIssuer[]
  /** Resources (token audiences) known to every tenant. Default: the three ARM audiences and the AKS server app. */
  resources?: string[]
  /** Access token lifetime in seconds (expires_in). Default 3599. */
  tokenLifetimeSeconds?: number
}

export interface IssuedToken {
  tenantId: string
  clientId: string
  scope: string
  audience: string
  grant: 'client_secret' | 'client_assertion'
  expiresOn: number
}

export interface EntraError {
  status: number
  error: string
  code: number
}

export interface EntraSim {
  /** Base URL to give as `authorityHost` (authority = `<authorityHost>/<tenant>`). */
  authorityHost: string
  /** Claims of an access token this service issued for `expectedAudience`, or undefined (bad signature, expired, other audience). */
  validate(token: string, expectedAudience: string): JwtClaims | undefined
  issued: IssuedToken[]
  /** Token requests refused, with their AADSTS code. */
  refused: EntraError[]
  setTokenLifetime(seconds: number): void
  publicKey: KeyObject
  close(): Promise<void>
}

/** Audiences of Azure Monitor workspace query endpoints: the token scope is `<audience>/.default`. */
export const AZURE_MONITOR_PROMETHEUS_AUDIENCES = [
  'https://prometheus.monitor.azure.com',
  'https://prometheus.monitor.azure.us',
  'https://prometheus.monitor.azure.cn',
]

export const DEFAULT_RESOURCES = [
  'https://management.azure.com/',
  'https://management.usgovcloudapi.net/',
  'https://management.chinacloudapi.cn/',
  AKS_SERVER_APP_ID,
  // Azure Monitor managed Prometheus query audiences (public, US Government, China), as KEDA's azure
  // managed-prometheus scaler and Grafana's Azure settings map them (prometheusResourceId per cloud).
  ...AZURE_MONITOR_PROMETHEUS_AUDIENCES,
]

const FIC_DOC = 'https://learn.microsoft.com/entra/workload-id/workload-identity-federation'

export async function startEntra(pki: TestPki, opts: EntraOptions): Promise<EntraSim> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const kid = randomUUID()
  const apps = opts.apps.map((a) => ({ ...a, objectId: a.objectId ?? randomUUID() }))
  const tenants = new Set(apps.map((a) => a.tenantId))
  const resources = opts.resources ?? DEFAULT_RESOURCES
  let lifetime = opts.tokenLifetimeSeconds ?? 3599
  const issued: IssuedToken[] = []
  const refused: EntraError[] = []
  let base = ''

  const fail = (res: ServerResponse, status: number, error: string, code: number, description: string): void => {
    refused.push({ status, error, code })
    const traceId = randomUUID()
    const correlationId = randomUUID()
    const timestamp = new Date()
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, 'Z')
    sendJson(res, status, {
      error,
      error_description: `AADSTS${code}: ${description}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `${base}/error?code=${code}`,
    })
  }

  const tenantNotFound = (res: ServerResponse, tenant: string): void =>
    fail(
      res,
      400,
      'invalid_request',
      90002,
      `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are ` +
        'signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.',
    )

  const openIdConfiguration = (tenant: string): JwtClaims => {
    const t = `${base}/${tenant}`
    return {
      token_endpoint: `${t}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/${tenant}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${t}/v2.0`,
      request_uri_parameter_supported: false,
      authorization_endpoint: `${t}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${t}/oauth2/v2.0/devicecode`,
      end_session_endpoint: `${t}/oauth2/v2.0/logout`,
      tenant_region_scope: 'NA',
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
    }
  }

  /** Maps `<resource>/.default` to the registered audience, or undefined for an unknown resource. */
  const audienceFor = (scope: string): string | undefined => {
    const resource = scope.slice(0, -'/.default'.length).replace(/\/+$/, '')
    return resources.find((r) => r.replace(/\/+$/, '').toLowerCase() === resource.toLowerCase())
  }

  const checkAssertion = (res: ServerResponse, app: (typeof apps)[number], assertion: string): boolean => {
    const jwt = decodeJwt(assertion)
    if (!jwt) {
      fail(res, 400, 'invalid_request', 50027, 'JWT token is invalid or malformed.')
      return false
    }
    const c = jwt.claims
    const iss = String(c['iss'] ?? '')
    const sub = String(c['sub'] ?? '')
    const auds = Array.isArray(c['aud']) ? c['aud'].map(String) : [String(c['aud'] ?? '')]
    const records = app.federated === undefined ? [] : Array.isArray(app.federated) ? app.federated : [app.federated]
    if (records.length === 0) {
      fail(
        res,
        400,
        'invalid_request',
        70021,
        `No matching federated identity record found for presented assertion. Assertion Issuer: ` +
          `'${iss}'. Assertion Subject: '${sub}'. Assertion Audience: '${auds.join(',')}'. ${FIC_DOC}`,
      )
      return false
    }
    const byIssuer = records.filter((r) => r.issuer === iss)
    if (byIssuer.length === 0) {
      fail(
        res,
        401,
        'invalid_client',
        700211,
        `No matching federated identity record found for presented assertion issuer '${iss}'. ` +
          `Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. ${FIC_DOC}`,
      )
      return false
    }
    const trusted = opts.trustedIssuers?.find((t) => t.issuer === iss)
    if (!trusted || !verifyJwtSignature(jwt, trusted.publicKey)) {
      fail(res, 401, 'invalid_client', 700027, 'Client assertion failed signature validation.')
      return false
    }
    const now = nowSeconds()
    const exp = Number(c['exp'])
    const nbf = Number(c['nbf'] ?? c['iat'] ?? 0)
    if (!Number.isFinite(exp) || exp <= now || nbf > now + 300) {
      const iso = (s: number): string => (Number.isFinite(s) ? new Date(s * 1000).toISOString() : 'unknown')
      fail(
        res,
        401,
        'invalid_client',
        700024,
        `Client assertion is not within its valid time range. Current time: ${iso(now)}, ` +
          `assertion valid from ${iso(nbf)}, expiry time of assertion ${iso(exp)}. Review the documentation at ` +
          'https://learn.microsoft.com/entra/identity-platform/certificate-credentials .',
      )
      return false
    }
    const byAudience = byIssuer.filter((r) => auds.includes(r.audience))
    if (byAudience.length === 0) {
      fail(
        res,
        401,
        'invalid_client',
        700212,
        `No matching federated identity record found for presented assertion audience ` +
          `'${auds.join(',')}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. ${FIC_DOC}`,
      )
      return false
    }
    if (!byAudience.some((r) => r.subject === undefined || r.subject === sub)) {
      fail(
        res,
        401,
        'invalid_client',
        700213,
        `No matching federated identity record found for presented assertion subject '${sub}'. ` +
          `Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. ${FIC_DOC}`,
      )
      return false
    }
    return true
  }

  const token = (res: ServerResponse, tenant: string, form: URLSearchParams): void => {
    const grantType = form.get('grant_type')
    if (grantType !== 'client_credentials') {
      fail(
        res,
        400,
        'unsupported_grant_type',
        70003,
        `The app requested an unsupported grant type '${grantType ?? ''}'.`,
      )
      return
    }
    const clientId = form.get('client_id') ?? ''
    const app = apps.find((a) => a.tenantId === tenant && a.clientId === clientId)
    if (!app) {
      fail(
        res,
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory ` +
          `'${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to ` +
          'by any user in the tenant. You may have sent your authentication request to the wrong tenant.',
      )
      return
    }
    const scopes = (form.get('scope') ?? '')
      .split(' ')
      .filter((s) => s !== '' && !['openid', 'profile', 'offline_access'].includes(s))
    const scope = scopes[0]
    if (scope === undefined) {
      fail(
        res,
        400,
        'invalid_request',
        90014,
        "The required field 'scope' is missing from the credential. Ensure that you have all the necessary parameters for the login request.",
      )
      return
    }
    if (!scope.endsWith('/.default') || scopes.length > 1) {
      fail(
        res,
        400,
        'invalid_scope',
        1002012,
        `The provided value for scope ${scopes.join(' ')} is not valid. Client credential flows ` +
          'must have a scope value with /.default suffixed to the resource identifier (application ID URI).',
      )
      return
    }
    const secret = form.get('client_secret')
    const assertion = form.get('client_assertion')
    let grant: IssuedToken['grant']
    if (secret !== null) {
      const ok =
        app.clientSecret !== undefined &&
        secret.length === app.clientSecret.length &&
        timingSafeEqual(Buffer.from(secret), Buffer.from(app.clientSecret))
      if (!ok) {
        fail(
          res,
          401,
          'invalid_client',
          7000215,
          'Invalid client secret provided. Ensure the secret being sent in the request is the ' +
            `client secret value, not the client secret ID, for a secret added to app '${app.clientId}'.`,
        )
        return
      }
      grant = 'client_secret'
    } else if (assertion !== null) {
      if (form.get('client_assertion_type') !== JWT_BEARER) {
        fail(res, 400, 'invalid_request', 50027, 'JWT token is invalid or malformed.')
        return
      }
      if (!checkAssertion(res, app, assertion)) return
      grant = 'client_assertion'
    } else {
      fail(
        res,
        401,
        'invalid_client',
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      )
      return
    }
    const audience = audienceFor(scope)
    if (audience === undefined) {
      fail(
        res,
        400,
        'invalid_resource',
        500011,
        `The resource principal named ${scope.slice(0, -'/.default'.length)} was not found in the ` +
          `tenant named ${tenant}. This can happen if the application has not been installed by the administrator of the tenant or ` +
          'consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.',
      )
      return
    }
    const now = nowSeconds()
    const sts = `https://sts.windows.net/${tenant}/`
    const accessToken = signJwt(
      {
        aud: audience,
        iss: sts,
        iat: now,
        nbf: now,
        exp: now + lifetime,
        aio: randomUUID(),
        appid: app.clientId,
        appidacr: grant === 'client_secret' ? '1' : '2',
        idp: sts,
        idtyp: 'app',
        oid: app.objectId,
        rh: randomUUID(),
        sub: app.objectId,
        tid: tenant,
        uti: randomUUID(),
        ver: '1.0',
      },
      privateKey,
      kid,
    )
    issued.push({ tenantId: tenant, clientId: app.clientId, scope, audience, grant, expiresOn: now + lifetime })
    sendJson(res, 200, {
      token_type: 'Bearer',
      expires_in: lifetime,
      ext_expires_in: lifetime,
      access_token: accessToken,
    })
  }

  const handler = (req: IncomingMessage, res: ServerResponse, body: Buffer): void => {
    const url = new URL(req.url ?? '/', base)
    const m =
      /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token|discovery\/v2\.0\/keys)$/.exec(
        url.pathname,
      )
    if (!m) {
      sendJson(res, 404, { error: 'not_found', error_description: `No such endpoint: ${url.pathname}` })
      return
    }
    const tenant = decodeURIComponent(m[1] ?? '')
    const endpoint = m[2]
    if (!tenants.has(tenant)) {
      tenantNotFound(res, tenant)
      return
    }
    if (endpoint === 'oauth2/v2.0/token') {
      if (req.method !== 'POST') {
        fail(res, 400, 'invalid_request', 900561, 'The endpoint only accepts POST requests. Received a GET request.')
        return
      }
      token(res, tenant, new URLSearchParams(body.toString('utf8')))
      return
    }
    if (endpoint === 'discovery/v2.0/keys') {
      sendJson(res, 200, { keys: [{ kty: 'RSA', use: 'sig', kid, ...publicKeyJwk(publicKey) }] })
      return
    }
    sendJson(res, 200, openIdConfiguration(tenant))
  }

  const server = await startHttps(pki, handler)
  base = server.url

  return {
    authorityHost: server.url,
    validate(tokenText: string, expectedAudience: string): JwtClaims | undefined {
      const jwt = decodeJwt(tokenText)
      if (!jwt || jwt.header['kid'] !== kid || !verifyJwtSignature(jwt, publicKey)) return undefined
      const c = jwt.claims
      const now = nowSeconds()
      if (typeof c['exp'] !== 'number' || c['exp'] <= now) return undefined
      if (typeof c['nbf'] === 'number' && c['nbf'] > now + 300) return undefined
      if (c['aud'] !== expectedAudience) return undefined
      return c
    },
    issued,
    refused,
    setTokenLifetime(seconds: number): void {
      lifetime = seconds
    },
    publicKey,
    close: () => server.close(),
  }
}

function publicKeyJwk(key: KeyObject): JwtClaims {
  const jwk = createPublicKey(key).export({ format: 'jwk' })
  return { n: jwk.n, e: jwk.e }
}
