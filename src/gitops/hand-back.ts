// The main step's side of the GitOps hand-back: the target route (found by the router: by name, else by its index
// among the routes that are not istio-canary's previews) is checked in the manifest before any change, written after.
import { readFile, writeFile } from 'node:fs/promises'
import type { ManifestTarget } from '../routing/router.js'
import { type HandBackTarget, handBack } from './manifest.js'

function split(target: ManifestTarget): { target: HandBackTarget; destinations: unknown } {
  const { destinations, ...where } = target
  return { target: where, destinations }
}

/** Before any change: the manifest holds the target resource and route (throws a ManifestError naming the input). */
export async function checkManifest(path: string, manifestTarget: ManifestTarget): Promise<void> {
  const { target, destinations } = split(manifestTarget)
  handBack(await readFile(path, 'utf8'), target, destinations)
}

/** After `promoted` or `rolled-back`: the target route's destinations in the file become the cluster's. */
export async function handBackManifest(path: string, manifestTarget: ManifestTarget): Promise<boolean> {
  const { target, destinations } = split(manifestTarget)
  const { text, changed } = handBack(await readFile(path, 'utf8'), target, destinations)
  if (changed) await writeFile(path, text)
  return changed
}
