// The main step's side of the GitOps hand-back: which route of the manifest is the target (by name, else by
// its index among the routes that are not istio-canary's previews), checked before any change, written after.
import { readFile, writeFile } from 'node:fs/promises'
import type { VirtualService } from '../k8s/resources.js'
import { type HttpRoute, type RouteSelector, findRouteIndex, isPreviewRoute } from '../rollout/routes.js'
import { type HandBackTarget, handBack } from './manifest.js'

function targetOf(vs: VirtualService, selector: RouteSelector): { target: HandBackTarget; route: HttpRoute } {
  const http = vs.spec.http ?? []
  const index = findRouteIndex(vs.spec, selector, vs.metadata.name)
  const route = http[index] as HttpRoute
  const routeIndex = http.slice(0, index).filter((r) => !isPreviewRoute(r)).length
  const target: HandBackTarget = {
    kind: 'VirtualService',
    namespace: vs.metadata.namespace ?? '',
    name: vs.metadata.name,
    routeIndex,
    ...(typeof route.name === 'string' && route.name !== '' ? { routeName: route.name } : {}),
  }
  return { target, route }
}

/** Before any change: the manifest holds the target resource and route (throws a ManifestError naming the input). */
export async function checkManifest(path: string, vs: VirtualService, selector: RouteSelector): Promise<void> {
  const { target, route } = targetOf(vs, selector)
  handBack(await readFile(path, 'utf8'), target, route.route ?? [])
}

/** After `promoted` or `rolled-back`: the target route's destinations in the file become the cluster's. */
export async function handBackManifest(path: string, vs: VirtualService, selector: RouteSelector): Promise<boolean> {
  const { target, route } = targetOf(vs, selector)
  const { text, changed } = handBack(await readFile(path, 'utf8'), target, route.route ?? [])
  if (changed) await writeFile(path, text)
  return changed
}
