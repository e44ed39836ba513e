// A REAL Prometheus (Debian's `prometheus` package, 2.42) started on loopback for tests, the demo and the
// benchmark: a temporary config (1 s scrapes of the targets the caller names), a temporary TSDB directory, a
// random free port. Nothing here evaluates PromQL: every query the action builds runs on the real engine.
// Flags: https://prometheus.io/docs/prometheus/2.42/command-line/prometheus/ (--config.file,
// --storage.tsdb.path, --web.listen-address); readiness: GET /-/ready answers 200 once the TSDB is open
// (https://prometheus.io/docs/prometheus/latest/management_api/).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export interface ScrapeTarget {
  job: string
  /** host:port on loopback */
  address: string
  /** Default /metrics */
  metricsPath?: string
  /** 'http' (default) or 'https' (then caFile is the CA to trust) */
  scheme?: 'http' | 'https'
  caFile?: string
}

export interface PrometheusSim {
  /** http://127.0.0.1:<port> */
  url: string
  port: number
  /** Milliseconds from spawn to /-/ready. */
  startupMs: number
  /** Instant query through the real HTTP API (for the tests' own checks). */
  query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>
  /** Waits (bounded) until `selector` returns at least one series with a value >= min. */
  waitForSeries(selector: string, opts?: { min?: number; timeoutMs?: number }): Promise<void>
  stop(): Promise<void>
}

const PACKAGE = 'prometheus'

/** Finds the prometheus binary on PATH (or /usr/bin), installing Debian's package as root when apt-get exists. */
export function findPrometheus(): string {
  const onPath = (): string | undefined => {
    for (const dir of [...(process.env['PATH'] ?? '').split(delimiter), '/usr/bin']) {
      const f = join(dir, 'prometheus')
      if (dir && existsSync(f)) return f
    }
    return undefined
  }
  const found = onPath()
  if (found) return found
  const root = typeof process.getuid === 'function' && process.getuid() === 0
  const apt = ['/usr/bin/apt-get', '/bin/apt-get'].some((f) => existsSync(f))
  if (root && apt) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env, timeout: 300_000 })
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', PACKAGE], {
      stdio: 'ignore',
      env,
      timeout: 600_000,
    })
    const installed = onPath()
    if (installed) return installed
  }
  throw new Error(
    `Prometheus is needed by these tests: install the '${PACKAGE}' package (e.g. 'sudo apt-get install -y ${PACKAGE}') or put a prometheus binary on PATH`,
  )
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

function configYaml(targets: ScrapeTarget[]): string {
  // scrape_timeout must not exceed scrape_interval (Prometheus refuses the config otherwise).
  const jobs = targets.map((t) => {
    const lines = [
      `  - job_name: ${JSON.stringify(t.job)}`,
      `    metrics_path: ${JSON.stringify(t.metricsPath ?? '/metrics')}`,
      `    scheme: ${t.scheme ?? 'http'}`,
    ]
    if (t.scheme === 'https' && t.caFile) lines.push('    tls_config:', `      ca_file: ${JSON.stringify(t.caFile)}`)
    lines.push('    static_configs:', `      - targets: [${JSON.stringify(t.address)}]`)
    return lines.join('\n')
  })
  return `global:\n  scrape_interval: 1s\n  scrape_timeout: 800ms\n  evaluation_interval: 1s\nscrape_configs:\n${jobs.join('\n')}\n`
}

export async function startPrometheus(opts: {
  targets: ScrapeTarget[]
  readyTimeoutMs?: number
}): Promise<PrometheusSim> {
  const bin = findPrometheus()
  const dir = mkdtempSync(join(tmpdir(), 'ic-prom-'))
  const config = join(dir, 'prometheus.yml')
  writeFileSync(config, configYaml(opts.targets))
  let child: ChildProcess | undefined
  let log = ''
  const stop = async (): Promise<void> => {
    const c = child
    child = undefined
    if (c && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()))
      c.kill('SIGTERM')
      const t = setTimeout(() => c.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(t)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    // A free port can be taken between our probe and Prometheus' bind: try a few.
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort()
      const started = Date.now()
      log = ''
      const c = spawn(
        bin,
        [
          `--config.file=${config}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--storage.tsdb.retention.time=1h',
          '--log.level=warn',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      )
      child = c
      c.stderr?.on('data', (d: Buffer) => {
        if (log.length < 20_000) log += d.toString('utf8')
      })
      const url = `http://127.0.0.1:${port}`
      const deadline = started + (opts.readyTimeoutMs ?? 30_000)
      let ready = false
      while (Date.now() < deadline && c.exitCode === null) {
        try {
          const r = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })
          if (r.status === 200) {
            ready = true
            break
          }
        } catch {
          // not listening yet
        }
        await sleep(50)
      }
      if (!ready) {
        await new Promise((r) => setTimeout(r, 50))
        if (c.exitCode !== null && /address already in use/.test(log)) continue
        throw new Error(
          `Prometheus did not become ready within ${opts.readyTimeoutMs ?? 30_000} ms: ${log.slice(-2000)}`,
        )
      }
      const startupMs = Date.now() - started
      const query: PrometheusSim['query'] = async (promql) => {
        const r = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`, {
          signal: AbortSignal.timeout(5000),
        })
        const j = (await r.json()) as { status: string; error?: string; data?: { result?: unknown } }
        if (j.status !== 'success') throw new Error(`query ${promql}: ${j.error ?? r.status}`)
        return (j.data?.result ?? []) as Array<{ metric: Record<string, string>; value: [number, string] }>
      }
      return {
        url,
        port,
        startupMs,
        query,
        stop,
        async waitForSeries(selector, o = {}) {
          const until = Date.now() + (o.timeoutMs ?? 15_000)
          while (Date.now() < until) {
            const res = await query(selector).catch(() => [])
            if (res.some((s) => Number(s.value[1]) >= (o.min ?? 0))) return
            await sleep(200)
          }
          throw new Error(`no series for ${selector} after ${o.timeoutMs ?? 15_000} ms`)
        },
      }
    }
    throw new Error(`Prometheus could not bind a free loopback port: ${log.slice(-2000)}`)
  } catch (err) {
    await stop()
    throw err
  }
}
