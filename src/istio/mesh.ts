// Finding the mesh: the control plane (namespace, revision, version), the ingress gateway and its URL, and
// the readiness checks that must all pass before any traffic change (SPEC rule 8), each with a fix.
import type { V1Deployment, V1MutatingWebhookConfiguration, V1Pod, V1Service } from '@kubernetes/client-node'
import type { ControlPlaneApi, GatewayApi, ReadinessApi } from '../k8s/ports.js'
import { type DestinationRule, ForbiddenError, type Subset } from '../k8s/resources.js'

export const OSS_NAMESPACE = 'istio-system'
export const AKS_NAMESPACE = 'aks-istio-system'

export interface ControlPlane {
  namespace: string
  revision: string
  deployment: string
  version: string
  ready: boolean
  /** The AKS Istio add-on (aks-istio-system, istiod-asm-1-NN). */
  aksAddon: boolean
  /** Every revision installed (istio.io/rev of the istiod deployments found). */
  revisions: string[]
  /** Revision tags read on the way (tag -> revision); only those that were needed. */
  tags: Record<string, string>
  /** The revision tag through which this revision was named (`prod-stable`, `default`), if it was. */
  tag?: string
}

export class ReadinessError extends Error {
  override name = 'ReadinessError'
  constructor(readonly failures: string[]) {
    const checks = `${failures.length} check${failures.length > 1 ? 's' : ''}`
    super(`the mesh is not ready for a traffic change (${checks} failed):\n  - ${failures.join('\n  - ')}`)
  }
}

/** `docker.io/istio/pilot:1.24.2`, `mcr.microsoft.com/oss/istio/pilot:v1.24.3-distroless` -> 1.24.x */
export function versionFromImage(image: string | undefined): string | undefined {
  const tag = image?.split('@')[0]?.split('/').pop()?.split(':')[1]
  const match = tag ? /^v?(\d+\.\d+\.\d+(?:-(?:alpha|beta|rc)[.\d]*)?)/.exec(tag) : null
  return match?.[1]
}

function revisionOf(deployment: V1Deployment): string {
  return deployment.metadata?.labels?.[REV_LABEL] ?? 'default'
}

function deploymentReady(deployment: V1Deployment): boolean {
  return (deployment.status?.readyReplicas ?? 0) >= 1
}

/** The label naming a revision (on namespaces, pods, istiod and its webhooks) and the one naming a revision tag. */
export const REV_LABEL = 'istio.io/rev'
export const TAG_LABEL = 'istio.io/tag'

/**
 * The revision tags (tag -> revision) of the cluster, or of one tag, from the MutatingWebhookConfigurations
 * `istioctl tag set <tag> --revision <rev>` creates: named istio-revision-tag-<tag> (with -<namespace> outside
 * istio-system), labelled istio.io/tag=<tag> and istio.io/rev=<rev> (istio/istio
 * manifests/charts/istio-control/istio-discovery/templates/revision-tags-mwc.yaml). Found by label, as istioctl does
 * (istioctl/pkg/tag/util.go GetWebhooksWithTag / GetRevisionWebhooks), so a --webhook-name override is found too.
 */
async function readTags(
  kube: ControlPlaneApi,
  tag: string | undefined,
  why: string,
): Promise<Map<string, Set<string>>> {
  let hooks: V1MutatingWebhookConfiguration[]
  try {
    hooks = await kube.listMutatingWebhookConfigurations(tag === undefined ? TAG_LABEL : `${TAG_LABEL}=${tag}`)
  } catch (err) {
    if (!(err instanceof ForbiddenError)) throw err
    throw new ForbiddenError(
      `${err.message}. That permission (list mutatingwebhookconfigurations.admissionregistration.k8s.io, ` +
        `cluster-wide) is needed to ${why}; or set istio-revision to the revision itself`,
      err.verb,
      err.resource,
      err.group,
      err.namespace,
    )
  }
  const tags = new Map<string, Set<string>>()
  for (const hook of hooks) {
    const name = hook.metadata?.labels?.[TAG_LABEL]
    const rev = hook.metadata?.labels?.[REV_LABEL]
    if (!name || !rev) continue
    tags.set(name, (tags.get(name) ?? new Set()).add(rev))
  }
  return tags
}

const describeTags = (tags: Map<string, Set<string>>): string =>
  [...tags].map(([t, revs]) => `${t} -> ${[...revs].join(' and ')}`).join(', ') || 'none'

/**
 * The control plane an application namespace belongs to: the istiod Deployment of the revision that the
 * istio-revision input, else the namespace's istio.io/rev label, names, directly or through a revision tag; without
 * either, the default revision (or the revision the tag `default` points to, as `istioctl tag set default` makes it),
 * else the only one there is. During a canary upgrade (two istiods, e.g. asm-1-29 and asm-1-30 on the AKS add-on:
 * https://learn.microsoft.com/azure/aks/istio-upgrade) that is the one the namespace's new pods are injected by.
 * A name that is neither a revision nor a tag is a ReadinessError naming both lists, before any change.
 */
export async function findControlPlane(
  kube: ControlPlaneApi,
  options: {
    istioNamespace: string | 'auto'
    istioRevision: string | 'auto'
    appNamespaceLabels: Record<string, string>
    /** The application namespace (for messages). */
    namespace?: string
  },
): Promise<ControlPlane | undefined> {
  const namespaces = options.istioNamespace === 'auto' ? [OSS_NAMESPACE, AKS_NAMESPACE] : [options.istioNamespace]
  const found: Array<{ namespace: string; deployment: V1Deployment }> = []
  // An identity is usually granted the namespace its control plane is in only: a 403 on one candidate is skipped
  // when another answers with a control plane; when none does, the 403 says which permission is missing.
  const forbidden: ForbiddenError[] = []
  for (const namespace of namespaces) {
    try {
      for (const deployment of await kube.listDeployments(namespace, 'app=istiod'))
        found.push({ namespace, deployment })
    } catch (err) {
      if (!(err instanceof ForbiddenError) || namespaces.length === 1) throw err
      forbidden.push(err)
    }
  }
  if (found.length === 0 && forbidden[0]) throw forbidden[0]
  if (found.length === 0) return undefined
  const revisions = [...new Set(found.map((f) => revisionOf(f.deployment)))]
  const byRevision = (rev: string): (typeof found)[number] | undefined =>
    found.find((f) => revisionOf(f.deployment) === rev)
  const ns = options.namespace ?? 'the application namespace'
  const fromInput = options.istioRevision !== 'auto'
  const label = options.appNamespaceLabels[REV_LABEL]
  const wanted = fromInput ? options.istioRevision : label
  const source =
    wanted === undefined
      ? `the default revision of namespace ${ns}`
      : fromInput
        ? `istio-revision '${wanted}'`
        : `namespace ${ns}'s label ${REV_LABEL}=${wanted}`
  const installed = (): string =>
    found.map((f) => `${revisionOf(f.deployment)} (${f.namespace}/${f.deployment.metadata?.name})`).join(', ')
  let pick: (typeof found)[number] | undefined
  let tag: string | undefined
  const tags: Record<string, string> = {}
  /** The revision a tag points to, when it points to exactly one installed revision. */
  const throughTag = async (name: string, why: string): Promise<(typeof found)[number] | undefined> => {
    const revs = [...((await readTags(kube, name, why)).get(name) ?? [])]
    if (revs.length > 1) {
      throw new ReadinessError([
        `${source} is a revision tag that several MutatingWebhookConfigurations point to different revisions ` +
          `(${revs.join(', ')}): keep one (istioctl tag list; istioctl tag set ${name} --revision <revision> ` +
          '--overwrite)',
      ])
    }
    const hit = revs[0] === undefined ? undefined : byRevision(revs[0])
    if (revs[0] !== undefined && !hit) {
      throw new ReadinessError([
        `${source} is a revision tag pointing to revision ${revs[0]}, which has no istiod here ` +
          `(installed: ${installed()}): istioctl tag set ${name} --revision <installed revision> --overwrite`,
      ])
    }
    if (hit && revs[0]) tags[name] = revs[0]
    return hit
  }
  // The tag `default` takes the default revision's place: `istioctl tag set default` deactivates the default
  // revision's own injector (istioctl/pkg/tag/util.go DeactivateIstioInjectionWebhook), so istio-injection=enabled
  // and istio.io/rev=default namespaces are the tag's. Only a question when there are several revisions.
  if ((wanted ?? 'default') === 'default' && revisions.length > 1) {
    pick = await throughTag('default', 'find the revision the tag default points to among several revisions')
    if (pick) tag = 'default'
  }
  if (wanted) {
    pick ??= byRevision(wanted)
    if (!pick) {
      pick = await throughTag(wanted, `resolve the revision tag that ${source} may be`)
      if (pick) tag = wanted
    }
    if (!pick) {
      const all = await readTags(kube, undefined, `list the revision tags ${source} might name`)
      const fix = fromInput
        ? 'set istio-revision to one of them (or auto)'
        : `kubectl label namespace ${ns} ${REV_LABEL}=<revision or tag> --overwrite, then restart its deployments`
      throw new ReadinessError([
        `${source} names no installed revision and no revision tag (revisions: ${installed()}; ` +
          `tags: ${describeTags(all)}): ${fix}, or create the tag: istioctl tag set ${wanted} ` +
          `--revision <revision> --istioNamespace ${found[0]?.namespace}`,
      ])
    }
  } else {
    // No revision named: the tag default (above), else the default revision, else the only one.
    pick ??= byRevision('default') ?? (revisions.length === 1 ? found[0] : undefined)
    if (!pick) {
      throw new ReadinessError([
        `several Istio control plane revisions are installed (${installed()}) and neither istio-revision nor ` +
          `namespace ${ns} names one: kubectl label namespace ${ns} ${REV_LABEL}=<revision or tag> --overwrite ` +
          '(then restart its deployments), or set istio-revision',
      ])
    }
  }
  // The namespace's label, when istio-revision chose the control plane, is checked by the readiness check: note
  // what it resolves to when it is a tag (best effort: a refused read leaves it to the check).
  if (fromInput && label && !revisions.includes(label) && tags[label] === undefined) {
    try {
      const revs = [...((await readTags(kube, label, 'resolve the namespace label')).get(label) ?? [])]
      if (revs.length === 1 && revs[0]) tags[label] = revs[0]
    } catch (err) {
      if (!(err instanceof ForbiddenError)) throw err
    }
  }
  const containers = pick.deployment.spec?.template.spec?.containers
  const container = containers?.find((c) => c.name === 'discovery') ?? containers?.[0]
  const revision = revisionOf(pick.deployment)
  return {
    namespace: pick.namespace,
    revision,
    deployment: pick.deployment.metadata?.name ?? 'istiod',
    version: versionFromImage(container?.image) ?? 'unknown',
    ready: deploymentReady(pick.deployment),
    aksAddon: pick.namespace === AKS_NAMESPACE || /^asm-\d+-\d+$/.test(revision),
    revisions,
    tags,
    ...(tag !== undefined ? { tag } : {}),
  }
}

export interface GatewayInfo {
  namespace: string
  name: string
  /** Base URL, or undefined while the load balancer has no address. */
  url: string | undefined
}

export function gatewayUrl(svc: V1Service): string | undefined {
  const ingress = svc.status?.loadBalancer?.ingress?.[0]
  const host = ingress?.ip ?? ingress?.hostname
  if (!host) return undefined
  const ports = svc.spec?.ports ?? []
  const port = ports.find((p) => p.name === 'http2') ?? ports.find((p) => p.name === 'http')
  const number = port?.port ?? 80
  const authority = host.includes(':') ? `[${host}]` : host
  return number === 80 ? `http://${authority}` : `http://${authority}:${number}`
}

const DEFAULT_GATEWAYS = [
  { namespace: 'istio-system', name: 'istio-ingressgateway' },
  { namespace: 'aks-istio-ingress', name: 'aks-istio-ingressgateway-external' },
]

function selects(selector: Record<string, string>, svc: V1Service): boolean {
  const labels = { ...(svc.metadata?.labels ?? {}), ...(svc.spec?.selector ?? {}) }
  const keys = Object.keys(selector)
  return keys.length > 0 && keys.every((k) => labels[k] === selector[k])
}

/**
 * The ingress gateway Service: given, else the one the application's Istio Gateway selects, else the usual
 * defaults.
 */
export async function findGateway(
  kube: GatewayApi,
  options: {
    service?: { namespace: string; name: string }
    /** The Istio Gateways (namespace/name) the target's namespace binds its routes to, as the router found them. */
    gateways: string[]
  },
): Promise<GatewayInfo | undefined> {
  const given = options.service
  if (given) {
    const svc = await kube.getService(given.namespace, given.name)
    if (!svc) {
      throw new ReadinessError([
        `gateway-service ${given.namespace}/${given.name} does not exist ` +
          '(kubectl get svc -A | grep ingressgateway lists the candidates)',
      ])
    }
    return { ...given, url: gatewayUrl(svc) }
  }
  let services: V1Service[] | undefined
  for (const ref of options.gateways) {
    const [ns, name] = ref.split('/') as [string, string]
    const gw = await kube.getGateway(ns, name)
    if (!gw?.spec.selector) continue
    services ??= await kube.listServices(undefined)
    const match = services.filter((s) => selects(gw.spec.selector as Record<string, string>, s))
    const svc = match.find((s) => s.spec?.type === 'LoadBalancer') ?? match[0]
    if (svc)
      return { namespace: svc.metadata?.namespace as string, name: svc.metadata?.name as string, url: gatewayUrl(svc) }
  }
  let refused: ForbiddenError | undefined
  for (const candidate of DEFAULT_GATEWAYS) {
    try {
      const svc = await kube.getService(candidate.namespace, candidate.name)
      if (svc) return { ...candidate, url: gatewayUrl(svc) }
    } catch (err) {
      // As for the control plane: a candidate the identity may not read is skipped if another one answers.
      if (!(err instanceof ForbiddenError)) throw err
      refused ??= err
    }
  }
  if (refused) throw refused
  return undefined
}

/** The DestinationRule holding the subsets: the named one, else the one whose host is the route's destination host. */
export function pickDestinationRule(
  rules: DestinationRule[],
  name: string | undefined,
  host: string,
  namespace: string,
): DestinationRule | undefined {
  if (name) return rules.find((r) => r.metadata.name === name)
  const short = (h: string): string =>
    h.endsWith(`.${namespace}.svc.cluster.local`) || h.endsWith(`.${namespace}.svc`) || h.endsWith(`.${namespace}`)
      ? (h.split('.')[0] as string)
      : h
  return rules.find((r) => short(r.spec.host) === short(host))
}

export function podReady(p: V1Pod): boolean {
  return (
    p.status?.phase === 'Running' &&
    !p.metadata?.deletionTimestamp &&
    (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  )
}

/** The revision whose injector gave a pod its sidecar: `revision` of sidecar.istio.io/status, else istio.io/rev. */
export function sidecarRevision(p: V1Pod): string | undefined {
  const annotations = p.metadata?.annotations ?? {}
  try {
    const status = JSON.parse(annotations['sidecar.istio.io/status'] ?? 'null') as { revision?: unknown } | null
    if (typeof status?.revision === 'string' && status.revision !== '') return status.revision
  } catch {
    // not JSON: fall back to the annotation
  }
  return annotations[REV_LABEL]
}

export function hasSidecar(p: V1Pod): boolean {
  const spec = p.spec
  return (
    (spec?.containers ?? []).some((c) => c.name === 'istio-proxy') ||
    (spec?.initContainers ?? []).some((c) => c.name === 'istio-proxy' && c.restartPolicy === 'Always')
  )
}

export interface ReadinessInput {
  namespace: string
  namespaceLabels: Record<string, string> | undefined
  controlPlane: ControlPlane | undefined
  gateway: GatewayInfo | undefined
  gatewayUrlGiven: boolean
  /** The Service host the target route sends to. */
  destinationHost: string
  destinationRuleName: string | undefined
  subsets: string[]
  /** The namespace is in ambient mode: no injection label, and no sidecar, is required. */
  ambient?: boolean
  /** Failures found by checks of the caller (e.g. an ambient waypoint), reported with these. */
  extraFailures?: string[]
}

/** The namespace label that turns on sidecar injection for this control plane. */
function injectionLabel(cp: ControlPlane): string {
  if (!cp.aksAddon && (cp.revision === 'default' || cp.tag === 'default')) return 'istio-injection=enabled'
  return `istio.io/rev=${cp.tag ?? cp.revision}`
}

/** The control plane found (or not) and ready: SPEC rule 8's first check. */
export function controlPlaneFailures(cp: ControlPlane | undefined): string[] {
  if (!cp) {
    return [
      'no Istio control plane found ' +
        `(looked for Deployments labelled app=istiod in ${OSS_NAMESPACE} and ${AKS_NAMESPACE}): ` +
        'install Istio (istioctl install, or set install-istio: true) ' +
        'or enable the AKS add-on (az aks mesh enable -g <rg> -n <cluster>); ' +
        'set istio-namespace/istio-revision if yours differ',
    ]
  }
  if (!cp.ready) {
    return [
      `the Istio control plane ${cp.namespace}/${cp.deployment} has no ready replica: ` +
        `kubectl -n ${cp.namespace} rollout status deployment/${cp.deployment} ` +
        `(and kubectl -n ${cp.namespace} describe pods -l app=istiod)`,
    ]
  }
  return []
}

/** The Istio ingress gateway Service found, with an address (unless gateway-url is given). */
export function gatewayFailures(
  gateway: GatewayInfo | undefined,
  cp: ControlPlane | undefined,
  gatewayUrlGiven: boolean,
): string[] {
  if (gatewayUrlGiven) return []
  if (!gateway) {
    const addonHint = cp?.aksAddon
      ? '; on the AKS add-on enable it with ' +
        'az aks mesh enable-ingress-gateway -g <rg> -n <cluster> --ingress-gateway-type external'
      : ''
    return [
      "no ingress gateway Service found (looked for the Service selected by the application's Istio Gateway, " +
        'istio-system/istio-ingressgateway and aks-istio-ingress/aks-istio-ingressgateway-external): ' +
        `set gateway-service or gateway-url${addonHint}`,
    ]
  }
  if (!gateway.url) {
    return [
      `the ingress gateway Service ${gateway.namespace}/${gateway.name} has no external address yet ` +
        '(status.loadBalancer.ingress is empty): wait for the load balancer ' +
        `(kubectl -n ${gateway.namespace} get service ${gateway.name} -w) or set gateway-url`,
    ]
  }
  return []
}

/**
 * The namespace exists and is in the mesh: enabled for sidecar injection (a label this control plane honours), or in
 * ambient mode (istio.io/dataplane-mode=ambient, where no sidecar is injected).
 */
export function namespaceFailures(
  namespace: string,
  labels: Record<string, string> | undefined,
  cp: ControlPlane | undefined,
  ambient = false,
): string[] {
  if (!labels) return [`namespace ${namespace} does not exist: kubectl create namespace ${namespace}`]
  if (ambient) return []
  const rev = labels['istio.io/rev']
  const injection = labels['istio-injection']
  const fixRev = cp
    ? `kubectl label namespace ${namespace} ${injectionLabel(cp)} --overwrite, ` +
      `then restart its deployments (kubectl -n ${namespace} rollout restart deployment)`
    : 'install the control plane first'
  if (rev !== undefined) {
    if (cp && !cp.revisions.includes(rev) && cp.tags[rev] === undefined) {
      return [
        `namespace ${namespace} is labelled istio.io/rev=${rev}, but no such revision or revision tag is installed ` +
          `(revisions: ${cp.revisions.join(', ')}): ${fixRev}`,
      ]
    }
    return []
  }
  if (injection === 'enabled') {
    if (cp?.aksAddon) {
      return [
        `namespace ${namespace} uses istio-injection=enabled, which the AKS Istio add-on ignores: ` +
          `kubectl label namespace ${namespace} istio-injection- istio.io/rev=${cp.revision}, ` +
          'then restart its deployments',
      ]
    }
    return []
  }
  return [
    `namespace ${namespace} is not enabled for sidecar injection: ${fixRev}` +
      ` (or, for ambient mode: kubectl label namespace ${namespace} istio.io/dataplane-mode=ambient)`,
  ]
}

/** Every check of SPEC rule 8; all failures are gathered, each with what to run to fix it. */
export async function checkReadiness(
  kube: ReadinessApi,
  input: ReadinessInput,
): Promise<{ rule: DestinationRule; subsets: Map<string, Subset>; notes: string[] }> {
  /** What the log should say though nothing fails: pods whose sidecars another revision injected (mid-upgrade). */
  const notes: string[] = []
  const namespace = input.namespace
  const cp = input.controlPlane
  const ambient = input.ambient === true
  const failures: string[] = [
    ...controlPlaneFailures(cp),
    ...gatewayFailures(input.gateway, cp, input.gatewayUrlGiven),
    ...namespaceFailures(namespace, input.namespaceLabels, cp, ambient),
    ...(input.extraFailures ?? []),
  ]
  const host = input.destinationHost
  const rules = await kube.listDestinationRules(namespace)
  const rule = pickDestinationRule(rules, input.destinationRuleName, host, namespace)
  const subsets = new Map<string, Subset>()
  if (!rule) {
    failures.push(
      input.destinationRuleName
        ? `DestinationRule ${namespace}/${input.destinationRuleName} does not exist ` +
            `(kubectl -n ${namespace} get destinationrules)`
        : `no DestinationRule in ${namespace} has host '${host}': ` +
            `create one with the subsets ${input.subsets.join(', ')} ` +
            '(e.g. kubectl apply -f samples/bookinfo/networking/destination-rule-all.yaml)',
    )
  } else {
    for (const name of input.subsets) {
      const subset = rule.spec.subsets?.find((s) => s.name === name)
      if (!subset) {
        const existing = (rule.spec.subsets ?? []).map((s) => s.name).join(', ') || 'none'
        failures.push(
          `DestinationRule ${namespace}/${rule.metadata.name} has no subset '${name}' (it has: ${existing}): ` +
            `add it with the labels of that version's pods, e.g. {name: ${name}, labels: {version: ${name}}}`,
        )
        continue
      }
      subsets.set(name, subset)
    }
  }
  const service = await kube.getService(namespace, host.split('.')[0] as string)
  if (!service) {
    failures.push(`Service '${host}' of the target route does not exist in namespace ${namespace}`)
  } else {
    for (const [name, subset] of subsets) {
      const selector = { ...(service.spec?.selector ?? {}), ...(subset.labels ?? {}) }
      const sel = Object.entries(selector)
        .map(([key, value]) => `${key}=${value}`)
        .join(',')
      const pods = await kube.listPods(namespace, sel)
      const ready = pods.filter(podReady)
      const meshed = ready.filter(hasSidecar)
      if (pods.length === 0) {
        failures.push(
          `subset '${name}' has no pods (selector ${sel}): ` +
            `deploy that version (kubectl -n ${namespace} get deployments -l ${sel})`,
        )
      } else if (ready.length === 0) {
        failures.push(
          `subset '${name}' has ${pods.length} pod(s) but none is ready (selector ${sel}): ` +
            `kubectl -n ${namespace} describe pods -l ${sel}`,
        )
      } else if (meshed.length === 0 && !ambient) {
        failures.push(
          `subset '${name}' has ready pods without the istio-proxy sidecar: ` +
            `enable injection for namespace ${namespace}, ` +
            `then kubectl -n ${namespace} rollout restart deployment -l ${sel}`,
        )
      } else if (cp && !ambient) {
        const stale = meshed.filter((p) => {
          const rev = sidecarRevision(p)
          return rev !== undefined && rev !== cp.revision
        })
        const others = [...new Set(stale.map(sidecarRevision))]
        if (stale.length > 0) {
          notes.push(
            `subset '${name}': ${stale.length} of ${meshed.length} ready pod(s) run sidecars injected by revision ` +
              `${others.join(', ')}, not by ${cp.revision} (this run's control plane); a restart re-injects them ` +
              `(kubectl -n ${namespace} rollout restart deployment -l ${sel})`,
          )
        }
      }
    }
  }
  if (failures.length > 0) throw new ReadinessError(failures)
  return { rule: rule as DestinationRule, subsets, notes }
}
