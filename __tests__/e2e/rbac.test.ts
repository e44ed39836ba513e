// The action under exactly the shipped RBAC manifests (SPEC section 8, issue 8 item 2): the simulated API server
// enforces Kubernetes RBAC (sim/kube/rbac.ts) and, by default, binds deploy/rbac/istio-canary.yaml + analyze.yaml
// to the action's identities. Every mode passes under them (here and in every other e2e file); a missing
// permission is an error naming verb, resource and namespace, before any write; the README lists the manifests.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { loadAll } from 'js-yaml'
import { REPO_ROOT, runAction } from '../runner/harness.js'
import type { Sim } from '../sim/index.js'
import { ROLES } from '../sim/kube/rbac.js'
import type { KubeObject } from '../sim/kube/store.js'
import { VS, bookinfoInputs, runnerEnv, vsWrites, withSim } from './common.js'

interface Rule {
  apiGroups: string[]
  resources: string[]
  verbs: string[]
}
const inputs = (sim: Sim, extra: Record<string, string> = {}): Record<string, string> =>
  bookinfoInputs(sim, { steps: '50,100', ...extra })

/** Removes `verb` on `resource` from the Role `name` in `namespace` (as an admin tightening the manifest would). */
function revoke(sim: Sim, namespace: string, name: string, resource: string, verb: string): void {
  const role = sim.store.get(ROLES, namespace, name) as KubeObject
  role['rules'] = (role['rules'] as Rule[]).map((r) =>
    r.resources.includes(resource) ? { ...r, verbs: r.verbs.filter((v) => v !== verb) } : r,
  )
  sim.store.update(ROLES, role)
}

describe('RBAC: the shipped manifests', () => {
  it('every mode passes under exactly deploy/rbac (OIDC identity): rollout to 50, status, preview, preview-cleanup, promote, rollback', () =>
    withSim({ clusterKind: 'entra' }, async (sim) => {
      const env = runnerEnv(sim)
      const run = async (extra: Record<string, string>, result: string): Promise<void> => {
        const { main } = await runAction({ inputs: inputs(sim, extra), env })
        assert.equal(main.code, 0, main.stdout)
        assert.equal(main.outputs['result'], result, main.stdout)
      }
      await run({ steps: '50' }, 'paused')
      await run({ action: 'status', 'canary-subset': '' }, 'unchanged')
      await run({ action: 'preview', 'preview-value': 'pr-1', 'canary-subset': 'v2' }, 'previewed')
      await run({ action: 'preview-cleanup', 'preview-value': 'pr-1', 'canary-subset': '' }, 'cleaned-up')
      await run({ action: 'promote' }, 'promoted')
      await run({ action: 'rollback', 'canary-subset': '' }, 'rolled-back')
    }))

  // Without analyze.yaml (whose cluster-wide list of deployments covers both candidates), the identity may list
  // Deployments only in the control plane's own namespace, as istio-canary.yaml grants.
  it('AKS add-on layout, analyze: false under istio-canary.yaml alone: the 403 on istio-system is skipped because aks-istio-system answers', () =>
    withSim({ layout: 'aks-addon', rbac: ['istio-canary'] }, async (sim) => {
      const { main } = await runAction({ inputs: inputs(sim, { analyze: 'false' }), env: runnerEnv(sim) })
      assert.equal(main.code, 0, main.stdout)
      assert.equal(main.outputs['result'], 'promoted')
      assert.ok(
        sim.kube.requests.some(
          (r) => r.status === 403 && r.path.startsWith('/apis/apps/v1/namespaces/istio-system/deployments'),
        ),
      )
    }))

  it('a missing permission (update on virtualservices) names verb, resource and namespace and points at deploy/rbac; no VirtualService write', () =>
    withSim({}, async (sim) => {
      revoke(sim, 'bookinfo', 'istio-canary', 'virtualservices', 'update')
      const before = sim.store.get(VS, 'bookinfo', 'reviews')
      const writes = vsWrites(sim)
      const { main } = await runAction({ inputs: inputs(sim), env: runnerEnv(sim) })
      assert.notEqual(main.code, 0)
      const error = main.stdout
        .split('\n')
        .filter((l) => l.startsWith('::error'))
        .join('\n')
      assert.match(error, /lacks the permission to update virtualservices\.networking\.istio\.io in namespace bookinfo/)
      assert.match(error, /deploy\/rbac/)
      assert.match(
        error,
        /virtualservices\.networking\.istio\.io "reviews" is forbidden: User "clusterUser" cannot update resource "virtualservices" in API group "networking\.istio\.io" in the namespace "bookinfo"/,
      )
      assert.equal(vsWrites(sim), writes)
      assert.deepEqual(sim.store.get(VS, 'bookinfo', 'reviews'), before)
      assert.equal(main.outputs['result'], 'unchanged')
    }))

  it('open-source layout, analyze: false under istio-canary.yaml alone: the 403 on aks-istio-system is skipped too', () =>
    withSim({ rbac: ['istio-canary'] }, async (sim) => {
      const { main } = await runAction({ inputs: inputs(sim, { analyze: 'false' }), env: runnerEnv(sim) })
      assert.equal(main.code, 0, main.stdout)
      assert.equal(main.outputs['result'], 'promoted')
      assert.ok(
        sim.kube.requests.some(
          (r) => r.status === 403 && r.path.startsWith('/apis/apps/v1/namespaces/aks-istio-system/deployments'),
        ),
      )
    }))

  it('a missing read (get on leases) stops the run before the lock or any write, naming it', () =>
    withSim({}, async (sim) => {
      revoke(sim, 'bookinfo', 'istio-canary', 'leases', 'get')
      const w0 = sim.store.writes.length
      const { main } = await runAction({ inputs: inputs(sim), env: runnerEnv(sim) })
      assert.notEqual(main.code, 0)
      assert.match(main.stdout, /lacks the permission to get leases\.coordination\.k8s\.io in namespace bookinfo/)
      assert.equal(sim.store.writes.length, w0, 'no write at all')
    }))

  it('the README\'s "Permissions in the cluster" lists exactly what the manifests grant', () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')
    const section = readme.slice(readme.indexOf('## Permissions in the cluster'), readme.indexOf('## Development'))
    const listed = section
      .split('\n')
      .filter((l) => l.startsWith('- '))
      .sort()
    const expected: string[] = []
    const files = readdirSync(join(REPO_ROOT, 'deploy', 'rbac')).map((f) => f.replace(/\.yaml$/, ''))
    assert.deepEqual(files.sort(), ['analyze', 'install-istio', 'istio-canary', 'linkerd', 'telemetry'])
    for (const file of files) {
      assert.ok(section.includes(`\`deploy/rbac/${file}.yaml\``), file)
      const docs = loadAll(readFileSync(join(REPO_ROOT, 'deploy', 'rbac', `${file}.yaml`), 'utf8')).filter(
        Boolean,
      ) as KubeObject[]
      const scope = new Map<string, string>()
      for (const d of docs) {
        const ref = d['roleRef'] as { kind: string; name: string } | undefined
        if (!ref) continue
        if (ref.name === 'cluster-admin') expected.push('- cluster-wide: cluster-admin')
        else
          scope.set(
            `${ref.kind}/${ref.name}`,
            d.kind === 'RoleBinding' ? `namespace ${d.metadata.namespace}` : 'cluster-wide',
          )
      }
      for (const d of docs) {
        if (d.kind !== 'Role' && d.kind !== 'ClusterRole') continue
        const where = scope.get(`${d.kind}/${d.metadata.name}`)
        assert.ok(where, `${d.kind} ${d.metadata.name} is bound`)
        for (const r of d['rules'] as Rule[])
          expected.push(`- ${where}: ${r.verbs.join(', ')} on ${r.resources.join(', ')} (${r.apiGroups[0] || 'core'})`)
      }
    }
    assert.deepEqual(listed, expected.sort())
  })
})
