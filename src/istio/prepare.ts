// Istio's side of a run, before any traffic change: the control plane (installed if asked), istioctl (its version
// chosen to match), `istioctl analyze`, the ingress gateway and every readiness check. Reads only, except the
// opt-in install.
import * as core from '@actions/core'
import type { Inputs } from '../inputs.js'
import type { Kube } from '../k8s/client.js'
import type { Subset } from '../k8s/resources.js'
import type { Session } from '../k8s/session.js'
import type { MeshFacts, Route } from '../routing/router.js'
import {
  type IstioctlRunner,
  analyze,
  formatFinding,
  installControlPlane,
  installIstioctl,
  istioctlRunner,
} from './istioctl.js'
import { type ControlPlane, type GatewayInfo, checkReadiness, findControlPlane, findGateway } from './mesh.js'
import { NEWEST_SUPPORTED_ISTIO, OLDEST_SUPPORTED_ISTIO, supportedIstio } from './versions.js'

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
  gatewayUrl: string
  /** The DestinationRule's subsets, by name. */
  subsets: Map<string, Subset>
}

/** The application namespace's labels (undefined: no such namespace) and the control plane they point to. */
async function locateControlPlane(
  inputs: Inputs,
  kube: Kube,
): Promise<{ nsLabels: Record<string, string> | undefined; find: () => Promise<ControlPlane | undefined> }> {
  const ns = await kube.getNamespace(inputs.namespace)
  const nsLabels = ns?.metadata?.labels ?? (ns ? {} : undefined)
  const query = {
    istioNamespace: inputs['istio-namespace'],
    istioRevision: inputs['istio-revision'],
    appNamespaceLabels: nsLabels ?? {},
    namespace: inputs.namespace,
  }
  return { nsLabels, find: () => findControlPlane(kube, query) }
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

/**
 * Control plane (installed if asked), istioctl, analyze, gateway and every readiness check of the target route
 * and the subsets it will route to; no change to routing.
 */
export async function prepareMesh(
  inputs: Inputs,
  session: Session,
  target: { route: Route; subsets: string[]; facts: () => Promise<MeshFacts> },
  found: (cp: ControlPlane) => void,
): Promise<MeshReadiness> {
  const kube = session.kube
  const facts = once(target.facts)
  const { nsLabels, find } = await locateControlPlane(inputs, kube)
  let cp = await find()
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
    found(cp)
    core.info(describeControlPlane(cp))
    warnUnsupported(cp)
  }
  const gateway = await locateGateway(inputs, kube, facts)
  const ready = await checkReadiness(kube, {
    namespace: inputs.namespace,
    namespaceLabels: nsLabels,
    controlPlane: cp,
    gateway,
    gatewayUrlGiven: inputs['gateway-url'] !== undefined,
    destinationHost: (await facts()).destinationHost,
    destinationRuleName: inputs['destination-rule'],
    subsets: target.subsets,
  })
  for (const note of ready.notes) core.info(note)
  if (istioctl && inputs.analyze && cp) await runAnalyze(inputs, istioctl, cp)
  return { controlPlane: cp, gatewayUrl: (inputs['gateway-url'] ?? gateway?.url) as string, subsets: ready.subsets }
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
    described.gatewayUrl = inputs['gateway-url'] ?? (await locateGateway(inputs, session.kube, facts))?.url ?? ''
  } catch (err) {
    core.warning(`Could not describe the mesh: ${(err as Error).message}`)
  }
  return described
}
