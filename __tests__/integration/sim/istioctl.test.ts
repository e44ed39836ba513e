// The fake istioctl release server and the istioctl it ships, run as a real child process against the
// simulated Kubernetes API over HTTPS.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { dump } from 'js-yaml'
import { makePki, type TestPki } from '../../sim/net/tls.js'
import { KubeStore } from '../../sim/kube/store.js'
import { startKubeApi, type KubeApi } from '../../sim/kube/server.js'
import { NEWEST_SUPPORTED_ISTIO, OLDEST_SUPPORTED_ISTIO } from '../../../src/istio/versions.js'
import { seedCluster } from '../../sim/kube/seed.js'
import {
  ISTIOCTL_PLATFORMS,
  istioctlArchiveName,
  startIstioctlReleases,
  type IstioctlReleases,
} from '../../sim/istioctl/istioctl.js'
import { REFS } from '../../sim/kube/refs.js'
import { IMMEDIATE_PROPAGATION, startMesh, type Mesh } from '../../sim/mesh/mesh.js'

const VS = REFS.virtualServices
const NAMESPACES = REFS.namespaces
const CONFIGMAPS = REFS.configmaps

interface Got {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

function httpsGet(url: string, ca: string, method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** GET following redirects (at most 5), like a download client. */
async function download(url: string, ca: string): Promise<Got> {
  let r = await httpsGet(url, ca)
  for (let i = 0; i < 5 && r.status >= 300 && r.status < 400; i++)
    r = await httpsGet(new URL(String(r.headers.location), url).href, ca)
  return r
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

function kubeconfigFile(dir: string, api: KubeApi, pki: TestPki, token: string): string {
  const file = join(dir, `kubeconfig-${token}`)
  writeFileSync(
    file,
    dump({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'sim',
          cluster: { server: api.url, 'certificate-authority-data': Buffer.from(pki.caPem).toString('base64') },
        },
      ],
      users: [{ name: 'u', user: { token } }],
      contexts: [{ name: 'sim', context: { cluster: 'sim', user: 'u', namespace: 'bookinfo' } }],
      'current-context': 'sim',
    }),
    { mode: 0o600 },
  )
  return file
}

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs an executable with Node 24 first on PATH (the script's `#!/usr/bin/env node`). */
function run(bin: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      env: { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}`, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code: code ?? -1, stdout, stderr })
    })
  })
}

describe('fake istioctl releases', () => {
  let pki: TestPki
  let releases: IstioctlReleases
  let api: KubeApi
  let store: KubeStore
  let dir: string
  let kubeconfig: string
  const bins: Record<string, string> = {}

  before(async () => {
    pki = makePki()
    dir = mkdtempSync(join(tmpdir(), 'ic-istioctl-test-'))
    releases = await startIstioctlReleases({
      pki,
      versions: ['1.24.2', '1.23.4', '1.25.0', '1.22.0', OLDEST_SUPPORTED_ISTIO, NEWEST_SUPPORTED_ISTIO],
    })
    store = new KubeStore()
    seedCluster(store, { layout: 'oss', gatewayPort: 31080, istioVersion: '1.24.2' })
    api = await startKubeApi({ pki, store, authenticate: (t) => (t === 'tok' ? { user: 'u' } : undefined) })
    kubeconfig = kubeconfigFile(dir, api, pki, 'tok')
    for (const v of ['1.24.2', '1.23.4', '1.25.0', '1.22.0', OLDEST_SUPPORTED_ISTIO, NEWEST_SUPPORTED_ISTIO]) {
      const tgz = (await download(`${releases.url}/${v}/${istioctlArchiveName(v, 'linux-amd64')}`, pki.caPem)).body
      const out = join(dir, v)
      execFileSync('mkdir', ['-p', out])
      writeFileSync(join(out, 'a.tar.gz'), tgz)
      execFileSync('tar', ['-xzf', 'a.tar.gz'], { cwd: out })
      bins[v] = join(out, 'istioctl')
    }
  })
  after(async () => {
    await releases?.close()
    await api?.close()
  })

  const istioctl = (args: string[], env: Record<string, string> = {}, v = '1.24.2'): Promise<Run> =>
    run(bins[v]!, args, { KUBECONFIG: kubeconfig, ...env })

  it('lays out assets like GitHub release downloads: a redirect, the tarball and "<hex> <name>" .sha256', async () => {
    releases.downloads.length = 0
    for (const p of ISTIOCTL_PLATFORMS) {
      const name = istioctlArchiveName('1.24.2', p)
      const first = await httpsGet(`${releases.url}/1.24.2/${name}`, pki.caPem)
      assert.equal(first.status, 302)
      const tgz = await download(`${releases.url}/1.24.2/${name}`, pki.caPem)
      assert.equal(tgz.status, 200)
      assert.equal(tgz.headers['content-type'], 'application/octet-stream')
      const sum = await download(`${releases.url}/1.24.2/${name}.sha256`, pki.caPem)
      assert.equal(sum.status, 200)
      assert.equal(sum.body.toString(), `${sha256(tgz.body)} ${name}\n`)
    }
    assert.ok(releases.downloads.includes('/1.24.2/istioctl-1.24.2-osx-arm64.tar.gz'))
    assert.ok(releases.downloads.includes('/1.24.2/istioctl-1.24.2-linux-amd64.tar.gz.sha256'))
    assert.ok(releases.downloads.every((p) => !p.startsWith('/blob/')))
    assert.equal((await download(`${releases.url}/1.99.0/istioctl-1.99.0-linux-amd64.tar.gz`, pki.caPem)).status, 404)
    assert.equal((await download(`${releases.url}/1.24.2/istioctl-1.24.2-win.zip`, pki.caPem)).status, 404)
    // Trusting the system store only fails: the server's certificate comes from the test CA.
    await assert.rejects(
      () => new Promise((resolve, reject) => request(`${releases.url}/1.24.2/x`, resolve).on('error', reject).end()),
    )
  })

  it('holds one executable istioctl per tarball', () => {
    const listing = execFileSync('tar', ['-tzvf', join(dirname(bins['1.24.2']!), 'a.tar.gz')])
      .toString()
      .trim()
      .split('\n')
    assert.equal(listing.length, 1)
    assert.match(listing[0]!, /^-rwxr-xr-x .* istioctl$/)
    assert.ok((statSync(bins['1.24.2']!).mode & 0o111) !== 0)
    assert.match(readFileSync(bins['1.24.2']!, 'utf8'), /^#!\/usr\/bin\/env node\n/)
  })

  it('corrupt() makes the .sha256 disagree with the tarball, and can be undone', async () => {
    const name = istioctlArchiveName('1.23.4', 'linux-arm64')
    const base = `${releases.url}/1.23.4/${name}`
    const tgz = (await download(base, pki.caPem)).body
    releases.corrupt('1.23.4', true)
    const bad = (await download(`${base}.sha256`, pki.caPem)).body.toString()
    assert.match(bad, new RegExp(`^[0-9a-f]{64} ${name.replace(/\./g, '\\.')}\\n$`))
    assert.notEqual(bad.split(' ')[0], sha256(tgz))
    // Other versions are untouched.
    const other = istioctlArchiveName('1.24.2', 'linux-arm64')
    const good = (await download(`${releases.url}/1.24.2/${other}.sha256`, pki.caPem)).body.toString()
    assert.equal(good.split(' ')[0], sha256((await download(`${releases.url}/1.24.2/${other}`, pki.caPem)).body))
    releases.corrupt('1.23.4', false)
    assert.equal((await download(`${base}.sha256`, pki.caPem)).body.toString().split(' ')[0], sha256(tgz))
  })

  it('version -o json reports its own version and the control plane found in the cluster', async () => {
    const r = await istioctl(['version', '-o', 'json'])
    assert.equal(r.code, 0, r.stderr)
    const v = JSON.parse(r.stdout)
    assert.deepEqual(Object.keys(v), ['clientVersion', 'meshVersion', 'dataPlaneVersion'])
    assert.deepEqual(Object.keys(v.clientVersion), ['version', 'revision', 'golang_version', 'status', 'tag'])
    assert.equal(v.clientVersion.version, '1.24.2')
    assert.equal(v.meshVersion.length, 1)
    assert.equal(v.meshVersion[0].Component, 'pilot')
    assert.equal(v.meshVersion[0].Revision, 'default')
    assert.equal(v.meshVersion[0].Info.version, '1.24.2')
    assert.ok(
      v.dataPlaneVersion.some(
        (p: { ID: string; IstioVersion: string }) =>
          /^reviews-v3-.*\.bookinfo$/.test(p.ID) && p.IstioVersion === '1.24.2',
      ),
    )

    const older = JSON.parse((await istioctl(['version', '-o', 'json'], {}, '1.23.4')).stdout)
    assert.equal(older.clientVersion.version, '1.23.4')
    assert.equal(older.meshVersion[0].Info.version, '1.24.2')

    const local = await istioctl(['version', '--remote=false', '-o', 'json'], { KUBECONFIG: '/nonexistent' })
    assert.equal(local.code, 0)
    assert.deepEqual(Object.keys(JSON.parse(local.stdout)), ['clientVersion'])
    assert.equal((await istioctl(['version', '--remote=false'])).stdout, '1.24.2\n')

    const text = await istioctl(['version'])
    assert.match(
      text.stdout,
      /^client version: 1\.24\.2\ncontrol plane version: 1\.24\.2\ndata plane version: 1\.24\.2 \(\d+ proxies\)\n$/,
    )
  })

  it('version fails like istioctl without a control plane or without credentials', async () => {
    const none = await istioctl(['version', '-o', 'json', '-i', 'aks-istio-system'])
    assert.equal(none.code, 1)
    assert.equal(none.stdout, '')
    assert.match(
      none.stderr,
      /Istio is not present in the cluster: no running Istio pods in namespace "aks-istio-system"/,
    )
    assert.match(none.stderr, /^Error: no running Istio pods in namespace "aks-istio-system"$/m)
    assert.equal((await istioctl(['version', '-o', 'json', '-r', 'asm-1-24'])).code, 1)

    const badToken = await istioctl(['version', '-o', 'json'], { KUBECONFIG: kubeconfigFile(dir, api, pki, 'wrong') })
    assert.equal(badToken.code, 1)
    assert.match(badToken.stderr, /Error: the server has asked for the client to provide credentials/)
    const viaFlag = await istioctl(['--kubeconfig', kubeconfig, 'version', '-o', 'json'], {
      KUBECONFIG: '/nonexistent',
    })
    assert.equal(viaFlag.code, 0, viaFlag.stderr)
  })

  it('analyze -o json computes real findings and exits 0; the log format exits 79 on errors', async () => {
    const clean = await istioctl(['analyze', '-o', 'json', '-n', 'bookinfo'])
    assert.equal(clean.code, 0, clean.stderr)
    assert.deepEqual(JSON.parse(clean.stdout), [])
    assert.match(clean.stderr, /✔ No validation issues found when analyzing namespace: bookinfo\./)

    const vs = store.get(VS, 'bookinfo', 'reviews')!
    const spec = vs['spec'] as { http: Array<{ route: Array<{ destination: { subset?: string } }> }> }
    spec.http[0]!.route[0]!.destination.subset = 'v9'
    store.update(VS, vs)
    const ns = store.get(NAMESPACES, undefined, 'bookinfo')!
    store.update(NAMESPACES, { ...ns, metadata: { ...ns.metadata, labels: {} } })
    store.create(CONFIGMAPS, {
      metadata: { name: 'istioctl-analyze-findings', namespace: 'bookinfo' },
      data: {
        'findings.json': JSON.stringify([
          { code: 'IST0128', level: 'Warning', message: 'knob finding', origin: 'DestinationRule bookinfo/reviews' },
        ]),
      },
    })
    try {
      const r = await istioctl([
        'analyze',
        '-o',
        'json',
        '-n',
        'bookinfo',
        '--revision',
        'default',
        '-i',
        'istio-system',
      ])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /^\[\n\t\{\n\t\t"code": "IST0101",\n/)
      const msgs = JSON.parse(r.stdout) as Array<Record<string, string>>
      assert.deepEqual(
        msgs.map((m) => `${m['level']} ${m['code']}`),
        ['Error IST0101', 'Warning IST0128', 'Info IST0102'],
      )
      assert.deepEqual(msgs[0], {
        code: 'IST0101',
        documentationUrl: 'https://istio.io/v1.24/docs/reference/config/analysis/ist0101/?ref=istioctl-analyze',
        level: 'Error',
        message: 'Referenced host+subset in destinationrule not found: "reviews+v9"',
        origin: 'VirtualService bookinfo/reviews',
      })
      assert.equal(msgs[1]!['message'], 'knob finding')
      assert.equal(
        msgs[1]!['documentationUrl'],
        'https://istio.io/v1.24/docs/reference/config/analysis/ist0128/?ref=istioctl-analyze',
      )
      assert.equal(msgs[2]!['origin'], 'Namespace bookinfo')
      assert.match(
        msgs[2]!['message']!,
        /^The namespace is not enabled for Istio injection\. Run 'kubectl label namespace bookinfo istio-injection=enabled'/,
      )

      const log = await istioctl(['analyze', '-n', 'bookinfo'])
      assert.equal(log.code, 79)
      assert.match(
        log.stdout,
        /^Error \[IST0101\] \(VirtualService bookinfo\/reviews\) Referenced host\+subset in destinationrule not found: "reviews\+v9"$/m,
      )
      assert.match(
        log.stderr,
        /^Error: Analyzers found issues when analyzing namespace: bookinfo\.\nSee https:\/\/istio\.io\/v1\.24\/docs\/reference\/config\/analysis for more information/,
      )
      assert.equal((await istioctl(['analyze', '-n', 'bookinfo', '--failure-threshold', 'Info'])).code, 79)
      // The context's namespace is the default; another namespace is clean.
      assert.equal((await istioctl(['analyze'])).code, 79)
      assert.equal((await istioctl(['analyze', '-n', 'default'])).code, 0)
      const everywhere = JSON.parse((await istioctl(['analyze', '--all-namespaces', '-o', 'json'])).stdout) as Array<
        Record<string, string>
      >
      assert.ok(everywhere.some((m) => m['code'] === 'IST0101'))
      assert.ok(!everywhere.some((m) => m['origin'] === 'Namespace kube-system'))
    } finally {
      spec.http[0]!.route[0]!.destination.subset = 'v1'
      store.update(VS, {
        ...vs,
        metadata: { ...vs.metadata, resourceVersion: store.get(VS, 'bookinfo', 'reviews')!.metadata.resourceVersion! },
      })
      const curNs = store.get(NAMESPACES, undefined, 'bookinfo')!
      store.update(NAMESPACES, { ...curNs, metadata: { ...curNs.metadata, labels: ns.metadata.labels ?? {} } })
      store.delete(CONFIGMAPS, 'bookinfo', 'istioctl-analyze-findings')
    }
    assert.deepEqual(JSON.parse((await istioctl(['analyze', '-o', 'json', '-n', 'bookinfo'])).stdout), [])
  })

  it('x precheck passes on a reachable cluster and fails on an unreachable one', async () => {
    const ok = await istioctl(['x', 'precheck'])
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /No issues found when checking the cluster\. Istio is safe to install or upgrade!/)
    const unreachable = join(dir, 'kubeconfig-down')
    writeFileSync(unreachable, readFileSync(kubeconfig, 'utf8').replace(api.url, 'https://127.0.0.1:1'))
    const down = await istioctl(['x', 'precheck'], { KUBECONFIG: unreachable })
    assert.equal(down.code, 1)
    assert.match(
      down.stderr,
      /Error: Get "https:\/\/127\.0\.0\.1:1\/version": dial tcp 127\.0\.0\.1:1: connect: connection refused/,
    )
  })

  it('fails unknown commands and flags like cobra, and logs every invocation', async () => {
    const logFile = join(dir, 'istioctl.log')
    const bad = await istioctl(['frobnicate'], { ISTIOCTL_SIM_LOG: logFile })
    assert.equal(bad.code, 64)
    assert.equal(bad.stderr, 'Error: unknown command "frobnicate" for "istioctl"\nRun \'istioctl --help\' for usage.\n')
    const flag = await istioctl(['version', '--bogus'], { ISTIOCTL_SIM_LOG: logFile })
    assert.equal(flag.code, 64)
    assert.equal(flag.stderr, 'Error: unknown flag: --bogus\n')
    assert.equal((await istioctl(['x', 'frobnicate'])).code, 64)
    const help = await istioctl(['--help'])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /Usage:\n {2}istioctl \[command\]/)
    assert.deepEqual(
      readFileSync(logFile, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
      [['frobnicate'], ['version', '--bogus']],
    )
  })

  it('accepts exactly the flags of its release: `analyze -r` only from 1.25.0, long forms everywhere', async () => {
    // istio/istio istioctl/pkg/analyze/analyze.go: StringVarP(&revisionSpecified, "revision", "", ...) up to 1.24.x,
    // "r" from 1.25.0 (istio/istio#53339); --remote-contexts from 1.24.0.
    const old = await istioctl(['analyze', '-n', 'bookinfo', '-r', 'default', '-o', 'json'], {}, '1.24.2')
    assert.equal(old.code, 64)
    assert.equal(old.stderr, "Error: unknown shorthand flag: 'r' in -r\n")
    const longForm = await istioctl(
      [
        'analyze',
        '--namespace',
        'bookinfo',
        '--revision',
        'default',
        '--istioNamespace',
        'istio-system',
        '--output',
        'json',
      ],
      {},
      '1.24.2',
    )
    assert.equal(longForm.code, 0, longForm.stderr)
    const newer = await istioctl(['analyze', '-n', 'bookinfo', '-r', 'default', '-o', 'json'], {}, '1.25.0')
    assert.equal(newer.code, 0, newer.stderr)
    assert.equal(
      (await istioctl(['analyze', '--remote-contexts', 'x', '-o', 'json', '-n', 'bookinfo'], {}, '1.23.4')).stderr,
      'Error: unknown flag: --remote-contexts\n',
    )
    assert.equal(
      (await istioctl(['analyze', '--analyzer', 'x', '-o', 'json', '-n', 'bookinfo'], {}, '1.25.0')).code,
      64,
    )
    // version, install and x precheck have had -r since before 1.22
    assert.equal(
      (await istioctl(['x', 'precheck', '--revision', 'default', '--skip-controlplane'], {}, '1.22.0')).code,
      0,
    )
    assert.equal(
      (await istioctl(['install', '--skip-confirmation', '--dry-run', '-r', 'canary'], {}, '1.22.0')).code,
      0,
    )
  })

  it('the oldest and newest supported releases: the same command flags, and the root --kubeclient-timeout (1.27.0+)', async () => {
    // istio/istio istioctl/pkg/cli/option.go FlagKubeTimeout "kubeclient-timeout", added in 1.27.0 (#56020); the
    // analyze, version, install and precheck flags are the same at the tags 1.29.0, 1.30.0 and 1.31.0.
    const analyze = ['analyze', '--namespace', 'bookinfo', '--output', 'json', '--kubeclient-timeout', '15s']
    for (const v of [OLDEST_SUPPORTED_ISTIO, NEWEST_SUPPORTED_ISTIO]) {
      const run = await istioctl([...analyze, '-r', 'default', '--analyzer', 'x'], {}, v)
      assert.equal(run.code, 0, `${v}: ${run.stderr}`)
      assert.equal((await istioctl(['version', '--remote=false'], {}, v)).stdout, `${v}\n`)
      const unknown = await istioctl(['analyze', '--namespace', 'bookinfo', '--revisions', 'x'], {}, v)
      assert.equal(unknown.code, 64, v)
      assert.equal(unknown.stderr, 'Error: unknown flag: --revisions\n')
    }
    const old = await istioctl(analyze, {}, '1.25.0')
    assert.equal(old.code, 64)
    assert.equal(old.stderr, 'Error: unknown flag: --kubeclient-timeout\n')
  })
})

describe('istioctl install', () => {
  let pki: TestPki
  let releases: IstioctlReleases
  let api: KubeApi
  let store: KubeStore
  let mesh: Mesh
  let bin: string
  let kubeconfig: string

  before(async () => {
    pki = makePki()
    const dir = mkdtempSync(join(tmpdir(), 'ic-istioctl-install-'))
    releases = await startIstioctlReleases({ pki, versions: ['1.24.2'] })
    store = new KubeStore()
    store.create(NAMESPACES, { metadata: { name: 'default' } })
    api = await startKubeApi({ pki, store, authenticate: (t) => (t === 'tok' ? { user: 'u' } : undefined) })
    mesh = await startMesh({ store, propagation: IMMEDIATE_PROPAGATION })
    kubeconfig = kubeconfigFile(dir, api, pki, 'tok')
    writeFileSync(
      join(dir, 'a.tar.gz'),
      (await download(`${releases.url}/1.24.2/${istioctlArchiveName('1.24.2', 'linux-amd64')}`, pki.caPem)).body,
    )
    execFileSync('tar', ['-xzf', 'a.tar.gz'], { cwd: dir })
    bin = join(dir, 'istioctl')
  })
  after(async () => {
    await mesh?.close()
    await releases?.close()
    await api?.close()
  })

  const istioctl = (args: string[]): Promise<Run> => run(bin, args, { KUBECONFIG: kubeconfig })

  it('asks for confirmation without -y and cancels on no answer', async () => {
    const r = await istioctl(['install', '--set', 'profile=default'])
    assert.equal(r.code, 1)
    assert.match(r.stdout, /Proceed\? \(y\/N\) Cancelled\.\n$/)
    assert.equal(store.list(REFS.deployments).length, 0)
  })

  it('rejects an unknown profile', async () => {
    const r = await istioctl(['install', '-y', '--set', 'profile=nope'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /profile "nope"/)
  })

  it('installs istiod and the ingress gateway through the API; the cloud LB gives the gateway the mesh address', async () => {
    assert.equal((await istioctl(['version', '-o', 'json'])).code, 1)
    const r = await istioctl(['install', '-y', '--set', 'profile=default'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /✔ Istiod installed/)
    assert.match(r.stdout, /✔ Installation complete/)

    const istiod = store.get(REFS.deployments, 'istio-system', 'istiod')!
    assert.equal(istiod.metadata.labels?.['istio.io/rev'], 'default')
    const pods = store.list(REFS.pods, 'istio-system', 'app=istiod')
    assert.equal(pods.length, 1)
    assert.equal((pods[0]!['status'] as { phase: string }).phase, 'Running')
    assert.equal(
      (pods[0]!['spec'] as { containers: Array<{ image: string }> }).containers[0]!.image,
      'docker.io/istio/pilot:1.24.2',
    )
    assert.equal((istiod['status'] as { readyReplicas: number }).readyReplicas, 1)

    const svc = store.get(REFS.services, 'istio-system', 'istio-ingressgateway')!
    assert.equal(svc.metadata.labels?.['istio'], 'ingressgateway')
    assert.equal((svc['spec'] as { type: string }).type, 'LoadBalancer')
    assert.equal(
      (svc['spec'] as { ports: Array<{ name: string; port: number }> }).ports.find((p) => p.name === 'http2')?.port,
      mesh.port,
    )
    assert.deepEqual((svc['status'] as { loadBalancer: unknown }).loadBalancer, {
      ingress: [{ ip: '127.0.0.1', ipMode: 'VIP' }],
    })

    const v = JSON.parse((await istioctl(['version', '-o', 'json'])).stdout)
    assert.equal(v.meshVersion[0].Info.version, '1.24.2')
    assert.ok(v.dataPlaneVersion.some((p: { ID: string }) => p.ID.startsWith('istio-ingressgateway-')))
  })

  it('installs a revision beside the default one and replaces pods on re-install', async () => {
    const r = await istioctl(['install', '-y', '--set', 'profile=minimal', '--set', 'revision=canary'])
    assert.equal(r.code, 0, r.stderr)
    assert.ok(store.get(REFS.deployments, 'istio-system', 'istiod-canary'))
    const v = JSON.parse((await istioctl(['version', '-o', 'json', '-r', 'canary'])).stdout)
    assert.deepEqual(
      v.meshVersion.map((m: { Revision: string }) => m.Revision),
      ['canary'],
    )
    const before = store.list(REFS.pods, 'istio-system', 'app=istiod,istio.io/rev=default').map((p) => p.metadata.name)
    assert.equal((await istioctl(['install', '-y'])).code, 0)
    const after = store.list(REFS.pods, 'istio-system', 'app=istiod,istio.io/rev=default').map((p) => p.metadata.name)
    assert.equal(after.length, 1)
    assert.notDeepEqual(after, before)
  })
})
