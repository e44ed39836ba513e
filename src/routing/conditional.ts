// Optimistic concurrency for every router: a write conditional on the version read, re-read and re-applied after
// a conflict, a bounded number of times. What a re-read must show to go on is the caller's `change`.
import { ConflictError } from '../k8s/resources.js'

/** Conflicts (409) one write survives before it gives up: each means someone else wrote in between. */
export const MAX_WRITE_ATTEMPTS = 5

export interface ConditionalWrite<T> {
  /** The resource as last read. */
  current: T
  /** Reads it again after a conflict. */
  read: () => Promise<T>
  /** The conditional write (PUT with the resourceVersion read): a ConflictError when someone else wrote. */
  replace: (next: T) => Promise<T>
  /** The resource as it should be, made from a fresh copy of the one read; undefined: nothing to write.
   * Throws to stop. */
  change: (resource: T) => T | undefined
  /** After a conflict, on the fresh read: true when this write already landed (a lost answer of an applied write). */
  landed?: (fresh: T) => boolean
  log: (message: string) => void
  /** How the log names the resource. */
  what: string
}

/** The resource after the write (or as read, when there was nothing to write), and whether anything was written. */
export async function writeConditionally<T>(w: ConditionalWrite<T>): Promise<{ resource: T; written: boolean }> {
  let current = w.current
  for (let attempt = 1; ; attempt++) {
    const next = w.change(structuredClone(current))
    if (next === undefined) return { resource: current, written: false }
    try {
      return { resource: await w.replace(next), written: true }
    } catch (err) {
      if (!(err instanceof ConflictError) || attempt >= MAX_WRITE_ATTEMPTS) throw err
      w.log(`${w.what} changed since it was read; re-reading`)
      current = await w.read()
      // Our own write went through and only its answer was lost (a retried PUT then conflicts with itself).
      if (w.landed?.(current)) return { resource: current, written: true }
    }
  }
}
