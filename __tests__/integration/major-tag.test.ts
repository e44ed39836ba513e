// Release tag arithmetic: strict versions, the major tag users pin, never backwards, never to a pre-release.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  changelogSection,
  compareVersions,
  majorTagOf,
  parseTag,
  planMajorTagMove,
  showCommand,
} from '../scripts/major-tag.js'
import { REPO_ROOT } from '../support/paths.js'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)

describe('parseTag', () => {
  it('reads strict v-prefixed semver', () => {
    assert.deepEqual(parseTag('v1.2.3'), { tag: 'v1.2.3', major: 1, minor: 2, patch: 3, prerelease: [], build: '' })
    assert.deepEqual(parseTag('v10.0.1-rc.1+sha.5114f85'), {
      tag: 'v10.0.1-rc.1+sha.5114f85',
      major: 10,
      minor: 0,
      patch: 1,
      prerelease: ['rc', '1'],
      build: 'sha.5114f85',
    })
    assert.equal(majorTagOf(parseTag('v2.0.0')), 'v2')
  })
  it('refuses anything else, saying what is accepted', () => {
    for (const bad of [
      '1.2.3',
      'v1',
      'v1.2',
      'v1.2.3.4',
      'v01.2.3',
      'v1.02.3',
      'v1.2.3-',
      'v1.2.3-01',
      'V1.2.3',
      ' v1.2.3',
      'v1.2.3 ',
      'refs/tags/v1.2.3',
      'v1.2.x',
    ]) {
      assert.throws(() => parseTag(bad), /is not a version: expected vMAJOR\.MINOR\.PATCH, e\.g\. v1\.2\.3/, bad)
    }
  })
})

describe('compareVersions (semver precedence)', () => {
  it('orders as semver.org does', () => {
    const ordered = [
      'v1.0.0-alpha',
      'v1.0.0-alpha.1',
      'v1.0.0-alpha.beta',
      'v1.0.0-beta',
      'v1.0.0-beta.2',
      'v1.0.0-beta.11',
      'v1.0.0-rc.1',
      'v1.0.0',
      'v1.0.1',
      'v1.2.0',
      'v1.10.0',
      'v2.0.0',
    ]
    for (let i = 0; i + 1 < ordered.length; i++) {
      const a = parseTag(ordered[i] as string)
      const b = parseTag(ordered[i + 1] as string)
      assert.ok(compareVersions(a, b) < 0, `${a.tag} < ${b.tag}`)
      assert.ok(compareVersions(b, a) > 0, `${b.tag} > ${a.tag}`)
    }
    assert.equal(compareVersions(parseTag('v1.2.3+a'), parseTag('v1.2.3+b')), 0)
  })
})

describe('planMajorTagMove', () => {
  it('creates the major tag at the first release, and pushes it when asked', () => {
    const plan = planMajorTagMove({
      tag: 'v1.0.0',
      commit: A,
      majorCommit: undefined,
      tagsAtMajor: [],
      remote: 'origin',
    })
    assert.equal(plan.major, 'v1')
    assert.deepEqual(plan.commands, [
      ['git', 'tag', '--force', '--annotate', 'v1', '--message', 'v1: v1.0.0', A],
      ['git', 'push', '--force', 'origin', 'refs/tags/v1'],
    ])
    assert.match(plan.summary, /v1 does not exist yet: create it at v1\.0\.0/)
  })
  it('moves v1 forwards from the newest v1 release at its commit', () => {
    const plan = planMajorTagMove({
      tag: 'v1.2.3',
      commit: B,
      majorCommit: A,
      tagsAtMajor: ['v1.2.2', 'v1', 'v1.2.1', 'v2.0.0-rc.1', 'other'],
    })
    assert.deepEqual(plan.commands, [['git', 'tag', '--force', '--annotate', 'v1', '--message', 'v1: v1.2.3', B]])
    assert.equal(plan.summary, 'move v1 from v1.2.2 (aaaaaaaaaaaa) to v1.2.3 (bbbbbbbbbbbb)')
  })
  it('does nothing when the major tag already points at the release', () => {
    assert.deepEqual(
      planMajorTagMove({ tag: 'v1.2.3', commit: A, majorCommit: A, tagsAtMajor: ['v1', 'v1.2.3'], remote: 'origin' })
        .commands,
      [],
    )
  })
  it('refuses to move it backwards', () => {
    assert.throws(
      () => planMajorTagMove({ tag: 'v1.2.3', commit: B, majorCommit: A, tagsAtMajor: ['v1', 'v1.3.0'] }),
      /v1 points at v1\.3\.0, newer than v1\.2\.3: refusing to move it backwards/,
    )
    assert.throws(
      () => planMajorTagMove({ tag: 'v1.9.9', commit: B, majorCommit: A, tagsAtMajor: ['v1.10.0'] }),
      /refusing to move it backwards/,
    )
  })
  it('refuses pre-releases and build metadata', () => {
    assert.throws(
      () => planMajorTagMove({ tag: 'v1.3.0-rc.1', commit: B, majorCommit: A, tagsAtMajor: ['v1.2.0'] }),
      /v1\.3\.0-rc\.1 is a pre-release: v1 moves only to a release vX\.Y\.Z/,
    )
    assert.throws(
      () => planMajorTagMove({ tag: 'v1.3.0+build.1', commit: B, majorCommit: undefined, tagsAtMajor: [] }),
      /has build metadata/,
    )
  })
  it('refuses an invalid tag, a short commit, a major tag at an untagged commit, one version at two commits', () => {
    assert.throws(
      () => planMajorTagMove({ tag: 'v1.3', commit: B, majorCommit: undefined, tagsAtMajor: [] }),
      /is not a version/,
    )
    assert.throws(
      () => planMajorTagMove({ tag: 'v1.3.0', commit: 'abc123', majorCommit: undefined, tagsAtMajor: [] }),
      /not a full commit id/,
    )
    assert.throws(
      () =>
        planMajorTagMove({ tag: 'v1.3.0', commit: B, majorCommit: A, tagsAtMajor: ['v1', 'v1.4.0-rc.1', 'v2.0.0'] }),
      /v1 points at aaaaaaaaaaaa, which has no v1\.y\.z release tag/,
    )
    assert.throws(
      () => planMajorTagMove({ tag: 'v1.3.0', commit: B, majorCommit: A, tagsAtMajor: ['v1.3.0'] }),
      /the same version at two commits/,
    )
  })
})

describe('changelogSection', () => {
  const md =
    '# Changelog\n\n## [Unreleased]\n\n- next\n\n## [1.2.0] - 2026-12-01\n\n### Added\n\n- a thing\n\n## [1.1.0] - 2026-11-30\n\n- older\n\n[Unreleased]: https://x/compare\n[1.2.0]: https://x/1.2.0\n'
  it("returns the body of the release's section", () => {
    assert.equal(changelogSection(md, parseTag('v1.2.0')), '### Added\n\n- a thing')
    assert.equal(changelogSection(md, parseTag('v1.1.0')), '- older')
    assert.equal(changelogSection(md, parseTag('v1.3.0')), undefined)
  })
  it("finds 1.0.0 in the repository's own CHANGELOG.md", async () => {
    const { readFileSync } = await import('node:fs')
    assert.match(
      changelogSection(readFileSync(join(REPO_ROOT, 'CHANGELOG.md'), 'utf8'), parseTag('v1.0.0')) ?? '',
      /^First release\./,
    )
  })
})

describe('major-tag.js move, in a scratch repository', () => {
  it('prints and runs the git commands; refuses backwards; the dry run changes nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'major-tag-'))
    const script = join(REPO_ROOT, 'build/__tests__/scripts/major-tag.js')
    const env = {
      ...process.env,
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@example.com',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@example.com',
      GITHUB_OUTPUT: '',
    }
    const git = (...args: string[]): string => execFileSync('git', args, { cwd: dir, env, encoding: 'utf8' }).trim()
    const run = (...args: string[]): { code: number; out: string } => {
      try {
        return {
          code: 0,
          out: execFileSync(process.execPath, [script, ...args], {
            cwd: dir,
            env,
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'pipe'],
          }),
        }
      } catch (err) {
        const e = err as { status: number; stdout: string; stderr: string }
        return { code: e.status, out: e.stdout + e.stderr }
      }
    }
    try {
      git('init', '-q')
      git('commit', '-q', '--allow-empty', '-m', 'one')
      git('tag', 'v1.0.0')
      git('commit', '-q', '--allow-empty', '-m', 'two')
      git('tag', 'v1.1.0')
      const first = run('move', 'v1.0.0')
      assert.equal(first.code, 0, first.out)
      assert.match(first.out, /\+ git tag --force --annotate v1 --message 'v1: v1\.0\.0' [0-9a-f]{40}/)
      assert.equal(git('rev-parse', 'v1^{commit}'), git('rev-parse', 'v1.0.0^{commit}'))
      const dry = run('move', 'v1.1.0', '--dry-run')
      assert.match(dry.out, /move v1 from v1\.0\.0 .* to v1\.1\.0 .*\n\(dry run\) \+ git tag/)
      assert.equal(git('rev-parse', 'v1^{commit}'), git('rev-parse', 'v1.0.0^{commit}'))
      assert.equal(run('move', 'v1.1.0').code, 0)
      assert.equal(git('rev-parse', 'v1^{commit}'), git('rev-parse', 'v1.1.0^{commit}'))
      const back = run('move', 'v1.0.0')
      assert.equal(back.code, 1)
      assert.match(back.out, /::error::v1 points at v1\.1\.0, newer than v1\.0\.0: refusing to move it backwards/)
      assert.match(run('move', 'v1.2.0').out, /::error::tag v1\.2\.0 does not exist here/)
      assert.match(run('check', 'v1.2.0-rc.1').out, /version=1\.2\.0-rc\.1\nmajor=v1\nprerelease=true\n/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

it('showCommand quotes what the shell would split', () => {
  assert.equal(
    showCommand(['git', 'tag', '-m', 'v1: v1.2.3', 'refs/tags/v1^{commit}']),
    "git tag -m 'v1: v1.2.3' refs/tags/v1^{commit}",
  )
})
