// The HttpRouteRouter in-process: the Engine over an HTTPRoute target in the in-memory cluster (which stores
// HTTPRoutes as the API server does: defaults written in, generation, status kept), with a scripted verifier.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  type BackendRef,
  type GatewayHttpRoute,
  type HttpRouteRule,
  KubeError,
  type RouteParentStatus,
} from '../../src/k8s/resources.js'
import { Engine, type Outcome } from '../../src/rollout/engine.js'
import { HttpRouteRouter } from '../../src/routing/http-route.js'
import { createRouter } from '../../src/routing/index.js'
import type { TargetRef } from '../../src/routing/router.js'
import { previewRouteName } from '../../src/routing/shares.js'
import { type RolloutState, decodeState } from '../../src/routing/state.js'
import type { StepContext } from '../../src/verify/verifier.js'
import { FakeCluster } from '../fakes/cluster.js'
import { ScriptedVerifier } from '../fakes/verifier.js'
import { httpRouteSample as sample } from '../support/samples.js'

const NS = 'bookinfo'
const TARGET: TargetRef = { kind: 'HTTPRoute', namespace: NS, name: 'reviews', route: { by: 'default' } }

function setup(
  o: {
    route?: GatewayHttpRoute
    verdicts?: Array<'pass' | 'fail'>
    during?: (step: StepContext, cluster: FakeCluster) => void
    /** false: no controller reports on the route (the status tests set it by hand). */
    controller?: false
  } = {},
) {
  const cluster = new FakeCluster()
  cluster.putHttpRoute(o.route ?? sample('route-reviews-v1.yaml'))
  // The parents accept every generation at once (the engine waits for them after each write).
  if (o.controller !== false) cluster.playGatewayController()
  const original = structuredClone(cluster.httpRoute(NS, 'reviews').spec.rules)
  const log: string[] = []
  const verifier = new ScriptedVerifier(o.verdicts, o.during && ((step) => o.during?.(step, cluster)))
  const router = () => createRouter(cluster, TARGET, { log: (m) => log.push(m) })
  const engine = (runId = 'run-1') =>
    new Engine(
      { router: router(), verifiers: [verifier], signal: new AbortController().signal, runId, log: (m) => log.push(m) },
      { stableSubset: 'auto', canarySubset: 'reviews-v3' },
    )
  const rules = (): HttpRouteRule[] => cluster.httpRoute(NS, 'reviews').spec.rules ?? []
  const refs = (): BackendRef[] => rules().at(-1)?.backendRefs ?? []
  const state = (): RolloutState | undefined =>
    decodeState(cluster.httpRoute(NS, 'reviews').metadata.annotations, TARGET)
  return { cluster, engine, router, verifier, original, rules, refs, state, log }
}

async function rollout(engine: Engine, weights: number[]): Promise<Outcome> {
  await engine.load()
  return engine.rollout(
    weights.map((weight) => ({ weight })),
    0,
  )
}

const split = (refs: BackendRef[]): Array<[string, number | undefined]> => refs.map((b) => [b.name, b.weight])
const transient = (): KubeError => new KubeError(503, 'ServiceUnavailable', 'the server is currently unable')

describe('HttpRouteRouter under the engine', () => {
  it('promotes BookInfo reviews-v1 to reviews-v3 through every step, weights integers summing to 100', async () => {
    const live: Array<Array<[string, number | undefined]>> = []
    const t = setup({
      during: (step, cluster) =>
        step.kind === 'step' && live.push(split(cluster.httpRoute(NS, 'reviews').spec.rules?.[0]?.backendRefs ?? [])),
    })
    const out = await rollout(t.engine(), [10, 50, 100])
    assert.equal(out.result, 'promoted', out.error?.message)
    assert.deepEqual(live, [
      [
        ['reviews-v1', 90],
        ['reviews-v3', 10],
      ],
      [
        ['reviews-v1', 50],
        ['reviews-v3', 50],
      ],
      [['reviews-v3', 100]],
    ])
    assert.deepEqual(t.refs(), [{ group: '', kind: 'Service', name: 'reviews-v3', port: 9080, weight: 100 }])
    assert.equal(t.state()?.phase, 'promoted')
    assert.equal(t.state()?.stable, 'reviews-v1')
    assert.deepEqual(t.rules().slice(0, -1), [], 'no other rule appeared')
    assert.deepEqual(cluster(t).spec.parentRefs, [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }])
  })

  it('a failed step is reverted to the original backendRefs exactly (relative weights kept)', async () => {
    const route = sample('route-reviews-90-10.yaml')
    const refs = route.spec.rules?.[0]?.backendRefs as BackendRef[]
    refs[0] = { ...refs[0], weight: 9 } as BackendRef
    refs[1] = { ...refs[1], weight: 1, filters: [{ type: 'ResponseHeaderModifier' }] } as BackendRef
    const t = setup({ route, verdicts: ['pass', 'pass', 'fail'] })
    const out = await rollout(t.engine(), [10, 50, 100])
    assert.equal(out.result, 'rolled-back')
    assert.match(out.error?.message ?? '', /failed at 50 %/)
    assert.deepEqual(t.rules(), t.original)
    assert.deepEqual(split(t.refs()), [
      ['reviews-v1', 9],
      ['reviews-v2', 1],
    ])
    assert.equal(t.state()?.phase, 'rolled-back')
  })

  it('a concurrent change of the target rule is refused: theirs stands, the error names the HTTPRoute', async () => {
    const t = setup({
      verdicts: ['pass', 'fail'],
      during: (step, cluster) => {
        if (step.kind !== 'step') return
        const hr = cluster.httpRoute(NS, 'reviews')
        hr.spec.rules = [
          {
            backendRefs: [
              { name: 'reviews-v1', port: 9080, weight: 70 },
              { name: 'reviews-v3', port: 9080, weight: 30 },
            ],
          },
        ]
        cluster.putHttpRoute(hr)
      },
    })
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'unchanged')
    assert.equal(out.canaryWeight, 30)
    assert.match(out.error?.message ?? '', /HTTPRoute bookinfo\/reviews was changed by someone else/)
    assert.match(out.error?.message ?? '', /kubectl -n bookinfo get httproute reviews -o yaml/)
    assert.deepEqual(split(t.refs()), [
      ['reviews-v1', 70],
      ['reviews-v3', 30],
    ])
  })

  it('a conflict from a change elsewhere in the HTTPRoute is re-read and written over it, keeping theirs', async () => {
    const t = setup()
    let once = true
    t.cluster.beforeReplace = (cluster) => {
      if (!once) return
      once = false
      const hr = cluster.httpRoute(NS, 'reviews')
      hr.spec.hostnames = ['reviews.example']
      cluster.putHttpRoute(hr)
    }
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'promoted', out.error?.message)
    assert.deepEqual(cluster(t).spec.hostnames, ['reviews.example'])
    assert.ok(t.log.some((l) => /HTTPRoute bookinfo\/reviews changed since it was read; re-reading/.test(l)))
  })

  it('a write whose answer was lost but which landed (stored with defaults) is found and reverted', async () => {
    const t = setup()
    t.cluster.fail('replaceHttpRoute', { error: transient(), afterApplying: true })
    const out = await rollout(t.engine(), [10, 100])
    assert.equal(out.result, 'rolled-back', out.error?.message)
    assert.deepEqual(t.rules(), t.original)
  })

  it('a preview adds a header rule to the canary first, and removes it again when it fails', async () => {
    let during: HttpRouteRule[] = []
    const t = setup({
      verdicts: ['fail'],
      during: (_s, cluster) => (during = cluster.httpRoute(NS, 'reviews').spec.rules ?? []),
    })
    const engine = t.engine()
    await engine.load()
    const out = await engine.preview('x-canary-preview', 'pr-1', 0)
    assert.equal(out.result, 'rolled-back')
    assert.equal(during.length, 2)
    assert.equal(during[0]?.name, previewRouteName('pr-1'))
    assert.deepEqual(during[0]?.matches, [
      {
        path: { type: 'PathPrefix', value: '/' },
        headers: [{ type: 'Exact', name: 'x-canary-preview', value: 'pr-1' }],
      },
    ])
    assert.deepEqual(split(during[0]?.backendRefs ?? []), [['reviews-v3', 1]])
    assert.deepEqual(during[1], t.original?.[0], 'the target rule untouched')
    assert.deepEqual(t.rules(), t.original)
  })

  it('a passing preview stays; preview-cleanup removes it; a second setPreview writes nothing', async () => {
    const t = setup()
    const engine = t.engine()
    await engine.load()
    assert.equal((await engine.preview('x-canary-preview', 'pr-2', 0)).result, 'previewed')
    assert.equal(t.rules().length, 2)
    const router = t.router()
    await router.load()
    assert.equal(await router.setPreview('reviews-v3', 'x-canary-preview', 'pr-2'), false, 'as the cluster stores it')
    const cleanup = t.engine()
    await cleanup.load()
    assert.equal((await cleanup.previewCleanup('pr-2')).result, 'cleaned-up')
    assert.deepEqual(t.rules(), t.original)
  })

  it('a CRD that prunes rule names (before Gateway API v1.2): the nameless preview is removed, the error says why', async () => {
    const t = setup()
    t.cluster.pruneRuleNames = true
    const engine = t.engine()
    await engine.load()
    const out = await engine.preview('x-canary-preview', 'pr-3', 0)
    assert.notEqual(out.result, 'previewed')
    assert.match(out.error?.message ?? '', /dropped the preview rule's name.*Upgrade the Gateway API CRDs/)
    assert.deepEqual(t.rules(), t.original)
  })
})

function cluster(t: ReturnType<typeof setup>): GatewayHttpRoute {
  return t.cluster.httpRoute(NS, 'reviews')
}

describe('HttpRouteRouter: a rule selected by index, after someone inserted a rule before it', () => {
  const byIndex: TargetRef = { ...TARGET, route: { by: 'index', index: 0 } }
  const qa: HttpRouteRule = {
    matches: [{ headers: [{ type: 'Exact', name: 'x-team', value: 'qa' }] }],
    backendRefs: [{ name: 'reviews-v2', port: 9080 }],
  }

  it('is found again by what istio-canary last wrote: promoted there, the inserted rule kept', async () => {
    const cluster = new FakeCluster()
    cluster.putHttpRoute(sample('route-reviews-v1.yaml'))
    cluster.playGatewayController()
    const log: string[] = []
    const verifier = new ScriptedVerifier([], (step) => {
      if (step.kind !== 'step' || step.weight !== 50) return
      const hr = cluster.httpRoute(NS, 'reviews')
      hr.spec.rules = [structuredClone(qa), ...(hr.spec.rules ?? [])]
      cluster.putHttpRoute(hr)
    })
    const engine = new Engine(
      {
        router: createRouter(cluster, byIndex, { log: (m) => log.push(m) }),
        verifiers: [verifier],
        signal: new AbortController().signal,
        runId: 'run-1',
        log: (m) => log.push(m),
      },
      { stableSubset: 'auto', canarySubset: 'reviews-v3' },
    )
    const out = await rollout(engine, [50, 100])
    assert.equal(out.result, 'promoted', out.error?.message)
    const rules = cluster.httpRoute(NS, 'reviews').spec.rules ?? []
    assert.equal(rules.length, 2)
    assert.deepEqual(rules[0]?.matches?.[0]?.headers, qa.matches?.[0]?.headers, 'the inserted rule kept')
    assert.deepEqual(split(rules[1]?.backendRefs ?? []), [['reviews-v3', 100]])
    assert.ok(
      log.some((m) => /rule #0 of HTTPRoute bookinfo\/reviews moved .*now rule #1/.test(m)),
      log.join('\n'),
    )
  })
})

describe('HttpRouteRouter: manifest target and mesh facts', () => {
  it('manifestTarget: kind HTTPRoute, the index among user rules, backendRefs without the defaults the server adds', async () => {
    const t = setup()
    const engine = t.engine()
    await engine.load()
    await engine.preview('x-canary-preview', 'pr-4', 0)
    const router = t.router()
    await router.load()
    assert.deepEqual(router.manifestTarget({ by: 'default' }), {
      kind: 'HTTPRoute',
      namespace: NS,
      name: 'reviews',
      routeIndex: 0,
      destinations: [{ name: 'reviews-v1', port: 9080, weight: 1 }],
    })
  })

  it('meshFacts: the Gateway API Gateways of the namespace routes, the Service parents, the stable backend, acceptance', async () => {
    const t = setup()
    t.cluster.putHttpRoute(sample('bookinfo-gateway.yaml'))
    const router = t.router()
    await router.load()
    const facts = await router.meshFacts(router.inputRoute())
    assert.deepEqual(
      { ...facts, parents: undefined },
      {
        destinationHost: 'reviews-v1',
        gateways: [],
        gatewayApiGateways: ['bookinfo/bookinfo-gateway'],
        meshParents: ['reviews'],
        parents: undefined,
      },
    )
    assert.equal(facts.parents?.ok, false, 'the route as it is: no parent has reported on it in the fake cluster')
    assert.equal(facts.parents?.pending, true)
  })
})

describe('HttpRouteRouter.accepted (status.parents for the current generation)', () => {
  const serviceParent = { group: '', kind: 'Service', name: 'reviews', port: 9080 }
  const status = (generation: number, resolved: 'True' | 'False' = 'True', parentRef: object = serviceParent) => ({
    parents: [
      {
        parentRef,
        controllerName: 'istio.io/gateway-controller',
        conditions: [
          { type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: generation },
          {
            type: 'ResolvedRefs',
            status: resolved,
            reason: resolved === 'True' ? 'ResolvedRefs' : 'BackendNotFound',
            ...(resolved === 'True' ? {} : { message: 'backend(reviews-v9.bookinfo.svc.cluster.local) not found' }),
            observedGeneration: generation,
          },
        ],
      } as RouteParentStatus,
    ],
  })

  async function loaded(t: ReturnType<typeof setup>): Promise<HttpRouteRouter> {
    const router = new HttpRouteRouter(t.cluster, TARGET, { log: () => {} })
    await router.load()
    return router
  }

  it('no status yet: pending, not ok', async () => {
    const t = setup({ controller: false })
    const a = (await loaded(t)).accepted()
    assert.deepEqual([a.ok, a.pending], [false, true])
    assert.match(a.reasons.join(), /Service bookinfo\/reviews:9080 has not reported/)
  })

  it('Accepted and ResolvedRefs True for the current generation: ok (parentRef matched with its defaults)', async () => {
    const t = setup({ controller: false })
    const generation = cluster(t).metadata.generation as number
    t.cluster.setHttpRouteStatus(NS, 'reviews', status(generation))
    assert.deepEqual((await loaded(t)).accepted(), { ok: true, pending: false, reasons: [] })

    const gw = new FakeCluster()
    gw.putHttpRoute(sample('bookinfo-gateway.yaml'))
    gw.setHttpRouteStatus(NS, 'bookinfo', status(1, 'True', { name: 'bookinfo-gateway' }))
    const g = new HttpRouteRouter(gw, { ...TARGET, name: 'bookinfo' }, { log: () => {} })
    await g.load()
    assert.equal(g.accepted().ok, true)
  })

  it('a status of an earlier generation is pending after a write; the controller reporting makes it ok', async () => {
    const t = setup({ controller: false })
    t.cluster.setHttpRouteStatus(NS, 'reviews', status(1))
    const router = await loaded(t)
    const rule = router.route({ by: 'default' })
    await router.write({ by: 'default' }, rule, router.atWeight(rule, 'reviews-v1', 'reviews-v3', 10), undefined)
    await router.load()
    assert.equal(cluster(t).metadata.generation, 2)
    const a = router.accepted()
    assert.deepEqual([a.ok, a.pending], [false, true])
    assert.match(a.reasons.join(), /has not observed generation 2 yet \(Accepted is of generation 1\)/)
    t.cluster.setHttpRouteStatus(NS, 'reviews', status(2))
    await router.load()
    assert.equal(router.accepted().ok, true)
  })

  it('a parent that rejects the generation (ResolvedRefs False): not ok, not pending, the reason quoted', async () => {
    const t = setup({ controller: false })
    t.cluster.setHttpRouteStatus(NS, 'reviews', status(1, 'False'))
    const a = (await loaded(t)).accepted()
    assert.deepEqual([a.ok, a.pending], [false, false])
    assert.match(
      a.reasons.join(),
      /Service bookinfo\/reviews:9080 \(istio.io\/gateway-controller\): ResolvedRefs is False \(BackendNotFound: backend\(reviews-v9/,
    )
  })

  it('a status for another parent does not count for this one', async () => {
    const t = setup({ controller: false })
    t.cluster.setHttpRouteStatus(NS, 'reviews', status(1, 'True', { ...serviceParent, name: 'ratings' }))
    assert.equal((await loaded(t)).accepted().ok, false)
  })
})
