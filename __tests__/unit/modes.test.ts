// The mode table and its runners in-process: every mode has both, the inputs follow the table, and a preview
// hands the post step what it must restore before it changes anything.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { JobState, JobStateValues } from '../../src/action/job-state.js'
import { RUNNERS } from '../../src/action/modes.js'
import { getInputs } from '../../src/inputs.js'
import type { VirtualService } from '../../src/k8s/resources.js'
import { ACTIONS, MODES } from '../../src/modes.js'
import { Engine } from '../../src/rollout/engine.js'
import { createRouter } from '../../src/routing/index.js'
import { FakeCluster } from '../fakes/cluster.js'

class MemoryJobState implements JobState {
  readonly saved: Array<[string, unknown]> = []
  private readonly values = new Map<string, unknown>()
  save<K extends keyof JobStateValues>(key: K, value: JobStateValues[K]): void {
    this.saved.push([key, value])
    this.values.set(key, value)
  }
  get<K extends keyof JobStateValues>(key: K): JobStateValues[K] | undefined {
    return this.values.get(key) as JobStateValues[K] | undefined
  }
}

const base: Record<string, string> = {
  kubeconfig: 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n',
  namespace: 'bookinfo',
  'virtual-service': 'reviews',
}
const read = (inputs: Record<string, string>) => getInputs((name) => inputs[name] ?? '', {})

describe('modes', () => {
  it('every action has a row in the table and a runner', () => {
    assert.deepEqual(Object.keys(MODES).sort(), [...ACTIONS].sort())
    assert.deepEqual(Object.keys(RUNNERS).sort(), [...ACTIONS].sort())
  })

  it('the inputs require what the table says each mode needs', () => {
    for (const action of ACTIONS) {
      const mode = MODES[action]
      const attempt = () => read({ ...base, action })
      if (mode.needsCanary || mode.needsPreviewValue) {
        assert.throws(
          attempt,
          mode.needsCanary ? /Input 'canary-subset': required/ : /Input 'preview-value': required/,
          action,
        )
      } else {
        assert.doesNotThrow(attempt, action)
      }
    }
  })

  it('a preview saves the preview route as it was (none) before its write', async () => {
    const cluster = new FakeCluster()
    const vs: VirtualService = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'bookinfo' },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] },
    }
    cluster.put(vs)
    const jobState = new MemoryJobState()
    const router = createRouter(
      cluster,
      { kind: 'VirtualService', namespace: 'bookinfo', name: 'reviews', route: { by: 'default' } },
      { log: () => {} },
    )
    let writesWhenSaved = -1
    const original = jobState.save.bind(jobState)
    jobState.save = (key, value) => {
      if (key === 'preview') writesWhenSaved = cluster.calls.filter((c) => c === 'replaceVirtualService').length
      original(key, value)
    }
    const verifier = {
      kind: 'smoke',
      describe: () => '',
      verify: async () => ({ kind: 'smoke', verdict: 'pass' as const, reasons: [], summary: '', evidence: {} }),
    }
    const engine = new Engine(
      { router, verifiers: [verifier], signal: new AbortController().signal, runId: 'r', log: () => {} },
      { stableSubset: 'auto', canarySubset: 'v3' },
    )
    await engine.load()
    const inputs = read({ ...base, action: 'preview', 'canary-subset': 'v3', 'preview-value': 'pr-7', pause: '0' })
    const out = await RUNNERS.preview(engine, inputs, jobState)
    assert.equal(out.result, 'previewed')
    assert.equal(writesWhenSaved, 0, 'saved before the preview route was written')
    assert.deepEqual(jobState.get('preview'), { value: 'pr-7', before: null })
    assert.equal(cluster.virtualService('bookinfo', 'reviews').spec.http?.length, 2)
  })
})
