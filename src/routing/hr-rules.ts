// Pure Gateway API HTTPRoute rule logic: finding the target rule, reading its backendRefs' weights as shares,
// writing them at a canary weight, and inserting/removing a preview rule. No I/O. Everything not named here (other
// rules, matches, filters, parentRefs, every other backendRef field) is carried over untouched.
//
// Facts of the API relied on, from kubernetes-sigs/gateway-api apis/v1/shared_types.go and httproute_types.go:
// - BackendRef.weight: "computed as weight/(sum of all weights in this BackendRefs list) ... Weight is not a
//   percentage and the sum of weights does not need to equal 100 ... If unspecified, weight defaults to 1"
//   (+kubebuilder:default=1, Minimum=0, Maximum=1000000).
// - The API server writes the schema's defaults into what it stores: a rule without `matches` gets
//   `[{path: {type: PathPrefix, value: /}}]`, a match without `path` gets that path, a header match without `type`
//   gets Exact, a backendRef gets group "" and kind Service. Rules are compared with these defaults applied, so a
//   route the action wrote and read back is the same route.
// - HTTPRouteRule.name ("MUST be unique within a Route") is served from v1.2 (experimental channel; standard from
//   v1.4): an older CRD prunes it, which is why a preview rule's name is checked after it is written.
// - Precedence is by match, not by rule order: "Exact" path, longest prefix, method, "Largest number of header
//   matches", query params; within a route, ties go to "the FIRST matching rule (in list order)".
import type {
  BackendRef,
  GatewayHttpRouteSpec,
  HttpHeaderMatch,
  HttpRouteMatch,
  HttpRouteRule,
} from '../k8s/resources.js'
import { RouteError, type RouteSelector, describeSelector } from './router.js'
import { PREVIEW_ROUTE_PREFIX, apportion, canonical, previewRouteName } from './shares.js'

export { previewRouteName } from './shares.js'

/** What the API server stores for a rule without matches, and for a match without path (see above). */
const DEFAULT_PATH = { type: 'PathPrefix', value: '/' } as const

export function isPreviewRule(r: HttpRouteRule): boolean {
  return typeof r.name === 'string' && r.name.startsWith(PREVIEW_ROUTE_PREFIX)
}

/** A match of every request: no condition but the default path prefix "/". */
function matchesEverything(m: HttpRouteMatch): boolean {
  return canonical(normalMatch(m)) === canonical({ path: DEFAULT_PATH })
}

/** A user's rule without matches (as written, or as the API server stores it): it takes every request. */
export function isCatchAllRule(r: HttpRouteRule): boolean {
  return !isPreviewRule(r) && (r.matches === undefined || r.matches.length === 0 || r.matches.some(matchesEverything))
}

export function describeRuleSelector(sel: RouteSelector): string {
  return describeSelector(sel, 'HTTPRoute')
}

/** Index of the target rule in spec.rules. */
export function findRuleIndex(spec: GatewayHttpRouteSpec, sel: RouteSelector, routeName: string): number {
  const rules = spec.rules ?? []
  if (rules.length === 0) throw new RouteError(`HTTPRoute '${routeName}' has no rules to shift`)
  let index: number
  if (sel.by === 'name') {
    index = rules.findIndex((r) => r.name === sel.name)
    if (index < 0) {
      const names = rules.map((r) => r.name).filter((n): n is string => typeof n === 'string')
      throw new RouteError(
        `HTTPRoute '${routeName}' has no rule named '${sel.name}' ` +
          `(named rules: ${names.length ? names.join(', ') : 'none; rule names need Gateway API v1.2 or later'})`,
      )
    }
  } else if (sel.by === 'index') {
    // Counted among the user's rules: the action's own preview rules (inserted first) do not shift indexes.
    const own = rules.flatMap((r, i) => (isPreviewRule(r) ? [] : [i]))
    const found = own[sel.index]
    if (found === undefined)
      throw new RouteError(
        `HTTPRoute '${routeName}' has ${own.length} rule(s) besides istio-canary's previews; ` +
          `index ${sel.index} is out of range (0..${own.length - 1})`,
      )
    index = found
  } else {
    index = rules.findLastIndex(isCatchAllRule)
    if (index < 0)
      throw new RouteError(
        `HTTPRoute '${routeName}' has no default rule (a rule without matches); ` +
          "name the rule to shift with the 'route' input (its name or index)",
      )
  }
  const rule = rules[index] as HttpRouteRule
  if (!rule.backendRefs || rule.backendRefs.length === 0) {
    throw new RouteError(
      `${describeRuleSelector(sel)} of HTTPRoute '${routeName}' has no backendRefs (a redirect rule cannot be shifted)`,
    )
  }
  return index
}

/**
 * The index of an earlier rule that takes every request the target rule matches (the same match, after defaults:
 * a tie goes to the first rule), or -1. Only exact ties shadow: a more specific match wins whatever its position.
 */
export function shadowingRule(rules: HttpRouteRule[], index: number): number {
  const target = normalRule(rules[index] as HttpRouteRule).matches as HttpRouteMatch[]
  return rules.slice(0, index).findIndex((r) => {
    if (isPreviewRule(r)) return false
    const earlier = new Set((normalRule(r).matches as HttpRouteMatch[]).map((m) => canonical(m)))
    return target.every((m) => earlier.has(canonical(m)))
  })
}

const rawWeight = (b: BackendRef): number => b.weight ?? 1

/** Relative weight per backend (Service name), as written (default 1). */
function rawWeightsOf(rule: HttpRouteRule): Map<string, number> {
  const out = new Map<string, number>()
  for (const b of rule.backendRefs ?? []) out.set(b.name, (out.get(b.name) ?? 0) + rawWeight(b))
  return out
}

/** Percent of the rule's traffic per backend: its relative weights as integers summing to 100 (largest remainder). */
export function sharesOf(rule: HttpRouteRule): Map<string, number> {
  const raw = rawWeightsOf(rule)
  const parts = apportion([...raw.values()], 100)
  return new Map([...raw.keys()].map((k, i) => [k, parts[i] as number]))
}

export function backendWeightOf(rule: HttpRouteRule, backend: string): number {
  return sharesOf(rule).get(backend) ?? 0
}

/** auto: the backend with the highest share other than the canary (first on ties). */
export function resolveStableBackend(rule: HttpRouteRule, requested: string, canary: string | undefined): string {
  if (requested !== 'auto') return requested
  let best: [string, number] | undefined
  for (const [backend, w] of sharesOf(rule)) {
    if (backend === canary) continue
    if (!best || w > best[1]) best = [backend, w]
  }
  if (!best) throw new RouteError("cannot tell the stable backend from the target rule; set the 'stable-backend' input")
  return best[0]
}

/**
 * The target rule at a canary weight, derived from the rule as it was before the rollout (`base`): the canary
 * backend gets `weight`, the other backends share the rest in their original proportions; every weight written is
 * an integer and they sum to 100. Each backendRef keeps its other fields (port, namespace, filters, ...); a canary
 * not in the base is a copy of the stable backendRef under the canary's name. Backends left at 0 are dropped
 * (the stable one is kept); at 100 the canary alone remains. At 0 the base comes back exactly as it was.
 */
export function ruleAtWeight(base: HttpRouteRule, stable: string, canary: string, weight: number): HttpRouteRule {
  if (!Number.isInteger(weight) || weight < 0 || weight > 100)
    throw new RouteError(`canary weight ${weight} is not an integer in 0..100`)
  const refs = base.backendRefs ?? []
  const stableRef = refs.find((b) => b.name === stable)
  if (!stableRef) throw new RouteError(`the target rule has no backendRef named '${stable}'`)
  if (weight === 0) return structuredClone(base)
  const canaryRef: BackendRef = { ...structuredClone(refs.find((b) => b.name === canary) ?? stableRef), name: canary }
  const next = structuredClone(base)
  if (weight === 100) {
    next.backendRefs = [{ ...canaryRef, weight: 100 }]
    return next
  }
  const others = refs.filter((b) => b.name !== canary)
  const parts = apportion(others.map(rawWeight), 100 - weight)
  const kept: BackendRef[] = []
  let canaryPlaced = false
  for (const b of refs) {
    if (b.name === canary) {
      if (!canaryPlaced) kept.push({ ...canaryRef, weight })
      canaryPlaced = true
      continue
    }
    // Every other backendRef stays (SPEC section 7 rule 2), at weight 0 when its share rounds to nothing or was
    // nothing (a parked backend): "weight 0 ... no traffic should be forwarded for this entry" (Gateway API
    // HTTPBackendRef, gateway-api apis/v1/httproute_types.go BackendRef.Weight).
    kept.push({ ...structuredClone(b), weight: parts[others.indexOf(b)] as number })
  }
  if (!canaryPlaced) kept.push({ ...canaryRef, weight })
  next.backendRefs = kept
  return next
}

/**
 * The preview rule for a header value: the target rule's matches (every request, when it has none), each also
 * requiring the header to equal `value` exactly, to the canary backend alone; its other fields (filters,
 * timeouts) as the target rule's. One more header match than the target rule ranks it above it, and inserted
 * first it wins every tie.
 */
export function previewRule(target: HttpRouteRule, canary: string, header: string, value: string): HttpRouteRule {
  const refs = target.backendRefs ?? []
  const template = refs.find((b) => b.name === canary) ?? refs[0]
  if (!template) throw new RouteError('the target rule has no backendRefs')
  const backend: BackendRef = { ...structuredClone(template), name: canary }
  delete backend.weight
  const ours: HttpHeaderMatch = { type: 'Exact', name: header, value }
  const matches = (target.matches?.length ? target.matches : [{}]).map(
    (m): HttpRouteMatch => ({
      ...structuredClone(m),
      path: structuredClone(m.path ?? DEFAULT_PATH),
      // Header names match case-insensitively: the user's own match of the same header gives way to ours.
      headers: [...(m.headers ?? []).filter((h) => h.name.toLowerCase() !== header.toLowerCase()), ours],
    }),
  )
  const { name: _name, matches: _matches, backendRefs: _refs, ...rest } = structuredClone(target)
  return { name: previewRouteName(value), ...rest, matches, backendRefs: [backend] }
}

/** The spec with the preview rule for `value` first (replacing an earlier one of that name). */
export function withPreviewRule(
  spec: GatewayHttpRouteSpec,
  targetIndex: number,
  canary: string,
  header: string,
  value: string,
): GatewayHttpRouteSpec {
  const rules = spec.rules ?? []
  const target = rules[targetIndex]
  if (!target?.backendRefs?.length) throw new RouteError(`rule #${targetIndex} has no backendRefs`)
  const preview = previewRule(target, canary, header, value)
  const rest = rules.filter((r) => r.name !== preview.name)
  return { ...structuredClone(spec), rules: [preview, ...structuredClone(rest)] }
}

export function withoutPreviewRule(
  spec: GatewayHttpRouteSpec,
  value: string,
): { spec: GatewayHttpRouteSpec; removed: boolean } {
  const name = previewRouteName(value)
  const rules = spec.rules ?? []
  const rest = rules.filter((r) => r.name !== name)
  return { spec: { ...structuredClone(spec), rules: structuredClone(rest) }, removed: rest.length !== rules.length }
}

function normalMatch(m: HttpRouteMatch): HttpRouteMatch {
  const path = { ...DEFAULT_PATH, ...(m.path ?? {}) }
  const out: HttpRouteMatch = { ...m, path }
  if (m.headers) out.headers = m.headers.map((h) => ({ type: 'Exact', ...h }))
  if (m.queryParams)
    out.queryParams = m.queryParams.map((q) => (q && typeof q === 'object' ? { type: 'Exact', ...q } : q))
  return out
}

/** The rule as the API server stores it: the schema's defaults written in (see the head of this file). */
export function normalRule(rule: HttpRouteRule): HttpRouteRule {
  const out: HttpRouteRule = { ...rule, matches: (rule.matches?.length ? rule.matches : [{}]).map(normalMatch) }
  if (rule.backendRefs)
    out.backendRefs = rule.backendRefs.map((b) => ({ group: '', kind: 'Service', weight: 1, ...b }) as BackendRef)
  return out
}

/** The spec with every rule normalised: to tell whether a write would change anything. */
export function normalSpec(spec: GatewayHttpRouteSpec): GatewayHttpRouteSpec {
  return spec.rules ? { ...spec, rules: spec.rules.map(normalRule) } : spec
}

export function sameRule(a: HttpRouteRule | undefined, b: HttpRouteRule | undefined): boolean {
  return a !== undefined && b !== undefined && canonical(normalRule(a)) === canonical(normalRule(b))
}

/** Human-readable split, e.g. "reviews-v1 90 % / reviews-v3 10 %". */
export function describeRuleSplit(rule: HttpRouteRule): string {
  return [...sharesOf(rule)].map(([b, w]) => `${b} ${w} %`).join(' / ')
}
