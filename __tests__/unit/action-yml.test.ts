// action.yml is the contract users' workflows rely on: it must declare every input the code reads
// (and nothing else), every name SPEC fixes, and the outputs the action sets.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { load } from 'js-yaml'
import { getInputs } from '../../src/inputs.js'
import { REPO_ROOT } from '../support/paths.js'

interface ActionYml {
  runs: { using: string; main: string; post: string; 'post-if': string }
  inputs: Record<string, { required?: boolean; default?: string; description: string }>
  outputs: Record<string, { description: string }>
}
const action = load(readFileSync(join(REPO_ROOT, 'action.yml'), 'utf8')) as ActionYml

const SPEC_INPUTS = [
  'resource-group',
  'cluster-name',
  'subscription-id',
  'tenant-id',
  'client-id',
  'client-secret',
  'audience',
  'azure-cloud',
  'authority-host',
  'arm-endpoint',
  'admin',
  'kubeconfig',
  'istioctl-version',
  'istioctl-mirror',
  'istio-namespace',
  'istio-revision',
  'install-istio',
  'analyze',
  'namespace',
  'virtual-service',
  'destination-rule',
  'stable-subset',
  'canary-subset',
  'route',
  'action',
  'steps',
  'pause',
  'preview-header',
  'preview-value',
  'gateway-url',
  'gateway-service',
  'smoke-path',
  'smoke-requests',
  'smoke-concurrency',
  'smoke-timeout',
  'smoke-expect',
  'smoke-headers',
  'success-threshold',
  'max-latency',
  'version-pattern',
  'manifest',
]
const SPEC_OUTPUTS = [
  'result',
  'canary-weight',
  'stable-subset',
  'canary-subset',
  'gateway-url',
  'istio-version',
  'report',
  'manifest-changed',
]

describe('action.yml', () => {
  it('runs the bundle on node24, with a post step that always runs', () => {
    assert.deepEqual(action.runs, {
      using: 'node24',
      main: 'dist/index.js',
      post: 'dist/index.js',
      'post-if': 'always()',
    })
  })

  it('declares every SPEC input and output', () => {
    for (const name of SPEC_INPUTS) assert.ok(name in action.inputs, `input ${name}`)
    assert.deepEqual(Object.keys(action.outputs).sort(), [...SPEC_OUTPUTS].sort())
  })

  it('declares exactly the inputs the action reads, with the defaults the code applies', () => {
    const read = new Set<string>()
    const given: Record<string, string> = {
      namespace: 'bookinfo',
      'virtual-service': 'reviews',
      'canary-subset': 'v3',
      'resource-group': 'rg',
      'cluster-name': 'aks',
    }
    const env = {
      AZURE_SUBSCRIPTION_ID: '11111111-1111-1111-1111-111111111111',
      AZURE_TENANT_ID: 't',
      AZURE_CLIENT_ID: '22222222-2222-2222-2222-222222222222',
    }
    const withDefaults = getInputs((n) => (read.add(n), given[n] ?? action.inputs[n]?.default ?? ''), env)
    const withoutDefaults = getInputs((n) => given[n] ?? '', env)
    assert.deepEqual([...read].sort(), Object.keys(action.inputs).sort())
    // action.yml's defaults are the code's defaults: the action behaves the same when run without them
    assert.deepEqual({ ...withDefaults, 'smoke-expect': undefined }, { ...withoutDefaults, 'smoke-expect': undefined })
  })

  it('marks as required only namespace (virtual-service or http-route: exactly one, checked by the code)', () => {
    assert.deepEqual(
      Object.entries(action.inputs)
        .filter(([, v]) => v.required)
        .map(([k]) => k)
        .sort(),
      ['namespace'],
    )
  })
})
