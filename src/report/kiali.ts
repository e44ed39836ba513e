// Links from the job summary into Kiali (input `kiali-url`): the graph of the namespace and the inbound metrics of
// each version's workload, for the run's time window. Pure.
//
// Kiali's console URLs, from its frontend (kiali/kiali frontend/src):
// - app/History.tsx: the router's basename is `${WEB_ROOT}/console` (`/console` when the web root is `/`); WEB_ROOT
//   is the server's `server.web_root`, `/kiali` in Istio's samples/addons/kiali.yaml and the Helm chart, `/` on a
//   root install (e.g. behind its own host). So `kiali-url` is Kiali's base URL with its web root, and the pages
//   are under `<kiali-url>/console/`. Its URLParam enum names the query parameters used here: `namespaces`,
//   `graphType`, `duration` (seconds), `from` / `to` (epoch milliseconds).
// - routes.tsx: `/graph/namespaces` (the graph, namespaces in `?namespaces=`) and
//   `/namespaces/:namespace/workloads/:workload` (workload details).
// - config/ServerConfig.ts: `duration` is snapped by toValidDuration to one of 1m, 2m, 5m, 10m, 30m, 1h,
//   3h, 6h, 12h, 1d, 7d, 30d (the largest one below a value that is not in the list): so the link asks for the
//   smallest of those that covers the whole run. The graph's duration counts back from now.
// - pages/WorkloadDetails/WorkloadDetailsPage.tsx: `?tab=in_metrics` opens the inbound metrics tab, whose time range
//   (components/Time/TimeRangeHelper.ts, retrieveTimeRange) is read from `from` / `to`: the run's exact window.
//
// A version's workload is what Istio calls it (istio/istio pkg/kube/util.go, GetWorkloadMetaFromPod and
// GetDeployMetaFromPod): the label `service.istio.io/workload-name` if set; else, for a pod with a generated name,
// its controller's name, less the `-<pod-template-hash>` suffix when that controller is a ReplicaSet (the Deployment).

/** Kiali's graph durations, seconds (config/ServerConfig.ts durationsTuples). */
export const KIALI_DURATIONS = [60, 120, 300, 600, 1800, 3600, 10800, 21600, 43200, 86400, 604800, 2592000] as const

export interface KialiLinks {
  graph: string
  /** Per version (stable, canary): its workload's inbound metrics over the run's window. */
  workloads: Array<{ role: 'stable' | 'canary'; version: string; workload: string; url: string }>
}

/** The smallest Kiali graph duration that covers `seconds` (the largest one when none does). */
export function kialiDuration(seconds: number): number {
  return KIALI_DURATIONS.find((d) => d >= seconds) ?? (KIALI_DURATIONS.at(-1) as number)
}

const path = (s: string): string => encodeURIComponent(s)

/**
 * The links for a run in `namespace` from `startedAt` to `endedAt` (ISO times); `now` is when the summary is written
 * (the graph's duration counts back from it). Versions without a known workload get no workload link.
 */
export function kialiLinks(
  base: string,
  run: {
    namespace: string
    startedAt: string
    endedAt: string
    versions: Array<{ role: 'stable' | 'canary'; version: string; workload?: string }>
  },
  now: Date,
): KialiLinks {
  const root = base.replace(/\/+$/, '')
  const start = Date.parse(run.startedAt)
  const end = Date.parse(run.endedAt)
  const lookback = Math.ceil((now.getTime() - start) / 1000)
  const graph = new URLSearchParams({
    namespaces: run.namespace,
    graphType: 'versionedApp',
    duration: String(kialiDuration(Number.isFinite(lookback) ? lookback : 0)),
  })
  // The metrics window: the run, widened to whole minutes (Kiali's metrics step), and never empty.
  const from = Math.floor(start / 60_000) * 60_000
  const to = Math.max(Math.ceil(end / 60_000) * 60_000, from + 60_000)
  const workloads = run.versions.flatMap((v) => {
    if (!v.workload || !Number.isFinite(start) || !Number.isFinite(end)) return []
    const query = new URLSearchParams({ tab: 'in_metrics', from: String(from), to: String(to) })
    const url = `${root}/console/namespaces/${path(run.namespace)}/workloads/${path(v.workload)}?${query}`
    return [{ role: v.role, version: v.version, workload: v.workload, url }]
  })
  return { graph: `${root}/console/graph/namespaces/?${graph}`, workloads }
}

/** The parts of a pod that name its workload. */
export interface PodMeta {
  name?: string
  generateName?: string
  labels?: Record<string, string>
  ownerReferences?: Array<{ kind: string; name: string; controller?: boolean }>
}

/** The workload name Istio (and Kiali) give a pod's workload (istio/istio pkg/kube/util.go). */
export function workloadOfPod(meta: PodMeta): string | undefined {
  const override = meta.labels?.['service.istio.io/workload-name']
  if (override) return override
  if (!meta.generateName) return meta.name
  const controller = meta.ownerReferences?.find((r) => r.controller === true)
  if (!controller) return meta.name
  const hash = meta.labels?.['pod-template-hash']
  if (controller.kind === 'ReplicaSet' && hash && controller.name.endsWith(`-${hash}`))
    return controller.name.slice(0, -(hash.length + 1))
  return controller.name
}
