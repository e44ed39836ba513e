// Release tag arithmetic, as the official actions do it: users pin the major tag (`@v1`), and every
// release `vX.Y.Z` moves `vX` to its commit. Used by .github/workflows/release.yml (after `npm test`,
// which builds this file into build/__tests__/scripts/major-tag.js):
//
//   node build/__tests__/scripts/major-tag.js check v1.2.3     validates the tag; writes version, major,
//                                                               prerelease (and notes, from CHANGELOG.md)
//                                                               to $GITHUB_OUTPUT when set
//   node build/__tests__/scripts/major-tag.js move v1.2.3 [--push] [--dry-run]
//                                                               moves v1 to v1.2.3's commit, printing every
//                                                               git command before it runs it
//
// `move` refuses a pre-release, a tag that is not strict `vMAJOR.MINOR.PATCH`, and moving the major tag
// backwards (to an older version than the newest vX.y.z tag at the commit it points at now). The
// decisions are the pure functions below; only the command-line part at the bottom runs git.
import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

export class ReleaseError extends Error {
  override name = 'ReleaseError'
}

export interface Version {
  tag: string
  major: number
  minor: number
  patch: number
  /** Pre-release identifiers (`rc.1` of `v1.2.3-rc.1`), empty for a release. */
  prerelease: string[]
  build: string
}

const NUM = '0|[1-9]\\d*'
const PRE_ID = `${NUM}|\\d*[a-zA-Z-][0-9a-zA-Z-]*`
const SEMVER = new RegExp(
  `^v(${NUM})\\.(${NUM})\\.(${NUM})(?:-((?:${PRE_ID})(?:\\.(?:${PRE_ID}))*))?(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$`,
)

/** A `v`-prefixed Semantic Versioning 2.0.0 tag (`v1.2.3`, `v1.2.3-rc.1`), or a ReleaseError saying what is accepted. */
export function parseTag(tag: string): Version {
  const m = SEMVER.exec(tag)
  if (!m)
    throw new ReleaseError(
      `tag '${tag}' is not a version: expected vMAJOR.MINOR.PATCH, e.g. v1.2.3 (no leading zeros; a pre-release as v1.2.3-rc.1)`,
    )
  const n = (s: string | undefined): number => {
    const v = Number(s)
    if (!Number.isSafeInteger(v)) throw new ReleaseError(`tag '${tag}': version number ${s} is too large`)
    return v
  }
  return {
    tag,
    major: n(m[1]),
    minor: n(m[2]),
    patch: n(m[3]),
    prerelease: m[4] ? m[4].split('.') : [],
    build: m[5] ?? '',
  }
}

/** The major tag a version moves: `v1` for v1.2.3. */
export function majorTagOf(v: Version): string {
  return `v${v.major}`
}

/** Semantic Versioning precedence: negative when a < b, 0 when equal (build metadata ignored), positive when a > b. */
export function compareVersions(a: Version, b: Version): number {
  for (const k of ['major', 'minor', 'patch'] as const) if (a[k] !== b[k]) return a[k] - b[k]
  if (a.prerelease.length === 0 || b.prerelease.length === 0) return b.prerelease.length - a.prerelease.length
  for (let i = 0; i < Math.max(a.prerelease.length, b.prerelease.length); i++) {
    const x = a.prerelease[i]
    const y = b.prerelease[i]
    if (x === undefined) return -1
    if (y === undefined) return 1
    if (x === y) continue
    const xn = /^\d+$/.test(x)
    const yn = /^\d+$/.test(y)
    if (xn && yn) return Number(x) - Number(y)
    if (xn !== yn) return xn ? -1 : 1
    return x < y ? -1 : 1
  }
  return 0
}

export interface MoveInput {
  /** The release tag, e.g. v1.2.3. */
  tag: string
  /** The commit it points at. */
  commit: string
  /** The commit the major tag points at now; undefined when it does not exist yet. */
  majorCommit: string | undefined
  /** The tags at `majorCommit` (`git tag --points-at`), any names. */
  tagsAtMajor: string[]
  /** Push the moved tag to this remote (e.g. origin); undefined: local only. */
  remote?: string | undefined
}

export interface MovePlan {
  major: string
  /** What it does, in one line. */
  summary: string
  /** The git commands, in order; empty when the major tag is already there. */
  commands: string[][]
}

/** How to move the major tag to a release, or a ReleaseError why it must not move. */
export function planMajorTagMove(input: MoveInput): MovePlan {
  const v = parseTag(input.tag)
  const major = majorTagOf(v)
  if (v.prerelease.length > 0)
    throw new ReleaseError(
      `${input.tag} is a pre-release: ${major} moves only to a release vX.Y.Z (users pinning @${major} get no pre-releases)`,
    )
  if (v.build !== '')
    throw new ReleaseError(`${input.tag} has build metadata: ${major} moves only to a plain release tag vX.Y.Z`)
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(input.commit))
    throw new ReleaseError(`commit '${input.commit}' of ${input.tag} is not a full commit id`)
  const push = input.remote === undefined ? [] : [['git', 'push', '--force', input.remote, `refs/tags/${major}`]]
  const move = [
    ['git', 'tag', '--force', '--annotate', major, '--message', `${major}: ${input.tag}`, input.commit],
    ...push,
  ]
  if (input.majorCommit === undefined)
    return {
      major,
      summary: `${major} does not exist yet: create it at ${input.tag} (${short(input.commit)})`,
      commands: move,
    }
  if (input.majorCommit === input.commit)
    return {
      major,
      summary: `${major} already points at ${input.tag} (${short(input.commit)}): nothing to move`,
      commands: [],
    }
  const current = input.tagsAtMajor
    .map((t) => tryParse(t))
    .filter((t): t is Version => t !== undefined && t.major === v.major && t.prerelease.length === 0)
    .sort(compareVersions)
    .at(-1)
  if (!current) {
    throw new ReleaseError(
      `${major} points at ${short(input.majorCommit)}, which has no ${major}.y.z release tag: not moving it automatically (check it, then move it by hand)`,
    )
  }
  const order = compareVersions(v, current)
  if (order < 0)
    throw new ReleaseError(`${major} points at ${current.tag}, newer than ${input.tag}: refusing to move it backwards`)
  if (order === 0)
    throw new ReleaseError(
      `${major} points at ${current.tag} (${short(input.majorCommit)}) but ${input.tag} is at ${short(input.commit)}: the same version at two commits; check the tags`,
    )
  return {
    major,
    summary: `move ${major} from ${current.tag} (${short(input.majorCommit)}) to ${input.tag} (${short(input.commit)})`,
    commands: move,
  }
}

function tryParse(tag: string): Version | undefined {
  try {
    return parseTag(tag)
  } catch {
    return undefined
  }
}

const short = (commit: string): string => commit.slice(0, 12)

/** The body of `## [1.2.3]` (or `## 1.2.3`, `## [v1.2.3] - date`) of a Keep a Changelog file, trimmed; undefined when absent. */
export function changelogSection(markdown: string, v: Version): string | undefined {
  const version = `${v.major}.${v.minor}.${v.patch}${v.prerelease.length > 0 ? `-${v.prerelease.join('.')}` : ''}`
  const lines = markdown.split(/\r?\n/)
  const heading = new RegExp(`^## \\[?v?${version.replace(/\./g, '\\.')}\\]?(?:\\s|$)`)
  const start = lines.findIndex((l) => heading.test(l))
  if (start < 0) return undefined
  let end = lines.findIndex((l, i) => i > start && (/^## /.test(l) || /^\[[^\]]+\]: /.test(l)))
  if (end < 0) end = lines.length
  const body = lines
    .slice(start + 1, end)
    .join('\n')
    .trim()
  return body === '' ? undefined : body
}

/** Shell-quoted command, for the log. */
export function showCommand(cmd: string[]): string {
  return cmd.map((a) => (/^[\w@%+=:,./^{}-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')
}

// ---------------------------------------------------------------------------------------------------
// Command line

function git(args: string[]): string {
  return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
}

function commitOf(ref: string): string | undefined {
  try {
    return git(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`])
  } catch {
    return undefined
  }
}

function setOutput(name: string, value: string): void {
  const file = process.env['GITHUB_OUTPUT']
  const delimiter = `EOF_${Math.random().toString(36).slice(2)}`
  if (file) appendFileSync(file, `${name}<<${delimiter}\n${value}\n${delimiter}\n`)
  console.log(`${name}=${value.includes('\n') ? `(${value.split('\n').length} lines)` : value}`)
}

function main(argv: string[]): void {
  const [command, tag, ...flags] = argv
  const unknown = flags.filter((f) => !['--push', '--dry-run'].includes(f))
  if (!tag || !(command === 'check' || command === 'move') || unknown.length > 0) {
    throw new ReleaseError('usage: major-tag.js check <vX.Y.Z> | move <vX.Y.Z> [--push] [--dry-run]')
  }
  const v = parseTag(tag)
  if (command === 'check') {
    setOutput(
      'version',
      `${v.major}.${v.minor}.${v.patch}${v.prerelease.length > 0 ? `-${v.prerelease.join('.')}` : ''}`,
    )
    setOutput('major', majorTagOf(v))
    setOutput('prerelease', String(v.prerelease.length > 0))
    const notes = existsSync('CHANGELOG.md') ? changelogSection(readFileSync('CHANGELOG.md', 'utf8'), v) : undefined
    setOutput('notes', notes ?? '')
    return
  }
  const commit = commitOf(`refs/tags/${tag}`)
  if (!commit)
    throw new ReleaseError(`tag ${tag} does not exist here (fetch the tags: actions/checkout with fetch-depth: 0)`)
  const major = majorTagOf(v)
  const majorCommit = commitOf(`refs/tags/${major}`)
  const tagsAtMajor = majorCommit ? git(['tag', '--points-at', majorCommit]).split('\n').filter(Boolean) : []
  const plan = planMajorTagMove({
    tag,
    commit,
    majorCommit,
    tagsAtMajor,
    remote: flags.includes('--push') ? 'origin' : undefined,
  })
  console.log(plan.summary)
  for (const cmd of plan.commands) {
    console.log(`${flags.includes('--dry-run') ? '(dry run) ' : ''}+ ${showCommand(cmd)}`)
    if (!flags.includes('--dry-run')) execFileSync(cmd[0] as string, cmd.slice(1), { stdio: 'inherit' })
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main(process.argv.slice(2))
  } catch (err) {
    console.error(`::error::${(err as Error).message}`)
    process.exit(1)
  }
}
