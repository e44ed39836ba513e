// The real kubectl (a second, independent client) against the simulated API server: get, apply (which needs
// /openapi/v3 for its validation and /openapi/v2), patch, and replace with a stale resourceVersion -> 409.
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
