// What the Gateway API CRDs make the API server do with a GatewayClass, Gateway or HTTPRoute it is sent: the
// structural schema's defaults (written into what is stored, so every reader sees them) and the validations the
// traffic-shifting paths meet. From kubernetes-sigs/gateway-api config/crd/standard/
// gateway.networking.k8s.io_{gatewayclasses,gateways,httproutes}.yaml (standard channel; the `default:` and
// `minimum`/`maximum`/`maxItems` of the v1 schema, identical in v1beta1) and the kubebuilder markers they are made
// from in apis/v1/{httproute_types,shared_types,gateway_types}.go:
//  - HTTPRoute spec.parentRefs[]: group gateway.networking.k8s.io, kind Gateway; maxItems 32.
//  - spec.rules: default [{matches: [{path: {type: PathPrefix, value: /}}]}]; maxItems 16; each rule's matches
//    default the same one match; a match without path gets path {type: PathPrefix, value: /}; headers[].type and
//    queryParams[].type default Exact.
//  - rules[].backendRefs[] (and requestMirror.backendRef of filters): group "", kind Service; weight default 1,
//    integer 0..1000000; backendRefs maxItems 16. requestRedirect.statusCode default 302.
//  - Gateway spec.listeners[].allowedRoutes default {namespaces: {from: Same}}; tls.mode Terminate,
//    tls.certificateRefs[] group "" kind Secret.
//  - status: GatewayClass and Gateway have a schema default status (Accepted, and Programmed for Gateways, Unknown
//    with reason Pending, "Waiting for controller", lastTransitionTime 1970-01-01T00:00:00Z): what a new object
//    shows until its controller writes; HTTPRoute's status has no default (status.parents is required once set).
// Defaulting in the apiserver (apiextensions-apiserver pkg/apiserver/schema/defaulting) runs on the decoded request
// and on every read from etcd; applying it on each write here gives readers the same objects.
type Obj = Record<string, unknown>

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const each = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : [])

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io'
const EPOCH = '1970-01-01T00:00:00Z'

function pending(type: string): Obj {
  return { lastTransitionTime: EPOCH, message: 'Waiting for controller', reason: 'Pending', status: 'Unknown', type }
}

/** The schema default of a new object's status (status is not the client's on create: the status subresource). */
export function defaultStatus(resource: string): Obj | undefined {
  if (resource === 'gatewayclasses') return { conditions: [pending('Accepted')] }
  if (resource === 'gateways') return { conditions: [pending('Accepted'), pending('Programmed')] }
  return undefined
}

function defaultBackendRef(ref: Obj, weighted: boolean): void {
  ref['group'] ??= ''
  ref['kind'] ??= 'Service'
  if (weighted) ref['weight'] ??= 1
}

function defaultFilters(filters: unknown): void {
  for (const f of each(filters)) {
    const mirror = isObj(f['requestMirror']) ? f['requestMirror'] : undefined
    if (mirror && isObj(mirror['backendRef'])) defaultBackendRef(mirror['backendRef'], false)
    if (isObj(f['requestRedirect'])) f['requestRedirect']['statusCode'] ??= 302
  }
}

const everything = (): Obj => ({ path: { type: 'PathPrefix', value: '/' } })

/** Writes the HTTPRoute schema's defaults into spec (in place). */
export function defaultHttpRoute(spec: Obj): void {
  for (const p of each(spec['parentRefs'])) {
    p['group'] ??= GATEWAY_API_GROUP
    p['kind'] ??= 'Gateway'
  }
  spec['rules'] ??= [{ matches: [everything()] }]
  for (const rule of each(spec['rules'])) {
    rule['matches'] ??= [everything()]
    for (const m of each(rule['matches'])) {
      m['path'] ??= { type: 'PathPrefix', value: '/' }
      if (isObj(m['path'])) {
        m['path']['type'] ??= 'PathPrefix'
        m['path']['value'] ??= '/'
      }
      for (const h of each(m['headers'])) h['type'] ??= 'Exact'
      for (const q of each(m['queryParams'])) q['type'] ??= 'Exact'
    }
    defaultFilters(rule['filters'])
    for (const b of each(rule['backendRefs'])) {
      defaultBackendRef(b, true)
      defaultFilters(b['filters'])
    }
  }
}

/** Writes the Gateway schema's defaults into spec (in place). */
export function defaultGateway(spec: Obj): void {
  for (const l of each(spec['listeners'])) {
    l['allowedRoutes'] ??= { namespaces: { from: 'Same' } }
    if (isObj(l['allowedRoutes'])) {
      const ar = l['allowedRoutes']
      ar['namespaces'] ??= { from: 'Same' }
      if (isObj(ar['namespaces'])) ar['namespaces']['from'] ??= 'Same'
      for (const k of each(ar['kinds'])) k['group'] ??= GATEWAY_API_GROUP
    }
    if (isObj(l['tls'])) {
      l['tls']['mode'] ??= 'Terminate'
      for (const c of each(l['tls']['certificateRefs'])) {
        c['group'] ??= ''
        c['kind'] ??= 'Secret'
      }
    }
  }
}

export interface SchemaCause {
  reason: 'FieldValueRequired' | 'FieldValueTypeInvalid' | 'FieldValueInvalid' | 'FieldValueTooMany'
  field: string
  message: string
}

function tooMany(field: string, v: unknown, max: number): SchemaCause[] {
  return Array.isArray(v) && v.length > max
    ? [{ reason: 'FieldValueTooMany', field, message: `Too many: ${v.length}: must have at most ${max} items` }]
    : []
}

/**
 * The schema checks of a Gateway API object the action's writes can meet, as the CRD validation reports them (422
 * Invalid with one cause per field): weights integers in 0..1000000, list sizes, a GatewayClass's controllerName
 * and a Gateway's gatewayClassName and listeners required.
 */
export function validateGatewayApi(resource: string, obj: Obj): SchemaCause[] {
  const spec = isObj(obj['spec']) ? obj['spec'] : undefined
  const causes: SchemaCause[] = []
  if (!spec) return [{ reason: 'FieldValueRequired', field: 'spec', message: 'Required value' }]
  if (resource === 'gatewayclasses' && typeof spec['controllerName'] !== 'string') {
    causes.push({ reason: 'FieldValueRequired', field: 'spec.controllerName', message: 'Required value' })
  }
  if (resource === 'gateways') {
    if (typeof spec['gatewayClassName'] !== 'string')
      causes.push({ reason: 'FieldValueRequired', field: 'spec.gatewayClassName', message: 'Required value' })
    if (!Array.isArray(spec['listeners']))
      causes.push({ reason: 'FieldValueRequired', field: 'spec.listeners', message: 'Required value' })
  }
  if (resource !== 'httproutes') return causes
  causes.push(...tooMany('spec.parentRefs', spec['parentRefs'], 32), ...tooMany('spec.rules', spec['rules'], 16))
  each(spec['rules']).forEach((rule, i) => {
    causes.push(...tooMany(`spec.rules[${i}].backendRefs`, rule['backendRefs'], 16))
    each(rule['backendRefs']).forEach((b, j) => {
      const field = `spec.rules[${i}].backendRefs[${j}].weight`
      const w = b['weight']
      if (typeof w !== 'number' || !Number.isInteger(w)) {
        const t = typeof w === 'number' ? 'number' : typeof w
        causes.push({
          reason: 'FieldValueTypeInvalid',
          field,
          message: `Invalid value: "${t}": ${field} in body must be of type integer: "${t}"`,
        })
      } else if (w < 0) {
        causes.push({
          reason: 'FieldValueInvalid',
          field,
          message: `Invalid value: ${w}: ${field} in body should be greater than or equal to 0`,
        })
      } else if (w > 1000000) {
        causes.push({
          reason: 'FieldValueInvalid',
          field,
          message: `Invalid value: ${w}: ${field} in body should be less than or equal to 1000000`,
        })
      }
    })
  })
  return causes
}

/** The defaults of one Gateway API object's spec, in place (by its plural resource name). */
export function defaultGatewayApi(resource: string, obj: Obj): void {
  if (!isObj(obj['spec'])) return
  if (resource === 'httproutes') defaultHttpRoute(obj['spec'])
  else if (resource === 'gateways') defaultGateway(obj['spec'])
}
