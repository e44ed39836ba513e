// Kiali links (input `kiali-url`): the console's real URL shapes (see src/report/kiali.ts for the sources).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { getInputs, InvalidInputs } from '../../src/inputs.js'
import { kialiDuration, kialiLinks, workloadOfPod } from '../../src/report/kiali.js'
import type { RunReport } from '../../src/report/report.js'
import { kialiMarkdown, renderSummaryMarkdown } from '../../src/report/summary.js'

const run = {
  namespace: 'bookinfo',
  startedAt: '2026-03-01T10:00:12.345Z',
  endedAt: '2026-03-01T10:06:40.000Z',
  versions: [
    { role: 'stable' as const, version: 'v1', workload: 'reviews-v1' },
    { role: 'canary' as const, version: 'v3', workload: 'reviews-v3' },
  ],
}
const now = new Date('2026-03-01T10:06:41.000Z')
const FROM = Date.parse('2026-03-01T10:00:00.000Z')
const TO = Date.parse('2026-03-01T10:07:00.000Z')

describe('Kiali links', () => {
  it('graph of the namespace and each version workload, under <web root>/console', () => {
    const links = kialiLinks('https://kiali.example.com/kiali', run, now)
    // 6m29s since the start: the smallest Kiali duration that covers it is 10m
    assert.equal(
      links.graph,
      'https://kiali.example.com/kiali/console/graph/namespaces/?namespaces=bookinfo&graphType=versionedApp&duration=600',
    )
    assert.deepEqual(links.workloads, [
      {
        role: 'stable',
        version: 'v1',
        workload: 'reviews-v1',
        url: `https://kiali.example.com/kiali/console/namespaces/bookinfo/workloads/reviews-v1?tab=in_metrics&from=${FROM}&to=${TO}`,
      },
      {
        role: 'canary',
        version: 'v3',
        workload: 'reviews-v3',
        url: `https://kiali.example.com/kiali/console/namespaces/bookinfo/workloads/reviews-v3?tab=in_metrics&from=${FROM}&to=${TO}`,
      },
    ])
  })

  it('a root install (web_root /) has no /kiali; a trailing slash is not doubled', () => {
    const links = kialiLinks('http://127.0.0.1:20001/', { ...run, versions: [] }, now)
    assert.equal(
      links.graph,
      'http://127.0.0.1:20001/console/graph/namespaces/?namespaces=bookinfo&graphType=versionedApp&duration=600',
    )
    assert.deepEqual(links.workloads, [])
  })

  it('a version without a known workload gets no link', () => {
    const links = kialiLinks('https://k', { ...run, versions: [{ role: 'canary', version: 'v3' }] }, now)
    assert.deepEqual(links.workloads, [])
  })

  it('durations: the smallest of Kiali’s that covers the window', () => {
    assert.equal(kialiDuration(0), 60)
    assert.equal(kialiDuration(60), 60)
    assert.equal(kialiDuration(61), 120)
    assert.equal(kialiDuration(3601), 10800)
    assert.equal(kialiDuration(99_999_999), 2592000)
  })

  it('the workload of a pod, as Istio names it', () => {
    const rsPod = {
      name: 'reviews-v3-7d9c5b9f4d-abcde',
      generateName: 'reviews-v3-7d9c5b9f4d-',
      labels: { app: 'reviews', version: 'v3', 'pod-template-hash': '7d9c5b9f4d' },
      ownerReferences: [{ kind: 'ReplicaSet', name: 'reviews-v3-7d9c5b9f4d', controller: true }],
    }
    assert.equal(workloadOfPod(rsPod), 'reviews-v3')
    assert.equal(
      workloadOfPod({ ...rsPod, labels: { ...rsPod.labels, 'service.istio.io/workload-name': 'rv3' } }),
      'rv3',
    )
    assert.equal(
      workloadOfPod({ ...rsPod, ownerReferences: [{ kind: 'StatefulSet', name: 'db', controller: true }] }),
      'db',
    )
    assert.equal(workloadOfPod({ name: 'standalone' }), 'standalone')
    assert.equal(workloadOfPod({ ...rsPod, ownerReferences: [] }), 'reviews-v3-7d9c5b9f4d-abcde')
  })

  it('the summary shows the links as markdown links; without links, nothing', () => {
    const report = {
      version: 2,
      action: 'rollout',
      target: { kind: 'VirtualService', namespace: 'bookinfo', name: 'reviews', route: 'default' },
      stableSubset: 'v1',
      canarySubset: 'v3',
      gatewayUrl: '',
      istioVersion: '',
      result: 'promoted',
      canaryWeight: 100,
      startedAt: run.startedAt,
      endedAt: run.endedAt,
      steps: [],
      events: [],
    } satisfies RunReport
    assert.equal(kialiMarkdown(report), '')
    assert.doesNotMatch(renderSummaryMarkdown(report), /Kiali/)
    const links = kialiLinks('https://kiali.example.com/kiali', run, now)
    const md = renderSummaryMarkdown({ ...report, links: { kiali: links } })
    assert.ok(md.includes(`**Kiali:** [graph of namespace bookinfo](<${links.graph}>) · `))
    assert.ok(md.includes(`[canary v3: workload reviews-v3](<${links.workloads[1]?.url}>)`))
  })
})

describe('input kiali-url', () => {
  const base = { namespace: 'bookinfo', 'virtual-service': 'reviews', 'canary-subset': 'v3' }
  const inputs = (m: Record<string, string>) => getInputs((n) => ({ ...base, ...m })[n] ?? '', {})
  it('takes an http(s) base URL, without a trailing slash', () => {
    assert.equal(
      inputs({ 'kiali-url': 'https://kiali.example.com/kiali/' })['kiali-url'],
      'https://kiali.example.com/kiali',
    )
    assert.equal(inputs({ 'kiali-url': 'http://127.0.0.1:20001' })['kiali-url'], 'http://127.0.0.1:20001')
    assert.equal(inputs({})['kiali-url'], undefined)
  })
  it('rejects the rest, naming the input and what it takes', () => {
    for (const [bad, why] of [
      ['kiali.example.com', /not a URL; expected an http:\/\/ or https:\/\/ base URL/],
      ['ftp://kiali.example.com', /must be an http:\/\/ or https:\/\/ URL/],
      ['https://kiali.example.com/kiali?x=1', /without a query or fragment/],
      ['https://kiali.example.com/#/graph', /without a query or fragment/],
      ['https://admin:pw@kiali.example.com', /must not carry credentials/],
    ] as const) {
      try {
        inputs({ 'kiali-url': bad })
        assert.fail(`accepted ${bad}`)
      } catch (err) {
        assert.ok(err instanceof InvalidInputs, String(err))
        const problem = err.problems.find((p) => p.startsWith("Input 'kiali-url'")) ?? ''
        assert.match(problem, why)
        assert.doesNotMatch(problem, /pw/)
      }
    }
  })
})
