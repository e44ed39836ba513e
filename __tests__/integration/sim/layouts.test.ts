// The data plane layouts of startSimulation({ dataplane }): Istio ambient (ztunnel, a waypoint, no sidecars) and
// Linkerd (its control plane, linkerd-proxy in every pod, a plain ingress), read through the simulated API server;
// how each routes an HTTPRoute with a Service parent; their faults; their metrics, in the mesh and through the real
// Prometheus with the queries the action builds (src/telemetry/queries.ts).
import assert from 'node:assert/strict'
import { request } from 'node:https'
import { after, before, describe, it } from 'node:test'
import { buildCounterQueries, type MeshFlavor } from '../../../src/telemetry/queries.js'
import { startSimulation, type Sim } from '../../sim/index.js'
import { REFS } from '../../sim/kube/refs.js'
import { DAEMONSETS, LINKERD_CONTROL_PLANE } from '../../sim/mesh/layouts.js'
import { IMMEDIATE_PROPAGATION } from '../../sim/mesh/mesh.js'
import { makePki, type TestPki } from '../../sim/net/tls.js'

type Obj = Record<string, unknown>
const NS = 'bookinfo'
let pki: TestPki

before(() => {
  pki = makePki()
})

/** GET through the simulated API server as the cluster admin. */
function api(sim: Sim, path: string): Promise<{ status: number; body: Obj }> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, sim.kube.url)
    const req = request(
      u,
      { method: 'GET', ca: sim.pki.caPem, headers: { authorization: `Bearer ${sim.tokens.admin}` }, timeout: 5000 },
      (res) => {
        let data = ''
        res.on('data', (c: Buffer) => {
          data += c.toString('utf8')
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data ? (JSON.parse(data) as Obj) : {} }))
      },
    )
    req.on('error', reject)
    req.end()
  })
}
const items = (b: Obj): Obj[] => (b['items'] ?? []) as Obj[]
const meta = (o: Obj): { name: string; labels?: Record<string, string>; annotations?: Record<string, string> } =>
  o['metadata'] as { name: string }
const containerNames = (pod: Obj): string[] =>
  (((pod['spec'] as Obj)['containers'] ?? []) as Obj[]).map((c) => String(c['name']))
const initNames = (pod: Obj): string[] =>
  (((pod['spec'] as Obj)['initContainers'] ?? []) as Obj[]).map((c) => String(c['name']))
const condition = (o: Obj | undefined, type: string): Obj | undefined =>
  (((o?.['status'] as Obj | undefined)?.['conditions'] ?? []) as Obj[]).find((c) => c['type'] === type)

const servedBy = (body: string): string | undefined => /Reviews served by:<\/dt>\s*<u>(reviews-v\d+)-/.exec(body)?.[1]
async function versions(sim: Sim, n: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${sim.mesh.url}/productpage`, { signal: AbortSignal.timeout(5000) })
    const body = await res.text()
    const v = res.status === 200 ? (servedBy(body) ?? 'none') : `status ${res.status}`
    seen[v] = (seen[v] ?? 0) + 1
  }
  return seen
}

/** Polls `check` every 10 ms, at most `ms`. */
async function until<T>(check: () => T | undefined | false, ms = 3000): Promise<T> {
  const t0 = Date.now()
  for (let i = 0; i < 1000 && Date.now() - t0 < ms; i++) {
    const v = check()
    if (v) return v
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`not within ${ms} ms`)
}

describe('layout istio-ambient', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation({
      pki,
      dataplane: 'istio-ambient',
      gatewayApi: { seed: { reviewsRoute: 'route-reviews-90-10.yaml' }, controller: { delayMs: 0 } },
      propagation: IMMEDIATE_PROPAGATION,
    })
  })
  after(async () => {
    await sim.close()
  })

  it('objects: ambient namespace enrolled to the waypoint, no sidecars, ztunnel, a Programmed waypoint', async () => {
    const ns = await api(sim, `/api/v1/namespaces/${NS}`)
    assert.equal(meta(ns.body).labels?.['istio.io/dataplane-mode'], 'ambient')
    assert.equal(meta(ns.body).labels?.['istio.io/use-waypoint'], 'waypoint')
    assert.equal(meta(ns.body).labels?.['istio-injection'], undefined)
    const pods = items((await api(sim, `/api/v1/namespaces/${NS}/pods`)).body)
    const app = pods.filter((p) => meta(p).labels?.['app'] !== undefined)
    assert.ok(app.length >= 6)
    for (const p of app) assert.ok(!containerNames(p).includes('istio-proxy'), `${meta(p).name}: no sidecar`)
    const system = items((await api(sim, '/api/v1/namespaces/istio-system/pods')).body)
    assert.ok(system.some((p) => meta(p).labels?.['app'] === 'ztunnel'))
    assert.ok(system.some((p) => meta(p).labels?.['app'] === 'istiod'))
    assert.deepEqual(
      sim.store
        .list(DAEMONSETS, 'istio-system')
        .map((d) => d.metadata.name)
        .sort(),
      ['istio-cni-node', 'ztunnel'],
    )
    const cls = await api(sim, '/apis/gateway.networking.k8s.io/v1/gatewayclasses/istio-waypoint')
    assert.equal((cls.body['spec'] as Obj)['controllerName'], 'istio.io/mesh-controller')
    const gw = await until(() => {
      const g = sim.store.get(REFS.gatewayApiGateways, NS, 'waypoint')
      return condition(g, 'Programmed')?.['status'] === 'True' && g
    })
    assert.equal(gw.metadata.labels?.['istio.io/waypoint-for'], 'service')
    const viaApi = await api(sim, `/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/gateways/waypoint`)
    assert.equal((viaApi.body['spec'] as Obj)['gatewayClassName'], 'istio-waypoint')
    assert.equal(condition(viaApi.body, 'Programmed')?.['status'], 'True')
    assert.equal((await api(sim, `/apis/apps/v1/namespaces/${NS}/deployments/waypoint`)).status, 200)
    assert.equal((await api(sim, `/api/v1/namespaces/${NS}/services/waypoint`)).status, 200)
    // The route's parent resolved to the waypoint (ResolvedWaypoints, as istiod reports with ambient on).
    const r = await until(() => {
      const parents = ((sim.store.get(REFS.httpRoutes, NS, 'reviews')?.['status'] as Obj)?.['parents'] ?? []) as Obj[]
      return parents.length > 0 && parents
    })
    const rw = ((r[0]!['conditions'] ?? []) as Obj[]).find((c) => c['type'] === 'ResolvedWaypoints')
    assert.equal(rw?.['message'], 'All waypoints resolved')
  })

  it('the waypoint routes by the Service-parent HTTPRoute (90/10) and reports reporter="waypoint"', async () => {
    const seen = await versions(sim, 200)
    assert.deepEqual(Object.keys(seen).sort(), ['reviews-v1', 'reviews-v2'], JSON.stringify(seen))
    // mean 20, sd 4.2: 4 sd either side
    assert.ok(seen['reviews-v2']! >= 3 && seen['reviews-v2']! <= 37, JSON.stringify(seen))
    const m = sim.mesh.metrics
    const wp = { reporter: 'waypoint', destination_service_name: 'reviews' }
    assert.equal(m.count('istio_requests_total', wp), 200)
    assert.equal(m.count('istio_requests_total', { ...wp, destination_version: 'v2' }), seen['reviews-v2'])
    assert.equal(m.count('istio_requests_total', { reporter: 'destination' }), 0, 'no sidecar reports')
    const identities = {
      source_principal: `spiffe://cluster.local/ns/${NS}/sa/bookinfo-productpage`,
      destination_principal: `spiffe://cluster.local/ns/${NS}/sa/bookinfo-reviews`,
    }
    assert.equal(m.count('istio_requests_total', { ...wp, ...identities }), 200, 'SPIFFE identities of both ends')
    assert.equal(
      m.count('istio_tcp_connections_opened_total', {
        reporter: 'destination',
        destination_version: 'v1',
        ...identities,
      }),
      seen['reviews-v1'],
    )
    // The ingress gateway (an Envoy) reports its side; productpage (no sidecar) only through ztunnel.
    assert.equal(m.count('istio_requests_total', { reporter: 'source', destination_service_name: 'productpage' }), 200)
    assert.equal(m.count('istio_requests_total', { reporter: 'source', destination_service_name: 'reviews' }), 0)
    assert.equal(m.count('istio_tcp_connections_opened_total', { destination_service_name: 'productpage' }), 200)
    assert.equal(m.count('response_total', {}), 0, 'no Linkerd metrics')
  })

  it('faults: a waypoint without a ready pod (Programmed False, calls 503); a missing waypoint (L4: every version)', async () => {
    sim.dataplane.setWaypointReady(false)
    const down = await versions(sim, 3)
    // ztunnel cannot reach the waypoint: the reviews call gets 503, which productpage passes on (reviewsErrors 'status').
    assert.deepEqual(down, { 'status 503': 3 })
    await until(
      () => condition(sim.store.get(REFS.gatewayApiGateways, NS, 'waypoint'), 'Programmed')?.['status'] === 'False',
    )
    sim.dataplane.setWaypointReady(true)
    // L7 again: the 90/10 route, never v3 (which L4 balancing would reach a third of the time).
    const l7 = await versions(sim, 60)
    assert.ok(l7['reviews-v1']! > 0 && l7['reviews-v3'] === undefined, JSON.stringify(l7))
    sim.dataplane.removeWaypoint()
    assert.equal(sim.store.get(REFS.gatewayApiGateways, NS, 'waypoint'), undefined)
    const l4 = await versions(sim, 60)
    assert.deepEqual(Object.keys(l4).sort(), ['reviews-v1', 'reviews-v2', 'reviews-v3'], JSON.stringify(l4))
    // sim.faults.clear() makes the waypoint again: L7 routing by the route once more.
    sim.faults.clear()
    await until(
      () => condition(sim.store.get(REFS.gatewayApiGateways, NS, 'waypoint'), 'Programmed')?.['status'] === 'True',
    )
    const back = await versions(sim, 60)
    assert.ok(back['reviews-v1']! > 0 && back['reviews-v3'] === undefined, JSON.stringify(back))
  })
})

describe('layout istio-ambient without a waypoint', () => {
  it('ztunnel only: the Service-parent route is not respected; istiod says why', async () => {
    const sim = await startSimulation({
      pki,
      dataplane: 'istio-ambient',
      dataplaneSeed: { waypoint: false },
      gatewayApi: { seed: { reviewsRoute: 'route-reviews-v3.yaml' }, controller: { delayMs: 0 } },
      propagation: IMMEDIATE_PROPAGATION,
    })
    try {
      assert.equal(sim.store.get(REFS.gatewayApiGateways, NS, 'waypoint'), undefined)
      const seen = await versions(sim, 60)
      assert.deepEqual(Object.keys(seen).sort(), ['reviews-v1', 'reviews-v2', 'reviews-v3'], JSON.stringify(seen))
      const parents = await until(() => {
        const p = ((sim.store.get(REFS.httpRoutes, NS, 'reviews')?.['status'] as Obj)?.['parents'] ?? []) as Obj[]
        return p.length > 0 && p
      })
      const rw = ((parents[0]!['conditions'] ?? []) as Obj[]).find((c) => c['type'] === 'ResolvedWaypoints')
      assert.match(String(rw?.['message']), /use-waypoint label missing .* route will not be respected/)
      assert.equal(sim.mesh.metrics.count('istio_requests_total', { reporter: 'waypoint' }), 0, 'L4: no L7 metrics')
      assert.equal(
        sim.mesh.metrics.count('istio_tcp_connections_opened_total', { destination_service_name: 'reviews' }),
        60,
      )
    } finally {
      await sim.close()
    }
  })
})

describe('layout linkerd', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation({
      pki,
      dataplane: 'linkerd',
      gatewayApi: { seed: { mesh: 'linkerd', reviewsRoute: 'route-reviews-90-10.yaml' }, controller: { delayMs: 0 } },
      propagation: IMMEDIATE_PROPAGATION,
    })
  })
  after(async () => {
    await sim.close()
  })

  it('objects: no Istio, the Linkerd control plane ready, every app pod with linkerd-proxy, a plain ingress', async () => {
    assert.equal((await api(sim, '/apis/networking.istio.io/v1')).status, 404, 'no Istio CRDs')
    assert.equal(items((await api(sim, '/api/v1/namespaces/istio-system/pods')).body).length, 0)
    for (const name of LINKERD_CONTROL_PLANE) {
      const d = await api(sim, `/apis/apps/v1/namespaces/linkerd/deployments/${name}`)
      assert.equal(d.status, 200, name)
      assert.equal((d.body['status'] as Obj)['readyReplicas'], 1, name)
    }
    const ns = await api(sim, `/api/v1/namespaces/${NS}`)
    assert.equal(meta(ns.body).annotations?.['linkerd.io/inject'], 'enabled')
    const app = items((await api(sim, `/api/v1/namespaces/${NS}/pods`)).body)
    assert.ok(app.length >= 6)
    for (const p of app) {
      assert.equal(containerNames(p)[0], 'linkerd-proxy', meta(p).name)
      assert.ok(!containerNames(p).includes('istio-proxy'))
      assert.deepEqual(initNames(p), ['linkerd-init'])
    }
    const prom = await api(sim, '/api/v1/namespaces/linkerd-viz/services/prometheus')
    assert.equal(((prom.body['spec'] as Obj)['ports'] as Obj[])[0]!['port'], 9090)
    const ing = await api(sim, '/api/v1/namespaces/ingress-nginx/services/ingress-nginx-controller')
    const lb = (((ing.body['status'] as Obj)['loadBalancer'] as Obj)['ingress'] as Obj[])[0]!
    const port = ((ing.body['spec'] as Obj)['ports'] as Obj[])[0]!['port']
    assert.equal(`http://${String(lb['ip'])}:${String(port)}`, sim.mesh.url, 'the gateway-url of the smoke tests')
    // Linkerd's policy controller reports on the Service parent.
    const parents = await until(() => {
      const p = ((sim.store.get(REFS.httpRoutes, NS, 'reviews')?.['status'] as Obj)?.['parents'] ?? []) as Obj[]
      return p.length > 0 && p
    })
    assert.equal(parents[0]!['controllerName'], 'linkerd.io/policy-controller')
    assert.equal(sim.store.get(REFS.httpRoutes, NS, 'bookinfo'), undefined, 'no Gateway route: Linkerd has none')
  })

  it('routes by the HTTPRoute (90/10); only Linkerd metrics: inbound by deployment, outbound with dst_ labels', async () => {
    const seen = await versions(sim, 200)
    assert.deepEqual(Object.keys(seen).sort(), ['reviews-v1', 'reviews-v2'], JSON.stringify(seen))
    assert.ok(seen['reviews-v2']! >= 3 && seen['reviews-v2']! <= 37, JSON.stringify(seen))
    const m = sim.mesh.metrics
    const inbound = { direction: 'inbound', namespace: NS }
    assert.equal(m.count('response_total', { ...inbound, deployment: 'reviews-v2' }), seen['reviews-v2'])
    assert.equal(m.count('response_total', { ...inbound, deployment: 'productpage-v1' }), 200)
    assert.equal(m.count('response_total', { direction: 'outbound', dst_deployment: 'reviews-v1' }), seen['reviews-v1'])
    assert.equal(m.count('response_total', { classification: 'failure' }), 0)
    assert.equal(m.count('istio_requests_total', {}), 0, 'no Istio metrics')
  })

  it('fault: the control plane not ready', async () => {
    sim.dataplane.setLinkerdReady(false)
    for (const name of LINKERD_CONTROL_PLANE) {
      const d = await api(sim, `/apis/apps/v1/namespaces/linkerd/deployments/${name}`)
      assert.equal((d.body['status'] as Obj)['readyReplicas'], 0, name)
    }
    const pods = items((await api(sim, '/api/v1/namespaces/linkerd/pods')).body)
    assert.ok(pods.every((p) => condition(p, 'Ready')?.['status'] === 'False'))
    sim.faults.clear()
    const again = await api(sim, '/apis/apps/v1/namespaces/linkerd/deployments/linkerd-destination')
    assert.equal((again.body['status'] as Obj)['readyReplicas'], 1, 'sim.faults.clear() restores it')
  })
})

describe('layout linkerd, native sidecar', () => {
  it('linkerd-proxy is an init container with restartPolicy Always', async () => {
    const sim = await startSimulation({ pki, dataplane: 'linkerd', dataplaneSeed: { nativeSidecar: true } })
    try {
      const app = items((await api(sim, `/api/v1/namespaces/${NS}/pods`)).body)
      for (const p of app) {
        assert.deepEqual(initNames(p), ['linkerd-init', 'linkerd-proxy'])
        assert.ok(!containerNames(p).includes('linkerd-proxy'))
        const proxy = (((p['spec'] as Obj)['initContainers'] as Obj[]) ?? []).find((c) => c['name'] === 'linkerd-proxy')
        assert.equal(proxy?.['restartPolicy'], 'Always')
      }
    } finally {
      await sim.close()
    }
  })
})

describe('each layout through the real Prometheus', () => {
  const cases: Array<{ flavor: MeshFlavor; prometheusService: string }> = [
    { flavor: 'istio-sidecar', prometheusService: 'istio-system/prometheus:9090' },
    { flavor: 'istio-ambient', prometheusService: 'istio-system/prometheus:9090' },
    { flavor: 'linkerd', prometheusService: 'linkerd-viz/prometheus:9090' },
  ]
  for (const { flavor, prometheusService } of cases) {
    it(`${flavor}: the action's per-version queries see the traffic split`, async () => {
      const sim = await startSimulation({
        pki,
        dataplane: flavor,
        prometheus: true,
        gatewayApi: {
          seed: { reviewsRoute: 'route-reviews-50-v3.yaml', ...(flavor === 'linkerd' ? { mesh: 'linkerd' } : {}) },
          controller: { delayMs: 0 },
        },
        propagation: IMMEDIATE_PROPAGATION,
      })
      try {
        assert.ok(sim.serviceUpstreams.has(prometheusService), prometheusService)
        sim.faults.mesh('reviews', 'v3', { errorRate: 1 })
        const seen = await versions(sim, 60)
        assert.ok((seen['status 500'] ?? 0) > 0 && (seen['reviews-v1'] ?? 0) > 0, JSON.stringify(seen))
        const target = { namespace: NS, service: 'reviews', versions: ['v1', 'v3'], flavor }
        const q = buildCounterQueries(target)
        await sim.prometheus!.waitForSeries(flavor === 'linkerd' ? 'response_total' : 'istio_requests_total', {
          timeoutMs: 10_000,
        })
        // Scrapes every second: wait (bounded) for one after the traffic.
        const by = (rows: Array<{ metric: Record<string, string>; value: [number, string] }>): Record<string, number> =>
          Object.fromEntries(rows.map((r) => [r.metric[q.by] ?? '', Number(r.value[1])]))
        const label = (v: string): string => (flavor === 'linkerd' ? `reviews-${v}` : v)
        let requests: Record<string, number> = {}
        const t0 = Date.now()
        while (Date.now() - t0 < 10_000) {
          requests = by(await sim.prometheus!.query(q.requests))
          if ((requests[label('v1')] ?? 0) + (requests[label('v3')] ?? 0) === 60) break
          await new Promise((r) => setTimeout(r, 250))
        }
        assert.equal(requests[label('v1')], seen['reviews-v1'], JSON.stringify(requests))
        assert.equal(requests[label('v3')], seen['status 500'], JSON.stringify(requests))
        const errors = by(await sim.prometheus!.query(q.errors))
        assert.equal(errors[label('v3')], seen['status 500'], JSON.stringify(errors))
        assert.equal(errors[label('v1')] ?? 0, 0)
      } finally {
        await sim.close()
      }
    })
  }
})
