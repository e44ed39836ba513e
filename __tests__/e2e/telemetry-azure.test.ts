// Each step judged on telemetry read through an Azure Monitor workspace-style query endpoint, end to end: the real
// bundle logs into the simulated AKS (GitHub OIDC, or a client secret), and with no prometheus-token it asks the
// same Entra credential for a token for the Azure Monitor audience, which the endpoint checks before forwarding
// to a REAL Prometheus scraping the simulated mesh. The endpoint's loopback URL is not a
// *.prometheus.monitor.azure.com host, so the tests name its scope with prometheus-scope (as a proxy in front of a
// workspace would). The endpoint here is the simulation's own (startAzureMonitor) with a validator that also
// records each token it was sent, so the test can check no token leaks into stdout, outputs, report or summary.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { type StepResult, runAction } from '../runner/harness.js'
import { type AzureMonitorSim, startAzureMonitor } from '../sim/azure/azure-monitor.js'
import { type Sim, startSimulation } from '../sim/index.js'
import { REFS } from '../sim/kube/refs.js'
import { type Load, startLoad } from '../sim/mesh/load.js'
import { bookinfoInputs, reviews, runnerEnv, vsWrites } from './common.js'

const AUDIENCE = 'https://prometheus.monitor.azure.com'
const SCOPE = `${AUDIENCE}/.default`

interface Report {
  steps: Array<{
    weight: number
    verdict: string
    checks: Array<{
      kind: string
      verdict: string
      evidence: { decision?: string; counts?: { canaryRequests: number } }
    }>
  }>
}

describe('telemetry verdict through an Azure Monitor endpoint (Entra token from the AKS login)', () => {
  let sim: Sim
  let monitor: AzureMonitorSim
  let load: Load
  const tokens = new Set<string>()

  before(async () => {
    sim = await startSimulation({ meshSeed: 5, prometheus: true })
    try {
      monitor = await startAzureMonitor(sim.pki, {
        upstream: sim.prometheus!.url,
        validate: (token, audience) => {
          tokens.add(token)
          return sim.entra.validate(token, audience)
        },
      })
      // Background users for the whole file (bounded): stable has traffic before any change.
      load = startLoad({ url: sim.mesh.url, rate: 40, durationMs: 150_000, loggedInShare: 0.2 })
      await sim.prometheus!.waitForSeries(
        'sum(istio_requests_total{reporter="destination",destination_service_name="reviews",destination_version="v1"})',
        { min: 20, timeoutMs: 20_000 },
      )
    } catch (err) {
      await Promise.allSettled([load?.stop({ abort: true }), monitor?.close(), sim.close()])
      throw err
    }
  })
  after(async () => {
    await Promise.allSettled([load?.stop({ abort: true }), monitor?.close(), sim?.close()])
  })

  /** reviews back to v1 only: each rollout of v3 starts from stable. */
  function resetReviews(): void {
    const vs = reviews(sim)
    const spec = vs['spec'] as { http: Array<{ route: unknown[] }> }
    spec.http = [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }]
    const meta = vs['metadata'] as { annotations?: Record<string, string>; resourceVersion?: string }
    delete meta.annotations
    delete meta.resourceVersion
    sim.store.update(REFS.virtualServices, vs)
  }

  const inputs = (secret: boolean, extra: Record<string, string> = {}): Record<string, string> =>
    bookinfoInputs(
      sim,
      {
        steps: '50,100',
        pause: '3s',
        metrics: 'true',
        'min-canary-requests': '20',
        'max-step-time': '20s',
        'prometheus-url': monitor.url,
        'prometheus-scope': SCOPE,
        ...extra,
      },
      { secret },
    )

  /** Every token the endpoint was sent appears only in the runner's ::add-mask:: commands. */
  function assertNoTokenLeaks(steps: StepResult[]): void {
    assert.ok(tokens.size > 0, 'the endpoint was sent tokens')
    for (const step of steps) {
      const lines = step.stdout.split('\n')
      const texts = {
        stdout: lines.filter((l) => !l.startsWith('::add-mask::')).join('\n'),
        stderr: step.stderr,
        outputs: JSON.stringify(step.outputs),
        summary: step.summary,
        report: step.outputs['report'] ? readFileSync(step.outputs['report'], 'utf8') : '',
      }
      for (const token of tokens) {
        for (const [where, text] of Object.entries(texts)) assert.ok(!text.includes(token), `a token in ${where}`)
      }
    }
    const main = steps[0] as StepResult
    for (const token of tokens) assert.ok(main.stdout.includes(`::add-mask::${token}\n`), 'each token is masked')
  }

  for (const [name, secret, grant] of [
    ['GitHub OIDC', false, 'client_assertion'],
    ['a client secret', true, 'client_secret'],
  ] as const) {
    it(`login with ${name}: promotes a healthy canary judged on Azure Monitor telemetry`, async () => {
      resetReviews()
      tokens.clear()
      const forwarded = monitor.forwarded
      const refused = monitor.refused
      const issued = sim.entra.issued.length
      const { main, post } = await runAction({ inputs: inputs(secret), env: runnerEnv(sim), timeoutMs: 120_000 })
      assert.equal(main.code, 0, `${main.stdout.slice(-4000)}\n${main.stderr.slice(-1500)}`)
      assert.equal(main.outputs['result'], 'promoted')
      assert.ok(
        main.stdout.includes(`Telemetry: Azure Monitor workspace ${monitor.url} (Entra scope ${SCOPE})`),
        main.stdout.slice(-4000),
      )
      const report = JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as Report
      assert.deepEqual(
        report.steps.map((s) => [s.weight, s.verdict]),
        [
          [50, 'pass'],
          [100, 'pass'],
        ],
      )
      const first = report.steps[0]?.checks.find((c) => c.kind === 'telemetry')
      assert.equal(first?.verdict, 'pass')
      assert.equal(first?.evidence.decision, 'accept')
      assert.ok((first?.evidence.counts?.canaryRequests ?? 0) >= 20, JSON.stringify(first?.evidence))
      // The endpoint answered Entra-authorized queries only: tokens the simulated Entra issued to this app for the
      // Azure Monitor audience, by the login's own grant.
      assert.ok(monitor.forwarded - forwarded >= 4, `forwarded ${monitor.forwarded - forwarded}`)
      assert.equal(monitor.refused, refused)
      const forMonitor = sim.entra.issued.slice(issued).filter((t) => t.audience === AUDIENCE)
      assert.ok(forMonitor.length > 0)
      for (const t of forMonitor) {
        assert.equal(t.grant, grant)
        assert.equal(t.clientId, sim.ids.clientId)
        assert.equal(t.scope, SCOPE)
      }
      for (const token of tokens) assert.ok(sim.entra.validate(token, AUDIENCE), 'a token for the monitor audience')
      assertNoTokenLeaks([main, ...(post ? [post] : [])])
    })
  }

  it("a kubeconfig login has no Azure credential: metrics 'true' names prometheus-token, before any change", async () => {
    resetReviews()
    const writes = sim.store.writes.length
    const aks = new Set(Object.keys(sim.aksInputs({ secret: true })))
    const given = Object.fromEntries(Object.entries(inputs(true)).filter(([k]) => !aks.has(k)))
    const { main } = await runAction({
      inputs: { ...given, kubeconfig: sim.kubeconfig() },
      env: runnerEnv(sim),
      timeoutMs: 60_000,
    })
    assert.notEqual(main.code, 0)
    const error = main.stdout.split('\n').find((l) => l.startsWith('::error::')) ?? ''
    assert.ok(error.includes(monitor.url) && error.includes("'prometheus-token'"), error)
    assert.match(error, /no Azure credential.*nothing was changed/)
    assert.equal(vsWrites(sim, writes), 0, 'no VirtualService write')
  })

  it("a token the endpoint rejects (wrong audience), metrics 'true': an error before any change", async () => {
    resetReviews()
    const writes = sim.store.writes.length
    const refused = monitor.refused
    const wrong = 'https://management.azure.com/.default'
    const { main } = await runAction({
      inputs: inputs(false, { 'prometheus-scope': wrong }),
      env: runnerEnv(sim),
      timeoutMs: 60_000,
    })
    assert.notEqual(main.code, 0)
    assert.ok(monitor.refused > refused, 'the endpoint refused the token')
    const error = main.stdout.split('\n').find((l) => l.startsWith('::error::')) ?? ''
    assert.ok(error.includes(`Azure Monitor workspace ${monitor.url}`), error)
    assert.ok(error.includes(`Entra scope ${wrong}`), error)
    assert.match(error, /401 Unauthorized.*nothing was changed/)
    assert.equal(vsWrites(sim, writes), 0, 'no VirtualService write')
    assert.equal(main.outputs['result'], 'unchanged')
  })
})
