// SPEC 7 rule 6 end to end: the telemetry verdict on the metrics of each data plane an HTTPRoute target runs on,
// through the real bundle and a REAL Prometheus scraping the simulated mesh while simulated users browse BookInfo:
// Istio ambient (L7 metrics reported by the waypoint, reporter="waypoint") and Linkerd (the proxies'
// response_total, through linkerd-viz's Prometheus, found by prometheus-service auto). A healthy canary promoted on
// the mesh's counts; a canary failing a third of its requests reverted at its first step on them.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { runAction } from '../runner/harness.js'
import { type Sim, startSimulation } from '../sim/index.js'
import { applyRbacManifests } from '../sim/kube/rbac.js'
import { REFS } from '../sim/kube/refs.js'
import { loadRbacManifest } from '../sim/kube/seed.js'
import { type Load, startLoad } from '../sim/mesh/load.js'
import { bookinfoInputs, reportOf, runnerEnv, telemetryOf, untilAccepted } from './common.js'

const LAYOUTS = [
  {
    dataplane: 'istio-ambient' as const,
    // The shipped manifests: istio-canary, analyze and telemetry (services/proxy in istio-system).
    rbac: ['istio-canary', 'analyze', 'telemetry'] as const,
    series: 'sum(istio_requests_total{reporter="waypoint",destination_version="v1"})',
    query:
      /istio_requests_total\{reporter="waypoint",destination_workload_namespace="bookinfo",destination_service_name=~"reviews\|reviews-v1\|reviews-v3"/,
    prometheus: 'Prometheus service istio-system/prometheus:9090',
    extra: {} as Record<string, string>,
  },
  {
    dataplane: 'linkerd' as const,
    // The README's Linkerd set: istio-canary.yaml, linkerd.yaml, and telemetry.yaml for linkerd-viz (applied below).
    rbac: ['istio-canary', 'linkerd'] as const,
    series: 'sum(response_total{direction="inbound",deployment="reviews-v1"})',
    query: /response_total\{namespace="bookinfo",direction="inbound",deployment=~"reviews-v1\|reviews-v3"\}/,
    prometheus: 'Prometheus service linkerd-viz/prometheus:9090',
    extra: { mesh: 'linkerd' } as Record<string, string>,
  },
]

for (const layout of LAYOUTS) {
  describe(`telemetry verdict on ${layout.dataplane} (HTTPRoute, real Prometheus)`, () => {
    let sim: Sim
    let load: Load
    before(async () => {
      sim = await startSimulation({
        dataplane: layout.dataplane,
        meshSeed: 11,
        prometheus: true,
        rbac: [...layout.rbac],
      })
      if (layout.dataplane === 'linkerd') {
        applyRbacManifests(sim.store, loadRbacManifest('telemetry'), {
          users: sim.users,
          namespace: 'bookinfo',
          istioNamespace: 'linkerd-viz',
        })
      }
      load = startLoad({ url: sim.mesh.url, rate: 40, durationMs: 150_000, loggedInShare: 0.2 })
      await sim.prometheus!.waitForSeries(layout.series, { min: 20, timeoutMs: 20_000 })
    })
    after(async () => {
      await load.stop({ abort: true })
      await sim.close()
    })

    const inputs = (extra: Record<string, string> = {}): Record<string, string> => {
      const {
        'virtual-service': _vs,
        'canary-subset': _c,
        ...rest
      } = bookinfoInputs(sim, {
        steps: '50,100',
        pause: '3s',
        metrics: 'true',
        'min-canary-requests': '20',
        'max-step-time': '20s',
        'smoke-requests': '40',
        ...layout.extra,
        ...(layout.dataplane === 'linkerd' ? { 'gateway-url': sim.mesh.url } : {}),
        ...extra,
      })
      return { ...rest, 'http-route': 'reviews', 'canary-backend': 'reviews-v3', ...extra }
    }
    /** Back to reviews-v1 only (the previous test promoted v3), accepted by the parents as a cluster has it. */
    const resetRoute = async (): Promise<void> => {
      const hr = sim.store.get(REFS.httpRoutes, 'bookinfo', 'reviews')!
      const spec = hr['spec'] as { rules: Array<{ backendRefs: unknown[] }> }
      spec.rules = [
        { ...spec.rules[0], backendRefs: [{ group: '', kind: 'Service', name: 'reviews-v1', port: 9080, weight: 1 }] },
      ]
      delete hr.metadata.annotations
      delete hr.metadata.resourceVersion
      sim.store.update(REFS.httpRoutes, hr)
      await untilAccepted(sim, 'reviews')
    }

    it('promotes a healthy canary on the mesh’s own counts', async () => {
      const { main } = await runAction({ inputs: inputs(), env: runnerEnv(sim), timeoutMs: 120_000 })
      assert.equal(main.code, 0, `${main.stdout.slice(-4000)}\n${main.stderr.slice(-1500)}`)
      assert.equal(main.outputs['result'], 'promoted')
      assert.match(main.stdout, new RegExp(`Telemetry: ${layout.prometheus.replace(/[/.]/g, '\\$&')}`))
      const first = telemetryOf(reportOf(main), 0)
      assert.equal(first?.decision, 'accept', JSON.stringify(first))
      assert.ok((first?.counts.canaryRequests ?? 0) >= 20, JSON.stringify(first))
      assert.ok((first?.counts.stableRequests ?? 0) > 0, 'stable served during the 50 % step')
      assert.match(first?.queries.requests ?? '', layout.query)
    })

    it('reverts a canary failing a third of its requests at its first step, on the mesh’s counts', async () => {
      await resetRoute()
      const before = structuredClone(
        (sim.store.get(REFS.httpRoutes, 'bookinfo', 'reviews')!['spec'] as { rules: unknown }).rules,
      )
      sim.faults.mesh('reviews', 'v3', { errorRate: 0.35 })
      try {
        const { main } = await runAction({
          inputs: inputs({ 'success-threshold': '0' }),
          env: runnerEnv(sim),
          timeoutMs: 120_000,
        })
        assert.equal(main.outputs['result'], 'rolled-back', main.stdout.slice(-4000))
        const report = reportOf(main)
        assert.equal(report.steps.length, 1)
        assert.equal(telemetryOf(report, 0)?.decision, 'reject', JSON.stringify(report.steps[0]))
        assert.match(main.stdout, /Step 1 at 50 %: .*FAIL \((telemetry: )?the canary errs more than stable/)
        const after = (sim.store.get(REFS.httpRoutes, 'bookinfo', 'reviews')!['spec'] as { rules: unknown }).rules
        assert.deepEqual(after, before, 'the rule exactly as before the run')
      } finally {
        sim.faults.mesh('reviews', 'v3', undefined)
      }
    })
  })
}
