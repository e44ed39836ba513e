// The TrafficRouter for a Gateway API HTTPRoute: its spec.rules, relative weights per backendRef (one Service per
// version), the rollout state in the same annotation as on a VirtualService, and preview rules inserted first.
// What every router does alike (reads, lookups, writes conditional on the resourceVersion read) is
// ./resource-router.ts; this file holds what is Gateway API's, with the wait for its parents' acceptance.
import type { HttpRouteApi } from '../k8s/ports.js'
import type { BackendRef, GatewayHttpRoute, GatewayHttpRouteSpec, HttpRouteRule } from '../k8s/resources.js'
import { realSleep } from '../retry.js'
import {
  backendWeightOf,
  describeRuleSplit,
  findRuleIndex,
  isPreviewRule,
  normalSpec,
  resolveStableBackend,
  ruleAtWeight,
  sameRule,
  shadowingRule,
  sharesOf,
  withPreviewRule,
  withoutPreviewRule,
} from './hr-rules.js'
import { type Acceptance, acceptanceOf, awaitAcceptance } from './hr-status.js'
import { ResourceRouter, type RouterDeps, type RouteWords } from './resource-router.js'
import {
  type MeshFacts,
  type Route,
  RouteError,
  type RouteSelector,
  type TargetRef,
  type TrafficRouter,
} from './router.js'
import { canonical } from './shares.js'
import { isActive } from './state.js'

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

export class HttpRouteRouter
  extends ResourceRouter<GatewayHttpRoute, GatewayHttpRouteSpec, HttpRouteRule>
  implements TrafficRouter
{
  protected readonly words: RouteWords = {
    one: 'rule',
    many: 'rules',
    noun: 'rule',
    shadows: 'has the same matches and takes every request it would',
    unshadow: 'give the rules different matches',
  }

  constructor(
    private readonly api: HttpRouteApi,
    target: TargetRef,
    deps: RouterDeps,
  ) {
    super(target, deps)
  }

  protected readResource(): Promise<GatewayHttpRoute> {
    return this.api.getHttpRoute(this.target.namespace, this.target.name)
  }

  protected replaceResource(hr: GatewayHttpRoute): Promise<GatewayHttpRoute> {
    return this.api.replaceHttpRoute(hr)
  }

  protected entries(spec: GatewayHttpRouteSpec): HttpRouteRule[] {
    return spec.rules ?? []
  }

  protected setEntries(spec: GatewayHttpRouteSpec, rules: HttpRouteRule[]): void {
    spec.rules = rules
  }

  protected findIndex(spec: GatewayHttpRouteSpec, selector: RouteSelector): number {
    return findRuleIndex(spec, selector, this.target.name)
  }

  protected isPreview(rule: HttpRouteRule): boolean {
    return isPreviewRule(rule)
  }

  /** Precedence is by match, not order: only an earlier rule with the same matches wins the tie (./hr-rules.ts). */
  protected shadowing(rules: HttpRouteRule[], index: number): number {
    return shadowingRule(rules, index)
  }

  /** Compared as the API server stores them (its defaults written in): a write of what it holds changes nothing. */
  protected sameSpec(next: GatewayHttpRouteSpec, current: GatewayHttpRouteSpec): boolean {
    return canonical(normalSpec(next)) === canonical(normalSpec(current))
  }

  protected withoutPreview(spec: GatewayHttpRouteSpec, value: string): GatewayHttpRouteSpec {
    return withoutPreviewRule(spec, value).spec
  }

  protected destinations(rule: HttpRouteRule): unknown {
    return (rule.backendRefs ?? []).map(withoutDefaults)
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
    const meshParents = (this.current.spec.parentRefs ?? [])
      .filter(
        (p) =>
          p.group === '' && p.kind === 'Service' && (p.namespace ?? this.target.namespace) === this.target.namespace,
      )
      .map((p) => p.name)
    const rule = asRule(route)
    const state = this.state
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
    return acceptanceOf(this.current, this.ref)
  }

  /**
   * SPEC section 7 rule 3: after a write, reads the route until every parent shows Accepted and ResolvedRefs True
   * for its new generation (./hr-status.ts). Each read is kept (its resourceVersion, after the controllers' status
   * writes, is what the next write is conditional on).
   */
  async awaitApplied(signal: AbortSignal): Promise<void> {
    const started = (this.deps.now ?? Date.now)()
    const generation = this.lastRead?.metadata.generation
    await awaitAcceptance({
      read: () => this.reload(),
      what: this.ref,
      signal,
      sleep: this.deps.sleep ?? realSleep,
      now: this.deps.now ?? Date.now,
      ...(this.deps.applyTimeoutMs !== undefined ? { timeoutMs: this.deps.applyTimeoutMs } : {}),
    })
    const after = (this.deps.now ?? Date.now)() - started
    const now = this.current.metadata.generation
    const parents = (this.current.spec.parentRefs ?? []).length
    this.deps.log(
      `${this.ref} generation ${now ?? generation ?? '?'} accepted by its ${parents === 1 ? 'parent' : `${parents} parents`} ` +
        `(Accepted, ResolvedRefs) after ${Math.round(after)} ms`,
    )
  }
}
