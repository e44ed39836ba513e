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

export interface StepResult {
  code: number | null
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
  /** Sends this signal once stdout contains `when` (e.g. 'Pausing'). */
  interrupt?: { when: string | RegExp; signal: NodeJS.Signals }
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
  o: { interrupt?: RunOptions['interrupt']; onStdout?: RunOptions['onStdout']; timeoutMs: number },
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BUNDLE], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let sent = false
    let done = false
    const seen = (w: string | RegExp): boolean => (typeof w === 'string' ? stdout.includes(w) : w.test(stdout))
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs)
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString()
      if (o.onStdout && !done && seen(o.onStdout.when)) {
        done = true
        o.onStdout.do()
      }
      if (o.interrupt && !sent && seen(o.interrupt.when)) {
        sent = true
        child.kill(o.interrupt.signal)
      }
    })
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolvePromise({ code, signal, stdout, stderr })
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
      timeoutMs,
    }),
    mf,
  )
  if (o.post === false) return { main, runner }
  const pf = files(runner, 'post')
  const stateEnv = Object.fromEntries(Object.entries(main.state).map(([k, v]) => [`STATE_${k}`, v]))
  const post = collect(
    await spawnStep({ ...baseEnv(runner, pf, o.inputs, env), ...stateEnv }, runner.workspace, { timeoutMs }),
    pf,
  )
  return { main, post, runner }
}
