import { after, before, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import * as core from '@actions/core'
import { writeReport, type RunReport } from '../../src/report/report.js'
import { escapeMd, headline, mermaidChart, renderSummaryMarkdown, writeJobSummary } from '../../src/report/summary.js'
import { formatDuration } from '../../src/parse.js'
import { smokeCheck } from '../../src/verify/smoke/verifier.js'

function sampleReport(over: Partial<RunReport> = {}): RunReport {
  const smoke = (ok: number, v3: number) => ({
    requests: 20,
    successes: ok,
    successRate: ok / 20,
    p50Ms: 12.5,
    p95Ms: 40,
    byVersion: {
      v1: { requests: 20 - v3, successes: 20 - v3, p50Ms: 11, p95Ms: 30 },
      v3: { requests: v3, successes: v3 - (20 - ok), p50Ms: 14, p95Ms: 45 },
    },
    unattributed: 0,
    failures: ok === 20 ? [] : [{ reason: 'HTTP 503', count: 20 - ok }],
  })
  return {
    version: 2,
    action: 'rollout',
    target: { kind: 'VirtualService', namespace: 'bookinfo', name: 'reviews', route: 'default' },
    stableSubset: 'v1',
    canarySubset: 'v3',
    gatewayUrl: 'http://20.1.2.3:80',
    istioVersion: '1.24.2',
    result: 'paused',
    canaryWeight: 50,
    startedAt: '2025-03-01T10:00:00.000Z',
    endedAt: '2025-03-01T10:03:30.000Z',
    steps: [
      {
        index: 1,
        weight: 10,
        pauseMs: 60_000,
        startedAt: '2025-03-01T10:00:01.000Z',
        endedAt: '2025-03-01T10:01:05.000Z',
        checks: [smokeCheck(smoke(20, 2), { pass: true, reasons: [] })],
        verdict: 'pass',
        reasons: [],
      },
      {
        index: 2,
        weight: 25,
        pauseMs: 90_000,
        startedAt: '2025-03-01T10:01:05.000Z',
        endedAt: '2025-03-01T10:02:40.000Z',
        checks: [smokeCheck(smoke(19, 5), { pass: true, reasons: [] })],
        verdict: 'pass',
        reasons: [],
      },
      {
        index: 3,
        weight: 50,
        pauseMs: 0,
        startedAt: '2025-03-01T10:02:40.000Z',
        endedAt: '2025-03-01T10:03:30.000Z',
        checks: [],
        verdict: 'skipped',
        reasons: [],
      },
    ],
    events: [
      { at: '2025-03-01T10:00:00.500Z', message: 'weights v1=90 v3=10' },
      { at: '2025-03-01T10:01:05.500Z', message: 'weights v1=75 v3=25' },
    ],
    ...over,
  }
}

describe('writeReport', () => {
  let dir: string
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ic-report-'))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('writes pretty JSON that reads back equal, creating the directory', async () => {
    const out = path.join(dir, 'nested', 'reports')
    const report = sampleReport({ error: 'nothing' })
    const file = await writeReport(out, report, '4242', '2')
    assert.equal(path.dirname(file), out)
    assert.equal(path.basename(file), 'istio-canary-bookinfo-reviews-20250301T100000000Z-run4242-2.json')
    const text = readFileSync(file, 'utf8')
    assert.ok(text.startsWith('{\n  "version": 2,'))
    assert.deepEqual(JSON.parse(text), report)
  })

  it('never overwrites an existing report', async () => {
    const out = path.join(dir, 'twice')
    const first = await writeReport(out, sampleReport(), '7', undefined)
    const second = await writeReport(out, sampleReport({ result: 'rolled-back' }), '7', undefined)
    const third = await writeReport(out, sampleReport({ result: 'promoted' }), '7', undefined)
    assert.equal(new Set([first, second, third]).size, 3)
    assert.equal(path.basename(second), 'istio-canary-bookinfo-reviews-20250301T100000000Z-run7-2.json')
    assert.equal((JSON.parse(readFileSync(first, 'utf8')) as RunReport).result, 'paused')
    assert.equal((JSON.parse(readFileSync(second, 'utf8')) as RunReport).result, 'rolled-back')
    assert.equal((JSON.parse(readFileSync(third, 'utf8')) as RunReport).result, 'promoted')
    assert.equal(readdirSync(out).length, 3)
  })

  it('keeps odd names out of the file name', async () => {
    const file = await writeReport(
      dir,
      sampleReport({ target: { kind: 'VirtualService', namespace: '../../etc', name: 'a/b c', route: 'default' } }),
      '',
      undefined,
    )
    assert.equal(path.dirname(file), dir)
    assert.match(path.basename(file), /^istio-canary-etc-a-b-c-20250301T100000000Z\.json$/)
  })
})

/** Checks the first xychart-beta block against the grammar subset used (mermaid's xychart.jison); returns its data. */
function parseXyChart(markdown: string): { labels: string[]; bar: number[]; line: number[] } {
  const m = /```mermaid\n([\s\S]*?)\n```/.exec(markdown)
  assert.ok(m, 'no mermaid block')
  let lines = (m[1] ?? '').split('\n').map((l) => l.trim())
  // its frontmatter (`---` config `---`) first
  if (lines[0] === '---') lines = lines.slice(lines.indexOf('---', 1) + 1)
  assert.equal(lines[0], 'xychart-beta')
  const numbers = (s: string): number[] => {
    const inner = /^\[(.*)\]$/.exec(s)?.[1]
    assert.ok(inner !== undefined, `not a list: ${s}`)
    return inner.split(',').map((x) => {
      assert.match(x.trim(), /^[+-]?(?:\d+(?:\.\d+)?|\.\d+)$/)
      return Number(x)
    })
  }
  let labels: string[] = []
  let bar: number[] = []
  let line: number[] = []
  for (const l of lines.slice(1)) {
    let g: RegExpExecArray | null
    if ((g = /^title "([^"]*)"$/.exec(l))) continue
    else if ((g = /^x-axis "[^"]*" \[(.*)\]$/.exec(l))) {
      labels = (g[1] ?? '').split(', ').map((x) => {
        assert.match(x, /^"[^"\n]*"$/)
        return x.slice(1, -1)
      })
    } else if ((g = /^y-axis "[^"]*" (\d+) --> (\d+)$/.exec(l))) {
      assert.ok(Number(g[1]) < Number(g[2]))
    } else if (l.startsWith('bar ')) bar = numbers(l.slice(4))
    else if (l.startsWith('line ')) line = numbers(l.slice(5))
    else assert.fail(`unexpected xychart line: ${l}`)
  }
  assert.ok(labels.length > 0)
  assert.equal(bar.length, labels.length)
  if (line.length > 0) assert.equal(line.length, labels.length)
  return { labels, bar, line }
}

describe('job summary', () => {
  let dir: string
  let file: string
  const saved = process.env['GITHUB_STEP_SUMMARY']
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ic-summary-'))
    file = path.join(dir, 'step-summary.md')
    writeFileSync(file, '')
    process.env['GITHUB_STEP_SUMMARY'] = file
  })
  beforeEach(() => writeFileSync(file, ''))
  after(() => {
    if (saved === undefined) delete process.env['GITHUB_STEP_SUMMARY']
    else process.env['GITHUB_STEP_SUMMARY'] = saved
    rmSync(dir, { recursive: true, force: true })
  })

  it('writes headline, target, step table and chart through core.summary', async () => {
    await writeJobSummary(sampleReport())
    const text = readFileSync(file, 'utf8')
    assert.match(text, /<h2>istio-canary: ⏸️ paused at 50 %<\/h2>/)
    assert.match(text, /namespace bookinfo · VirtualService reviews · route default · stable v1 → canary v3/)
    assert.match(text, /<th>Step<\/th><th>Weight<\/th><th>Pause<\/th><th>Requests<\/th><th>Success<\/th>/)
    assert.match(
      text,
      /<tr><td>1<\/td><td>10 %<\/td><td>1m<\/td><td>20<\/td><td>100\.0 % \(20\/20\)<br>v1: 18\/18<br>v3: 2\/2<\/td>/,
    )
    assert.match(
      text,
      /<tr><td>2<\/td><td>25 %<\/td><td>1m30s<\/td><td>20<\/td><td>95\.0 % \(19\/20\)<br>v1: 15\/15<br>v3: 4\/5<\/td>/,
    )
    assert.match(text, /<td>all 12\.5 \/ 40 ms<br>v1 11 \/ 30 ms<br>v3 14 \/ 45 ms<\/td><td>✅ pass<\/td><\/tr>/)
    assert.match(
      text,
      /<tr><td>3<\/td><td>50 %<\/td><td>0s<\/td><td>–<\/td><td>–<\/td><td>–<\/td><td>⏭️ skipped<\/td><\/tr>/,
    )
    // the mermaid fence starts after a blank line, outside the HTML block
    assert.match(text, /<\/table>\n\n```mermaid\n---\n/)
    // the weight chart (every step), then the smoke test's failed share per step and version (steps it ran)
    assert.deepEqual(parseXyChart(text), { labels: ['1', '2', '3'], bar: [10, 25, 50], line: [] })
    const second = text.slice(text.indexOf('```mermaid') + 10)
    assert.deepEqual(parseXyChart(second), {
      labels: ['1 stable', '1 canary', '2 stable', '2 canary'],
      bar: [0, 0, 0, 20],
      line: [],
    })
    assert.match(second, /y-axis "failed %" 0 --> 50/)
    assert.match(
      text,
      /<details><summary>Events \(2\)<\/summary><ul><li>2025-03-01T10:00:00\.500Z: weights v1=90 v3=10<\/li>/,
    )
  })

  it('escapes user-controlled strings', async () => {
    const report = sampleReport({
      result: 'rolled-back',
      canarySubset: '<img src=x onerror=alert(1)>',
      error: 'bad | pipe <b>',
    })
    const first = report.steps[0]
    assert.ok(first)
    first.verdict = 'fail'
    first.reasons = ['success rate 50 % | <script>alert(1)</script>', 'body did not match /a|b/']
    await writeJobSummary(report)
    const text = readFileSync(file, 'utf8')
    assert.doesNotMatch(text, /<img|<script|<b>/)
    assert.match(text, /<h2>istio-canary: ↩️ rolled back<\/h2>/)
    assert.match(text, /canary &lt;img src=x onerror=alert\(1\)&gt;/)
    assert.match(
      text,
      /<td>❌ fail: success rate 50 % &#124; &lt;script&gt;alert\(1\)&lt;\/script&gt;; body did not match \/a&#124;b\/<\/td>/,
    )
    assert.match(text, /\*\*Error:\*\* bad &#124; pipe &lt;b&gt;/)

    const md = renderSummaryMarkdown(report)
    const rows = md.split('\n').filter((l) => l.startsWith('| '))
    assert.equal(rows.length, 2 + report.steps.length)
    for (const row of rows) assert.equal(row.split('|').length - 1, 8, row) // 7 cells: no stray delimiter
    assert.doesNotMatch(md, /<img|<script/)
  })

  it('renders the same content as markdown, with a valid chart', () => {
    const md = renderSummaryMarkdown(sampleReport({ result: 'promoted', canaryWeight: 100 }))
    assert.ok(md.startsWith('## istio-canary: ✅ promoted\n'))
    assert.match(md, /\| Step \| Weight \| Pause \| Requests \| Success \| p50 \/ p95 latency \| Verdict \|\n\| --- \|/)
    assert.match(md, /\| 2 \| 25 % \| 1m30s \| 20 \| 95\.0 % \(19\/20\)<br>v1: 15\/15<br>v3: 4\/5 \|/)
    assert.equal(parseXyChart(md).labels.length, 3)
  })

  it('renders any check kind: several per step are labelled, one without request figures shows its summary', () => {
    const report = sampleReport({})
    const step = report.steps[0]!
    const other = {
      kind: 'telemetry',
      verdict: 'fail' as const,
      reasons: ['canary 5xx rate 4.0 % above stable 0.1 %'],
      summary: 'canary 12/300 errors, stable 1/900',
      evidence: { decision: 'reject' },
    }
    step.checks = [...step.checks, other]
    step.verdict = 'fail'
    step.reasons = ['telemetry: canary 5xx rate 4.0 % above stable 0.1 %']
    const md = renderSummaryMarkdown(report)
    const row = md.split('\n').find((l) => l.startsWith('| 1 |')) ?? ''
    assert.match(row, /\| 20 \|/, 'one counting check: its figures, unlabelled')
    assert.match(
      row,
      /❌ fail: telemetry: canary 5xx rate 4\.0 % above stable 0\.1 %<br>telemetry: canary 12\/300 errors, stable 1\/900 \|$/,
    )
    step.checks = [...step.checks, { ...step.checks[0]!, kind: 'second' }]
    const two =
      renderSummaryMarkdown(report)
        .split('\n')
        .find((l) => l.startsWith('| 1 |')) ?? ''
    assert.match(two, /\| smoke: 20<br>second: 20 \|/)
  })

  it('without steps there is no chart; without GITHUB_STEP_SUMMARY nothing is written', async () => {
    const report = sampleReport({ result: 'unchanged', canaryWeight: 0, steps: [], events: [] })
    assert.equal(mermaidChart(report), '')
    await writeJobSummary(report)
    const text = readFileSync(file, 'utf8')
    assert.match(text, /ℹ️ unchanged \(canary at 0 %\)/)
    assert.doesNotMatch(text, /mermaid|<table>/)

    writeFileSync(file, '')
    delete process.env['GITHUB_STEP_SUMMARY']
    try {
      await writeJobSummary(sampleReport())
    } finally {
      process.env['GITHUB_STEP_SUMMARY'] = file
    }
    assert.equal(readFileSync(file, 'utf8'), '')
    assert.ok(core.summary.isEmptyBuffer())
  })

  it('lists the items of a multi-line error', () => {
    const md = renderSummaryMarkdown(
      sampleReport({ error: 'the mesh is not ready (2 checks failed):\n  - subset v3 has no pods\n  - a | b' }),
    )
    assert.match(
      md,
      /\*\*Error:\*\* the mesh is not ready \(2 checks failed\):\n\n- subset v3 has no pods\n- a &#124; b\n/,
    )
  })

  it('headlines and helpers', () => {
    assert.equal(headline(sampleReport({ result: 'previewed' })), '🔍 previewed')
    assert.equal(headline(sampleReport({ result: 'cleaned-up' })), '🧹 preview cleaned up')
    assert.equal(headline(sampleReport({ result: 'failed', error: 'boom' })), '❌ failed')
    assert.equal(formatDuration(90_000), '1m30s')
    assert.equal(formatDuration(3_600_000), '1h')
    assert.equal(formatDuration(3_605_000), '1h5s')
    assert.equal(formatDuration(500), '500ms')
    assert.equal(formatDuration(0), '0s')
    assert.equal(escapeMd('a|b<c>\n*d*'), 'a&#124;b&lt;c&gt; &#42;d&#42;')
  })
})
