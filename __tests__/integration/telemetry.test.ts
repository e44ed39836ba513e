// The action's telemetry queries on a REAL Prometheus scraping the simulated mesh while simulated users
// browse BookInfo, reached the three ways the action reaches a Prometheus: directly, through the API
// server's service proxy, and through an Azure Monitor-style endpoint that wants an Entra token.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { AzureMonitorSim } from '../sim/azure/azure-monitor.js'
import { type Sim, startSimulation } from '../sim/index.js'
import { handleServiceProxy } from '../sim/kube/service-proxy.js'
import { RBAC_GROUP, ROLES, ROLE_BINDINGS } from '../sim/kube/rbac.js'
import { startLoad } from '../sim/mesh/load.js'
import { MeshMetrics, serveMetrics } from '../sim/mesh/mesh-metrics.js'
import { REFS } from '../sim/kube/refs.js'
import { type PrometheusSim, startPrometheus } from '../sim/telemetry/prometheus.js'
import { KubeConfig } from '@kubernetes/client-node'
import {
  type PrometheusClient,
  PrometheusError,
  createPrometheusClient,
  kubeconfigHttpGet,
  nodeHttpGet,
  type TokenCredentialLike,
} from '../../src/telemetry/prometheus.js'
import { buildLatencyQueries, buildQueries, perVersion, type QueryTarget } from '../../src/telemetry/queries.js'

/** A client-secret TokenCredential against the simulated Entra (what @azure/identity's ClientSecretCredential does). */
function secretCredential(sim: Sim): TokenCredentialLike {
  return {
    getToken: (scope) =>
      new Promise((resolve, reject) => {
        const body = new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: sim.ids.clientId,
          client_secret: sim.ids.clientSecret,
          scope: Array.isArray(scope) ? scope.join(' ') : scope,
        }).toString()
        const req = httpsRequest(
          `${sim.entra.authorityHost}/${sim.ids.tenantId}/oauth2/v2.0/token`,
          {
            method: 'POST',
            ca: sim.pki.caPem,
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
          },
          (res) => {
            let text = ''
            res.on('data', (c: Buffer) => (text += c.toString('utf8')))
            res.on('end', () => {
              const j = JSON.parse(text) as { access_token?: string; expires_in?: number; error_description?: string }
              if (!j.access_token) reject(new Error(j.error_description ?? text))
              else resolve({ token: j.access_token, expiresOnTimestamp: Date.now() + (j.expires_in ?? 0) * 1000 })
            })
          },
        )
        req.on('error', reject)
        req.end(body)
      }),
  }
}

describe('telemetry on a real Prometheus', () => {
  let sim: Sim
  let prom: PrometheusSim
  let monitor: AzureMonitorSim
  let proxy: { url: string; close(): Promise<void> }
  let target: QueryTarget
  let loadStats: { sent: number; failed: number }

  before(async () => {
    sim = await startSimulation({ meshSeed: 11, prometheus: true })
    try {
      prom = sim.prometheus!
      console.log(`# Prometheus started (to /-/ready) in ${prom.startupMs} ms`)
      monitor = sim.azureMonitor!
      const upstreams = sim.serviceUpstreams
      const server = createServer((req, res) => {
        const parts = new URL(req.url ?? '/', 'http://x').pathname.split('/').slice(1)
        void handleServiceProxy(req, res, parts, upstreams).then((handled) => {
          if (!handled) res.writeHead(404).end()
        })
      })
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
      proxy = {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections()
            server.close(() => r())
          }),
      }

      // reviews: half to v1, half to v3; v3 fails 5 % of its calls.
      const ns = sim.info.namespace
      const vs = sim.store.get(REFS.virtualServices, ns, 'reviews')!
      const next = {
        ...vs,
        metadata: { ...vs.metadata },
        spec: {
          hosts: ['reviews'],
          http: [
            {
              route: [
                { destination: { host: 'reviews', subset: 'v1' }, weight: 50 },
                { destination: { host: 'reviews', subset: 'v3' }, weight: 50 },
              ],
            },
          ],
        },
      }
      delete next.metadata.resourceVersion
      sim.store.update(REFS.virtualServices, next)
      sim.faults.mesh('reviews', 'v3', { errorRate: 0.05 })
      target = { namespace: ns, service: 'reviews', versions: ['v1', 'v3'] }

      const load = startLoad({ url: sim.mesh.url, rate: 50, durationMs: 12_000, maxRequests: 600, loggedInShare: 0.2 })
      loadStats = await load.done
      // Every counter increment must have been scraped: wait for the last value to be seen.
      const served = (sim.mesh.served['reviews-v1'] ?? 0) + (sim.mesh.served['reviews-v3'] ?? 0)
      await prom.waitForSeries(`sum(istio_requests_total{reporter="destination",destination_service_name="reviews"})`, {
        min: served,
        timeoutMs: 10_000,
      })
    } catch (err) {
      await Promise.allSettled([proxy?.close(), sim.close()])
      throw err
    }
  })

  after(async () => {
    await Promise.allSettled([proxy?.close(), sim?.close()])
  })

  async function judge(
    client: PrometheusClient,
  ): Promise<{ req: Record<string, number>; err: Record<string, number>; p95: Record<string, number> }> {
    const q = buildQueries(target, 120)
    const vec = async (promql: string): Promise<Record<string, number>> => {
      const r = await client.query(promql)
      assert.equal(r.type, 'vector')
      return perVersion(target, r.type === 'vector' ? r.samples : [])
    }
    return { req: await vec(q.requests), err: await vec(q.errors), p95: await vec(q.p95) }
  }

  it('counts requests and 5xx per version: ~5 % for v3, 0 for v1 (direct URL)', async () => {
    assert.ok(loadStats.sent >= 500, `load sent ${loadStats.sent}`)
    const { req, err, p95 } = await judge(
      createPrometheusClient({ kind: 'direct', url: prom.url, token: 'ignored-by-prometheus' }),
    )
    const v1 = sim.mesh.served['reviews-v1'] ?? 0
    const v3 = sim.mesh.served['reviews-v3'] ?? 0
    // increase() starts at a series' first scraped sample: what was served before that first scrape is not
    // in it (a series born mid-window), and it extrapolates to the window's edges. So it undercounts a young
    // series; the sequential test should difference the raw counters (buildCounterQueries) instead.
    assert.ok(req['v1']! > v1 * 0.4 && req['v1']! <= v1 * 1.2, `v1 ${req['v1']} vs served ${v1}`)
    assert.ok(req['v3']! > v3 * 0.4 && req['v3']! <= v3 * 1.2, `v3 ${req['v3']} vs served ${v3}`)
    assert.equal(err['v1'], 0)
    const rate3 = err['v3']! / req['v3']!
    console.log(
      `# v1 ${req['v1']!.toFixed(1)} requests, 0 errors; v3 ${req['v3']!.toFixed(1)} requests, ${err['v3']!.toFixed(1)} errors (${(rate3 * 100).toFixed(2)} %); p95 v1 ${p95['v1']} ms, v3 ${p95['v3']} ms`,
    )
    assert.ok(rate3 > 0.01 && rate3 < 0.12, `v3 error share ${rate3}`)
    assert.ok(p95['v1']! > 0 && p95['v1']! <= 5, `p95 v1 ${p95['v1']}`)
  })

  it('reaches the same Prometheus through the API server service proxy', async () => {
    const client = createPrometheusClient({
      kind: 'service',
      server: proxy.url,
      namespace: 'istio-system',
      name: 'prometheus',
      port: 9090,
    })
    const { err } = await judge(client)
    assert.equal(err['v1'], 0)
    assert.ok(err['v3']! > 0)
    const missing = createPrometheusClient({
      kind: 'service',
      server: proxy.url,
      namespace: 'monitoring',
      name: 'prometheus',
      port: 9090,
    })
    await assert.rejects(
      missing.query('up'),
      (e: unknown) => e instanceof PrometheusError && e.kind === 'http' && e.status === 404,
    )
  })

  it('reaches it through the Azure Monitor endpoint with an Entra token for the Azure Monitor audience', async () => {
    const get = nodeHttpGet({ ca: sim.pki.caPem })
    const client = createPrometheusClient(
      {
        kind: 'azure',
        url: monitor.url,
        credential: secretCredential(sim),
        scope: 'https://prometheus.monitor.azure.com/.default',
      },
      { get },
    )
    const { err } = await judge(client)
    assert.ok(err['v3']! > 0)
    assert.ok(monitor.forwarded >= 3)
    // An ARM token is refused: the endpoint wants its own audience.
    const wrong = createPrometheusClient(
      {
        kind: 'azure',
        url: monitor.url,
        credential: secretCredential(sim),
        scope: 'https://management.azure.com/.default',
      },
      { get },
    )
    await assert.rejects(wrong.query('up'), (e: unknown) => e instanceof PrometheusError && e.kind === 'unauthorized')
  })

  it('applies the kubeconfig credential (CA, token) like the Kubernetes client does', async () => {
    const kc = new KubeConfig()
    kc.loadFromString(sim.kubeconfig())
    const get = kubeconfigHttpGet(kc)
    const ok = await get(`${sim.kube.url}/api/v1/namespaces`, {}, 5000)
    assert.equal(ok.status, 200)
    const anon = await nodeHttpGet({ ca: sim.pki.caPem })(`${sim.kube.url}/api/v1/namespaces`, {}, 5000)
    assert.equal(anon.status, 401)
    // The simulated API server's service proxy, under the shipped RBAC manifest: it grants no services/proxy, so a 403.
    const client = createPrometheusClient(
      { kind: 'service', server: sim.kube.url, namespace: 'istio-system', name: 'prometheus', port: 9090 },
      { get },
    )
    await assert.rejects(client.query('up'), (e: unknown) => e instanceof PrometheusError && e.kind === 'forbidden')
    // Granted `get services/proxy` on that one Service, the same query reaches the real Prometheus.
    const meta = { name: 'prometheus-proxy', namespace: 'istio-system' }
    sim.store.create(ROLES, {
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: 'Role',
      metadata: meta,
      rules: [{ apiGroups: [''], resources: ['services/proxy'], resourceNames: ['prometheus:9090'], verbs: ['get'] }],
    })
    sim.store.create(ROLE_BINDINGS, {
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: 'RoleBinding',
      metadata: meta,
      roleRef: { apiGroup: RBAC_GROUP, kind: 'Role', name: 'prometheus-proxy' },
      subjects: [{ apiGroup: RBAC_GROUP, kind: 'User', name: 'clusterUser' }],
    })
    const up = await client.query('up')
    assert.equal(up.type, 'vector')
  })

  it("turns the real engine's errors and an unreachable Prometheus into clear errors", async () => {
    const client = createPrometheusClient({ kind: 'direct', url: prom.url })
    await assert.rejects(
      client.query('sum by (('),
      (e: unknown) => e instanceof PrometheusError && e.kind === 'query' && /bad_data/.test(e.message),
    )
    const empty = await client.query('istio_requests_total{destination_workload_namespace="nowhere"}')
    assert.deepEqual(empty, { type: 'vector', samples: [] })
    const scalar = await client.query('scalar(vector(3))', new Date())
    assert.deepEqual(scalar, { type: 'scalar', value: 3 })
    // Lost mid-rollout: the same client, its Prometheus stopped, fails loudly (never an empty answer).
    await prom.stop()
    await assert.rejects(client.query('up'), (e: unknown) => e instanceof PrometheusError && e.kind === 'unreachable')
    const gone = createPrometheusClient({ kind: 'direct', url: 'http://127.0.0.1:1' }, { timeoutMs: 2000 })
    await assert.rejects(gone.query('up'), (e: unknown) => e instanceof PrometheusError && e.kind === 'unreachable')
  })
})

describe('latency on a real Prometheus: p95 per version from Istio buckets, known traffic', () => {
  it('computes the p95 the buckets imply, per version and overall, over the window', async () => {
    const metrics = new MeshMetrics()
    const endpoint = await serveMetrics(metrics)
    const prom = await startPrometheus({
      targets: [{ job: 'mesh', address: endpoint.address, metricsPath: '/stats/prometheus' }],
    })
    try {
      const workload = (version: string) => ({
        workload: `reviews-${version}`,
        namespace: 'bookinfo',
        app: 'reviews',
        version,
      })
      const source = { workload: 'productpage-v1', namespace: 'bookinfo', app: 'productpage', version: 'v1' }
      const serve = (version: string, durationMs: number, n: number): void => {
        for (let i = 0; i < n; i++) {
          metrics.record({
            source,
            destination: { ...workload(version), service: 'reviews', serviceNamespace: 'bookinfo' },
            responseCode: 200,
            responseFlags: '-',
            durationMs,
            reachedDestination: true,
          })
        }
      }
      // One request each first: the series exist (and are scraped) before the known traffic, so rate() over the
      // window counts all of it.
      serve('v1', 40, 1)
      serve('v3', 40, 1)
      const first = 'sum(istio_request_duration_milliseconds_count{reporter="destination"})'
      await prom.waitForSeries(first, { min: 2, timeoutMs: 10_000 })
      // v1: 200 at 40.9 ms (recorded as 40: bucket 25-50). v3: 180 at 40 ms, 20 at 300 ms (bucket 250-500).
      serve('v1', 40.9, 200)
      serve('v3', 40, 180)
      serve('v3', 300, 20)
      await prom.waitForSeries(first, { min: 402, timeoutMs: 10_000 })
      // The exposition as Envoy writes it: whole milliseconds (40.9 ms counts as 40), `le` in plain digits.
      const text = metrics.text()
      assert.match(
        text,
        /istio_request_duration_milliseconds_sum\{reporter="destination",[^}]*destination_version="v1"[^}]*\} 8040\n/,
      )
      assert.match(
        text,
        /istio_request_duration_milliseconds_bucket\{reporter="destination",[^}]*destination_version="v3"[^}]*,le="3600000"\} 201\n/,
      )
      assert.equal(metrics.count('istio_requests_total', { reporter: 'destination', destination_version: 'v3' }), 201)
      assert.equal(metrics.count('istio_requests_total', { reporter: 'destination', response_code: '500' }), 0)
      const client = createPrometheusClient({ kind: 'direct', url: prom.url })
      const target = { namespace: 'bookinfo', service: 'reviews', versions: ['v1', 'v3'] }
      const q = buildLatencyQueries(target, 30)
      const values = async (promql: string) => {
        const r = await client.query(promql)
        return perVersion(target, r.type === 'vector' ? r.samples : [], NaN)
      }
      const p95 = await values(q.p95)
      const p50 = await values(q.p50)
      // histogram_quantile: rank q x count, linear within its bucket. v1: 25 + 25 x 0.95 = 48.75.
      // v3: rank 190 of 200 falls in (250, 500] holding ranks 181..200: 250 + 250 x (190 - 180) / 20 = 375.
      // Within 1 %: rate() extrapolates each bucket series to the window's edges, capped where that series would
      // reach zero (Prometheus' extrapolatedRate), so buckets of series born inside the window scale a little
      // differently (seen: 374.4).
      const near = (x: number | undefined, want: number): boolean => x !== undefined && Math.abs(x - want) <= want / 100
      assert.ok(near(p95['v1'], 48.75), `v1 p95 ${p95['v1']}`)
      assert.ok(near(p95['v3'], 375), `v3 p95 ${p95['v3']}`)
      assert.ok(near(p50['v3'], 25 + (25 * 100) / 180), `v3 p50 ${p50['v3']}`)
      // Both versions: 400 requests, 20 of them in (250, 500]: rank 380 is the last of the 380 at <= 50 ms.
      const all = await client.query(q.p95All)
      assert.equal(all.type, 'vector')
      const overall = all.type === 'vector' ? (all.samples[0]?.value ?? NaN) : NaN
      assert.ok(near(overall, 50), `overall p95 ${overall}`)
      // A version without a sample in the window is NaN (not 0 ms): v9 served nothing.
      const nine = { ...target, versions: ['v1', 'v9'] }
      const r9 = await client.query(buildLatencyQueries(nine, 30).p95)
      const none = perVersion(nine, r9.type === 'vector' ? r9.samples : [], NaN)
      assert.ok(near(none['v1'], 48.75) && Number.isNaN(none['v9']), JSON.stringify(none))
    } finally {
      await prom.stop()
      await endpoint.close()
    }
  })
})
