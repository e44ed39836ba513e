// Revision tags and canary upgrades of the control plane (SPEC section 8, issue 8 item 4), through the bundle.
// AKS's upgrade guide (https://learn.microsoft.com/azure/aks/istio-upgrade, "revision tags") labels namespaces
// istio.io/rev=prod-stable, a tag `istioctl tag set prod-stable --revision asm-1-NN --istioNamespace aks-istio-system`
// made: a MutatingWebhookConfiguration labelled istio.io/tag=prod-stable and istio.io/rev=asm-1-NN (istio/istio
// istioctl/pkg/tag, manifests/charts/istio-control/istio-discovery/templates/revision-tags-mwc.yaml). During
// `az aks mesh upgrade start` two istiods run side by side. And the supported Istio releases (issue 9): a rollout
// against the oldest and the newest (src/istio/versions.ts).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NEWEST_SUPPORTED_ISTIO, OLDEST_SUPPORTED_ISTIO } from '../../src/istio/versions.js'
import { runAction } from '../runner/harness.js'
import type { Sim } from '../sim/index.js'
import { REFS } from '../sim/kube/refs.js'
import type { KubeObject } from '../sim/kube/store.js'
import { VS, bookinfoInputs, reviews, runnerEnv, vsWrites, withSim } from './common.js'

/** The AKS add-on's revisions during an upgrade asm-1-29 -> asm-1-30 (AKS offers those two; 1.30.5: 2026-09-21). */
const STABLE = OLDEST_SUPPORTED_ISTIO
const CANARY = '1.30.5'

const istioctlCalls = (file: string): string[][] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string[])
    : []

async function rollout(
  sim: Sim,
  extra: Record<string, string> = {},
): Promise<{ code: number; stdout: string; outputs: Record<string, string>; calls: string[][] }> {
  const log = join(mkdtempSync(join(tmpdir(), 'ic-rev-')), 'istioctl.log')
  const { main } = await runAction({
    inputs: bookinfoInputs(sim, { steps: '50,100', ...extra }),
    env: { ...runnerEnv(sim), ISTIOCTL_SIM_LOG: log },
  })
  return { code: main.code ?? -1, stdout: main.stdout, outputs: main.outputs, calls: istioctlCalls(log) }
}

const analyzeArgs = (calls: string[][]): string[] => {
  const a = calls.find((c) => c[0] === 'analyze')
  assert.ok(a, JSON.stringify(calls))
  return a
}
const flagValue = (argv: string[], flag: string): string | undefined =>
  argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined
const errors = (stdout: string): string =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('::error'))
    .join('\n')

describe('revision tags and the two-revision canary upgrade', () => {
  it('AKS: a namespace labelled by the tag prod-stable during an upgrade: the tag resolved to asm-1-29, logged, analyzed with --revision of it, promoted', () =>
    withSim(
      {
        layout: 'aks-addon',
        seed: {
          istioVersion: STABLE,
          canaryVersion: CANARY,
          tags: { 'prod-stable': 'stable', 'prod-canary': 'canary' },
          namespaceLabels: { 'istio.io/rev': 'prod-stable' },
        },
      },
      async (sim) => {
        assert.equal(sim.info.injectedBy, 'asm-1-29')
        const r = await rollout(sim)
        assert.equal(r.code, 0, r.stdout)
        assert.equal(r.outputs['result'], 'promoted')
        assert.equal(r.outputs['istio-version'], STABLE)
        assert.match(
          r.stdout,
          /Control plane: aks-istio-system\/istiod-asm-1-29, revision asm-1-29 \(through the revision tag prod-stable\), Istio 1\.29\.8 \(AKS Istio add-on\); also installed: asm-1-30/,
        )
        assert.doesNotMatch(r.stdout, /run sidecars injected by revision/, 'the pods are the revision in use')
        const analyze = analyzeArgs(r.calls)
        assert.equal(flagValue(analyze, '--revision'), 'asm-1-29')
        assert.equal(flagValue(analyze, '--istioNamespace'), 'aks-istio-system')
        assert.ok(
          sim.releases.downloads.some((d) => d.startsWith(`/${STABLE}/`)),
          'istioctl of the revision in use',
        )
        // the tag was read by label, as istioctl does (istioctl/pkg/tag/util.go GetWebhooksWithTag)
        assert.ok(
          sim.kube.requests.some(
            (q) =>
              q.path.startsWith('/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations') &&
              decodeURIComponent(q.path).includes('labelSelector=istio.io/tag=prod-stable') &&
              q.status === 200,
          ),
        )
        assert.deepEqual((reviews(sim)['spec'] as { http: Array<{ route: unknown }> }).http.at(-1)?.route, [
          { destination: { host: 'reviews', subset: 'v3' } },
        ])
      },
    ))

  it('AKS, mid-upgrade with the namespace moved to the new revision asm-1-30: its control plane (1.30.5) is found, not "none"', () =>
    withSim(
      {
        layout: 'aks-addon',
        seed: { istioVersion: STABLE, canaryVersion: CANARY, namespaceLabels: { 'istio.io/rev': 'canary' } },
      },
      async (sim) => {
        assert.equal(sim.info.injectedBy, 'asm-1-30')
        const r = await rollout(sim)
        assert.equal(r.code, 0, r.stdout)
        assert.equal(r.outputs['result'], 'promoted')
        assert.equal(r.outputs['istio-version'], CANARY)
        assert.match(r.stdout, /revision asm-1-30, Istio 1\.30\.5 \(AKS Istio add-on\); also installed: asm-1-29/)
        assert.equal(flagValue(analyzeArgs(r.calls), '--revision'), 'asm-1-30')
        assert.ok(sim.releases.downloads.some((d) => d.startsWith(`/${CANARY}/`)))
        // a revision named directly needs no tag lookup by the action (istioctl analyze lists every webhook itself)
        const tagLookups = sim.kube.requests.filter((q) =>
          decodeURIComponent(q.path).includes('mutatingwebhookconfigurations?labelSelector=istio.io/tag'),
        )
        assert.deepEqual(tagLookups, [])
      },
    ))

  it('the tag moved to the new revision (istioctl tag set prod-stable --revision asm-1-30 --overwrite), pods not restarted yet: the run follows the tag and says which sidecars are still the old revision', () =>
    withSim(
      {
        layout: 'aks-addon',
        seed: {
          istioVersion: STABLE,
          canaryVersion: CANARY,
          tags: { 'prod-stable': 'stable' },
          namespaceLabels: { 'istio.io/rev': 'prod-stable' },
        },
      },
      async (sim) => {
        // What `--overwrite` does: the tag's webhook regenerated for the other revision (labels and its istiod
        // Service: istioctl/pkg/tag/generate.go tagWebhookConfigFromCanonicalWebhook); pods keep their sidecars.
        const mwc = REFS.mutatingWebhookConfigurations
        const name = 'istio-revision-tag-prod-stable-aks-istio-system'
        const hook = sim.store.get(mwc, undefined, name) as KubeObject
        const moved = JSON.parse(JSON.stringify(hook).replaceAll('istiod-asm-1-29', 'istiod-asm-1-30')) as KubeObject
        moved.metadata.labels = { ...moved.metadata.labels, 'istio.io/rev': 'asm-1-30' }
        sim.store.update(mwc, moved)
        const r = await rollout(sim, { steps: '50' })
        assert.equal(r.code, 0, r.stdout)
        assert.equal(r.outputs['result'], 'paused')
        assert.equal(r.outputs['istio-version'], CANARY)
        assert.match(r.stdout, /revision asm-1-30 \(through the revision tag prod-stable\)/)
        assert.equal(flagValue(analyzeArgs(r.calls), '--revision'), 'asm-1-30')
        for (const subset of ['v1', 'v3'])
          assert.match(
            r.stdout,
            new RegExp(
              `subset '${subset}': 1 of 1 ready pod\\(s\\) run sidecars injected by revision asm-1-29, not by asm-1-30 \\(this run's control plane\\); a restart re-injects them`,
            ),
          )
      },
    ))

  it('an unknown tag: a clear error naming the label, the revisions and the tags there are, before any change', () =>
    withSim(
      {
        layout: 'aks-addon',
        seed: {
          istioVersion: STABLE,
          canaryVersion: CANARY,
          tags: { 'prod-stable': 'stable' },
          namespaceLabels: { 'istio.io/rev': 'prod-stabel' },
        },
      },
      async (sim) => {
        const w0 = sim.store.writes.length
        const vs0 = vsWrites(sim)
        const before = sim.store.get(VS, 'bookinfo', 'reviews')
        const r = await rollout(sim)
        assert.notEqual(r.code, 0)
        const error = errors(r.stdout)
        assert.match(
          error,
          /namespace bookinfo's label istio\.io\/rev=prod-stabel names no installed revision and no revision tag \(revisions: asm-1-29 \(aks-istio-system\/istiod-asm-1-29\), asm-1-30 \(aks-istio-system\/istiod-asm-1-30\); tags: prod-stable -> asm-1-29\): kubectl label namespace bookinfo istio\.io\/rev=<revision or tag> --overwrite/,
        )
        assert.match(error, /istioctl tag set prod-stabel --revision <revision> --istioNamespace aks-istio-system/)
        assert.doesNotMatch(error, /no Istio control plane found/)
        assert.equal(vsWrites(sim), vs0)
        assert.equal(sim.store.writes.length, w0, 'no write at all (not even the lock)')
        assert.deepEqual(sim.store.get(VS, 'bookinfo', 'reviews'), before)
        assert.equal(r.outputs['result'], 'unchanged')
        assert.deepEqual(r.calls, [], 'istioctl not even run')
      },
    ))

  it('open source: two revisions and istio-injection=enabled: the tag default names the revision (1-31-1), as istioctl tag set default does', () =>
    withSim(
      {
        seed: {
          istioVersion: OLDEST_SUPPORTED_ISTIO,
          canaryVersion: NEWEST_SUPPORTED_ISTIO,
          tags: { default: 'canary' },
        },
      },
      async (sim) => {
        assert.equal(sim.info.injectedBy, '1-31-1')
        const r = await rollout(sim)
        assert.equal(r.code, 0, r.stdout)
        assert.equal(r.outputs['result'], 'promoted')
        assert.equal(r.outputs['istio-version'], NEWEST_SUPPORTED_ISTIO)
        assert.match(r.stdout, /istio-system\/istiod-1-31-1, revision 1-31-1 \(through the revision tag default\)/)
        assert.equal(flagValue(analyzeArgs(r.calls), '--revision'), '1-31-1')
      },
    ))

  it('several revisions and a namespace that names none: a clear error, not "no control plane"', () =>
    withSim(
      { layout: 'aks-addon', seed: { istioVersion: STABLE, canaryVersion: CANARY, namespaceLabels: {} } },
      async (sim) => {
        const r = await rollout(sim)
        assert.notEqual(r.code, 0)
        assert.match(
          errors(r.stdout),
          /several Istio control plane revisions are installed \(asm-1-29 \(aks-istio-system\/istiod-asm-1-29\), asm-1-30 \(aks-istio-system\/istiod-asm-1-30\)\) and neither istio-revision nor namespace bookinfo names one/,
        )
        assert.equal(r.outputs['result'], 'unchanged')
      },
    ))

  it('istio-revision may name a tag too', () =>
    withSim(
      {
        layout: 'aks-addon',
        seed: {
          istioVersion: STABLE,
          canaryVersion: CANARY,
          tags: { 'prod-canary': 'canary' },
          namespaceLabels: { 'istio.io/rev': 'prod-canary' },
        },
      },
      async (sim) => {
        const r = await rollout(sim, { 'istio-revision': 'prod-canary', steps: '50' })
        assert.equal(r.code, 0, r.stdout)
        assert.equal(r.outputs['istio-version'], CANARY)
        assert.equal(flagValue(analyzeArgs(r.calls), '--revision'), 'asm-1-30')
      },
    ))

  it('RBAC: without list on mutatingwebhookconfigurations the tag cannot be resolved: the error names the permission and what it is for', () =>
    withSim(
      {
        layout: 'aks-addon',
        rbac: ['istio-canary'],
        seed: {
          istioVersion: STABLE,
          tags: { 'prod-stable': 'stable' },
          namespaceLabels: { 'istio.io/rev': 'prod-stable' },
        },
      },
      async (sim) => {
        sim.store.delete(REFS.clusterRoleBindings, undefined, 'istio-canary-revision-tags')
        const w0 = sim.store.writes.length
        const r = await rollout(sim, { analyze: 'false' })
        assert.notEqual(r.code, 0)
        const error = errors(r.stdout)
        assert.match(
          error,
          /lacks the permission to list mutatingwebhookconfigurations\.admissionregistration\.k8s\.io cluster-wide/,
        )
        assert.match(
          error,
          /needed to resolve the revision tag that namespace bookinfo's label istio\.io\/rev=prod-stable may be; or set istio-revision to the revision itself/,
        )
        assert.match(error, /deploy\/rbac/)
        assert.equal(sim.store.writes.length, w0 + 0, 'no write')
        // and with the shipped manifest bound again, it works
        const manifest = (await import('../sim/kube/seed.js')).loadRbacManifest('istio-canary')
        const binding = manifest.find(
          (d) => d.metadata.name === 'istio-canary-revision-tags' && d.kind === 'ClusterRoleBinding',
        )
        assert.ok(binding)
        sim.store.create(REFS.clusterRoleBindings, {
          ...binding,
          subjects: sim.users.map((name) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name })),
        })
        const ok = await rollout(sim, { analyze: 'false' })
        assert.equal(ok.code, 0, ok.stdout)
        assert.equal(ok.outputs['result'], 'promoted')
      },
    ))
})

describe('supported Istio releases', () => {
  for (const version of [OLDEST_SUPPORTED_ISTIO, NEWEST_SUPPORTED_ISTIO]) {
    for (const layout of ['oss', 'aks-addon'] as const) {
      it(`${layout}, Istio ${version}: istioctl ${version} (auto) analyzes and the rollout promotes, no support warning`, () =>
        withSim({ layout, seed: { istioVersion: version } }, async (sim) => {
          const r = await rollout(sim)
          assert.equal(r.code, 0, r.stdout)
          assert.equal(r.outputs['result'], 'promoted')
          assert.equal(r.outputs['istio-version'], version)
          assert.ok(r.calls.some((c) => c[0] === 'analyze'))
          assert.deepEqual(sim.releases.downloads, [
            `/${version}/istioctl-${version}-linux-amd64.tar.gz`,
            `/${version}/istioctl-${version}-linux-amd64.tar.gz.sha256`,
          ])
          assert.doesNotMatch(r.stdout, /not tested/)
        }))
    }
  }

  it('an older control plane (1.24.2) still works, with a warning that it is outside the supported releases', () =>
    withSim({ seed: { istioVersion: '1.24.2' } }, async (sim) => {
      const r = await rollout(sim)
      assert.equal(r.code, 0, r.stdout)
      assert.match(
        r.stdout,
        new RegExp(
          `::warning::Istio 1\\.24\\.2 \\(istio-system/istiod\\) is older than the releases istio-canary supports \\(${OLDEST_SUPPORTED_ISTIO.replaceAll('.', '\\.')} to ${NEWEST_SUPPORTED_ISTIO.replaceAll('.', '\\.')}\\)`,
        ),
      )
    }))
})
