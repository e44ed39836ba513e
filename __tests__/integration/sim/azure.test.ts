// Direct tests of the GitHub OIDC, Entra ID and ARM simulations: what they accept and what they refuse.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync, randomUUID } from 'node:crypto'
import * as tls from 'node:tls'
import { load } from 'js-yaml'
import { startArm, type ArmSim } from '../../sim/azure/arm.js'
import {
  AKS_SERVER_APP_ID,
  decodeJwt,
  JWT_BEARER,
  nowSeconds,
  signJwt,
  startEntra,
  type EntraSim,
} from '../../sim/azure/entra.js'
import { startGithubOidc, type GithubOidcSim } from '../../sim/azure/github-oidc.js'
import { makePki, type TestPki } from '../../sim/net/tls.js'

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47'
const SECRET_APP = '11111111-1111-1111-1111-111111111111'
const OIDC_APP = '22222222-2222-2222-2222-222222222222'
const SECRET = 'sim~secret.value-123'
const SUB = '00000000-0000-0000-0000-0000000000aa'
const ARM_AUD = 'https://management.azure.com/'

let pki: TestPki
let gh: GithubOidcSim
let entra: EntraSim
let arm: ArmSim

async function tokenRequest(
  tenant: string,
  form: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${entra.authorityHost}/${tenant}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

const secretGrant = (scope: string, secret = SECRET): Record<string, string> => ({
  grant_type: 'client_credentials',
  client_id: SECRET_APP,
  client_secret: secret,
  scope,
})

const assertionGrant = (assertion: string, scope = `${ARM_AUD}.default`): Record<string, string> => ({
  grant_type: 'client_credentials',
  client_id: OIDC_APP,
  client_assertion_type: JWT_BEARER,
  client_assertion: assertion,
  scope,
})

async function armToken(): Promise<string> {
  const r = await tokenRequest(TENANT, secretGrant('https://management.azure.com/.default'))
  assert.equal(r.status, 200)
  return String(r.body['access_token'])
}

async function armPost(
  path: string,
  token?: string,
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${arm.url}${path}`, {
    method: 'POST',
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers }
}

const clusterPath = (rg: string, name: string, action = 'listClusterUserCredential'): string =>
  `/subscriptions/${SUB}/resourceGroups/${rg}/providers/Microsoft.ContainerService/managedClusters/${name}/${action}?api-version=2024-09-01`

before(async () => {
  pki = makePki()
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), pki.caPem])
  gh = await startGithubOidc(pki)
  entra = await startEntra(pki, {
    apps: [
      { tenantId: TENANT, clientId: SECRET_APP, clientSecret: SECRET },
      {
        tenantId: TENANT,
        clientId: OIDC_APP,
        federated: { issuer: gh.issuer, subject: gh.subject, audience: 'api://AzureADTokenExchange' },
      },
    ],
    trustedIssuers: [{ issuer: gh.issuer, publicKey: gh.publicKey }],
  })
  const common = {
    subscriptionId: SUB,
    resourceGroup: 'rg1',
    tenantId: TENANT,
    server: 'https://127.0.0.1:6443',
    caPem: pki.caPem,
    userToken: 'user-tok',
    adminToken: 'admin-tok',
  }
  arm = await startArm(pki, {
    validateToken: (t) => entra.validate(t, ARM_AUD),
    clusters: [
      { ...common, name: 'local1', kind: 'local' },
      { ...common, name: 'entra1', kind: 'entra' },
      { ...common, name: 'nolocal1', kind: 'entra-no-local' },
      { ...common, name: 'locked', kind: 'local', allow: { user: [], admin: [] } },
    ],
  })
})

after(async () => {
  await Promise.all([gh?.close(), entra?.close(), arm?.close()])
})

describe('GitHub OIDC simulation', () => {
  it('refuses requests without the job request token', async () => {
    assert.equal((await fetch(`${gh.url}&audience=x`)).status, 401)
    const wrong = await fetch(`${gh.url}&audience=x`, { headers: { authorization: 'Bearer nope' } })
    assert.equal(wrong.status, 401)
    assert.equal(gh.issued.length, 0)
  })

  it('issues a signed token for the requested audience', async () => {
    const res = await fetch(`${gh.url}&audience=${encodeURIComponent('api://AzureADTokenExchange')}`, {
      headers: { authorization: `Bearer ${gh.requestToken}` },
    })
    assert.equal(res.status, 200)
    const value = String(((await res.json()) as Record<string, unknown>)['value'])
    const jwt = decodeJwt(value)
    assert.ok(jwt)
    assert.equal(jwt.claims['aud'], 'api://AzureADTokenExchange')
    assert.equal(jwt.claims['iss'], 'https://token.actions.githubusercontent.com')
    assert.equal(jwt.claims['sub'], 'repo:octo-org/octo-repo:ref:refs/heads/main')
    assert.ok(Number(jwt.claims['exp']) > nowSeconds())
    assert.deepEqual(gh.issued.at(-1), { audience: 'api://AzureADTokenExchange' })
  })
})

describe('Entra ID simulation', () => {
  it('serves the OpenID configuration MSAL reads, and AADSTS90002 for an unknown tenant', async () => {
    const res = await fetch(`${entra.authorityHost}/${TENANT}/v2.0/.well-known/openid-configuration`)
    const cfg = (await res.json()) as Record<string, unknown>
    assert.equal(cfg['token_endpoint'], `${entra.authorityHost}/${TENANT}/oauth2/v2.0/token`)
    assert.equal(cfg['issuer'], `${entra.authorityHost}/${TENANT}/v2.0`)
    const bad = await fetch(`${entra.authorityHost}/nope/v2.0/.well-known/openid-configuration`)
    assert.equal(bad.status, 400)
    assert.deepEqual(((await bad.json()) as Record<string, unknown>)['error_codes'], [90002])
  })

  it('issues tokens whose audience follows the scope', async () => {
    const armTok = await tokenRequest(TENANT, secretGrant('https://management.azure.com/.default'))
    assert.equal(armTok.status, 200)
    assert.equal(armTok.body['token_type'], 'Bearer')
    const aks = await tokenRequest(TENANT, secretGrant(`${AKS_SERVER_APP_ID}/.default`))
    assert.ok(entra.validate(String(armTok.body['access_token']), ARM_AUD))
    assert.equal(entra.validate(String(armTok.body['access_token']), AKS_SERVER_APP_ID), undefined)
    assert.equal(entra.validate(String(aks.body['access_token']), AKS_SERVER_APP_ID)?.['appid'], SECRET_APP)
    const gov = await tokenRequest(TENANT, secretGrant('https://management.usgovcloudapi.net//.default'))
    assert.equal(decodeJwt(String(gov.body['access_token']))?.claims['aud'], 'https://management.usgovcloudapi.net/')
    assert.deepEqual(entra.issued.at(-1), { ...entra.issued.at(-1), clientId: SECRET_APP, grant: 'client_secret' })
    assert.ok(!JSON.stringify(entra.issued).includes(SECRET), 'the issued log never holds the secret')
  })

  it('refuses a wrong secret with AADSTS7000215 and an unknown scope with AADSTS500011', async () => {
    const r = await tokenRequest(TENANT, secretGrant('https://management.azure.com/.default', 'wrong'))
    assert.equal(r.status, 401)
    assert.equal(r.body['error'], 'invalid_client')
    assert.match(String(r.body['error_description']), /^AADSTS7000215: Invalid client secret provided\./)
    assert.deepEqual(r.body['error_codes'], [7000215])
    for (const k of ['timestamp', 'trace_id', 'correlation_id']) assert.equal(typeof r.body[k], 'string')
    const s = await tokenRequest(TENANT, secretGrant('https://managment.azure.com/.default'))
    assert.equal(s.status, 400)
    assert.deepEqual(s.body['error_codes'], [500011])
    const app = await tokenRequest(TENANT, {
      ...secretGrant('https://management.azure.com/.default'),
      client_id: randomUUID(),
    })
    assert.deepEqual(app.body['error_codes'], [700016])
  })

  it('accepts a valid GitHub assertion and refuses bad audience, subject, expiry and signature', async () => {
    const now = nowSeconds()
    const claims = {
      iss: gh.issuer,
      sub: gh.subject,
      aud: 'api://AzureADTokenExchange',
      iat: now,
      nbf: now,
      exp: now + 300,
    }
    const ok = await tokenRequest(TENANT, assertionGrant(gh.sign(claims)))
    assert.equal(ok.status, 200)
    assert.equal(entra.validate(String(ok.body['access_token']), ARM_AUD)?.['appid'], OIDC_APP)

    const cases: Array<[Record<string, unknown>, number]> = [
      [{ ...claims, aud: 'https://github.com/octo-org' }, 700212],
      [{ ...claims, sub: 'repo:octo-org/octo-repo:ref:refs/heads/feature' }, 700213],
      [{ ...claims, exp: now - 60, iat: now - 400, nbf: now - 400 }, 700024],
      [{ ...claims, iss: 'https://evil.example.com' }, 700211],
    ]
    for (const [c, code] of cases) {
      const r = await tokenRequest(TENANT, assertionGrant(gh.sign(c)))
      assert.equal(r.status, 401, `code ${code}`)
      assert.deepEqual(r.body['error_codes'], [code])
    }
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    const forged = await tokenRequest(TENANT, assertionGrant(signJwt(claims, other, 'k')))
    assert.equal(forged.status, 401)
    assert.deepEqual(forged.body['error_codes'], [700027])
    const garbage = await tokenRequest(TENANT, assertionGrant('not-a-jwt'))
    assert.deepEqual(garbage.body['error_codes'], [50027])
    const none = await tokenRequest(TENANT, {
      grant_type: 'client_credentials',
      client_id: OIDC_APP,
      scope: `${ARM_AUD}.default`,
    })
    assert.deepEqual(none.body['error_codes'], [7000218])
  })

  it('honours the configured lifetime; validate() refuses expired tokens', async () => {
    entra.setTokenLifetime(0)
    try {
      const r = await tokenRequest(TENANT, secretGrant('https://management.azure.com/.default'))
      assert.equal(r.body['expires_in'], 0)
      assert.equal(entra.validate(String(r.body['access_token']), ARM_AUD), undefined)
    } finally {
      entra.setTokenLifetime(3599)
    }
  })
})

describe('ARM simulation', () => {
  it('refuses missing, malformed and wrong-audience bearer tokens', async () => {
    const none = await armPost(clusterPath('rg1', 'local1'))
    assert.equal(none.status, 401)
    assert.deepEqual(none.body['error'], {
      code: 'AuthenticationFailed',
      message: "Authentication failed. The 'Authorization' header is missing.",
    })
    const bad = await armPost(clusterPath('rg1', 'local1'), 'garbage')
    assert.equal(bad.status, 401)
    assert.equal((bad.body['error'] as Record<string, unknown>)['code'], 'InvalidAuthenticationToken')
    const aks = await tokenRequest(TENANT, secretGrant(`${AKS_SERVER_APP_ID}/.default`))
    const wrongAud = await armPost(clusterPath('rg1', 'local1'), String(aks.body['access_token']))
    assert.equal(wrongAud.status, 401)
  })

  it('answers 404 for unknown cluster, resource group and subscription', async () => {
    const t = await armToken()
    const c = await armPost(clusterPath('rg1', 'nope'), t)
    assert.equal(c.status, 404)
    assert.deepEqual(c.body['error'], {
      code: 'ResourceNotFound',
      message:
        "The Resource 'Microsoft.ContainerService/managedClusters/nope' under resource group 'rg1' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    })
    assert.equal(
      ((await armPost(clusterPath('rg2', 'local1'), t)).body['error'] as Record<string, unknown>)['code'],
      'ResourceGroupNotFound',
    )
    const sub = await armPost(clusterPath('rg1', 'local1').replace(SUB, randomUUID()), t)
    assert.equal((sub.body['error'] as Record<string, unknown>)['code'], 'SubscriptionNotFound')
  })

  it('returns static-token kubeconfigs for local clusters and kubelogin exec for Entra clusters', async () => {
    const t = await armToken()
    const local = await armPost(clusterPath('rg1', 'local1'), t)
    assert.equal(local.status, 200)
    const kc = (local.body['kubeconfigs'] as Array<{ name: string; value: string }>)[0]
    assert.equal(kc?.name, 'clusterUser')
    const doc = load(Buffer.from(kc?.value ?? '', 'base64').toString()) as {
      users: Array<{ name: string; user: Record<string, unknown> }>
      clusters: Array<{ cluster: Record<string, string> }>
    }
    assert.deepEqual(doc.users[0], { name: 'clusterUser_rg1_local1', user: { token: 'user-tok' } })
    assert.equal(
      Buffer.from(doc.clusters[0]?.cluster['certificate-authority-data'] ?? '', 'base64').toString(),
      pki.caPem,
    )

    const entraUser = await armPost(clusterPath('rg1', 'entra1'), t)
    const ev = (entraUser.body['kubeconfigs'] as Array<{ value: string }>)[0]?.value ?? ''
    const exec = (
      load(Buffer.from(ev, 'base64').toString()) as {
        users: Array<{ user: { exec: { command: string; args: string[]; apiVersion: string } } }>
      }
    ).users[0]?.user.exec
    assert.equal(exec?.command, 'kubelogin')
    assert.equal(exec?.apiVersion, 'client.authentication.k8s.io/v1beta1')
    assert.deepEqual(exec?.args, [
      'get-token',
      '--environment',
      'AzurePublicCloud',
      '--server-id',
      AKS_SERVER_APP_ID,
      '--client-id',
      '80faf920-1908-4b52-b5ef-a8e7bedfc67a',
      '--tenant-id',
      TENANT,
      '--login',
      'devicecode',
    ])

    const entraAdmin = await armPost(clusterPath('rg1', 'entra1', 'listClusterAdminCredential'), t)
    assert.equal((entraAdmin.body['kubeconfigs'] as Array<{ name: string }>)[0]?.name, 'clusterAdmin')
    const noLocal = await armPost(clusterPath('rg1', 'nolocal1', 'listClusterAdminCredential'), t)
    assert.equal(noLocal.status, 400)
    assert.equal(
      noLocal.body['message'],
      'Getting static credential is not allowed because this cluster is set to disable local accounts.',
    )
  })

  it('enforces Azure RBAC when a cluster lists allowed principals', async () => {
    const r = await armPost(clusterPath('rg1', 'locked'), await armToken())
    assert.equal(r.status, 403)
    assert.match(
      String((r.body['error'] as Record<string, unknown>)['message']),
      /does not have authorization to perform action 'Microsoft.ContainerService\/managedClusters\/listClusterUserCredential\/action'/,
    )
  })

  it('injects faults a bounded number of times, with Retry-After', async () => {
    const t = await armToken()
    arm.injectFault({ status: 429, times: 2, retryAfterSeconds: 7 })
    const first = await armPost(clusterPath('rg1', 'local1'), t)
    assert.equal(first.status, 429)
    assert.equal(first.headers.get('retry-after'), '7')
    assert.equal((await armPost(clusterPath('rg1', 'local1'), t)).status, 429)
    assert.equal((await armPost(clusterPath('rg1', 'local1'), t)).status, 200)
    arm.injectFault({ status: 'reset', times: 1 })
    await assert.rejects(armPost(clusterPath('rg1', 'local1'), t))
    assert.equal(arm.calls.at(-1)?.status, 'reset')
  })
})
