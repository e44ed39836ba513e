// Which Prometheus target setUpTelemetry builds for prometheus-url: direct (with or without prometheus-token), or an
// Azure Monitor endpoint (recognised by its host, or named by prometheus-scope) with Entra tokens from the AKS
// login's credential, for the endpoint's cloud; without an Azure login, an error naming prometheus-token (metrics
// true) or a warning (auto). A small local HTTP server plays the query endpoint and records what it was sent.
import assert from 'node:assert/strict'
import { type Server, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { AzureCloudName } from '../../src/azure/clouds.js'
import { InvalidInputs, getInputs } from '../../src/inputs.js'
import type { TokenCredentialLike } from '../../src/telemetry/prometheus.js'
import { TelemetryUnavailableError, setUpTelemetry } from '../../src/verify/telemetry/setup.js'
import type { VerificationFacts, VerifierDeps } from '../../src/verify/verifier.js'

const facts: VerificationFacts = {
  gatewayUrl: 'http://gateway',
  canaryVersions: ['v3'],
  stableVersions: ['v1'],
  splitIsStableCanary: true,
  namespace: 'bookinfo',
  service: 'reviews',
  stableVersion: 'v1',
  canaryVersion: 'v3',
}

const inputsOf = (m: Record<string, string>) =>
  getInputs((n) => ({ namespace: 'bookinfo', 'virtual-service': 'reviews', 'canary-subset': 'v3', ...m })[n] ?? '', {})

/** A credential that hands out `token-<n>` and records the scopes it was asked for. */
function fakeCredential(fail?: string): TokenCredentialLike & { scopes: string[] } {
  const scopes: string[] = []
  return {
    scopes,
    getToken: async (s) => {
      scopes.push(String(s))
      if (fail) throw new Error(fail)
      return { token: `token-${scopes.length}`, expiresOnTimestamp: Date.now() + 3_600_000 }
    },
  }
}

function depsOf(azure?: { credential: TokenCredentialLike; cloud: AzureCloudName }) {
  const logs: string[] = []
  const warnings: string[] = []
  const deps: VerifierDeps = {
    sleep: async () => {},
    now: () => 0,
    log: (m) => logs.push(m),
    warn: (m) => warnings.push(m),
    cluster: {
      server: 'https://kube.invalid',
      get: async () => ({ status: 404, body: '' }),
      serviceExists: async () => false,
    },
    ...(azure ? { azure } : {}),
  }
  return { deps, logs, warnings }
}

describe('setUpTelemetry: the Prometheus target for prometheus-url', () => {
  let server: Server
  let url: string
  const seen: Array<string | undefined> = []
  before(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers.authorization)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({
          status: 'success',
          data: { resultType: 'vector', result: [{ metric: { destination_version: 'v1' }, value: [1, '42'] }] },
        }),
      )
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  })

  it('queries a plain URL directly, with prometheus-token as the bearer when given', async () => {
    seen.length = 0
    const { deps } = depsOf()
    assert.ok(await setUpTelemetry(inputsOf({ 'prometheus-url': url, metrics: 'true' }), facts, deps))
    assert.ok(seen.length > 0 && seen.every((h) => h === undefined))
    seen.length = 0
    const withToken = inputsOf({ 'prometheus-url': url, 'prometheus-token': 'tok', metrics: 'true' })
    assert.ok(await setUpTelemetry(withToken, facts, deps))
    assert.ok(seen.length > 0 && seen.every((h) => h === 'Bearer tok'))
  })

  it('prometheus-scope: Entra tokens for that scope from the login credential', async () => {
    seen.length = 0
    const credential = fakeCredential()
    const { deps } = depsOf({ credential, cloud: 'AzureCloud' })
    const scope = 'https://prometheus.monitor.azure.com/.default'
    const inputs = inputsOf({ 'prometheus-url': url, 'prometheus-scope': scope, metrics: 'true' })
    const verifier = await setUpTelemetry(inputs, facts, deps)
    assert.ok(verifier)
    assert.match(
      verifier.describe(),
      /Azure Monitor workspace http:\/\/127\.0\.0\.1:\d+ \(Entra scope https:\/\/prometheus\.monitor\.azure\.com\/\.default\)/,
    )
    assert.ok(credential.scopes.length > 0 && credential.scopes.every((s) => s === scope))
    assert.ok(seen.length > 0 && seen.every((h) => /^Bearer token-\d+$/.test(h ?? '')))
  })

  it("an Azure Monitor host: the scope of the endpoint's cloud, else of azure-cloud", async () => {
    for (const [host, cloud, scope] of [
      ['ws-1.eastus.prometheus.monitor.azure.com', 'AzureCloud', 'https://prometheus.monitor.azure.com/.default'],
      ['ws-1.usgovvirginia.prometheus.monitor.azure.us', 'AzureCloud', 'https://prometheus.monitor.azure.us/.default'],
      [
        'ws-1.chinanorth3.prometheus.monitor.azure.cn',
        'AzureChinaCloud',
        'https://prometheus.monitor.azure.cn/.default',
      ],
    ] as const) {
      // The credential fails: no network call is made, and the error (prometheus-url names the Prometheus, so
      // metrics 'auto' does not fall back) names the endpoint and the scope.
      const credential = fakeCredential('AADSTS700016: application not found')
      const { deps, warnings } = depsOf({ credential, cloud })
      const endpoint = `https://${host}`
      await assert.rejects(setUpTelemetry(inputsOf({ 'prometheus-url': endpoint }), facts, deps), (err: unknown) => {
        const m = (err as Error).message
        return (
          err instanceof TelemetryUnavailableError &&
          m.startsWith("Input 'prometheus-url' names the Prometheus to judge on") &&
          m.includes(`Azure Monitor workspace ${endpoint} (Entra scope ${scope})`) &&
          /could not get an Entra token .*AADSTS700016/.test(m)
        )
      })
      assert.ok(credential.scopes.length > 0 && credential.scopes.every((s) => s === scope), String(credential.scopes))
      assert.equal(warnings.length, 0)
    }
  })

  it("without an AKS login: an error naming prometheus-token (metrics 'true', and 'auto' with prometheus-url)", async () => {
    const endpoint = 'https://ws-1.eastus.prometheus.monitor.azure.com'
    const { deps, warnings } = depsOf()
    await assert.rejects(
      setUpTelemetry(inputsOf({ 'prometheus-url': endpoint, metrics: 'true' }), facts, deps),
      (err: unknown) =>
        err instanceof TelemetryUnavailableError &&
        err.message.includes(endpoint) &&
        err.message.includes("'prometheus-token'") &&
        err.message.includes('https://prometheus.monitor.azure.com/.default') &&
        /nothing was changed/.test(err.message),
    )
    await assert.rejects(
      setUpTelemetry(inputsOf({ 'prometheus-url': endpoint }), facts, deps),
      /^TelemetryUnavailableError: Input 'prometheus-url' names the Prometheus to judge on, but .*Azure Monitor endpoint.*'prometheus-token'.*nothing was changed/,
    )
    assert.equal(warnings.length, 0)
    // With a token, the same endpoint is queried with it (no Azure credential needed); no network here: an error
    // that it cannot be queried.
    await assert.rejects(
      setUpTelemetry(
        inputsOf({ 'prometheus-url': 'http://127.0.0.1:9', 'prometheus-token': 't' }),
        facts,
        depsOf().deps,
      ),
      /names the Prometheus to judge on, but .*cannot be queried/,
    )
  })
})

describe('prometheus-scope input', () => {
  const problems = (m: Record<string, string>): string[] => {
    try {
      inputsOf(m)
    } catch (err) {
      assert.ok(err instanceof InvalidInputs, String(err))
      return err.problems
    }
    assert.fail('expected invalid inputs')
  }
  it('is an Entra scope (resource/.default), for prometheus-url, and not with prometheus-token', () => {
    assert.equal(
      inputsOf({ 'prometheus-url': 'https://p.example', 'prometheus-scope': 'https://p.example/.default' })[
        'prometheus-scope'
      ],
      'https://p.example/.default',
    )
    assert.match(
      problems({ 'prometheus-url': 'https://p.example', 'prometheus-scope': 'https://p.example' }).join(),
      /prometheus-scope.*not an Entra scope/,
    )
    assert.match(problems({ 'prometheus-scope': 'https://p.example/.default' }).join(), /applies to prometheus-url/)
    assert.match(
      problems({
        'prometheus-url': 'https://p.example',
        'prometheus-scope': 'https://p.example/.default',
        'prometheus-token': 't',
      }).join(),
      /either prometheus-token or prometheus-scope/,
    )
  })
})
