// One rollout at a time per target: a coordination.k8s.io Lease named after it, held by the run,
// renewed while the run lives, and taken over only once it has expired (its holder died).
import { type V1Lease, V1MicroTime } from '@kubernetes/client-node'
import type { LeaseApi } from '../k8s/ports.js'
import { KubeError } from '../k8s/resources.js'
import { type Sleep, defaultRetry, isRetryableStatus, realSleep } from '../retry.js'
import { type TargetRef, describeTarget } from '../routing/router.js'

/** The resource a lock guards. */
export type LockTarget = Pick<TargetRef, 'kind' | 'namespace' | 'name'>

export class LockHeldError extends Error {
  override name = 'LockHeldError'
}

/** One Lease per target resource: a VirtualService's keeps the name earlier releases gave it. */
export function leaseName(target: LockTarget): string {
  const kind: string = target.kind
  const prefix = kind === 'VirtualService' ? '' : `${kind.toLowerCase()}-`
  return `istio-canary-${prefix}${target.name}`.slice(0, 253).replace(/[.-]+$/, '')
}

export interface LockOptions {
  target: LockTarget
  holder: string
  ttlMs: number
  now?: () => Date
  log?: (msg: string) => void
  sleep?: Sleep
  random?: () => number
}

/**
 * A failure of the Lease create whose outcome is unknown or worth another try: throttling, a 5xx, a reset or a lost
 * answer (the client's NetworkError). The create may have landed: the next attempt reads the Lease first.
 */
function transientCreateError(err: unknown): boolean {
  return err instanceof KubeError && (isRetryableStatus(err.status) || err.reason === 'NetworkError')
}

export class RolloutLock {
  private lease: V1Lease | undefined
  private timer: NodeJS.Timeout | undefined
  private renewing: Promise<void> | undefined
  private lost: Error | undefined

  constructor(
    private readonly kube: LeaseApi,
    private readonly o: LockOptions,
  ) {}

  get name(): string {
    return leaseName(this.o.target)
  }

  private now(): Date {
    return this.o.now?.() ?? new Date()
  }

  private body(base?: V1Lease): V1Lease {
    // Kubernetes MicroTime wants six fractional digits: V1MicroTime serializes so (a Date would be refused).
    const now = new V1MicroTime(this.now().getTime())
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        ...(base?.metadata ?? {}),
        name: this.name,
        namespace: this.o.target.namespace,
        labels: { ...(base?.metadata?.labels ?? {}), 'app.kubernetes.io/managed-by': 'istio-canary' },
        annotations: {
          ...(base?.metadata?.annotations ?? {}),
          'istio-canary.io/target': `${this.o.target.kind}/${this.o.target.name}`,
        },
      },
      spec: {
        holderIdentity: this.o.holder,
        leaseDurationSeconds: Math.ceil(this.o.ttlMs / 1000),
        acquireTime: (base?.spec?.holderIdentity === this.o.holder ? base.spec.acquireTime : undefined) ?? now,
        renewTime: now,
        leaseTransitions:
          (base?.spec?.leaseTransitions ?? 0) + (base && base.spec?.holderIdentity !== this.o.holder ? 1 : 0),
      },
    }
  }

  /**
   * Takes the lock or throws LockHeldError naming the live holder. A create that failed in a way that may have landed
   * (5xx, reset, lost answer) is not retried blindly: the Lease is read again, and one held by this run is its own
   * (kept and renewed). Bounded: 3 conflicts, and the client's retry count of transient failures.
   */
  async acquire(): Promise<void> {
    const sleep = this.o.sleep ?? realSleep
    const random = this.o.random ?? Math.random
    let conflicts = 0
    let transient = 0
    let uncertain = false
    for (;;) {
      const cur = await this.kube.getLease(this.o.target.namespace, this.name)
      try {
        if (!cur) {
          this.lease = await this.kube.createLease(this.o.target.namespace, this.body())
        } else {
          const holder = cur.spec?.holderIdentity
          if (holder && holder !== this.o.holder && !this.expired(cur)) {
            const renewed = cur.spec?.renewTime ? new Date(cur.spec.renewTime).toISOString() : 'never'
            throw new LockHeldError(
              `another istio-canary run holds the lock on ${describeTarget(this.o.target)}: ` +
                `Lease ${this.o.target.namespace}/${this.name} is held by '${holder}' (renewed ${renewed}, ` +
                `expires after ${cur.spec?.leaseDurationSeconds ?? '?'} s without renewal). ` +
                `Wait for that run to finish; a lock left by a dead run expires by itself`,
            )
          }
          if (holder && holder !== this.o.holder) this.o.log?.(`Taking over expired lock held by '${holder}'`)
          if (holder === this.o.holder && uncertain) {
            this.o.log?.(
              `The Lease ${this.o.target.namespace}/${this.name} is this run's own: its create landed although ` +
                'its answer did not arrive; keeping it',
            )
          }
          this.lease = await this.kube.replaceLease(this.o.target.namespace, this.body(cur))
        }
        this.startRenewing()
        return
      } catch (err) {
        // Someone created or renewed it between our read and write (or our own create landed): read again.
        if (err instanceof KubeError && err.status === 409) {
          if (++conflicts < 3) continue
          throw new LockHeldError(
            `could not take the lock Lease ${this.o.target.namespace}/${this.name}: it kept changing under us`,
          )
        }
        if (!cur && transientCreateError(err) && ++transient < defaultRetry.attempts) {
          uncertain = true
          const delay = Math.round(random() * Math.min(defaultRetry.maxMs, defaultRetry.baseMs * 2 ** (transient - 1)))
          this.o.log?.(`${(err as Error).message}; reading the Lease again in ${delay} ms (the create may have landed)`)
          await sleep(delay)
          continue
        }
        throw err
      }
    }
  }

  private expired(l: V1Lease): boolean {
    const renew = l.spec?.renewTime ?? l.spec?.acquireTime
    if (!renew) return true
    const ttl = (l.spec?.leaseDurationSeconds ?? 0) * 1000
    return new Date(renew).getTime() + ttl < this.now().getTime()
  }

  private startRenewing(): void {
    const every = Math.max(1000, Math.floor(this.o.ttlMs / 3))
    this.timer = setInterval(() => {
      this.renewing ??= this.renew().finally(() => (this.renewing = undefined))
    }, every)
    this.timer.unref()
  }

  private async renew(): Promise<void> {
    if (!this.lease) return
    try {
      this.lease = await this.kube.replaceLease(this.o.target.namespace, this.body(this.lease))
    } catch (err) {
      this.lost = err as Error
      this.o.log?.(`Could not renew the lock Lease ${this.o.target.namespace}/${this.name}: ${(err as Error).message}`)
    }
  }

  /** Throws when the lock could not be renewed: the run must stop changing traffic. */
  check(): void {
    if (this.lost) throw new LockHeldError(`lost the lock on ${describeTarget(this.o.target)}: ${this.lost.message}`)
  }

  /** Stops renewing without releasing: the lease expires unless someone (the post step) releases it first. */
  stopRenewing(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  async release(): Promise<void> {
    this.stopRenewing()
    await this.renewing
    const lease = this.lease
    this.lease = undefined
    if (!lease?.metadata?.resourceVersion) return
    try {
      await this.kube.deleteLease(this.o.target.namespace, this.name, lease.metadata.resourceVersion)
    } catch (err) {
      if (err instanceof KubeError && (err.status === 404 || err.status === 409)) return
      throw err
    }
  }
}

/** Post step: remove the lock if this run still holds it (the main step was killed before releasing it). */
export async function releaseIfHeld(kube: LeaseApi, target: LockTarget, holder: string): Promise<boolean> {
  const cur = await kube.getLease(target.namespace, leaseName(target))
  if (!cur || cur.spec?.holderIdentity !== holder || !cur.metadata?.resourceVersion) return false
  await kube.deleteLease(target.namespace, leaseName(target), cur.metadata.resourceVersion)
  return true
}
