// GitOps hand-back: only the target route changes, byte for byte everything else stays.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type HandBackTarget, handBack, resolveManifestPath } from '../../src/gitops/manifest.js'
import { REPO_ROOT } from '../support/paths.js'

const fixture = (path: string): string =>
  readFileSync(join(REPO_ROOT, '__tests__/fixtures/istio-samples', path), 'utf8')
const VS: HandBackTarget = { kind: 'VirtualService', namespace: 'bookinfo', name: 'reviews', routeIndex: 0 }
const HR: HandBackTarget = { kind: 'HTTPRoute', namespace: 'bookinfo', name: 'reviews', routeIndex: 0 }
const dest = (subset: string, weight?: number): Record<string, unknown> =>
  weight === undefined
    ? { destination: { host: 'reviews', subset } }
    : { destination: { host: 'reviews', subset }, weight }

/** `text` with `from` (which must occur exactly once) replaced by `to`. */
function edit(text: string, from: string, to: string): string {
  assert.equal(text.split(from).length, 2, `expected exactly one ${JSON.stringify(from)}`)
  return text.replace(from, () => to)
}

describe('handBack: VirtualService', () => {
  it('rewrites the target in the middle of a multi-document file, the others untouched', () => {
    const text = fixture('networking/virtual-service-all-v1.yaml')
    const out = handBack(text, VS, [dest('v3')])
    assert.equal(out.changed, true)
    assert.equal(out.text, edit(text, 'host: reviews\n        subset: v1\n', 'host: reviews\n        subset: v3\n'))
    // a weighted split goes in the same block style and indentation
    const split = handBack(text, VS, [dest('v1', 90), dest('v3', 10)])
    assert.equal(
      split.text,
      edit(
        text,
        '    - destination:\n        host: reviews\n        subset: v1\n',
        '    - destination:\n        host: reviews\n        subset: v1\n      weight: 90\n    - destination:\n        host: reviews\n        subset: v3\n      weight: 10\n',
      ),
    )
  })

  it('promotes a 90/10 block-style split to a single destination (weights and the old item removed)', () => {
    const text = fixture('networking/virtual-service-reviews-90-10.yaml')
    const out = handBack(text, VS, [dest('v3')])
    assert.equal(
      out.text,
      edit(
        text,
        '        subset: v1\n      weight: 90\n    - destination:\n        host: reviews\n        subset: v2\n      weight: 10\n',
        '        subset: v3\n',
      ),
    )
  })

  it("changes only weights in place, in the file's own layout (unindented sequences kept)", () => {
    const text = fixture('networking/virtual-service-reviews-80-20.yaml')
    const out = handBack(text, VS, [dest('v1', 50), dest('v2', 50)])
    assert.equal(out.text, edit(edit(text, 'weight: 80', 'weight: 50'), 'weight: 20', 'weight: 50'))
  })

  it('keeps comments on, inside and around the edited route, and elsewhere', () => {
    const text = [
      '# reviews: canary by istio-canary',
      'apiVersion: networking.istio.io/v1 # v1 API',
      'kind: VirtualService',
      'metadata:',
      '  name: reviews',
      '  namespace: bookinfo',
      'spec:',
      '  hosts: [reviews]',
      '  http:',
      '  # testers see v2',
      '  - match:',
      '    - headers: {end-user: {exact: jason}}',
      '    route:',
      '    - destination: {host: reviews, subset: v2}',
      '  # everyone else',
      '  - route: # the default route',
      '    # stable',
      '    - destination:',
      '        host: reviews # the service',
      '        subset: v1',
      '      weight: 90 # most traffic',
      '    # canary',
      '    - destination:',
      '        host: reviews',
      '        subset: v3',
      '      weight: 10 # a little',
      '    timeout: 10s # keep',
      '# end',
      '',
    ].join('\n')
    const out = handBack(text, { ...VS, routeIndex: 1 }, [dest('v1', 50), dest('v3', 50)])
    assert.equal(
      out.text,
      edit(
        edit(text, 'weight: 90 # most traffic', 'weight: 50 # most traffic'),
        'weight: 10 # a little',
        'weight: 50 # a little',
      ),
    )
    // promoted: the canary's own item (and its comment) stays, the stable one goes; a comment above the
    // whole list ('# stable' here) stays too: it precedes the list, so it is not the removed item's own
    const promoted = handBack(text, { ...VS, routeIndex: 1 }, [dest('v3')])
    assert.equal(
      promoted.text,
      edit(
        text,
        [
          '    - destination:',
          '        host: reviews # the service',
          '        subset: v1',
          '      weight: 90 # most traffic',
          '    # canary',
          '    - destination:',
          '        host: reviews',
          '        subset: v3',
          '      weight: 10 # a little',
          '',
        ].join('\n'),
        ['    # canary', '    - destination:', '        host: reviews', '        subset: v3', ''].join('\n'),
      ),
    )
  })

  it('keeps flow style, with quoted strings still quoted', () => {
    const text = [
      'apiVersion: networking.istio.io/v1',
      'kind: VirtualService',
      'metadata: {name: reviews}',
      'spec:',
      '  hosts: ["reviews"]',
      '  http:',
      '  - route: [{destination: {host: \'reviews\', subset: "v1"}, weight: 90}, {destination: {host: reviews, subset: v3}, weight: 10}] # split',
      '',
    ].join('\n')
    const out = handBack(text, VS, [dest('v1', 25), dest('v3', 75)])
    assert.equal(out.text, edit(edit(text, 'weight: 90}', 'weight: 25}'), 'weight: 10}', 'weight: 75}'))
    const swapped = handBack(text, VS, [dest('v2', 90), dest('v3', 10)])
    assert.equal(swapped.text, edit(text, 'subset: "v1"', 'subset: "v2"'))
    const promoted = handBack(text, VS, [dest('v3')])
    assert.equal(
      promoted.text,
      edit(
        text,
        '[{destination: {host: \'reviews\', subset: "v1"}, weight: 90}, {destination: {host: reviews, subset: v3}, weight: 10}]',
        '[{destination: {host: reviews, subset: v3}}]',
      ),
    )
    // a new destination: the list is written again, still in flow style, the comment after it kept
    const three = handBack(text, VS, [dest('v1', 80), dest('v2', 10), dest('v3', 10)])
    assert.equal(
      three.text,
      edit(
        text,
        '[{destination: {host: \'reviews\', subset: "v1"}, weight: 90}, {destination: {host: reviews, subset: v3}, weight: 10}]',
        '[{destination: {host: reviews, subset: v1}, weight: 80}, {destination: {host: reviews, subset: v2}, weight: 10}, {destination: {host: reviews, subset: v3}, weight: 10}]',
      ),
    )
  })

  it('quotes a new string value that would otherwise read as another type', () => {
    const text =
      'kind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  http:\n  - route:\n    - destination:\n        host: reviews\n        subset: v1\n'
    const out = handBack(text, VS, [dest('1.10')])
    assert.equal(out.text, edit(text, 'subset: v1', 'subset: "1.10"'))
  })

  it('keeps CRLF line endings (in-place edit and re-written list)', () => {
    const lf = fixture('networking/virtual-service-all-v1.yaml')
    const text = lf.replace(/\n/g, '\r\n')
    const out = handBack(text, VS, [dest('v3')])
    assert.equal(
      out.text,
      edit(lf, 'host: reviews\n        subset: v1\n', 'host: reviews\n        subset: v3\n').replace(/\n/g, '\r\n'),
    )
    const split = handBack(text, VS, [dest('v1', 90), dest('v3', 10)])
    assert.equal(
      split.text,
      edit(
        lf,
        '    - destination:\n        host: reviews\n        subset: v1\n',
        '    - destination:\n        host: reviews\n        subset: v1\n      weight: 90\n    - destination:\n        host: reviews\n        subset: v3\n      weight: 10\n',
      ).replace(/\n/g, '\r\n'),
    )
    assert.doesNotMatch(split.text, /[^\r]\n/)
    // flow style in a CRLF file: in place, and written again
    const flow =
      'kind: VirtualService\r\nmetadata: {name: reviews}\r\nspec:\r\n  http:\r\n  - route: [{destination: {host: reviews, subset: v1}}] # only v1\r\n'
    assert.equal(handBack(flow, VS, [dest('v3')]).text, edit(flow, 'subset: v1}', 'subset: v3}'))
    assert.equal(
      handBack(flow, VS, [dest('v1', 90), dest('v3', 10)]).text,
      edit(
        flow,
        '[{destination: {host: reviews, subset: v1}}]',
        '[{destination: {host: reviews, subset: v1}, weight: 90}, {destination: {host: reviews, subset: v3}, weight: 10}]',
      ),
    )
  })

  it('returns the text unchanged when the route already is the given one (any key order)', () => {
    const text = fixture('networking/virtual-service-reviews-90-10.yaml')
    const out = handBack(text, VS, [{ weight: 90, destination: { subset: 'v1', host: 'reviews' } }, dest('v2', 10)])
    assert.deepEqual(out, { text, changed: false })
  })

  it('matches a route by name before its index, and skips istio-canary preview routes when counting', () => {
    const text = [
      'kind: VirtualService',
      'metadata:',
      '  name: reviews',
      'spec:',
      '  http:',
      '  - name: istio-canary-preview-pr-1-abc123',
      '    match: [{headers: {x-canary-preview: {exact: pr-1}}}]',
      '    route: [{destination: {host: reviews, subset: v3}}]',
      '  - name: jason',
      '    match: [{headers: {end-user: {exact: jason}}}]',
      '    route: [{destination: {host: reviews, subset: v2}}]',
      '  - name: primary',
      '    route: [{destination: {host: reviews, subset: v1}}]',
      '',
    ].join('\n')
    const expected = edit(
      text,
      'route: [{destination: {host: reviews, subset: v1}}]',
      'route: [{destination: {host: reviews, subset: v3}}]',
    )
    assert.equal(handBack(text, { ...VS, routeIndex: 1 }, [dest('v3')]).text, expected)
    assert.equal(handBack(text, { ...VS, routeIndex: 0, routeName: 'primary' }, [dest('v3')]).text, expected)
    assert.throws(
      () => handBack(text, { ...VS, routeName: 'other' }, [dest('v3')]),
      /input 'manifest': .*no route named 'other' \(named routes: istio-canary-preview-pr-1-abc123, jason, primary\)/,
    )
    assert.throws(
      () => handBack(text, { ...VS, routeIndex: 2 }, [dest('v3')]),
      /input 'manifest': .*has 2 route\(s\) besides istio-canary's previews; index 2 is out of range/,
    )
  })

  it('matches metadata.namespace when the document has one', () => {
    const text =
      'kind: VirtualService\nmetadata:\n  name: reviews\n  namespace: other\nspec:\n  http:\n  - route: [{destination: {host: reviews, subset: v1}}]\n'
    assert.throws(
      () => handBack(text, VS, [dest('v3')]),
      /input 'manifest': no VirtualService reviews \(namespace bookinfo\) in the file \(it has: VirtualService\/reviews \(namespace other\)\)/,
    )
    assert.equal(handBack(text, { ...VS, namespace: 'other' }, [dest('v3')]).changed, true)
  })

  it('ignores comment-only documents and empty ones between separators', () => {
    const text =
      '# header\n---\n# only a comment\n---\n' + fixture('networking/virtual-service-reviews-v3.yaml') + '---\n---\n'
    const out = handBack(text, VS, [dest('v1')])
    assert.equal(out.text, edit(text, 'subset: v3', 'subset: v1'))
  })
})

describe('handBack: HTTPRoute', () => {
  it("rewrites the rule's backendRefs, in a file with other resources", () => {
    const gateway = fixture('gateway-api/bookinfo-gateway.yaml')
    const route = fixture('gateway-api/route-reviews-90-10.yaml')
    const text = `${gateway}---\n${route}`
    const out = handBack(text, HR, [{ name: 'reviews-v3', port: 9080 }])
    assert.equal(
      out.text,
      `${gateway}---\n${edit(route, '    - name: reviews-v1\n      port: 9080\n      weight: 90\n    - name: reviews-v2\n      port: 9080\n      weight: 10\n', '    - name: reviews-v3\n      port: 9080\n')}`,
    )
  })

  it('changes only the weights of a 50/50 split', () => {
    const text = fixture('gateway-api/route-reviews-50-v3.yaml')
    const out = handBack(text, HR, [
      { name: 'reviews-v1', port: 9080, weight: 10 },
      { name: 'reviews-v3', port: 9080, weight: 90 },
    ])
    assert.equal(
      out.text,
      edit(
        text,
        '      weight: 50\n    - name: reviews-v3\n      port: 9080\n      weight: 50\n',
        '      weight: 10\n    - name: reviews-v3\n      port: 9080\n      weight: 90\n',
      ),
    )
  })

  it('does not take a VirtualService of the same name for the HTTPRoute', () => {
    assert.throws(
      () =>
        handBack(fixture('networking/virtual-service-reviews-90-10.yaml'), HR, [{ name: 'reviews-v3', port: 9080 }]),
      /input 'manifest': no HTTPRoute reviews/,
    )
  })
})

describe('handBack: errors (the function is pure: nothing is written)', () => {
  it('no matching resource names what the file has', () => {
    const text = fixture('networking/destination-rule-all.yaml')
    assert.throws(
      () => handBack(text, VS, [dest('v3')]),
      /input 'manifest': no VirtualService reviews \(namespace bookinfo\) in the file \(it has: DestinationRule\/productpage, DestinationRule\/reviews, DestinationRule\/ratings, DestinationRule\/details\); point 'manifest' at the file it is applied from/,
    )
  })

  it('several matching documents', () => {
    const one = fixture('networking/virtual-service-reviews-v3.yaml')
    assert.throws(
      () => handBack(`${one}---\n${one}`, VS, [dest('v1')]),
      /input 'manifest': 2 documents in the file match VirtualService reviews \(namespace bookinfo\); keep one per file/,
    )
  })

  it('no such route index, no route list', () => {
    assert.throws(
      () => handBack(fixture('networking/virtual-service-reviews-v3.yaml'), { ...VS, routeIndex: 1 }, [dest('v1')]),
      /input 'manifest': .*index 1 is out of range/,
    )
    const redirect = 'kind: VirtualService\nmetadata: {name: reviews}\nspec:\n  http:\n  - redirect: {uri: /v1}\n'
    assert.throws(
      () => handBack(redirect, VS, [dest('v1')]),
      /input 'manifest': .*spec\.http\[0\] has no 'route' to hand back/,
    )
    assert.throws(
      () => handBack('kind: VirtualService\nmetadata: {name: reviews}\nspec: {}\n', VS, [dest('v1')]),
      /input 'manifest': .*has no spec\.http list/,
    )
  })

  it('a value to write back that is not a list', () => {
    assert.throws(
      () => handBack(fixture('networking/virtual-service-reviews-v3.yaml'), VS, { destination: { host: 'reviews' } }),
      /input 'manifest': the route to write back is not a list/,
    )
  })

  it('not YAML', () => {
    assert.throws(
      () => handBack('kind: VirtualService\nmetadata: {name: reviews\n  bad: [\n', VS, [dest('v1')]),
      /input 'manifest': the file is not valid YAML/,
    )
    assert.throws(
      () => handBack('a: 1\n a: 2\n\t- x', VS, [dest('v1')]),
      /input 'manifest': the file is not valid YAML/,
    )
  })
})

describe('resolveManifestPath', () => {
  let root: string
  let ws: string
  before(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'manifest-test-')))
    ws = join(root, 'ws')
    mkdirSync(join(ws, 'deploy', 'bookinfo'), { recursive: true })
    writeFileSync(join(ws, 'deploy', 'bookinfo', 'reviews-vs.yaml'), 'kind: VirtualService\n')
    writeFileSync(join(root, 'outside.yaml'), 'kind: VirtualService\n')
    symlinkSync(join(root, 'outside.yaml'), join(ws, 'escape.yaml'))
    symlinkSync(root, join(ws, 'up'))
    symlinkSync(join(ws, 'deploy'), join(ws, 'linked'))
  })
  after(() => rmSync(root, { recursive: true, force: true }))

  it('resolves a relative path inside the workspace (also through a symlink that stays inside)', () => {
    assert.equal(
      resolveManifestPath(ws, 'deploy/bookinfo/reviews-vs.yaml'),
      join(ws, 'deploy', 'bookinfo', 'reviews-vs.yaml'),
    )
    assert.equal(
      resolveManifestPath(ws, './deploy/../deploy/bookinfo/reviews-vs.yaml'),
      join(ws, 'deploy', 'bookinfo', 'reviews-vs.yaml'),
    )
    assert.equal(
      resolveManifestPath(ws, join(ws, 'deploy/bookinfo/reviews-vs.yaml')),
      join(ws, 'deploy', 'bookinfo', 'reviews-vs.yaml'),
    )
    assert.equal(
      resolveManifestPath(ws, 'linked/bookinfo/reviews-vs.yaml'),
      join(ws, 'deploy', 'bookinfo', 'reviews-vs.yaml'),
    )
  })

  it('refuses paths outside the workspace: .., absolute elsewhere, symlinks leading out', () => {
    assert.throws(
      () => resolveManifestPath(ws, '../outside.yaml'),
      /input 'manifest': '\.\.\/outside\.yaml' is outside the workspace/,
    )
    assert.throws(
      () => resolveManifestPath(ws, join(root, 'outside.yaml')),
      /input 'manifest': '.*outside\.yaml' is outside the workspace/,
    )
    assert.throws(
      () => resolveManifestPath(ws, '/etc/passwd'),
      /input 'manifest': '\/etc\/passwd' is outside the workspace/,
    )
    assert.throws(
      () => resolveManifestPath(ws, 'escape.yaml'),
      /input 'manifest': 'escape\.yaml' resolves through a symbolic link to .*outside\.yaml, outside the workspace/,
    )
    assert.throws(
      () => resolveManifestPath(ws, 'up/outside.yaml'),
      /input 'manifest': 'up\/outside\.yaml' resolves through a symbolic link/,
    )
    assert.throws(() => resolveManifestPath(ws, '.'), /input 'manifest': '\.' is the workspace itself/)
  })

  it('a missing file or an empty input is a clear error', () => {
    assert.throws(
      () => resolveManifestPath(ws, 'deploy/nope.yaml'),
      /input 'manifest': 'deploy\/nope\.yaml' does not exist in the workspace/,
    )
    assert.throws(() => resolveManifestPath(ws, ' '), /input 'manifest': is empty/)
  })
})
