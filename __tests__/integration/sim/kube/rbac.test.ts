// The simulated RBAC authorizer's rule matching and 403 messages, against the facts of the real one
// (see the sources cited in rbac.ts and server.ts).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  type Attributes,
  CLUSTER_ROLE_BINDINGS,
  authorize,
  forbiddenMessage,
  ruleAllows,
} from '../../../sim/kube/rbac.js'
import { requestAttributes } from '../../../sim/kube/server.js'
import { KubeStore } from '../../../sim/kube/store.js'

const attrs = (method: string, path: string): Attributes =>
  requestAttributes(method, new URL(path, 'https://x'), 'u', ['system:authenticated'])

describe('simulated RBAC', () => {
  it('derives verbs and scope as the apiserver does', () => {
    assert.deepEqual(
      [
        'GET /api/v1/namespaces/b/pods',
        'GET /api/v1/namespaces/b/pods/p',
        'GET /api/v1/pods?watch=true',
        'POST /api/v1/namespaces/b/pods',
        'PUT /api/v1/namespaces/b/pods/p',
        'PATCH /api/v1/namespaces/b/pods/p',
        'DELETE /api/v1/namespaces/b/pods',
        'DELETE /api/v1/namespaces/b/pods/p',
      ].map((s) => attrs(s.split(' ')[0]!, s.split(' ')[1]!).verb),
      ['list', 'get', 'watch', 'create', 'update', 'patch', 'deletecollection', 'delete'],
    )
    const ns = attrs('GET', '/api/v1/namespaces/bookinfo')
    assert.deepEqual([ns.resource, ns.name, ns.namespace], ['namespaces', 'bookinfo', 'bookinfo'])
    const status = attrs('PUT', '/apis/networking.istio.io/v1/namespaces/b/virtualservices/r/status')
    assert.deepEqual(
      [status.apiGroup, status.resource, status.subresource, status.name],
      ['networking.istio.io', 'virtualservices', 'status', 'r'],
    )
    assert.equal(attrs('GET', '/openapi/v3').resourceRequest, false)
    assert.equal(attrs('GET', '/apis/apps/v1').resourceRequest, false)
  })

  it('matches rules: *, subresources (resource/sub, */sub), resourceNames', () => {
    const put = attrs('PUT', '/apis/networking.istio.io/v1/namespaces/b/virtualservices/r/status')
    assert.equal(
      ruleAllows(put, { apiGroups: ['networking.istio.io'], resources: ['virtualservices'], verbs: ['update'] }),
      false,
    )
    assert.equal(
      ruleAllows(put, { apiGroups: ['networking.istio.io'], resources: ['virtualservices/status'], verbs: ['update'] }),
      true,
    )
    assert.equal(ruleAllows(put, { apiGroups: ['*'], resources: ['*/status'], verbs: ['*'] }), true)
    const proxy = attrs('GET', '/api/v1/namespaces/istio-system/services/prometheus:9090/proxy/api/v1/query')
    assert.equal(
      ruleAllows(proxy, {
        apiGroups: [''],
        resources: ['services/proxy'],
        verbs: ['get'],
        resourceNames: ['prometheus:9090'],
      }),
      true,
    )
    assert.equal(
      ruleAllows(proxy, { apiGroups: [''], resources: ['services/proxy'], verbs: ['get'], resourceNames: ['grafana'] }),
      false,
    )
    // a non-empty resourceNames never matches a request without a name (list, create)
    assert.equal(
      ruleAllows(attrs('GET', '/api/v1/namespaces/b/services'), {
        apiGroups: [''],
        resources: ['services'],
        verbs: ['list'],
        resourceNames: ['x'],
      }),
      false,
    )
    assert.equal(
      ruleAllows(attrs('GET', '/openapi/v3/apis/apps/v1'), { nonResourceURLs: ['/openapi/*'], verbs: ['get'] }),
      true,
    )
  })

  it('writes the real 403 texts, with the RBAC reason of a binding to a missing role', () => {
    const store = new KubeStore()
    store.create(CLUSTER_ROLE_BINDINGS, {
      metadata: { name: 'b' },
      roleRef: { kind: 'ClusterRole', name: 'gone' },
      subjects: [{ kind: 'User', name: 'u' }],
    })
    const a = attrs('GET', '/api/v1/namespaces/b/pods')
    assert.deepEqual(authorize(store, a), {
      allowed: false,
      reason: 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found',
    })
    assert.equal(forbiddenMessage(a), 'User "u" cannot list resource "pods" in API group "" in the namespace "b"')
    assert.equal(
      forbiddenMessage(attrs('GET', '/api/v1/nodes')),
      'User "u" cannot list resource "nodes" in API group "" at the cluster scope',
    )
    assert.equal(forbiddenMessage(attrs('GET', '/metrics')), 'User "u" cannot get path "/metrics"')
  })
})
