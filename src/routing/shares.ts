// Pure helpers every router shares: weights read as shares and apportioned to integers summing to 100, the
// preview route's name, and canonical JSON to compare routes by. No I/O.
import { createHash } from 'node:crypto'

/** Every preview route (VirtualService http route, HTTPRoute rule) istio-canary adds is named with this prefix. */
export const PREVIEW_ROUTE_PREFIX = 'istio-canary-preview-'

/** Split 0..100 among the given shares in proportion, by largest remainder so the parts sum exactly to total. */
export function apportion(shares: number[], total: number): number[] {
  const sum = shares.reduce((a, b) => a + b, 0)
  if (shares.length === 0) return []
  if (sum === 0)
    return apportion(
      shares.map((_, i) => (i === 0 ? 1 : 0)),
      total,
    )
  const exact = shares.map((s) => (s * total) / sum)
  const floor = exact.map(Math.floor)
  let left = total - floor.reduce((a, b) => a + b, 0)
  const order = exact.map((e, i) => [e - Math.floor(e), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1])
  for (const [, i] of order) {
    if (left <= 0) break
    floor[i] = (floor[i] as number) + 1
    left--
  }
  return floor
}

/** A readable name per preview value, with a digest of the exact value so that distinct values never share one. */
export function previewRouteName(value: string): string {
  const slug = value
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
  const digest = createHash('sha256').update(value).digest('hex').slice(0, 8)
  return `${PREVIEW_ROUTE_PREFIX}${slug ? `${slug}-` : ''}${digest}`
}

/** Canonical JSON (sorted keys), for comparing routes regardless of key order. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  )
}
