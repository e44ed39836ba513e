// A simulated kube-apiserver on loopback HTTPS, backed by KubeStore. It answers what a client such as
// @kubernetes/client-node uses (discovery, get/list/create/update/patch/delete, dry runs) with the
// response shapes, status codes and Status errors of a real 1.31 API server, plus fault injection.
// Layout: the served resources, Status errors, the patch algorithms, validation, admission, routing, authorization
// attributes and managedFields; then the request pipeline, one section per concern (authentication and
// authorization, discovery, faults, CRUD, status writes, patch requests, the service proxy), and last the
// dispatcher, KubeApiServer, whose handle() reads top to bottom.
import { createHash, randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { load } from 'js-yaml'
import { startHttps, sendJson } from '../net/https.js'
import type { TestPki } from '../net/tls.js'
import { REFS } from './refs.js'
import { GATEWAY_API_GROUP, defaultGatewayApi, defaultStatus, validateGatewayApi } from '../gateway/schema.js'
import { type KubeStore, StoreError, parseLabelSelector, type KubeObject, type ResourceRef } from './store.js'
import { type ServiceUpstreams, handleServiceProxy, parseServiceProxyPath } from './service-proxy.js'
import { type Attributes, RBAC_GROUP, authorize as rbacAuthorize, forbiddenMessage } from './rbac.js'

export interface KubeApiOptions {
  pki: TestPki
  store: KubeStore
  /** Maps a bearer token to a user, or undefined (=> 401). */
  authenticate: (token: string) => { user: string; groups?: string[] } | undefined
  /** Optional authorization of resource requests: false => 403 Forbidden like RBAC. */
  authorize?: (user: string, verb: string, ref: ResourceRef, namespace?: string) => boolean
  /**
   * Enforce Kubernetes RBAC over the Role/ClusterRole/RoleBinding/ClusterRoleBinding objects in the store
   * (see rbac.ts), for resource and non-resource requests alike. Every authenticated user is in the group
   * system:authenticated.
   */
  rbac?: boolean
  /** networking.istio.io versions served; default ['v1', 'v1beta1']; [] = Istio CRDs not installed. */
  istioVersions?: string[]
  /**
   * gateway.networking.k8s.io versions served (GatewayClass, Gateway, HTTPRoute): default [] (the Gateway API CRDs
   * are not part of a new AKS cluster); ['v1', 'v1beta1'] = the standard install of Gateway API >= 1.0 (v1 stored,
   * v1beta1 served); ['v1beta1'] = the CRDs of Gateway API 0.x.
   */
  gatewayApiVersions?: string[]
  /** In-cluster Services the service proxy forwards to: `namespace/name:port` -> upstream base URL. */
  serviceUpstreams?: ServiceUpstreams
  /** Emulate istiod's validating webhook (validation.istio.io) for VirtualServices. Default true. */
  istioValidation?: boolean
}

export interface RecordedRequest {
  method: string
  /** Path with query string, as sent. */
  path: string
  /**
   * 0 when the connection was reset by an injected fault (also when the request was applied and only its answer
   * lost).
   */
  status: number
  userAgent?: string
}

/**
 * A fault of the API server's next matching requests (a status, a reset, a lost answer); MeshFault is the data
 * plane's.
 */
export interface KubeFault {
  method?: string
  /** Tested against the path with its query string. */
  path?: RegExp
  /**
   * 'reset': dropped before it is served; 'lost-response': served (and applied), then the connection drops
   * unanswered.
   */
  status: number | 'reset' | 'lost-response' | 'ok'
  times: number
  retryAfterSeconds?: number
  /**
   * A slow path to the API server (an overloaded control plane, a far region): the request reaches the server only
   * after this long, then gets what the fault says ('ok': served as usual). A client that hung up meanwhile never
   * reaches it (nothing is applied), as a request cut off on the way in.
   */
  delayMs?: number
  /** A slow way back: the request is served (and applied) at once, its answer sent only after this long. */
  answerDelayMs?: number
  /** Called when a request takes this fault (as it arrives, before any delay): e.g. to cancel a run mid-request. */
  onMatch?: () => void
}

export interface KubeApi {
  url: string
  store: KubeStore
  requests: RecordedRequest[]
  /** Served networking.istio.io versions; may be changed while running (e.g. to simulate installing the CRDs). */
  istioVersions: string[]
  /** Served gateway.networking.k8s.io versions; may be changed while running (installing the CRDs). */
  gatewayApiVersions: string[]
  /** The next `times` requests matching (method, path) get this status, or a connection reset. */
  injectFault(f: KubeFault): void
  /** Drops the faults not yet used up. */
  clearFaults(): void
  close(): Promise<void>
}

type Obj = Record<string, unknown>

interface ResourceDef {
  group: string
  resource: string
  singular: string
  kind: string
  namespaced: boolean
  shortNames?: string[]
  categories?: string[]
  /** Has a status subresource: writes to the main resource keep the stored status. */
  status?: boolean
  /** Served from a CustomResourceDefinition (unstructured decoding, no unconditional update, no SMP). */
  custom?: boolean
}

const ADMISSION_GROUP = 'admissionregistration.k8s.io'
const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']
const ISTIO = 'networking.istio.io'
const ISTIO_CATEGORIES = ['istio-io', 'networking-istio-io']

const RESOURCES: ResourceDef[] = [
  {
    group: '',
    resource: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    namespaced: false,
    shortNames: ['ns'],
    status: true,
  },
  {
    group: '',
    resource: 'pods',
    singular: 'pod',
    kind: 'Pod',
    namespaced: true,
    shortNames: ['po'],
    categories: ['all'],
    status: true,
  },
  {
    group: '',
    resource: 'services',
    singular: 'service',
    kind: 'Service',
    namespaced: true,
    shortNames: ['svc'],
    categories: ['all'],
    status: true,
  },
  { group: '', resource: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'] },
  { group: '', resource: 'secrets', singular: 'secret', kind: 'Secret', namespaced: true },
  {
    group: '',
    resource: 'serviceaccounts',
    singular: 'serviceaccount',
    kind: 'ServiceAccount',
    namespaced: true,
    shortNames: ['sa'],
  },
  {
    group: 'apps',
    resource: 'deployments',
    singular: 'deployment',
    kind: 'Deployment',
    namespaced: true,
    shortNames: ['deploy'],
    categories: ['all'],
    status: true,
  },
  {
    group: 'apps',
    resource: 'replicasets',
    singular: 'replicaset',
    kind: 'ReplicaSet',
    namespaced: true,
    shortNames: ['rs'],
    categories: ['all'],
    status: true,
  },
  { group: 'coordination.k8s.io', resource: 'leases', singular: 'lease', kind: 'Lease', namespaced: true },
  {
    group: ISTIO,
    resource: 'virtualservices',
    singular: 'virtualservice',
    kind: 'VirtualService',
    namespaced: true,
    shortNames: ['vs'],
    categories: ISTIO_CATEGORIES,
    status: true,
    custom: true,
  },
  {
    group: ISTIO,
    resource: 'destinationrules',
    singular: 'destinationrule',
    kind: 'DestinationRule',
    namespaced: true,
    shortNames: ['dr'],
    categories: ISTIO_CATEGORIES,
    status: true,
    custom: true,
  },
  {
    group: ISTIO,
    resource: 'gateways',
    singular: 'gateway',
    kind: 'Gateway',
    namespaced: true,
    shortNames: ['gw'],
    categories: ISTIO_CATEGORIES,
    status: true,
    custom: true,
  },
  // Gateway API, from its CRDs (kubernetes-sigs/gateway-api config/crd/standard/gateway.networking.k8s.io_*.yaml):
  // names, scope, shortNames and categories as there; every version `subresources: status: {}`; v1 `storage: true`,
  // v1beta1 served from the same storage (one object, seen through either version).
  {
    group: GATEWAY_API_GROUP,
    resource: 'gatewayclasses',
    singular: 'gatewayclass',
    kind: 'GatewayClass',
    namespaced: false,
    shortNames: ['gc'],
    categories: ['gateway-api'],
    status: true,
    custom: true,
  },
  {
    group: GATEWAY_API_GROUP,
    resource: 'gateways',
    singular: 'gateway',
    kind: 'Gateway',
    namespaced: true,
    shortNames: ['gtw'],
    categories: ['gateway-api'],
    status: true,
    custom: true,
  },
  {
    group: GATEWAY_API_GROUP,
    resource: 'httproutes',
    singular: 'httproute',
    kind: 'HTTPRoute',
    namespaced: true,
    categories: ['gateway-api'],
    status: true,
    custom: true,
  },
  // Cluster-scoped, as the API server serves it; Istio's injector webhooks and `istioctl tag set`'s revision tags.
  {
    group: ADMISSION_GROUP,
    resource: 'mutatingwebhookconfigurations',
    singular: 'mutatingwebhookconfiguration',
    kind: 'MutatingWebhookConfiguration',
    namespaced: false,
    categories: ['api-extensions'],
  },
  { group: RBAC_GROUP, resource: 'roles', singular: 'role', kind: 'Role', namespaced: true },
  { group: RBAC_GROUP, resource: 'rolebindings', singular: 'rolebinding', kind: 'RoleBinding', namespaced: true },
  { group: RBAC_GROUP, resource: 'clusterroles', singular: 'clusterrole', kind: 'ClusterRole', namespaced: false },
  {
    group: RBAC_GROUP,
    resource: 'clusterrolebindings',
    singular: 'clusterrolebinding',
    kind: 'ClusterRoleBinding',
    namespaced: false,
  },
]

const VERSION_INFO = {
  major: '1',
  minor: '31',
  gitVersion: 'v1.31.2',
  gitCommit: '5864a4677267e6adeae276ad85882a8714d69d9d',
  gitTreeState: 'clean',
  buildDate: '2024-10-22T20:28:14Z',
  goVersion: 'go1.22.8',
  compiler: 'gc',
  platform: 'linux/amd64',
}

// ---------------------------------------------------------------------------------------------
// Status errors

interface Details {
  name?: string | undefined
  group?: string | undefined
  kind?: string | undefined
  uid?: string | undefined
  causes?: Array<{ reason: string; message: string; field?: string }>
  retryAfterSeconds?: number
}

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details: Details | null = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }

  get body(): Obj {
    const details = this.details ? dropEmpty(this.details) : undefined
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      ...(this.reason ? { reason: this.reason } : {}),
      ...(details ? { details } : {}),
      code: this.code,
    }
  }
}

function dropEmpty<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as T
}

const qualified = (def: ResourceDef): string => (def.group ? `${def.resource}.${def.group}` : def.resource)
const groupKind = (def: ResourceDef): string => (def.group ? `${def.kind}.${def.group}` : def.kind)

const notFound = (def: ResourceDef, name: string): ApiError =>
  new ApiError(404, 'NotFound', `${qualified(def)} "${name}" not found`, { name, group: def.group, kind: def.resource })
const pathNotFound = (): ApiError => new ApiError(404, 'NotFound', 'the server could not find the requested resource')
const badRequest = (message: string): ApiError => new ApiError(400, 'BadRequest', message)
const methodNotAllowed = (): ApiError =>
  new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
const conflict = (def: ResourceDef, name: string, why: string): ApiError =>
  new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(def)} "${name}": ${why}`, {
    name,
    group: def.group,
    kind: def.resource,
  })
const OPTIMISTIC_LOCK = 'the object has been modified; please apply your changes to the latest version and try again'

function invalid(
  def: ResourceDef,
  name: string,
  causes: Array<{ reason: string; field: string; message: string }>,
): ApiError {
  const text = causes.map((c) => `${c.field}: ${c.message}`).join(', ')
  const list = causes.length > 1 ? `[${text}]` : text
  return new ApiError(422, 'Invalid', `${groupKind(def)} "${name}" is invalid: ${list}`, {
    name,
    group: def.group,
    kind: def.kind,
    causes: causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field })),
  })
}

/** Maps a KubeStore error to the Status the real server sends for it. */
function fromStore(err: unknown, def: ResourceDef, name: string): unknown {
  if (!(err instanceof StoreError)) return err
  switch (err.reason) {
    case 'NotFound':
      return notFound(def, name)
    case 'AlreadyExists':
      return new ApiError(409, 'AlreadyExists', `${qualified(def)} "${name}" already exists`, {
        name,
        group: def.group,
        kind: def.resource,
      })
    case 'Conflict':
      return conflict(def, name, OPTIMISTIC_LOCK)
    default:
      return new ApiError(err.code, err.reason, err.message)
  }
}

// ---------------------------------------------------------------------------------------------
// JSON patch (RFC 6902) and merge patch (RFC 7386)

class PatchNotApplied extends Error {}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const MISSING = Symbol('missing')

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]))
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a)
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]))
  }
  return false
}

function pointer(path: unknown): string[] {
  if (typeof path !== 'string') throw new PatchNotApplied('missing path')
  if (path === '') return []
  if (!path.startsWith('/')) throw new PatchNotApplied(`invalid JSON pointer ${path}`)
  return path
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))
}

function arrayIndex(token: string, length: number, insert: boolean): number {
  if (insert && token === '-') return length
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new PatchNotApplied(`invalid array index ${token}`)
  const i = Number(token)
  if (i > length || (!insert && i === length)) throw new PatchNotApplied(`array index ${i} out of bounds`)
  return i
}

function resolve(doc: unknown, tokens: string[]): unknown {
  let cur = doc
  for (const t of tokens) {
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9][0-9]*)$/.test(t) || Number(t) >= cur.length) return MISSING
      cur = cur[Number(t)]
    } else if (isObj(cur) && Object.hasOwn(cur, t)) {
      cur = cur[t]
    } else {
      return MISSING
    }
  }
  return cur
}

function parentOf(doc: unknown, tokens: string[]): { parent: Obj | unknown[]; key: string } {
  const parent = resolve(doc, tokens.slice(0, -1))
  if (!Array.isArray(parent) && !isObj(parent)) throw new PatchNotApplied('doc is missing path')
  return { parent, key: tokens[tokens.length - 1]! }
}

function opAdd(doc: unknown, tokens: string[], value: unknown): unknown {
  if (tokens.length === 0) return value
  const { parent, key } = parentOf(doc, tokens)
  if (Array.isArray(parent)) parent.splice(arrayIndex(key, parent.length, true), 0, value)
  else parent[key] = value
  return doc
}

function opRemove(doc: unknown, tokens: string[]): unknown {
  if (tokens.length === 0) throw new PatchNotApplied('cannot remove the whole document')
  const { parent, key } = parentOf(doc, tokens)
  if (Array.isArray(parent)) parent.splice(arrayIndex(key, parent.length, false), 1)
  else if (Object.hasOwn(parent, key)) delete parent[key]
  else throw new PatchNotApplied(`remove operation does not apply: doc is missing key ${key}`)
  return doc
}

function opReplace(doc: unknown, tokens: string[], value: unknown): unknown {
  if (tokens.length === 0) return value
  const { parent, key } = parentOf(doc, tokens)
  if (Array.isArray(parent)) parent[arrayIndex(key, parent.length, false)] = value
  else if (Object.hasOwn(parent, key)) parent[key] = value
  else throw new PatchNotApplied(`replace operation does not apply: doc is missing key ${key}`)
  return doc
}

/**
 * Applies an RFC 6902 patch to a copy of doc. Throws ApiError 400 for an undecodable patch, PatchNotApplied
 * otherwise.
 */
export function applyJsonPatch(doc: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch')
  let out = structuredClone(doc)
  for (const raw of patch) {
    if (!isObj(raw)) throw badRequest('json: cannot unmarshal into Go value of type jsonpatch.Operation')
    const value = (): unknown => {
      if (!Object.hasOwn(raw, 'value')) throw new PatchNotApplied('missing value')
      return structuredClone(raw['value'])
    }
    const path = pointer(raw['path'])
    switch (raw['op']) {
      case 'add':
        out = opAdd(out, path, value())
        break
      case 'remove':
        out = opRemove(out, path)
        break
      case 'replace':
        out = opReplace(out, path, value())
        break
      case 'move':
      case 'copy': {
        const from = pointer(raw['from'])
        const v = resolve(out, from)
        if (v === MISSING)
          throw new PatchNotApplied(`${String(raw['op'])} operation does not apply: doc is missing from path`)
        if (raw['op'] === 'move') {
          if (path.length > from.length && from.every((t, i) => path[i] === t))
            throw new PatchNotApplied('cannot move into a child')
          out = opRemove(out, from)
        }
        out = opAdd(out, path, structuredClone(v))
        break
      }
      case 'test': {
        const want = value()
        const got = resolve(out, path)
        // Like evanphx/json-patch (used by the API server): a missing member tests equal to null.
        if (got === MISSING ? want !== null : !deepEqual(got, want)) {
          throw new PatchNotApplied(`testing value ${String(raw['path'])} failed: test failed`)
        }
        break
      }
      default:
        throw new PatchNotApplied(`Unexpected kind: ${String(raw['op'])}`)
    }
  }
  return out
}

/** RFC 7386 merge patch. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return structuredClone(patch)
  const out: Obj = isObj(target) ? { ...target } : {}
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else out[k] = applyMergePatch(out[k], v)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Validation: what decoding and the schemas reject

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/

function validateName(def: ResourceDef, name: string): void {
  const label = def.resource === 'namespaces'
  const ok = label ? DNS1123_LABEL.test(name) && name.length <= 63 : DNS1123_SUBDOMAIN.test(name) && name.length <= 253
  if (ok) return
  const message = label
    ? `Invalid value: "${name}": a lowercase RFC 1123 label must consist of lower case alphanumeric ` +
      "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', " +
      "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    : `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric ` +
      "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', " +
      "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
  throw invalid(def, name, [{ reason: 'FieldValueInvalid', field: 'metadata.name', message }])
}

/** What a decoder would reject: Go typed decoding (built-ins) or the CRD structural schema (Istio). */
function validateObject(def: ResourceDef, obj: KubeObject): void {
  const name = obj.metadata.name
  if (def.group === GATEWAY_API_GROUP) {
    // The CRD schema's defaults are written into what is stored (gateway/schema.ts), then its validation.
    defaultGatewayApi(def.resource, obj)
    const causes = validateGatewayApi(def.resource, obj)
    if (causes.length) throw invalid(def, name, causes)
  }
  if (def.resource === 'leases') {
    const spec = isObj(obj['spec']) ? obj['spec'] : {}
    for (const f of ['acquireTime', 'renewTime']) {
      const v = spec[f]
      if (v !== undefined && v !== null && (typeof v !== 'string' || !MICRO_TIME.test(v))) {
        const frac = typeof v === 'string' ? (/\.[0-9]*.*$/.exec(v)?.[0] ?? v) : String(v)
        throw badRequest(
          `Lease in version "v1" cannot be handled as a Lease: parsing time "${String(v)}" as ` +
            `"2006-01-02T15:04:05.000000Z07:00": cannot parse "${frac}" as ".000000"`,
        )
      }
    }
  }
  if (def.resource === 'virtualservices') {
    const causes: Array<{ reason: string; field: string; message: string }> = []
    const spec = obj['spec']
    const http = isObj(spec) ? spec['http'] : undefined
    if (http !== undefined && !Array.isArray(http)) {
      causes.push({
        reason: 'FieldValueTypeInvalid',
        field: 'spec.http',
        message: `Invalid value: "${typeof http}": spec.http in body must be of type array: "${typeof http}"`,
      })
    }
    ;(Array.isArray(http) ? http : []).forEach((r: unknown, i) => {
      const route = isObj(r) ? r['route'] : undefined
      ;(Array.isArray(route) ? route : []).forEach((d: unknown, j) => {
        const w = isObj(d) ? d['weight'] : undefined
        const field = `spec.http[${i}].route[${j}].weight`
        if (w !== undefined && !Number.isInteger(w)) {
          const t = typeof w === 'number' ? 'number' : typeof w
          causes.push({
            reason: 'FieldValueTypeInvalid',
            field,
            message: `Invalid value: "${t}": ${field} in body must be of type integer: "${t}"`,
          })
        }
      })
    })
    if (causes.length) throw invalid(def, name, causes)
  }
}

// ---------------------------------------------------------------------------------------------
// Admission: the validating webhook istiod registers for Istio config (validation.istio.io)

/** The checks of istiod's validating webhook (validation.istio.io) that matter for traffic shifting. */
function istioWebhook(obj: KubeObject): void {
  const spec = isObj(obj['spec']) ? obj['spec'] : {}
  const errs: string[] = []
  const hosts = spec['hosts']
  if (!Array.isArray(hosts) || hosts.length === 0) errs.push('virtual service must have at least one host')
  const http = Array.isArray(spec['http']) ? spec['http'] : []
  for (const r of http) {
    if (!isObj(r)) continue
    const route = Array.isArray(r['route']) ? r['route'] : []
    if (route.length === 0 && r['redirect'] === undefined && r['directResponse'] === undefined) {
      errs.push('HTTP route, redirect or direct_response is required')
    }
    let total = 0
    for (const d of route) {
      const dest = isObj(d) ? d['destination'] : undefined
      if (!isObj(dest)) errs.push('destination is required')
      else if (typeof dest['host'] !== 'string' || dest['host'] === '') errs.push('domain name "" invalid (empty)')
      const w = isObj(d) && typeof d['weight'] === 'number' ? d['weight'] : 0
      if (w < 0) errs.push(`weight ${w} < 0`)
      total += w
    }
    // Since Istio 1.15 weights are relative: only a zero total across several destinations is denied
    // (istio/istio pkg/config/validation/validation.go, validateRouteDestinations / validateWeight).
    if (route.length > 1 && total === 0) errs.push('total destination weight = 0')
    // Match header names: Istio's webhook denies names outside ^[-_A-Za-z0-9]+$ (e.g. x.canary).
    for (const m of Array.isArray(r['match']) ? r['match'] : []) {
      const headers = isObj(m) && isObj(m['headers']) ? m['headers'] : {}
      for (const h of Object.keys(headers))
        if (!/^[-_A-Za-z0-9]+$/.test(h)) errs.push(`header name ${h} is not a valid header name`)
    }
  }
  if (errs.length) {
    throw new ApiError(
      400,
      '',
      `admission webhook "validation.istio.io" denied the request: configuration is invalid: ${errs.join(', ')}`,
      null,
    )
  }
}

/**
 * Validating admission: istiod's webhook (validation.istio.io) sees VirtualService creates and updates (not
 * writes of their status subresource) unless the server runs without it (istioValidation: false).
 */
function admit(b: Backend, route: ResourceRoute, obj: KubeObject): void {
  if (route.def.resource === 'virtualservices' && b.istioValidation && route.subresource !== 'status') istioWebhook(obj)
}

// ---------------------------------------------------------------------------------------------
// Request routing

interface ResourceRoute {
  def: ResourceDef
  version: string
  namespace: string | undefined
  name: string | undefined
  subresource: string | undefined
}

/** The versions of the CRD-served groups installed now (KubeApi.istioVersions, KubeApi.gatewayApiVersions). */
interface Served {
  istio: string[]
  gatewayApi: string[]
}

const servedOf = (api: KubeApi): Served => ({ istio: api.istioVersions, gatewayApi: api.gatewayApiVersions })

function groupVersions(group: string, served: Served): string[] {
  if (group === '' || group === 'apps' || group === 'coordination.k8s.io' || group === RBAC_GROUP) return ['v1']
  if (group === ADMISSION_GROUP) return ['v1']
  if (group === ISTIO) return served.istio
  if (group === GATEWAY_API_GROUP) return served.gatewayApi
  return []
}

/**
 * The resource a path names, as the apiserver's installed routes match it: /api/v1/... or /apis/<g>/<v>/...,
 * `namespaces/<ns>/` before a namespaced resource, then resource[/name[/status]]; 404 for anything not served.
 */
function parseResource(segs: string[], served: Served): ResourceRoute {
  let group: string
  let version: string
  let rest: string[]
  if (segs[0] === 'api' && segs[1] === 'v1') {
    group = ''
    version = 'v1'
    rest = segs.slice(2)
  } else if (segs[0] === 'apis' && segs.length >= 4) {
    group = segs[1]!
    version = segs[2]!
    rest = segs.slice(3)
  } else {
    throw pathNotFound()
  }
  if (!groupVersions(group, served).includes(version)) throw pathNotFound()
  const find = (resource: string | undefined): ResourceDef | undefined =>
    RESOURCES.find((r) => r.group === group && r.resource === resource)
  let namespace: string | undefined
  const nsDef = rest[0] === 'namespaces' && rest.length >= 3 ? find(rest[2]) : undefined
  if (nsDef?.namespaced) {
    namespace = rest[1]
    rest = rest.slice(2)
  }
  const [resource, name, subresource, ...extra] = rest
  const def = find(resource)
  if (!def || extra.length > 0 || (namespace !== undefined && !def.namespaced)) throw pathNotFound()
  if (def.namespaced && namespace === undefined && name !== undefined) throw pathNotFound()
  if (subresource !== undefined && (subresource !== 'status' || !def.status)) throw pathNotFound()
  return { def, version, namespace, name, subresource }
}

function apiVersionOf(def: ResourceDef, version: string): string {
  return def.group ? `${def.group}/${version}` : version
}

function bodyObject(req: IncomingMessage, body: Buffer): unknown {
  const type = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim()
  const text = body.toString('utf8')
  try {
    return type === 'application/yaml' ? load(text) : JSON.parse(text)
  } catch (err) {
    throw badRequest(`error decoding request body: ${(err as Error).message}`)
  }
}

/** Parses the body of a create/update into an object of this resource, checking its type metadata. */
function decodeObject(route: ResourceRoute, raw: unknown): KubeObject {
  const { def, version } = route
  if (!isObj(raw)) throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(raw)}'`)
  const want = apiVersionOf(def, version)
  if (def.custom && (typeof raw['kind'] !== 'string' || raw['kind'] === '')) {
    throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(raw)}'`)
  }
  if (raw['apiVersion'] !== undefined && raw['apiVersion'] !== want) {
    throw badRequest(
      `the API version in the data (${String(raw['apiVersion'])}) does not match the expected API version (${want})`,
    )
  }
  if (raw['kind'] !== undefined && raw['kind'] !== def.kind) {
    throw badRequest(`the kind in the data (${String(raw['kind'])}) does not match the expected kind (${def.kind})`)
  }
  const metadata = isObj(raw['metadata']) ? { ...raw['metadata'] } : {}
  return { ...raw, apiVersion: want, kind: def.kind, metadata: metadata as KubeObject['metadata'] }
}

/** The object as served at this version. */
function present(def: ResourceDef, version: string, obj: KubeObject): KubeObject {
  return { ...obj, apiVersion: apiVersionOf(def, version), kind: def.kind }
}

function parseFieldSelector(def: ResourceDef, selector: string | null): (o: KubeObject) => boolean {
  if (!selector) return () => true
  const tests = selector.split(',').map((term) => {
    const m = /^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(term)
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${term}'`)
    const [, field, op, value] = m as unknown as [string, string, string, string]
    const get = fieldGetter(def, field)
    return (o: KubeObject): boolean => (op === '!=' ? get(o) !== value : get(o) === value)
  })
  return (o) => tests.every((t) => t(o))
}

function fieldGetter(def: ResourceDef, field: string): (o: KubeObject) => string {
  if (field === 'metadata.name') return (o) => o.metadata.name
  if (field === 'metadata.namespace') return (o) => o.metadata.namespace ?? ''
  const sub =
    (path: string[]) =>
    (o: KubeObject): string => {
      let cur: unknown = o
      for (const p of path) cur = isObj(cur) ? cur[p] : undefined
      return typeof cur === 'string' ? cur : ''
    }
  if (
    def.resource === 'pods' &&
    ['status.phase', 'spec.nodeName', 'spec.serviceAccountName', 'status.podIP'].includes(field)
  ) {
    return sub(field.split('.'))
  }
  if (def.resource === 'secrets' && field === 'type') return sub(['type'])
  if (def.custom)
    throw badRequest(`"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"`)
  throw badRequest(`field label not supported: ${field}`)
}

function statusSuccess(def: ResourceDef, obj: KubeObject): Obj {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    details: dropEmpty({ name: obj.metadata.name, group: def.group, kind: def.resource, uid: obj.metadata.uid }),
  }
}

const randomSuffix = (n: number): string => {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789'
  let s = ''
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)]
  return s
}

// ---------------------------------------------------------------------------------------------
// Authorization attributes of a request, resolved from the path alone before any routing (as the apiserver's
// filter chain does: WithRequestInfo + WithAuthorization run before the handlers, so a request the user may not
// make is 403 even where the resource is not served). kubernetes/kubernetes
// staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go (NewRequestInfo):
//   /api/v1/..., /apis/<group>/<version>/...; `namespaces/<ns>/<resource>/...` sets the namespace, and so does
//   `namespaces/<ns>` itself (a get of Namespace "x" is in the namespace "x"); parts = resource/name/subresource;
//   verb from the method: POST create, GET/HEAD get, PUT update, PATCH patch, DELETE delete; GET without a name
//   is list (watch with ?watch=true), DELETE without a name deletecollection. Anything else is a non-resource
//   request (verb = lower-case method, checked against nonResourceURLs).

const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize'])

export function requestAttributes(method: string, url: URL, user: string, groups: string[]): Attributes {
  const path = url.pathname
  const httpVerb = method === 'HEAD' ? 'get' : method.toLowerCase()
  const base = { user, groups, path, apiGroup: '', resource: '', subresource: '', name: '', namespace: '' }
  const nonResource: Attributes = { ...base, verb: httpVerb, resourceRequest: false }
  const parts = path
    .split('/')
    .filter(Boolean)
    .map((p) => decodeURIComponent(p))
  let rest: string[]
  let apiGroup = ''
  if (parts[0] === 'api' && parts.length >= 3) rest = parts.slice(2)
  else if (parts[0] === 'apis' && parts.length >= 4) {
    apiGroup = parts[1]!
    rest = parts.slice(3)
  } else return nonResource
  let namespace = ''
  if (rest[0] === 'namespaces' && rest.length > 1) {
    namespace = rest[1]!
    if (rest.length > 2 && !NAMESPACE_SUBRESOURCES.has(rest[2]!)) rest = rest.slice(2)
  }
  const [resource = '', name = '', subresource = ''] = rest
  const verbs: Record<string, string> = {
    POST: 'create',
    GET: 'get',
    HEAD: 'get',
    PUT: 'update',
    PATCH: 'patch',
    DELETE: 'delete',
  }
  let verb = verbs[method] ?? httpVerb
  if (name === '') {
    const watch = url.searchParams.get('watch')
    if (verb === 'get') verb = watch === 'true' || watch === '1' ? 'watch' : 'list'
    else if (verb === 'delete') verb = 'deletecollection'
  }
  return { ...base, verb, resourceRequest: true, apiGroup, resource, subresource, name, namespace }
}

// ---------------------------------------------------------------------------------------------
// managedFields, as the apiserver's field manager records them for non-apply writes
// (staging/src/k8s.io/apimachinery/pkg/util/managedfields, ManagedFieldsEntry in pkg/apis/meta/v1/types.go):
// one entry per (manager, operation, subresource) with apiVersion, time (RFC 3339, seconds), fieldsType FieldsV1
// and the fields it owns as a FieldsV1 set ("f:<name>" per map key, {} for a leaf). The manager is the
// `fieldManager` query parameter, else the user agent up to its first "/" (prefixFromUserAgent).
// Simplification: lists are atomic leaves (as for a CRD without list-type markers, like Istio's); an update gives
// its manager the fields it changed and takes them from other managers' sets (fields it removes stay listed).

export interface ManagedFieldsEntry {
  manager: string
  operation: 'Update' | 'Apply'
  apiVersion: string
  time: string
  fieldsType: 'FieldsV1'
  fieldsV1: Obj
  subresource?: string
}

const IGNORED_META = new Set([
  'resourceVersion',
  'managedFields',
  'generation',
  'uid',
  'creationTimestamp',
  'selfLink',
  'name',
  'namespace',
])

/** FieldsV1 of the leaves that differ between a and b (all of b's when a is undefined). */
function changedFields(a: unknown, b: unknown, top = true): Obj | undefined {
  if (isObj(b) && (isObj(a) || a === undefined)) {
    const out: Obj = {}
    for (const [k, v] of Object.entries(b)) {
      if (top && (k === 'apiVersion' || k === 'kind')) continue
      if (top && k === 'metadata' && isObj(v)) {
        const meta = Object.fromEntries(Object.entries(v).filter(([mk]) => !IGNORED_META.has(mk)))
        const prev =
          isObj(a) && isObj(a['metadata'])
            ? Object.fromEntries(Object.entries(a['metadata']).filter(([mk]) => !IGNORED_META.has(mk)))
            : undefined
        const f = changedFields(prev, meta, false)
        if (f && Object.keys(f).length) out['f:metadata'] = f
        continue
      }
      const f = changedFields(isObj(a) ? a[k] : undefined, v, false)
      if (f) out[`f:${k}`] = f
    }
    return Object.keys(out).length || a === undefined ? out : undefined
  }
  return deepEqual(a, b) ? undefined : {}
}

function mergeFields(a: Obj, b: Obj): Obj {
  const out: Obj = { ...a }
  for (const [k, v] of Object.entries(b)) out[k] = isObj(out[k]) && isObj(v) ? mergeFields(out[k] as Obj, v) : v
  return out
}

export function recordManagedFields(
  prev: KubeObject | undefined,
  next: KubeObject,
  manager: string,
  subresource: string | undefined,
  now = new Date(),
): void {
  const entries = (
    Array.isArray(next.metadata['managedFields'])
      ? next.metadata['managedFields']
      : Array.isArray(prev?.metadata['managedFields'])
        ? prev.metadata['managedFields']
        : []
  ) as ManagedFieldsEntry[]
  const fields = changedFields(prev, next) ?? {}
  if (prev && Object.keys(fields).length === 0) {
    next.metadata['managedFields'] = entries
    return
  }
  const time = now.toISOString().replace(/\.\d+Z$/, 'Z')
  const same = (e: ManagedFieldsEntry): boolean =>
    e.manager === manager && e.operation === 'Update' && (e.subresource ?? '') === (subresource ?? '')
  const old = entries.find(same)
  const entry: ManagedFieldsEntry = {
    manager,
    operation: 'Update',
    apiVersion: String(next.apiVersion ?? ''),
    time,
    fieldsType: 'FieldsV1',
    fieldsV1: old ? mergeFields(old.fieldsV1, fields) : fields,
    ...(subresource ? { subresource } : {}),
  }
  // The fields it changed are its alone now: taken from every other manager's set (structured-merge-diff's Updater
  // .update forces an update's changes over other managers).
  const changed = fieldsLeaves(fields).map(pathKey)
  const under = (q: string): boolean => changed.some((c) => q === c || q.startsWith(`${c}.`))
  const others = entries
    .filter((e) => !same(e))
    .map((e) => {
      const leaves = fieldsLeaves(e.fieldsV1)
      const kept = leaves.filter((l) => !under(pathKey(l)))
      return kept.length === leaves.length ? e : { ...e, fieldsV1: toFieldsV1(kept) }
    })
    .filter((e) => fieldsLeaves(e.fieldsV1).length > 0)
  next.metadata['managedFields'] = [...others, entry]
}

// ---------------------------------------------------------------------------------------------
// Authentication and authorization

/** Who made a request, as the authenticators resolve it. */
interface User {
  user: string
  groups: string[]
}

/**
 * Bearer-token authentication: an unknown or missing token is 401 Unauthorized (with no details), like the
 * apiserver's WithAuthentication filter. The authenticator adds system:authenticated to every authenticated user
 * (apiserver's AuthenticatedGroupAdder).
 */
function authenticate(opts: KubeApiOptions, req: IncomingMessage): User {
  const auth = req.headers.authorization ?? ''
  const m = /^Bearer\s+(.+)$/i.exec(auth)
  const who = m ? opts.authenticate(m[1]!.trim()) : undefined
  if (!who) throw new ApiError(401, 'Unauthorized', 'Unauthorized', null)
  return { user: who.user, groups: [...new Set([...(who.groups ?? []), 'system:authenticated'])] }
}

/**
 * The tests' knob of the simulated istioctl (findings to report) is not a read the real istioctl makes: it is
 * exempt from authorization.
 */
function isSimulationKnob(method: string, req: IncomingMessage, url: URL): boolean {
  return (
    method === 'GET' &&
    req.headers['x-simulation-knob'] === 'analyze-findings' &&
    url.pathname.endsWith('/configmaps/istioctl-analyze-findings')
  )
}

/**
 * The WithAuthorization filter: with `rbac`, Kubernetes RBAC over the store's Roles and bindings (rbac.ts) for
 * every request; else the optional `authorize` callback for resource requests. A denial is 403 Forbidden.
 */
function authorizeOrThrow(opts: KubeApiOptions, a: Attributes): void {
  if (opts.rbac) {
    const d = rbacAuthorize(opts.store, a)
    if (!d.allowed) throw forbidden(a, d.reason)
    return
  }
  if (!opts.authorize || !a.resourceRequest) return
  const ns = a.namespace === '' ? undefined : a.namespace
  if (!opts.authorize(a.user, a.verb, { group: a.apiGroup, resource: a.resource }, ns)) throw forbidden(a, '')
}

/** apierrors.NewForbidden(GroupResource{group, resource}, name, err): the Status of a 403. */
function forbidden(a: Attributes, reason: string): ApiError {
  const message = `${forbiddenMessage(a)}${reason ? `: ${reason}` : ''}`
  if (!a.resourceRequest || a.resource === '') return new ApiError(403, 'Forbidden', `forbidden: ${message}`, {})
  const qualifiedResource = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource
  const subject = a.name ? `${qualifiedResource} "${a.name}"` : qualifiedResource
  return new ApiError(403, 'Forbidden', `${subject} is forbidden: ${message}`, {
    name: a.name || undefined,
    group: a.apiGroup,
    kind: a.resource,
  })
}

// ---------------------------------------------------------------------------------------------
// Discovery: /version, /api, /apis and /openapi, for the groups and versions served (networking.istio.io only
// in the versions of `served`, which may change while running)

/** The preferred version of a group, as in its APIGroup: the most stable one served. */
function preferredVersion(group: string, served: Served): string | undefined {
  const vs = groupVersions(group, served)
  return ['v1', 'v1beta1', 'v1alpha3'].find((v) => vs.includes(v)) ?? vs[0]
}

/** An APIGroup (the body of /apis/<group> and an entry of the APIGroupList at /apis). */
function apiGroupInfo(group: string, served: Served): Obj {
  const pv = preferredVersion(group, served)!
  return {
    name: group,
    versions: groupVersions(group, served).map((v) => ({ groupVersion: `${group}/${v}`, version: v })),
    preferredVersion: { groupVersion: `${group}/${pv}`, version: pv },
  }
}

/** The named groups served (the core group "" is discovered at /api, not /apis). */
function servedGroups(served: Served): string[] {
  // CRD groups come last, by name (their APIServices' groupPriorityMinimum 1000, ties sorted by name).
  return ['apps', 'coordination.k8s.io', ADMISSION_GROUP, RBAC_GROUP, GATEWAY_API_GROUP, ISTIO].filter(
    (g) => groupVersions(g, served).length > 0,
  )
}

/** The APIResourceList of a group version (/api/v1, /apis/<g>/<v>): each resource, then its status subresource. */
function resourceList(group: string, version: string): Obj {
  const resources: Obj[] = []
  for (const d of RESOURCES.filter((r) => r.group === group)) {
    const verbs = d.resource === 'namespaces' ? ALL_VERBS.filter((v) => v !== 'deletecollection') : ALL_VERBS
    resources.push(
      dropEmpty({
        name: d.resource,
        singularName: d.singular,
        namespaced: d.namespaced,
        kind: d.kind,
        verbs,
        shortNames: d.shortNames,
        categories: d.categories,
      }),
    )
    if (d.status) {
      resources.push({
        name: `${d.resource}/status`,
        singularName: '',
        namespaced: d.namespaced,
        kind: d.kind,
        verbs: ['get', 'patch', 'update'],
      })
    }
  }
  return group === ''
    ? { kind: 'APIResourceList', groupVersion: version, resources }
    : { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: `${group}/${version}`, resources }
}

// Minimal OpenAPI, enough for kubectl apply's validation (kubectl 1.32 fetches /openapi/v3, the index of
// per-group-version documents at their serverRelativeURL, falling back to /openapi/v2): k8s.io/kube-openapi
// pkg/handler3 serves {"paths": {"apis/<g>/<v>": {"serverRelativeURL": "/openapi/v3/apis/<g>/<v>?hash=<etag>"}}};
// each document carries the operations (with their query parameters, e.g. fieldValidation, which kubectl
// checks before asking for server-side field validation) and components.schemas tagged with
// x-kubernetes-group-version-kind. Schemas here preserve unknown fields (the server validates).

/** The group versions with an OpenAPI v3 document ("api/v1", "apis/<g>/<v>"). */
function openapiGroupVersions(served: Served): string[] {
  return ['api/v1', ...servedGroups(served).flatMap((g) => groupVersions(g, served).map((v) => `apis/${g}/${v}`))]
}

/** The OpenAPI v3 document of one group version: its operations and its kinds' schemas. */
function openapiDoc(gv: string): Obj {
  const [group, version] = gv === 'api/v1' ? ['', 'v1'] : (gv.slice(5).split('/') as [string, string])
  const paths: Obj = {}
  const schemas: Obj = {}
  const param = (name: string): Obj => ({ name, in: 'query', schema: { type: 'string', uniqueItems: true } })
  const writeParams = ['dryRun', 'fieldManager', 'fieldValidation'].map(param)
  for (const d of RESOURCES.filter((r) => r.group === group)) {
    const ref = `${d.group || 'core'}.${version}.${d.kind}`
    schemas[ref] = {
      type: 'object',
      'x-kubernetes-group-version-kind': [{ group: d.group, version, kind: d.kind }],
      'x-kubernetes-preserve-unknown-fields': true,
    }
    const body = { content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } } }
    const base = `/${gv}${d.namespaced ? '/namespaces/{namespace}' : ''}/${d.resource}`
    paths[base] = {
      get: { parameters: ['labelSelector', 'fieldSelector', 'watch'].map(param) },
      post: { parameters: writeParams, requestBody: body },
    }
    // kubectl (staging/src/k8s.io/cli-runtime/pkg/resource/query_param_verifier_v3.go) finds the PATCH operation
    // of a kind by its x-kubernetes-group-version-kind extension and looks for fieldValidation among its parameters.
    const gvk = { 'x-kubernetes-group-version-kind': { group: d.group, version, kind: d.kind } }
    paths[`${base}/{name}`] = {
      get: { ...gvk, 'x-kubernetes-action': 'get' },
      put: { ...gvk, 'x-kubernetes-action': 'put', parameters: writeParams, requestBody: body },
      patch: { ...gvk, 'x-kubernetes-action': 'patch', parameters: [...writeParams, param('force')] },
      delete: { ...gvk, 'x-kubernetes-action': 'delete', parameters: [param('dryRun')] },
    }
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: VERSION_INFO.gitVersion },
    paths,
    components: { schemas },
  }
}

/** The hash in a serverRelativeURL: the document's SHA-512, upper-case hex, as kube-openapi's handler3 sets it. */
function openapiEtag(gv: string): string {
  return createHash('sha512')
    .update(JSON.stringify(openapiDoc(gv)))
    .digest('hex')
    .slice(0, 128)
    .toUpperCase()
}

/** /openapi/v3 (the index), /openapi/v3/<gv> (a document) and an empty /openapi/v2; undefined for other paths. */
function openapi(segs: string[], served: Served): Obj | undefined {
  if (segs[0] === 'openapi' && segs[1] === 'v3') {
    const gvs = openapiGroupVersions(served)
    if (segs.length === 2) {
      return {
        paths: Object.fromEntries(
          gvs.map((gv) => [gv, { serverRelativeURL: `/openapi/v3/${gv}?hash=${openapiEtag(gv)}` }]),
        ),
      }
    }
    const gv = segs.slice(2).join('/')
    if (!gvs.includes(gv)) throw pathNotFound()
    return openapiDoc(gv)
  }
  if (segs.length === 2 && segs[0] === 'openapi' && segs[1] === 'v2') {
    return {
      swagger: '2.0',
      info: { title: 'Kubernetes', version: VERSION_INFO.gitVersion },
      paths: {},
      definitions: {},
    }
  }
  return undefined
}

/** /version, /api (APIVersions), /api/v1, /apis (APIGroupList), /apis/<g>, /apis/<g>/<v>; undefined otherwise. */
function apiDiscovery(segs: string[], served: Served): Obj | undefined {
  if (segs.length === 1 && segs[0] === 'version') return VERSION_INFO
  if (segs.length === 1 && segs[0] === 'api') {
    return {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '10.224.0.4:443' }],
    }
  }
  if (segs.length === 2 && segs[0] === 'api' && segs[1] === 'v1') return resourceList('', 'v1')
  if (segs.length === 1 && segs[0] === 'apis') {
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: servedGroups(served).map((g) => apiGroupInfo(g, served)),
    }
  }
  if (segs.length === 2 && segs[0] === 'apis') {
    if (!servedGroups(served).includes(segs[1]!)) throw pathNotFound()
    return { kind: 'APIGroup', apiVersion: 'v1', ...apiGroupInfo(segs[1]!, served) }
  }
  if (segs.length === 3 && segs[0] === 'apis') {
    if (!groupVersions(segs[1]!, served).includes(segs[2]!)) throw pathNotFound()
    return resourceList(segs[1]!, segs[2]!)
  }
  return undefined
}

/** The discovery document at this path, undefined when the path is not a discovery path. */
function discovery(segs: string[], served: Served): Obj | undefined {
  return openapi(segs, served) ?? apiDiscovery(segs, served)
}

// ---------------------------------------------------------------------------------------------
// Faults: the KubeFault queue, and what a matching request gets (a Status, a reset, a lost answer)

/** The faults injected and not used up: a request takes the first matching one, which counts down its `times`. */
class FaultQueue {
  private readonly faults: KubeFault[] = []

  inject(f: KubeFault): void {
    if (f.times > 0) this.faults.push({ ...f })
  }

  clear(): void {
    this.faults.length = 0
  }

  take(method: string, path: string): KubeFault | undefined {
    const f = this.faults.find(
      (x) =>
        (x.method === undefined || x.method.toUpperCase() === method) && (x.path === undefined || x.path.test(path)),
    )
    if (f && --f.times <= 0) this.faults.splice(this.faults.indexOf(f), 1)
    return f
  }
}

/**
 * The Status of an injected status fault, as the real server (or an overloaded one) sends it: 429 from API
 * Priority and Fairness with Retry-After, an etcd timeout 500, a 503 (Retry-After only when asked), a 504 Timeout.
 */
function faultError(status: number, retryAfterSeconds: number | undefined): ApiError {
  const retry = retryAfterSeconds ?? 1
  switch (status) {
    case 429:
      return new ApiError(
        429,
        'TooManyRequests',
        'Too many requests, please try again later.',
        { retryAfterSeconds: retry },
        {
          'retry-after': String(retry),
        },
      )
    case 500:
      return new ApiError(500, 'InternalError', 'Internal error occurred: etcdserver: request timed out', {
        causes: [{ reason: '', message: 'etcdserver: request timed out' }],
      })
    case 503:
      return new ApiError(
        503,
        'ServiceUnavailable',
        'the server is currently unable to handle the request',
        {},
        retryAfterSeconds !== undefined ? { 'retry-after': String(retry) } : {},
      )
    case 504:
      return new ApiError(
        504,
        'Timeout',
        'the server was unable to return a response in the time allotted, but may still be processing the request',
      )
    default:
      return new ApiError(status, status >= 500 ? 'InternalError' : 'BadRequest', `injected fault: HTTP ${status}`)
  }
}

/** A status fault answers before anything else is checked (even authentication); the others do not throw. */
function throwInjectedStatus(fault: KubeFault | undefined): void {
  if (fault && typeof fault.status === 'number') {
    throw faultError(fault.status, fault.retryAfterSeconds)
  }
}

/** A reset, or an answer lost on the way: the connection drops unanswered, recorded with status 0. */
function dropConnection(req: IncomingMessage, record: (status: number) => void): void {
  record(0)
  req.socket.destroy()
}

// ---------------------------------------------------------------------------------------------
// CRUD: get, list, create, update (PUT), delete and deletecollection, with dry runs (?dryRun=All: validated and
// admitted, not stored) and resourceVersion conflicts (optimistic concurrency)

/** What the resource handlers share: the store and the server's settings and counters. */
interface Backend {
  readonly store: KubeStore
  /** Emulate istiod's validating webhook (KubeApiOptions.istioValidation). */
  readonly istioValidation: boolean
  /** The next free ClusterIP of the service CIDR. */
  allocateClusterIP(): string
}

/** The write's settings from its request: `dryRun=All`, and the field manager its managedFields entry names. */
interface Write {
  dryRun: boolean
  manager: string
}

const refOf = (def: ResourceDef): ResourceRef => ({ group: def.group, resource: def.resource })

/** The dryRun query parameter: only "All" is accepted (400 otherwise); present => a dry run. */
function dryRunOf(q: URLSearchParams): boolean {
  const values = q.getAll('dryRun')
  for (const v of values) if (v !== 'All') throw badRequest(`Invalid dryRun value: "${v}"; accepted values: All`)
  return values.length > 0
}

/** The `fieldManager` query parameter, else the user agent up to its first "/" (prefixFromUserAgent). */
function fieldManagerOf(q: URLSearchParams, req: IncomingMessage): string {
  const ua = req.headers['user-agent'] ?? ''
  return q.get('fieldManager') ?? (ua.split('/')[0] ?? '').slice(0, 128)
}

/** The stored object the route names, or 404 NotFound. */
function mustGet(store: KubeStore, route: ResourceRoute): KubeObject {
  const o = store.get(refOf(route.def), route.namespace, route.name!)
  if (!o) throw notFound(route.def, route.name!)
  return o
}

/** A list, filtered by labelSelector and fieldSelector (400 for a bad one); watches are not served. */
function listObjects(store: KubeStore, route: ResourceRoute, q: URLSearchParams): KubeObject[] {
  if (q.get('watch') === 'true' || q.get('watch') === '1') {
    throw badRequest('watch is not supported by the simulated API server')
  }
  let match: (labels: Record<string, string>) => boolean
  try {
    match = parseLabelSelector(q.get('labelSelector') ?? undefined)
  } catch (err) {
    throw badRequest((err as Error).message)
  }
  const fields = parseFieldSelector(route.def, q.get('fieldSelector'))
  return store.list(refOf(route.def), route.namespace).filter((o) => match(o.metadata.labels ?? {}) && fields(o))
}

/** The <Kind>List of a list or deletecollection, at the store's current resourceVersion. */
function listBody(store: KubeStore, route: ResourceRoute, items: KubeObject[]): Obj {
  const { def, version } = route
  return {
    kind: `${def.kind}List`,
    apiVersion: apiVersionOf(def, version),
    metadata: { resourceVersion: store.resourceVersion },
    // Typed lists of built-ins carry no apiVersion/kind on items; custom resource lists do.
    items: items.map((o) => {
      if (def.custom) return present(def, version, o)
      const { apiVersion: _a, kind: _k, ...rest } = o
      return rest
    }),
  }
}

/** The object's name and namespace against the URL's (400 on a mismatch); a namespaced object takes the URL's. */
function checkIdentity(route: ResourceRoute, obj: KubeObject): void {
  const { def, namespace, name } = route
  if (name !== undefined && obj.metadata.name !== name) {
    throw badRequest(`the name of the object (${obj.metadata.name ?? ''}) does not match the name on the URL (${name})`)
  }
  if (def.namespaced) {
    if (obj.metadata.namespace === undefined || obj.metadata.namespace === '') obj.metadata.namespace = namespace!
    else if (obj.metadata.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request')
    }
  } else {
    delete obj.metadata.namespace
  }
}

/**
 * What the registries' create strategies and defaulters set: a Namespace's name label, finalizer and phase;
 * a Service's type, ClusterIP and port defaults; a new Pod's Pending status; no client-set status elsewhere.
 */
function applyDefaults(b: Backend, def: ResourceDef, obj: KubeObject): void {
  if (def.resource === 'namespaces') {
    obj.metadata.labels = { ...obj.metadata.labels, 'kubernetes.io/metadata.name': obj.metadata.name }
    obj['spec'] = { finalizers: ['kubernetes'], ...(isObj(obj['spec']) ? obj['spec'] : {}) }
    obj['status'] = { phase: 'Active' }
  } else if (def.resource === 'services') {
    const spec: Obj = isObj(obj['spec']) ? obj['spec'] : {}
    spec['type'] ??= 'ClusterIP'
    if (spec['clusterIP'] === undefined) {
      const ip = b.allocateClusterIP()
      spec['clusterIP'] = ip
      spec['clusterIPs'] = [ip]
    }
    if (Array.isArray(spec['ports'])) {
      for (const p of spec['ports'])
        if (isObj(p)) {
          p['protocol'] ??= 'TCP'
          p['targetPort'] ??= p['port']
        }
    }
    obj['spec'] = spec
    obj['status'] = { loadBalancer: {} }
  } else if (def.resource === 'pods') {
    obj['status'] = { phase: 'Pending', qosClass: 'BestEffort' }
  } else if (def.status) {
    // The status subresource drops a client's status; a CRD's schema default status is what is stored instead.
    delete obj['status']
    const status = def.group === GATEWAY_API_GROUP ? defaultStatus(def.resource) : undefined
    if (status) obj['status'] = status
  }
}

/** The name of a new object: its own, else generateName plus a random suffix; 422 when neither is given. */
function nameNewObject(def: ResourceDef, obj: KubeObject): void {
  if (!obj.metadata.name && typeof obj.metadata['generateName'] === 'string') {
    obj.metadata.name = `${obj.metadata['generateName']}${randomSuffix(5)}`
  }
  if (!obj.metadata.name) {
    throw invalid(def, '', [
      {
        reason: 'FieldValueRequired',
        field: 'metadata.name',
        message: 'Required value: name or generateName is required',
      },
    ])
  }
  validateName(def, obj.metadata.name)
}

/** A namespaced object is created only in an existing namespace (the NamespaceLifecycle admission plugin's 404). */
function requireNamespace(store: KubeStore, route: ResourceRoute): void {
  if (route.def.namespaced && !store.get(REFS.namespaces, undefined, route.namespace!)) {
    throw new ApiError(404, 'NotFound', `namespaces "${route.namespace!}" not found`, {
      name: route.namespace!,
      kind: 'namespaces',
    })
  }
}

/** POST: a new object, named, defaulted, validated and admitted; stored unless a dry run. */
/** How a write records managedFields: an Update of its manager (recordManagedFields), or an apply's own entries. */
type Recorder = (prev: KubeObject | undefined, next: KubeObject) => void

function createObject(b: Backend, route: ResourceRoute, raw: unknown, w: Write, record?: Recorder): KubeObject {
  const { def } = route
  const obj = decodeObject(route, raw)
  checkIdentity(route, obj)
  nameNewObject(def, obj)
  requireNamespace(b.store, route)
  delete obj.metadata.resourceVersion
  delete obj.metadata.uid
  applyDefaults(b, def, obj)
  validateObject(def, obj)
  admit(b, route, obj)
  if (w.dryRun) return dryRunCreated(b.store, def, obj)
  if (record) record(undefined, obj)
  else recordManagedFields(undefined, obj, w.manager, undefined)
  try {
    return b.store.create(refOf(def), obj)
  } catch (err) {
    throw fromStore(err, def, obj.metadata.name)
  }
}

/** A dry-run create: 409 AlreadyExists as a real one would be, else the object with the fields storage would set. */
function dryRunCreated(store: KubeStore, def: ResourceDef, obj: KubeObject): KubeObject {
  if (store.get(refOf(def), obj.metadata.namespace, obj.metadata.name))
    throw fromStore(new StoreError(409, 'AlreadyExists', ''), def, obj.metadata.name)
  return {
    ...obj,
    metadata: {
      ...obj.metadata,
      uid: randomUUID(),
      generation: 1,
      creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    },
  }
}

/** Custom resources have no unconditional update: a PUT without metadata.resourceVersion is 422 Invalid. */
function requireResourceVersion(def: ResourceDef, name: string, rv: string | undefined): void {
  if (def.custom && (rv === undefined || rv === '')) {
    throw invalid({ ...def, kind: def.resource }, name, [
      {
        reason: 'FieldValueInvalid',
        field: 'metadata.resourceVersion',
        message: 'Invalid value: 0x0: must be specified for an update',
      },
    ])
  }
}

/**
 * Shared by PUT and PATCH: `next` is the full new object for the main resource or the status subresource.
 * A stale resourceVersion is 409 Conflict (from the store, or checked here for a dry run).
 */
function updateObject(b: Backend, route: ResourceRoute, next: KubeObject, w: Write, record?: Recorder): KubeObject {
  const { def } = route
  const name = route.name!
  checkIdentity(route, next)
  const cur = mustGet(b.store, route)
  const obj = withStatusRules(route, cur, next)
  const rv = obj.metadata.resourceVersion
  requireResourceVersion(def, name, rv)
  validateObject(def, obj)
  admit(b, route, obj)
  if (w.dryRun) return dryRunUpdated(def, name, cur, obj)
  if (record) record(cur, obj)
  else recordManagedFields(cur, obj, w.manager, route.subresource)
  try {
    return b.store.update(refOf(def), obj)
  } catch (err) {
    throw fromStore(err, def, name)
  }
}

/** A dry-run update: the conflict a real one would meet, else the object as stored (generation bumped by spec). */
function dryRunUpdated(def: ResourceDef, name: string, cur: KubeObject, obj: KubeObject): KubeObject {
  const rv = obj.metadata.resourceVersion
  if (rv !== undefined && rv !== '' && rv !== cur.metadata.resourceVersion) throw conflict(def, name, OPTIMISTIC_LOCK)
  const specChanged = !deepEqual(obj['spec'], cur['spec'])
  return {
    ...obj,
    metadata: {
      ...obj.metadata,
      uid: cur.metadata.uid!,
      creationTimestamp: cur.metadata.creationTimestamp!,
      resourceVersion: cur.metadata.resourceVersion!,
      generation: (cur.metadata.generation ?? 1) + (specChanged ? 1 : 0),
    },
  }
}

/** DELETE of one object: the uid and resourceVersion preconditions of its DeleteOptions (409), then removal. */
function deleteObject(b: Backend, route: ResourceRoute, raw: unknown, dryRun: boolean): Obj {
  const { def } = route
  const name = route.name!
  const cur = mustGet(b.store, route)
  checkPreconditions(def, name, cur, raw)
  let deleted = cur
  if (!dryRun) {
    try {
      deleted = b.store.delete(refOf(def), route.namespace, name)
    } catch (err) {
      throw fromStore(err, def, name)
    }
  }
  // Pods answer with the (terminating) object; most other resources with a Status.
  return def.resource === 'pods' ? present(def, route.version, deleted) : statusSuccess(def, deleted)
}

/** DeleteOptions.preconditions: a uid or resourceVersion other than the stored one is 409 Conflict. */
function checkPreconditions(def: ResourceDef, name: string, cur: KubeObject, raw: unknown): void {
  const pre = isObj(raw) && isObj(raw['preconditions']) ? raw['preconditions'] : {}
  if (typeof pre['uid'] === 'string' && pre['uid'] !== cur.metadata.uid) {
    throw conflict(
      def,
      name,
      `Precondition failed: UID in precondition: ${pre['uid']}, UID in object meta: ${cur.metadata.uid ?? ''}`,
    )
  }
  if (typeof pre['resourceVersion'] === 'string' && pre['resourceVersion'] !== cur.metadata.resourceVersion) {
    throw conflict(
      def,
      name,
      `Precondition failed: ResourceVersion in precondition: ${pre['resourceVersion']}, ` +
        `ResourceVersion in object meta: ${cur.metadata.resourceVersion ?? ''}`,
    )
  }
}

/** DELETE of a collection (not of namespaces, nor of a subresource): the selected objects, as a list. */
function deleteCollection(b: Backend, route: ResourceRoute, q: URLSearchParams, dryRun: boolean): Obj {
  const { def } = route
  if (route.subresource !== undefined || def.resource === 'namespaces') throw methodNotAllowed()
  const victims = listObjects(b.store, route, q)
  if (!dryRun) for (const o of victims) b.store.delete(refOf(def), o.metadata.namespace, o.metadata.name)
  return listBody(b.store, route, victims)
}

// ---------------------------------------------------------------------------------------------
// Status writes

/**
 * The status subresource's rule (the registries' status strategies): a write to /status changes only .status
 * (the rest is the stored object, at the resourceVersion the writer sent); a write to the main resource of a kind
 * with a status subresource keeps the stored status. istiod's delayed status writes (`istiodStatusDelayMs`,
 * sim/index.ts) go to the store directly; this rule is what keeps them through the action's spec writes.
 */
function withStatusRules(route: ResourceRoute, cur: KubeObject, next: KubeObject): KubeObject {
  let obj = next
  if (route.subresource === 'status') {
    obj = { ...cur, metadata: { ...cur.metadata, resourceVersion: next.metadata.resourceVersion ?? '' } }
    if (next['status'] === undefined) delete obj['status']
    else obj['status'] = next['status']
  } else if (route.def.status) {
    if (cur['status'] === undefined) delete obj['status']
    else obj['status'] = cur['status']
  }
  return obj
}

// ---------------------------------------------------------------------------------------------
// Patch requests: JSON patch (RFC 6902, with `test`) and merge patch (RFC 7386); a strategic merge patch (built-ins
// only) is applied as a merge patch; server-side apply (below); other media types are 415

const JSON_PATCH = 'application/json-patch+json'
const MERGE_PATCH = 'application/merge-patch+json'
const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json'
const APPLY_PATCH = 'application/apply-patch+yaml'

/**
 * The patch's media type, or 415 UnsupportedMediaType listing those the resource accepts (a CRD takes no
 * strategic merge patch).
 */
function patchMediaType(def: ResourceDef, req: IncomingMessage): string {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim()
  const accepted = def.custom
    ? [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
    : [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH]
  if (!accepted.includes(type)) {
    throw new ApiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`,
    )
  }
  return type
}

/**
 * The patched object. A JSON patch that does not apply (a failed `test` included) is an opaque 422; a merge
 * (or strategic merge) patch must be an object.
 */
function applyPatch(type: string, cur: KubeObject, patchDoc: unknown): unknown {
  if (type === JSON_PATCH) {
    try {
      return applyJsonPatch(cur, patchDoc)
    } catch (err) {
      if (!(err instanceof PatchNotApplied)) throw err
      // The real server hides the reason: NewGenericServerResponse(422, ...).
      throw new ApiError(422, 'Invalid', 'the server rejected our request due to an error in our request', {})
    }
  }
  if (!isObj(patchDoc)) throw badRequest('error decoding patch: a merge patch must be a JSON object')
  return applyMergePatch(cur, patchDoc)
}

// ---------------------------------------------------------------------------------------------
// Server-side apply (PATCH application/apply-patch+yaml), as k8s.io/apiserver's field manager does it with
// sigs.k8s.io/structured-merge-diff (merge/update.go Updater.Apply): the applied configuration is merged into the
// live object; a field it sets that another manager owns with a different value is a conflict (409, message of
// k8s.io/apimachinery pkg/util/managedfields/internal/conflict.go) unless force=true, which takes the field from
// that manager; fields this manager applied before and no longer applies are removed when nobody else owns them;
// the manager's Apply entry then owns exactly the applied fields. A missing object is created. fieldManager is
// required (ValidatePatchOptions). Simplification as for updates: lists are atomic (a CRD without list-type
// markers, like Istio's), and FieldsV1 sets carry no "." entries.

type FieldPath = string[]

/** The leaf fields an object (or applied configuration) sets: maps are walked, lists and scalars are leaves. */
function leafPaths(v: unknown, top = true, at: FieldPath = []): FieldPath[] {
  if (!isObj(v) || (Object.keys(v).length === 0 && !top)) return [at]
  const out: FieldPath[] = []
  for (const [k, child] of Object.entries(v)) {
    if (top && (k === 'apiVersion' || k === 'kind' || k === 'status')) continue
    if (top && k === 'metadata' && isObj(child)) {
      for (const [mk, mv] of Object.entries(child)) {
        if (!IGNORED_META.has(mk)) out.push(...leafPaths(mv, false, ['metadata', mk]))
      }
      continue
    }
    out.push(...leafPaths(child, false, [...at, k]))
  }
  return out
}

/** The leaf paths of a FieldsV1 set. */
function fieldsLeaves(f: unknown, at: FieldPath = []): FieldPath[] {
  const keys = isObj(f) ? Object.keys(f).filter((k) => k.startsWith('f:')) : []
  if (keys.length === 0) return at.length ? [at] : []
  return keys.flatMap((k) => fieldsLeaves((f as Obj)[k], [...at, k.slice(2)]))
}

function toFieldsV1(paths: FieldPath[]): Obj {
  const out: Obj = {}
  for (const p of paths) {
    let node = out
    for (const k of p) {
      node[`f:${k}`] ??= {}
      node = node[`f:${k}`] as Obj
    }
  }
  return out
}

const pathKey = (p: FieldPath): string => p.map((k) => `.${k}`).join('')

function valueAt(v: unknown, p: FieldPath): unknown {
  let cur = v
  for (const k of p) cur = isObj(cur) ? cur[k] : undefined
  return cur
}

function removeAt(v: Obj, p: FieldPath): void {
  const parent = valueAt(v, p.slice(0, -1))
  if (isObj(parent)) delete parent[p.at(-1) as string]
}

/** Maps merge key by key; lists and scalars of the configuration replace the live ones. */
function applyMerge(live: unknown, config: unknown): unknown {
  if (!isObj(live) || !isObj(config)) return structuredClone(config)
  const out: Obj = { ...live }
  for (const [k, v] of Object.entries(config)) out[k] = applyMerge(live[k], v)
  return out
}

/** How conflict.go's printManager names an entry's manager. */
function printManager(e: ManagedFieldsEntry): string {
  const name = `${JSON.stringify(e.manager)}${e.subresource ? ` with subresource ${JSON.stringify(e.subresource)}` : ''}`
  return e.operation === 'Update' ? `${name} using ${e.apiVersion} at ${e.time}` : name
}

function applyConflict(conflicts: Array<{ entry: ManagedFieldsEntry; path: FieldPath }>): ApiError {
  let message: string
  if (conflicts.length === 1) {
    const c = conflicts[0] as { entry: ManagedFieldsEntry; path: FieldPath }
    message = `Apply failed with 1 conflict: conflict with ${printManager(c.entry)}: ${pathKey(c.path)}`
  } else {
    const byManager = new Map<string, FieldPath[]>()
    for (const c of conflicts)
      byManager.set(printManager(c.entry), [...(byManager.get(printManager(c.entry)) ?? []), c.path])
    const lines = [...byManager.keys()]
      .sort()
      .flatMap((m) => [`conflicts with ${m}:`, ...(byManager.get(m) ?? []).map((p) => `- ${pathKey(p)}`)])
    message = `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`
  }
  const causes = conflicts.map((c) => ({
    reason: 'FieldManagerConflict',
    message: `conflict with ${printManager(c.entry)}`,
    field: pathKey(c.path),
  }))
  return new ApiError(409, 'Conflict', message, { causes })
}

function patchOptionsInvalid(field: string, reason: string, message: string): ApiError {
  return new ApiError(422, 'Invalid', `PatchOptions.meta.k8s.io "" is invalid: ${field}: ${message}`, {
    group: 'meta.k8s.io',
    kind: 'PatchOptions',
    causes: [{ reason, message, field }],
  })
}

/** PATCH application/apply-patch+yaml: server-side apply of the configuration in the body. */
function applyObject(
  b: Backend,
  route: ResourceRoute,
  body: Buffer,
  q: URLSearchParams,
  w: Write,
): { created: boolean; obj: KubeObject } {
  const manager = q.get('fieldManager') ?? ''
  if (manager === '') {
    throw patchOptionsInvalid('fieldManager', 'FieldValueRequired', 'Required value: is required for apply patch')
  }
  const force = q.get('force') === 'true'
  let config: unknown
  try {
    config = load(body.toString('utf8'))
  } catch (err) {
    throw badRequest(`error decoding YAML: ${(err as Error).message}`)
  }
  if (!isObj(config) || !isObj(config['metadata'])) {
    throw badRequest('error decoding YAML: the applied configuration must be an object with metadata')
  }
  if (Array.isArray(config['metadata']['managedFields'])) {
    throw badRequest('metadata.managedFields must be nil')
  }
  const applied = leafPaths(config)
  const time = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
  const entry = (apiVersion: string): ManagedFieldsEntry => ({
    manager,
    operation: 'Apply',
    apiVersion,
    time,
    fieldsType: 'FieldsV1',
    fieldsV1: toFieldsV1(applied),
  })
  const cur = b.store.get(refOf(route.def), route.namespace, route.name!)
  if (!cur) {
    const obj = createObject(b, route, config, w, (_prev, next) => {
      next.metadata['managedFields'] = [entry(String(next.apiVersion ?? ''))]
    })
    return { created: true, obj }
  }
  const live = present(route.def, route.version, cur)
  const entries = (
    Array.isArray(cur.metadata['managedFields']) ? cur.metadata['managedFields'] : []
  ) as ManagedFieldsEntry[]
  const mine = (e: ManagedFieldsEntry): boolean => e.manager === manager && e.operation === 'Apply' && !e.subresource
  const appliedKeys = new Set(applied.map(pathKey))
  const conflicts: Array<{ entry: ManagedFieldsEntry; path: FieldPath }> = []
  for (const e of entries) {
    if (mine(e) || e.subresource) continue
    for (const p of fieldsLeaves(e.fieldsV1)) {
      if (appliedKeys.has(pathKey(p)) && !deepEqual(valueAt(live, p), valueAt(config, p)))
        conflicts.push({ entry: e, path: p })
    }
  }
  if (conflicts.length > 0 && !force) throw applyConflict(conflicts)
  const merged = applyMerge(live, config) as KubeObject
  // Fields this manager applied before and applies no longer: removed, unless another manager owns them too.
  const before = entries.find(mine)
  const others = entries.filter((e) => !mine(e))
  const ownedByOthers = new Set(others.flatMap((e) => fieldsLeaves(e.fieldsV1).map(pathKey)))
  for (const p of before ? fieldsLeaves(before.fieldsV1) : []) {
    if (!appliedKeys.has(pathKey(p)) && !ownedByOthers.has(pathKey(p))) removeAt(merged, p)
  }
  // An apply carries resourceVersion only as a precondition.
  merged.metadata.resourceVersion =
    isObj(config['metadata']) && typeof config['metadata']['resourceVersion'] === 'string'
      ? config['metadata']['resourceVersion']
      : (cur.metadata.resourceVersion as string)
  const taken = new Set(conflicts.map((c) => `${c.entry.manager}|${c.entry.operation}|${pathKey(c.path)}`))
  const obj = updateObject(b, route, decodeObject(route, merged), w, (_prev, next) => {
    const kept = others
      .map((e) => {
        const leaves = fieldsLeaves(e.fieldsV1).filter((p) => !taken.has(`${e.manager}|${e.operation}|${pathKey(p)}`))
        return { ...e, fieldsV1: toFieldsV1(leaves), empty: leaves.length === 0 }
      })
      .filter((e) => !e.empty)
      .map(({ empty: _e, ...e }) => e)
    next.metadata['managedFields'] = [...kept, entry(String(next.apiVersion ?? ''))]
  })
  return { created: false, obj }
}

/** PATCH: the patch applied to the object as served at this version, then written like a PUT. */
function patchObject(b: Backend, route: ResourceRoute, req: IncomingMessage, body: Buffer, w: Write): KubeObject {
  const { def, version } = route
  const type = patchMediaType(def, req)
  let patchDoc: unknown
  try {
    patchDoc = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw badRequest(`error decoding patch: ${(err as Error).message}`)
  }
  const patched = applyPatch(type, present(def, version, mustGet(b.store, route)), patchDoc)
  if (!isObj(patched) || !isObj(patched['metadata'])) {
    throw new ApiError(422, 'Invalid', 'the server rejected our request due to an error in our request', {})
  }
  const obj = decodeObject(route, patched)
  if (obj.metadata.name !== route.name) {
    throw badRequest(
      `the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${route.name!})`,
    )
  }
  return updateObject(b, route, obj, w)
}

// ---------------------------------------------------------------------------------------------
// Service proxy mounting

/**
 * GET /api/v1/namespaces/<ns>/services/<name>[:<port>]/proxy/...: authorized like any subresource (`get` on
 * services/proxy), then streamed from the upstream by service-proxy.ts. False when the path is not a proxy path.
 */
function mountServiceProxy(
  opts: KubeApiOptions,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  who: User,
  record: (status: number) => void,
): boolean {
  const proxyParts = url.pathname.split('/').filter(Boolean)
  if (!parseServiceProxyPath(proxyParts)) return false
  authorizeOrThrow(opts, requestAttributes((req.method ?? 'GET').toUpperCase(), url, who.user, who.groups))
  record(200)
  void handleServiceProxy(req, res, proxyParts, opts.serviceUpstreams ?? new Map()).catch(() => res.destroy())
  return true
}

// ---------------------------------------------------------------------------------------------
// The dispatcher

/** An answer to send as JSON. */
interface Answer {
  status: number
  body: unknown
  headers?: Record<string, string>
}

/** Any error as the Status the server sends: an ApiError as is, anything else as a 500 InternalError. */
function errorAnswer(err: unknown): Answer {
  const e =
    err instanceof ApiError
      ? err
      : new ApiError(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`, {
          causes: [{ reason: '', message: String(err) }],
        })
  return { status: e.code, body: e.body, headers: e.headers }
}

/** One simulated API server: its settings, its injected faults, its request log, and the request pipeline. */
class KubeApiServer implements Backend {
  readonly store: KubeStore
  readonly istioValidation: boolean
  private readonly requests: RecordedRequest[]
  private nextIp = 10

  constructor(
    private readonly opts: KubeApiOptions,
    private readonly api: KubeApi,
    private readonly faults: FaultQueue,
  ) {
    this.store = opts.store
    this.istioValidation = opts.istioValidation ?? true
    this.requests = api.requests
  }

  allocateClusterIP(): string {
    const n = this.nextIp++
    return `10.0.${Math.floor(n / 250)}.${(n % 250) + 2}`
  }

  /**
   * A request, as the apiserver's filter chain takes it: faults first (a reset drops it unserved), then the
   * answer; a lost response drops the connection after the request was served (and applied).
   */
  handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const method = (req.method ?? 'GET').toUpperCase()
    const path = req.url ?? '/'
    const ua = req.headers['user-agent']
    const record = (status: number): void => {
      this.requests.push({ method, path, status, ...(ua !== undefined ? { userAgent: ua } : {}) })
    }
    const fault = this.faults.take(method, path)
    fault?.onMatch?.()
    if (fault?.delayMs !== undefined && fault.delayMs > 0) {
      setTimeout(() => {
        if (req.socket.destroyed) record(0)
        else this.serve(req, res, body, path, fault, record)
      }, fault.delayMs)
      return
    }
    this.serve(req, res, body, path, fault, record)
  }

  private serve(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    path: string,
    fault: KubeFault | undefined,
    record: (status: number) => void,
  ): void {
    if (fault?.status === 'reset') {
      dropConnection(req, record)
      return
    }
    const answer = this.answer(req, res, body, path, fault, record)
    if (answer === 'streamed') return
    if (fault?.status === 'lost-response') {
      dropConnection(req, record)
      return
    }
    const send = (): void => {
      record(answer.status)
      sendJson(res, answer.status, answer.body, answer.headers ?? {})
    }
    if (fault?.answerDelayMs !== undefined && fault.answerDelayMs > 0) setTimeout(send, fault.answerDelayMs)
    else send()
  }

  /** Injected status, authentication, then the service proxy or the API; every error becomes its Status. */
  private answer(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    path: string,
    fault: KubeFault | undefined,
    record: (status: number) => void,
  ): Answer | 'streamed' {
    try {
      throwInjectedStatus(fault)
      const who = authenticate(this.opts, req)
      if (mountServiceProxy(this.opts, req, res, new URL(path, 'https://127.0.0.1'), who, record)) return 'streamed'
      return this.serveApi(req, body, new URL(path, 'https://127.0.0.1'), who)
    } catch (err) {
      return errorAnswer(err)
    }
  }

  /** Authorization (from the path alone, before routing), then discovery or a resource request. */
  private serveApi(req: IncomingMessage, body: Buffer, url: URL, who: User): Answer {
    const method = (req.method ?? 'GET').toUpperCase()
    if (!isSimulationKnob(method, req, url)) {
      authorizeOrThrow(this.opts, requestAttributes(method, url, who.user, who.groups))
    }
    const segs = url.pathname
      .split('/')
      .filter(Boolean)
      .map((s) => decodeURIComponent(s))
    const disc = discovery(segs, servedOf(this.api))
    if (disc) {
      if (method !== 'GET') throw methodNotAllowed()
      return { status: 200, body: disc }
    }
    return this.serveResource(method, parseResource(segs, servedOf(this.api)), req, body, url.searchParams)
  }

  /** A resource request by method: on an object (with a name) or on a collection. */
  private serveResource(
    method: string,
    route: ResourceRoute,
    req: IncomingMessage,
    body: Buffer,
    q: URLSearchParams,
  ): Answer {
    const { def, version } = route
    const item = route.name !== undefined
    const write = (): Write => ({ dryRun: dryRunOf(q), manager: fieldManagerOf(q, req) })
    switch (method) {
      case 'GET':
        if (item) return { status: 200, body: present(def, version, mustGet(this.store, route)) }
        return { status: 200, body: listBody(this.store, route, listObjects(this.store, route, q)) }
      case 'POST': {
        if (item) throw methodNotAllowed()
        const w = write()
        return { status: 201, body: present(def, version, createObject(this, route, bodyObject(req, body), w)) }
      }
      case 'PUT': {
        if (!item) throw methodNotAllowed()
        const w = write()
        const next = decodeObject(route, bodyObject(req, body))
        return { status: 200, body: present(def, version, updateObject(this, route, next, w)) }
      }
      case 'PATCH': {
        if (!item) throw methodNotAllowed()
        const w = write()
        if (patchMediaType(def, req) === APPLY_PATCH) {
          const applied = applyObject(this, route, body, q, w)
          return { status: applied.created ? 201 : 200, body: present(def, version, applied.obj) }
        }
        // k8s.io/apimachinery pkg/apis/meta/v1/validation ValidatePatchOptions
        if (q.has('force')) {
          throw patchOptionsInvalid(
            'force',
            'FieldValueForbidden',
            'Forbidden: may not be specified for non-apply patch',
          )
        }
        return { status: 200, body: present(def, version, patchObject(this, route, req, body, w)) }
      }
      case 'DELETE': {
        const { dryRun } = write()
        const raw = body.length ? bodyObject(req, body) : undefined
        if (item) return { status: 200, body: deleteObject(this, route, raw, dryRun) }
        return { status: 200, body: deleteCollection(this, route, q, dryRun) }
      }
      default:
        throw methodNotAllowed()
    }
  }
}

/** Starts a simulated API server on a loopback port; the handle's `requests` and fault calls are live. */
export async function startKubeApi(opts: KubeApiOptions): Promise<KubeApi> {
  const faults = new FaultQueue()
  const api: KubeApi = {
    url: '',
    store: opts.store,
    requests: [],
    istioVersions: [...(opts.istioVersions ?? ['v1', 'v1beta1'])],
    gatewayApiVersions: [...(opts.gatewayApiVersions ?? [])],
    injectFault(f) {
      faults.inject(f)
    },
    clearFaults() {
      faults.clear()
    },
    close: async () => {},
  }
  const server = new KubeApiServer(opts, api, faults)
  const https = await startHttps(opts.pki, (req, res, body) => server.handle(req, res, body))
  api.url = https.url
  api.close = () => https.close()
  return api
}
