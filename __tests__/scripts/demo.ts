// `npm run demo`: the real bundle against the loopback simulation, told as a story.
//   1. a healthy reviews v3 canary goes 10 -> 25 -> 50 -> 100 % and is promoted;
//   2. the route is reset to v1, v3 is broken (half its calls fail) and the next rollout is
//      rolled back at its first step, leaving the route exactly as it was;
//   3. on a REAL Prometheus scraping the mesh while background users browse: v3 errs 5 % against stable's ~0 %.
//      Judged by the smoke test alone (metrics 'false', 20 requests a step) it is (nearly always) promoted;
//      judged on the mesh's telemetry (metrics 'true') it is reverted at its first step. Evidence side by side.
// Each run is summarised from its outputs, its JSON report, a few log lines and what the
// simulated cluster and mesh saw. Exits non-zero when a run does not end as expected.
import { existsSync, readFileSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import { dirname } from 'node:path'
import { startSimulation, type Sim } from '../sim/index.js'
import { BUNDLE, makeRunner, runAction } from '../runner/harness.js'
import { REFS } from '../sim/kube/refs.js'
import type { KubeObject } from '../sim/kube/store.js'
import type { RunReport } from '../../src/report/report.js'
import { smokeEvidence } from '../../src/verify/smoke/verifier.js'
import type { TelemetryEvidence } from '../../src/verify/telemetry/verifier.js'
import { startLoad } from '../sim/mesh/load.js'

const NS = 'bookinfo'
const VS = 'reviews'
const tty = process.stdout.isTTY === true
const paint =
  (code: string) =>
  (s: string): string =>
    tty ? `\x1b[${code}m${s}\x1b[0m` : s
const bold = paint('1')
const dim = paint('2')
const green = paint('32')
const red = paint('31')
const cyan = paint('36')

type Route = { match?: unknown; route?: Array<{ destination?: { subset?: string }; weight?: number }> }

function reviews(sim: Sim): KubeObject {
  const vs = sim.store.get(REFS.virtualServices, NS, VS)
  if (!vs) throw new Error(`VirtualService ${NS}/${VS} is missing`)
  return vs
}

/** The default route: the last http route without match (what the action shifts). */
function defaultRoute(vs: KubeObject): Route | undefined {
  const http = (vs['spec'] as { http?: Route[] } | undefined)?.http ?? []
  return http.findLast((r) => r.match === undefined)
}

function describe(route: Route | undefined): string {
  if (!route) return '(no default route)'
  const dests = route.route ?? []
  return dests.map((d) => `${d.destination?.subset ?? '?'} ${dests.length === 1 ? 100 : (d.weight ?? 0)} %`).join(' / ')
}

/** Calls to each reviews version since `before`. */
function servedSince(sim: Sim, before: Record<string, number>): string {
  const out = Object.entries(sim.mesh.served)
    .filter(([k]) => k.startsWith('reviews-'))
    .map(([k, n]) => [k.slice('reviews-'.length), n - (before[k] ?? 0)] as const)
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => a.localeCompare(b))
  return out.length ? out.map(([v, n]) => `${v} ${n}`).join(', ') : 'none'
}

/** The log lines that tell the story, with workflow commands turned back into plain text. */
function storyLines(stdout: string): string[] {
  const keep =
    /^(Connected|istioctl |Control plane|Smoke test|Target route|Shifted|Pausing|Step \d|Promoted|Reverting|Reverted|Restored|Result)/
  const out: string[] = []
  for (const raw of stdout.split('\n')) {
    const line = raw.trimEnd()
    const cmd = /^::(error|warning)[^:]*::(.*)$/.exec(line)
    if (cmd) out.push(`${cmd[1]}: ${(cmd[2] ?? '').replace(/%0A/g, ' ').replace(/%25/g, '%')}`)
    else if (keep.test(line)) out.push(line)
  }
  return out
}

function stepTable(report: RunReport | undefined): string[] {
  if (!report || report.steps.length === 0) return ['  (no step was smoke-tested)']
  const rows = report.steps.map((s) => {
    const r = smokeEvidence(s.checks)
    const byVersion = r
      ? Object.entries(r.byVersion)
          .map(([v, x]) => `${v} ${x.successes}/${x.requests}`)
          .join(', ')
      : ''
    const ms = Date.parse(s.endedAt) - Date.parse(s.startedAt)
    return [
      String(s.index),
      `${s.weight} %`,
      r ? `${r.successes}/${r.requests}` : '-',
      r ? `${Math.round(r.p95Ms)} ms` : '-',
      byVersion + (r && r.unattributed ? `, unattributed ${r.unattributed}` : ''),
      `${ms} ms`,
      s.verdict === 'pass' ? green('pass') : s.verdict === 'fail' ? red('FAIL') : s.verdict,
    ]
  })
  const head = ['step', 'weight', 'passed', 'p95', 'by version (ok/attributed)', 'took', 'verdict']
  const widths = head.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] ?? '').replace(/\x1b\[\d+m/g, '').length)),
  )
  const fmt = (cells: string[]): string =>
    `  ${cells.map((c, i) => c + ' '.repeat((widths[i] ?? 0) - c.replace(/\x1b\[\d+m/g, '').length)).join('  ')}`
  const lines = [dim(fmt(head)), ...rows.map(fmt)]
  for (const s of report.steps) for (const reason of s.reasons) lines.push(`  ${red('why')} step ${s.index}: ${reason}`)
  if (report.steps.some((s) => (smokeEvidence(s.checks)?.unattributed ?? 0) > 0)) {
    lines.push(
      dim("  (a page whose reviews call failed shows an error instead of 'Reviews served by', so it names no version)"),
    )
  }
  return lines
}

interface Expectation {
  result: string
  exitCode: number
  steps: number
  lastVerdict: 'pass' | 'fail'
  routeAfter: (before: Route | undefined, after: Route | undefined) => boolean
  routeAfterText: string
  /** Not a failure of the demo when not met (printed as a note): a 5 % canary may fail a 20-request smoke test. */
  soft?: boolean
}

interface Told {
  problems: string[]
  report: RunReport | undefined
  result: string | undefined
}

async function tell(
  sim: Sim,
  title: string,
  inputs: Record<string, string>,
  expect: Expectation,
  runner: ReturnType<typeof makeRunner>,
): Promise<string[]> {
  return (await tellRun(sim, title, inputs, expect, runner)).problems
}

async function tellRun(
  sim: Sim,
  title: string,
  inputs: Record<string, string>,
  expect: Expectation,
  runner: ReturnType<typeof makeRunner>,
): Promise<Told> {
  console.log(`\n${bold(cyan(`== ${title}`))}`)
  const before = defaultRoute(reviews(sim))
  const served = { ...sim.mesh.served }
  console.log(`  route before:   ${describe(before)}`)
  console.log(
    `  steps ${inputs['steps']}, pause ${inputs['pause']}, ${inputs['smoke-requests']} smoke requests per step`,
  )
  const t0 = performance.now()
  const { main, post } = await runAction({
    inputs,
    env: { ...sim.env(), PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}` },
    runner,
  })
  const took = performance.now() - t0
  let report: RunReport | undefined
  try {
    if (main.outputs['report']) report = JSON.parse(readFileSync(main.outputs['report'], 'utf8')) as RunReport
  } catch {
    report = undefined
  }
  console.log(dim('  from the log:'))
  for (const l of storyLines(main.stdout)) console.log(dim(`    | ${l}`))
  console.log('  steps (from the JSON report):')
  for (const l of stepTable(report)) console.log(l)
  const after = defaultRoute(reviews(sim))
  const o = main.outputs
  const ok = (b: boolean): string => (b ? green(' ✓') : red(' ✗'))
  console.log(
    `  outputs:        result=${bold(o['result'] ?? '(none)')} canary-weight=${o['canary-weight'] ?? '-'} stable=${o['stable-subset'] ?? '-'} canary=${o['canary-subset'] ?? '-'} istio=${o['istio-version'] ?? '-'}`,
  )
  console.log(
    `  step outcome:   exit code ${String(main.code)}${main.code === 0 ? ' (the step succeeds)' : expect.exitCode !== 0 ? ' (the step fails, as it should after a rollback)' : ' (the step failed)'}; post step exit ${String(post?.code)}`,
  )
  console.log(
    `  route after:    ${describe(after)}  (expected: ${expect.routeAfterText})${ok(expect.routeAfter(before, after))}`,
  )
  console.log(`  reviews served: ${servedSince(sim, served)}`)
  console.log(`  wall time:      ${(took / 1000).toFixed(1)} s (main + post step)`)

  const problems: string[] = []
  const check = (cond: boolean, what: string): void => {
    if (!cond) problems.push(`${title}: ${what}`)
  }
  check(o['result'] === expect.result, `result '${o['result']}', expected '${expect.result}'`)
  check(main.code === expect.exitCode, `exit code ${String(main.code)}, expected ${expect.exitCode}`)
  check(post?.code === 0, `post step exit code ${String(post?.code)}`)
  check(report !== undefined, 'no JSON report')
  check(
    report?.steps.length === expect.steps,
    `${report?.steps.length ?? 0} step(s) in the report, expected ${expect.steps}`,
  )
  check(
    report?.steps.at(-1)?.verdict === expect.lastVerdict,
    `last step verdict '${report?.steps.at(-1)?.verdict}', expected '${expect.lastVerdict}'`,
  )
  check(expect.routeAfter(before, after), `route after is ${describe(after)}, expected ${expect.routeAfterText}`)
  if (problems.length) {
    console.log(dim('  --- main step stdout (tail) ---'))
    if (!expect.soft) console.log(dim(main.stdout.slice(-4000)))
  }
  if (expect.soft) {
    for (const p of problems)
      console.log(`  ${dim('note:')} ${p} (a 20-request smoke test can catch a 5 % canary by luck)`)
    return { problems: [], report, result: o['result'] }
  }
  return { problems, report, result: o['result'] }
}

function telemetryOf(report: RunReport | undefined): TelemetryEvidence | undefined {
  return report?.steps[0]?.checks.find((c) => c.kind === 'telemetry')?.evidence as TelemetryEvidence | undefined
}

/** Story 3's two runs, their first step side by side. */
function sideBySide(a: Told, b: Told): string[] {
  const col = (t: Told): string[] => {
    const s = t.report?.steps[0]
    const smoke = s ? smokeEvidence(s.checks) : undefined
    const tel = telemetryOf(t.report)
    const c = tel?.counts
    return [
      t.result ?? '(none)',
      s ? `${s.weight} %, ${s.verdict}` : '-',
      smoke ? `${smoke.successes}/${smoke.requests} ok` : '-',
      c ? `${c.canaryErrors}/${c.canaryRequests} 5xx` : '(not asked)',
      c ? `${c.stableErrors}/${c.stableRequests} 5xx` : '(not asked)',
      tel ? `${tel.statistic.toFixed(2)} vs ${tel.threshold.toFixed(2)} (${tel.test})` : '-',
      tel ? tel.decision : '-',
      tel ? `${(tel.observedMs / 1000).toFixed(1)} s (${tel.polls} polls)` : '-',
      s ? `${((Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000).toFixed(1)} s` : '-',
    ]
  }
  const names = [
    'result',
    'step 1',
    'smoke test',
    'canary v3 (telemetry)',
    'stable v1 (telemetry)',
    'statistic vs threshold',
    'decision',
    'time to decision',
    'step took',
  ]
  const left = col(a)
  const right = col(b)
  const w0 = Math.max(...names.map((n) => n.length))
  const w1 = Math.max("metrics 'false'".length, ...left.map((x) => x.length))
  const row = (n: string, x: string, y: string): string => `  ${n.padEnd(w0)}  ${x.padEnd(w1)}  ${y}`
  return [
    dim(row('', "metrics 'false'", "metrics 'true'")),
    ...names.map((n, i) => row(n, left[i] ?? '', right[i] ?? '')),
  ]
}

/** Puts the reviews VirtualService back as it was seeded (as a person would with kubectl apply). */
function resetReviews(sim: Sim, original: KubeObject): void {
  sim.store.restore(REFS.virtualServices, original)
}

async function main(): Promise<number> {
  const started = performance.now()
  if (!existsSync(BUNDLE)) {
    console.error(`demo: ${BUNDLE} is missing: run 'npm run bundle' first (npm run demo does)`)
    return 1
  }
  console.log(bold('istio-canary demo: the real action (dist/index.js) against a loopback AKS + Istio + BookInfo'))
  let sim: Sim
  try {
    sim = await startSimulation({ prometheus: true, rbac: ['istio-canary', 'analyze', 'telemetry'] })
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    if (/prometheus/i.test(msg)) {
      console.error(
        "demo: a real Prometheus is needed for story 3: install the 'prometheus' package (sudo apt-get install -y prometheus)",
      )
      return 1
    }
    throw err
  }
  try {
    console.log(dim(`  Entra ID ${sim.entra.authorityHost}  ARM ${sim.arm.url}  API server ${sim.kube.url}`))
    console.log(dim(`  ingress gateway ${sim.mesh.url}  istioctl mirror ${sim.releases.url}`))
    const original = reviews(sim)
    const writesAtStart = sim.store.writes.length
    const common = {
      ...sim.aksInputs(),
      namespace: NS,
      'virtual-service': VS,
      'canary-subset': 'v3',
      'version-pattern': 'reviews-(v[0-9]+)',
      'smoke-expect': '<title>Simple Bookstore App</title>',
      'smoke-requests': '200',
      'smoke-concurrency': '10',
      'istioctl-mirror': sim.releases.url,
    }
    const runner = makeRunner() // one job: the second run finds istioctl in the tool cache
    const problems: string[] = []

    problems.push(
      ...(await tell(
        sim,
        'Run 1: a healthy canary (reviews v3, red stars) rolled out through 10, 25, 50, 100 %',
        { ...common, steps: '10,25,50,100', pause: '1s' },
        {
          result: 'promoted',
          exitCode: 0,
          steps: 4,
          lastVerdict: 'pass',
          routeAfter: (_b, a) => isDeepStrictEqual(a?.route, [{ destination: { host: 'reviews', subset: 'v3' } }]),
          routeAfterText: 'v3 100 %, a single destination',
        },
        runner,
      )),
    )

    console.log(`\n${bold(cyan('== Between the runs'))}`)
    resetReviews(sim, original)
    sim.mesh.setFault('reviews', 'v3', { errorRate: 0.5 })
    console.log(
      `  reviews reset to ${describe(defaultRoute(reviews(sim)))} (state annotation removed), and v3 broken: 50 % of its calls now fail`,
    )

    // A failed reviews call leaves the page without a version, so at 10 % the broken canary shows up as too few
    // pages served by v3: 1000 requests make that share test decisive at the first step.
    problems.push(
      ...(await tell(
        sim,
        'Run 2: a broken canary (v3 failing half its calls) rolled out through 10, 25, 50, 100 %',
        { ...common, steps: '10,25,50,100', pause: '0', 'smoke-requests': '1000', 'smoke-concurrency': '20' },
        {
          result: 'rolled-back',
          exitCode: 1,
          steps: 1,
          lastVerdict: 'fail',
          routeAfter: (b, a) => b !== undefined && isDeepStrictEqual(a, b),
          routeAfterText: 'exactly the route before the run',
        },
        runner,
      )),
    )
    sim.mesh.setFault('reviews', 'v3', undefined)

    console.log(`\n${bold(cyan("== Story 3: on the mesh's telemetry (a real Prometheus)"))}`)
    resetReviews(sim, original)
    // Background users, bounded in rate, count and time: about 25 canary requests a second at 50 %, so the
    // sequential test has the few hundred it needs for 5 % vs 0 % well within a step.
    const load = startLoad({ url: sim.mesh.url, rate: 100, durationMs: 60_000, maxRequests: 6000, loggedInShare: 0 })
    try {
      await sim.prometheus?.waitForSeries(
        'sum(istio_requests_total{reporter="destination",destination_service_name="reviews",destination_version="v1"})',
        { min: 20, timeoutMs: 20_000 },
      )
      sim.faults.mesh('reviews', 'v3', { errorRate: 0.05 })
      console.log(
        `  Prometheus ${sim.prometheus?.url}; background load 100 req/s; reviews reset to ${describe(defaultRoute(reviews(sim)))}; v3 now fails 5 % of its calls`,
      )
      const third = {
        ...common,
        steps: '50,100',
        pause: '5s',
        'smoke-requests': '20',
        'min-canary-requests': '600',
        'max-step-time': '30s',
      }
      const smokeOnly = await tellRun(
        sim,
        "Run 3a: v3 erring 5 %, judged by the smoke test alone (metrics 'false')",
        { ...third, metrics: 'false' },
        {
          result: 'promoted',
          exitCode: 0,
          steps: 2,
          lastVerdict: 'pass',
          routeAfter: (_b, a) => isDeepStrictEqual(a?.route, [{ destination: { host: 'reviews', subset: 'v3' } }]),
          routeAfterText: 'v3 100 %, a single destination',
          soft: true,
        },
        runner,
      )
      console.log(
        `  ${smokeOnly.result === 'promoted' ? red('the 5 % canary was promoted') : `result: ${smokeOnly.result}`}`,
      )
      resetReviews(sim, original)
      console.log(`  reviews reset to ${describe(defaultRoute(reviews(sim)))}`)
      const withMetrics = await tellRun(
        sim,
        "Run 3b: the same v3, judged on telemetry (metrics 'true', success-threshold 0)",
        // success-threshold 0: the smoke test's 20 requests cannot decide by luck, the telemetry decides.
        { ...third, metrics: 'true', 'success-threshold': '0' },
        {
          result: 'rolled-back',
          exitCode: 1,
          steps: 1,
          lastVerdict: 'fail',
          routeAfter: (b, a) => b !== undefined && isDeepStrictEqual(a, b),
          routeAfterText: 'exactly the route before the run',
        },
        runner,
      )
      problems.push(...withMetrics.problems)
      const d = telemetryOf(withMetrics.report)?.decision
      if (d !== 'reject') problems.push(`Run 3b: telemetry decision '${d ?? '(none)'}', expected 'reject'`)
      console.log('  step 1 side by side:')
      for (const l of sideBySide(smokeOnly, withMetrics)) console.log(l)
    } finally {
      sim.faults.mesh('reviews', 'v3', undefined)
      const st = await load.stop({ abort: true })
      console.log(dim(`  background load: sent ${st.sent}, ok ${st.ok}, failed ${st.failed}, dropped ${st.dropped}`))
    }

    console.log(`\n${bold(cyan('== Summary'))}`)
    console.log(
      `  Kubernetes API requests ${sim.kube.requests.length}, VirtualService writes ${sim.store.writes.slice(writesAtStart).filter((w) => w.ref.resource === 'virtualservices').length} (three of them resets between the runs), istioctl assets downloaded ${sim.releases.downloads.length} (${sim.releases.downloads.map((d) => d.slice(d.lastIndexOf('/') + 1)).join(', ')})`,
    )
    console.log(`  total ${((performance.now() - started) / 1000).toFixed(1)} s`)
    if (problems.length) {
      console.log(red(bold('\nNOT AS EXPECTED:')))
      for (const p of problems) console.log(red(`  - ${p}`))
      return 1
    }
    console.log(
      green(
        bold(
          '\nEvery run ended as expected: promoted, rolled back with the route restored, and the 5 % canary caught on telemetry.',
        ),
      ),
    )
    return 0
  } finally {
    await sim.close()
  }
}

const deadline = setTimeout(() => {
  console.error('demo: gave up after 120 s')
  process.exit(2)
}, 120_000)
deadline.unref()
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
