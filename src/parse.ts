// Pure parsers for action inputs. Each throws InputError naming the input and what it accepts.
import { validateHeaderValue } from 'node:http'

export class InputError extends Error {
  constructor(
    readonly input: string,
    message: string,
  ) {
    super(`Input '${input}': ${message}`)
    this.name = 'InputError'
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const DURATION_HELP = 'a duration like 90 (seconds), 45s, 2m, 1m30s, 1h or 800ms'

/** `90` (seconds), `45s`, `2m`, `1m30s`, `1h`, `800ms`, `0`. */
export function parseDuration(input: string, raw: string, opts: { maxMs?: number } = {}): number {
  const text = raw.trim()
  let ms: number
  if (/^\d+$/.test(text)) {
    ms = Number(text) * 1000
  } else {
    const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)]
    if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) {
      throw new InputError(input, `'${raw}' is not ${DURATION_HELP}`)
    }
    const units = parts.map((p) => p[2] as string)
    if (new Set(units).size !== units.length)
      throw new InputError(input, `'${raw}' repeats a unit; accepted: ${DURATION_HELP}`)
    ms = Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * (UNIT_MS[p[2] as string] ?? NaN), 0))
  }
  if (!Number.isFinite(ms)) throw new InputError(input, `'${raw}' is not ${DURATION_HELP}`)
  if (opts.maxMs !== undefined && ms > opts.maxMs) {
    throw new InputError(input, `'${raw}' is longer than the maximum of ${formatDuration(opts.maxMs)}`)
  }
  return ms
}

/** 0s, 800ms, 45s, 1m30s, 2h5m: for logs, reports and messages. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return '0s'
  if (ms < 1000) return `${Math.round(ms)}ms`
  let s = Math.round(ms / 1000)
  const h = Math.floor(s / 3600)
  s -= h * 3600
  const m = Math.floor(s / 60)
  s -= m * 60
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || (!h && !m) ? `${s}s` : ''}`
}

export interface Step {
  weight: number
  /** This step's own pause; the `pause` input applies when absent. */
  pauseMs?: number
}

const STEPS_HELP =
  'a comma-separated list of strictly increasing integer weights in 1..100, ' +
  'each optionally with its own pause (e.g. 10,25,50,100 or 10:2m,50:5m,100)'

export function parseSteps(raw: string, maxPauseMs: number): Step[] {
  const items = raw.split(',').map((s) => s.trim())
  if (items.length === 0 || items.some((s) => s === '')) throw new InputError('steps', `'${raw}' is not ${STEPS_HELP}`)
  const steps: Step[] = []
  for (const item of items) {
    const match = /^(\d+)(?::(.+))?$/.exec(item)
    if (!match) throw new InputError('steps', `'${item}' is not a weight; expected ${STEPS_HELP}`)
    const weight = Number(match[1])
    if (weight < 1 || weight > 100)
      throw new InputError('steps', `weight ${weight} is outside 1..100; expected ${STEPS_HELP}`)
    const prev = steps.at(-1)
    if (prev && weight <= prev.weight) {
      throw new InputError(
        'steps',
        `weights must be strictly increasing, but ${weight} follows ${prev.weight}; expected ${STEPS_HELP}`,
      )
    }
    const step: Step = { weight }
    if (match[2] !== undefined) step.pauseMs = parseDuration('steps', match[2], { maxMs: maxPauseMs })
    steps.push(step)
  }
  return steps
}

export function parseBoolean(input: string, raw: string): boolean {
  const t = raw.trim().toLowerCase()
  if (t === 'true') return true
  if (t === 'false') return false
  throw new InputError(input, `'${raw}' is not a boolean; accepted: true or false`)
}

export function parseInteger(input: string, raw: string, min: number, max: number): number {
  const t = raw.trim()
  if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max) {
    throw new InputError(input, `'${raw}' is not an integer in ${min}..${max}`)
  }
  return Number(t)
}

export function parseRatio(input: string, raw: string): number {
  const t = raw.trim()
  const v = t.endsWith('%') ? Number(t.slice(0, -1)) / 100 : Number(t)
  if (t === '' || !Number.isFinite(v) || v < 0 || v > 1) {
    throw new InputError(input, `'${raw}' is not a share between 0 and 1 (e.g. 0.95 or 95%)`)
  }
  return v
}

export function parseRegex(input: string, raw: string, opts: { captureGroup?: boolean } = {}): RegExp {
  let re: RegExp
  try {
    re = new RegExp(raw)
  } catch (err) {
    throw new InputError(input, `'${raw}' is not a valid regular expression (${(err as Error).message})`)
  }
  if (opts.captureGroup) {
    const groups = new RegExp(`${raw}|`).exec('')?.length ?? 1
    if (groups - 1 < 1)
      throw new InputError(input, `'${raw}' needs one capture group naming the version, e.g. reviews-(v[0-9]+)`)
  }
  return re
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

export function parseHeaders(input: string, raw: string): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const line of raw.split(/\r?\n/)) {
    if (line.trim() === '') continue
    const colon = line.indexOf(':')
    const name = colon > 0 ? line.slice(0, colon).trim() : ''
    if (!HEADER_NAME.test(name))
      throw new InputError(input, `'${line.trim()}' is not a header line; expected one 'Name: value' a line`)
    const value = line.slice(colon + 1).trim()
    try {
      validateHeaderValue(name, value)
    } catch {
      throw new InputError(
        input,
        `the value of header '${name}' has characters HTTP does not allow in a header ` +
          '(visible ASCII, spaces and tabs only)',
      )
    }
    headers[name.toLowerCase()] = value
  }
  return headers
}

export function parseHeaderName(input: string, raw: string): string {
  const t = raw.trim()
  if (!HEADER_NAME.test(t)) throw new InputError(input, `'${raw}' is not a valid HTTP header name`)
  return t.toLowerCase()
}

export function parseHttpUrl(input: string, raw: string): string {
  let url: URL
  try {
    url = new URL(raw.trim())
  } catch {
    throw new InputError(
      input,
      `'${raw}' is not a URL; expected e.g. http://20.1.2.3 or https://gateway.example.com:8443`,
    )
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InputError(input, `'${raw}' must be an http:// or https:// URL`)
  return url.toString().replace(/\/$/, '')
}

/** An http(s) base URL that paths are appended to: no query, no fragment, no credentials; without a trailing slash. */
export function parseBaseUrl(input: string, raw: string, example: string): string {
  let url: URL
  try {
    url = new URL(raw.trim())
  } catch {
    throw new InputError(input, `'${raw}' is not a URL; expected an http:// or https:// base URL, e.g. ${example}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InputError(input, `'${raw}' must be an http:// or https:// URL, e.g. ${example}`)
  if (url.search !== '' || url.hash !== '')
    throw new InputError(input, `'${raw}' must be a base URL without a query or fragment, e.g. ${example}`)
  if (url.username !== '' || url.password !== '')
    throw new InputError(input, 'must not carry credentials (user:password@): the job summary shows it')
  return url.toString().replace(/\/+$/, '')
}

export function parseNamespacedName(input: string, raw: string): { namespace: string; name: string } {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(raw.trim())
  if (!m) throw new InputError(input, `'${raw}' is not namespace/name, e.g. istio-system/istio-ingressgateway`)
  return { namespace: m[1] as string, name: m[3] as string }
}

/** DNS-1123 label (namespaces) or subdomain (object names). */
export function parseK8sName(input: string, raw: string, kind: 'label' | 'subdomain'): string {
  const t = raw.trim()
  const re = kind === 'label' ? /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/ : /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/
  const max = kind === 'label' ? 63 : 253
  if (!re.test(t) || t.length > max) {
    const punctuation = kind === 'subdomain' ? "'-', '.'" : "'-'"
    const accepted = `lower-case letters, digits and ${punctuation}, at most ${max} characters`
    throw new InputError(input, `'${raw}' is not a valid Kubernetes name (${accepted})`)
  }
  return t
}

export function parseIstioVersion(raw: string): string | 'auto' {
  const t = raw.trim()
  if (t === 'auto') return 'auto'
  const m = /^v?(1\.\d+\.\d+(-[0-9A-Za-z.-]+)?)$/.exec(t)
  if (!m) throw new InputError('istioctl-version', `'${raw}' is not 'auto' or an exact version like 1.24.2`)
  return m[1] as string
}

export function oneOf<T extends string>(input: string, raw: string, accepted: readonly T[]): T {
  const t = raw.trim()
  if (!(accepted as readonly string[]).includes(t))
    throw new InputError(input, `'${raw}' is not accepted; expected one of ${accepted.join(', ')}`)
  return t as T
}
