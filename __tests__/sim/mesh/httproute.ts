// Gateway API HTTPRoute semantics for the simulated data plane: which rule of which route a request takes, and which
// backend of that rule. Pure (no store, no I/O): mesh.ts gives it the routes a proxy has and a random stream.
// Looked up, not guessed:
//  - kubernetes-sigs/gateway-api apis/v1/httproute_types.go, HTTPRouteRule.Matches: precedence across every rule of
//    every route attached to the parent: an Exact path, then the PathPrefix with the most characters, then a method
//    match, then the most header matches, then the most query param matches (RegularExpression paths:
//    implementation-specific); ties across routes: oldest creationTimestamp, then "{namespace}/{name}"; ties within a
//    route: the first rule in list order. No matching rule: 404. No matches = one PathPrefix "/" match.
//  - HTTPPathMatch: PathPrefix matches element by element (split by "/"; a trailing "/" ignored: "/foo" matches
//    "/foo" and "/foo/bar", not "/foobar"); Exact and PathPrefix are case-sensitive. HTTPHeaderMatch: names are
//    case-insensitive; of two entries with equivalent names only the first counts. HTTPQueryParamMatch: names exact.
//  - HTTPBackendRef.Weight: relative (default 1; 0: never picked); "If all entries in BackendRefs are invalid, and
//    there are also no filters specified in this route rule, all traffic which matches this rule MUST receive a 500".
// Istio's rendering of these (istio/istio pilot/pkg/config/kube/gateway/conversion.go): sortHTTPRoutes ranks
// Exact (3) > Prefix (2) > RegularExpression (1), then path length, method, headers, query params, the routes sorted
// by creation time then namespace/name first (sortRoutesByCreationTime); weightSum (ptr.OrDefault(weight, 1)) == 0
// and no redirect: a direct response 500; buildHTTPDestination drops weight-0 backends and keeps a backend whose
// Service does not exist (its requests then get Envoy's "cluster not found" answer, which Istio sets to 500 for
// Gateway API routes: pilot/pkg/networking/core/route/route.go, ClusterNotFoundResponseCode INTERNAL_SERVER_ERROR).
import type { KubeObject } from '../kube/store.js'

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const obj = (v: unknown): Obj => (isObj(v) ? v : {})
const each = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : [])
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)

export interface HttpRequestFacts {
  /** Path without the query string. */
  path: string
  query: URLSearchParams
  method: string
  /** Lower-case names. */
  headers: Record<string, string | undefined>
}

/** One match of one rule of one route, flattened so that every match of every route can be ordered together. */
export interface RouteCandidate {
  route: KubeObject
  ruleIndex: number
  rule: Obj
  match: Obj
}

const EVERYTHING: Obj = { path: { type: 'PathPrefix', value: '/' } }

/** The rule's matches, with the CRD defaults (no matches: PathPrefix "/"; a match without path: the same). */
function matchesOf(rule: Obj): Obj[] {
  const ms = each(rule['matches'])
  return (ms.length === 0 ? [EVERYTHING] : ms).map((m) => (m['path'] === undefined ? { ...m, ...EVERYTHING } : m))
}

/** HTTPPathMatch. */
export function pathMatches(pm: Obj, path: string): boolean {
  const type = str(pm['type']) ?? 'PathPrefix'
  const value = str(pm['value']) ?? '/'
  if (type === 'Exact') return path === value
  if (type === 'RegularExpression') return new RegExp(`^(?:${value})$`).test(path)
  // PathPrefix, element by element; a trailing "/" of the prefix is ignored.
  const prefix = value.replace(/\/+$/, '')
  if (prefix === '') return path.startsWith('/')
  return path === prefix || path.startsWith(`${prefix}/`)
}

function valueMatches(m: Obj, have: string | undefined): boolean {
  if (have === undefined) return false
  const want = str(m['value']) ?? ''
  return (str(m['type']) ?? 'Exact') === 'RegularExpression' ? new RegExp(`^(?:${want})$`).test(have) : have === want
}

/** HTTPRouteMatch: every field it sets must hold (ANDed). */
export function matchHolds(m: Obj, r: HttpRequestFacts): boolean {
  if (!pathMatches(obj(m['path']), r.path)) return false
  if (m['method'] !== undefined && m['method'] !== r.method) return false
  const seen = new Set<string>()
  for (const h of each(m['headers'])) {
    const name = (str(h['name']) ?? '').toLowerCase()
    if (seen.has(name)) continue
    seen.add(name)
    if (!valueMatches(h, r.headers[name])) return false
  }
  for (const q of each(m['queryParams'])) {
    if (!valueMatches(q, r.query.get(str(q['name']) ?? '') ?? undefined)) return false
  }
  return true
}

const PATH_RANK: Record<string, number> = { Exact: 3, PathPrefix: 2, RegularExpression: 1 }

/** Negative when `a` takes precedence over `b` (the order of httproute_types.go, Istio's ranks for regex). */
export function comparePrecedence(a: RouteCandidate, b: RouteCandidate): number {
  const pa = obj(a.match['path'])
  const pb = obj(b.match['path'])
  const rank = (p: Obj): number => PATH_RANK[str(p['type']) ?? 'PathPrefix'] ?? 0
  const len = (p: Obj): number => (str(p['value']) ?? '/').length
  const created = (c: RouteCandidate): string => c.route.metadata.creationTimestamp ?? ''
  const key = (c: RouteCandidate): string => `${c.route.metadata.namespace ?? ''}/${c.route.metadata.name}`
  return (
    rank(pb) - rank(pa) ||
    len(pb) - len(pa) ||
    Number(b.match['method'] !== undefined) - Number(a.match['method'] !== undefined) ||
    each(b.match['headers']).length - each(a.match['headers']).length ||
    each(b.match['queryParams']).length - each(a.match['queryParams']).length ||
    created(a).localeCompare(created(b)) ||
    key(a).localeCompare(key(b)) ||
    a.ruleIndex - b.ruleIndex
  )
}

/** Every match of every rule of these routes, highest precedence first. */
export function orderCandidates(routes: KubeObject[]): RouteCandidate[] {
  const out: RouteCandidate[] = []
  for (const route of routes) {
    each(obj(route['spec'])['rules']).forEach((rule, ruleIndex) => {
      for (const match of matchesOf(rule)) out.push({ route, ruleIndex, rule, match })
    })
  }
  // A stable sort keeps a rule's own matches in order (they tie on every criterion).
  return out.sort(comparePrecedence)
}

/** The rule a request takes: the first candidate (in precedence order) whose match holds. */
export function selectRule(candidates: RouteCandidate[], r: HttpRequestFacts): RouteCandidate | undefined {
  return candidates.find((c) => matchHolds(c.match, r))
}

export type BackendChoice =
  /** A Service backend of the route's rule. */
  | { kind: 'service'; name: string; namespace: string; port?: number }
  /** What the rule answers by itself: 500 when no backend has weight, a redirect filter's status. */
  | { kind: 'direct'; status: number; headers: Record<string, string> }
  /** A backendRef that cannot resolve (another kind, or another namespace without a ReferenceGrant): 500. */
  | { kind: 'invalid'; reason: string }

/**
 * The backend of a rule for one request: a RequestRedirect filter answers by itself; otherwise a weighted pick among
 * backendRefs with weight > 0 (default 1); none: 500. `rand` gives the next number of this route's random stream.
 */
export function chooseBackend(c: RouteCandidate, r: HttpRequestFacts, rand: () => number): BackendChoice {
  const redirect = each(c.rule['filters']).find((f) => f['type'] === 'RequestRedirect')
  if (redirect) {
    const rd = obj(redirect['requestRedirect'])
    const host = str(rd['hostname'])
    const location = `${host ? `${str(rd['scheme']) ?? 'http'}://${host}` : ''}${r.path}`
    return {
      kind: 'direct',
      status: typeof rd['statusCode'] === 'number' ? rd['statusCode'] : 302,
      headers: { location },
    }
  }
  const refs = each(c.rule['backendRefs'])
  const weights = refs.map((b) => (typeof b['weight'] === 'number' ? Math.max(0, b['weight']) : 1))
  const total = weights.reduce((a, b) => a + b, 0)
  if (total <= 0) return { kind: 'direct', status: 500, headers: {} }
  let x = rand() * total
  let picked = refs[weights.findLastIndex((w) => w > 0)] as Obj
  for (let i = 0; i < refs.length; i++) {
    x -= weights[i] as number
    if (x < 0 && (weights[i] as number) > 0) {
      picked = refs[i] as Obj
      break
    }
  }
  const routeNs = c.route.metadata.namespace ?? 'default'
  const group = str(picked['group']) ?? ''
  const kind = str(picked['kind']) ?? 'Service'
  if (group !== '' || kind !== 'Service') return { kind: 'invalid', reason: `unsupported backend kind ${kind}` }
  const namespace = str(picked['namespace']) ?? routeNs
  // ReferenceGrants are not served by the simulated API server: a cross-namespace backend never resolves.
  if (namespace !== routeNs) return { kind: 'invalid', reason: `backend in ${namespace} without a ReferenceGrant` }
  return {
    kind: 'service',
    name: str(picked['name']) ?? '',
    namespace,
    ...(typeof picked['port'] === 'number' ? { port: picked['port'] } : {}),
  }
}

/** Whether a parentRef names this Service (GAMMA: group "" kind Service, port unset or one of the Service's). */
export function parentIsService(p: Obj, routeNs: string, service: string, namespace: string, port?: number): boolean {
  if ((str(p['group']) ?? 'gateway.networking.k8s.io') !== '' || p['kind'] !== 'Service') return false
  if (p['name'] !== service || (str(p['namespace']) ?? routeNs) !== namespace) return false
  return p['port'] === undefined || port === undefined || p['port'] === port
}

/** Whether a parentRef names this Gateway API Gateway. */
export function parentIsGateway(p: Obj, routeNs: string, gateway: KubeObject): boolean {
  if ((str(p['group']) ?? 'gateway.networking.k8s.io') !== 'gateway.networking.k8s.io') return false
  if ((str(p['kind']) ?? 'Gateway') !== 'Gateway') return false
  return p['name'] === gateway.metadata.name && (str(p['namespace']) ?? routeNs) === gateway.metadata.namespace
}

/** A route's hostnames admit this Host (none: every host; `*.example.com` wildcards one or more labels). */
export function hostnameAdmits(route: KubeObject, host: string): boolean {
  const names = (obj(route['spec'])['hostnames'] as unknown[] | undefined) ?? []
  if (!Array.isArray(names) || names.length === 0) return true
  const h = host.toLowerCase()
  return names.some((n) => {
    if (typeof n !== 'string') return false
    const p = n.toLowerCase()
    return p.startsWith('*.') ? h.endsWith(p.slice(1)) && h.length > p.length - 1 : p === h
  })
}
