// In-memory object storage of the simulated Kubernetes API server, with real
// resourceVersion semantics: one cluster-wide counter, bumped on every write,
// and optimistic concurrency on update (a stale resourceVersion is a conflict).
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { isDeepStrictEqual } from 'node:util'

export type KubeObject = {
  apiVersion?: string
  kind?: string
  metadata: {
    name: string
    namespace?: string
    resourceVersion?: string
    uid?: string
    generation?: number
    creationTimestamp?: string
    labels?: Record<string, string>
    annotations?: Record<string, string>
    [k: string]: unknown
  }
  [k: string]: unknown
}

/** Group '' is the core group. Resource is the plural lower-case name (virtualservices, pods, leases). */
export interface ResourceRef {
  group: string
  resource: string
}

export class StoreError extends Error {
  constructor(
    readonly code: 404 | 409 | 422,
    readonly reason: 'NotFound' | 'AlreadyExists' | 'Conflict' | 'Invalid',
    message: string,
  ) {
    super(message)
  }
}

export interface WriteEvent {
  verb: 'create' | 'update' | 'delete'
  ref: ResourceRef
  namespace: string | undefined
  name: string
  object: KubeObject
}

const clone = <T>(v: T): T => structuredClone(v)

/** Equal as JSON documents (undefined members dropped as on the wire), key order aside. */
const sameContent = (a: unknown, b: unknown): boolean =>
  isDeepStrictEqual(JSON.parse(JSON.stringify(a ?? null)), JSON.parse(JSON.stringify(b ?? null)))

export class KubeStore extends EventEmitter {
  private rv = 1000
  private readonly data = new Map<string, Map<string, KubeObject>>()
  /** Every successful write, in order: tests assert "zero writes" and count them per step. */
  readonly writes: WriteEvent[] = []

  private bucket(ref: ResourceRef): Map<string, KubeObject> {
    const key = `${ref.group}/${ref.resource}`
    let b = this.data.get(key)
    if (!b) {
      b = new Map()
      this.data.set(key, b)
    }
    return b
  }

  private static key(namespace: string | undefined, name: string): string {
    return `${namespace ?? ''}/${name}`
  }

  get(ref: ResourceRef, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.bucket(ref).get(KubeStore.key(namespace, name))
    return o ? clone(o) : undefined
  }

  list(ref: ResourceRef, namespace?: string, labelSelector?: string): KubeObject[] {
    const match = parseLabelSelector(labelSelector)
    return [...this.bucket(ref).values()]
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .filter((o) => match(o.metadata.labels ?? {}))
      .sort((a, b) =>
        KubeStore.key(a.metadata.namespace, a.metadata.name).localeCompare(
          KubeStore.key(b.metadata.namespace, b.metadata.name),
        ),
      )
      .map(clone)
  }

  create(ref: ResourceRef, obj: KubeObject): KubeObject {
    const b = this.bucket(ref)
    const k = KubeStore.key(obj.metadata.namespace, obj.metadata.name)
    if (b.has(k)) throw new StoreError(409, 'AlreadyExists', `${ref.resource} "${obj.metadata.name}" already exists`)
    const o = clone(obj)
    o.metadata.uid = randomUUID()
    o.metadata.resourceVersion = String(++this.rv)
    o.metadata.generation = 1
    o.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
    b.set(k, o)
    this.record('create', ref, o)
    return clone(o)
  }

  /** Replaces the object. A resourceVersion in obj must equal the stored one (409 otherwise); none = unconditional. */
  update(ref: ResourceRef, obj: KubeObject): KubeObject {
    const b = this.bucket(ref)
    const k = KubeStore.key(obj.metadata.namespace, obj.metadata.name)
    const cur = b.get(k)
    if (!cur) throw new StoreError(404, 'NotFound', `${ref.resource} "${obj.metadata.name}" not found`)
    const want = obj.metadata.resourceVersion
    if (want !== undefined && want !== '' && want !== cur.metadata.resourceVersion) {
      throw new StoreError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${ref.resource} "${obj.metadata.name}": the object has been modified; ` +
          'please apply your changes to the latest version and try again',
      )
    }
    const o = clone(obj)
    o.metadata.uid = cur.metadata.uid as string
    o.metadata.creationTimestamp = cur.metadata.creationTimestamp as string
    o.metadata.resourceVersion = String(++this.rv)
    // Compared as the apiserver does (apiequality.Semantic.DeepEqual): by content, whatever the order of the keys.
    const specChanged = !sameContent(o['spec'], cur['spec'])
    o.metadata.generation = (cur.metadata.generation ?? 1) + (specChanged ? 1 : 0)
    b.set(k, o)
    this.record('update', ref, o)
    return clone(o)
  }

  delete(ref: ResourceRef, namespace: string | undefined, name: string): KubeObject {
    const b = this.bucket(ref)
    const k = KubeStore.key(namespace, name)
    const cur = b.get(k)
    if (!cur) throw new StoreError(404, 'NotFound', `${ref.resource} "${name}" not found`)
    b.delete(k)
    this.rv++
    this.record('delete', ref, cur)
    return clone(cur)
  }

  /**
   * Puts an object's spec and annotations back as in `original`, the rest of its live metadata kept (like a
   * person's `kubectl apply`).
   */
  restore(ref: ResourceRef, original: KubeObject): KubeObject {
    const cur = this.get(ref, original.metadata.namespace, original.metadata.name)
    if (!cur) throw new StoreError(404, 'NotFound', `${ref.resource} "${original.metadata.name}" not found`)
    const metadata: KubeObject['metadata'] = { ...cur.metadata }
    if (original.metadata.annotations) metadata.annotations = original.metadata.annotations
    else delete metadata.annotations
    return this.update(ref, { ...cur, metadata, spec: original['spec'] })
  }

  /** Current cluster-wide resourceVersion (for list metadata). */
  get resourceVersion(): string {
    return String(this.rv)
  }

  private record(verb: WriteEvent['verb'], ref: ResourceRef, object: KubeObject): void {
    const ev: WriteEvent = {
      verb,
      ref,
      namespace: object.metadata.namespace,
      name: object.metadata.name,
      object: clone(object),
    }
    this.writes.push(ev)
    this.emit('write', ev)
  }
}

/** Equality-based and set-based selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`. */
export function parseLabelSelector(selector: string | undefined): (labels: Record<string, string>) => boolean {
  if (!selector) return () => true
  const terms = selector.match(/[^,(]+(\([^)]*\))?/g) ?? []
  const tests = terms.map((raw) => {
    const t = raw.trim()
    let m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(t)
    if (m) {
      const [, key, op, vals] = m as unknown as [string, string, string, string]
      const set = new Set(vals.split(',').map((v) => v.trim()))
      return (l: Record<string, string>) =>
        op === 'in' ? key in l && set.has(l[key]!) : !(key in l) || !set.has(l[key]!)
    }
    m = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(t)
    if (m) {
      const [, key, op, val] = m as unknown as [string, string, string, string]
      return (l: Record<string, string>) => (op === '!=' ? l[key] !== val : l[key] === val)
    }
    m = /^(!?)([\w./-]+)$/.exec(t)
    if (m) {
      const [, neg, key] = m as unknown as [string, string, string]
      return (l: Record<string, string>) => (neg ? !(key in l) : key in l)
    }
    throw new StoreError(422, 'Invalid', `unable to parse requirement: ${t}`)
  })
  return (labels) => tests.every((f) => f(labels))
}
