// Simulated GitHub Actions OIDC token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL): GET with the job's
// request token as bearer, `&audience=` appended by @actions/core's getIDToken, answers {"value": <RS256 JWT>}.
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { nowSeconds, signJwt, type JwtClaims } from './entra.js'
import { sendJson, startHttps } from '../net/https.js'
import type { TestPki } from '../net/tls.js'

export const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com'

export interface GithubOidcOptions {
  /** `iss` of the tokens. Default https://token.actions.githubusercontent.com. */
  issuer?: string
  /** `owner/repo`. Default octo-org/octo-repo. */
  repository?: string
  /** Git ref. Default refs/heads/main. */
  ref?: string
  /** `sub` claim. Default `repo:<repository>:ref:<ref>`. */
  subject?: string
  /** Token lifetime in seconds. Default 300. */
  lifetimeSeconds?: number
}

export interface GithubOidcSim {
  /** ACTIONS_ID_TOKEN_REQUEST_URL (carries `?api-version=2.0`). */
  url: string
  /** ACTIONS_ID_TOKEN_REQUEST_TOKEN. */
  requestToken: string
  issuer: string
  subject: string
  publicKey: KeyObject
  issued: Array<{ audience: string }>
  /** Signs arbitrary claims with the issuer's key (for tests of refusals: expired, wrong audience...). */
  sign(claims: JwtClaims): string
  close(): Promise<void>
}

export async function startGithubOidc(pki: TestPki, opts: GithubOidcOptions = {}): Promise<GithubOidcSim> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const kid = randomUUID()
  const issuer = opts.issuer ?? GITHUB_ISSUER
  const repository = opts.repository ?? 'octo-org/octo-repo'
  const owner = repository.split('/')[0] ?? repository
  const ref = opts.ref ?? 'refs/heads/main'
  const subject = opts.subject ?? `repo:${repository}:ref:${ref}`
  const lifetime = opts.lifetimeSeconds ?? 300
  const requestToken = randomUUID().replaceAll('-', '')
  const path = `/_apis/distributedtask/hubs/Actions/plans/${randomUUID()}/jobs/${randomUUID()}/idtoken`
  const issued: Array<{ audience: string }> = []
  const runId = String(Math.floor(Math.random() * 1e10))

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1')
    if (url.pathname !== path) {
      sendJson(res, 404, { message: 'Not Found' })
      return
    }
    if (req.method !== 'GET') {
      sendJson(res, 405, { message: 'Method Not Allowed' })
      return
    }
    if (req.headers.authorization !== `Bearer ${requestToken}`) {
      res.writeHead(401, { 'content-type': 'text/plain' })
      res.end('Unauthorized')
      return
    }
    if (url.searchParams.get('api-version') !== '2.0') {
      sendJson(res, 400, { message: 'The api-version query parameter is required: api-version=2.0' })
      return
    }
    const audience = url.searchParams.get('audience') ?? `https://github.com/${owner}`
    const now = nowSeconds()
    const value = signJwt(
      {
        jti: randomUUID(),
        sub: subject,
        aud: audience,
        ref,
        sha: 'a'.repeat(40),
        repository,
        repository_owner: owner,
        run_id: runId,
        run_number: '1',
        run_attempt: '1',
        actor: owner,
        workflow: 'deploy',
        event_name: 'push',
        ref_type: 'branch',
        job_workflow_ref: `${repository}/.github/workflows/deploy.yml@${ref}`,
        iss: issuer,
        nbf: now - 5,
        exp: now + lifetime,
        iat: now,
      },
      privateKey,
      kid,
    )
    issued.push({ audience })
    sendJson(res, 200, { count: 1, value })
  }

  const server = await startHttps(pki, handler)
  return {
    url: `${server.url}${path}?api-version=2.0`,
    requestToken,
    issuer,
    subject,
    publicKey,
    issued,
    sign: (claims) => signJwt(claims, privateKey, kid),
    close: () => server.close(),
  }
}
