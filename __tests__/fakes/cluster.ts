// An in-memory cluster behind the ports the router and the lock use (VirtualServiceApi, LeaseApi): optimistic
// concurrency as the API server does it (a PUT whose resourceVersion is not the stored one is a 409), and faults
// a test arms per call. For in-process tests of the engine and the modes; no I/O.
import type { V1Lease } from '@kubernetes/client-node'
import type { LeaseApi, VirtualServiceApi } from '../../src/k8s/ports.js'
import { ConflictError, KubeError, type VirtualService } from '../../src/k8s/resources.js'

export type Operation = 'getVirtualService' | 'replaceVirtualService' | 'listVirtualServices'

/** What an armed fault does to one call. */
export interface CallFault {
  /** The error the call throws. */
  error: Error
  /** The write is applied first and only its answer is lost (as after a connection reset). */
  afterApplying?: boolean
}

export class FakeCluster implements VirtualServiceApi, LeaseApi {
  private readonly virtualServices = new Map<string, VirtualService>()
  private readonly leases = new Map<string, V1Lease>()
  private version = 1
  private readonly faults: Array<{ op: Operation; fault: CallFault }> = []
  /** Runs before a replace is applied: a test plays someone else writing at that moment. */
  beforeReplace: ((cluster: FakeCluster) => void) | undefined
  /** Every call, in order. */
  readonly calls: Operation[] = []

  private key(namespace: string, name: string): string {
    return `${namespace}/${name}`
  }

  private nextVersion(): string {
    this.version += 1
    return String(this.version)
  }

  /** Stores a VirtualService as someone else would (a new resourceVersion), returning the stored copy. */
  put(vs: VirtualService): VirtualService {
    const stored = structuredClone(vs)
    stored.metadata.resourceVersion = this.nextVersion()
    this.virtualServices.set(this.key(stored.metadata.namespace ?? '', stored.metadata.name), stored)
    return structuredClone(stored)
  }

  /** The stored VirtualService (a copy). */
  virtualService(namespace: string, name: string): VirtualService {
    const vs = this.virtualServices.get(this.key(namespace, name))
    if (!vs) throw new Error(`fake: no VirtualService ${namespace}/${name}`)
    return structuredClone(vs)
  }

  /** Arms a fault for the next call of `op` (faults of one op fire in the order armed). */
  fail(op: Operation, fault: CallFault): void {
    this.faults.push({ op, fault })
  }

  private takeFault(op: Operation): CallFault | undefined {
    const index = this.faults.findIndex((f) => f.op === op)
    if (index < 0) return undefined
    return this.faults.splice(index, 1)[0]?.fault
  }

  async getVirtualService(namespace: string, name: string): Promise<VirtualService> {
    this.calls.push('getVirtualService')
    const fault = this.takeFault('getVirtualService')
    if (fault) throw fault.error
    const vs = this.virtualServices.get(this.key(namespace, name))
    if (!vs) throw new KubeError(404, 'NotFound', `virtualservices.networking.istio.io "${name}" not found`)
    return structuredClone(vs)
  }

  async listVirtualServices(namespace: string): Promise<VirtualService[]> {
    this.calls.push('listVirtualServices')
    const fault = this.takeFault('listVirtualServices')
    if (fault) throw fault.error
    return [...this.virtualServices.values()]
      .filter((v) => v.metadata.namespace === namespace)
      .map((v) => structuredClone(v))
  }

  async replaceVirtualService(vs: VirtualService): Promise<VirtualService> {
    this.calls.push('replaceVirtualService')
    const fault = this.takeFault('replaceVirtualService')
    if (fault && !fault.afterApplying) throw fault.error
    this.beforeReplace?.(this)
    const key = this.key(vs.metadata.namespace ?? '', vs.metadata.name)
    const stored = this.virtualServices.get(key)
    if (!stored)
      throw new KubeError(404, 'NotFound', `virtualservices.networking.istio.io "${vs.metadata.name}" not found`)
    if (stored.metadata.resourceVersion !== vs.metadata.resourceVersion) {
      throw new ConflictError(
        409,
        'Conflict',
        'the object has been modified; please apply your changes to the latest version and try again',
      )
    }
    const written = structuredClone(vs)
    written.metadata.resourceVersion = this.nextVersion()
    this.virtualServices.set(key, written)
    if (fault) throw fault.error
    return structuredClone(written)
  }

  async getLease(namespace: string, name: string): Promise<V1Lease | undefined> {
    const lease = this.leases.get(this.key(namespace, name))
    return lease && structuredClone(lease)
  }

  async createLease(namespace: string, body: V1Lease): Promise<V1Lease> {
    const key = this.key(namespace, body.metadata?.name ?? '')
    if (this.leases.has(key))
      throw new KubeError(409, 'AlreadyExists', `leases "${body.metadata?.name}" already exists`)
    const lease = { ...structuredClone(body), metadata: { ...body.metadata, resourceVersion: this.nextVersion() } }
    this.leases.set(key, lease)
    return structuredClone(lease)
  }

  async replaceLease(namespace: string, body: V1Lease): Promise<V1Lease> {
    const key = this.key(namespace, body.metadata?.name ?? '')
    const stored = this.leases.get(key)
    if (!stored || stored.metadata?.resourceVersion !== body.metadata?.resourceVersion) {
      throw new ConflictError(409, 'Conflict', 'the object has been modified')
    }
    const lease = { ...structuredClone(body), metadata: { ...body.metadata, resourceVersion: this.nextVersion() } }
    this.leases.set(key, lease)
    return structuredClone(lease)
  }

  async deleteLease(namespace: string, name: string, resourceVersion: string): Promise<void> {
    const key = this.key(namespace, name)
    const stored = this.leases.get(key)
    if (!stored) throw new KubeError(404, 'NotFound', `leases "${name}" not found`)
    if (stored.metadata?.resourceVersion !== resourceVersion)
      throw new ConflictError(409, 'Conflict', 'precondition failed')
    this.leases.delete(key)
  }
}
