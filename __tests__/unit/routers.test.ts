// What both TrafficRouters do alike, side by side, against the in-memory cluster: the resource read and its state,
// finding a selector's route (again, where it moved, told once), the `route` input's shadowing refusal, the
// conditional writes (route and state; preview-only spec changes) and the manifest target. Messages are pinned to
// the byte and API calls counted, so that the code both share (routing/resource-router.ts) says what each said.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConflictError } from '../../src/k8s/resources.js'
import { createRouter } from '../../src/routing/index.js'
import {
  ConcurrentChangeError,
  type Route,
  RouteError,
  type RouteSelector,
  type TargetKind,
  type TrafficRouter,
} from '../../src/routing/router.js'
import { previewRouteName } from '../../src/routing/shares.js'
import { type RolloutState, STATE_ANNOTATION, encodeState } from '../../src/routing/state.js'
import { FakeCluster, type Operation } from '../fakes/cluster.js'

const NS = 'bookinfo'

/** One routing API as the cases below need it: its resource, one of its routes, and its words. */
interface Api {
  kind: TargetKind
  get: Operation
  replace: Operation
  /** A route by name (undefined: none), with a match or catching all, to one version. */
  entry: (name: string | undefined, match: boolean, version: string) => Record<string, unknown>
  /** Stores the resource with these routes and annotations (as someone else would). */
  put: (cluster: FakeCluster, entries: Record<string, unknown>[], annotations?: Record<string, string>) => void
  stored: (cluster: FakeCluster) => Record<string, unknown>[]
  revision: (cluster: FakeCluster) => string | undefined
  stable: string
  canary: string
  words: {
    shadowed: string
    missing: string
    moved: string
    gone: string
    changed: string
    manifestDestinations: unknown
  }
}

const VS: Api = {
  kind: 'VirtualService',
  get: 'getVirtualService',
  replace: 'replaceVirtualService',
  entry: (name, match, version) => ({
    ...(name ? { name } : {}),
    ...(match ? { match: [{ uri: { prefix: `/${version}` } }] } : {}),
    route: [{ destination: { host: 'reviews', subset: version } }],
  }),
  put: (cluster, http, annotations) =>
    cluster.put({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: NS, ...(annotations ? { annotations } : {}) },
      spec: { hosts: ['reviews'], http },
    }),
  stored: (cluster) => cluster.virtualService(NS, 'reviews').spec.http ?? [],
  revision: (cluster) => cluster.virtualService(NS, 'reviews').metadata.resourceVersion,
  stable: 'v1',
  canary: 'v3',
  words: {
    shadowed:
      "Input 'route': route 'target' of VirtualService bookinfo/reviews receives no traffic: http route 'all' " +
      "before it has no match and takes every request. Shift route 'all' instead, or give it a match",
    missing:
      "Input 'route': VirtualService 'reviews' has no http route named 'nope' (named routes: all, target, other)",
    moved:
      'http route #0 of VirtualService bookinfo/reviews moved (routes were added or removed before it): ' +
      'found it by what istio-canary last wrote, now http route #1',
    gone:
      'the target route of VirtualService bookinfo/reviews (http route #0) is gone: someone else changed the ' +
      'VirtualService during the run; not writing it (kubectl -n bookinfo get virtualservice reviews -o yaml)',
    changed:
      'the target route of VirtualService bookinfo/reviews was changed by someone else during the run; not ' +
      'overwriting it. It now routes: v2 100 %; istio-canary expected: v1 100 %. ' +
      'Check who changed it (kubectl -n bookinfo get virtualservice reviews -o yaml)',
    manifestDestinations: [{ destination: { host: 'reviews', subset: 'v1' } }],
  },
}

const HR: Api = {
  kind: 'HTTPRoute',
  get: 'getHttpRoute',
  replace: 'replaceHttpRoute',
  entry: (name, match, version) => ({
    ...(name ? { name } : {}),
    ...(match ? { matches: [{ path: { type: 'PathPrefix', value: `/${version}` } }] } : {}),
    backendRefs: [{ name: `reviews-${version}`, port: 9080 }],
  }),
  put: (cluster, rules, annotations) =>
    cluster.putHttpRoute({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'reviews', namespace: NS, ...(annotations ? { annotations } : {}) },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }], rules },
    }),
  stored: (cluster) => cluster.httpRoute(NS, 'reviews').spec.rules ?? [],
  revision: (cluster) => cluster.httpRoute(NS, 'reviews').metadata.resourceVersion,
  stable: 'reviews-v1',
  canary: 'reviews-v3',
  words: {
    shadowed:
      "Input 'route': rule 'target' of HTTPRoute bookinfo/reviews receives no traffic: rule 'all' before it has " +
      "the same matches and takes every request it would. Shift rule 'all' instead, or give the rules different matches",
    missing: "Input 'route': HTTPRoute 'reviews' has no rule named 'nope' (named rules: all, target, other)",
    moved:
      'rule #0 of HTTPRoute bookinfo/reviews moved (rules were added or removed before it): ' +
      'found it by what istio-canary last wrote, now rule #1',
    gone:
      'the target rule of HTTPRoute bookinfo/reviews (rule #0) is gone: someone else changed the HTTPRoute ' +
      'during the run; not writing it (kubectl -n bookinfo get httproute reviews -o yaml)',
    changed:
      'the target rule of HTTPRoute bookinfo/reviews was changed by someone else during the run; not overwriting ' +
      'it. It now routes: reviews-v2 100 %; istio-canary expected: reviews-v1 100 %. ' +
      'Check who changed it (kubectl -n bookinfo get httproute reviews -o yaml)',
    manifestDestinations: [{ name: 'reviews-v1', port: 9080, weight: 1 }],
  },
}

function setup(api: Api, route: RouteSelector = { by: 'index', index: 0 }) {
  const cluster = new FakeCluster()
  const log: string[] = []
  const router = (): TrafficRouter =>
    createRouter(cluster, { kind: api.kind, namespace: NS, name: 'reviews', route }, { log: (m) => log.push(m) })
  /** The API calls made since the last look. */
  const calls = (): Operation[] => cluster.calls.splice(0)
  return { cluster, log, router, calls }
}

/** A router of the resource stored with `entries`, loaded, its calls counted from here. */
async function loaded(
  api: Api,
  entries: Record<string, unknown>[],
  o: { route?: RouteSelector; annotations?: Record<string, string> } = {},
) {
  const t = setup(api, o.route)
  api.put(t.cluster, entries, o.annotations)
  const r = t.router()
  await r.load()
  t.calls()
  return { ...t, r }
}

/** A rollout of `route` (paused, unless said) whose last write is `lastWritten`, as its annotation. */
function paused(
  api: Api,
  route: RouteSelector,
  lastWritten: Route,
  phase: RolloutState['phase'] = 'paused',
): Record<string, string> {
  const state: RolloutState = {
    version: 1,
    phase,
    runId: 'run-1',
    stable: api.stable,
    canary: api.canary,
    route,
    originalRoute: lastWritten,
    lastWritten,
    weight: 0,
    startedAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
  }
  return { [STATE_ANNOTATION]: encodeState(state) }
}

const FIRST: RouteSelector = { by: 'index', index: 0 }

for (const api of [VS, HR]) {
  describe(`${api.kind} router: what every router does alike`, () => {
    /** A write of the first route that someone else beats, leaving `after` in its place. */
    async function beaten(after: Record<string, unknown>[]): Promise<void> {
      const { cluster, r } = await loaded(api, [api.entry(undefined, false, 'v1')])
      const before = r.route(FIRST)
      cluster.beforeReplace = (c) => {
        c.beforeReplace = undefined
        api.put(c, after)
      }
      await r.write(FIRST, before, r.atWeight(before, api.stable, api.canary, 10), undefined)
    }

    it('reads the resource once per load; state and revision follow it; nothing is read before', async () => {
      const t = setup(api)
      const r = t.router()
      assert.throws(() => r.route(FIRST), { message: `internal: ${api.kind} bookinfo/reviews was not read` })
      assert.deepEqual([r.state, r.revision], [undefined, undefined])
      const target = api.entry('target', false, 'v1')
      api.put(t.cluster, [target], paused(api, FIRST, target))
      await r.load()
      assert.deepEqual(t.calls(), [api.get])
      assert.equal(r.state?.runId, 'run-1')
      assert.equal(r.revision, api.revision(t.cluster))
      assert.deepEqual(r.selectorFor(r.route(FIRST), { by: 'default' }), { by: 'name', name: 'target' })
      assert.deepEqual(r.selectorFor(api.entry(undefined, false, 'v1'), { by: 'index', index: 3 }), {
        by: 'index',
        index: 3,
      })
    })

    it("refuses an input route an earlier catch-all shadows, names a missing one as the 'route' input's", async () => {
      const three = () => [
        api.entry('all', false, 'v1'),
        api.entry('target', false, 'v1'),
        api.entry('other', true, 'v2'),
      ]
      const { r } = await loaded(api, three(), { route: { by: 'name', name: 'target' } })
      assert.throws(
        () => r.inputRoute(),
        (err: Error) => err instanceof RouteError && err.message === api.words.shadowed,
      )
      assert.equal(r.inputRoute({ shadowed: 'allow' }).name, 'target')
      const { r: m } = await loaded(api, three(), { route: { by: 'name', name: 'nope' } })
      assert.throws(
        () => m.inputRoute(),
        (err: Error) => err instanceof RouteError && err.message === api.words.missing,
      )
      assert.equal(m.findRoute({ by: 'name', name: 'nope' }), undefined)
    })

    it('follows a rollout route that moved, says so once, and writes it where it is now', async () => {
      const target = api.entry(undefined, false, 'v1')
      // Someone put a route before the one the paused rollout last wrote.
      const t = await loaded(api, [api.entry('new', true, 'v2'), target], { annotations: paused(api, FIRST, target) })
      const { r } = t
      const found = r.route(FIRST)
      assert.ok(r.same(found, target))
      assert.ok(r.same(r.findRoute(FIRST), target))
      assert.ok(r.same(r.inputRoute(), target), 'a rollout in progress follows its route')
      assert.deepEqual(t.log, [api.words.moved])
      assert.deepEqual(r.manifestTarget(FIRST), {
        kind: api.kind,
        namespace: NS,
        name: 'reviews',
        routeIndex: 1,
        destinations: api.words.manifestDestinations,
      })
      const next = r.atWeight(found, api.stable, api.canary, 10)
      await r.write(FIRST, found, next, undefined)
      assert.deepEqual(t.calls(), [api.replace])
      assert.ok(r.same(api.stored(t.cluster)[1], next))
      assert.equal(api.stored(t.cluster)[0]?.name, 'new')
      assert.equal(r.state, undefined)
      assert.deepEqual(t.log, [api.words.moved], 'told once')
    })

    it('a new rollout takes the input as it reads: no following, no log', async () => {
      const target = api.entry(undefined, false, 'v1')
      const t = await loaded(api, [api.entry('new', true, 'v2'), target], {
        annotations: paused(api, FIRST, target, 'promoted'),
      })
      assert.equal(t.r.inputRoute().name, 'new')
      assert.deepEqual(t.log, [])
      // The finished rollout's own reads still find what it last wrote.
      assert.ok(t.r.same(t.r.route(FIRST), target))
      assert.deepEqual(t.log, [api.words.moved])
    })

    it('after a conflict re-reads, and stops when the route is gone or someone else changed it', async () => {
      const t = await loaded(api, [api.entry(undefined, false, 'v1')])
      const route = t.r.route(FIRST)
      t.cluster.fail(api.replace, { error: new ConflictError(409, 'Conflict', 'modified') })
      await t.r.write(FIRST, route, t.r.atWeight(route, api.stable, api.canary, 10), undefined)
      assert.deepEqual(t.calls(), [api.replace, api.get, api.replace])
      assert.deepEqual(t.log, [`${api.kind} bookinfo/reviews changed since it was read; re-reading`])
      await assert.rejects(
        beaten([api.entry(undefined, false, 'v2')]),
        (err: Error) => err instanceof ConcurrentChangeError && err.message === api.words.changed,
      )
      await assert.rejects(
        beaten([]),
        (err: Error) => err instanceof ConcurrentChangeError && err.message === api.words.gone,
      )
    })

    it('preview: one write each way, none when nothing changes, the route before it back in its place', async () => {
      const t = await loaded(api, [api.entry('main', false, 'v1')])
      const { r } = t
      const names = () => api.stored(t.cluster).map((e) => e.name)
      assert.equal(r.previewName('qa'), previewRouteName('qa'))
      assert.equal(await r.setPreview(api.canary, 'x-canary', 'qa'), true)
      assert.deepEqual(t.calls(), [api.replace])
      assert.equal(r.previewRoute('qa')?.name, previewRouteName('qa'))
      assert.deepEqual(names(), [previewRouteName('qa'), 'main'])
      assert.equal(r.manifestTarget({ by: 'name', name: 'main' }).routeIndex, 0, 'previews are not counted')
      assert.equal(r.manifestTarget({ by: 'name', name: 'main' }).routeName, 'main')
      const preview = r.previewRoute('qa')
      assert.equal(await r.setPreview(api.canary, 'x-canary', 'qa'), false)
      assert.deepEqual(t.calls(), [], 'nothing to write')
      assert.equal(await r.restorePreview('qa', undefined), true)
      assert.deepEqual(t.calls(), [api.replace])
      assert.equal(r.previewRoute('qa'), undefined)
      assert.deepEqual(names(), ['main'])
      assert.equal(await r.restorePreview('qa', undefined), false)
      assert.equal(await r.restorePreview('qa', preview), true)
      assert.deepEqual(t.calls(), [api.replace])
      assert.deepEqual(names(), [previewRouteName('qa'), 'main'])
    })

    it('a preview change re-applied on a fresh read after a conflict', async () => {
      const t = await loaded(api, [api.entry('main', false, 'v1')])
      t.cluster.fail(api.replace, { error: new ConflictError(409, 'Conflict', 'modified') })
      assert.equal(await t.r.setPreview(api.canary, 'x-canary', 'qa'), true)
      assert.deepEqual(t.calls(), [api.replace, api.get, api.replace])
      assert.deepEqual(t.log, [`${api.kind} bookinfo/reviews changed since it was read; re-reading`])
    })
  })
}
