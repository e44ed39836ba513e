// The supported Istio releases are named once (src/istio/versions.ts); the e2e-kind workflow's matrix, its gated
// jobs' release and the README's "Supported Istio versions" must say the same.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { load } from 'js-yaml'
import { NEWEST_SUPPORTED_ISTIO, OLDEST_SUPPORTED_ISTIO, minorOf, supportedIstio } from '../../src/istio/versions.js'
import { REPO_ROOT } from '../support/paths.js'

interface Workflow {
  env: Record<string, string>
  jobs: Record<string, { strategy?: { matrix?: { istio?: string[] } } }>
}

describe('supported Istio versions', () => {
  it('e2e-kind runs the oldest and the newest, and its gated jobs the newest', () => {
    const wf = load(readFileSync(join(REPO_ROOT, '.github/workflows/e2e-kind.yml'), 'utf8')) as Workflow
    assert.deepEqual(wf.jobs['bookinfo']?.strategy?.matrix?.istio, [OLDEST_SUPPORTED_ISTIO, NEWEST_SUPPORTED_ISTIO])
    assert.equal(String(wf.env['ISTIO_NEWEST']), NEWEST_SUPPORTED_ISTIO)
  })

  it("the README's section names both", () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')
    const at = readme.indexOf('### Supported Istio versions')
    assert.ok(at > 0, 'README has a "Supported Istio versions" section')
    const section = readme.slice(at, readme.indexOf('\n#', at + 5))
    assert.ok(section.includes(`\`${OLDEST_SUPPORTED_ISTIO}\``), section)
    assert.ok(section.includes(`\`${NEWEST_SUPPORTED_ISTIO}\``), section)
  })

  it('classifies a control plane by minor: patches of a supported minor are supported', () => {
    assert.deepEqual(minorOf('1.31.0-rc.0'), [1, 31])
    assert.equal(minorOf('unknown'), undefined)
    const [, oldMinor] = minorOf(OLDEST_SUPPORTED_ISTIO) as [number, number]
    const [, newMinor] = minorOf(NEWEST_SUPPORTED_ISTIO) as [number, number]
    assert.equal(supportedIstio(`1.${oldMinor}.0`), 'supported')
    assert.equal(supportedIstio(`1.${newMinor}.99`), 'supported')
    assert.equal(supportedIstio(`1.${oldMinor - 1}.9`), 'older')
    assert.equal(supportedIstio(`1.${newMinor + 1}.0-alpha.0`), 'newer')
    assert.equal(supportedIstio('2.0.0'), 'newer')
    assert.equal(supportedIstio('unknown'), undefined)
  })
})
