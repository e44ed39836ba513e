// GitOps hand-back (SPEC section 9) end to end: the bundle rewrites the target route in the workspace's
// manifest after `promoted` or `rolled-back`, byte for byte elsewhere, and refuses a manifest it cannot use
// before any change.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Sim, startSimulation } from '../sim/index.js'
import { REPO_ROOT, makeRunner, runAction } from '../runner/harness.js'
import type { KubeObject } from '../sim/kube/store.js'
import { VS, bookinfoInputs, reviews, runnerEnv, vsWrites, withFault } from './common.js'

const FIXTURE = readFileSync(
  join(REPO_ROOT, '__tests__/fixtures/istio-samples/networking/virtual-service-all-v1.yaml'),
  'utf8',
)
// What users keep in git: comments, the BookInfo VirtualServices, CRLF line endings.
const MANIFEST = `# BookInfo routes, applied by Argo CD\r\n${FIXTURE.replace(/\n/g, '\r\n')}`

function workspaceWith(text: string): { runner: ReturnType<typeof makeRunner>; file: string } {
  const runner = makeRunner()
  mkdirSync(join(runner.workspace, 'deploy'), { recursive: true })
  const file = join(runner.workspace, 'deploy', 'bookinfo-vs.yaml')
  writeFileSync(file, text)
  return { runner, file }
}

describe('GitOps hand-back (manifest)', () => {
  let sim: Sim
  let original: KubeObject
  before(async () => {
    sim = await startSimulation()
    original = structuredClone(reviews(sim))
  })
  after(() => sim.close())

  it('after promoted: only the reviews route changes in the file (v1 -> v3), every other byte stays', async () => {
    const { runner, file } = workspaceWith(MANIFEST)
    const { main } = await runAction({
      inputs: bookinfoInputs(sim, { steps: '50,100', manifest: 'deploy/bookinfo-vs.yaml' }),
      env: runnerEnv(sim),
      runner,
    })
    assert.equal(main.code, 0, main.stdout)
    assert.equal(main.outputs['result'], 'promoted')
    assert.equal(main.outputs['manifest-changed'], 'true')
    const at = MANIFEST.indexOf('name: reviews')
    const v1 = MANIFEST.indexOf('subset: v1', at)
    const expected = `${MANIFEST.slice(0, v1)}subset: v3${MANIFEST.slice(v1 + 'subset: v1'.length)}`
    assert.equal(readFileSync(file, 'utf8'), expected)
    sim.store.restore(VS, original)
  })

  it('after rolled-back: the file already has the restored route, so it is left as it is (manifest-changed false)', async () => {
    const { runner, file } = workspaceWith(MANIFEST)
    await withFault(sim, 'v3', { errorRate: 1 }, async () => {
      const { main } = await runAction({
        inputs: bookinfoInputs(sim, { steps: '50,100', manifest: 'deploy/bookinfo-vs.yaml' }),
        env: runnerEnv(sim),
        runner,
      })
      assert.equal(main.code, 1)
      assert.equal(main.outputs['result'], 'rolled-back')
      assert.equal(main.outputs['manifest-changed'], 'false')
    })
    assert.equal(readFileSync(file, 'utf8'), MANIFEST)
    sim.store.restore(VS, original)
  })

  it('a manifest without the target VirtualService: clear error naming the input, no write, file untouched', async () => {
    const other = FIXTURE.split('---')
      .filter((d) => !d.includes('name: reviews'))
      .join('---')
    const { runner, file } = workspaceWith(other)
    const before = vsWrites(sim)
    const { main } = await runAction({
      inputs: bookinfoInputs(sim, { steps: '50,100', manifest: 'deploy/bookinfo-vs.yaml' }),
      env: runnerEnv(sim),
      runner,
    })
    assert.equal(main.code, 1)
    assert.match(main.stdout, /input 'manifest'.*reviews/i)
    assert.equal(vsWrites(sim), before)
    assert.equal(readFileSync(file, 'utf8'), other)
    assert.equal(main.outputs['manifest-changed'], 'false')
  })

  it('a manifest outside the workspace is refused before any request', async () => {
    const requests = sim.kube.requests.length
    const { main } = await runAction({
      inputs: bookinfoInputs(sim, { manifest: '../../etc/passwd' }),
      env: runnerEnv(sim),
    })
    assert.equal(main.code, 1)
    assert.match(main.stdout, /Input 'manifest': .*outside the workspace/)
    assert.equal(sim.kube.requests.length, requests)
  })
})
