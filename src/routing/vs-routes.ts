// Pure VirtualService route logic: finding the target route, reading and writing its weights, and
// inserting/removing a preview route. No I/O. Everything not named here is carried over untouched.

import type { HttpRoute, RouteDestination, VirtualServiceSpec } from '../k8s/resources.js'
import { RouteError, type RouteSelector, describeSelector } from './router.js'
import { PREVIEW_ROUTE_PREFIX, apportion, canonical, previewRouteName } from './shares.js'

export { PREVIEW_ROUTE_PREFIX, apportion, canonical, previewRouteName } from './shares.js'

export function isPreviewRoute(r: HttpRoute): boolean {
  return typeof r.name === 'string' && r.name.startsWith(PREVIEW_ROUTE_PREFIX)
}

/** A user's route without match: it takes every request that reaches it (the default route is the last one). */
export function isCatchAll(r: HttpRoute): boolean {
  return !isPreviewRoute(r) && (r.match === undefined || r.match.length === 0)
}

/** A destination's weight as written; a lone destination without weight takes everything (100). */
function rawWeight(d: RouteDestination, destinations: number): number {
  return destinations === 1 ? (d.weight ?? 100) : (d.weight ?? 0)
}

/** Index of the target route in spec.http. */
export function findRouteIndex(spec: VirtualServiceSpec, sel: RouteSelector, vsName: string): number {
  const http = spec.http ?? []
  if (http.length === 0) throw new RouteError(`VirtualService '${vsName}' has no http routes to shift`)
  let index: number
  if (sel.by === 'name') {
    index = http.findIndex((r) => r.name === sel.name)
    if (index < 0) {
      const names = http.map((r) => r.name).filter((n): n is string => typeof n === 'string')
      throw new RouteError(
        `VirtualService '${vsName}' has no http route named '${sel.name}' ` +
          `(named routes: ${names.length ? names.join(', ') : 'none'})`,
      )
    }
  } else if (sel.by === 'index') {
    // Counted among the user's routes: the action's own preview routes (inserted first) do not shift indexes.
    const own = http.flatMap((r, i) => (isPreviewRoute(r) ? [] : [i]))
    const found = own[sel.index]
    if (found === undefined)
      throw new RouteError(
        `VirtualService '${vsName}' has ${own.length} http route(s) besides istio-canary's previews; ` +
          `index ${sel.index} is out of range (0..${own.length - 1})`,
      )
    index = found
  } else {
    index = http.findLastIndex(isCatchAll)
    if (index < 0)
      throw new RouteError(
        `VirtualService '${vsName}' has no default route (an http route without match); ` +
          "name the route to shift with the 'route' input",
      )
  }
  const route = http[index] as HttpRoute
  if (!route.route || route.route.length === 0) {
    throw new RouteError(
      `${describeSelector(sel)} of VirtualService '${vsName}' has no destinations ` +
        '(redirect or direct response routes cannot be shifted)',
    )
  }
  return index
}

/** Raw weight per subset as written; a lone destination without weight counts as 100. */
function rawWeightsOf(route: HttpRoute): Map<string, number> {
  const dests = route.route ?? []
  const out = new Map<string, number>()
  for (const d of dests) {
    const subset = d.destination.subset ?? ''
    out.set(subset, (out.get(subset) ?? 0) + rawWeight(d, dests.length))
  }
  return out
}

/**
 * Percent of the route's traffic per subset. Istio reads weights as shares (since 1.15 they need not sum to
 * 100: v1 9 / v3 1 sends v3 10 %), so they are normalised, as integers summing to 100 (largest remainder).
 */
export function weightsOf(route: HttpRoute): Map<string, number> {
  const raw = rawWeightsOf(route)
  const parts = apportion([...raw.values()], 100)
  return new Map([...raw.keys()].map((k, i) => [k, parts[i] as number]))
}

export function canaryWeightOf(route: HttpRoute, canary: string): number {
  return weightsOf(route).get(canary) ?? 0
}

/** auto: the subset with the highest weight other than the canary (first on ties). */
export function resolveStableSubset(route: HttpRoute, requested: string, canary: string | undefined): string {
  const weights = weightsOf(route)
  if (requested !== 'auto') return requested
  let best: [string, number] | undefined
  for (const [subset, w] of weights) {
    if (subset === canary || subset === '') continue
    if (!best || w > best[1]) best = [subset, w]
  }
  if (!best) {
    const hint = weights.has('')
      ? ' (its destinations name no subset: add subsets to the DestinationRule and route to one)'
      : ''
    throw new RouteError(`cannot tell the stable subset from the target route${hint}; set the 'stable-subset' input`)
  }
  return best[0]
}

/**
 * The target route at a given canary weight, derived from the route as it was before the rollout (`base`):
 * the canary gets `weight`; the other destinations of the base share the rest in their original proportions.
 * At 100 the route is left clean: a single destination, the canary, without weight. At 0 the base comes back unchanged.
 */
export function routeAtWeight(base: HttpRoute, stable: string, canary: string, weight: number): HttpRoute {
  if (!Number.isInteger(weight) || weight < 0 || weight > 100)
    throw new RouteError(`canary weight ${weight} is not an integer in 0..100`)
  const dests = base.route ?? []
  const stableDest = dests.find((d) => d.destination.subset === stable)
  if (!stableDest) throw new RouteError(`the target route has no destination with subset '${stable}'`)
  if (weight === 0) return structuredClone(base)
  const canaryDest: RouteDestination = {
    ...structuredClone(dests.find((d) => d.destination.subset === canary) ?? stableDest),
    destination: {
      ...structuredClone((dests.find((d) => d.destination.subset === canary) ?? stableDest).destination),
      subset: canary,
    },
  }
  delete canaryDest.weight
  const next = structuredClone(base)
  if (weight === 100) {
    next.route = [canaryDest]
    return next
  }
  const others = dests.filter((d) => d.destination.subset !== canary)
  const baseWeights = others.map((d) => rawWeight(d, dests.length))
  const parts = apportion(baseWeights, 100 - weight)
  const kept: RouteDestination[] = []
  others.forEach((d, i) => {
    if ((parts[i] as number) > 0 || d.destination.subset === stable)
      kept.push({ ...structuredClone(d), weight: parts[i] as number })
  })
  next.route = [...kept, { ...canaryDest, weight }]
  return next
}

/**
 * A route sending requests whose header equals value exactly to the canary subset, placed before every other route.
 * It is the target route with the header added to each of its matches (the requests it takes, ANDed with the
 * header; no match: the header alone) and the canary as its one destination; every other field of the target
 * route (rewrite, timeout, retries, headers, fault, mirror, corsPolicy...) stays, so a preview request is handled
 * as the target route handles it (https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRoute),
 * as the HTTPRoute's preview rule keeps its matches and filters (./hr-rules.ts previewRule).
 */
export function withPreviewRoute(
  spec: VirtualServiceSpec,
  targetIndex: number,
  canary: string,
  header: string,
  value: string,
): VirtualServiceSpec {
  const http = spec.http ?? []
  const target = http[targetIndex]
  if (!target?.route?.length) throw new RouteError(`http route #${targetIndex} has no destinations`)
  const template = (target.route.find((d) => d.destination.subset === canary) ?? (target.route[0] as RouteDestination))
    .destination
  const name = previewRouteName(value)
  const { name: _name, match, route: _route, ...settings } = structuredClone(target)
  const ours = { exact: value }
  const matches = (match?.length ? match : [{}]).map((m) => {
    // Header names match case-insensitively: the target's own match of the same header gives way to ours.
    const headers = Object.entries((m['headers'] ?? {}) as Record<string, unknown>).filter(
      ([key]) => key.toLowerCase() !== header.toLowerCase(),
    )
    return { ...m, headers: { ...Object.fromEntries(headers), [header]: ours } }
  })
  const preview: HttpRoute = {
    name,
    match: matches,
    ...settings,
    route: [{ destination: { ...structuredClone(template), subset: canary } }],
  }
  const rest = http.filter((r) => r.name !== name)
  return { ...structuredClone(spec), http: [preview, ...structuredClone(rest)] }
}

export function withoutPreviewRoute(
  spec: VirtualServiceSpec,
  value: string,
): { spec: VirtualServiceSpec; removed: boolean } {
  const name = previewRouteName(value)
  const http = spec.http ?? []
  const rest = http.filter((r) => r.name !== name)
  return { spec: { ...structuredClone(spec), http: structuredClone(rest) }, removed: rest.length !== http.length }
}

export function sameRoute(a: HttpRoute | undefined, b: HttpRoute | undefined): boolean {
  return a !== undefined && b !== undefined && canonical(a) === canonical(b)
}

/** Human-readable split, e.g. "v1 90 % / v3 10 %". */
export function describeSplit(route: HttpRoute): string {
  return [...weightsOf(route)].map(([s, w]) => `${s || '(no subset)'} ${w} %`).join(' / ')
}
