// The Istio releases istio-canary supports and is tested against: the one place that names them. The simulation
// defaults to the newest, the test suite and .github/workflows/e2e-kind.yml run the oldest and the newest, and the
// README's "Supported Istio versions" lists them (a unit test keeps all of them in step with this file).
//
// Verified against the real releases (istio/istio tags and istio.io release notes): 1.31.0 was announced 2026-08-31,
// its first patch 1.31.1 on 2026-09-21, together with 1.30.5 and 1.29.8 (content/en/news/releases/1.31.x/
// announcing-1.31.1, 1.29.x/announcing-1.29.8). Istio supports the last three minors; the AKS Istio add-on offers
// the revisions asm-1-29 and asm-1-30 (`az aks mesh get-revisions`). istioctl's flags the action
// uses (analyze, version, install, x precheck, the root flags) are the same from 1.29.0 to 1.31.x; 1.27.0 added
// the root flag --kubeclient-timeout (istio/istio#56020), 1.25.0 `analyze -r` (istio/istio#53339).

/** The oldest Istio release supported: the oldest minor still supported upstream and on AKS (asm-1-29). */
export const OLDEST_SUPPORTED_ISTIO = '1.29.8'
/** The newest Istio release supported and the simulation's default. */
export const NEWEST_SUPPORTED_ISTIO = '1.31.1'

/** [major, minor] of `1.29.8`, `1.31.0-rc.0`. */
export function minorOf(version: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)\./.exec(version)
  return m ? [Number(m[1]), Number(m[2])] : undefined
}

/**
 * Whether a control plane's version is inside the supported minors (patches of a supported minor are all
 * supported); undefined when the version cannot be read.
 */
export function supportedIstio(version: string): 'older' | 'newer' | 'supported' | undefined {
  const v = minorOf(version)
  const lo = minorOf(OLDEST_SUPPORTED_ISTIO) as [number, number]
  const hi = minorOf(NEWEST_SUPPORTED_ISTIO) as [number, number]
  if (!v) return undefined
  const key = (x: [number, number]): number => x[0] * 1000 + x[1]
  if (key(v) < key(lo)) return 'older'
  if (key(v) > key(hi)) return 'newer'
  return 'supported'
}
