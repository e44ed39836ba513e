import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { load } from 'js-yaml'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { HttpRoute, VirtualServiceSpec } from '../../src/k8s/resources.js'
import {
  apportion,
  canaryWeightOf,
  findRouteIndex,
  previewRouteName,
  resolveStableSubset,
  routeAtWeight,
  sameRoute,
  weightsOf,
  withPreviewRoute,
  withoutPreviewRoute,
} from '../../src/routing/vs-routes.js'
import { REPO_ROOT } from '../support/paths.js'

const fixture = (name: string): VirtualServiceSpec =>
  (
    load(readFileSync(join(REPO_ROOT, '__tests__/fixtures/istio-samples/networking', name), 'utf8')) as {
      spec: VirtualServiceSpec
    }
  ).spec

const jason = fixture('virtual-service-reviews-jason-v2-v3.yaml')
const split9010 = fixture('virtual-service-reviews-90-10.yaml')
const v3only = fixture('virtual-service-reviews-v3.yaml')
const route = (spec: VirtualServiceSpec, i: number): HttpRoute => (spec.http ?? [])[i] as HttpRoute

describe('findRouteIndex', () => {
  it('defaults to the last route without match (jason header route skipped)', () => {
    assert.equal(findRouteIndex(jason, { by: 'default' }, 'reviews'), 1)
  })
  it('selects by index and by name, with clear errors', () => {
    assert.equal(findRouteIndex(jason, { by: 'index', index: 0 }, 'reviews'), 0)
    assert.throws(
      () => findRouteIndex(jason, { by: 'index', index: 2 }, 'reviews'),
      /has 2 http route\(s\) besides istio-canary's previews; index 2 is out of range \(0\.\.1\)/,
    )
    const named: VirtualServiceSpec = {
      http: [{ name: 'primary', route: [{ destination: { host: 'reviews', subset: 'v1' } }] }],
    }
    assert.equal(findRouteIndex(named, { by: 'name', name: 'primary' }, 'reviews'), 0)
    assert.throws(
      () => findRouteIndex(named, { by: 'name', name: 'other' }, 'reviews'),
      /no http route named 'other' \(named routes: primary\)/,
    )
  })
  it('refuses a VirtualService without a default route or without http routes', () => {
    const onlyMatch: VirtualServiceSpec = {
      http: [{ match: [{ uri: { prefix: '/' } }], route: [{ destination: { host: 'a' } }] }],
    }
    assert.throws(() => findRouteIndex(onlyMatch, { by: 'default' }, 'x'), /no default route/)
    assert.throws(() => findRouteIndex({ hosts: ['a'] }, { by: 'default' }, 'x'), /no http routes/)
  })
  it('refuses redirect routes (no destinations)', () => {
    const redirect: VirtualServiceSpec = { http: [{ redirect: { uri: '/new' } }] }
    assert.throws(() => findRouteIndex(redirect, { by: 'index', index: 0 }, 'x'), /has no destinations/)
  })
  it('does not take a preview route for the default route, nor count previews in indexes', () => {
    const spec = withPreviewRoute(v3only, 0, 'v4', 'x-canary-preview', 'pr-1')
    assert.equal(findRouteIndex(spec, { by: 'default' }, 'reviews'), 1)
    const withPreview = withPreviewRoute(jason, 1, 'v3', 'x-canary-preview', 'pr-1')
    assert.equal(
      findRouteIndex(withPreview, { by: 'index', index: 0 }, 'reviews'),
      1,
      'the jason route, after the preview',
    )
    assert.equal(findRouteIndex(withPreview, { by: 'index', index: 1 }, 'reviews'), 2)
    assert.throws(
      () => findRouteIndex(withPreview, { by: 'index', index: 2 }, 'reviews'),
      /has 2 http route\(s\) besides istio-canary's previews; index 2 is out of range \(0\.\.1\)/,
    )
  })
})

describe('weights', () => {
  it('reads a lone destination without weight as 100 and a split as written', () => {
    assert.deepEqual([...weightsOf(route(v3only, 0))], [['v3', 100]])
    assert.deepEqual(
      [...weightsOf(route(split9010, 0))],
      [
        ['v1', 90],
        ['v2', 10],
      ],
    )
    assert.equal(canaryWeightOf(route(split9010, 0), 'v2'), 10)
    assert.equal(canaryWeightOf(route(split9010, 0), 'v3'), 0)
  })
  it('reads weights as shares, as Istio does since 1.15 (integers summing to 100)', () => {
    const r = (...w: Array<[string, number]>): HttpRoute => ({
      route: w.map(([subset, weight]) => ({ destination: { host: 'reviews', subset }, weight })),
    })
    assert.deepEqual(
      [...weightsOf(r(['v1', 9], ['v3', 1]))],
      [
        ['v1', 90],
        ['v3', 10],
      ],
    )
    assert.deepEqual(
      [...weightsOf(r(['v1', 1], ['v2', 1], ['v3', 1]))],
      [
        ['v1', 34],
        ['v2', 33],
        ['v3', 33],
      ],
    )
    assert.deepEqual(
      [...weightsOf(r(['v1', 300], ['v3', 100]))],
      [
        ['v1', 75],
        ['v3', 25],
      ],
    )
    assert.equal(canaryWeightOf(r(['v1', 9], ['v3', 1]), 'v3'), 10)
    // Derived routes are written in percent from the base's shares.
    assert.deepEqual(
      routeAtWeight(r(['v1', 9], ['v2', 3]), 'v1', 'v3', 20).route?.map((d) => d.weight),
      [60, 20, 20],
    )
  })
  it('auto stable = highest weight other than the canary', () => {
    assert.equal(resolveStableSubset(route(split9010, 0), 'auto', 'v3'), 'v1')
    assert.equal(resolveStableSubset(route(split9010, 0), 'auto', 'v1'), 'v2')
    assert.equal(resolveStableSubset(route(split9010, 0), 'v2', 'v3'), 'v2')
    assert.throws(() => resolveStableSubset(route(v3only, 0), 'auto', 'v3'), /set the 'stable-subset' input/)
  })
  it('apportions exactly by largest remainder', () => {
    assert.deepEqual(apportion([90, 10], 75), [68, 7])
    assert.deepEqual(apportion([1, 1, 1], 100), [34, 33, 33])
    assert.deepEqual(apportion([0, 0], 50), [50, 0])
    for (let total = 0; total <= 100; total++) {
      assert.equal(
        apportion([70, 20, 10], total).reduce((a, b) => a + b, 0),
        total,
      )
    }
  })
})

describe('routeAtWeight', () => {
  const v1: HttpRoute = {
    route: [{ destination: { host: 'reviews', subset: 'v1', port: { number: 9080 } } }],
    timeout: '10s',
    retries: { attempts: 3 },
  }
  it('splits stable/canary for every weight, summing to 100, keeping host/port and other fields', () => {
    for (let w = 1; w <= 99; w++) {
      const r = routeAtWeight(v1, 'v1', 'v3', w)
      assert.deepEqual(r.route, [
        { destination: { host: 'reviews', subset: 'v1', port: { number: 9080 } }, weight: 100 - w },
        { destination: { host: 'reviews', subset: 'v3', port: { number: 9080 } }, weight: w },
      ])
      assert.equal(r['timeout'], '10s')
      assert.deepEqual(r['retries'], { attempts: 3 })
    }
  })
  it('leaves the route clean at 100: one destination, the canary, no weight', () => {
    assert.deepEqual(routeAtWeight(v1, 'v1', 'v3', 100).route, [
      { destination: { host: 'reviews', subset: 'v3', port: { number: 9080 } } },
    ])
  })
  it('gives back the base unchanged at 0', () => {
    assert.ok(sameRoute(routeAtWeight(v1, 'v1', 'v3', 0), v1))
    assert.ok(sameRoute(routeAtWeight(route(split9010, 0), 'v1', 'v3', 0), route(split9010, 0)))
  })
  it('scales multi-destination routes proportionally', () => {
    const r = routeAtWeight(route(split9010, 0), 'v1', 'v3', 50)
    assert.deepEqual(
      r.route?.map((d) => [d.destination.subset, d.weight]),
      [
        ['v1', 45],
        ['v2', 5],
        ['v3', 50],
      ],
    )
    const r2 = routeAtWeight(route(split9010, 0), 'v1', 'v3', 95)
    // v2's share rounds to 0 and is dropped; the stable destination always stays
    assert.deepEqual(
      r2.route?.map((d) => [d.destination.subset, d.weight]),
      [
        ['v1', 5],
        ['v3', 95],
      ],
    )
  })
  it('continues a route that already sends some traffic to the canary', () => {
    const start: HttpRoute = {
      route: [
        { destination: { host: 'reviews', subset: 'v1' }, weight: 90 },
        { destination: { host: 'reviews', subset: 'v3' }, weight: 10 },
      ],
    }
    assert.deepEqual(
      routeAtWeight(start, 'v1', 'v3', 25).route?.map((d) => [d.destination.subset, d.weight]),
      [
        ['v1', 75],
        ['v3', 25],
      ],
    )
  })
  it('does not alter its input', () => {
    const copy = structuredClone(v1)
    routeAtWeight(v1, 'v1', 'v3', 40)
    assert.deepEqual(v1, copy)
  })
  it('rejects weights outside 0..100 and a missing stable destination', () => {
    assert.throws(() => routeAtWeight(v1, 'v1', 'v3', 101), /not an integer in 0\.\.100/)
    assert.throws(() => routeAtWeight(v1, 'v1', 'v3', 2.5), /not an integer/)
    assert.throws(() => routeAtWeight(v1, 'v2', 'v3', 10), /no destination with subset 'v2'/)
  })
})

describe('preview routes', () => {
  it('inserts before every other route, exact header match, canary destination; the rest untouched', () => {
    const spec = withPreviewRoute(jason, 1, 'v3', 'x-canary-preview', 'pr-123')
    assert.equal(spec.http?.length, 3)
    assert.deepEqual(spec.http?.[0], {
      name: 'istio-canary-preview-pr-123-e0045420',
      match: [{ headers: { 'x-canary-preview': { exact: 'pr-123' } } }],
      route: [{ destination: { host: 'reviews', subset: 'v3' } }],
    })
    assert.deepEqual(spec.http?.slice(1), jason.http)
    assert.deepEqual(spec.hosts, jason.hosts)
  })
  it("keeps the target route's matches (ANDed with the header) and its settings, only its destinations change", () => {
    const spec: VirtualServiceSpec = {
      hosts: ['reviews'],
      http: [
        {
          name: 'api',
          match: [{ uri: { prefix: '/api' }, headers: { 'X-Canary-Preview': { exact: 'theirs' } } }, { port: 9080 }],
          rewrite: { uri: '/' },
          timeout: '2s',
          retries: { attempts: 3, perTryTimeout: '1s' },
          headers: { request: { set: { 'x-route': 'api' } } },
          route: [
            { destination: { host: 'reviews', subset: 'v1', port: { number: 9080 } }, weight: 100 },
            { destination: { host: 'reviews', subset: 'v3', port: { number: 9080 } }, weight: 0 },
          ],
        },
      ],
    }
    const preview = withPreviewRoute(spec, 0, 'v3', 'x-canary-preview', 'pr-9').http?.[0]
    assert.deepEqual(preview, {
      name: 'istio-canary-preview-pr-9-0359a07b',
      match: [
        { uri: { prefix: '/api' }, headers: { 'x-canary-preview': { exact: 'pr-9' } } },
        { port: 9080, headers: { 'x-canary-preview': { exact: 'pr-9' } } },
      ],
      rewrite: { uri: '/' },
      timeout: '2s',
      retries: { attempts: 3, perTryTimeout: '1s' },
      headers: { request: { set: { 'x-route': 'api' } } },
      route: [{ destination: { host: 'reviews', subset: 'v3', port: { number: 9080 } } }],
    })
    assert.deepEqual(spec.http?.[0]?.match?.[0], {
      uri: { prefix: '/api' },
      headers: { 'X-Canary-Preview': { exact: 'theirs' } },
    })
  })
  it('is idempotent per value and removable', () => {
    const once = withPreviewRoute(jason, 1, 'v3', 'x-canary-preview', 'pr-1')
    const twice = withPreviewRoute(once, 2, 'v3', 'x-canary-preview', 'pr-1')
    assert.deepEqual(twice, once)
    const two = withPreviewRoute(once, 2, 'v3', 'x-canary-preview', 'pr-2')
    assert.equal(two.http?.length, 4)
    const { spec, removed } = withoutPreviewRoute(two, 'pr-1')
    assert.ok(removed)
    assert.deepEqual(
      spec.http?.map((r) => r.name),
      ['istio-canary-preview-pr-2-98a5b6ff', undefined, undefined],
    )
    assert.deepEqual(withoutPreviewRoute(jason, 'pr-1'), { spec: jason, removed: false })
  })
  it('names routes safely', () => {
    assert.equal(previewRouteName('PR 123/feature'), 'istio-canary-preview-pr-123-feature-918d268f')
    assert.equal(previewRouteName('***'), 'istio-canary-preview-596f4162')
    // values that read alike never share a route
    assert.notEqual(previewRouteName('feature/login'), previewRouteName('Feature_Login'))
    const long = 'dependabot/npm_and_yarn/typescript-eslint-8.1.0'
    assert.notEqual(previewRouteName(long), previewRouteName(long.replace('8.1.0', '8.2.0')))
    const both = withPreviewRoute(withPreviewRoute(jason, 1, 'v3', 'h', 'feature/login'), 2, 'v3', 'h', 'Feature_Login')
    assert.equal(both.http?.length, 4)
    assert.deepEqual(
      (withoutPreviewRoute(both, 'Feature_Login').spec.http?.[0]?.match?.[0] as { headers: unknown }).headers,
      { h: { exact: 'feature/login' } },
    )
  })
})
