// Keeps the test tiers honest. unit/: no network, no servers, no child processes (fast, run anywhere);
// integration/: servers on loopback (the simulation or a server of the test's own); e2e/: the bundle dist/index.js
// run as GitHub runs it. This reads the sources of unit/ and of every test-side module they import (relative
// imports under __tests__/, followed transitively; src/ is the code under test and not followed) and fails on an
// import of the simulation, the bundle runner, a network or process module, or on code that starts a server.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { REPO_ROOT } from '../support/paths.js'

const TESTS = join(REPO_ROOT, '__tests__')
const TIERS = ['unit', 'integration', 'e2e']

/** Node modules that open sockets or start processes. */
const FORBIDDEN_MODULES = [
  'http',
  'https',
  'http2',
  'net',
  'tls',
  'dgram',
  'child_process',
  'cluster',
  'worker_threads',
]
/** Test-side folders a unit test must not reach: the loopback simulation and the bundle runner (spawns node). */
const FORBIDDEN_FOLDERS = ['sim', 'runner']
/** Code that starts a server or the simulation, whatever it was imported as. */
const FORBIDDEN_CODE: Array<[RegExp, string]> = [
  [/\bcreateServer\s*\(/, 'creates a server'],
  [/\.listen\s*\(/, 'listens on a socket'],
  [/\bstartSimulation\s*\(/, 'starts the simulation'],
]

/** Every module specifier of a source: static imports, re-exports and dynamic imports of a literal. */
function specifiers(source: string): string[] {
  const found: string[] = []
  const patterns = [
    /^\s*import\s+(?:type\s+)?(?:[^'"]*?\s+from\s+)?['"]([^'"]+)['"]/gm,
    /^\s*export\s+[^'"]*?\s+from\s+['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ]
  for (const pattern of patterns) for (const m of source.matchAll(pattern)) found.push(m[1] as string)
  return found
}

/** The lines of a source that start with `import`: its static imports, without strings that merely mention one. */
const importLines = (source: string): string =>
  source
    .split('\n')
    .filter((l) => /^import\b/.test(l))
    .join('\n')

/** Why `source` (at `file`, absolute) does not belong in the unit tier; empty when it does. */
function violations(file: string, source: string): string[] {
  const problems: string[] = []
  for (const spec of specifiers(source)) {
    const bare = spec.replace(/^node:/, '')
    if (FORBIDDEN_MODULES.includes(bare)) problems.push(`imports ${spec}`)
    if (!spec.startsWith('.')) continue
    const target = relative(TESTS, resolve(dirname(file), spec))
    const top = target.split('/')[0] as string
    if (!target.startsWith('..') && FORBIDDEN_FOLDERS.includes(top))
      problems.push(`imports ${spec} (__tests__/${top}/)`)
  }
  for (const [pattern, what] of FORBIDDEN_CODE) if (pattern.test(source)) problems.push(what)
  return problems
}

/** A relative import of a test-side module, as its TypeScript (or .mjs) source path; undefined for src/ or packages. */
function testSideSource(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined
  const target = resolve(dirname(from), spec)
  if (relative(TESTS, target).startsWith('..')) return undefined
  for (const candidate of [target.replace(/\.js$/, '.ts'), target]) if (existsSync(candidate)) return candidate
  return undefined
}

function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(suffix))
    .map((e) => join(e.parentPath, e.name))
}

describe('test tiers', () => {
  it('the checker sees imports of sockets, processes, the simulation and the runner, and servers started', () => {
    const file = join(TESTS, 'unit', 'example.test.ts')
    const cases: Array<[string, RegExp]> = [
      ["import { createServer } from 'node:http'", /imports node:http/],
      ["import * as tls from 'node:tls'", /imports node:tls/],
      ["import { spawn } from 'child_process'", /imports child_process/],
      ["import type { AddressInfo } from 'node:net'", /imports node:net/],
      ["import { startSimulation } from '../sim/index.js'", /__tests__\/sim\//],
      ["import { REFS } from '../sim/kube/refs.js'", /__tests__\/sim\//],
      ["export { runAction } from '../runner/harness.js'", /__tests__\/runner\//],
      ["const m = await import('node:https')", /imports node:https/],
      ['const s = make(); s.listen(0)', /listens/],
    ]
    for (const [source, want] of cases) assert.match(violations(file, source).join('\n'), want, source)
    assert.deepEqual(
      violations(file, "import { prng } from '../support/prng.js'\nimport { x } from '../../src/a.js'"),
      [],
    )
  })

  it('unit tests and the test-side modules they import start no server, process or simulation', () => {
    const self = join(TESTS, 'unit', 'tiers.test.ts')
    const queue = filesUnder(join(TESTS, 'unit'), '.ts')
    assert.ok(queue.length > 5, `unit tests found under ${TESTS}`)
    const seen = new Set<string>()
    const problems: string[] = []
    while (queue.length > 0) {
      const file = queue.pop() as string
      if (seen.has(file)) continue
      seen.add(file)
      const source = readFileSync(file, 'utf8')
      // This file names what it forbids in its patterns and examples: only its own import lines are checked.
      const found = file === self ? violations(file, importLines(source)) : violations(file, source)
      for (const p of found) problems.push(`${relative(REPO_ROOT, file)} ${p}`)
      for (const spec of specifiers(source)) {
        const next = testSideSource(file, spec)
        if (next) queue.push(next)
      }
    }
    assert.deepEqual(problems, [], 'move these tests to __tests__/integration/ (or e2e/)')
  })

  it('every test file is in a tier: unit/, integration/ or e2e/', () => {
    const outside = filesUnder(TESTS, '.test.ts')
      .map((f) => relative(TESTS, f))
      .filter((f) => !TIERS.includes(f.split('/')[0] as string))
    assert.deepEqual(outside, [])
  })
})
