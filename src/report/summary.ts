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
    for (const [version, v] of Object.entries(f.byVersion))
      parts.push(`${escapeMd(version)}: ${v.successes}/${v.requests}`)
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

/**
 * A mermaid xychart-beta over the steps: bars = canary weight %, line = success rate %.
 * Steps without a smoke test plot a success rate of 0 and are labelled "(no test)". Empty without steps.
 */
export function mermaidChart(report: RunReport): string {
  if (report.steps.length === 0) return ''
  const figures = report.steps.map((s) => counted(s)[0]?.figures)
  const labels = report.steps.map((s, i) => `"${s.index}${figures[i] ? '' : ' (no test)'}"`)
  const weights = report.steps.map((s) => chartNumber(s.weight))
  const rates = figures.map((f) => chartNumber(f ? f.successRate * 100 : 0))
  return [
    '```mermaid',
    'xychart-beta',
    '  title "Canary weight % (bars) and success rate % (line)"',
    `  x-axis "step" [${labels.join(', ')}]`,
    '  y-axis "percent" 0 --> 100',
    `  bar [${weights.join(', ')}]`,
    `  line [${rates.join(', ')}]`,
    '```',
  ].join('\n')
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
  if (report.steps.length > 0) {
    parts.push(
      [row(STEP_TABLE_HEADER), row(STEP_TABLE_HEADER.map(() => '---')), ...stepRows(report).map(row)].join('\n'),
    )
    parts.push(mermaidChart(report))
  } else {
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
  if (report.steps.length > 0) {
    summary
      .addTable([STEP_TABLE_HEADER.map((h) => ({ data: h, header: true })), ...stepRows(report)])
      .addEOL()
      .addRaw(mermaidChart(report), true)
      .addEOL()
  } else {
    summary.addRaw('_No traffic step in this run._', true).addEOL()
  }
  if (report.events.length > 0) summary.addDetails(eventsLabel(report), eventsHtml(report))
  await summary.write()
}
