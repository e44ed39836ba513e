// The mesh's side of a run, before any traffic change: which data plane the target is on; for Istio the control
// plane (installed if asked), istioctl (its version chosen to match), `istioctl analyze`; for Linkerd its control
// plane; the ingress and every readiness check. Reads only, except the opt-in install.
import * as core from '@actions/core'
import { type MeshFlavor, chooseFlavor, describeFlavor } from './flavor.js'
import { type GatewayApiIngress, findGatewayApiIngress } from './ingress.js'
import { type LinkerdControlPlane, findLinkerd } from './linkerd.js'
import { checkHttpRouteReadiness } from './readiness.js'
import { checkWaypoints } from './waypoint.js'
import type { Inputs } from '../inputs.js'
import type { Kube } from '../k8s/client.js'
import { ForbiddenError, type Subset } from '../k8s/resources.js'
import type { Session } from '../k8s/session.js'
import type { MeshFacts, Route, TargetKind } from '../routing/router.js'
import {
  type IstioctlRunner,
  analyze,
  formatFinding,
  installControlPlane,
  installIstioctl,
  istioctlRunner,
} from '../istio/istioctl.js'
import { type ControlPlane, type GatewayInfo, checkReadiness, findControlPlane, findGateway } from '../istio/mesh.js'
import { NEWEST_SUPPORTED_ISTIO, OLDEST_SUPPORTED_ISTIO, supportedIstio } from '../istio/versions.js'

/** The first call's promise, for every call. */
function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined
  return () => {
    promise ??= fn()
    return promise
  }
}

export interface MeshReadiness {
  controlPlane: ControlPlane | undefined
  /** The data plane the target's traffic goes through. */
  flavor: MeshFlavor
  gatewayUrl: string
  /** The versions as subsets, by name: the DestinationRule's, or each backend Service with its selector. */
  subsets: Map<string, Subset>
  /** Each version's workload (Deployment) where the checks found it (the backends of an HTTPRoute). */
  workloads: Map<string, string>
}

/** The application namespace's labels (undefined: no such namespace) and the control plane they point to. */
async function locateControlPlane(
  inputs: Inputs,
  kube: Kube,
): Promise<{
  nsLabels: Record<string, string> | undefined
  nsAnnotations: Record<string, string> | undefined
  find: () => Promise<ControlPlane | undefined>
}> {
  const ns = await kube.getNamespace(inputs.namespace)
  const nsLabels = ns?.metadata?.labels ?? (ns ? {} : undefined)
  const nsAnnotations = ns?.metadata?.annotations ?? (ns ? {} : undefined)
  const query = {
    istioNamespace: inputs['istio-namespace'],
    istioRevision: inputs['istio-revision'],
    appNamespaceLabels: nsLabels ?? {},
    namespace: inputs.namespace,
  }
  return { nsLabels, nsAnnotations, find: () => findControlPlane(kube, query) }
}

/** The ingress gateway to smoke-test through (none when gateway-url is given). */
async function locateGateway(
  inputs: Inputs,
  kube: Kube,
  facts: () => Promise<MeshFacts>,
): Promise<GatewayInfo | undefined> {
  if (inputs['gateway-url']) return undefined
  return findGateway(kube, {
    ...(inputs['gateway-service'] ? { service: inputs['gateway-service'] } : {}),
    gateways: (await facts()).gateways,
  })
}

/** The istioctl version to use: the input, or for 'auto' the running control plane's. */
function istioctlVersion(inputs: Inputs, cp: ControlPlane | undefined): string {
  const version = inputs['istioctl-version']
  if (version !== 'auto') return version
  if (cp && cp.version !== 'unknown') return cp.version
  if (cp)
    throw new Error(`cannot tell the Istio version from ${cp.namespace}/${cp.deployment}'s image: set istioctl-version`)
  const install = inputs['install-istio'] ? ': set istioctl-version to the version to install' : ''
  throw new Error(`istioctl-version 'auto' needs a running control plane to match; none was found${install}`)
}

async function prepareIstioctl(
  inputs: Inputs,
  session: Session,
  cp: ControlPlane | undefined,
): Promise<IstioctlRunner> {
  const tool = await installIstioctl(istioctlVersion(inputs, cp), inputs['istioctl-mirror'])
  const how = tool.cached ? 'found in the tool cache' : 'downloaded and verified (SHA-256)'
  core.info(`istioctl ${tool.version} ${how}: ${tool.path}`)
  return istioctlRunner(tool.path, session.kubeconfigPath)
}

/** `istioctl analyze` of the namespace: its findings logged at their level; an Error-level one stops the run. */
async function runAnalyze(inputs: Inputs, istioctl: IstioctlRunner, cp: ControlPlane): Promise<void> {
  const findings = await analyze(istioctl, {
    namespace: inputs.namespace,
    istioNamespace: cp.namespace,
    revision: cp.revision,
  })
  for (const finding of findings) {
    const line = formatFinding(finding)
    if (finding.level === 'Error') core.error(line)
    else if (finding.level === 'Warning') core.warning(line)
    else core.info(line)
  }
  const errors = findings.filter((f) => f.level === 'Error')
  if (errors.length > 0) {
    throw new Error(
      `istioctl analyze found ${errors.length} Error-level problem(s) in namespace ${inputs.namespace}; ` +
        `nothing was changed:\n  - ${errors.map(formatFinding).join('\n  - ')}`,
    )
  }
  const seen = findings.length === 0 ? 'no findings' : `${findings.length} finding(s), none at Error level`
  core.info(`istioctl analyze: ${seen}`)
}

function describeControlPlane(cp: ControlPlane): string {
  const addon = cp.aksAddon ? ' (AKS Istio add-on)' : ''
  const ready = cp.ready ? '' : ', NOT READY'
  const tag = cp.tag !== undefined ? ` (through the revision tag ${cp.tag})` : ''
  const others = cp.revisions.filter((r) => r !== cp.revision)
  const also = others.length > 0 ? `; also installed: ${others.join(', ')}` : ''
  return `Control plane: ${cp.namespace}/${cp.deployment}, revision ${cp.revision}${tag}, Istio ${cp.version}${addon}${ready}${also}`
}

/** A warning when the control plane is outside the Istio releases istio-canary is tested with (versions.ts). */
function warnUnsupported(cp: ControlPlane): void {
  const where = supportedIstio(cp.version)
  if (where === 'supported' || where === undefined) return
  core.warning(
    `Istio ${cp.version} (${cp.namespace}/${cp.deployment}) is ${where} than the releases istio-canary supports ` +
      `(${OLDEST_SUPPORTED_ISTIO} to ${NEWEST_SUPPORTED_ISTIO}); it may work, but is not tested`,
  )
}

/** What the mesh checks are about: the target resource, its route, the versions that must be ready. */
export interface MeshTarget {
  kind: TargetKind
  name: string
  route: Route
  subsets: string[]
  facts: () => Promise<MeshFacts>
}

/** A lookup that only helps decide (mesh: auto): a 403 is "cannot tell", not a failure. */
async function orUnknown<T>(lookup: () => Promise<T | undefined>): Promise<T | undefined> {
  try {
    return await lookup()
  } catch (err) {
    if (err instanceof ForbiddenError) return undefined
    throw err
  }
}

/**
 * Control plane (installed if asked), istioctl, analyze, gateway and every readiness check of the target route
 * and the versions it will route to, for the data plane the target is on; no change to routing.
 * `found` gets the control plane's version (Istio's, or Linkerd's release).
 */
export async function prepareMesh(
  inputs: Inputs,
  session: Session,
  target: MeshTarget,
  found: (version: string) => void,
): Promise<MeshReadiness> {
  const kube = session.kube
  const facts = once(target.facts)
  const { nsLabels, nsAnnotations, find } = await locateControlPlane(inputs, kube)
  const findIstio = once(find)
  const findLinkerdOnce = once(() => findLinkerd(kube))
  const flavor = await chooseFlavor(
    inputs,
    target.kind,
    { labels: nsLabels, annotations: nsAnnotations },
    {
      istio: async () => (await orUnknown(findIstio)) !== undefined,
      linkerd: async () => (await orUnknown(findLinkerdOnce)) !== undefined,
    },
  )
  core.info(`Data plane: ${describeFlavor(flavor)} (mesh: ${inputs.mesh})`)
  if (flavor === 'linkerd') return prepareLinkerd(inputs, session, target, facts, findLinkerdOnce, found, nsLabels)
  let cp = await findIstio()
  // analyze needs a control plane; without one (and no install) the readiness check reports it with its fix.
  const wantIstioctl = (inputs.analyze && cp !== undefined) || (!cp && inputs['install-istio'])
  const istioctl = wantIstioctl ? await prepareIstioctl(inputs, session, cp) : undefined
  if (!cp && inputs['install-istio'] && istioctl) {
    core.info(`No control plane found: installing Istio (profile ${inputs['istio-profile']})`)
    const options = { profile: inputs['istio-profile'], revision: inputs['istio-revision'] }
    core.info((await installControlPlane(istioctl, options)).trim())
    cp = await find()
  }
  if (cp) {
    found(cp.version)
    core.info(describeControlPlane(cp))
    warnUnsupported(cp)
  }
  const checked =
    target.kind === 'HTTPRoute'
      ? await readyHttpRoute(inputs, kube, target, facts, flavor, { controlPlane: cp }, nsLabels)
      : await readyVirtualService(inputs, kube, target, facts, flavor === 'istio-ambient', cp, nsLabels)
  if (istioctl && inputs.analyze && cp) await runAnalyze(inputs, istioctl, cp)
  return {
    controlPlane: cp,
    flavor,
    gatewayUrl: (inputs['gateway-url'] ?? checked.gatewayUrl) as string,
    subsets: checked.subsets,
    workloads: checked.workloads,
  }
}

type Checked = Pick<MeshReadiness, 'subsets' | 'workloads'> & { gatewayUrl: string | undefined }

/**
 * An HTTPRoute, on Istio or Linkerd: the ingress (a Gateway API Gateway's address, else, on Istio, Istio's ingress
 * gateway; Linkerd has none of its own), then every check of SPEC 7.
 */
async function readyHttpRoute(
  inputs: Inputs,
  kube: Kube,
  target: MeshTarget,
  facts: () => Promise<MeshFacts>,
  flavor: MeshFlavor,
  planes: { controlPlane?: ControlPlane | undefined; linkerd?: LinkerdControlPlane | undefined },
  nsLabels: Record<string, string> | undefined,
): Promise<Checked> {
  const ingress = await locateGatewayApiIngress(inputs, kube, facts)
  const gateway = ingress || flavor === 'linkerd' ? undefined : await locateGateway(inputs, kube, facts)
  const ready = await checkHttpRouteReadiness(kube, {
    flavor,
    namespace: inputs.namespace,
    namespaceLabels: nsLabels,
    route: `${inputs.namespace}/${target.name}`,
    facts: await facts(),
    ...planes,
    gatewayUrlGiven: inputs['gateway-url'] !== undefined,
    gatewayApiIngress: ingress,
    istioGateway: gateway,
    backends: target.subsets,
    backendOrigin: backendOrigin(inputs),
  })
  for (const note of ready.notes) core.info(note)
  return { gatewayUrl: ingress?.url ?? gateway?.url, subsets: ready.subsets, workloads: ready.workloads }
}

/**
 * A VirtualService: SPEC rule 8's checks; in an ambient namespace (where Istio supports VirtualService only as
 * alpha, said as a warning) no sidecar, but a waypoint for the destination Service.
 */
async function readyVirtualService(
  inputs: Inputs,
  kube: Kube,
  target: MeshTarget,
  facts: () => Promise<MeshFacts>,
  ambient: boolean,
  cp: ControlPlane | undefined,
  nsLabels: Record<string, string> | undefined,
): Promise<Checked> {
  if (ambient) {
    core.warning(
      `Namespace ${inputs.namespace} is in Istio ambient mode, where Istio supports VirtualService only as alpha: ` +
        `consider a Gateway API HTTPRoute (input http-route) for ${target.name}`,
    )
  }
  const gateway = await locateGateway(inputs, kube, facts)
  const host = (await facts()).destinationHost
  const services = [host.split('.')[0] as string]
  const waypoints = ambient
    ? await checkWaypoints(kube, { namespace: inputs.namespace, namespaceLabels: nsLabels, services })
    : { failures: [], notes: [] }
  const ready = await checkReadiness(kube, {
    namespace: inputs.namespace,
    namespaceLabels: nsLabels,
    controlPlane: cp,
    gateway,
    gatewayUrlGiven: inputs['gateway-url'] !== undefined,
    destinationHost: host,
    destinationRuleName: inputs['destination-rule'],
    subsets: target.subsets,
    ambient,
    extraFailures: waypoints.failures,
  })
  for (const note of [...waypoints.notes, ...ready.notes]) core.info(note)
  return { gatewayUrl: gateway?.url, subsets: ready.subsets, workloads: new Map() }
}

/** Linkerd: its control plane, the ingress (a Gateway API Gateway, or gateway-url) and the backends. No istioctl. */
async function prepareLinkerd(
  inputs: Inputs,
  session: Session,
  target: MeshTarget,
  facts: () => Promise<MeshFacts>,
  find: () => Promise<LinkerdControlPlane | undefined>,
  found: (version: string) => void,
  nsLabels: Record<string, string> | undefined,
): Promise<MeshReadiness> {
  const kube = session.kube
  const linkerd = await find()
  if (linkerd) {
    found(linkerd.version)
    core.info(`Control plane: Linkerd ${linkerd.version} in ${linkerd.namespace}`)
  }
  if (inputs['install-istio']) core.info('install-istio is ignored with Linkerd')
  const checked = await readyHttpRoute(inputs, kube, target, facts, 'linkerd', { linkerd }, nsLabels)
  return {
    controlPlane: undefined,
    flavor: 'linkerd',
    gatewayUrl: (inputs['gateway-url'] ?? checked.gatewayUrl) as string,
    subsets: checked.subsets,
    workloads: checked.workloads,
  }
}

/** Which input named each backend (with http-route the version inputs hold the backends). */
function backendOrigin(inputs: Inputs): Record<string, string> {
  const origin: Record<string, string> = {}
  if (inputs['stable-subset'] !== 'auto') origin[inputs['stable-subset']] = "input 'stable-backend'"
  if (inputs['canary-subset']) origin[inputs['canary-subset']] = "input 'canary-backend'"
  return origin
}

/** The Gateway API Gateway the namespace's HTTPRoutes attach to (none when gateway-url or gateway-service is given). */
async function locateGatewayApiIngress(
  inputs: Inputs,
  kube: Kube,
  facts: () => Promise<MeshFacts>,
): Promise<GatewayApiIngress | undefined> {
  if (inputs['gateway-url'] || inputs['gateway-service']) return undefined
  const gateways = (await facts()).gatewayApiGateways ?? []
  return gateways.length > 0 ? findGatewayApiIngress(kube, gateways) : undefined
}

/** For `status`: the control plane's version and the gateway URL, read only, never failing the run. */
export async function describeMesh(
  inputs: Inputs,
  session: Session,
  facts: () => Promise<MeshFacts>,
): Promise<{ istioVersion: string; gatewayUrl: string }> {
  const described = { istioVersion: '', gatewayUrl: inputs['gateway-url'] ?? '' }
  try {
    described.istioVersion = (await (await locateControlPlane(inputs, session.kube)).find())?.version ?? ''
    const ingress = await locateGatewayApiIngress(inputs, session.kube, facts)
    described.gatewayUrl =
      inputs['gateway-url'] ?? ingress?.url ?? (await locateGateway(inputs, session.kube, facts))?.url ?? ''
  } catch (err) {
    core.warning(`Could not describe the mesh: ${(err as Error).message}`)
  }
  return described
}
