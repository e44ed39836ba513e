// The workflow lint (npm run lint) passes the README's examples and catches what would break a user's
// workflow: an input action.yml does not declare, a missing required one, an unknown expression context.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { load } from 'js-yaml'
import { REPO_ROOT } from '../support/paths.js'

interface Declared {
  inputs: Record<string, unknown>
  required: string[]
}
interface WorkflowLint {
  actionInputs(action: unknown): Declared
  lintWorkflow(
    text: string,
    file: string,
    declared: Declared,
    lineOffset?: number,
    localActions?: Record<string, Declared>,
  ): Promise<string[]>
  markdownWorkflows(markdown: string): Array<{ text: string; line: number }>
}
const lib = (await import(pathToFileURL(join(REPO_ROOT, '__tests__/scripts/workflow-lint.mjs')).href)) as WorkflowLint
const declared = lib.actionInputs(load(readFileSync(join(REPO_ROOT, 'action.yml'), 'utf8')))

const workflow = (withLines: string[], uses = '<owner>/istio-canary@v1', extra: string[] = []): string =>
  [
    'on: push',
    'jobs:',
    '  canary:',
    '    runs-on: ubuntu-latest',
    '    steps:',
    '      - id: canary',
    `        uses: ${uses}`,
    '        with:',
    ...withLines.map((l) => `          ${l}`),
    ...extra,
    '',
  ].join('\n')
const good = [
  'namespace: bookinfo',
  'virtual-service: reviews',
  'canary-subset: v3',
  'client-id: ${{ vars.AZURE_CLIENT_ID }}',
]

describe('workflow lint', () => {
  it('passes every workflow example of the README (vars context included)', async () => {
    const examples = lib.markdownWorkflows(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'))
    assert.ok(examples.length >= 5, `README workflow examples: ${examples.length}`)
    for (const { text, line } of examples)
      assert.deepEqual(
        await lib.lintWorkflow(text, 'README.md', declared, line - 1),
        [],
        `example at README.md:${line}`,
      )
  })

  it('passes a correct step, for the published action and for uses: ./', async () => {
    assert.deepEqual(await lib.lintWorkflow(workflow(good), 'ok.yml', declared), [])
    assert.deepEqual(await lib.lintWorkflow(workflow(good, './'), 'ok.yml', declared), [])
  })

  it('catches an input action.yml does not declare, and a missing required one', async () => {
    const problems = await lib.lintWorkflow(
      workflow(['virtual-service: reviews', 'canary-subset: v3', 'canary-weight: 10']),
      'bad.yml',
      declared,
    )
    assert.deepEqual(problems, [
      "bad.yml: job canary, step canary (uses: <owner>/istio-canary@v1): input 'canary-weight' is not declared in action.yml",
      "bad.yml: job canary, step canary (uses: <owner>/istio-canary@v1): required input 'namespace' is missing",
    ])
  })

  it('catches an unknown context and a misspelt step output reference, with README line numbers', async () => {
    const text = workflow([...good, 'pause: ${{ variables.PAUSE }}'], 'someone/istio-canary@v1.2.3')
    const problems = await lib.lintWorkflow(text, 'README.md', declared, 100)
    assert.equal(problems.length, 1, problems.join('\n'))
    assert.match(
      problems[0] ?? '',
      /^README\.md:113:\d+: undefined variable "variables"\. available variables are .*"vars".* \[expression\]$/,
    )
    const typo = workflow(good, undefined, [
      "      - if: steps.canery.outputs.result == 'paused'",
      '        run: echo paused',
    ])
    assert.match((await lib.lintWorkflow(typo, 'typo.yml', declared)).join('\n'), /property "canery" is not defined/)
  })

  it("checks a local action's step against that action's own inputs, as the e2e workflow uses it", async () => {
    const kind = '.github/actions/kind-bookinfo'
    const locals = { [kind]: lib.actionInputs(load(readFileSync(join(REPO_ROOT, kind, 'action.yml'), 'utf8'))) }
    assert.ok(locals[kind]?.required.includes('istio-version'))
    const e2e = '.github/workflows/e2e-kind.yml'
    assert.deepEqual(await lib.lintWorkflow(readFileSync(join(REPO_ROOT, e2e), 'utf8'), e2e, declared, 0, locals), [])
    const bad = workflow(['mesh-flavor: linkerd', 'gateway-url: http://127.0.0.1:8080'], `./${kind}`)
    assert.deepEqual(await lib.lintWorkflow(bad, 'bad.yml', declared, 0, locals), [
      `bad.yml: job canary, step canary (uses: ./${kind}): input 'mesh-flavor' is not declared in ${kind}/action.yml`,
      `bad.yml: job canary, step canary (uses: ./${kind}): required input 'istio-version' is missing`,
    ])
    // A local action the repository does not have; a remote action is not this lint's to check.
    assert.deepEqual(
      await lib.lintWorkflow(workflow(['x: 1'], './.github/actions/gone'), 'gone.yml', declared, 0, locals),
      [
        'gone.yml: job canary, step canary (uses: ./.github/actions/gone): no action metadata at .github/actions/gone/action.yml',
      ],
    )
    assert.deepEqual(await lib.lintWorkflow(workflow(['x: 1'], 'actions/checkout@v5'), 'remote.yml', declared), [])
  })

  it('takes only yaml blocks with jobs: from Markdown, with the line their body starts on', () => {
    const md = [
      '# t',
      '```yaml',
      'inputs: {}',
      '```',
      'text',
      '```yml',
      'on: push',
      'jobs: {}',
      '```',
      '```sh',
      'jobs:',
      '```',
      '',
    ].join('\n')
    assert.deepEqual(lib.markdownWorkflows(md), [{ text: 'on: push\njobs: {}\n', line: 7 }])
  })
})
