// The one write every router makes for a rollout: the target route and the rollout state annotation in one
// conditional write, re-read and re-applied after a conflict while the route is still what this run expects and
// the state is still this run's; else a ConcurrentChangeError, never an overwrite.
import type { ObjectMeta } from '../k8s/resources.js'
import { writeConditionally } from './conditional.js'
import { ConcurrentChangeError, type Route } from './router.js'
import { type RolloutState, STATE_ANNOTATION, decodeState, encodeState } from './state.js'
import { canonical } from './shares.js'
import type { TargetRef } from './target.js'

/** How one routing API keeps its routes, for the shared write. */
export interface RouteStore<T extends { metadata: ObjectMeta }> {
  target: TargetRef
  /** `Kind ns/name`, for messages and the log. */
  what: string
  /** What the messages call a route: 'route' (VirtualService http route), 'rule' (HTTPRoute rule). */
  noun: string
  /** Where to look: a kubectl command that shows the resource. */
  kubectl: string
  read: () => Promise<T>
  replace: (resource: T) => Promise<T>
  log: (message: string) => void
  /** The resource's routes (a mutable array of the resource passed in). */
  routes: (resource: T) => Route[]
  setRoutes: (resource: T, routes: Route[]) => void
  /** Index of the route the selector names in this resource, -1 when none. */
  indexOf: (resource: T) => number
  same: (a: Route | undefined, b: Route | undefined) => boolean
  describe: (route: Route) => string
  /** How the selector reads in a message. */
  selector: string
}

/**
 * Writes `next` in place of the route (expected to be `expected`) and `state` (undefined: removed), the state
 * having been `before` when read. `onRead` sees every fresh read at once (a refusal is decided on it).
 */
export async function writeRouteAndState<T extends { metadata: ObjectMeta }>(
  store: RouteStore<T>,
  change: {
    current: T
    expected: Route
    next: Route
    state: RolloutState | undefined
    before: RolloutState | undefined
  },
  onRead: (fresh: T) => void,
): Promise<T> {
  let reread = false
  const { resource } = await writeConditionally<T>({
    current: change.current,
    read: async () => {
      reread = true
      const fresh = await store.read()
      onRead(fresh)
      return fresh
    },
    replace: store.replace,
    what: store.what,
    log: store.log,
    landed: (fresh) =>
      store.same(store.routes(fresh)[store.indexOf(fresh)], change.next) &&
      canonical(decodeState(fresh.metadata.annotations, store.target)) === canonical(change.state),
    change: (resource) => {
      if (reread) checkStateOwner(store, resource, change.before)
      const index = store.indexOf(resource)
      const routes = store.routes(resource)
      if (index < 0) {
        throw new ConcurrentChangeError(
          `the target ${store.noun} of ${store.what} (${store.selector}) is gone: ` +
            `someone else changed the ${store.target.kind} during the run; not writing it (${store.kubectl})`,
        )
      }
      const now = routes[index] as Route
      if (!store.same(now, change.expected)) {
        throw new ConcurrentChangeError(
          `the target ${store.noun} of ${store.what} was changed by someone else during the run; ` +
            `not overwriting it. It now routes: ${store.describe(now)}; ` +
            `istio-canary expected: ${store.describe(change.expected)}. Check who changed it (${store.kubectl})`,
        )
      }
      routes[index] = structuredClone(change.next)
      store.setRoutes(resource, routes)
      const annotations = { ...(resource.metadata.annotations ?? {}) }
      if (change.state) annotations[STATE_ANNOTATION] = encodeState(change.state)
      else delete annotations[STATE_ANNOTATION]
      resource.metadata.annotations = annotations
      return resource
    },
  })
  return resource
}

/** After a conflict: the rollout state must still be the one this run wrote (or read), else someone took over. */
function checkStateOwner<T extends { metadata: ObjectMeta }>(
  store: RouteStore<T>,
  fresh: T,
  before: RolloutState | undefined,
): void {
  const now = decodeState(fresh.metadata.annotations, store.target)
  if (before && now?.runId !== before.runId) {
    throw new ConcurrentChangeError(
      `the rollout state of ${store.what} was changed by someone else during the run ` +
        `(now: ${now ? `run ${now.runId}, ${now.phase}` : 'removed'}); not overwriting it (${store.kubectl})`,
    )
  }
}
