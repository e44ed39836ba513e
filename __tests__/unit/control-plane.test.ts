// Which control plane a namespace belongs to (src/istio/mesh.ts findControlPlane), on an in-memory ControlPlaneApi:
// revisions, revision tags (the MutatingWebhookConfigurations of `istioctl tag set`, labels istio.io/tag and
// istio.io/rev), the tag `default`, and what a refused or ambiguous lookup says. No I/O.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { V1Deployment, V1MutatingWebhookConfiguration, V1Namespace } from '@kubernetes/client-node'
import { ReadinessError, findControlPlane } from '../../src/istio/mesh.js'
import type { ControlPlaneApi } from '../../src/k8s/ports.js'
import { ForbiddenError } from '../../src/k8s/resources.js'

const istiod = (namespace: string, rev: string, version: string): V1Deployment => ({
  metadata: {
    name: rev === 'default' ? 'istiod' : `istiod-${rev}`,
    namespace,
    labels: { app: 'istiod', 'istio.io/rev': rev },
  },
  spec: {
    selector: {},
    template: { spec: { containers: [{ name: 'discovery', image: `docker.io/istio/pilot:${version}` }] } },
  },
  status: { readyReplicas: 1 },
})
const tagHook = (tag: string, rev: string): V1MutatingWebhookConfiguration => ({
  metadata: { name: `istio-revision-tag-${tag}`, labels: { 'istio.io/tag': tag, 'istio.io/rev': rev } },
})
const revHook = (rev: string): V1MutatingWebhookConfiguration => ({
  metadata: { name: `istio-sidecar-injector-${rev}`, labels: { 'istio.io/rev': rev } },
})

/** A cluster of istiods and webhooks; label selectors `key` and `key=value` as the API server evaluates them. */
function cluster(o: { deployments: V1Deployment[]; hooks?: V1MutatingWebhookConfiguration[]; forbidHooks?: boolean }) {
  const selectors: string[] = []
  const api: ControlPlaneApi = {
    getNamespace: async () => ({}) as V1Namespace,
    listDeployments: async (ns) => o.deployments.filter((d) => d.metadata?.namespace === ns),
    listMutatingWebhookConfigurations: async (selector) => {
      selectors.push(selector)
      if (o.forbidHooks) {
        throw new ForbiddenError(
          'list MutatingWebhookConfigurations failed: the identity lacks the permission to list ' +
            'mutatingwebhookconfigurations.admissionregistration.k8s.io cluster-wide (...)',
          'list',
          'mutatingwebhookconfigurations',
          'admissionregistration.k8s.io',
          '',
        )
      }
      const [key, value] = selector.split('=') as [string, string | undefined]
      return (o.hooks ?? []).filter((h) => {
        const labels = h.metadata?.labels ?? {}
        return value === undefined ? key in labels : labels[key] === value
      })
    },
  }
  return { api, selectors }
}
const find = (api: ControlPlaneApi, labels: Record<string, string>, istioRevision = 'auto') =>
  findControlPlane(api, { istioNamespace: 'auto', istioRevision, appNamespaceLabels: labels, namespace: 'shop' })

const upgrade = [istiod('aks-istio-system', 'asm-1-29', '1.29.8'), istiod('aks-istio-system', 'asm-1-30', '1.30.5')]

describe('findControlPlane: revisions and revision tags', () => {
  it('a label naming a revision picks it without reading any webhook', async () => {
    const c = cluster({ deployments: upgrade, hooks: [tagHook('prod-stable', 'asm-1-29')] })
    const cp = await find(c.api, { 'istio.io/rev': 'asm-1-30' })
    assert.equal(cp?.revision, 'asm-1-30')
    assert.equal(cp?.version, '1.30.5')
    assert.equal(cp?.tag, undefined)
    assert.deepEqual(cp?.revisions, ['asm-1-29', 'asm-1-30'])
    assert.deepEqual(c.selectors, [])
  })

  it('a label naming a tag resolves through its webhook, found by label istio.io/tag=<tag>', async () => {
    const c = cluster({
      deployments: upgrade,
      hooks: [tagHook('prod-stable', 'asm-1-29'), tagHook('prod-canary', 'asm-1-30'), revHook('asm-1-29')],
    })
    const cp = await find(c.api, { 'istio.io/rev': 'prod-canary' })
    assert.equal(cp?.revision, 'asm-1-30')
    assert.equal(cp?.tag, 'prod-canary')
    assert.deepEqual(cp?.tags, { 'prod-canary': 'asm-1-30' })
    assert.deepEqual(c.selectors, ['istio.io/tag=prod-canary'])
  })

  it('istio-revision may be a tag; the namespace label (another tag) is resolved for the readiness check', async () => {
    const c = cluster({
      deployments: upgrade,
      hooks: [tagHook('prod-stable', 'asm-1-29'), tagHook('prod-canary', 'asm-1-30')],
    })
    const cp = await find(c.api, { 'istio.io/rev': 'prod-stable' }, 'prod-canary')
    assert.equal(cp?.revision, 'asm-1-30')
    assert.deepEqual(cp?.tags, { 'prod-canary': 'asm-1-30', 'prod-stable': 'asm-1-29' })
  })

  it('an unknown name: a ReadinessError listing the revisions and the tags, with both fixes', async () => {
    const c = cluster({ deployments: upgrade, hooks: [tagHook('prod-stable', 'asm-1-29')] })
    await assert.rejects(find(c.api, { 'istio.io/rev': 'prod' }), (err: unknown) => {
      assert.ok(err instanceof ReadinessError)
      assert.match(err.message, /label istio\.io\/rev=prod names no installed revision and no revision tag/)
      assert.match(err.message, /tags: prod-stable -> asm-1-29/)
      assert.match(err.message, /istioctl tag set prod --revision <revision> --istioNamespace aks-istio-system/)
      return true
    })
    const viaInput = cluster({ deployments: upgrade })
    await assert.rejects(
      find(viaInput.api, {}, 'asm-1-28'),
      /istio-revision 'asm-1-28' names no installed revision.*set istio-revision to one of them/,
    )
  })

  it('a tag pointing to a revision with no istiod, or to two revisions, is an error naming it', async () => {
    const gone = cluster({ deployments: upgrade, hooks: [tagHook('prod-stable', 'asm-1-28')] })
    await assert.rejects(
      find(gone.api, { 'istio.io/rev': 'prod-stable' }),
      /pointing to revision asm-1-28, which has no istiod here/,
    )
    const two = cluster({
      deployments: upgrade,
      hooks: [
        tagHook('x', 'asm-1-29'),
        {
          ...tagHook('x', 'asm-1-30'),
          metadata: { name: 'other', labels: { 'istio.io/tag': 'x', 'istio.io/rev': 'asm-1-30' } },
        },
      ],
    })
    await assert.rejects(find(two.api, { 'istio.io/rev': 'x' }), /point to different revisions \(asm-1-29, asm-1-30\)/)
  })

  it('no name: the tag default wins over the default revision when there are several (istioctl tag set default)', async () => {
    const oss = [istiod('istio-system', 'default', '1.29.8'), istiod('istio-system', '1-31-1', '1.31.1')]
    const tagged = cluster({ deployments: oss, hooks: [tagHook('default', '1-31-1')] })
    const cp = await find(tagged.api, { 'istio-injection': 'enabled' })
    assert.equal(cp?.revision, '1-31-1')
    assert.equal(cp?.tag, 'default')
    const untagged = cluster({ deployments: oss })
    assert.equal((await find(untagged.api, { 'istio-injection': 'enabled' }))?.revision, 'default')
    // a single revision needs no lookup at all (and so no permission)
    const single = cluster({ deployments: [istiod('istio-system', 'default', '1.31.1')] })
    assert.equal((await find(single.api, {}))?.revision, 'default')
    assert.deepEqual(single.selectors, [])
    // several, none default, no tag: an error, not "no control plane"
    await assert.rejects(
      find(cluster({ deployments: upgrade }).api, {}),
      /several Istio control plane revisions are installed/,
    )
  })

  it('a refused webhook list says which permission is missing and what it is for', async () => {
    const c = cluster({ deployments: upgrade, forbidHooks: true })
    await assert.rejects(find(c.api, { 'istio.io/rev': 'prod-stable' }), (err: unknown) => {
      assert.ok(err instanceof ForbiddenError)
      assert.equal(err.resource, 'mutatingwebhookconfigurations')
      assert.match(
        err.message,
        /needed to resolve the revision tag that namespace shop's label istio\.io\/rev=prod-stable may be; or set istio-revision/,
      )
      return true
    })
    // the namespace label's lookup for the readiness check is best effort: istio-revision decided
    const cp = await find(c.api, { 'istio.io/rev': 'prod-stable' }, 'asm-1-29')
    assert.equal(cp?.revision, 'asm-1-29')
    assert.deepEqual(cp?.tags, {})
  })
})
