// loginToAks against the GitHub OIDC, Entra ID and ARM simulations, with the real @azure/identity (MSAL).
import { after, before, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import * as tls from 'node:tls'
import * as core from '@actions/core'
import { load } from 'js-yaml'
import { startArm, type ArmSim, type SimCluster } from '../sim/azure/arm.js'
import { AKS_SERVER_APP_ID, startEntra, type EntraSim } from '../sim/azure/entra.js'
import { startGithubOidc, type GithubOidcSim } from '../sim/azure/github-oidc.js'
import { makePki, type TestPki } from '../sim/net/tls.js'
import { AKS_SCOPE, AZURE_CLOUDS, getAzureCloud, isAzureCloudName } from '../../src/azure/clouds.js'
import { AzureLoginError, loginToAks, type AksLoginOptions } from '../../src/azure/login.js'

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47'
const SECRET_APP = '11111111-1111-1111-1111-111111111111'
const OIDC_APP = '22222222-2222-2222-2222-222222222222'
const SECRET = 'sim~secret.value-123'
const SUB = '00000000-0000-0000-0000-0000000000aa'
const ARM_AUD = 'https://management.azure.com/'

interface Kubeconfig {
  users: Array<{ name: string; user: Record<string, unknown> }>
  clusters: Array<{ name: string; cluster: Record<string, string> }>
  'current-context': string
}

let pki: TestPki
let gh: GithubOidcSim
let ghShort: GithubOidcSim
let entra: EntraSim
let arm: ArmSim
let masked: string[]
let logs: string[]
let sleeps: number[]

function opts(over: Partial<AksLoginOptions> = {}): AksLoginOptions {
  return {
    cloud: 'AzureCloud',
    authorityHost: entra.authorityHost,
    armEndpoint: arm.url,
    tenantId: TENANT,
    clientId: SECRET_APP,
    clientSecret: SECRET,
    subscriptionId: SUB,
    resourceGroup: 'rg1',
    clusterName: 'local1',
    admin: false,
    getIdToken: async (audience) => {
      const res = await fetch(`${gh.url}&audience=${encodeURIComponent(audience)}`, {
        headers: { authorization: `Bearer ${gh.requestToken}` },
      })
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      return String(((await res.json()) as { value: string }).value)
    },
    setSecret: (v) => masked.push(v),
    log: (m) => logs.push(m),
    sleep: async (ms) => {
      sleeps.push(ms)
    },
    ...over,
  }
}

function oidcOpts(over: Partial<AksLoginOptions> = {}): AksLoginOptions {
  const o = opts({ clientId: OIDC_APP, ...over })
  delete o.clientSecret
  return o
}

const parse = (y: string): Kubeconfig => load(y) as Kubeconfig

before(async () => {
  pki = makePki()
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), pki.caPem])
  gh = await startGithubOidc(pki)
  ghShort = await startGithubOidc(pki, { issuer: 'https://short-lived.example', lifetimeSeconds: 30 })
  entra = await startEntra(pki, {
    apps: [
      { tenantId: TENANT, clientId: SECRET_APP, clientSecret: SECRET },
      {
        tenantId: TENANT,
        clientId: OIDC_APP,
        federated: [
          { issuer: gh.issuer, subject: gh.subject, audience: 'api://AzureADTokenExchange' },
          { issuer: ghShort.issuer, subject: ghShort.subject, audience: 'api://AzureADTokenExchange' },
        ],
      },
    ],
    trustedIssuers: [
      { issuer: gh.issuer, publicKey: gh.publicKey },
      { issuer: ghShort.issuer, publicKey: ghShort.publicKey },
    ],
  })
  const common: Omit<SimCluster, 'name' | 'kind'> = {
    subscriptionId: SUB,
    resourceGroup: 'rg1',
    tenantId: TENANT,
    server: 'https://127.0.0.1:6443',
    caPem: pki.caPem,
    userToken: 'static-user-token-1',
    adminToken: 'static-admin-token-1',
  }
  arm = await startArm(pki, {
    validateToken: (t) => entra.validate(t, ARM_AUD),
    clusters: [
      { ...common, name: 'local1', kind: 'local' },
      { ...common, name: 'entra1', kind: 'entra' },
      { ...common, name: 'nolocal1', kind: 'entra-no-local' },
      { ...common, name: 'locked', kind: 'local', allow: { user: [OIDC_APP] } },
    ],
  })
})

after(async () => {
  await Promise.all([gh?.close(), ghShort?.close(), entra?.close(), arm?.close()])
})

beforeEach(() => {
  masked = []
  logs = []
  sleeps = []
})

describe('loginToAks', () => {
  it('signs in with a client secret and returns the static-token kubeconfig of a local cluster', async () => {
    const before = entra.issued.length
    const r = await loginToAks(opts())
    assert.equal(r.entra, false)
    assert.equal(r.aksToken, undefined)
    const kc = parse(r.kubeconfig)
    assert.deepEqual(kc.users[0], { name: 'clusterUser_rg1_local1', user: { token: 'static-user-token-1' } })
    assert.equal(kc.clusters[0]?.cluster['server'], 'https://127.0.0.1:6443')
    const issued = entra.issued.slice(before)
    assert.equal(issued[0]?.grant, 'client_secret')
    assert.equal(issued[0]?.audience, ARM_AUD)
    assert.ok(masked.includes(SECRET))
    assert.ok(masked.includes('static-user-token-1'))
    assert.equal(arm.calls.at(-1)?.action, 'listClusterUserCredential')
    assert.equal(arm.calls.at(-1)?.clientId, SECRET_APP)
    for (const secret of masked) assert.ok(!logs.join('\n').includes(secret))
  })

  it('hands out its credential for other resources: tokens per audience, each masked before it is returned', async () => {
    for (const o of [opts(), oidcOpts()]) {
      masked = []
      const r = await loginToAks(o)
      const scope = 'https://prometheus.monitor.azure.com/.default'
      const before = entra.issued.length
      const t = await r.credential.getToken(scope)
      assert.ok(t)
      assert.ok(masked.includes(t.token), 'masked')
      assert.ok(
        entra.validate(t.token, 'https://prometheus.monitor.azure.com'),
        'a token for the Azure Monitor audience',
      )
      assert.equal(entra.issued.slice(before)[0]?.scope, scope)
      // The secret is not on it, and an unknown resource is the login's readable Entra error.
      assert.ok(!JSON.stringify(r.credential).includes(SECRET))
      await assert.rejects(r.credential.getToken('https://nowhere.example/.default'), /nowhere\.example/)
      for (const secret of masked) assert.ok(!logs.join('\n').includes(secret))
    }
  })

  it('fetches the admin credential when admin is true', async () => {
    const r = await loginToAks(opts({ admin: true }))
    assert.deepEqual(parse(r.kubeconfig).users[0], {
      name: 'clusterAdmin_rg1_local1',
      user: { token: 'static-admin-token-1' },
    })
    assert.equal(arm.calls.at(-1)?.action, 'listClusterAdminCredential')
  })

  it('signs in with GitHub OIDC (client assertion) and masks the ID token', async () => {
    const ghBefore = gh.issued.length
    const seen: string[] = []
    const r = await loginToAks(
      oidcOpts({
        getIdToken: async (audience) => {
          const t = await opts().getIdToken(audience)
          seen.push(t)
          return t
        },
      }),
    )
    assert.equal(r.entra, false)
    // one GitHub token serves the whole login (MSAL asks for the assertion on every getToken)
    assert.deepEqual(gh.issued.slice(ghBefore), [{ audience: 'api://AzureADTokenExchange' }])
    assert.equal(entra.issued.at(-1)?.grant, 'client_assertion')
    assert.equal(entra.issued.at(-1)?.clientId, OIDC_APP)
    assert.ok(seen.length === 1 && masked.includes(seen[0]!))
  })

  it('fetches a new GitHub token for a refresh once the previous one is near expiry', async () => {
    const getIdToken = async (audience: string): Promise<string> => {
      const res = await fetch(`${ghShort.url}&audience=${encodeURIComponent(audience)}`, {
        headers: { authorization: `Bearer ${ghShort.requestToken}` },
      })
      return String(((await res.json()) as { value: string }).value)
    }
    entra.setTokenLifetime(120)
    try {
      const r = await loginToAks(oidcOpts({ clusterName: 'entra1', getIdToken }))
      assert.equal(r.entra, true)
      const n = ghShort.issued.length
      const fresh = await r.aksToken?.()
      assert.ok(fresh && entra.validate(fresh.token, AKS_SERVER_APP_ID)?.['appid'] === OIDC_APP)
      assert.ok(ghShort.issued.length > n, 'a 30 s GitHub token is not reused')
    } finally {
      entra.setTokenLifetime(3599)
    }
  })

  it('works with the real core.getIDToken and ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN', async () => {
    const saved = {
      url: process.env['ACTIONS_ID_TOKEN_REQUEST_URL'],
      token: process.env['ACTIONS_ID_TOKEN_REQUEST_TOKEN'],
    }
    process.env['ACTIONS_ID_TOKEN_REQUEST_URL'] = gh.url
    process.env['ACTIONS_ID_TOKEN_REQUEST_TOKEN'] = gh.requestToken
    try {
      const r = await loginToAks(oidcOpts({ getIdToken: (aud) => core.getIDToken(aud), clusterName: 'locked' }))
      assert.equal(parse(r.kubeconfig).users[0]?.user['token'], 'static-user-token-1')
      assert.equal(gh.issued.at(-1)?.audience, 'api://AzureADTokenExchange')
    } finally {
      for (const [k, v] of [
        ['ACTIONS_ID_TOKEN_REQUEST_URL', saved.url],
        ['ACTIONS_ID_TOKEN_REQUEST_TOKEN', saved.token],
      ] as const) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    }
  })

  it('replaces the kubelogin exec user of an Entra cluster by an AKS token', async () => {
    const r = await loginToAks(opts({ clusterName: 'entra1' }))
    assert.equal(r.entra, true)
    const kc = parse(r.kubeconfig)
    assert.ok(!r.kubeconfig.includes('kubelogin'))
    const user = kc.users[0]?.user ?? {}
    assert.deepEqual(Object.keys(user), ['token'])
    const claims = entra.validate(String(user['token']), AKS_SERVER_APP_ID)
    assert.ok(claims, 'the token is a valid AKS server app token')
    assert.equal(claims['appid'], SECRET_APP)
    assert.ok(masked.includes(String(user['token'])))
    assert.equal(kc['current-context'], 'entra1')
  })

  it('refreshes the AKS token when it nears expiry, and caches it otherwise', async () => {
    entra.setTokenLifetime(120) // below MSAL's 5-minute refresh margin: every call gets a new token
    try {
      const r = await loginToAks(opts({ clusterName: 'entra1' }))
      assert.ok(r.aksToken)
      const first = String(parse(r.kubeconfig).users[0]?.user['token'])
      const n = entra.issued.length
      const next = await r.aksToken()
      assert.notEqual(next.token, first)
      assert.equal(entra.issued.length, n + 1)
      assert.equal(entra.issued.at(-1)?.audience, AKS_SERVER_APP_ID)
      assert.ok(next.expiresOnTimestamp > Date.now() && next.expiresOnTimestamp <= Date.now() + 121_000)
      assert.ok(entra.validate(next.token, AKS_SERVER_APP_ID))
      assert.ok(masked.includes(next.token))
    } finally {
      entra.setTokenLifetime(3599)
    }
    const r = await loginToAks(opts({ clusterName: 'entra1' }))
    const n = entra.issued.length
    const a = await r.aksToken?.()
    assert.equal(a?.token, parse(r.kubeconfig).users[0]?.user['token'])
    assert.equal(entra.issued.length, n, 'a long-lived token comes from the cache')
  })

  it('fails clearly for admin on a cluster with local accounts disabled', async () => {
    await assert.rejects(loginToAks(opts({ clusterName: 'nolocal1', admin: true })), (err: unknown) => {
      assert.ok(err instanceof AzureLoginError)
      assert.match(err.message, /local accounts disabled/)
      assert.match(err.message, /admin: false/)
      assert.equal(err.code, 'BadRequest')
      return true
    })
    const ok = await loginToAks(opts({ clusterName: 'nolocal1' }))
    assert.equal(ok.entra, true)
  })

  it('surfaces a wrong secret as its AADSTS code without leaking the secret', async () => {
    const wrong = 'wrong~secret~value'
    await assert.rejects(loginToAks(opts({ clientSecret: wrong })), (err: unknown) => {
      assert.ok(err instanceof AzureLoginError)
      assert.equal(err.code, 'AADSTS7000215')
      assert.match(err.message, /AADSTS7000215: Invalid client secret provided/)
      assert.match(err.message, /client-secret/)
      assert.ok(!err.message.includes(wrong))
      return true
    })
    assert.ok(masked.includes(wrong))
  })

  it('surfaces a federated credential subject mismatch', async () => {
    const now = Math.floor(Date.now() / 1000)
    const sub = 'repo:octo-org/octo-repo:ref:refs/heads/feature'
    const getIdToken = async (aud: string): Promise<string> =>
      gh.sign({ iss: gh.issuer, sub, aud, iat: now, nbf: now, exp: now + 300 })
    await assert.rejects(loginToAks(oidcOpts({ getIdToken })), (err: unknown) => {
      assert.ok(err instanceof AzureLoginError)
      assert.equal(err.code, 'AADSTS700213')
      assert.match(err.message, /refs\/heads\/feature/)
      assert.match(err.message, /Hint: .*subject/)
      return true
    })
  })

  it('explains a failing GitHub OIDC token request', async () => {
    await assert.rejects(
      loginToAks(
        oidcOpts({
          getIdToken: async () => {
            throw new Error('Unable to get ACTIONS_ID_TOKEN_REQUEST_URL env variable')
          },
        }),
      ),
      (err: unknown) => {
        assert.ok(err instanceof AzureLoginError)
        assert.match(err.message, /id-token: write/)
        assert.match(err.message, /ACTIONS_ID_TOKEN_REQUEST_URL/)
        return true
      },
    )
  })

  it('retries ARM 503s with jittered backoff through the injected sleep', async () => {
    arm.injectFault({ status: 503, times: 2 })
    const calls = arm.calls.length
    const started = Date.now()
    const r = await loginToAks(opts())
    assert.equal(parse(r.kubeconfig).users[0]?.user['token'], 'static-user-token-1')
    assert.deepEqual(
      arm.calls.slice(calls).map((c) => c.status),
      [503, 503, 200],
    )
    assert.equal(sleeps.length, 2)
    assert.ok(sleeps[0]! >= 0 && sleeps[0]! <= 500 && sleeps[1]! <= 1000, `backoff ${sleeps.join(',')}`)
    assert.ok(Date.now() - started < 5000)
    assert.equal(logs.filter((l) => /retrying/.test(l)).length, 2)
  })

  it('honours Retry-After on 429 and retries connection resets', async () => {
    arm.injectFault({ status: 429, times: 1, retryAfterSeconds: 3 })
    arm.injectFault({ status: 'reset', times: 1 })
    await loginToAks(opts())
    assert.equal(sleeps[0], 3000)
    assert.equal(sleeps.length, 2)
  })

  it('gives up after the retry budget with the last ARM error', async () => {
    arm.injectFault({ status: 500, times: 5 }) // exactly the retry budget, so nothing is left for later tests
    const calls = arm.calls.length
    await assert.rejects(loginToAks(opts()), /HTTP 500 InternalServerError/)
    assert.equal(sleeps.length, 4)
    assert.equal(arm.calls.length - calls, 5)
  })

  it('names the cluster, resource group and subscription when the cluster is not found', async () => {
    await assert.rejects(loginToAks(opts({ clusterName: 'ghost' })), (err: unknown) => {
      assert.ok(err instanceof AzureLoginError)
      assert.equal(err.status, 404)
      assert.match(err.message, /'ghost'/)
      assert.match(err.message, /'rg1'/)
      assert.match(err.message, new RegExp(SUB))
      return true
    })
    assert.equal(sleeps.length, 0, '404 is not retried')
  })

  it('says which role is missing on 403', async () => {
    await assert.rejects(loginToAks(opts({ clusterName: 'locked' })), (err: unknown) => {
      assert.ok(err instanceof AzureLoginError)
      assert.equal(err.status, 403)
      assert.match(err.message, /Azure Kubernetes Service Cluster User Role/)
      assert.match(err.message, new RegExp(SECRET_APP))
      return true
    })
    await assert.rejects(
      loginToAks(opts({ clusterName: 'locked', admin: true })),
      /Azure Kubernetes Service Cluster Admin Role/,
    )
  })

  it('explains an unknown tenant', async () => {
    await assert.rejects(loginToAks(opts({ tenantId: 'contoso-typo' })), (err: unknown) => {
      assert.ok(err instanceof AzureLoginError)
      assert.match(err.message, /tenant-id/)
      assert.match(err.message, /contoso-typo/)
      return true
    })
  })

  it('validates required inputs before any network call', async () => {
    const calls = arm.calls.length
    await assert.rejects(loginToAks(opts({ resourceGroup: ' ' })), /'resource-group' is required/)
    await assert.rejects(
      loginToAks(opts({ armEndpoint: 'management.azure.com' })),
      /'arm-endpoint' must be an https:\/\/ URL/,
    )
    assert.equal(arm.calls.length, calls)
  })
})

describe('Azure clouds', () => {
  it('knows the sovereign clouds', () => {
    assert.deepEqual(
      Object.values(AZURE_CLOUDS).map((c) => [c.name, c.authorityHost, c.armEndpoint, c.armScope, c.oidcAudience]),
      [
        [
          'AzureCloud',
          'https://login.microsoftonline.com',
          'https://management.azure.com',
          'https://management.azure.com/.default',
          'api://AzureADTokenExchange',
        ],
        [
          'AzureUSGovernment',
          'https://login.microsoftonline.us',
          'https://management.usgovcloudapi.net',
          'https://management.usgovcloudapi.net/.default',
          'api://AzureADTokenExchangeUSGov',
        ],
        [
          'AzureChinaCloud',
          'https://login.chinacloudapi.cn',
          'https://management.chinacloudapi.cn',
          'https://management.chinacloudapi.cn/.default',
          'api://AzureADTokenExchangeChina',
        ],
      ],
    )
    assert.equal(AKS_SCOPE, '6dae42f8-4368-4678-94ff-3960e28e3630/.default')
    assert.equal(getAzureCloud('azureusgovernment').name, 'AzureUSGovernment')
    assert.ok(isAzureCloudName('AzureChinaCloud') && !isAzureCloudName('AzureGermanCloud'))
    assert.throws(() => getAzureCloud('AzureGermanCloud'), /use one of AzureCloud, AzureUSGovernment, AzureChinaCloud/)
  })

  it('uses the cloud default audience for OIDC and the cloud ARM scope', async () => {
    const ghBefore = gh.issued.length
    await assert.rejects(loginToAks(oidcOpts({ cloud: 'AzureUSGovernment' })), (err: unknown) => {
      assert.ok(err instanceof AzureLoginError)
      // the federated credential is registered for the public-cloud audience
      assert.equal(err.code, 'AADSTS700212')
      return true
    })
    assert.equal(gh.issued.at(ghBefore)?.audience, 'api://AzureADTokenExchangeUSGov')
  })
})
