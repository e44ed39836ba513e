// The job summary (GitHub step summary): headline, target, step table and a mermaid chart of the run.
import * as core from '@actions/core'
import type { RunReport, StepRecord } from './report.js'
import { formatDuration } from '../parse.js'
import { pct } from '../verify/smoke/stats.js'
import type { Check, CheckFigures } from '../verify/verifier.js'

type Summary = typeof core.summary

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '|': '&#124;',
  '`': '&#96;',
  '*': '&#42;',
  _: '&#95;',
  '[': '&#91;',
  ']': '&#93;',
  '\\': '&#92;',
}

/**
 * Makes a user-controlled string inert in markdown and HTML (tables included): HTML and table
 * delimiters and markdown emphasis/link/code characters become entities; newlines become spaces.
 */
export function escapeMd(s: string): string {
  return s.replace(/\r?\n|\r/g, ' ').replace(/[&<>|`*_[\]\\]/g, (c) => ENTITIES[c] ?? c)
}

/** 90000 -> "1m30s", 60000 -> "1m", 500 -> "500ms", 0 -> "0s". */

export function headline(report: RunReport): string {
  switch (report.result) {
    case 'promoted':
      return '✅ promoted'
    case 'rolled-back':
      return '↩️ rolled back'
    case 'paused':
      return `⏸️ paused at ${report.canaryWeight} %`
    case 'previewed':
      return '🔍 previewed'
    case 'cleaned-up':
      return '🧹 preview cleaned up'
    case 'unchanged':
      return `ℹ️ unchanged (canary at ${report.canaryWeight} %)`
    default:
      return `${report.error ? '❌' : 'ℹ️'} ${escapeMd(report.result || 'failed')}`
  }
}

function facts(report: RunReport): string {
  const started = Date.parse(report.startedAt)
  const ended = Date.parse(report.endedAt)
  const took = Number.isNaN(started) || Number.isNaN(ended) ? '' : ` (${formatDuration(ended - started)})`
  const lines = [
    `**Target:** namespace ${escapeMd(report.target.namespace)} · ` +
      `${report.target.kind} ${escapeMd(report.target.name)} · route ${escapeMd(report.target.route)} · ` +
      `stable ${escapeMd(report.stableSubset)} → canary ${escapeMd(report.canarySubset)}`,
    `**Action:** ${escapeMd(report.action)} · canary weight ${report.canaryWeight} % · ` +
      `gateway ${escapeMd(report.gatewayUrl)} · ` +
      `Istio ${escapeMd(report.istioVersion)}`,
    `**Time:** ${escapeMd(report.startedAt)} → ${escapeMd(report.endedAt)}${took}`,
  ]
  // Two trailing spaces: markdown line breaks within one paragraph.
  const text = lines.join('  \n')
  if (!report.error) return text
  // A multi-line error (readiness, analyze findings) lists its items: `first line:\n  - item\n  - item`.
  const [first = '', ...rest] = report.error
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
  const items = rest.map((l) => `- ${escapeMd(l.replace(/^- /, ''))}`)
  return `${text}  \n**Error:** ${escapeMd(first)}${items.length ? `\n\n${items.join('\n')}` : ''}`
}

/** The checks of a step that count requests, each with its figures. */
function counted(step: StepRecord): Array<{ check: Check; figures: CheckFigures }> {
  return step.checks.flatMap((check) => (check.figures ? [{ check, figures: check.figures }] : []))
}

/** One cell for every check of the step: prefixed with its kind when the step has more than one. */
function perCheck(step: StepRecord, cell: (figures: CheckFigures) => string): string {
  const rows = counted(step)
  if (rows.length === 0) return '–'
  return rows
    .map(({ check, figures }) => (rows.length > 1 ? `${escapeMd(check.kind)}: ` : '') + cell(figures))
    .join('<br>')
}

function requestsCell(step: StepRecord): string {
  return perCheck(step, (f) => String(f.requests))
}

/** A latency figure; '–' when there is none (a version without histogram samples in the window: NaN). */
const ms = (x: number): string => (Number.isFinite(x) ? String(x) : '–')

function latencyCell(step: StepRecord): string {
  return perCheck(step, (f) => {
    if (f.requests === 0) return '–'
    const parts = [`all ${ms(f.p50Ms)} / ${ms(f.p95Ms)} ms`]
    for (const [version, v] of Object.entries(f.byVersion))
      parts.push(`${escapeMd(version)} ${ms(v.p50Ms)} / ${ms(v.p95Ms)} ms`)
    return parts.join('<br>')
  })
}

function successCell(step: StepRecord): string {
  return perCheck(step, (f) => {
    const parts = [`${pct(f.successRate)} (${f.successes}/${f.requests})`]
    let requests = 0
    let successes = 0
    for (const [version, v] of Object.entries(f.byVersion)) {
      parts.push(`${escapeMd(version)}: ${v.successes}/${v.requests}`)
      requests += v.requests
      successes += v.successes
    }
    // Answers no version could be attributed to (BookInfo renders a failed reviews call without one).
    if (requests > 0 && requests < f.requests)
      parts.push(`no version: ${Math.max(0, f.successes - successes)}/${f.requests - requests}`)
    return parts.join('<br>')
  })
}

const VERDICT_ICONS: Record<StepRecord['verdict'], string> = {
  pass: '✅ pass',
  fail: '❌ fail',
  skipped: '⏭️ skipped',
}

/** The verdict with its reasons, and what each check that counts no requests saw (its own summary). */
function verdictCell(step: StepRecord): string {
  const icon = VERDICT_ICONS[step.verdict]
  const verdict = step.reasons.length > 0 ? `${icon}: ${step.reasons.map(escapeMd).join('; ')}` : icon
  const seen = step.checks.filter((c) => !c.figures).map((c) => `${escapeMd(c.kind)}: ${escapeMd(c.summary)}`)
  return [verdict, ...seen].join('<br>')
}

export const STEP_TABLE_HEADER = ['Step', 'Weight', 'Pause', 'Requests', 'Success', 'p50 / p95 latency', 'Verdict']

/** The step table's body rows, cells already escaped. */
export function stepRows(report: RunReport): string[][] {
  return report.steps.map((step) => [
    String(step.index),
    `${step.weight} %`,
    formatDuration(step.pauseMs),
    requestsCell(step),
    successCell(step),
    latencyCell(step),
    verdictCell(step),
  ])
}

const chartNumber = (x: number): string => String(Math.round(x * 10) / 10)

/** A chart label: mermaid's quoted string, with only characters that read and parse everywhere (versions come from responses). */
const chartLabel = (s: string): string => `"${s.replace(/[^A-Za-z0-9 ._%:+(),-]/g, '?').slice(0, 64)}"`

/** A y-axis top that leaves room above the highest value: 1, 2, 5 x 10^n, at least `floor`, at most 100. */
export function axisTop(max: number, floor = 1): number {
  const want = Math.max(max * 1.15, floor)
  for (let p = 0.01; p <= 100; p *= 10) {
    for (const m of [1, 2, 5]) {
      const top = Math.round(m * p * 1000) / 1000
      if (top >= want) return Math.min(top, 100)
    }
  }
  return 100
}

interface Bar {
  label: string
  value: number
}

/** GitHub's colours (Primer): weight in blue, failures in red, readable in light and dark mode. */
const COLORS = { weight: '#0969da', failed: '#cf222e' } as const

/**
 * One xychart-beta block: bars over labelled categories, y from 0 to `top`. Its size and colour go in the
 * diagram's frontmatter `config` (mermaid's documented per-diagram configuration: xyChart width/height,
 * themeVariables.xyChart.plotColorPalette), so every chart is compact and its bars contrast with the page.
 */
function barChart(title: string, xTitle: string, yTitle: string, bars: Bar[], top: number, color: string): string {
  const width = Math.max(640, Math.min(900, 160 + 80 * bars.length))
  return [
    '```mermaid',
    '---',
    'config:',
    '  xyChart:',
    `    width: ${width}`,
    '    height: 320',
    '  themeVariables:',
    '    xyChart:',
    `      plotColorPalette: "${color}"`,
    '---',
    'xychart-beta',
    `  title "${title.replace(/[^A-Za-z0-9 ._%:+(),-]/g, '?')}"`,
    `  x-axis ${chartLabel(xTitle)} [${bars.map((b) => chartLabel(b.label)).join(', ')}]`,
    `  y-axis ${chartLabel(yTitle)} 0 --> ${chartNumber(top)}`,
    `  bar [${bars.map((b) => chartNumber(b.value)).join(', ')}]`,
    '```',
  ].join('\n')
}

/** A version key's short name on a chart axis: "stable", "canary", or the key itself. */
function versionRole(report: RunReport, version: string): string {
  if (version === report.stableSubset) return 'stable'
  if (version === report.canarySubset) return 'canary'
  return version
}

/** "step and version (stable v1, canary v3)": the x-axis title that says what the role labels mean. */
const versionAxis = (report: RunReport): string =>
  `step and version (stable ${report.stableSubset || '?'}, canary ${report.canarySubset || '?'})`

/**
 * The smoke test's failed share per step and version (only versions that answered at that step), in %; requests
 * no version can be attributed to (BookInfo renders a failed reviews call without one) get their own bar.
 */
function smokeErrorBars(report: RunReport): Bar[] {
  return report.steps.flatMap((step) => {
    const figures = step.checks.find((c) => c.kind === 'smoke')?.figures
    if (!figures || figures.requests === 0) return []
    // stable first, then canary, then any other version (in the order they answered)
    const rank = (version: string): number =>
      version === report.stableSubset ? 0 : version === report.canarySubset ? 1 : 2
    const answered = Object.entries(figures.byVersion)
      .filter(([, v]) => v.requests > 0)
      .sort(([a], [b]) => rank(a) - rank(b))
    const bars: Bar[] = answered.map(([version, v]) => ({
      label: `${step.index} ${versionRole(report, version)}`,
      value: (100 * (v.requests - v.successes)) / v.requests,
    }))
    const attributed = answered.reduce((n, [, v]) => n + v.requests, 0)
    const attributedFailed = answered.reduce((n, [, v]) => n + v.requests - v.successes, 0)
    const rest = figures.requests - attributed
    if (rest > 0) {
      const failed = Math.max(0, figures.requests - figures.successes - attributedFailed)
      bars.push({ label: `${step.index} ${answered.length ? 'no version' : 'all'}`, value: (100 * failed) / rest })
    }
    return bars
  })
}

/** What a telemetry check counted (its evidence's `counts`), when it has them. */
export function telemetryCounts(
  check: Check,
): { canaryRequests: number; canaryErrors: number; stableRequests: number; stableErrors: number } | undefined {
  if (check.kind !== 'telemetry') return undefined
  const counts = (check.evidence as { counts?: Record<string, unknown> } | null)?.counts
  if (!counts) return undefined
  const n = (k: string): number | undefined => (typeof counts[k] === 'number' ? (counts[k] as number) : undefined)
  const [cr, ce, sr, se] = ['canaryRequests', 'canaryErrors', 'stableRequests', 'stableErrors'].map(n)
  if (cr === undefined || ce === undefined || sr === undefined || se === undefined) return undefined
  return { canaryRequests: cr, canaryErrors: ce, stableRequests: sr, stableErrors: se }
}

/** The mesh's 5xx rate per step, stable and canary (each where it served requests), in %. */
function telemetryErrorBars(report: RunReport): Bar[] {
  return report.steps.flatMap((step) => {
    const counts = step.checks.map(telemetryCounts).find((c) => c !== undefined)
    if (!counts) return []
    const bars: Bar[] = []
    if (counts.stableRequests > 0)
      bars.push({ label: `${step.index} stable`, value: (100 * counts.stableErrors) / counts.stableRequests })
    if (counts.canaryRequests > 0)
      bars.push({ label: `${step.index} canary`, value: (100 * counts.canaryErrors) / counts.canaryRequests })
    return bars
  })
}

/** A chart of failure rates, or (all of them zero) one line that says so: an empty frame reads as nothing. */
function failureChart(title: string, xTitle: string, yTitle: string, bars: Bar[], none: string): string {
  if (bars.length === 0) return ''
  const max = Math.max(...bars.map((b) => b.value))
  if (max === 0) return none
  return barChart(title, xTitle, yTitle, bars, axisTop(max), COLORS.failed)
}

/**
 * The run's charts (mermaid xychart-beta blocks), each on its own readable scale: the canary weight per step
 * (0..100 %); the smoke test's failed share per step and version; with telemetry, the mesh's 5xx rate per step,
 * stable and canary. Failure rates are on an axis scaled to the data (1-2-5 steps above the highest bar), never on
 * the frame of a 0..100 % axis; a run in which nothing failed says so in one line instead of an empty chart.
 * Empty without steps.
 */
export function mermaidCharts(report: RunReport): string[] {
  if (report.steps.length === 0) return []
  const weights = report.steps.map((s) => ({ label: String(s.index), value: s.weight }))
  const parts = [barChart('Canary weight per step (%)', 'step', 'canary weight %', weights, 100, COLORS.weight)]
  const smoke = smokeErrorBars(report)
  const smokeRequests = report.steps.reduce(
    (n, s) => n + (s.checks.find((c) => c.kind === 'smoke')?.figures?.requests ?? 0),
    0,
  )
  parts.push(
    failureChart(
      'Smoke test: failed requests (%)',
      versionAxis(report),
      'failed %',
      smoke,
      `**Smoke test:** no request failed (${smokeRequests} requests over ${report.steps.length} step(s)).`,
    ),
  )
  const mesh = telemetryErrorBars(report)
  const meshRequests = report.steps.reduce((n, s) => {
    const c = s.checks.map(telemetryCounts).find((x) => x !== undefined)
    return n + (c ? c.stableRequests + c.canaryRequests : 0)
  }, 0)
  parts.push(
    failureChart(
      'Mesh telemetry: 5xx rate, stable vs canary (%)',
      versionAxis(report),
      '5xx %',
      mesh,
      `**Mesh telemetry:** no 5xx (${meshRequests} requests counted).`,
    ),
  )
  return parts.filter((p) => p !== '')
}

/** Every chart of the run, one after another (blank lines between). Empty without steps. */
export function mermaidChart(report: RunReport): string {
  return mermaidCharts(report).join('\n\n')
}

/** `status`: the route's weights now and what each verifier saw at them. */
function observationMarkdown(report: RunReport): string {
  const o = report.observation
  if (!o) return ''
  const role = (subset: string): string =>
    subset === report.stableSubset ? ' (stable)' : subset === report.canarySubset ? ' (canary)' : ''
  const weights = o.weights.map((w) => `${escapeMd(w.subset)}${role(w.subset)} ${w.weight} %`).join(' · ') || '–'
  const s = o.state
  const lines = [
    s
      ? `**Rollout state:** ${escapeMd(s.phase)} at ${s.weight} % (stable ${escapeMd(s.stable)}, canary ` +
        `${escapeMd(s.canary)}; run ${escapeMd(s.runId)}, updated ${escapeMd(s.updatedAt)})`
      : '**Rollout state:** none (no istio-canary rollout on this target)',
    `**Route now:** ${weights} (${escapeMd(o.at)})`,
  ]
  for (const note of o.notes) lines.push(`**Note:** ${escapeMd(note)}`)
  return lines.join('  \n')
}

/** The status observation as one table row in the step table's columns ("now" for a step). */
export function observationRows(report: RunReport): string[][] {
  const o = report.observation
  if (!o || o.checks.length === 0) return []
  const canary = o.weights.find((w) => w.subset === report.canarySubset)?.weight ?? report.canaryWeight
  const pass = o.checks.every((c) => c.verdict === 'pass')
  const step: StepRecord = {
    index: 0,
    weight: canary,
    pauseMs: 0,
    startedAt: o.at,
    endedAt: o.at,
    checks: o.checks,
    verdict: pass ? 'pass' : 'fail',
    reasons: o.checks.flatMap((c) => (c.verdict === 'fail' ? c.reasons : [])),
  }
  return [['now', `${canary} %`, '–', requestsCell(step), successCell(step), latencyCell(step), verdictCell(step)]]
}

/** The telemetry counts of the observation, per version: "stable v1: 2/900 5xx · canary v3: 0/100 5xx". */
function observationTelemetry(report: RunReport): string {
  const counts = report.observation?.checks.map(telemetryCounts).find((c) => c !== undefined)
  if (!counts) return ''
  const rate = (e: number, r: number): string => (r > 0 ? ` (${chartNumber((100 * e) / r)} %)` : '')
  return (
    `**Mesh telemetry now:** stable ${escapeMd(report.stableSubset)} ${counts.stableErrors}/${counts.stableRequests} 5xx` +
    `${rate(counts.stableErrors, counts.stableRequests)} · canary ${escapeMd(report.canarySubset)} ` +
    `${counts.canaryErrors}/${counts.canaryRequests} 5xx${rate(counts.canaryErrors, counts.canaryRequests)}`
  )
}

/** Links into Kiali (with `kiali-url`): the namespace's graph, then each version's workload. */
export function kialiMarkdown(report: RunReport): string {
  const k = report.links?.kiali
  if (!k) return ''
  const links = [`[graph of namespace ${escapeMd(report.target.namespace)}](<${k.graph}>)`]
  for (const w of k.workloads)
    links.push(`[${w.role} ${escapeMd(w.version)}: workload ${escapeMd(w.workload)}](<${w.url}>)`)
  return `**Kiali:** ${links.join(' · ')}`
}

function eventsHtml(report: RunReport): string {
  const shown = report.events.slice(-200)
  const items = shown.map((e) => `<li>${escapeMd(e.at)}: ${escapeMd(e.message)}</li>`).join('')
  return `<ul>${items}</ul>`
}

function eventsLabel(report: RunReport): string {
  return `Events (${report.events.length})`
}

/** The whole summary as markdown (the step table as a pipe table). */
export function renderSummaryMarkdown(report: RunReport): string {
  const row = (cells: string[]): string => `| ${cells.join(' | ')} |`
  const parts = [`## istio-canary: ${headline(report)}`, facts(report)]
  const kiali = kialiMarkdown(report)
  if (kiali) parts.push(kiali)
  const observed = observationRows(report)
  if (report.observation) {
    parts.push(observationMarkdown(report))
    if (observed.length > 0)
      parts.push([row(STEP_TABLE_HEADER), row(STEP_TABLE_HEADER.map(() => '---')), ...observed.map(row)].join('\n'))
    const mesh = observationTelemetry(report)
    if (mesh) parts.push(mesh)
  }
  if (report.steps.length > 0) {
    parts.push(
      [row(STEP_TABLE_HEADER), row(STEP_TABLE_HEADER.map(() => '---')), ...stepRows(report).map(row)].join('\n'),
    )
    parts.push(...mermaidCharts(report))
  } else if (!report.observation) {
    parts.push('_No traffic step in this run._')
  }
  if (report.events.length > 0)
    parts.push(`<details><summary>${eventsLabel(report)}</summary>${eventsHtml(report)}</details>`)
  return `${parts.join('\n\n')}\n`
}

/**
 * Appends the run's summary to the job summary (GITHUB_STEP_SUMMARY) through `summary`.
 * With the default `core.summary` and no GITHUB_STEP_SUMMARY (a local run) it only logs that it skipped.
 */
export async function writeJobSummary(report: RunReport, summary: Summary = core.summary): Promise<void> {
  if (summary === core.summary && !process.env['GITHUB_STEP_SUMMARY']) {
    core.info('GITHUB_STEP_SUMMARY is not set: job summary skipped')
    return
  }
  // Blank lines after each HTML block, so the markdown that follows is rendered as markdown.
  summary
    .addHeading(`istio-canary: ${headline(report)}`, 2)
    .addEOL()
    .addRaw(facts(report), true)
    .addEOL()
  const kiali = kialiMarkdown(report)
  if (kiali) summary.addRaw(kiali, true).addEOL()
  if (report.observation) {
    summary.addRaw(observationMarkdown(report), true).addEOL()
    const observed = observationRows(report)
    if (observed.length > 0)
      summary.addTable([STEP_TABLE_HEADER.map((h) => ({ data: h, header: true })), ...observed]).addEOL()
    const mesh = observationTelemetry(report)
    if (mesh) summary.addRaw(mesh, true).addEOL()
  }
  if (report.steps.length > 0) {
    summary.addTable([STEP_TABLE_HEADER.map((h) => ({ data: h, header: true })), ...stepRows(report)]).addEOL()
    for (const chart of mermaidCharts(report)) summary.addRaw(chart, true).addEOL()
  } else if (!report.observation) {
    summary.addRaw('_No traffic step in this run._', true).addEOL()
  }
  if (report.events.length > 0) summary.addDetails(eventsLabel(report), eventsHtml(report))
  await summary.write()
}
