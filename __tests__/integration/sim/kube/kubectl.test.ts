// The real kubectl (a second, independent client) against the simulated API server: get, apply (which needs
// /openapi/v3 for its validation and /openapi/v2), server-side apply (create, conflict, --force-conflicts, a field
// no longer applied removed), patch, and replace with a stale resourceVersion -> 409.
// Skipped where no kubectl is installed.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startSimulation } from '../../../sim/index.js'
import { REFS } from '../../../sim/kube/refs.js'

const KUBECTL = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => existsSync(p))
const VS = REFS.virtualServices

describe('real kubectl against the simulated API server', {
  skip: KUBECTL === undefined ? 'no kubectl installed' : false,
}, () => {
  it('get, apply, patch, and replace with a stale resourceVersion (409, kubectl error text)', async () => {
    // Full rights: this drives the API server as a cluster admin would, not the action.
    const sim = await startSimulation({ rbac: 'cluster-admin' })
    try {
      const dir = mkdtempSync(join(tmpdir(), 'ic-kubectl-'))
      const kubeconfig = join(dir, 'config')
      writeFileSync(kubeconfig, sim.kubeconfig('user'), { mode: 0o600 })
      // The server runs in this process: run kubectl asynchronously (bounded by a timeout).
      const kubectl = (...args: string[]): Promise<{ code: number; out: string; err: string }> =>
        new Promise((resolve) => {
          execFile(KUBECTL as string, ['--kubeconfig', kubeconfig, ...args], { timeout: 30_000 }, (e, out, err) =>
            resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out, err }),
          )
        })

      const got = await kubectl('get', 'virtualservices.networking.istio.io', '-n', 'bookinfo', 'reviews', '-o', 'json')
      assert.equal(got.code, 0, got.err)
      assert.equal(JSON.parse(got.out).metadata.name, 'reviews')

      const file = join(dir, 'vs.yaml')
      writeFileSync(
        file,
        'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: canary-test\n  namespace: bookinfo\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n',
      )
      const applied = await kubectl('apply', '-f', file)
      assert.equal(applied.code, 0, applied.err)
      assert.match(applied.out, /virtualservice\.networking\.istio\.io\/canary-test created/)
      assert.ok(
        sim.kube.requests.some(
          (r) => r.path.startsWith('/openapi/v3/apis/networking.istio.io/v1?hash=') && r.status === 200,
        ),
      )
      const created = sim.store.get(VS, 'bookinfo', 'canary-test')
      assert.ok(created?.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'])
      assert.ok(
        (created?.metadata['managedFields'] as Array<{ manager: string }>).some(
          (e) => e.manager === 'kubectl-client-side-apply',
        ),
      )

      writeFileSync(
        file,
        'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: canary-test\n  namespace: bookinfo\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v2}\n',
      )
      const reapplied = await kubectl('apply', '-f', file)
      assert.equal(reapplied.code, 0, reapplied.err)
      assert.match(reapplied.out, /canary-test configured/)

      const patched = await kubectl(
        'patch',
        'virtualservices.networking.istio.io',
        'canary-test',
        '-n',
        'bookinfo',
        '--type',
        'merge',
        '-p',
        '{"metadata":{"labels":{"team":"a"}}}',
      )
      assert.equal(patched.code, 0, patched.err)
      assert.equal(sim.store.get(VS, 'bookinfo', 'canary-test')?.metadata.labels?.['team'], 'a')

      // Server-side apply: a new object is created with kubectl's Apply entry; an apply of a field another manager
      // set since is a conflict naming it (409), which --force-conflicts takes over.
      const ssaFile = join(dir, 'ssa.yaml')
      const ssa = (subset: string): string =>
        `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: ssa-test\n  namespace: bookinfo\n  labels: {owner: gitops}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: ${subset}}\n`
      writeFileSync(ssaFile, ssa('v1'))
      const ssaCreated = await kubectl('apply', '--server-side', '-f', ssaFile)
      assert.equal(ssaCreated.code, 0, ssaCreated.err)
      assert.match(ssaCreated.out, /virtualservice\.networking\.istio\.io\/ssa-test serverside-applied/)
      const ssaEntries = () =>
        sim.store.get(VS, 'bookinfo', 'ssa-test')?.metadata['managedFields'] as Array<{
          manager: string
          operation: string
          fieldsV1: Record<string, unknown>
        }>
      assert.deepEqual(
        ssaEntries().map((e) => [e.manager, e.operation]),
        [['kubectl', 'Apply']],
      )
      assert.deepEqual(ssaEntries()[0]?.fieldsV1, {
        'f:metadata': { 'f:labels': { 'f:owner': {} } },
        'f:spec': { 'f:hosts': {}, 'f:http': {} },
      })
      const edited = await kubectl(
        'patch',
        'virtualservices.networking.istio.io',
        'ssa-test',
        '-n',
        'bookinfo',
        '--type',
        'merge',
        '-p',
        '{"spec":{"http":[{"route":[{"destination":{"host":"reviews","subset":"v2"}}]}]}}',
      )
      assert.equal(edited.code, 0, edited.err)
      writeFileSync(ssaFile, ssa('v3'))
      const refused = await kubectl('apply', '--server-side', '-f', ssaFile)
      assert.notEqual(refused.code, 0)
      assert.match(
        refused.err,
        /Apply failed with 1 conflict: conflict with "kubectl-patch" using networking\.istio\.io\/v1 at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: \.spec\.http/,
      )
      const forced = await kubectl('apply', '--server-side', '--force-conflicts', '-f', ssaFile)
      assert.equal(forced.code, 0, forced.err)
      assert.deepEqual((sim.store.get(VS, 'bookinfo', 'ssa-test')?.['spec'] as { http: unknown[] }).http, [
        { route: [{ destination: { host: 'reviews', subset: 'v3' } }] },
      ])
      assert.deepEqual(
        ssaEntries().map((e) => [e.manager, e.operation]),
        [['kubectl', 'Apply']],
        'the forced field left kubectl-patch with nothing',
      )
      // A field no longer applied is removed (nobody else owns it).
      writeFileSync(ssaFile, ssa('v3').replace('  labels: {owner: gitops}\n', ''))
      const pruned = await kubectl('apply', '--server-side', '-f', ssaFile)
      assert.equal(pruned.code, 0, pruned.err)
      assert.equal(sim.store.get(VS, 'bookinfo', 'ssa-test')?.metadata.labels?.['owner'], undefined)

      const stale = {
        ...(sim.store.get(VS, 'bookinfo', 'canary-test') as object),
        metadata: { ...sim.store.get(VS, 'bookinfo', 'canary-test')!.metadata, resourceVersion: '1' },
      }
      const staleFile = join(dir, 'stale.json')
      writeFileSync(
        staleFile,
        JSON.stringify({ ...stale, apiVersion: 'networking.istio.io/v1', kind: 'VirtualService' }),
      )
      const replaced = await kubectl('replace', '-f', staleFile)
      assert.notEqual(replaced.code, 0)
      assert.match(
        replaced.err,
        /Error from server \(Conflict\): error when replacing ".*stale\.json": Operation cannot be fulfilled on virtualservices\.networking\.istio\.io "canary-test": the object has been modified; please apply your changes to the latest version and try again/,
      )
    } finally {
      await sim.close()
    }
  })

  it('the Gateway API: api-resources, get through either version (status included), apply of an HTTPRoute', async () => {
    const sim = await startSimulation({ rbac: 'cluster-admin', gatewayApi: { controller: { delayMs: 0 } } })
    try {
      const dir = mkdtempSync(join(tmpdir(), 'ic-kubectl-'))
      const kubeconfig = join(dir, 'config')
      writeFileSync(kubeconfig, sim.kubeconfig('user'), { mode: 0o600 })
      const kubectl = (...args: string[]): Promise<{ code: number; out: string; err: string }> =>
        new Promise((resolve) => {
          execFile(KUBECTL as string, ['--kubeconfig', kubeconfig, ...args], { timeout: 30_000 }, (e, out, err) =>
            resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out, err }),
          )
        })
      const resources = await kubectl('api-resources', '--api-group=gateway.networking.k8s.io', '-o', 'name')
      assert.equal(resources.code, 0, resources.err)
      assert.deepEqual(resources.out.trim().split('\n').sort(), [
        'gatewayclasses.gateway.networking.k8s.io',
        'gateways.gateway.networking.k8s.io',
        'httproutes.gateway.networking.k8s.io',
      ])
      // The controller (delay 0) reports within a bounded wait.
      for (let i = 0; i < 100 && !sim.store.get(REFS.httpRoutes, 'bookinfo', 'reviews')?.['status']; i++)
        await new Promise((r) => setTimeout(r, 10))
      const beta = await kubectl(
        'get',
        'httproutes.v1beta1.gateway.networking.k8s.io',
        'reviews',
        '-n',
        'bookinfo',
        '-o',
        'json',
      )
      assert.equal(beta.code, 0, beta.err)
      const route = JSON.parse(beta.out)
      assert.equal(route.apiVersion, 'gateway.networking.k8s.io/v1beta1')
      assert.equal(route.status.parents[0].conditions[0].type, 'Accepted')
      assert.equal(route.status.parents[0].conditions[0].status, 'True')
      const file = join(dir, 'hr.yaml')
      writeFileSync(
        file,
        'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: ratings\n  namespace: bookinfo\nspec:\n  parentRefs:\n  - {group: "", kind: Service, name: ratings, port: 9080}\n  rules:\n  - backendRefs:\n    - {name: ratings-v1, port: 9080}\n',
      )
      const applied = await kubectl('apply', '-f', file)
      assert.equal(applied.code, 0, applied.err)
      assert.match(applied.out, /httproute\.gateway\.networking\.k8s\.io\/ratings created/)
      const weight = await kubectl(
        'get',
        'httproute',
        'ratings',
        '-n',
        'bookinfo',
        '-o',
        'jsonpath={.spec.rules[0].backendRefs[0].weight}',
      )
      assert.equal(weight.out, '1', 'the CRD default, stored')
    } finally {
      await sim.close()
    }
  })
})
