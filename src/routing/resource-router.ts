// What every TrafficRouter does the same whatever its routing API: keeps the target resource as last read and the
// rollout state decoded from it, finds a selector's route (again, where a rollout's route moved), refuses a shadowed
// `route` input, and makes the conditional writes (the route with the state; a preview-only spec change). A router
// extends it with its API's calls, how its resource holds routes, and its words; the route logic stays its own.
import type { ObjectMeta } from '../k8s/resources.js'
import type { Sleep } from '../retry.js'
import { writeConditionally } from './conditional.js'
import { movedRoute } from './moved.js'
import { type RouteStore, writeRouteAndState } from './route-write.js'
import {
  type ManifestTarget,
  type Route,
  RouteError,
  type RouteSelector,
  type TargetRef,
  describeSelector,
  describeTarget,
} from './router.js'
import { previewRouteName } from './shares.js'
import { type RolloutState, decodeState, isActive } from './state.js'

export interface RouterDeps {
  log: (message: string) => void
  /** How a router waits between reads of its controllers' status (awaitApplied); default: real time. */
  sleep?: Sleep
  now?: () => number
  /** Bound of awaitApplied (default: the router's own, e.g. ACCEPT_TIMEOUT_MS). */
  applyTimeoutMs?: number
}

/** One route as its resource holds it (a VirtualService http route, an HTTPRoute rule): the base reads its name. */
export type Entry = { name?: string; [k: string]: unknown }

/** How the messages name an API's routes, in its own terms. */
export interface RouteWords {
  /** One route, with its number or name: 'http route', 'rule'. */
  one: string
  /** Routes: 'routes', 'rules'. */
  many: string
  /** What the conflict messages and "Shift … instead" call it: 'route', 'rule'. */
  noun: string
  /** Why an earlier route takes the input's traffic ("… before it <shadows>") and how to mend it ("or <unshadow>"). */
  shadows: string
  unshadow: string
}

/**
 * The resource `R` (its spec `S`, its routes `E`) behind one routing API. The selector-to-index lookup follows a
 * rollout's positional selector where its route moved (./moved.ts); every write is conditional on the version read
 * (./conditional.ts, ./route-write.ts), and every read keeps the state decoded with it.
 */
export abstract class ResourceRouter<R extends { metadata: ObjectMeta; spec: S }, S, E extends Entry> {
  private resource: R | undefined
  private stateRead: RolloutState | undefined
  /** Log lines said once per router (a moved route is found again at every lookup). */
  private readonly told = new Set<string>()

  constructor(
    readonly target: TargetRef,
    protected readonly deps: RouterDeps,
  ) {}

  /** The API's read of the target resource: one GET. */
  protected abstract readResource(): Promise<R>
  /** The API's conditional write of it: one PUT with the resourceVersion read. */
  protected abstract replaceResource(resource: R): Promise<R>
  /** The spec's routes, in order: its own array (empty when it has none). */
  protected abstract entries(spec: S): E[]
  /** Puts `entries` in the spec in place of its routes. */
  protected abstract setEntries(spec: S, entries: E[]): void
  /** Where the selector points as it reads (a RouteError when nowhere, or at a route without destinations). */
  protected abstract findIndex(spec: S, selector: RouteSelector): number
  protected abstract isPreview(entry: E): boolean
  /** The index of an earlier user route that takes every request the route at `index` would get, or -1. */
  protected abstract shadowing(entries: E[], index: number): number
  /** Whether a write of `next` in place of `current` would change nothing the API server keeps. */
  protected abstract sameSpec(next: S, current: S): boolean
  /** A new spec without the preview route for the header value. */
  protected abstract withoutPreview(spec: S, value: string): S
  /** What a manifest of the route would give as its destinations. */
  protected abstract destinations(entry: E): unknown
  protected abstract readonly words: RouteWords

  abstract same(a: Route | undefined, b: Route | undefined): boolean
  abstract describe(route: Route): string

  protected get ref(): string {
    return describeTarget(this.target)
  }

  /** The resource as last read. */
  protected get current(): R {
    if (!this.resource) throw new Error(`internal: ${this.ref} was not read`)
    return this.resource
  }

  /** The resource as last read, if it was. */
  protected get lastRead(): R | undefined {
    return this.resource
  }

  private set(resource: R): void {
    this.resource = resource
    this.stateRead = decodeState(resource.metadata.annotations, this.target)
  }

  /** Reads the resource again, and keeps it. */
  protected async reload(): Promise<R> {
    this.set(await this.readResource())
    return this.current
  }

  async load(): Promise<void> {
    await this.reload()
  }

  get state(): RolloutState | undefined {
    return this.stateRead
  }

  get revision(): string | undefined {
    return this.resource?.metadata.resourceVersion
  }

  private describeSelector(selector: RouteSelector): string {
    return describeSelector(selector, this.target.kind)
  }

  /**
   * Where the selector's route is in `resource`. A rollout's positional selector (an index, or the default route)
   * is checked against what istio-canary last wrote there (the state annotation's `lastWritten`): when someone added
   * or removed routes before it, the route is found again where exactly one user route is what the action last
   * wrote. Never a guess: none, or several alike, leave the selector's own answer (and the write's conflict check).
   * `literal`: the selector as it reads.
   */
  private index(selector: RouteSelector, resource: R = this.current, literal = false): number {
    let found: number | undefined
    let error: unknown
    try {
      found = this.findIndex(resource.spec, selector)
    } catch (err) {
      error = err
    }
    const moved = literal ? undefined : this.movedRoute(selector, resource, found)
    if (moved !== undefined) return moved
    if (error !== undefined) throw error
    return found as number
  }

  private movedRoute(selector: RouteSelector, resource: R, found: number | undefined): number | undefined {
    const moved = movedRoute(selector, this.target, {
      annotations: resource.metadata.annotations,
      routes: this.entries(resource.spec),
      found,
      isPreview: (r) => this.isPreview(r as E),
      same: (a, b) => this.same(a, b),
    })
    if (!moved) return undefined
    const message =
      `${this.describeSelector(selector)} of ${this.ref} moved (${this.words.many} were added or removed before it): ` +
      `found it by what istio-canary last wrote, now ${this.words.one} #${moved.position}`
    if (!this.told.has(message)) {
      this.told.add(message)
      this.deps.log(message)
    }
    return moved.index
  }

  private safeIndex(selector: RouteSelector, resource: R = this.current): number {
    try {
      return this.index(selector, resource)
    } catch {
      return -1
    }
  }

  route(selector: RouteSelector): Route {
    return this.entries(this.current.spec)[this.index(selector)] as E
  }

  findRoute(selector: RouteSelector): Route | undefined {
    return this.entries(this.current.spec)[this.safeIndex(selector)]
  }

  inputRoute(options: { shadowed: 'refuse' | 'allow' } = { shadowed: 'refuse' }): Route {
    const selector = this.target.route
    let index: number
    try {
      // A new rollout takes the input as it reads now; only one in progress follows its route where it moved.
      index = this.index(selector, this.current, !isActive(this.stateRead))
    } catch (err) {
      if (err instanceof RouteError && selector.by !== 'default') throw new RouteError(`Input 'route': ${err.message}`)
      throw err
    }
    const entries = this.entries(this.current.spec)
    const shadow = this.shadowing(entries, index)
    if (shadow >= 0 && options.shadowed === 'refuse') {
      const shadowName = entries[shadow]?.name
      const name = shadowName ? `'${shadowName}'` : `#${shadow}`
      throw new RouteError(
        `Input 'route': ${this.describeSelector(selector)} of ${this.ref} receives no traffic: ` +
          `${this.words.one} ${name} before it ${this.words.shadows}. ` +
          `Shift ${this.words.noun} ${name} instead, or ${this.words.unshadow}`,
      )
    }
    return entries[index] as E
  }

  selectorFor(route: Route, fallback: RouteSelector): RouteSelector {
    const name = (route as E).name
    return typeof name === 'string' && name !== '' ? { by: 'name', name } : fallback
  }

  async write(selector: RouteSelector, expected: Route, next: Route, state: RolloutState | undefined): Promise<void> {
    const store: RouteStore<R> = {
      target: this.target,
      what: this.ref,
      noun: this.words.noun,
      kubectl: `kubectl -n ${this.target.namespace} get ${this.target.kind.toLowerCase()} ${this.target.name} -o yaml`,
      read: () => this.readResource(),
      replace: (resource) => this.replaceResource(resource),
      log: this.deps.log,
      routes: (resource) => this.entries(resource.spec),
      setRoutes: (resource, routes) => this.setEntries(resource.spec, routes as E[]),
      indexOf: (resource) => this.safeIndex(selector, resource),
      same: (a, b) => this.same(a, b),
      describe: (route) => this.describe(route),
      selector: this.describeSelector(selector),
    }
    const change = { current: this.current, expected, next, state, before: this.stateRead }
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
    return this.entries(this.current.spec).find((r) => r.name === previewRouteName(value))
  }

  restorePreview(value: string, before: Route | undefined): Promise<boolean> {
    return this.writeSpec((spec) => {
      const removed = this.withoutPreview(spec, value)
      if (before) this.setEntries(removed, [before as E, ...this.entries(removed)])
      return removed
    })
  }

  /** A spec change that only adds/removes preview routes: re-applied on a fresh read after a conflict. */
  protected async writeSpec(change: (spec: S) => S): Promise<boolean> {
    const { resource, written } = await writeConditionally<R>({
      current: this.current,
      read: () => this.reload(),
      replace: (resource) => this.replaceResource(resource),
      what: this.ref,
      log: this.deps.log,
      change: (resource) => {
        const spec = change(resource.spec)
        return this.sameSpec(spec, resource.spec) ? undefined : { ...resource, spec }
      },
    })
    this.set(resource)
    return written
  }

  manifestTarget(selector: RouteSelector): ManifestTarget {
    const entries = this.entries(this.current.spec)
    const index = this.index(selector)
    const entry = entries[index] as E
    return {
      kind: this.target.kind,
      namespace: this.target.namespace,
      name: this.target.name,
      routeIndex: entries.slice(0, index).filter((r) => !this.isPreview(r)).length,
      ...(typeof entry.name === 'string' && entry.name !== '' ? { routeName: entry.name } : {}),
      destinations: this.destinations(entry),
    }
  }
}
