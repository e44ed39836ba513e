// The action's modes end to end: the real bundle against the loopback simulation.
import { after, before, describe, it } from 'node:test'
import { NEWEST_SUPPORTED_ISTIO } from '../../src/istio/versions.js'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Sim, startSimulation } from '../sim/index.js'
import { makeRunner, runAction } from '../runner/harness.js'
import type { KubeObject } from '../sim/kube/store.js'
import { LEASES, bookinfoInputs, reviews, runnerEnv, stateOf as state, vsWrites, withFault } from './common.js'

const baseInputs = (sim: Sim): Record<string, string> => bookinfoInputs(sim, { 'smoke-requests': '40' })
const env = runnerEnv

const spec = (o: KubeObject): { http: Array<{ route: Array<{ destination: { subset: string }; weight?: number }> }> } =>
  o['spec'] as never
const split = (o: KubeObject): string =>
  spec(o)
    .http.at(-1)!
    .route.map((d) => `${d.destination.subset}:${d.weight ?? 100}`)
    .join(',')

describe('rollout, promote, rollback, status (OIDC login, open-source Istio)', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
  })
  after(() => sim.close())

  it('promotes a healthy canary through 10,25,50,100 and reports every step', async () => {
    const before = reviews(sim)
    const { main, post } = await runAction({ inputs: baseInputs(sim), env: env(sim) })
    assert.equal(main.code, 0, main.stdout + main.stderr)
    assert.equal(main.outputs['result'], 'promoted')
    assert.equal(main.outputs['canary-weight'], '100')
    assert.equal(main.outputs['stable-subset'], 'v1')
    assert.equal(main.outputs['canary-subset'], 'v3')
    assert.equal(main.outputs['istio-version'], NEWEST_SUPPORTED_ISTIO)
    assert.match(main.outputs['gateway-url'] ?? '', /^http:\/\/127\.0\.0\.1:\d+$/)
    const after = reviews(sim)
    // route left clean: a single destination, the canary
    assert.deepEqual(spec(after).http.at(-1), { route: [{ destination: { host: 'reviews', subset: 'v3' } }] })
    assert.deepEqual(
      { ...(after['spec'] as object), http: undefined },
      { ...(before['spec'] as object), http: undefined },
    )
    assert.equal(state(after)?.['phase'], 'promoted')
    // report: every step with weights, counts, per-version latency and verdict
    const report = JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as {
      result: string
      steps: Array<{
        weight: number
        verdict: string
        checks: Array<{
          kind: string
          evidence: {
            requests: number
            successes: number
            byVersion: Record<string, { requests: number; p95Ms: number }>
          }
        }>
      }>
    }
    assert.equal(report.result, 'promoted')
    assert.deepEqual(
      report.steps.map((s) => s.weight),
      [10, 25, 50, 100],
    )
    assert.ok(
      report.steps.every(
        (s) =>
          s.verdict === 'pass' &&
          s.checks[0]!.kind === 'smoke' &&
          s.checks[0]!.evidence.requests === 40 &&
          s.checks[0]!.evidence.successes === 40,
      ),
    )
    assert.equal(report.steps[3]?.checks[0]?.evidence.byVersion['v3']?.requests, 40)
    assert.equal(report.steps[3]?.checks[0]?.evidence.byVersion['v1'], undefined)
    // job summary: step table and chart
    assert.match(main.summary, /promoted/)
    assert.match(main.summary, /xychart-beta/)
    assert.match(main.summary, /<td>10 %|\| 10 %|10 %/)
    // post: lock gone, kubeconfig removed
    assert.equal(post?.code, 0, post?.stderr)
    assert.equal(sim.store.list(LEASES, 'bookinfo').length, 0)
    // a second run with the same canary is a no-op
    const writes = vsWrites(sim)
    const again = await runAction({ inputs: baseInputs(sim), env: env(sim) })
    assert.equal(again.main.outputs['result'], 'promoted')
    assert.equal(vsWrites(sim), writes)
  })

  it('pauses at 50, then a second run promotes; `rollback` from a third run restores the pre-rollout route', async () => {
    // start afresh from v3 (promoted above) to v2: route v3 100 %
    const start = reviews(sim)
    const p1 = await runAction({ inputs: { ...baseInputs(sim), 'canary-subset': 'v2', steps: '20,50' }, env: env(sim) })
    assert.equal(p1.main.code, 0, p1.main.stdout)
    assert.equal(p1.main.outputs['result'], 'paused')
    assert.equal(p1.main.outputs['canary-weight'], '50')
    assert.equal(split(reviews(sim)), 'v3:50,v2:50')
    assert.equal(state(reviews(sim))?.['phase'], 'paused')

    const status = await runAction({
      inputs: { ...baseInputs(sim), action: 'status', 'canary-subset': '' },
      env: env(sim),
    })
    assert.equal(status.main.outputs['result'], 'unchanged')
    assert.equal(status.main.outputs['canary-weight'], '50')
    assert.equal(status.main.outputs['canary-subset'], 'v2')
    assert.match(status.main.stdout, /paused at 50 %/)
    assert.equal(status.main.outputs['istio-version'], NEWEST_SUPPORTED_ISTIO)
    assert.equal(status.main.outputs['gateway-url'], sim.mesh.url)

    // A rollout of another canary is refused before any change; its outputs say where traffic is: the paused
    // rollout's versions and its 50 %, not 0 and the refused canary.
    const refusedWrites = vsWrites(sim)
    const refused = await runAction({ inputs: { ...baseInputs(sim), 'canary-subset': 'v1' }, env: env(sim) })
    assert.notEqual(refused.main.code, 0)
    assert.match(refused.main.stdout, /has a rollout of canary 'v2' in progress \(paused at 50 %/)
    assert.equal(refused.main.outputs['result'], 'unchanged')
    assert.equal(refused.main.outputs['canary-weight'], '50')
    assert.equal(refused.main.outputs['canary-subset'], 'v2')
    assert.equal(refused.main.outputs['stable-subset'], 'v3')
    assert.equal(vsWrites(sim), refusedWrites)

    const p2 = await runAction({
      inputs: { ...baseInputs(sim), action: 'promote', 'canary-subset': '' },
      env: env(sim),
    })
    assert.equal(p2.main.code, 0, p2.main.stdout)
    assert.equal(p2.main.outputs['result'], 'promoted')
    assert.equal(split(reviews(sim)), 'v2:100')

    const p3 = await runAction({
      inputs: { ...baseInputs(sim), action: 'rollback', 'canary-subset': '' },
      env: env(sim),
    })
    assert.equal(p3.main.code, 0, p3.main.stdout)
    assert.equal(p3.main.outputs['result'], 'rolled-back')
    assert.deepEqual(spec(reviews(sim)).http, spec(start).http)
    assert.equal(state(reviews(sim))?.['phase'], 'rolled-back')
    // rolling back again changes nothing
    const writes = vsWrites(sim)
    const p4 = await runAction({
      inputs: { ...baseInputs(sim), action: 'rollback', 'canary-subset': '' },
      env: env(sim),
    })
    assert.equal(p4.main.outputs['result'], 'rolled-back')
    assert.equal(vsWrites(sim), writes)
  })

  it('rolls a bad canary back at its first step, restoring the route exactly, and fails the step', async () => {
    const before = reviews(sim)
    await withFault(sim, 'v1', { errorRate: 1 }, async () => {
      // The default smoke-requests: with 40, a 10 % canary answers about 4 of them, and the calibrated verdict
      // (<= 1 % false rollbacks per rollout) needs more than 3 or 4 failures against the baseline to be sure.
      const inputs = { ...baseInputs(sim), 'canary-subset': 'v1', 'smoke-requests': '200' }
      const { main } = await runAction({ inputs, env: env(sim) })
      assert.equal(main.code, 1)
      assert.equal(main.outputs['result'], 'rolled-back')
      assert.match(main.stdout, /::error::smoke test failed at 10 %/)
      assert.deepEqual(reviews(sim)['spec'], before['spec'])
      const report = JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as {
        steps: Array<{ weight: number; verdict: string }>
        error: string
      }
      assert.deepEqual(
        report.steps.map((s) => [s.weight, s.verdict]),
        [[10, 'fail']],
      )
      assert.match(report.error, /smoke test failed/)
      assert.match(main.summary, /rolled back/i)
    })
  })
})

describe('nothing to do', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
  })
  after(() => sim.close())

  it('a canary that already has the whole route is promoted without a write or a readiness check', async () => {
    const requests = sim.kube.requests.length
    const writes = vsWrites(sim)
    const { main } = await runAction({ inputs: { ...baseInputs(sim), 'canary-subset': 'v1' }, env: env(sim) })
    assert.equal(main.code, 0, main.stdout)
    assert.equal(main.outputs['result'], 'promoted')
    assert.equal(main.outputs['canary-weight'], '100')
    assert.match(main.stdout, /already sends 100 % to 'v1'; nothing to do/)
    assert.equal(vsWrites(sim), writes)
    assert.ok(
      sim.kube.requests.slice(requests).every((r) => !r.path.includes('/pods')),
      'no readiness check',
    )
    assert.equal(sim.releases.downloads.length, 0, 'no istioctl needed')
  })
})

describe('a write whose answer is lost', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
  })
  after(() => sim.close())

  it('recognises its own write after the retry conflicts with it, and goes on', async () => {
    sim.kube.injectFault({ method: 'PUT', path: /virtualservices\/reviews/, status: 'lost-response', times: 1 })
    const { main } = await runAction({ inputs: { ...baseInputs(sim), steps: '50,100' }, env: env(sim) })
    assert.equal(main.code, 0, main.stdout)
    assert.equal(main.outputs['result'], 'promoted')
    const puts = sim.kube.requests.filter((r) => r.method === 'PUT' && r.path.includes('/virtualservices/reviews'))
    assert.deepEqual(
      puts.slice(0, 2).map((r) => r.status),
      [0, 409],
      'the lost answer, then the retry conflicting with our own write',
    )
    assert.equal(split(reviews(sim)), 'v3:100')
  })
})

describe('preview (pull requests)', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation({ seed: { reviewsRoute: 'jason-v2-v1' } })
  })
  after(() => sim.close())

  it('adds a header route to the canary before every route, smoke-tests through it, and cleans it up', async () => {
    const before = reviews(sim)
    const inputs = { ...baseInputs(sim), action: 'preview', 'preview-value': 'pr-123' }
    const { main } = await runAction({ inputs, env: env(sim) })
    assert.equal(main.code, 0, main.stdout)
    assert.equal(main.outputs['result'], 'previewed')
    const http = (reviews(sim)['spec'] as { http: unknown[] }).http
    assert.deepEqual(http[0], {
      name: 'istio-canary-preview-pr-123-e0045420',
      match: [{ headers: { 'x-canary-preview': { exact: 'pr-123' } } }],
      route: [{ destination: { host: 'reviews', subset: 'v3' } }],
    })
    assert.deepEqual(http.slice(1), (before['spec'] as { http: unknown[] }).http)
    const report = JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as {
      steps: Array<{ checks: Array<{ evidence: { byVersion: Record<string, { requests: number }> } }> }>
    }
    assert.equal(report.steps[0]?.checks[0]?.evidence.byVersion['v3']?.requests, 40)
    // requests without the header still reach v1 only
    const page = await (await fetch(`${main.outputs['gateway-url']}/productpage`)).text()
    assert.match(page, /reviews-v1-/)

    const cleanup = await runAction({
      inputs: { ...inputs, action: 'preview-cleanup', 'canary-subset': '' },
      env: env(sim),
    })
    assert.equal(cleanup.main.code, 0, cleanup.main.stdout)
    assert.equal(cleanup.main.outputs['result'], 'cleaned-up')
    assert.deepEqual(reviews(sim)['spec'], before['spec'])
    const again = await runAction({
      inputs: { ...inputs, action: 'preview-cleanup', 'canary-subset': '' },
      env: env(sim),
    })
    assert.equal(again.main.outputs['result'], 'unchanged')
  })

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`takes its preview route out again when the run is ${signal === 'SIGTERM' ? 'cancelled (main step)' : 'killed (post step)'}`, async () => {
      const before = reviews(sim)
      const { main, post } = await runAction({
        inputs: { ...baseInputs(sim), action: 'preview', 'preview-value': `pr-${signal}`, pause: '20s' },
        env: env(sim),
        interrupt: { when: 'Pausing', signal },
      })
      assert.notEqual(main.code, 0)
      if (signal === 'SIGTERM') {
        assert.equal(main.outputs['result'], 'rolled-back')
        assert.match(main.stdout, /cancelled by SIGTERM/)
      } else {
        assert.equal(main.signal, 'SIGKILL')
        assert.equal(post?.code, 0, post?.stdout)
        assert.equal(post?.outputs['result'], 'rolled-back')
        assert.match(post?.stdout ?? '', /Restored the preview route 'pr-SIGKILL'/)
      }
      assert.deepEqual(reviews(sim)['spec'], before['spec'])
      assert.equal(sim.store.list(LEASES, 'bookinfo').length, 0)
    })
  }

  it('removes its preview route when the preview fails', async () => {
    const before = reviews(sim)
    await withFault(sim, 'v3', { errorRate: 1 }, async () => {
      const { main } = await runAction({
        inputs: { ...baseInputs(sim), action: 'preview', 'preview-value': 'pr-9' },
        env: env(sim),
      })
      assert.equal(main.code, 1)
      assert.equal(main.outputs['result'], 'rolled-back')
      assert.deepEqual(reviews(sim)['spec'], before['spec'])
    })
  })
})

describe('bad inputs fail before any cluster change', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
  })
  after(() => sim.close())

  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['steps 10,5', { steps: '10,5' }, /Input 'steps': weights must be strictly increasing, but 5 follows 10/],
    ['steps abc', { steps: 'abc' }, /Input 'steps': 'abc' is not a weight/],
    ['steps 0', { steps: '0' }, /Input 'steps': weight 0 is outside 1\.\.100/],
    ['steps 101', { steps: '101' }, /Input 'steps': weight 101 is outside 1\.\.100/],
    ['pause 5x', { pause: '5x' }, /Input 'pause': '5x' is not a duration/],
    ['missing canary-subset', { 'canary-subset': '' }, /Input 'canary-subset': required for action 'rollout'/],
    [
      'preview-header x.canary (Istio denies it)',
      { action: 'preview', 'preview-value': 'pr-1', 'preview-header': 'x.canary' },
      /Input 'preview-header': 'x\.canary' is not a header name Istio accepts/,
    ],
  ]
  for (const [name, extra, message] of cases) {
    it(`${name}: clear error, no request to any endpoint`, async () => {
      const requests = sim.kube.requests.length
      const arm = sim.arm.calls.length
      const writes = sim.store.writes.length
      const { main } = await runAction({ inputs: { ...baseInputs(sim), ...extra }, env: env(sim) })
      assert.equal(main.code, 1)
      assert.match(main.stdout, message)
      assert.equal(sim.kube.requests.length, requests)
      assert.equal(sim.arm.calls.length, arm)
      assert.equal(sim.store.writes.length, writes)
    })
  }
})

describe('cluster access without Azure', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
  })
  after(() => sim.close())
  const noAks = (sim: Sim): Record<string, string> => {
    const i = baseInputs(sim)
    for (const k of Object.keys(sim.aksInputs())) delete i[k]
    return i
  }

  it('uses the kubeconfig input (written 0600, removed by post) without calling Azure', async () => {
    const arm = sim.arm.calls.length
    const { main, post } = await runAction({
      inputs: { ...noAks(sim), action: 'status', kubeconfig: sim.kubeconfig() },
      env: env(sim),
    })
    assert.equal(main.code, 0, main.stdout)
    assert.equal(main.outputs['result'], 'unchanged')
    assert.equal(sim.arm.calls.length, arm)
    const dir = main.state['tempDir']
    assert.ok(dir, 'main saved the kubeconfig dir')
    assert.equal(post?.code, 0)
    assert.throws(() => readFileSync(join(dir as string, 'kubeconfig')))
  })

  it("uses the runner's KUBECONFIG when neither AKS inputs nor kubeconfig are given", async () => {
    const runner = makeRunner()
    const path = join(runner.temp, 'runner-kubeconfig')
    writeFileSync(path, sim.kubeconfig(), { mode: 0o600 })
    const { main } = await runAction({ runner, inputs: noAks(sim), env: { ...env(sim), KUBECONFIG: path } })
    assert.equal(main.code, 0, main.stdout)
    assert.equal(main.outputs['result'], 'promoted')
    assert.ok(readFileSync(path, 'utf8').length > 0, "the runner's kubeconfig is the user's: never removed")
  })

  for (const [cloud, audience, arm] of [
    ['AzureUSGovernment', 'api://AzureADTokenExchangeUSGov', 'https://management.usgovcloudapi.net/'],
    ['AzureChinaCloud', 'api://AzureADTokenExchangeChina', 'https://management.chinacloudapi.cn/'],
  ] as const) {
    it(`logs in to ${cloud}: its OIDC audience and ARM token scope`, async () => {
      const oidc = sim.oidc.issued.length
      const tokens = sim.entra.issued.length
      const { main } = await runAction({
        inputs: { ...baseInputs(sim), 'azure-cloud': cloud, action: 'status' },
        env: env(sim),
      })
      assert.equal(main.code, 0, main.stdout)
      assert.deepEqual([...new Set(sim.oidc.issued.slice(oidc).map((i) => i.audience))], [audience])
      assert.deepEqual(
        sim.entra.issued.slice(tokens).map((t) => t.audience),
        [arm],
      )
    })
  }

  it('logs in with a client secret', async () => {
    const oidc = sim.oidc.issued.length
    const { main } = await runAction({
      inputs: { ...baseInputs(sim), ...sim.aksInputs({ secret: true }), action: 'status' },
      env: { PATH: env(sim)['PATH'] as string, NODE_EXTRA_CA_CERTS: sim.pki.caFile },
    })
    assert.equal(main.code, 0, main.stdout)
    assert.equal(sim.oidc.issued.length, oidc, 'no GitHub OIDC token asked for')
  })
})
