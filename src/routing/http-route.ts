// The TrafficRouter for a Gateway API HTTPRoute: its spec.rules, relative weights per backendRef (one Service per
// version), the rollout state in the same annotation as on a VirtualService, and preview rules inserted first.
// Writes are conditional on the resourceVersion read, through writeConditionally, exactly as the VirtualService's.
import type { HttpRouteApi } from '../k8s/ports.js'
import type { BackendRef, GatewayHttpRoute, GatewayHttpRouteSpec, HttpRouteRule } from '../k8s/resources.js'
import { realSleep } from '../retry.js'
import { writeConditionally } from './conditional.js'
import { movedRoute } from './moved.js'
import { type RouteStore, writeRouteAndState } from './route-write.js'
import {
  backendWeightOf,
  describeRuleSelector,
  describeRuleSplit,
  findRuleIndex,
  isPreviewRule,
  normalSpec,
  previewRouteName,
  resolveStableBackend,
  ruleAtWeight,
  sameRule,
  shadowingRule,
  sharesOf,
  withPreviewRule,
  withoutPreviewRule,
} from './hr-rules.js'
import {
  type ManifestTarget,
  type MeshFacts,
  type Route,
  RouteError,
  type RouteSelector,
  type TargetRef,
  type TrafficRouter,
  describeTarget,
} from './router.js'
import { type Acceptance, acceptanceOf, awaitAcceptance } from './hr-status.js'
import { canonical } from './shares.js'
import { type RolloutState, decodeState, isActive } from './state.js'
import type { RouterDeps } from './resource-router.js'

const asRule = (route: Route): HttpRouteRule => route as HttpRouteRule

const GATEWAY_GROUP = 'gateway.networking.k8s.io'

export type { Acceptance } from './hr-status.js'

/** backendRef fields as the API server defaults them, left out of what a manifest is given (it seldom spells them). */
function withoutDefaults(b: BackendRef): BackendRef {
  const out = { ...b }
  if (out.group === '') delete out.group
  if (out.kind === 'Service') delete out.kind
  return out
}

export class HttpRouteRouter implements TrafficRouter {
  private resource: GatewayHttpRoute | undefined
  private stateRead: RolloutState | undefined

  constructor(
    private readonly api: HttpRouteApi,
    readonly target: TargetRef,
    private readonly deps: RouterDeps,
  ) {}

  private get ref(): string {
    return describeTarget(this.target)
  }

  private get kubectl(): string {
    return `kubectl -n ${this.target.namespace} get httproute ${this.target.name} -o yaml`
  }

  private get hr(): GatewayHttpRoute {
    if (!this.resource) throw new Error(`internal: ${this.ref} was not read`)
    return this.resource
  }

  private rules(spec: GatewayHttpRouteSpec = this.hr.spec): HttpRouteRule[] {
    return spec.rules ?? []
  }

  private set(route: GatewayHttpRoute): void {
    this.resource = route
    this.stateRead = decodeState(route.metadata.annotations, this.target)
  }

  private read(): Promise<GatewayHttpRoute> {
    return this.api.getHttpRoute(this.target.namespace, this.target.name)
  }

  async load(): Promise<void> {
    this.set(await this.read())
  }

  get state(): RolloutState | undefined {
    return this.stateRead
  }

  get revision(): string | undefined {
    return this.resource?.metadata.resourceVersion
  }

  /**
   * Where the selector's rule is in `hr`; a rollout's positional selector follows its rule where rules were added or
   * removed before it (routing/moved.ts, as the VirtualService router does). `literal`: the selector as it reads.
   */
  private index(selector: RouteSelector, hr: GatewayHttpRoute = this.hr, literal = false): number {
    let found: number | undefined
    let error: unknown
    try {
      found = findRuleIndex(hr.spec, selector, this.target.name)
    } catch (err) {
      error = err
    }
    const moved = literal
      ? undefined
      : movedRoute(selector, this.target, {
          annotations: hr.metadata.annotations,
          routes: this.rules(hr.spec),
          found,
          isPreview: (r) => isPreviewRule(r as HttpRouteRule),
          same: (a, b) => this.same(a, b),
        })
    if (moved) {
      const message =
        `${describeRuleSelector(selector)} of ${this.ref} moved (rules were added or removed before it): ` +
        `found it by what istio-canary last wrote, now rule #${moved.position}`
      if (!this.told.has(message)) {
        this.told.add(message)
        this.deps.log(message)
      }
      return moved.index
    }
    if (error !== undefined) throw error
    return found as number
  }

  private readonly told = new Set<string>()

  private safeIndex(selector: RouteSelector, hr: GatewayHttpRoute = this.hr): number {
    try {
      return this.index(selector, hr)
    } catch {
      return -1
    }
  }

  route(selector: RouteSelector): Route {
    return this.rules()[this.index(selector)] as HttpRouteRule
  }

  findRoute(selector: RouteSelector): Route | undefined {
    return this.rules()[this.safeIndex(selector)]
  }

  inputRoute(options: { shadowed: 'refuse' | 'allow' } = { shadowed: 'refuse' }): Route {
    const selector = this.target.route
    let index: number
    try {
      // A new rollout takes the input as it reads now; only one in progress follows its rule where it moved.
      index = this.index(selector, this.hr, !isActive(this.stateRead))
    } catch (err) {
      if (err instanceof RouteError && selector.by !== 'default') throw new RouteError(`Input 'route': ${err.message}`)
      throw err
    }
    const rules = this.rules()
    const shadow = shadowingRule(rules, index)
    if (shadow >= 0 && options.shadowed === 'refuse') {
      const shadowName = rules[shadow]?.name
      const name = shadowName ? `'${shadowName}'` : `#${shadow}`
      throw new RouteError(
        `Input 'route': ${describeRuleSelector(selector)} of ${this.ref} receives no traffic: ` +
          `rule ${name} before it has the same matches and takes every request it would. ` +
          `Shift rule ${name} instead, or give the rules different matches`,
      )
    }
    return rules[index] as HttpRouteRule
  }

  selectorFor(route: Route, fallback: RouteSelector): RouteSelector {
    const name = asRule(route).name
    return typeof name === 'string' && name !== '' ? { by: 'name', name } : fallback
  }

  shares(route: Route): Map<string, number> {
    return sharesOf(asRule(route))
  }

  weightOf(route: Route, version: string): number {
    return backendWeightOf(asRule(route), version)
  }

  resolveStable(route: Route, requested: string, canary: string | undefined): string {
    return resolveStableBackend(asRule(route), requested, canary)
  }

  atWeight(base: Route, stable: string, canary: string, weight: number): Route {
    return ruleAtWeight(asRule(base), stable, canary, weight)
  }

  same(a: Route | undefined, b: Route | undefined): boolean {
    return sameRule(a as HttpRouteRule | undefined, b as HttpRouteRule | undefined)
  }

  describe(route: Route): string {
    return describeRuleSplit(asRule(route))
  }

  async write(selector: RouteSelector, expected: Route, next: Route, state: RolloutState | undefined): Promise<void> {
    const store: RouteStore<GatewayHttpRoute> = {
      target: this.target,
      what: this.ref,
      noun: 'rule',
      kubectl: this.kubectl,
      read: () => this.read(),
      replace: (hr) => this.api.replaceHttpRoute(hr),
      log: this.deps.log,
      routes: (hr) => this.rules(hr.spec),
      setRoutes: (hr, rules) => {
        hr.spec.rules = rules as HttpRouteRule[]
      },
      indexOf: (hr) => this.safeIndex(selector, hr),
      same: (a, b) => this.same(a, b),
      describe: (route) => this.describe(route),
      selector: describeRuleSelector(selector),
    }
    const change = { current: this.hr, expected, next, state, before: this.stateRead }
    // Every fresh read is kept at once: after a refusal the caller decides on what the cluster holds now.
    this.resource = await writeRouteAndState(store, change, (fresh) => {
      this.resource = fresh
    })
    this.stateRead = state
  }

  previewName(value: string): string {
    return previewRouteName(value)
  }

  previewRoute(value: string): Route | undefined {
    return this.rules().find((r) => r.name === previewRouteName(value))
  }

  async setPreview(canary: string, header: string, value: string): Promise<boolean> {
    let added: HttpRouteRule | undefined
    const written = await this.writeSpec((spec) => {
      const next = withPreviewRule(
        spec,
        findRuleIndex(spec, this.target.route, this.target.name),
        canary,
        header,
        value,
      )
      added = next.rules?.[0]
      return next
    })
    if (written && added && !this.previewRoute(value)) {
      // A CRD without rule names (Gateway API before v1.2, or before v1.4 on the standard channel) pruned the name:
      // the rule could never be found again, so it is taken out at once.
      const { name: _name, ...unnamed } = added
      await this.writeSpec((spec) => {
        const rules = spec.rules ?? []
        return rules[0] && sameRule(rules[0], unnamed) ? { ...spec, rules: rules.slice(1) } : spec
      })
      throw new RouteError(
        `${this.ref}: the API server dropped the preview rule's name, so its HTTPRoute CRD predates rule names ` +
          '(Gateway API v1.2 experimental, v1.4 standard); the rule was removed again. ' +
          'Upgrade the Gateway API CRDs to preview with an HTTPRoute',
      )
    }
    return written
  }

  restorePreview(value: string, before: Route | undefined): Promise<boolean> {
    return this.writeSpec((spec) => {
      const removed = withoutPreviewRule(spec, value).spec
      return before ? { ...removed, rules: [asRule(before), ...(removed.rules ?? [])] } : removed
    })
  }

  /** A spec change that only adds/removes preview rules: re-applied on a fresh read after a conflict. */
  private async writeSpec(change: (spec: GatewayHttpRouteSpec) => GatewayHttpRouteSpec): Promise<boolean> {
    const { resource, written } = await writeConditionally<GatewayHttpRoute>({
      current: this.hr,
      read: async () => {
        this.set(await this.read())
        return this.hr
      },
      replace: (hr) => this.api.replaceHttpRoute(hr),
      what: this.ref,
      log: this.deps.log,
      change: (hr) => {
        const spec = change(hr.spec)
        return canonical(normalSpec(spec)) === canonical(normalSpec(hr.spec)) ? undefined : { ...hr, spec }
      },
    })
    this.set(resource)
    return written
  }

  manifestTarget(selector: RouteSelector): ManifestTarget {
    const rules = this.rules()
    const index = this.index(selector)
    const rule = rules[index] as HttpRouteRule
    return {
      kind: 'HTTPRoute',
      namespace: this.target.namespace,
      name: this.target.name,
      routeIndex: rules.slice(0, index).filter((r) => !isPreviewRule(r)).length,
      ...(typeof rule.name === 'string' && rule.name !== '' ? { routeName: rule.name } : {}),
      destinations: (rule.backendRefs ?? []).map(withoutDefaults),
    }
  }

  /**
   * Gateways: the Gateway parents (namespace/name) of every HTTPRoute in the namespace (a mesh route's Service
   * parent is no gateway). The destination host: the stable backend's Service (the rollout's, else the rule's
   * largest share).
   */
  async meshFacts(route: Route): Promise<MeshFacts> {
    const gateways = new Set<string>()
    for (const hr of await this.api.listHttpRoutes(this.target.namespace)) {
      for (const p of hr.spec.parentRefs ?? []) {
        if ((p.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && (p.kind ?? 'Gateway') === 'Gateway')
          gateways.add(`${p.namespace ?? this.target.namespace}/${p.name}`)
      }
    }
    // The target's own Service parents (group '' kind Service) in its namespace: mesh routes.
    const meshParents = (this.hr.spec.parentRefs ?? [])
      .filter(
        (p) =>
          p.group === '' && p.kind === 'Service' && (p.namespace ?? this.target.namespace) === this.target.namespace,
      )
      .map((p) => p.name)
    const rule = asRule(route)
    const state = this.stateRead
    const backends = sharesOf(rule)
    let host = state && isActive(state) && backends.has(state.stable) ? state.stable : ''
    if (!host && backends.size > 0) host = resolveStableBackend(rule, 'auto', undefined)
    return {
      destinationHost: host,
      gateways: [],
      gatewayApiGateways: [...gateways].sort(),
      meshParents,
      parents: this.accepted(),
    }
  }

  /**
   * Whether every parent accepted the route as last read (load() again to poll), per its status.parents: the
   * `Accepted` and `ResolvedRefs` conditions True with observedGeneration at metadata.generation (./hr-status.ts).
   */
  accepted(): Acceptance {
    return acceptanceOf(this.hr, this.ref)
  }

  /**
   * SPEC section 7 rule 3: after a write, reads the route until every parent shows Accepted and ResolvedRefs True
   * for its new generation (./hr-status.ts). Each read is kept (its resourceVersion, after the controllers' status
   * writes, is what the next write is conditional on).
   */
  async awaitApplied(signal: AbortSignal): Promise<void> {
    const started = (this.deps.now ?? Date.now)()
    const generation = this.resource?.metadata.generation
    await awaitAcceptance({
      read: async () => {
        this.set(await this.read())
        return this.hr
      },
      what: this.ref,
      signal,
      sleep: this.deps.sleep ?? realSleep,
      now: this.deps.now ?? Date.now,
      ...(this.deps.applyTimeoutMs !== undefined ? { timeoutMs: this.deps.applyTimeoutMs } : {}),
    })
    const after = (this.deps.now ?? Date.now)() - started
    const now = this.hr.metadata.generation
    const parents = (this.hr.spec.parentRefs ?? []).length
    this.deps.log(
      `${this.ref} generation ${now ?? generation ?? '?'} accepted by its ${parents === 1 ? 'parent' : `${parents} parents`} ` +
        `(Accepted, ResolvedRefs) after ${Math.round(after)} ms`,
    )
  }
}
