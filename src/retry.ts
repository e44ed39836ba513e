// Retry with capped, fully jittered exponential backoff. The sleep is injectable so tests never wait.

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>

export const realSleep: Sleep = (ms, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error)
      return
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(t)
      reject(signal?.reason as Error)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })

export interface RetryOptions {
  /** Attempts in all, the first included. */
  attempts: number
  baseMs: number
  maxMs: number
  sleep: Sleep
  /** Whether an error is worth another attempt. */
  retryable: (err: unknown) => boolean
  /** A server-given delay (Retry-After), used instead of the backoff when present. */
  retryAfterMs?: (err: unknown) => number | undefined
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void
  random?: () => number
  signal?: AbortSignal
}

export const defaultRetry: Omit<RetryOptions, 'retryable'> = {
  attempts: 5,
  baseMs: 500,
  maxMs: 10_000,
  sleep: realSleep,
}

export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const random = opts.random ?? Math.random
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt)
    } catch (err) {
      if (attempt >= opts.attempts || !opts.retryable(err) || opts.signal?.aborted) throw err
      const cap = Math.min(opts.maxMs, opts.baseMs * 2 ** (attempt - 1))
      const delay = Math.min(opts.maxMs, opts.retryAfterMs?.(err) ?? Math.round(random() * cap))
      opts.onRetry?.(err, attempt, delay)
      await opts.sleep(delay, opts.signal)
    }
  }
}

/** HTTP statuses worth retrying: throttling and server-side failures. */
export function isRetryableStatus(status: number | undefined): boolean {
  return status === 408 || status === 429 || (status !== undefined && status >= 500 && status <= 599)
}

/** Network-level failures worth retrying (resets, refused connections, timeouts). */
export function isTransientNetworkError(err: unknown): boolean {
  const codes = new Set([
    'ECONNRESET',
    'ECONNREFUSED',
    'ETIMEDOUT',
    'EPIPE',
    'EAI_AGAIN',
    'UND_ERR_SOCKET',
    'UND_ERR_CONNECT_TIMEOUT',
    'ENOTFOUND',
  ])
  return causeChain(err, 4).some((e) => {
    const code = (e as { code?: unknown }).code
    return typeof code === 'string' && codes.has(code)
  })
}

/** `err` and the errors of its `cause` chain, outermost first: at most `depth` of them, up to the first empty cause. */
export function causeChain(err: unknown, depth = 6): unknown[] {
  const chain: unknown[] = []
  for (let e: unknown = err; e && chain.length < depth; e = (e as { cause?: unknown }).cause) chain.push(e)
  return chain
}
