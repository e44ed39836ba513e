// The run's JSON report (the `report` output).
import { mkdir, writeFile } from 'node:fs/promises'
import * as path from 'node:path'
import type { TargetKind } from '../routing/router.js'
import type { Check } from '../verify/verifier.js'
import type { KialiLinks } from './kiali.js'

export interface StepRecord {
  index: number
  weight: number
  pauseMs: number
  startedAt: string
  endedAt: string
  /** Each verifier's check of the step, with its evidence. */
  checks: Check[]
  verdict: 'pass' | 'fail' | 'skipped'
  reasons: string[]
}

/** `status`: the route as it is and what the verifiers saw of it, read-only. */
export interface Observation {
  at: string
  /** The rollout state on the target (none: no istio-canary rollout there). */
  state?: {
    phase: string
    weight: number
    stable: string
    canary: string
    runId: string
    startedAt: string
    updatedAt: string
  }
  /** The target route's shares now, per subset (percent). */
  weights: Array<{ subset: string; weight: number }>
  /** Each verifier's read-only check at the current weights (empty: see `note`). */
  checks: Check[]
  /** Why a verifier saw nothing, or why there are no checks. */
  notes: string[]
}

export interface RunReport {
  /** 2: `target` names the resource, and each step keeps its `checks`. */
  version: 2
  action: string
  /** The resource whose route the run shifts; `route` describes which of its routes. */
  target: { kind: TargetKind; namespace: string; name: string; route: string }
  stableSubset: string
  canarySubset: string
  gatewayUrl: string
  istioVersion: string
  result: string
  canaryWeight: number
  startedAt: string
  endedAt: string
  steps: StepRecord[]
  events: Array<{ at: string; message: string }>
  /** `status` only: the route now and the evidence of each version. */
  observation?: Observation
  /** Links into other consoles for the run's window (Kiali with `kiali-url`). */
  links?: { kiali?: KialiLinks }
  error?: string
}

/** Keeps file-name-safe characters only. */
function slug(s: string): string {
  return (
    s
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^[-.]+|-+$/g, '')
      .slice(0, 63) || 'x'
  )
}

/** 2025-01-02T03:04:05.678Z -> 20250102T030405678Z; the current time when `iso` does not parse. */
function stamp(iso: string): string {
  const t = Date.parse(iso)
  return new Date(Number.isNaN(t) ? Date.now() : t).toISOString().replace(/[-:.]/g, '')
}

/**
 * Writes the report as pretty JSON into `dir` (created if missing) and returns the file's absolute path.
 * Name: istio-canary-<namespace>-<target name>-<startedAt>[-run<runId>[-<attempt>]].json; an existing file
 * is never overwritten (a -2, -3, ... suffix is added instead).
 */
export async function writeReport(
  dir: string,
  report: RunReport,
  runId: string | undefined = process.env['GITHUB_RUN_ID'],
  runAttempt: string | undefined = process.env['GITHUB_RUN_ATTEMPT'],
): Promise<string> {
  await mkdir(dir, { recursive: true })
  const { namespace, name } = report.target
  let base = `istio-canary-${slug(namespace)}-${slug(name)}-${stamp(report.startedAt)}`
  if (runId) base += `-run${slug(runId)}${runAttempt ? `-${slug(runAttempt)}` : ''}`
  const json = `${JSON.stringify(report, null, 2)}\n`
  const absDir = path.isAbsolute(dir) ? dir : `${process.cwd()}${path.sep}${dir}`
  for (let n = 1; n <= 1000; n++) {
    // Joined by hand: ncc's asset relocator rewrites path.resolve/join calls on variables into bundle paths.
    const file = `${absDir}${path.sep}${base}${n === 1 ? '' : `-${n}`}.json`
    try {
      await writeFile(file, json, { flag: 'wx' })
      return file
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }
  throw new Error(`could not find a free report file name for ${base} in ${dir}`)
}
