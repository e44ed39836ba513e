// Mesh discovery, readiness, istioctl and cluster layouts end to end: the real bundle (dist/index.js) against
// the loopback simulation. Every test starts its own simulation (they share one test PKI) and closes it.
import { after, before, describe, it } from 'node:test'
import { NEWEST_SUPPORTED_ISTIO } from '../../src/istio/versions.js'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { load } from 'js-yaml'
import type { Sim, SimOptions } from '../sim/index.js'
import { type Runner, type StepResult, makeRunner, runAction } from '../runner/harness.js'
import { REFS } from '../sim/kube/refs.js'
import type { KubeObject, WriteEvent } from '../sim/kube/store.js'
import type { RecordedRequest } from '../sim/kube/server.js'
import { AKS_SERVER_APP_ID } from '../sim/azure/entra.js'
import { type TestPki, makePki } from '../sim/net/tls.js'
import { LEASES, VS, bookinfoInputs, reviews, stateOf, withSim as withFreshSim } from './common.js'

/** The simulation's default Istio release (src/istio/versions.ts), its AKS add-on revision and as a regex. */
const V = NEWEST_SUPPORTED_ISTIO
const VR = V.replaceAll('.', '\\.')
const REV = `asm-${V.split('.').slice(0, 2).join('-')}`

const SERVICES = REFS.services
const NAMESPACES = REFS.namespaces
const CONFIGMAPS = REFS.configmaps
const DEPLOYMENTS = REFS.deployments

interface HttpRoute {
  name?: string
  match?: unknown[]
  route: Array<{ destination: { host: string; subset?: string }; weight?: number }>
}
type VsSpec = { hosts: string[]; gateways?: string[]; http: HttpRoute[] }

let pki: TestPki
let scratch: string
before(() => {
  pki = makePki()
  scratch = mkdtempSync(join(tmpdir(), 'ic-e2e-mesh-'))
})
after(() => {
  rmSync(pki.dir, { recursive: true, force: true })
  rmSync(scratch, { recursive: true, force: true })
})

/** A fresh simulation for one test, always closed. */
const withSim = (o: SimOptions, fn: (sim: Sim) => Promise<void>): Promise<void> => withFreshSim({ pki, ...o }, fn)

const baseInputs = (sim: Sim, extra: Record<string, string> = {}): Record<string, string> =>
  bookinfoInputs(sim, { steps: '50,100', ...extra })

interface Run {
  main: StepResult
  post: StepResult | undefined
  runner: Runner
  /** argv of every istioctl invocation (the simulated istioctl appends them to ISTIOCTL_SIM_LOG). */
  istioctl: string[][]
  /** Store writes and mutating API requests made during the run. */
  writes: WriteEvent[]
  mutating: RecordedRequest[]
  /** Every ::error:: line, decoded. */
  errors: string
  report: { result: string; error?: string; istioVersion: string; gatewayUrl: string } | undefined
}

let runCount = 0
async function run(
  sim: Sim,
  inputs: Record<string, string>,
  o: { runner?: Runner; post?: boolean } = {},
): Promise<Run> {
  const log = join(scratch, `istioctl-${++runCount}.log`)
  const w0 = sim.store.writes.length
  const r0 = sim.kube.requests.length
  const r = await runAction({
    inputs,
    env: { ...sim.env(), PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}`, ISTIOCTL_SIM_LOG: log },
    ...(o.runner ? { runner: o.runner } : {}),
    ...(o.post === false ? { post: false } : {}),
    timeoutMs: 30_000,
  })
  const istioctl = existsSync(log)
    ? readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as string[])
    : []
  const errors = r.main.stdout
    .split('\n')
    .filter((l) => l.startsWith('::error'))
    .map((l) =>
      l
        .slice(l.indexOf('::', 2) + 2)
        .replace(/%0A/g, '\n')
        .replace(/%0D/g, '\r')
        .replace(/%25/g, '%'),
    )
    .join('\n')
  const reportPath = r.main.outputs['report']
  const report =
    reportPath && existsSync(reportPath) ? (JSON.parse(readFileSync(reportPath, 'utf8')) as Run['report']) : undefined
  return {
    main: r.main,
    post: r.post,
    runner: r.runner,
    istioctl,
    errors,
    report,
    writes: sim.store.writes.slice(w0),
    mutating: sim.kube.requests.slice(r0).filter((q) => q.method !== 'GET'),
  }
}

const transcript = (r: Run): string => `${r.main.stdout}\n${r.main.stderr}`
const specOf = (o: KubeObject): VsSpec => o['spec'] as VsSpec
const vsWrites = (r: Run): WriteEvent[] => r.writes.filter((w) => w.ref.resource === 'virtualservices')
const only = (subset: string): HttpRoute['route'] => [{ destination: { host: 'reviews', subset } }]

function assertPromoted(r: Run, sim: Sim, canary = 'v3'): void {
  assert.equal(r.main.code, 0, transcript(r))
  assert.equal(r.main.outputs['result'], 'promoted', transcript(r))
  assert.equal(r.main.outputs['canary-weight'], '100')
  assert.equal(r.main.outputs['canary-subset'], canary)
  assert.equal(stateOf(reviews(sim))?.['phase'], 'promoted')
  assert.equal(r.post?.code ?? 0, 0, r.post?.stdout)
}

/** Failed before any change: the step failed, result unchanged, nothing written to the cluster, the VS as it was. */
function assertStoppedBeforeChange(r: Run, sim: Sim, vsBefore: KubeObject, message: RegExp): void {
  assert.notEqual(r.main.code, 0, transcript(r))
  assert.equal(r.main.outputs['result'], 'unchanged')
  assert.equal(r.main.outputs['canary-weight'], '0')
  assert.match(r.errors, message)
  assert.deepEqual(r.writes, [], 'no write to the cluster')
  assert.deepEqual(r.mutating, [], 'no mutating API request')
  assert.deepEqual(reviews(sim), vsBefore)
  assert.equal(sim.store.list(LEASES, 'bookinfo').length, 0)
}

function update(
  sim: Sim,
  ref: { group: string; resource: string },
  ns: string | undefined,
  name: string,
  change: (o: KubeObject) => void,
): void {
  const o = sim.store.get(ref, ns, name)
  assert.ok(o, `${ns}/${name} exists`)
  change(o)
  sim.store.update(ref, o)
}

function putFindings(sim: Sim, findings: Array<Record<string, string>>): void {
  sim.store.create(CONFIGMAPS, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'istioctl-analyze-findings', namespace: 'bookinfo' },
    data: { 'findings.json': JSON.stringify(findings) },
  })
}

// ---------------------------------------------------------------------------------------------

describe('cluster layouts', () => {
  it('AKS Istio add-on: finds the control plane, its revision and the add-on gateway; istioctl gets --istioNamespace/--revision; promotes', () =>
    withSim({ layout: 'aks-addon' }, async (sim) => {
      // A decoy at the open-source default name with another address: discovery must follow the app's Gateway selector.
      sim.store.create(SERVICES, {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'istio-ingressgateway', namespace: 'istio-system', labels: { app: 'istio-ingressgateway' } },
        spec: {
          type: 'LoadBalancer',
          selector: { app: 'istio-ingressgateway' },
          ports: [{ name: 'http2', port: 80, targetPort: 8080 }],
        },
        status: { loadBalancer: { ingress: [{ ip: '127.0.0.9' }] } },
      })
      const ns = sim.store.get(NAMESPACES, undefined, 'bookinfo')
      assert.equal(ns?.metadata.labels?.['istio.io/rev'], REV)
      const r = await run(sim, baseInputs(sim))
      assertPromoted(r, sim)
      assert.match(
        r.main.stdout,
        new RegExp(
          `Control plane: aks-istio-system\\/istiod-${REV}, revision ${REV}, Istio ${VR} \\(AKS Istio add-on\\)`,
        ),
      )
      assert.equal(r.main.outputs['istio-version'], V)
      const gw = sim.store.get(SERVICES, 'aks-istio-ingress', 'aks-istio-ingressgateway-external')
      const port = (gw?.['spec'] as { ports: Array<{ name: string; port: number }> }).ports.find(
        (p) => p.name === 'http2',
      )?.port
      assert.equal(port, sim.mesh.port)
      assert.equal(r.main.outputs['gateway-url'], `http://127.0.0.1:${sim.mesh.port}`)
      assert.equal(r.report?.gatewayUrl, sim.mesh.url)
      // istioctl analyze was told the add-on's namespace and revision
      const analyze = r.istioctl.filter((a) => a[0] === 'analyze')
      assert.equal(analyze.length, 1, JSON.stringify(r.istioctl))
      const argv = analyze[0] as string[]
      const flag = (f: string): string | undefined => argv[argv.indexOf(f) + 1]
      // long forms: istioctl 1.24 has no `analyze -r` (SPEC section 8)
      assert.ok(argv.includes('--revision') && argv.includes('--istioNamespace'), argv.join(' '))
      assert.equal(flag('--revision'), REV)
      assert.equal(flag('--istioNamespace'), 'aks-istio-system')
      assert.equal(flag('--namespace'), 'bookinfo')
      assert.equal(flag('--output'), 'json')
      assert.deepEqual(specOf(reviews(sim)).http, [{ route: only('v3') }])
    }))

  it('AKS Istio add-on: a namespace labelled istio-injection=enabled (ignored by the add-on) stops the run with the fix', () =>
    withSim({ layout: 'aks-addon' }, async (sim) => {
      update(sim, NAMESPACES, undefined, 'bookinfo', (o) => {
        const labels = { ...(o.metadata.labels ?? {}) }
        delete labels['istio.io/rev']
        labels['istio-injection'] = 'enabled'
        o.metadata.labels = labels
      })
      const before = reviews(sim)
      const r = await run(sim, baseInputs(sim))
      assertStoppedBeforeChange(
        r,
        sim,
        before,
        new RegExp(
          `namespace bookinfo uses istio-injection=enabled, which the AKS Istio add-on ignores: kubectl label namespace bookinfo istio-injection- istio\\.io\\/rev=${REV}`,
        ),
      )
    }))

  it('a cluster serving only networking.istio.io/v1beta1: promotes, reading and writing v1beta1 paths', () =>
    withSim({ istioApiVersions: ['v1beta1'] }, async (sim) => {
      const r = await run(sim, baseInputs(sim))
      assertPromoted(r, sim)
      const ours = sim.kube.requests.filter((q) => !(q.userAgent ?? '').startsWith('istioctl'))
      const versioned = ours.filter((q) => /^\/apis\/networking\.istio\.io\/v/.test(q.path))
      assert.ok(versioned.length > 0)
      assert.deepEqual(
        versioned.filter((q) => !q.path.startsWith('/apis/networking.istio.io/v1beta1/')),
        [],
      )
      const puts = r.mutating.filter((q) => q.path.includes('/virtualservices/'))
      assert.equal(puts.length, 3, JSON.stringify(puts)) // 50 %, 100 %, promoted state
      for (const q of puts) {
        assert.equal(q.method, 'PUT')
        assert.equal(
          q.path.split('?')[0],
          '/apis/networking.istio.io/v1beta1/namespaces/bookinfo/virtualservices/reviews',
        )
        assert.equal(q.status, 200)
      }
    }))
})

describe('Entra ID integrated clusters', () => {
  it('logs in with GitHub OIDC and talks to the API with an Entra bearer token, not kubelogin', () =>
    withSim({ clusterKind: 'entra' }, async (sim) => {
      const r = await run(sim, baseInputs(sim), { post: false })
      assertPromoted(r, sim)
      assert.match(
        r.main.stdout,
        /uses Entra ID: using an access token for the AKS server application \(6dae42f8-4368-4678-94ff-3960e28e3630\) instead of kubelogin/,
      )
      assert.match(r.main.stdout, /Connected: AKS rg-bookinfo\/aks-bookinfo \(user credential, Entra ID bearer token\)/)
      const aks = sim.entra.issued.filter((t) => t.audience === AKS_SERVER_APP_ID)
      assert.ok(aks.length >= 1)
      assert.ok(
        aks.every((t) => t.grant === 'client_assertion'),
        'federated (OIDC) credential, no secret',
      )
      // The kubeconfig the run wrote (and istioctl read) holds an Entra token for the AKS server app, no exec plugin.
      const dirs = readdirSync(r.runner.temp).filter(
        (d) => d.startsWith('istio-canary-') && existsSync(join(r.runner.temp, d, 'kubeconfig')),
      )
      assert.equal(dirs.length, 1)
      const kc = load(readFileSync(join(r.runner.temp, dirs[0] as string, 'kubeconfig'), 'utf8')) as {
        users: Array<{ user: Record<string, unknown> }>
      }
      for (const u of kc.users) {
        assert.equal(u.user['exec'], undefined)
        assert.ok(
          sim.entra.validate(String(u.user['token']), AKS_SERVER_APP_ID),
          'a valid Entra token for the AKS server app',
        )
        assert.notEqual(u.user['token'], sim.tokens.user)
      }
      const token = String(kc.users[0]?.user['token'])
      const lines = r.main.stdout.split('\n')
      assert.ok(lines.includes(`::add-mask::${token}`), 'the token is masked')
      assert.ok(
        !lines.filter((l) => !l.startsWith('::add-mask::')).some((l) => l.includes(token)),
        'the token is never logged',
      )
      assert.equal(r.istioctl.filter((a) => a[0] === 'analyze').length, 1)
      rmSync(join(r.runner.temp, dirs[0] as string), { recursive: true, force: true })
    }))

  it('renews the short-lived AKS token during a run', () =>
    withSim({ clusterKind: 'entra', tokenLifetimeSeconds: 3 }, async (sim) => {
      const r = await run(sim, baseInputs(sim, { pause: '2s' }))
      assertPromoted(r, sim)
      assert.match(r.main.stdout, /Renewed the AKS bearer token/)
      const aks = sim.entra.issued.filter((t) => t.audience === AKS_SERVER_APP_ID)
      assert.ok(aks.length >= 2, `AKS tokens issued: ${aks.length}`)
      assert.ok(
        Math.max(...aks.map((t) => t.expiresOn)) - Math.min(...aks.map((t) => t.expiresOn)) >= 2,
        'a later token, after the first expired',
      )
    }))

  it('local accounts disabled + admin: true: a clear error that says to use the user credential, and no cluster write', () =>
    withSim({ clusterKind: 'entra-no-local' }, async (sim) => {
      const before = reviews(sim)
      const r = await run(sim, { ...baseInputs(sim), admin: 'true' })
      assertStoppedBeforeChange(
        r,
        sim,
        before,
        /local accounts disabled, so its admin credential cannot be fetched \(admin: true\)\. Use the user credential \(admin: false\)/,
      )
      assert.deepEqual(r.istioctl, [])
    }))
})

describe('istioctl download, verification and cache', () => {
  it('a checksum mismatch stops the run: nothing extracted, cached or run; then a clean download is cached and reused', () =>
    withSim({}, async (sim) => {
      const runner = makeRunner()
      sim.releases.corrupt(V, true)
      const before = reviews(sim)
      const bad = await run(sim, baseInputs(sim), { runner })
      assertStoppedBeforeChange(
        bad,
        sim,
        before,
        new RegExp(
          `checksum mismatch for https:\\/\\/127\\.0\\.0\\.1:\\d+\\/${VR}\\/istioctl-${VR}-linux-amd64\\.tar\\.gz: published SHA-256 [0-9a-f]{64}, downloaded file has [0-9a-f]{64}\\. Nothing was extracted or run`,
        ),
      )
      assert.deepEqual(bad.istioctl, [], 'istioctl never ran')
      assert.equal(existsSync(join(runner.toolCache, 'istioctl')), false, 'nothing in the tool cache')
      assert.ok(!bad.main.stdout.includes('/usr/bin/tar'), 'nothing extracted')
      assert.deepEqual(sim.releases.downloads, [
        `/${V}/istioctl-${V}-linux-amd64.tar.gz`,
        `/${V}/istioctl-${V}-linux-amd64.tar.gz.sha256`,
      ])

      // Fixed mirror, explicit version: downloaded, verified, cached, run.
      sim.releases.corrupt(V, false)
      const good = await run(sim, baseInputs(sim, { 'istioctl-version': V }), { runner })
      assertPromoted(good, sim)
      assert.match(good.main.stdout, new RegExp(`istioctl ${VR} downloaded and verified \\(SHA-256\\)`))
      assert.equal(sim.releases.downloads.length, 4)
      assert.ok(existsSync(join(runner.toolCache, 'istioctl', V, 'x64', 'istioctl')))
      assert.equal(good.istioctl.filter((a) => a[0] === 'analyze').length, 1)

      // Same runner, next rollout (v3 -> v2): a tool-cache hit, no second download.
      const again = await run(sim, baseInputs(sim, { 'canary-subset': 'v2' }), { runner })
      assertPromoted(again, sim, 'v2')
      assert.equal(again.main.outputs['stable-subset'], 'v3')
      assert.match(again.main.stdout, new RegExp(`istioctl ${VR} found in the tool cache`))
      assert.equal(sim.releases.downloads.length, 4, 'no second download')
      assert.equal(again.istioctl.filter((a) => a[0] === 'analyze').length, 1)
      assert.deepEqual(specOf(reviews(sim)).http, [{ route: only('v2') }])
    }))

  it('an unknown istioctl-version is a clear download error, with no change', () =>
    withSim({}, async (sim) => {
      const before = reviews(sim)
      const r = await run(sim, baseInputs(sim, { 'istioctl-version': '1.99.0' }))
      assertStoppedBeforeChange(
        r,
        sim,
        before,
        /could not download istioctl 1\.99\.0 from https:\/\/127\.0\.0\.1:\d+\/1\.99\.0\/istioctl-1\.99\.0-linux-amd64\.tar\.gz \(or its \.sha256\): .*404.*Check istioctl-version and istioctl-mirror/,
      )
      assert.deepEqual(r.istioctl, [])
    }))
})

describe('istioctl analyze', () => {
  it('Error-level findings stop the rollout before any change and are listed', () =>
    withSim({}, async (sim) => {
      putFindings(sim, [
        {
          code: 'IST0145',
          level: 'Error',
          message:
            'Conflict with gateways istio-system/other (workload selector istio=ingressgateway, port 8080, hosts *).',
          origin: 'Gateway bookinfo/bookinfo-gateway',
        },
        {
          code: 'IST0118',
          level: 'Warning',
          message:
            "Port name http-foo (port: 9080, targetPort: 9080) doesn't follow the naming convention of Istio port.",
          origin: 'Service bookinfo/details',
        },
      ])
      const before = reviews(sim)
      const r = await run(sim, baseInputs(sim))
      assertStoppedBeforeChange(
        r,
        sim,
        before,
        /istioctl analyze found 1 Error-level problem\(s\) in namespace bookinfo; nothing was changed:\n {2}- Error \[IST0145\] \(Gateway bookinfo\/bookinfo-gateway\) Conflict with gateways istio-system\/other/,
      )
      assert.doesNotMatch(
        r.errors.split('nothing was changed')[1] ?? '',
        /IST0118/,
        'warnings are not listed among the errors',
      )
      assert.match(r.main.stdout, /::warning::Warning \[IST0118\] \(Service bookinfo\/details\)/)
      assert.equal(r.istioctl.filter((a) => a[0] === 'analyze').length, 1)
    }))

  it('a VirtualService naming a subset no DestinationRule defines is an Error finding', () =>
    withSim({}, async (sim) => {
      update(sim, VS, 'bookinfo', 'ratings', (o) => {
        const http = specOf(o).http
        ;(http[0] as HttpRoute).route[0]!.destination.subset = 'v9'
      })
      const before = reviews(sim)
      const r = await run(sim, baseInputs(sim))
      assertStoppedBeforeChange(
        r,
        sim,
        before,
        /istioctl analyze found 1 Error-level problem\(s\)[\s\S]*Error \[IST0101\] \(VirtualService bookinfo\/ratings\) Referenced host\+subset in destinationrule not found: "ratings\+v9"/,
      )
    }))

  it('Warning and Info findings are reported but do not stop the rollout', () =>
    withSim({}, async (sim) => {
      putFindings(sim, [
        {
          code: 'IST0118',
          level: 'Warning',
          message: "Port name foo (port: 9080, targetPort: 9080) doesn't follow the naming convention of Istio port.",
          origin: 'Service bookinfo/details',
        },
        { code: 'IST0102', level: 'Info', message: 'Informational only.', origin: 'Namespace bookinfo' },
      ])
      const r = await run(sim, baseInputs(sim))
      assertPromoted(r, sim)
      assert.match(r.main.stdout, /::warning::Warning \[IST0118\]/)
      assert.match(r.main.stdout, /^Info \[IST0102\] \(Namespace bookinfo\) Informational only\.$/m)
      assert.match(r.main.stdout, /istioctl analyze: 2 finding\(s\), none at Error level/)
    }))

  it("analyze: 'false' skips istioctl entirely (no download), even with Error findings present", () =>
    withSim({}, async (sim) => {
      putFindings(sim, [
        { code: 'IST0145', level: 'Error', message: 'would stop the run', origin: 'Gateway bookinfo/bookinfo-gateway' },
      ])
      const r = await run(sim, baseInputs(sim, { analyze: 'false' }))
      assertPromoted(r, sim)
      assert.deepEqual(sim.releases.downloads, [])
      assert.deepEqual(r.istioctl, [])
      assert.equal(existsSync(join(r.runner.toolCache, 'istioctl')), false)
      assert.equal(r.main.outputs['istio-version'], V, 'the control plane is still found')
    }))
})

describe('no control plane / install-istio', () => {
  it('install-istio: true installs Istio with istioctl, then readiness asks for sidecars (pods were never injected)', () =>
    // install-istio needs the extra manifest deploy/rbac/install-istio.yaml, as the README says.
    withSim({ seed: { controlPlane: false }, rbac: ['istio-canary', 'analyze', 'install-istio'] }, async (sim) => {
      assert.equal(sim.store.list(DEPLOYMENTS, 'istio-system').length, 0)
      const before = reviews(sim)
      const r = await run(sim, baseInputs(sim, { 'install-istio': 'true', 'istioctl-version': V }))
      assert.notEqual(r.main.code, 0, transcript(r))
      assert.equal(r.main.outputs['result'], 'unchanged')
      const install = r.istioctl.filter((a) => a[0] === 'install')
      assert.equal(install.length, 1, JSON.stringify(r.istioctl))
      assert.deepEqual(install[0]?.slice(0, 4), ['install', '--skip-confirmation', '--set', 'profile=default'])
      assert.match(r.main.stdout, /No control plane found: installing Istio \(profile default\)/)
      assert.match(r.main.stdout, /Installation complete/)
      assert.match(r.main.stdout, new RegExp(`Control plane: istio-system\\/istiod, revision default, Istio ${VR}`))
      const istiod = sim.store.get(DEPLOYMENTS, 'istio-system', 'istiod')
      assert.ok(istiod, 'istiod installed')
      // the app pods have no istio-proxy: the fix is to enable injection and restart them
      for (const v of ['v1', 'v3']) {
        assert.match(
          r.errors,
          new RegExp(
            `subset '${v}' has ready pods without the istio-proxy sidecar: enable injection for namespace bookinfo, then kubectl -n bookinfo rollout restart deployment -l app=reviews,version=${v}`,
          ),
        )
      }
      assert.doesNotMatch(r.errors, /no Istio control plane found/)
      assert.deepEqual(vsWrites(r), [])
      assert.deepEqual(reviews(sim), before)
      assert.equal(r.istioctl.filter((a) => a[0] === 'analyze').length, 0, 'readiness failed first')
    }))

  it('without install-istio: a clear "no Istio control plane found" error with the fix', () =>
    withSim({ seed: { controlPlane: false } }, async (sim) => {
      const before = reviews(sim)
      const r = await run(sim, baseInputs(sim))
      assertStoppedBeforeChange(
        r,
        sim,
        before,
        /no Istio control plane found \(looked for Deployments labelled app=istiod in istio-system and aks-istio-system\): install Istio \(istioctl install, or set install-istio: true\) or enable the AKS add-on \(az aks mesh enable/,
      )
      assert.deepEqual(r.istioctl, [])
      assert.deepEqual(sim.releases.downloads, [], 'no istioctl download for nothing')
    }))
})

describe('readiness checks (each failure names its fix; nothing is written)', () => {
  it('canary pods not ready', () =>
    withSim({ seed: { readyVersions: { v3: false } } }, async (sim) => {
      const before = reviews(sim)
      const r = await run(sim, baseInputs(sim))
      assertStoppedBeforeChange(
        r,
        sim,
        before,
        /subset 'v3' has 1 pod\(s\) but none is ready \(selector app=reviews,version=v3\): kubectl -n bookinfo describe pods -l app=reviews,version=v3/,
      )
      assert.doesNotMatch(r.errors, /subset 'v1'/)
    }))

  it('namespace not enabled for injection', () =>
    withSim({ seed: { injection: false } }, async (sim) => {
      const before = reviews(sim)
      const r = await run(sim, baseInputs(sim))
      assertStoppedBeforeChange(
        r,
        sim,
        before,
        /namespace bookinfo is not enabled for sidecar injection: kubectl label namespace bookinfo istio-injection=enabled --overwrite, then restart its deployments \(kubectl -n bookinfo rollout restart deployment\)/,
      )
      assert.match(r.errors, /subset 'v3' has ready pods without the istio-proxy sidecar/)
    }))

  it('canary subset missing from the DestinationRule', () =>
    withSim({}, async (sim) => {
      const before = reviews(sim)
      const r = await run(sim, baseInputs(sim, { 'canary-subset': 'v9' }))
      assertStoppedBeforeChange(
        r,
        sim,
        before,
        /DestinationRule bookinfo\/reviews has no subset 'v9' \(it has: v1, v2, v3\): add it with the labels of that version's pods, e\.g\. \{name: v9, labels: \{version: v9\}\}/,
      )
    }))

  it('ingress gateway without an address; gateway-url bypasses the check', () =>
    withSim({}, async (sim) => {
      // A load balancer the cloud controller does not provision (the simulated controller only serves Services
      // labelled istio=<ingress gateway>; the Gateway still selects it through spec.selector).
      update(sim, SERVICES, 'istio-system', 'istio-ingressgateway', (o) => {
        const labels = { ...(o.metadata.labels ?? {}) }
        delete labels['istio']
        o.metadata.labels = labels
        o['status'] = { loadBalancer: {} }
      })
      await new Promise((resolve) => setTimeout(resolve, 20))
      assert.deepEqual(sim.store.get(SERVICES, 'istio-system', 'istio-ingressgateway')?.['status'], {
        loadBalancer: {},
      })
      const before = reviews(sim)
      const r = await run(sim, baseInputs(sim))
      assertStoppedBeforeChange(
        r,
        sim,
        before,
        /the ingress gateway Service istio-system\/istio-ingressgateway has no external address yet \(status\.loadBalancer\.ingress is empty\): wait for the load balancer \(kubectl -n istio-system get service istio-ingressgateway -w\) or set gateway-url/,
      )

      const ok = await run(sim, baseInputs(sim, { 'gateway-url': sim.mesh.url }))
      assertPromoted(ok, sim)
      assert.equal(ok.main.outputs['gateway-url'], sim.mesh.url)
      assert.match(ok.main.stdout, new RegExp(`requests to ${sim.mesh.url.replace(/\./g, '\\.')}/productpage`))
    }))
})

describe('gateway and smoke-test inputs', () => {
  it('gateway-service: a missing Service is a clear error; an existing one is used for the smoke test', () =>
    withSim({}, async (sim) => {
      const before = reviews(sim)
      const missing = await run(sim, baseInputs(sim, { 'gateway-service': 'istio-system/nope' }))
      assertStoppedBeforeChange(missing, sim, before, /gateway-service istio-system\/nope does not exist/)

      // Another load balancer in front of the same gateway pods, with a DNS name instead of an IP.
      sim.store.create(SERVICES, {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'canary-ingress', namespace: 'istio-system', labels: { app: 'canary-ingress' } },
        spec: {
          type: 'LoadBalancer',
          selector: { app: 'istio-ingressgateway', istio: 'ingressgateway' },
          ports: [{ name: 'http2', port: sim.mesh.port, targetPort: 8080, protocol: 'TCP' }],
        },
        status: { loadBalancer: { ingress: [{ hostname: 'localhost' }] } },
      })
      const r = await run(sim, baseInputs(sim, { 'gateway-service': 'istio-system/canary-ingress' }))
      assertPromoted(r, sim)
      assert.equal(r.main.outputs['gateway-url'], `http://localhost:${sim.mesh.port}`)
    }))

  it('gateway-url is used as given', () =>
    withSim({}, async (sim) => {
      const url = `http://localhost:${sim.mesh.port}`
      const r = await run(sim, baseInputs(sim, { 'gateway-url': url }))
      assertPromoted(r, sim)
      assert.equal(r.main.outputs['gateway-url'], url)
      assert.match(r.main.stdout, new RegExp(`requests to http://localhost:${sim.mesh.port}/productpage`))
    }))

  it('smoke-headers are sent with every smoke request', () =>
    withSim({}, async (sim) => {
      // The gateway route answers only requests carrying the header (others get Envoy's 404).
      update(sim, VS, 'bookinfo', 'bookinfo', (o) => {
        const http = specOf(o).http
        const first = http[0] as HttpRoute
        first.match = (first.match ?? []).map((m) => ({
          ...(m as object),
          headers: { 'x-smoke-token': { exact: 's3cr3t' } },
        }))
      })
      const original = specOf(reviews(sim))
      const vsWritesBefore = sim.store.writes.filter((w) => w.ref.resource === 'virtualservices').length
      // without the header even the stable version fails: the baseline test stops the run before any change
      const without = await run(sim, baseInputs(sim))
      assert.notEqual(without.main.code, 0)
      assert.equal(without.main.outputs['result'], 'unchanged')
      assert.match(
        without.errors,
        /the smoke test already fails before any change, with the route at v1 100 %: .*Nothing was changed/,
      )
      assert.deepEqual(specOf(reviews(sim)), original)
      assert.equal(sim.store.writes.filter((w) => w.ref.resource === 'virtualservices').length, vsWritesBefore)

      const r = await run(sim, baseInputs(sim, { 'smoke-headers': 'X-Smoke-Token: s3cr3t\nX-Other: 1' }))
      assertPromoted(r, sim)
    }))

  it('max-latency: a slow canary fails on latency and is rolled back', () =>
    withSim({}, async (sim) => {
      sim.mesh.setFault('reviews', 'v3', { delayMs: 300 })
      const original = reviews(sim)
      // 60 requests: at 50 % the canary answers about 30, enough (>= 20) for its own p95 to be judged
      const r = await run(sim, baseInputs(sim, { 'max-latency': '150ms', 'smoke-requests': '60' }))
      assert.notEqual(r.main.code, 0)
      assert.equal(r.main.outputs['result'], 'rolled-back')
      assert.equal(r.main.outputs['canary-weight'], '0')
      assert.match(
        r.errors,
        /smoke test failed at 50 %: .*p95 latency \d+(\.\d+)? ms above max-latency 150 ms: \d+\/60 requests slower/,
      )
      assert.match(
        r.errors,
        /canary \(v3\) p95 latency \d+(\.\d+)? ms above max-latency 150 ms: \d+\/\d+ of its responses/,
      )
      const after = reviews(sim)
      assert.deepEqual(specOf(after), specOf(original))
      assert.equal(stateOf(after)?.['phase'], 'rolled-back')
      assert.ok((sim.mesh.served['reviews-v3'] ?? 0) > 0)
    }))

  it('success-threshold is a floor; above it each step is compared with the route before the rollout', () =>
    withSim({}, async (sim) => {
      const original = specOf(reviews(sim))
      // Stable already fails 30 %: below the default floor 0.9 the rollout does not start.
      sim.mesh.setFault('reviews', 'v1', { errorRate: 0.3 })
      sim.mesh.setFault('reviews', 'v3', { errorRate: 0.3 })
      const before = reviews(sim)
      const strict = await run(sim, baseInputs(sim, { steps: '100', 'smoke-requests': '40' }))
      assert.notEqual(strict.main.code, 0)
      assert.equal(strict.main.outputs['result'], 'unchanged', transcript(strict))
      assert.match(
        strict.errors,
        /the smoke test already fails before any change, with the route at v1 100 %: success rate \d+\.\d % \(\d+\/80\) below the floor success-threshold 90\.0 %.*Nothing was changed/,
      )
      assert.deepEqual(vsWrites(strict), [])
      assert.deepEqual(reviews(sim), before)
      // With the floor at 0.5, a canary failing as often as stable did is not its fault: promoted.
      const lenient = await run(
        sim,
        baseInputs(sim, { steps: '100', 'smoke-requests': '40', 'success-threshold': '0.5' }),
      )
      assertPromoted(lenient, sim)
      const report = JSON.parse(readFileSync(lenient.main.outputs['report'] as string, 'utf8')) as {
        steps: Array<{ checks: Array<{ evidence: { requests: number; successes: number } }> }>
      }
      const smoke = report.steps[0]?.checks[0]?.evidence
      assert.ok(smoke && smoke.successes < smoke.requests, 'some requests failed and the step still passed')

      // A healthy stable and a canary failing 30 %: above a floor of 0.4, but far more than the baseline explains.
      update(sim, VS, 'bookinfo', 'reviews', (o) => {
        o['spec'] = structuredClone(original)
        delete o.metadata.annotations?.['istio-canary.io/state']
      })
      sim.mesh.setFault('reviews', 'v1', undefined)
      const relative = await run(
        sim,
        baseInputs(sim, { steps: '100', 'smoke-requests': '40', 'success-threshold': '0.4' }),
      )
      assert.equal(relative.main.outputs['result'], 'rolled-back', transcript(relative))
      assert.match(
        relative.errors,
        /\d+\/40 requests failed \(\d+\.\d %\) against 0\/80 \(0\.0 %\) before the rollout: more than the baseline explains/,
      )
      assert.deepEqual(specOf(reviews(sim)), original)
    }))
})

describe('status and route selection', () => {
  it('status changes nothing and reports the state', () =>
    withSim({}, async (sim) => {
      const paused = await run(sim, baseInputs(sim, { steps: '50' }))
      assert.equal(paused.main.outputs['result'], 'paused', transcript(paused))
      const before = reviews(sim)
      const downloads = sim.releases.downloads.length
      const inputs = baseInputs(sim, { action: 'status' })
      delete inputs['canary-subset']
      const r = await run(sim, inputs)
      assert.equal(r.main.code, 0, transcript(r))
      assert.equal(r.main.outputs['result'], 'unchanged')
      assert.equal(r.main.outputs['canary-weight'], '50')
      assert.equal(r.main.outputs['stable-subset'], 'v1')
      assert.equal(r.main.outputs['canary-subset'], 'v3')
      assert.match(r.main.stdout, /Rollout state: paused at 50 % \(canary 'v3', stable 'v1', run /)
      assert.match(r.main.stdout, /Target route now: v1 50 % \/ v3 50 %/)
      assert.deepEqual(r.writes, [])
      assert.deepEqual(r.mutating, [])
      assert.deepEqual(reviews(sim), before)
      assert.deepEqual(r.istioctl, [])
      assert.equal(sim.releases.downloads.length, downloads)
    }))

  it('a target route shadowed by an earlier route without match gets no traffic: refused before any change, naming it', () =>
    withSim({}, async (sim) => {
      update(sim, VS, 'bookinfo', 'reviews', (o) => {
        const http = specOf(o).http
        http.unshift({ name: 'catch-all', route: [{ destination: { host: 'reviews', subset: 'v1' } }] } as HttpRoute)
        ;(http[1] as HttpRoute).name = 'primary'
      })
      const r = await run(sim, baseInputs(sim, { route: 'primary' }))
      assertStoppedBeforeChange(
        r,
        sim,
        reviews(sim),
        /Input 'route': route 'primary' of VirtualService bookinfo\/reviews receives no traffic: http route 'catch-all' before it has no match/,
      )
    }))

  it('route by name and by index on a VirtualService with named routes; only that route changes', () =>
    withSim({ seed: { reviewsRoute: 'jason-v2-v1' } }, async (sim) => {
      update(sim, VS, 'bookinfo', 'reviews', (o) => {
        const http = specOf(o).http
        ;(http[0] as HttpRoute).name = 'jason'
        ;(http[1] as HttpRoute).name = 'primary'
      })
      const original = specOf(reviews(sim))
      assert.equal(original.http.length, 2)
      const [jason, primary] = original.http as [HttpRoute, HttpRoute]

      const bad = await run(sim, baseInputs(sim, { route: 'nope' }))
      assertStoppedBeforeChange(
        bad,
        sim,
        reviews(sim),
        /Input 'route': VirtualService 'reviews' has no http route named 'nope' \(named routes: jason, primary\)/,
      )
      const outOfRange = await run(sim, baseInputs(sim, { route: '5' }))
      assertStoppedBeforeChange(
        outOfRange,
        sim,
        reviews(sim),
        /Input 'route': VirtualService 'reviews' has 2 http route\(s\) besides istio-canary's previews; index 5 is out of range/,
      )

      // by name: the header-matched route (v2 -> v3), smoke-tested as jason
      const byName = await run(sim, baseInputs(sim, { route: 'jason', 'smoke-headers': 'Cookie: session=jason' }))
      assertPromoted(byName, sim)
      assert.equal(byName.main.outputs['stable-subset'], 'v2')
      assert.deepEqual(specOf(reviews(sim)).http, [{ ...jason, route: only('v3') }, primary])
      assert.deepEqual({ ...specOf(reviews(sim)), http: [] }, { ...original, http: [] })

      // by index: the default route (v1 -> v2); the jason route stays as the first run left it
      const byIndex = await run(sim, baseInputs(sim, { route: '1', 'canary-subset': 'v2' }))
      assertPromoted(byIndex, sim, 'v2')
      assert.equal(byIndex.main.outputs['stable-subset'], 'v1')
      assert.deepEqual(specOf(reviews(sim)).http, [
        { ...jason, route: only('v3') },
        { ...primary, route: only('v2') },
      ])
    }))
})
