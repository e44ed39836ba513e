// The job summary's charts: every chart the action writes parses with mermaid's own parser (for a promoted, a
// rolled-back, a paused, a telemetry, a preview and a status run), each on a readable scale.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { RunReport, StepRecord } from '../../src/report/report.js'
import { axisTop, mermaidCharts, renderSummaryMarkdown } from '../../src/report/summary.js'
import { smokeCheck } from '../../src/verify/smoke/verifier.js'
import type { TelemetryEvidence } from '../../src/verify/telemetry/verifier.js'
import type { Check } from '../../src/verify/verifier.js'
import { mermaidBlocks, parseAllMermaid, parseMermaid } from '../support/mermaid.js'

/** A smoke check of `requests` requests, `v3` of them served by the canary, `failedV3` of those failed. */
function smoke(requests: number, v3: number, failedV3 = 0): Check {
  const v1 = requests - v3
  const ok = requests - failedV3
  const byVersion: Record<string, { requests: number; successes: number; p50Ms: number; p95Ms: number }> = {}
  if (v1 > 0) byVersion['v1'] = { requests: v1, successes: v1, p50Ms: 11, p95Ms: 30 }
  if (v3 > 0) byVersion['v3'] = { requests: v3, successes: v3 - failedV3, p50Ms: 14, p95Ms: 45 }
  const result = {
    requests,
    successes: ok,
    successRate: ok / requests,
    p50Ms: 12,
    p95Ms: 40,
    byVersion,
    unattributed: 0,
    failures: failedV3 ? [{ reason: 'HTTP 503', count: failedV3 }] : [],
  }
  const pass = ok / requests >= 0.95
  return smokeCheck(result as never, { pass, reasons: pass ? [] : [`success rate ${ok}/${requests}`] })
}

function telemetry(canary: [number, number], stable: [number, number], decision: 'accept' | 'reject'): Check {
  const evidence: TelemetryEvidence = {
    queries: { requests: 'q1', errors: 'q2' },
    counts: { canaryRequests: canary[0], canaryErrors: canary[1], stableRequests: stable[0], stableErrors: stable[1] },
    decision,
    test: 'sprt' as never,
    statistic: 1,
    threshold: 4.6,
    polls: 3,
    observedMs: 30_000,
  }
  return {
    kind: 'telemetry',
    verdict: decision === 'accept' ? 'pass' : 'fail',
    reasons: decision === 'accept' ? [] : ['canary errs more than stable'],
    summary: `${decision}`,
    evidence,
  }
}

function step(index: number, weight: number, checks: Check[]): StepRecord {
  const pass = checks.every((c) => c.verdict === 'pass')
  return {
    index,
    weight,
    pauseMs: 0,
    startedAt: '2026-01-01T10:00:00.000Z',
    endedAt: '2026-01-01T10:01:00.000Z',
    checks,
    verdict: pass ? 'pass' : 'fail',
    reasons: pass ? [] : checks.flatMap((c) => c.reasons),
  }
}

function report(over: Partial<RunReport>): RunReport {
  return {
    version: 2,
    action: 'rollout',
    target: { kind: 'VirtualService', namespace: 'bookinfo', name: 'reviews', route: 'default' },
    stableSubset: 'v1',
    canarySubset: 'v3',
    gatewayUrl: 'http://127.0.0.1:8080',
    istioVersion: '1.29.0',
    result: 'promoted',
    canaryWeight: 100,
    startedAt: '2026-01-01T10:00:00.000Z',
    endedAt: '2026-01-01T10:04:00.000Z',
    steps: [],
    events: [],
    ...over,
  }
}

const RUNS: Record<string, RunReport> = {
  promoted: report({
    steps: [
      step(1, 10, [smoke(40, 4)]),
      step(2, 25, [smoke(40, 10)]),
      step(3, 50, [smoke(40, 20)]),
      step(4, 100, [smoke(40, 40)]),
    ],
  }),
  'rolled-back': report({
    result: 'rolled-back',
    canaryWeight: 0,
    steps: [step(1, 10, [smoke(40, 5)]), step(2, 25, [smoke(40, 10, 4)])],
    error: 'smoke test failed at 25 %',
  }),
  paused: report({
    result: 'paused',
    canaryWeight: 50,
    steps: [step(1, 10, [smoke(40, 4)]), step(2, 50, [smoke(40, 20)])],
  }),
  telemetry: report({
    result: 'rolled-back',
    canaryWeight: 0,
    steps: [
      step(1, 10, [smoke(40, 4), telemetry([600, 1], [5400, 5], 'accept')]),
      step(2, 50, [smoke(40, 20), telemetry([300, 15], [300, 0], 'reject')]),
    ],
  }),
  preview: report({ action: 'preview', result: 'previewed', canaryWeight: 0, steps: [step(1, 100, [smoke(20, 20)])] }),
  status: report({
    action: 'status',
    result: 'unchanged',
    canaryWeight: 25,
    observation: {
      at: '2026-01-01T10:04:00.000Z',
      weights: [
        { subset: 'v1', weight: 75 },
        { subset: 'v3', weight: 25 },
      ],
      checks: [smoke(40, 10)],
      notes: [],
    },
  }),
}

describe('job summary charts', () => {
  for (const [name, run] of Object.entries(RUNS)) {
    it(`every chart of a ${name} run parses with mermaid's parser`, async () => {
      const md = renderSummaryMarkdown(run)
      const blocks = mermaidBlocks(md)
      assert.equal(blocks.length, mermaidCharts(run).filter((c) => c.startsWith('```mermaid')).length)
      const failing = name === 'rolled-back' || name === 'telemetry'
      if (name !== 'status') assert.equal(blocks.length >= 2, failing, `${name}: a failure chart when one failed`)
      const types = await parseAllMermaid(md)
      assert.deepEqual(
        types,
        blocks.map(() => 'xychart'),
      )
    })
  }

  it('fails on a broken chart (the parser really judges)', async () => {
    const good = mermaidCharts(RUNS['rolled-back'] as RunReport)[1] as string
    const chart = (good.split('\n').slice(1, -1) as string[]).join('\n')
    assert.equal(await parseMermaid(chart), 'xychart')
    await assert.rejects(parseMermaid(chart.replace(/bar \[(\d+)/, 'bar [$1,,')), /Parse error/)
    await assert.rejects(parseAllMermaid(`\`\`\`mermaid\n${chart.replace('x-axis', 'x-axes')}\n\`\`\`\n`), /chart 1/)
  })

  it('puts weight on 0..100 and error rates on an axis scaled to the data', () => {
    const charts = mermaidCharts(RUNS['rolled-back'] as RunReport)
    assert.equal(charts.length, 2)
    const [weight, errors] = charts as [string, string]
    assert.match(weight, /plotColorPalette: "#0969da"/)
    assert.match(weight, /y-axis "canary weight %" 0 --> 100\n {2}bar \[10, 25\]/)
    // v3 failed 4 of 10 at step 2: 40 % -> axis top 50
    assert.match(errors, /title "Smoke test: failed requests \(%\)"/)
    assert.match(
      errors,
      /x-axis "step and version \(stable v1, canary v3\)" \["1 stable", "1 canary", "2 stable", "2 canary"\]/,
    )
    assert.match(errors, /y-axis "failed %" 0 --> 50\n {2}bar \[0, 0, 0, 40\]/)
    assert.match(errors, /plotColorPalette: "#cf222e"/)
    // a run in which nothing failed: one line, not an empty frame
    const healthy = mermaidCharts(RUNS['promoted'] as RunReport)
    assert.equal(healthy.length, 2)
    assert.equal(healthy[1], '**Smoke test:** no request failed (160 requests over 4 step(s)).')
    // a small failure is on a small axis: 1 of 20 canary answers at 50 % -> 5 % on 0..10
    const small = mermaidCharts(report({ steps: [step(1, 50, [smoke(40, 20, 1)]), step(2, 100, [smoke(40, 40)])] }))
    assert.match(
      small[1] as string,
      /\["1 stable", "1 canary", "2 canary"\]\n {2}y-axis "failed %" 0 --> 10\n {2}bar \[0, 5, 0\]/,
    )
  })

  it('with telemetry: a third chart, 5xx rate stable vs canary per step', () => {
    const charts = mermaidCharts(RUNS['telemetry'] as RunReport)
    assert.equal(charts.length, 3)
    const mesh = charts[2] as string
    assert.match(mesh, /title "Mesh telemetry: 5xx rate, stable vs canary \(%\)"/)
    assert.match(mesh, /\["1 stable", "1 canary", "2 stable", "2 canary"\]/)
    // 5/5400 = 0.09 %, 1/600 = 0.17 %, 0/300, 15/300 = 5 % -> axis top 10
    assert.match(mesh, /y-axis "5xx %" 0 --> 10\n {2}bar \[0\.1, 0\.2, 0, 5\]/)
  })

  it('labels stay parseable whatever a version pattern captured', async () => {
    const odd = report({ steps: [step(1, 10, [smoke(10, 0)])] })
    const check = odd.steps[0]?.checks[0]
    assert.ok(check?.figures)
    check.figures.byVersion = { 'v"1]\n, [x': { requests: 10, successes: 9, p50Ms: 1, p95Ms: 2 } }
    const md = renderSummaryMarkdown(odd)
    assert.match(md, /"1 v\?1\?\?, \?x"/)
    await parseAllMermaid(md)
  })

  it('answers without a version are counted in the table and get their own bar', () => {
    const run = report({ result: 'rolled-back', steps: [step(1, 10, [smoke(40, 2)])] })
    const figures = run.steps[0]?.checks[0]?.figures
    assert.ok(figures)
    // 2 canary answers failed and carried no version (BookInfo's error page)
    figures.byVersion = { v1: { requests: 38, successes: 38, p50Ms: 1, p95Ms: 2 } }
    figures.successes = 38
    figures.successRate = 38 / 40
    const md = renderSummaryMarkdown(run)
    assert.match(md, /\| 95\.0 % \(38\/40\)<br>v1: 38\/38<br>no version: 0\/2 \|/)
    assert.match(
      mermaidCharts(run)[1] as string,
      /\["1 stable", "1 no version"\]\n {2}y-axis "failed %" 0 --> 100\n {2}bar \[0, 100\]/,
    )
  })

  it('axisTop: 1-2-5 steps above the data, within 0..100', () => {
    assert.equal(axisTop(0), 1)
    assert.equal(axisTop(0.8), 1)
    assert.equal(axisTop(0.9), 2)
    assert.equal(axisTop(0.95), 2)
    assert.equal(axisTop(4), 5)
    assert.equal(axisTop(40), 50)
    assert.equal(axisTop(90), 100)
    assert.equal(axisTop(100), 100)
    assert.equal(axisTop(0.01, 0), 0.02)
  })
})
