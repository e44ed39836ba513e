// `npm run demo`: the real bundle against the loopback simulation, told as a story.
//   1. a healthy reviews v3 canary goes 10 -> 25 -> 50 -> 100 % and is promoted;
//   2. the route is reset to v1, v3 is broken (half its calls fail) and the next rollout is
//      rolled back at its first step, leaving the route exactly as it was.
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
}

async function tell(
  sim: Sim,
  title: string,
  inputs: Record<string, string>,
  expect: Expectation,
  runner: ReturnType<typeof makeRunner>,
): Promise<string[]> {
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
    console.log(dim(main.stdout.slice(-4000)))
  }
  return problems
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
  const sim = await startSimulation()
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

    console.log(`\n${bold(cyan('== Summary'))}`)
    console.log(
      `  Kubernetes API requests ${sim.kube.requests.length}, VirtualService writes ${sim.store.writes.slice(writesAtStart).filter((w) => w.ref.resource === 'virtualservices').length} (one of them the reset between the runs), istioctl assets downloaded ${sim.releases.downloads.length} (${sim.releases.downloads.map((d) => d.slice(d.lastIndexOf('/') + 1)).join(', ')})`,
    )
    console.log(`  total ${((performance.now() - started) / 1000).toFixed(1)} s`)
    if (problems.length) {
      console.log(red(bold('\nNOT AS EXPECTED:')))
      for (const p of problems) console.log(red(`  - ${p}`))
      return 1
    }
    console.log(green(bold('\nBoth runs ended as expected: promoted, then rolled back with the route restored.')))
    return 0
  } finally {
    await sim.close()
  }
}

const deadline = setTimeout(() => {
  console.error('demo: gave up after 90 s')
  process.exit(2)
}, 90_000)
deadline.unref()
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
