// istioctl: fetched from the mirror with @actions/tool-cache, verified against its published SHA-256
// before anything is extracted or run, cached per version and architecture; then analyze / install.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as core from '@actions/core'
import * as exec from '@actions/exec'
import * as tc from '@actions/tool-cache'
import { type Sleep, defaultRetry, realSleep } from '../retry.js'

export class IstioctlError extends Error {
  override name = 'IstioctlError'
}

export interface Platform {
  platform: NodeJS.Platform
  arch: string
}

/** Istio's name for each Node.js architecture it publishes istioctl for. */
const ISTIO_ARCH = new Map([
  ['x64', 'amd64'],
  ['arm64', 'arm64'],
])

/** Istio's release asset name: linux-amd64/arm64, osx(-arm64), win (zip). */
export function assetName(version: string, system: Platform): string {
  const arch = ISTIO_ARCH.get(system.arch)
  if (!arch) {
    throw new IstioctlError(`istioctl has no release for architecture '${system.arch}' (supported: x64, arm64)`)
  }
  switch (system.platform) {
    case 'linux':
      return `istioctl-${version}-linux-${arch}.tar.gz`
    case 'darwin':
      return `istioctl-${version}-osx${arch === 'arm64' ? '-arm64' : ''}.tar.gz`
    case 'win32':
      if (arch !== 'amd64') throw new IstioctlError('istioctl for Windows is published for amd64 only')
      return `istioctl-${version}-win.zip`
    default:
      throw new IstioctlError(
        `istioctl has no release for platform '${system.platform}' (supported: linux, darwin, win32)`,
      )
  }
}

/** `<hex>  <file>` or `<hex> <file>` or just `<hex>`. */
export function parseSha256File(text: string, file: string): string {
  for (const line of text.split(/\r?\n/)) {
    const match = /^([0-9a-fA-F]{64})(?:\s+\*?(\S+))?\s*$/.exec(line.trim())
    if (match && (match[2] === undefined || match[2].endsWith(file))) return (match[1] as string).toLowerCase()
  }
  throw new IstioctlError(`the checksum file for ${file} holds no SHA-256 for it`)
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

export interface InstallResult {
  path: string
  version: string
  cached: boolean
}

/** Finds istioctl <version> in the tool cache, or downloads, verifies, extracts and caches it; adds it to PATH. */
export async function installIstioctl(
  version: string,
  mirror: string,
  system: Platform = { platform: process.platform, arch: process.arch },
): Promise<InstallResult> {
  const arch = system.arch
  const exe = system.platform === 'win32' ? 'istioctl.exe' : 'istioctl'
  const hit = tc.find('istioctl', version, arch)
  if (hit) {
    core.addPath(hit)
    return { path: join(hit, exe), version, cached: true }
  }
  const file = assetName(version, system)
  const url = `${mirror.replace(/\/+$/, '')}/${version}/${file}`
  let archive: string
  let sumFile: string
  try {
    archive = await tc.downloadTool(url)
    sumFile = await tc.downloadTool(`${url}.sha256`)
  } catch (err) {
    throw new IstioctlError(
      `could not download istioctl ${version} from ${url} (or its .sha256): ${(err as Error).message}. ` +
        'Check istioctl-version and istioctl-mirror',
    )
  }
  const expected = parseSha256File(await readFile(sumFile, 'utf8'), file)
  const actual = await sha256(archive)
  if (actual !== expected) {
    throw new IstioctlError(
      `checksum mismatch for ${url}: published SHA-256 ${expected}, downloaded file has ${actual}. ` +
        'Nothing was extracted or run',
    )
  }
  const dir = file.endsWith('.zip') ? await tc.extractZip(archive) : await tc.extractTar(archive)
  const cached = await tc.cacheDir(dir, 'istioctl', version, arch)
  core.addPath(cached)
  return { path: join(cached, exe), version, cached: false }
}

export interface AnalyzeMessage {
  code: string
  level: string
  message: string
  origin?: string
  documentationUrl?: string
}

export interface IstioctlRunner {
  run(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }>
}

export function istioctlRunner(path: string, kubeconfig: string | undefined): IstioctlRunner {
  return {
    async run(args) {
      const full = kubeconfig ? [...args, '--kubeconfig', kubeconfig] : args
      const out = await exec.getExecOutput(path, full, { ignoreReturnCode: true, silent: true })
      return { exitCode: out.exitCode, stdout: out.stdout, stderr: out.stderr }
    },
  }
}

// Long flag forms only: every istioctl release has them, while short forms came later and per command
// (`analyze -r` only since Istio 1.25.0: istio/istio#53339; 1.24 and older exit 64 "unknown shorthand flag").
function revisionArgs(mesh: { istioNamespace: string; revision: string }): string[] {
  return [
    '--istioNamespace',
    mesh.istioNamespace,
    ...(mesh.revision !== 'default' ? ['--revision', mesh.revision] : []),
  ]
}

/**
 * A failed istioctl run that a second try may well pass: exit 1 (a cobra command error, neither 64, a usage error,
 * nor 79, findings in the log format) with the words client-go gives a transient API failure: the apiserver's
 * Status messages for 500 (`Internal error occurred: ...`, e.g. an etcd timeout), 503, 504 and 429
 * (k8s.io/apiserver pkg/endpoints/handlers/responsewriters/status.go and k8s.io/apimachinery
 * pkg/api/errors/errors.go: NewInternalError, NewServiceUnavailable, NewTimeoutError, NewTooManyRequests), client-go's
 * fallback for a body it cannot read (`an error on the server (...) has prevented the request from succeeding`), and
 * Go's network errors (`connection reset by peer`, `EOF`, `i/o timeout`, `TLS handshake timeout`, `connection
 * refused`, `context deadline exceeded`). A 401/403, an unknown flag or a missing namespace are not retried.
 */
export function isTransientIstioctlFailure(out: { exitCode: number; stdout: string; stderr: string }): boolean {
  if (out.exitCode !== 1) return false
  const text = `${out.stderr}\n${out.stdout}`
  if (/forbidden|unauthorized|provide credentials|unknown (shorthand )?flag/i.test(text)) return false
  return TRANSIENT_ISTIOCTL.some((re) => re.test(text))
}

const TRANSIENT_ISTIOCTL: readonly RegExp[] = [
  /Internal error occurred/i,
  /the server is currently unable to handle the request/i,
  /the server was unable to return a response in the time allotted/i,
  /too many requests/i,
  /an error on the server .* has prevented the request from succeeding/i,
  /etcdserver: (request timed out|leader changed)/i,
  /connection reset by peer/i,
  /(^|[\s:])(unexpected )?EOF\s*$/im,
  /i\/o timeout/i,
  /TLS handshake timeout/i,
  /connect: connection refused/i,
  /http2: client connection lost/i,
  /context deadline exceeded/i,
]

export interface AnalyzeOptions {
  /** Attempts in all for a transient failure (see isTransientIstioctlFailure). */
  attempts?: number
  sleep?: Sleep
  log?: (message: string) => void
}

/**
 * `istioctl analyze -o json`: exits 0 whatever it finds, so the JSON decides. It only reads the cluster, so a run
 * failed by a transient API error is run again (bounded, jittered backoff as the Kubernetes client's reads).
 */
export async function analyze(
  runner: IstioctlRunner,
  scope: { namespace: string; istioNamespace: string; revision: string },
  opts: AnalyzeOptions = {},
): Promise<AnalyzeMessage[]> {
  const args = ['analyze', '--namespace', scope.namespace, ...revisionArgs(scope), '--output', 'json']
  const log = opts.log ?? core.info
  let out = await runner.run(args)
  const attempts = opts.attempts ?? defaultRetry.attempts
  for (let attempt = 1; attempt < attempts && isTransientIstioctlFailure(out); attempt++) {
    const delay = Math.round(Math.random() * Math.min(defaultRetry.maxMs, defaultRetry.baseMs * 2 ** (attempt - 1)))
    log(
      `istioctl analyze failed on a transient API error (${firstLine(out.stderr || out.stdout)}); ` +
        `retry ${attempt} in ${delay} ms`,
    )
    await (opts.sleep ?? realSleep)(delay)
    out = await runner.run(args)
  }
  if (out.exitCode !== 0) {
    throw new IstioctlError(
      `istioctl analyze failed (exit ${out.exitCode}): ${(out.stderr || out.stdout).trim().slice(0, 2000)}`,
    )
  }
  const text = out.stdout.trim()
  if (text === '' || text === '[]') return []
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new IstioctlError(`istioctl analyze printed no JSON: ${text.slice(0, 500)}`)
  }
  if (!Array.isArray(parsed)) throw new IstioctlError('istioctl analyze -o json did not print a list of messages')
  return parsed as AnalyzeMessage[]
}

function firstLine(text: string): string {
  return (text.trim().split('\n')[0] ?? '').slice(0, 300)
}

export function formatFinding(finding: AnalyzeMessage): string {
  return `${finding.level} [${finding.code}] ${finding.origin ? `(${finding.origin}) ` : ''}${finding.message}`
}

export async function installControlPlane(
  runner: IstioctlRunner,
  plan: { profile: string; revision: string | 'auto' },
): Promise<string> {
  const pre = await runner.run(['x', 'precheck'])
  if (pre.exitCode !== 0) {
    const problems = (pre.stdout + pre.stderr).trim().slice(0, 2000)
    throw new IstioctlError(`istioctl x precheck found problems; Istio was not installed:\n${problems}`)
  }
  const args = [
    'install',
    '--skip-confirmation',
    '--set',
    `profile=${plan.profile}`,
    ...(plan.revision !== 'auto' && plan.revision !== 'default' ? ['--set', `revision=${plan.revision}`] : []),
  ]
  const out = await runner.run(args)
  if (out.exitCode !== 0) {
    throw new IstioctlError(
      `istioctl ${args.join(' ')} failed (exit ${out.exitCode}): ${(out.stderr || out.stdout).trim().slice(0, 2000)}`,
    )
  }
  return out.stdout
}
