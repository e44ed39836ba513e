// Kubernetes RBAC for the simulated API server, evaluated over the Role, ClusterRole, RoleBinding and
// ClusterRoleBinding objects (rbac.authorization.k8s.io/v1) held in the KubeStore, as the real authorizer does:
//  - kubernetes/kubernetes plugin/pkg/auth/authorizer/rbac/rbac.go (Authorize: allowed when any rule of any role
//    bound to the user or one of its groups allows the request; a binding whose role is missing adds
//    `RBAC: <kind> "<name>" not found` to the reason);
//  - pkg/registry/rbac/validation/rule.go (VisitRulesFor: ClusterRoleBindings for every request, RoleBindings of the
//    request's namespace only; subjects User / Group / ServiceAccount = "system:serviceaccount:<ns>:<name>");
//  - pkg/apis/rbac/v1/evaluation_helpers.go (VerbMatches, APIGroupMatches, ResourceMatches with "*", "resource/sub",
//    "*/sub"; ResourceNameMatches: an empty list matches every name, a non-empty one never matches a request
//    without a name such as list or create; NonResourceURLMatches with a trailing "*").
// Request attributes (verb from the HTTP method, list/watch/deletecollection on collections) come from
// staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go; server.ts derives them.
import { REFS } from './refs.js'
import type { KubeObject, KubeStore } from './store.js'

export const RBAC_GROUP = 'rbac.authorization.k8s.io'
export const ROLES = REFS.roles
export const CLUSTER_ROLES = REFS.clusterRoles
export const ROLE_BINDINGS = REFS.roleBindings
export const CLUSTER_ROLE_BINDINGS = REFS.clusterRoleBindings

export interface Attributes {
  user: string
  groups: string[]
  verb: string
  /** false: a non-resource URL such as /version, /apis, /openapi/v3. */
  resourceRequest: boolean
  apiGroup: string
  resource: string
  subresource: string
  name: string
  /** '' for cluster-scoped resources and cluster-wide lists. */
  namespace: string
  path: string
}

export interface PolicyRule {
  verbs?: string[]
  apiGroups?: string[]
  resources?: string[]
  resourceNames?: string[]
  nonResourceURLs?: string[]
}

interface Subject {
  kind?: string
  name?: string
  namespace?: string
}

const arr = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : [])

export function ruleAllows(a: Attributes, r: PolicyRule): boolean {
  const verbs = arr<string>(r.verbs)
  if (!verbs.includes('*') && !verbs.includes(a.verb)) return false
  if (!a.resourceRequest) {
    return arr<string>(r.nonResourceURLs).some(
      (u) => u === '*' || u === a.path || (u.endsWith('*') && a.path.startsWith(u.slice(0, -1))),
    )
  }
  const groups = arr<string>(r.apiGroups)
  if (!groups.includes('*') && !groups.includes(a.apiGroup)) return false
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource
  const resources = arr<string>(r.resources)
  const resourceOk = resources.some(
    (x) => x === '*' || x === combined || (a.subresource !== '' && x === `*/${a.subresource}`),
  )
  if (!resourceOk) return false
  const names = arr<string>(r.resourceNames)
  return names.length === 0 || names.includes(a.name)
}

function subjectMatches(s: Subject, user: string, groups: string[], bindingNamespace: string): boolean {
  switch (s.kind) {
    case 'User':
      return s.name === user
    case 'Group':
      return s.name !== undefined && groups.includes(s.name)
    case 'ServiceAccount':
      return user === `system:serviceaccount:${s.namespace || bindingNamespace}:${s.name ?? ''}`
    default:
      return false
  }
}

export interface Decision {
  allowed: boolean
  /** Empty, or "RBAC: ..." naming bindings whose role does not exist. */
  reason: string
}

export function authorize(store: KubeStore, a: Attributes): Decision {
  const errors: string[] = []
  const rulesOf = (kind: string, name: string, namespace: string | undefined): PolicyRule[] | undefined => {
    const role: KubeObject | undefined =
      kind === 'ClusterRole' ? store.get(CLUSTER_ROLES, undefined, name) : store.get(ROLES, namespace, name)
    if (!role) {
      errors.push(
        kind === 'ClusterRole'
          ? `clusterrole.rbac.authorization.k8s.io "${name}" not found`
          : `role.rbac.authorization.k8s.io "${name}" not found`,
      )
      return undefined
    }
    return arr<PolicyRule>(role['rules'])
  }
  const allowedBy = (binding: KubeObject, namespace: string | undefined): boolean => {
    const subjects = arr<Subject>(binding['subjects'])
    if (!subjects.some((s) => subjectMatches(s, a.user, a.groups, binding.metadata.namespace ?? ''))) return false
    const ref = (binding['roleRef'] ?? {}) as { kind?: string; name?: string }
    const rules = rulesOf(ref.kind ?? '', ref.name ?? '', namespace)
    return rules?.some((r) => ruleAllows(a, r)) ?? false
  }
  for (const b of store.list(CLUSTER_ROLE_BINDINGS)) if (allowedBy(b, undefined)) return { allowed: true, reason: '' }
  if (a.resourceRequest && a.namespace !== '') {
    for (const b of store.list(ROLE_BINDINGS, a.namespace))
      if (allowedBy(b, a.namespace)) return { allowed: true, reason: '' }
  }
  // utilerrors.NewAggregate(...).Error(): one error as is, several as "[a, b]".
  const aggregate = errors.length === 1 ? errors[0]! : `[${errors.join(', ')}]`
  return { allowed: false, reason: errors.length ? `RBAC: ${aggregate}` : '' }
}

/**
 * The message of the 403 (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go
 * forbiddenMessage).
 */
export function forbiddenMessage(a: Attributes): string {
  if (!a.resourceRequest) return `User "${a.user}" cannot ${a.verb} path "${a.path}"`
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource
  if (a.namespace)
    return (
      `User "${a.user}" cannot ${a.verb} resource "${resource}" in API group "${a.apiGroup}" ` +
      `in the namespace "${a.namespace}"`
    )
  return `User "${a.user}" cannot ${a.verb} resource "${resource}" in API group "${a.apiGroup}" at the cluster scope`
}

/**
 * The bootstrap policy every cluster has (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go):
 * cluster-admin for system:masters, and discovery / version / openapi for every authenticated user.
 */
export function seedBootstrapPolicy(store: KubeStore): void {
  const role = (name: string, rules: PolicyRule[]): void => {
    store.create(CLUSTER_ROLES, {
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: 'ClusterRole',
      metadata: { name, labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' } },
      rules,
    })
  }
  const bind = (name: string, roleName: string, group: string): void => {
    store.create(CLUSTER_ROLE_BINDINGS, {
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: 'ClusterRoleBinding',
      metadata: { name, labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' } },
      roleRef: { apiGroup: RBAC_GROUP, kind: 'ClusterRole', name: roleName },
      subjects: [{ apiGroup: RBAC_GROUP, kind: 'Group', name: group }],
    })
  }
  role('cluster-admin', [
    { apiGroups: ['*'], resources: ['*'], verbs: ['*'] },
    { nonResourceURLs: ['*'], verbs: ['*'] },
  ])
  bind('cluster-admin', 'cluster-admin', 'system:masters')
  role('system:discovery', [
    {
      nonResourceURLs: [
        '/api',
        '/api/*',
        '/apis',
        '/apis/*',
        '/healthz',
        '/livez',
        '/openapi',
        '/openapi/*',
        '/readyz',
        '/version',
        '/version/',
      ],
      verbs: ['get'],
    },
  ])
  bind('system:discovery', 'system:discovery', 'system:authenticated')
  role('system:public-info-viewer', [
    { nonResourceURLs: ['/healthz', '/livez', '/readyz', '/version', '/version/'], verbs: ['get'] },
  ])
  bind('system:public-info-viewer', 'system:public-info-viewer', 'system:authenticated')
  role('system:basic-user', [
    {
      apiGroups: ['authorization.k8s.io'],
      resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'],
      verbs: ['create'],
    },
  ])
  bind('system:basic-user', 'system:basic-user', 'system:authenticated')
}

/** The shipped manifests, deploy/rbac/<name>.yaml. */
export type RbacManifest = 'istio-canary' | 'analyze' | 'install-istio' | 'telemetry' | 'linkerd'

export const MANIFEST_PLACEHOLDERS = {
  user: '00000000-0000-0000-0000-000000000000',
  namespace: 'bookinfo',
  istioNamespace: 'istio-system',
}

/**
 * Stores the objects of deploy/rbac/*.yaml as `kubectl apply` would, after the substitutions its comments ask
 * for: the application namespace, the control plane's namespace and the identity (one User subject per name).
 */
export function applyRbacManifests(
  store: KubeStore,
  docs: KubeObject[],
  o: { users: string[]; namespace: string; istioNamespace: string },
): void {
  const refs: Record<string, { group: string; resource: string }> = {
    Role: ROLES,
    ClusterRole: CLUSTER_ROLES,
    RoleBinding: ROLE_BINDINGS,
    ClusterRoleBinding: CLUSTER_ROLE_BINDINGS,
  }
  for (const d of docs) {
    const ref = refs[d.kind ?? '']
    if (!ref) throw new Error(`deploy/rbac holds a ${String(d.kind)}, not an RBAC object`)
    const obj = structuredClone(d)
    const ns = obj.metadata.namespace
    if (ns === MANIFEST_PLACEHOLDERS.namespace) obj.metadata.namespace = o.namespace
    else if (ns === MANIFEST_PLACEHOLDERS.istioNamespace) obj.metadata.namespace = o.istioNamespace
    if (Array.isArray(obj['subjects'])) {
      obj['subjects'] = (obj['subjects'] as Subject[]).flatMap((s) =>
        s.kind === 'User' && s.name === MANIFEST_PLACEHOLDERS.user ? o.users.map((u) => ({ ...s, name: u })) : [s],
      )
    }
    const cur = store.get(ref, obj.metadata.namespace, obj.metadata.name)
    if (cur)
      store.update(ref, { ...obj, metadata: { ...obj.metadata, resourceVersion: cur.metadata.resourceVersion ?? '' } })
    else store.create(ref, obj)
  }
}
