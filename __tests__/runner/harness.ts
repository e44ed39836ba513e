// Runs the real bundle as GitHub runs a JavaScript action: `node dist/index.js` with INPUT_* variables,
// GITHUB_OUTPUT / GITHUB_STATE / GITHUB_STEP_SUMMARY files, RUNNER_TEMP and RUNNER_TOOL_CACHE; then the
// post step with STATE_* variables from the saved state.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from '../support/paths.js'

export { REPO_ROOT }
export const BUNDLE = join(REPO_ROOT, 'dist', 'index.js')

export interface Runner {
  temp: string
  toolCache: string
  workspace: string
}

/** A runner's directories, shared by the steps of one job (and by jobs that should share a tool cache). */
export function makeRunner(toolCache?: string): Runner {
  const root = mkdtempSync(join(tmpdir(), 'ic-runner-'))
  const r = {
    temp: join(root, 'temp'),
    toolCache: toolCache ?? join(root, 'tool-cache'),
    workspace: join(root, 'work'),
  }
  for (const d of Object.values(r)) mkdirSync(d, { recursive: true })
  return r
}

/**
 * How actions/runner cancels a step's process on Linux: `CancelAndKillProcessTree` sends SIGINT and waits 7.5 s for
 * the process to exit (`_sigintTimeout`), then SIGTERM and waits 2.5 s (`_sigtermTimeout`), then kills it
 * (`NixKillProcessTree`: `Process.Kill()`, a SIGKILL to the step's process). The signals go to that process only
 * (`kill(_proc.Id, signal)`), not its group. actions/runner src/Runner.Sdk/ProcessInvoker.cs.
 */
export const RUNNER_CANCEL = { sigintTimeoutMs: 7500, sigtermTimeoutMs: 2500 } as const

/** When each signal of a runner's cancellation was sent, in ms after the first (SIGINT). */
export type CancelTimeline = Array<{ signal: NodeJS.Signals; atMs: number }>

export interface StepResult {
  code: number | null
  /** The signals of a `cancel`, as sent (none when the process exited after the first). */
  cancelled?: CancelTimeline
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  outputs: Record<string, string>
  state: Record<string, string>
  summary: string
  files: { output: string; state: string; summary: string }
}

export interface RunOptions {
  inputs: Record<string, string>
  env?: Record<string, string>
  runner?: Runner
  /** Sends this signal once stdout contains `when` (e.g. 'Pausing'), or once the promise resolves. */
  interrupt?: { when: string | RegExp | Promise<void>; signal: NodeJS.Signals }
  /**
   * Cancels the main step as a real runner cancels a workflow (RUNNER_CANCEL): once stdout contains `when` (or the
   * promise resolves), SIGINT, SIGTERM 7.5 s later, SIGKILL 2.5 s after that.
   */
  cancel?: { when: string | RegExp | Promise<void> }
  /** Called between the main and the post step (e.g. to clear the faults the main step met). */
  beforePost?: () => void
  /** Calls `do` once stdout contains `when` (e.g. to lose a service mid-step); main step only. */
  onStdout?: { when: string | RegExp; do: () => void }
  timeoutMs?: number
  /** Runs the post step after main (default true). */
  post?: boolean
}

/** GitHub's file commands: `name<<DELIM\nvalue\nDELIM` (and plain `name=value`). */
export function parseFileCommands(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    const m = /^([^=<]+)<<(.+)$/.exec(line)
    if (m) {
      const delim = m[2] as string
      const value: string[] = []
      for (i++; i < lines.length && lines[i] !== delim; i++) value.push(lines[i] as string)
      out[m[1] as string] = value.join('\n')
    } else if (line.includes('=')) {
      out[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1)
    }
  }
  return out
}

function baseEnv(
  runner: Runner,
  files: StepResult['files'],
  inputs: Record<string, string>,
  extra: Record<string, string>,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? runner.workspace,
    GITHUB_ACTIONS: 'true',
    CI: 'true',
    GITHUB_REPOSITORY: 'octo-org/octo-repo',
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_JOB: 'canary',
    GITHUB_WORKSPACE: runner.workspace,
    RUNNER_TEMP: runner.temp,
    RUNNER_TOOL_CACHE: runner.toolCache,
    RUNNER_OS: 'Linux',
    RUNNER_ARCH: 'X64',
    GITHUB_OUTPUT: files.output,
    GITHUB_STATE: files.state,
    GITHUB_STEP_SUMMARY: files.summary,
    ...extra,
  }
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.replace(/ /g, '_').toUpperCase()}`] = v
  return env
}

function spawnStep(
  env: NodeJS.ProcessEnv,
  cwd: string,
  o: {
    interrupt?: RunOptions['interrupt']
    onStdout?: RunOptions['onStdout']
    cancel?: RunOptions['cancel']
    timeoutMs: number
  },
): Promise<{
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  cancelled?: CancelTimeline
}> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BUNDLE], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let sent = false
    let done = false
    const seen = (w: string | RegExp): boolean => (typeof w === 'string' ? stdout.includes(w) : w.test(stdout))
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs)
    let exited = false
    let cancelled: CancelTimeline | undefined
    const cancelTimers: NodeJS.Timeout[] = []
    const startCancel = (): void => {
      if (cancelled || exited) return
      const t0 = Date.now()
      const send = (signal: NodeJS.Signals): void => {
        if (exited) return
        cancelled?.push({ signal, atMs: Date.now() - t0 })
        child.kill(signal)
      }
      cancelled = []
      send('SIGINT')
      cancelTimers.push(setTimeout(() => send('SIGTERM'), RUNNER_CANCEL.sigintTimeoutMs))
      cancelTimers.push(
        setTimeout(() => send('SIGKILL'), RUNNER_CANCEL.sigintTimeoutMs + RUNNER_CANCEL.sigtermTimeoutMs),
      )
    }
    const cancelWhen = o.cancel?.when
    if (cancelWhen instanceof Promise) void cancelWhen.then(startCancel)
    const interruptWhen = o.interrupt?.when
    if (interruptWhen instanceof Promise) {
      void interruptWhen.then(() => {
        if (!exited && !sent && o.interrupt) {
          sent = true
          child.kill(o.interrupt.signal)
        }
      })
    }
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString()
      if (o.onStdout && !done && seen(o.onStdout.when)) {
        done = true
        o.onStdout.do()
      }
      if (cancelWhen !== undefined && !(cancelWhen instanceof Promise) && seen(cancelWhen)) startCancel()
      if (o.interrupt && !sent && !(interruptWhen instanceof Promise) && seen(o.interrupt.when as string | RegExp)) {
        sent = true
        child.kill(o.interrupt.signal)
      }
    })
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.on('error', reject)
    child.on('exit', () => {
      exited = true
      for (const t of cancelTimers) clearTimeout(t)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      for (const t of cancelTimers) clearTimeout(t)
      resolvePromise({ code, signal, stdout, stderr, ...(cancelled ? { cancelled } : {}) })
    })
  })
}

function files(runner: Runner, tag: string): StepResult['files'] {
  const dir = mkdtempSync(join(runner.temp, `_runner_file_commands-${tag}-`))
  const f = { output: join(dir, 'output'), state: join(dir, 'state'), summary: join(dir, 'summary.md') }
  for (const p of Object.values(f)) writeFileSync(p, '')
  return f
}

function collect(r: Awaited<ReturnType<typeof spawnStep>>, f: StepResult['files']): StepResult {
  const read = (p: string): string => (existsSync(p) ? readFileSync(p, 'utf8') : '')
  return {
    ...r,
    outputs: parseFileCommands(read(f.output)),
    state: parseFileCommands(read(f.state)),
    summary: read(f.summary),
    files: f,
  }
}

/** Main step, then (unless post: false) the post step with the state main saved. */
export async function runAction(o: RunOptions): Promise<{ main: StepResult; post?: StepResult; runner: Runner }> {
  const runner = o.runner ?? makeRunner()
  const env = { GITHUB_RUN_ID: String(Date.now()), ...(o.env ?? {}) }
  const timeoutMs = o.timeoutMs ?? 60_000
  const mf = files(runner, 'main')
  const main = collect(
    await spawnStep(baseEnv(runner, mf, o.inputs, env), runner.workspace, {
      ...(o.interrupt ? { interrupt: o.interrupt } : {}),
      ...(o.onStdout ? { onStdout: o.onStdout } : {}),
      ...(o.cancel ? { cancel: o.cancel } : {}),
      timeoutMs,
    }),
    mf,
  )
  if (o.post === false) return { main, runner }
  o.beforePost?.()
  const pf = files(runner, 'post')
  const stateEnv = Object.fromEntries(Object.entries(main.state).map(([k, v]) => [`STATE_${k}`, v]))
  const post = collect(
    await spawnStep({ ...baseEnv(runner, pf, o.inputs, env), ...stateEnv }, runner.workspace, { timeoutMs }),
    pf,
  )
  return { main, post, runner }
}
