// The pure HTTPRoute rule logic (src/routing/hr-rules.ts), on Istio's BookInfo Gateway API manifests where they fit.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadAll } from 'js-yaml'
import type { GatewayHttpRoute, GatewayHttpRouteSpec, HttpRouteRule } from '../../src/k8s/resources.js'
import {
  backendWeightOf,
  findRuleIndex,
  isCatchAllRule,
  normalRule,
  previewRouteName,
  previewRule,
  resolveStableBackend,
  ruleAtWeight,
  sameRule,
  shadowingRule,
  sharesOf,
  withPreviewRule,
  withoutPreviewRule,
} from '../../src/routing/hr-rules.js'
import { previewRouteName as vsPreviewRouteName } from '../../src/routing/vs-routes.js'
import { ISTIO_SAMPLES } from '../support/paths.js'

/** The HTTPRoute of a BookInfo gateway-api manifest (bookinfo-gateway.yaml holds a Gateway and an HTTPRoute). */
function fixture(name: string): GatewayHttpRoute {
  const docs = loadAll(readFileSync(join(ISTIO_SAMPLES, 'gateway-api', name), 'utf8')) as GatewayHttpRoute[]
  const route = docs.find((d) => d?.kind === 'HTTPRoute')
  if (!route) throw new Error(`no HTTPRoute in ${name}`)
  return route
}
const rule = (spec: GatewayHttpRouteSpec, i = 0): HttpRouteRule => (spec.rules ?? [])[i] as HttpRouteRule

const v1Only = fixture('route-reviews-v1.yaml').spec
const split9010 = fixture('route-reviews-90-10.yaml').spec
const split5050 = fixture('route-reviews-50-v3.yaml').spec
const bookinfo = fixture('bookinfo-gateway.yaml').spec

const weights = (r: HttpRouteRule): Array<[string, number | undefined]> =>
  (r.backendRefs ?? []).map((b) => [b.name, b.weight])
const sum = (r: HttpRouteRule): number => (r.backendRefs ?? []).reduce((a, b) => a + (b.weight ?? 0), 0)

describe('findRuleIndex', () => {
  it('defaults to the last rule without matches (BookInfo reviews)', () => {
    assert.equal(findRuleIndex(split9010, { by: 'default' }, 'reviews'), 0)
  })

  it('takes a rule whose matches the API server defaulted to PathPrefix / as one without matches', () => {
    const stored: GatewayHttpRouteSpec = {
      rules: [
        { matches: [{ headers: [{ name: 'end-user', value: 'jason' }] }], backendRefs: [{ name: 'reviews-v2' }] },
        { matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'reviews-v1' }] },
      ],
    }
    assert.equal(findRuleIndex(stored, { by: 'default' }, 'reviews'), 1)
    assert.equal(isCatchAllRule(rule(stored, 0)), false)
  })

  it('refuses a route whose every rule has matches (BookInfo productpage) and names the input', () => {
    assert.throws(
      () => findRuleIndex(bookinfo, { by: 'default' }, 'bookinfo'),
      /HTTPRoute 'bookinfo' has no default rule \(a rule without matches\); name the rule to shift with the 'route' input/,
    )
    assert.equal(findRuleIndex(bookinfo, { by: 'index', index: 0 }, 'bookinfo'), 0)
  })

  it('selects by name and by index among the user rules, previews not counted', () => {
    const named: GatewayHttpRouteSpec = {
      rules: [
        { name: previewRouteName('pr-1'), backendRefs: [{ name: 'reviews-v3' }] },
        { name: 'api', matches: [{ path: { value: '/api' } }], backendRefs: [{ name: 'reviews-v1' }] },
        { name: 'rest', backendRefs: [{ name: 'reviews-v1' }] },
      ],
    }
    assert.equal(findRuleIndex(named, { by: 'name', name: 'rest' }, 'reviews'), 2)
    assert.equal(findRuleIndex(named, { by: 'index', index: 0 }, 'reviews'), 1)
    assert.equal(findRuleIndex(named, { by: 'default' }, 'reviews'), 2, 'a preview rule is never the default')
    assert.throws(
      () => findRuleIndex(named, { by: 'index', index: 2 }, 'reviews'),
      /has 2 rule\(s\) besides istio-canary's previews; index 2 is out of range \(0\.\.1\)/,
    )
    assert.throws(
      () => findRuleIndex(named, { by: 'name', name: 'other' }, 'reviews'),
      /no rule named 'other' \(named rules: istio-canary-preview-pr-1-[0-9a-f]{8}, api, rest\)/,
    )
    assert.throws(() => findRuleIndex(v1Only, { by: 'name', name: 'x' }, 'reviews'), /Gateway API v1\.2 or later/)
  })

  it('refuses a rule without backendRefs (a redirect) and a route without rules', () => {
    const redirect: GatewayHttpRouteSpec = {
      rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https' } }] }],
    }
    assert.throws(() => findRuleIndex(redirect, { by: 'default' }, 'r'), /has no backendRefs \(a redirect rule/)
    assert.throws(() => findRuleIndex({ parentRefs: [] }, { by: 'default' }, 'r'), /has no rules to shift/)
  })
})

describe('shadowingRule', () => {
  it('an earlier rule with the same matches takes the tie; a more specific rule is never shadowed by order', () => {
    const rules: HttpRouteRule[] = [
      { backendRefs: [{ name: 'a' }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'b' }] },
      { matches: [{ path: { type: 'Exact', value: '/productpage' } }], backendRefs: [{ name: 'c' }] },
    ]
    assert.equal(shadowingRule(rules, 1), 0)
    assert.equal(shadowingRule(rules, 2), -1)
    assert.equal(shadowingRule(rules, 0), -1)
  })
})

describe('shares: relative weights as integers summing to 100', () => {
  it('reads BookInfo 90/10 and 50/50', () => {
    assert.deepEqual(
      [...sharesOf(rule(split9010))],
      [
        ['reviews-v1', 90],
        ['reviews-v2', 10],
      ],
    )
    assert.deepEqual(
      [...sharesOf(rule(split5050))],
      [
        ['reviews-v1', 50],
        ['reviews-v3', 50],
      ],
    )
  })

  it('a weight left out counts 1 (a lone backendRef takes everything; two take half each)', () => {
    assert.deepEqual([...sharesOf(rule(v1Only))], [['reviews-v1', 100]])
    assert.deepEqual(
      [...sharesOf({ backendRefs: [{ name: 'a' }, { name: 'b' }] })],
      [
        ['a', 50],
        ['b', 50],
      ],
    )
    assert.equal(backendWeightOf({ backendRefs: [{ name: 'a' }, { name: 'b', weight: 3 }] }, 'b'), 75)
  })

  it('weights need not sum to 100: 9/1 is 90/10, and 1/1/1 apportions by largest remainder', () => {
    assert.equal(
      backendWeightOf(
        {
          backendRefs: [
            { name: 'a', weight: 9 },
            { name: 'b', weight: 1 },
          ],
        },
        'b',
      ),
      10,
    )
    const thirds = sharesOf({ backendRefs: [{ name: 'a' }, { name: 'b' }, { name: 'c' }] })
    assert.deepEqual([...thirds.values()], [34, 33, 33])
  })

  it('resolves the stable backend: the largest share other than the canary, or as asked', () => {
    assert.equal(resolveStableBackend(rule(split9010), 'auto', 'reviews-v3'), 'reviews-v1')
    assert.equal(resolveStableBackend(rule(split5050), 'auto', 'reviews-v1'), 'reviews-v3')
    assert.equal(resolveStableBackend(rule(split9010), 'reviews-v2', 'reviews-v3'), 'reviews-v2')
    assert.throws(() => resolveStableBackend(rule(v1Only), 'auto', 'reviews-v1'), /set the 'stable-backend' input/)
  })
})

describe('ruleAtWeight', () => {
  it('from BookInfo v1 alone: the canary is the stable backendRef under its name (port kept), integers to 100', () => {
    const at10 = ruleAtWeight(rule(v1Only), 'reviews-v1', 'reviews-v3', 10)
    assert.deepEqual(at10.backendRefs, [
      { name: 'reviews-v1', port: 9080, weight: 90 },
      { name: 'reviews-v3', port: 9080, weight: 10 },
    ])
    assert.deepEqual(ruleAtWeight(rule(v1Only), 'reviews-v1', 'reviews-v3', 100).backendRefs, [
      { name: 'reviews-v3', port: 9080, weight: 100 },
    ])
  })

  it('at 0 the base comes back exactly (relative weights, omitted weights and all)', () => {
    const base: HttpRouteRule = { backendRefs: [{ name: 'a', weight: 9 }, { name: 'b' }] }
    assert.deepEqual(ruleAtWeight(base, 'a', 'c', 0), base)
    assert.notEqual(ruleAtWeight(base, 'a', 'c', 0), base, 'a copy')
  })

  it('the other backends share the rest in their proportions; every weight an integer, summing to 100', () => {
    const base: HttpRouteRule = {
      backendRefs: [
        { name: 'a', weight: 2 },
        { name: 'b', weight: 1 },
        { name: 'c', weight: 0 },
      ],
    }
    for (const w of [1, 7, 10, 33, 50, 99]) {
      const next = ruleAtWeight(base, 'a', 'c', w)
      assert.equal(sum(next), 100, `at ${w}`)
      assert.ok((next.backendRefs ?? []).every((b) => Number.isInteger(b.weight)))
      assert.equal(backendWeightOf(next, 'c'), w)
    }
    assert.deepEqual(weights(ruleAtWeight(base, 'a', 'c', 10)), [
      ['a', 60],
      ['b', 30],
      ['c', 10],
    ])
    // b's share rounds to nothing: it stays, at weight 0 (SPEC section 7 rule 2: every other backendRef stays).
    assert.deepEqual(weights(ruleAtWeight(base, 'a', 'c', 99)), [
      ['a', 1],
      ['b', 0],
      ['c', 99],
    ])
    // A parked backend (weight 0) stays parked through the steps; at 100 % the canary alone is left.
    const parked: HttpRouteRule = {
      backendRefs: [
        { name: 'a', weight: 100, port: 9080 },
        { name: 'old', weight: 0, port: 9080 },
      ],
    }
    assert.deepEqual(ruleAtWeight(parked, 'a', 'c', 25).backendRefs, [
      { name: 'a', weight: 75, port: 9080 },
      { name: 'old', weight: 0, port: 9080 },
      { name: 'c', weight: 25, port: 9080 },
    ])
    assert.deepEqual(weights(ruleAtWeight(parked, 'a', 'c', 100)), [['c', 100]])
  })

  it('keeps every other field of every backendRef and of the rule', () => {
    const base: HttpRouteRule = {
      name: 'main',
      matches: [{ path: { type: 'PathPrefix', value: '/' } }],
      filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'x', value: '1' }] } }],
      timeouts: { request: '10s' },
      backendRefs: [
        {
          group: '',
          kind: 'Service',
          name: 'reviews-v1',
          namespace: 'bookinfo',
          port: 9080,
          weight: 1,
          filters: [{ type: 'ResponseHeaderModifier' }],
        },
        { group: '', kind: 'Service', name: 'reviews-v3', port: 9081, weight: 0 },
      ],
    }
    const next = ruleAtWeight(base, 'reviews-v1', 'reviews-v3', 25)
    assert.deepEqual(next, {
      ...base,
      backendRefs: [
        { ...base.backendRefs?.[0], weight: 75 },
        { group: '', kind: 'Service', name: 'reviews-v3', port: 9081, weight: 25 },
      ],
    })
  })

  it('refuses a weight outside 0..100 or a stable backend the rule does not have', () => {
    assert.throws(() => ruleAtWeight(rule(v1Only), 'reviews-v1', 'reviews-v3', 101), /not an integer in 0\.\.100/)
    assert.throws(() => ruleAtWeight(rule(v1Only), 'reviews-v1', 'reviews-v3', 2.5), /not an integer/)
    assert.throws(() => ruleAtWeight(rule(v1Only), 'reviews-v2', 'reviews-v3', 10), /no backendRef named 'reviews-v2'/)
  })
})

describe('sameRule: compared as the API server stores them', () => {
  it('a written rule equals its stored form (defaults written in) and differs on a weight', () => {
    const written = ruleAtWeight(rule(v1Only), 'reviews-v1', 'reviews-v3', 10)
    const stored: HttpRouteRule = {
      matches: [{ path: { type: 'PathPrefix', value: '/' } }],
      backendRefs: (written.backendRefs ?? []).map((b) => ({ group: '', kind: 'Service', ...b })),
    }
    assert.ok(sameRule(written, stored))
    assert.ok(sameRule({ backendRefs: [{ name: 'a' }] }, { backendRefs: [{ name: 'a', weight: 1 }] }))
    assert.ok(!sameRule(written, ruleAtWeight(rule(v1Only), 'reviews-v1', 'reviews-v3', 20)))
    assert.ok(!sameRule(written, undefined))
  })

  it('normalRule writes in header match types and the default path', () => {
    const n = normalRule({ matches: [{ headers: [{ name: 'h', value: 'v' }] }], backendRefs: [{ name: 'a' }] })
    assert.deepEqual(n.matches, [
      { path: { type: 'PathPrefix', value: '/' }, headers: [{ type: 'Exact', name: 'h', value: 'v' }] },
    ])
  })
})

describe('preview rules', () => {
  it('is named by the same digest scheme as a VirtualService preview', () => {
    assert.equal(previewRouteName('PR 42'), vsPreviewRouteName('PR 42'))
    assert.match(previewRouteName('PR 42'), /^istio-canary-preview-pr-42-[0-9a-f]{8}$/)
  })

  it('the default rule: one exact header match to the canary alone, inserted first; the rest as it was', () => {
    const spec = withPreviewRule(split9010, 0, 'reviews-v3', 'x-canary', 'pr-1')
    assert.equal(spec.rules?.length, 2)
    assert.deepEqual(spec.rules?.[0], {
      name: previewRouteName('pr-1'),
      matches: [
        { path: { type: 'PathPrefix', value: '/' }, headers: [{ type: 'Exact', name: 'x-canary', value: 'pr-1' }] },
      ],
      backendRefs: [{ name: 'reviews-v3', port: 9080 }],
    })
    assert.deepEqual(spec.rules?.[1], rule(split9010))
    assert.deepEqual(spec.parentRefs, split9010.parentRefs)
  })

  it("a rule with matches: the preview keeps each match's path and adds the header (outranks the rule)", () => {
    const target = rule(bookinfo)
    const preview = previewRule(target, 'productpage-v2', 'X-Canary', 'pr-2')
    assert.equal(preview.matches?.length, target.matches?.length)
    preview.matches?.forEach((m, i) => {
      assert.deepEqual(m.path, target.matches?.[i]?.path)
      assert.deepEqual(m.headers, [{ type: 'Exact', name: 'X-Canary', value: 'pr-2' }])
    })
    const own = previewRule(
      {
        matches: [
          {
            headers: [
              { name: 'x-canary', value: 'old' },
              { name: 'a', value: 'b' },
            ],
          },
        ],
        backendRefs: [{ name: 'p' }],
      },
      'q',
      'X-Canary',
      'new',
    )
    assert.deepEqual(own.matches?.[0]?.headers, [
      { name: 'a', value: 'b' },
      { type: 'Exact', name: 'X-Canary', value: 'new' },
    ])
  })

  it('replaces an earlier preview of the same value, and is removed again exactly', () => {
    const once = withPreviewRule(split9010, 0, 'reviews-v3', 'x-canary', 'pr-1')
    const twice = withPreviewRule(once, 1, 'reviews-v2', 'x-canary', 'pr-1')
    assert.equal(twice.rules?.length, 2)
    assert.equal(twice.rules?.[0]?.backendRefs?.[0]?.name, 'reviews-v2')
    const removed = withoutPreviewRule(twice, 'pr-1')
    assert.equal(removed.removed, true)
    assert.deepEqual(removed.spec, split9010)
    assert.equal(withoutPreviewRule(split9010, 'pr-1').removed, false)
  })
})
