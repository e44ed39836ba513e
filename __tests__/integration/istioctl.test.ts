// istioctl download, verification and caching with @actions/tool-cache against the release mirror simulation.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { assetName, installIstioctl, parseSha256File } from '../../src/istio/istioctl.js'
import { versionFromImage } from '../../src/istio/mesh.js'
import { type IstioctlReleases, startIstioctlReleases } from '../sim/istioctl/istioctl.js'
import { makePki } from '../sim/net/tls.js'

describe('release asset names', () => {
  it('follows Istio’s naming per platform and architecture', () => {
    assert.equal(assetName('1.24.2', { platform: 'linux', arch: 'x64' }), 'istioctl-1.24.2-linux-amd64.tar.gz')
    assert.equal(assetName('1.24.2', { platform: 'linux', arch: 'arm64' }), 'istioctl-1.24.2-linux-arm64.tar.gz')
    assert.equal(assetName('1.24.2', { platform: 'darwin', arch: 'x64' }), 'istioctl-1.24.2-osx.tar.gz')
    assert.equal(assetName('1.24.2', { platform: 'darwin', arch: 'arm64' }), 'istioctl-1.24.2-osx-arm64.tar.gz')
    assert.equal(assetName('1.24.2', { platform: 'win32', arch: 'x64' }), 'istioctl-1.24.2-win.zip')
    assert.throws(() => assetName('1.24.2', { platform: 'linux', arch: 'ia32' }), /no release for architecture 'ia32'/)
    assert.throws(() => assetName('1.24.2', { platform: 'aix', arch: 'x64' }), /no release for platform 'aix'/)
  })
  it('reads .sha256 files with one or two spaces, or a bare digest', () => {
    const hex = 'a'.repeat(64)
    assert.equal(
      parseSha256File(`${hex} istioctl-1.24.2-linux-amd64.tar.gz\n`, 'istioctl-1.24.2-linux-amd64.tar.gz'),
      hex,
    )
    assert.equal(parseSha256File(`${hex.toUpperCase()}  *istioctl.tar.gz`, 'istioctl.tar.gz'), hex)
    assert.equal(parseSha256File(hex, 'x'), hex)
    assert.throws(() => parseSha256File(`${hex} other-file.tar.gz`, 'istioctl.tar.gz'), /holds no SHA-256/)
    assert.throws(() => parseSha256File('not a digest', 'x'), /holds no SHA-256/)
  })
  it('reads the control-plane version from pilot images', () => {
    assert.equal(versionFromImage('docker.io/istio/pilot:1.24.2'), '1.24.2')
    assert.equal(versionFromImage('mcr.microsoft.com/oss/istio/pilot:v1.24.3-distroless'), '1.24.3')
    assert.equal(versionFromImage('gcr.io/istio-release/pilot:1.25.0-rc.1'), '1.25.0-rc.1')
    assert.equal(versionFromImage('pilot@sha256:abc'), undefined)
    assert.equal(versionFromImage(undefined), undefined)
  })
})

describe('installIstioctl', () => {
  let releases: IstioctlReleases
  const defaults = tls.getCACertificates('default')
  before(async () => {
    const pki = makePki()
    tls.setDefaultCACertificates([...defaults, pki.caPem])
    releases = await startIstioctlReleases({ pki, versions: ['1.24.2', '1.23.4'] })
    const root = mkdtempSync(join(tmpdir(), 'ic-tc-'))
    process.env['RUNNER_TOOL_CACHE'] = join(root, 'cache')
    process.env['RUNNER_TEMP'] = join(root, 'temp')
  })
  after(async () => {
    await releases.close()
    tls.setDefaultCACertificates(defaults)
  })

  it('downloads, verifies, extracts and caches; the next call is a cache hit', async () => {
    const first = await installIstioctl('1.24.2', releases.url, { platform: 'linux', arch: 'x64' })
    assert.equal(first.cached, false)
    assert.ok(existsSync(first.path))
    const downloads = releases.downloads.length
    const second = await installIstioctl('1.24.2', `${releases.url}/`, { platform: 'linux', arch: 'x64' })
    assert.equal(second.cached, true)
    assert.equal(second.path, first.path)
    assert.equal(releases.downloads.length, downloads)
  })

  it('refuses a download whose SHA-256 does not match, and caches nothing', async () => {
    releases.corrupt('1.23.4', true)
    await assert.rejects(
      installIstioctl('1.23.4', releases.url, { platform: 'linux', arch: 'x64' }),
      /checksum mismatch for .*istioctl-1\.23\.4-linux-amd64\.tar\.gz: published SHA-256 [0-9a-f]{64}, downloaded file has [0-9a-f]{64}\. Nothing was extracted or run/,
    )
    const cacheDir = join(process.env['RUNNER_TOOL_CACHE'] as string, 'istioctl')
    assert.deepEqual(readdirSync(cacheDir), ['1.24.2'])
    releases.corrupt('1.23.4', false)
  })
})
