// The action's main and post steps. One bundle serves both: the main step saves `isPost`.
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import * as core from '@actions/core'
import { type Inputs, getInputs } from './inputs.js'
import { type Sleep, realSleep } from './retry.js'
import { type Session, openSession, removeDir } from './k8s/session.js'
import type { Kube } from './k8s/client.js'
import type { Subset } from './k8s/resources.js'
import { Engine, type EngineDeps, type Outcome } from './rollout/engine.js'
import { RolloutLock, releaseIfHeld } from './rollout/lock.js'
import { type HttpRoute, describeSelector } from './rollout/routes.js'
import { isActive } from './rollout/state.js'
import { type ControlPlane, type GatewayInfo, checkReadiness, findControlPlane, findGateway } from './istio/mesh.js'
import { analyze, formatFinding, installControlPlane, installIstioctl, istioctlRunner } from './istio/istioctl.js'
import { runSmokeTest } from './smoke/smoke.js'
import { judge } from './smoke/verdict.js'
import { type RunReport, writeReport } from './report/report.js'
import { writeJobSummary } from './report/summary.js'
import { checkManifest, handBackManifest } from './gitops/hand-back.js'

/** Names of the values the main step hands to the post step. */
export enum State {
  IsPost = 'isPost',
  RunId = 'runId',
  TempDir = 'tempDir',
  Target = 'target',
  MainDone = 'mainDone',
  Changed = 'changed',
  LockHolder = 'lockHolder',
  /** For a preview: its value and the preview route before the run (null: none), for the post step to restore. */
  Preview = 'preview',
  /** The main step ended without knowing its traffic change settled (its revert failed, or a write's outcome was
   * unknown): the post step looks again. */
  Unsettled = 'unsettled',
}

export interface Deps {
  sleep: Sleep
  env: NodeJS.ProcessEnv
  now: () => Date
}

const defaultDeps: Deps = { sleep: realSleep, env: process.env, now: () => new Date() }

export async function entry(): Promise<void> {
  if (core.getState(State.IsPost) === 'true') {
    await post()
    return
  }
  core.saveState(State.IsPost, 'true')
  await run()
}

function runIdentity(env: NodeJS.ProcessEnv): string {
  const gh = env['GITHUB_RUN_ID']
    ? `${env['GITHUB_REPOSITORY'] ?? 'repo'}#${env['GITHUB_RUN_ID']}.${env['GITHUB_RUN_ATTEMPT'] ?? '1'}/${env['GITHUB_JOB'] ?? 'job'}`
    : 'local'
  return `${gh}/${randomBytes(3).toString('hex')}`
}

class Cancelled extends Error {
  override name = 'Cancelled'
}

/** Aborts on SIGINT/SIGTERM (workflow cancellation) so the run can revert before it ends. */
function cancellation(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController()
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((sig) => {
    const h = (): void => {
      core.warning(`Received ${sig}: the workflow is being cancelled; stopping and reverting`)
      controller.abort(new Cancelled(`cancelled by ${sig}`))
    }
    process.on(sig, h)
    return () => process.off(sig, h)
  })
  return {
    signal: controller.signal,
    dispose: () => {
      for (const off of handlers) off()
    },
  }
}

function versionKeys(name: string, subset: Subset | undefined): string[] {
  return [...new Set([name, subset?.labels?.['version']].filter((v): v is string => typeof v === 'string' && v !== ''))]
}

interface Mesh {
  controlPlane: ControlPlane | undefined
  gatewayUrl: string
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
  }
  return { nsLabels, find: () => findControlPlane(kube, query) }
}

/** The ingress gateway to smoke-test through (none when gateway-url is given). */
async function locateGateway(inputs: Inputs, kube: Kube): Promise<GatewayInfo | undefined> {
  if (inputs['gateway-url']) return undefined
  return findGateway(kube, {
    ...(inputs['gateway-service'] ? { service: inputs['gateway-service'] } : {}),
    appNamespace: inputs.namespace,
    virtualServices: await kube.listVirtualServices(inputs.namespace),
  })
}

/** Control plane (installed if asked), istioctl, analyze, gateway and every readiness check; no change to routing. */
async function prepareMesh(
  inputs: Inputs,
  session: Session,
  subsets: string[],
  route: HttpRoute,
  found: (cp: ControlPlane) => void,
): Promise<Mesh> {
  const kube = session.kube
  const { nsLabels, find } = await locateControlPlane(inputs, kube)
  let cp = await find()
  // analyze needs a control plane; without one (and no install) the readiness check reports it with its fix.
  const wantIstioctl = (inputs.analyze && cp !== undefined) || (!cp && inputs['install-istio'])
  let istioctl: ReturnType<typeof istioctlRunner> | undefined
  if (wantIstioctl) {
    let version = inputs['istioctl-version']
    if (version === 'auto') {
      if (!cp || cp.version === 'unknown') {
        throw new Error(
          cp
            ? `cannot tell the Istio version from ${cp.namespace}/${cp.deployment}'s image: set istioctl-version`
            : `istioctl-version 'auto' needs a running control plane to match; none was found${inputs['install-istio'] ? ': set istioctl-version to the version to install' : ''}`,
        )
      }
      version = cp.version
    }
    const tool = await installIstioctl(version, inputs['istioctl-mirror'])
    core.info(
      `istioctl ${tool.version} ${tool.cached ? 'found in the tool cache' : 'downloaded and verified (SHA-256)'}: ${tool.path}`,
    )
    istioctl = istioctlRunner(tool.path, session.kubeconfigPath)
  }
  if (!cp && inputs['install-istio'] && istioctl) {
    core.info(`No control plane found: installing Istio (profile ${inputs['istio-profile']})`)
    core.info(
      (
        await installControlPlane(istioctl, { profile: inputs['istio-profile'], revision: inputs['istio-revision'] })
      ).trim(),
    )
    cp = await find()
  }
  if (cp) found(cp)
  if (cp)
    core.info(
      `Control plane: ${cp.namespace}/${cp.deployment}, revision ${cp.revision}, Istio ${cp.version}${cp.aksAddon ? ' (AKS Istio add-on)' : ''}${cp.ready ? '' : ', NOT READY'}`,
    )
  const gateway = await locateGateway(inputs, kube)
  const ready = await checkReadiness(kube, {
    namespace: inputs.namespace,
    namespaceLabels: nsLabels,
    controlPlane: cp,
    gateway,
    gatewayUrlGiven: inputs['gateway-url'] !== undefined,
    targetRoute: route,
    destinationRuleName: inputs['destination-rule'],
    subsets,
  })
  if (istioctl && inputs.analyze && cp) {
    const findings = await analyze(istioctl, {
      namespace: inputs.namespace,
      istioNamespace: cp.namespace,
      revision: cp.revision,
    })
    for (const f of findings) {
      const line = formatFinding(f)
      if (f.level === 'Error') core.error(line)
      else if (f.level === 'Warning') core.warning(line)
      else core.info(line)
    }
    const errors = findings.filter((f) => f.level === 'Error')
    if (errors.length > 0) {
      throw new Error(
        `istioctl analyze found ${errors.length} Error-level problem(s) in namespace ${inputs.namespace}; nothing was changed:\n  - ${errors.map(formatFinding).join('\n  - ')}`,
      )
    }
    core.info(
      `istioctl analyze: ${findings.length === 0 ? 'no findings' : `${findings.length} finding(s), none at Error level`}`,
    )
  }
  return { controlPlane: cp, gatewayUrl: (inputs['gateway-url'] ?? gateway?.url) as string, subsets: ready.subsets }
}

/**
 * Everything to check before a traffic change (mesh, readiness, analyze) and the smoke test each step runs:
 * the subsets come from the plan of the run (or the canary alone for a preview).
 */
async function prepareVerification(
  inputs: Inputs,
  session: Session,
  engine: Engine,
  report: RunReport,
): Promise<EngineDeps['verify']> {
  const mode = inputs.action
  const state = engine.currentState
  const vs = engine.virtualService
  let route: HttpRoute
  let stable = ''
  let canary: string
  if (mode === 'preview') {
    route = (vs.spec.http ?? [])[engine.inputRouteIndex({ shadowed: 'allow' })] as HttpRoute
    canary = inputs['canary-subset'] as string
  } else {
    ;({ route, stable, canary } = engine.plan())
  }
  report.stableSubset = stable
  report.canarySubset = canary
  const m = await prepareMesh(
    inputs,
    session,
    [stable, canary].filter((s) => s !== ''),
    route,
    (cp) => (report.istioVersion = cp.version),
  )
  report.gatewayUrl = m.gatewayUrl
  const canaryVersions = versionKeys(canary, m.subsets.get(canary))
  const stableVersions = stable ? versionKeys(stable, m.subsets.get(stable)) : []
  const baseDests = (state && isActive(state) ? state.originalRoute : route).route ?? []
  // Shares are checked where the split is exactly stable/canary, and for a preview (all of it to the canary).
  const checkShares =
    inputs['version-pattern'] !== undefined &&
    (mode === 'preview' || baseDests.every((d) => d.destination.subset === stable || d.destination.subset === canary))
  const url = `${m.gatewayUrl}${inputs['smoke-path']}`
  core.info(
    `Smoke test: ${inputs['smoke-requests']} requests to ${url} per step (${inputs['smoke-concurrency']} at once)`,
  )
  return async (weight, headers, signal) => {
    const result = await runSmokeTest(
      {
        url,
        requests: inputs['smoke-requests'],
        concurrency: inputs['smoke-concurrency'],
        timeoutMs: inputs['smoke-timeout'],
        headers: { ...inputs['smoke-headers'], ...headers },
        ...(inputs['smoke-expect'] ? { expect: inputs['smoke-expect'] } : {}),
        ...(inputs['version-pattern'] ? { versionPattern: inputs['version-pattern'] } : {}),
      },
      signal,
    )
    const verdict = judge({
      result,
      threshold: inputs['success-threshold'],
      canaryWeight: weight,
      canaryVersions,
      stableVersions,
      checkShares,
      ...(inputs['max-latency'] !== undefined ? { maxLatencyMs: inputs['max-latency'] } : {}),
    })
    return { result, verdict }
  }
}

/** For `status`: the control plane's version and the gateway URL, read only, never failing the run. */
async function describeMesh(inputs: Inputs, session: Session, report: RunReport): Promise<void> {
  try {
    const cp = await (await locateControlPlane(inputs, session.kube)).find()
    report.istioVersion = cp?.version ?? ''
    report.gatewayUrl = inputs['gateway-url'] ?? (await locateGateway(inputs, session.kube))?.url ?? ''
  } catch (err) {
    core.warning(`Could not describe the mesh: ${(err as Error).message}`)
  }
}

export async function run(deps: Deps = defaultDeps): Promise<void> {
  const startedAt = deps.now().toISOString()
  let inputs: Inputs
  try {
    inputs = getInputs(undefined, deps.env)
  } catch (err) {
    core.setFailed((err as Error).message)
    return
  }
  const runId = runIdentity(deps.env)
  core.saveState(State.RunId, runId)
  core.saveState(
    State.Target,
    JSON.stringify({ namespace: inputs.namespace, virtualService: inputs['virtual-service'] }),
  )
  const cancel = cancellation()
  const report: RunReport = {
    version: 1,
    action: inputs.action,
    namespace: inputs.namespace,
    virtualService: inputs['virtual-service'],
    route: describeSelector(inputs.route),
    stableSubset: '',
    canarySubset: inputs['canary-subset'] ?? '',
    gatewayUrl: inputs['gateway-url'] ?? '',
    istioVersion: '',
    result: 'unchanged',
    canaryWeight: 0,
    startedAt,
    endedAt: startedAt,
    steps: [],
    events: [],
  }
  let lock: RolloutLock | undefined
  let touched = false
  let failure: Error | undefined
  let outcome: Outcome | undefined
  let manifestChanged = false
  try {
    const session = await core.group('Connect to the cluster', async () => {
      const s = await openSession(inputs.access, {
        tempDir: deps.env['RUNNER_TEMP'],
        setSecret: core.setSecret,
        log: core.info,
        getIdToken: (aud) => core.getIDToken(aud),
        sleep: deps.sleep,
      })
      if (s.createdDir) core.saveState(State.TempDir, s.createdDir)
      core.info(`Connected: ${s.describe}, API server ${s.kube.server}`)
      return s
    })
    const kube = session.kube
    const engine = new Engine(
      {
        kube,
        sleep: deps.sleep,
        signal: cancel.signal,
        runId,
        log: core.info,
        now: deps.now,
        verify: () => Promise.reject(new Error('internal: no smoke test configured')),
        onTrafficChange: () => {
          touched = true
          core.saveState(State.Changed, 'true')
        },
        checkLock: () => lock?.check(),
      },
      {
        namespace: inputs.namespace,
        virtualService: inputs['virtual-service'],
        route: inputs.route,
        stableSubset: inputs['stable-subset'],
        ...(inputs['canary-subset'] ? { canarySubset: inputs['canary-subset'] } : {}),
      },
    )
    const mode = inputs.action
    // Checks first (reads only: a run that cannot go ahead writes nothing, not even its lock), then the lock.
    const check = async (): Promise<void> => {
      if (mode === 'preview' || ((mode === 'rollout' || mode === 'promote') && !engine.alreadyPromoted())) {
        cancel.signal.throwIfAborted()
        engine.setVerifier(
          await core.group('Check the mesh', () => prepareVerification(inputs, session, engine, report)),
        )
      }
    }
    await engine.load()
    // The GitOps manifest must hold the target before anything changes (the file is only read here).
    if (inputs.manifest && (mode === 'rollout' || mode === 'promote' || mode === 'rollback')) {
      await checkManifest(inputs.manifest, engine.virtualService, engine.currentState?.route ?? inputs.route)
    }
    await check()
    if (mode === 'status') await describeMesh(inputs, session, report)
    if (mode !== 'status') {
      const seen = engine.virtualService.metadata.resourceVersion
      lock = new RolloutLock(kube, {
        namespace: inputs.namespace,
        virtualService: inputs['virtual-service'],
        holder: runId,
        ttlMs: inputs['lock-ttl'],
        log: core.info,
      })
      await lock.acquire()
      core.saveState(State.LockHolder, runId)
      // Read again under the lock: a run that finished while we checked may have changed the plan.
      await engine.load()
      if (engine.virtualService.metadata.resourceVersion !== seen) {
        core.info('The VirtualService changed while the checks ran: checking again')
        await check()
      }
    }
    cancel.signal.throwIfAborted()
    outcome = await core.group(`${mode} ${inputs.namespace}/${inputs['virtual-service']}`, async () => {
      switch (mode) {
        case 'rollout':
          return engine.rollout(inputs.steps, inputs.pause)
        case 'promote':
          return engine.rollout([{ weight: 100 }], inputs.pause)
        case 'rollback':
          return engine.rollback()
        case 'status':
          return engine.status()
        case 'preview':
          core.saveState(
            State.Preview,
            JSON.stringify({
              value: inputs['preview-value'],
              before: engine.previewRoute(inputs['preview-value'] as string) ?? null,
            }),
          )
          return engine.preview(inputs['preview-header'], inputs['preview-value'] as string, inputs.pause)
        case 'preview-cleanup':
          return engine.previewCleanup(inputs['preview-value'] as string)
      }
    })
    failure = outcome.error
    if (inputs.manifest && (outcome.result === 'promoted' || outcome.result === 'rolled-back')) {
      try {
        manifestChanged = await handBackManifest(
          inputs.manifest,
          engine.virtualService,
          engine.currentState?.route ?? inputs.route,
        )
        core.info(
          manifestChanged
            ? `Wrote the target route as the cluster now has it to ${inputs.manifest}`
            : `${inputs.manifest} already has the target route as the cluster does`,
        )
      } catch (err) {
        failure ??= new Error(
          `the rollout ended ${outcome.result}, but handing it back to the manifest failed: ${(err as Error).message}`,
        )
      }
    }
  } catch (err) {
    failure = err as Error
  }
  cancel.dispose()
  // Unsettled: the revert failed or a traffic change's outcome is unknown (an error escaped the engine after a
  // change began). The lock stays held, unrenewed, for the post step to finish and release; others wait.
  const unsettled = outcome?.unsettled === true || (touched && outcome === undefined)
  if (unsettled) core.saveState(State.Unsettled, 'true')
  try {
    if (unsettled) lock?.stopRenewing()
    else await lock?.release()
  } catch (err) {
    core.warning(`Could not release the lock: ${(err as Error).message} (it expires by itself)`)
  }
  core.saveState(State.MainDone, 'true')
  report.result = outcome?.result ?? 'unchanged'
  report.canaryWeight = outcome?.canaryWeight ?? 0
  if (outcome) {
    report.stableSubset = outcome.stable || report.stableSubset
    report.canarySubset = outcome.canary || report.canarySubset
    report.steps = outcome.steps
    report.events = outcome.events
  }
  report.endedAt = deps.now().toISOString()
  if (failure) report.error = failure.message
  core.setOutput('result', report.result)
  core.setOutput('canary-weight', String(report.canaryWeight))
  core.setOutput('stable-subset', report.stableSubset)
  core.setOutput('canary-subset', report.canarySubset)
  core.setOutput('gateway-url', report.gatewayUrl)
  core.setOutput('istio-version', report.istioVersion)
  core.setOutput('manifest-changed', String(manifestChanged))
  try {
    const path = await writeReport(deps.env['RUNNER_TEMP'] ?? tmpdir(), report)
    core.setOutput('report', path)
    core.info(`Report: ${path}`)
    await writeJobSummary(report)
  } catch (err) {
    core.warning(`Could not write the report or job summary: ${(err as Error).message}`)
  }
  core.info(`Result: ${report.result}, canary weight ${report.canaryWeight} %`)
  if (failure) core.setFailed(failure.message)
}

/** Post step: finish a revert the main step could not (it was killed), release its lock, remove its kubeconfig. */
export async function post(deps: Deps = defaultDeps): Promise<void> {
  const runId = core.getState(State.RunId)
  const dir = core.getState(State.TempDir)
  try {
    // Killed main step (no MainDone), a revert that failed, or a traffic change whose outcome main could not
    // read back: look at the VirtualService (the engine acts only on a change this run left unfinished).
    const unfinished = core.getState(State.MainDone) !== 'true' || core.getState(State.Unsettled) === 'true'
    if (unfinished && (core.getState(State.Changed) === 'true' || core.getState(State.LockHolder) !== '')) {
      const target = JSON.parse(core.getState(State.Target) || '{}') as { namespace?: string; virtualService?: string }
      if (runId && target.namespace && target.virtualService) {
        await finishInterruptedRun(getInputs(undefined, deps.env), runId, target.namespace, target.virtualService, deps)
      }
    }
  } catch (err) {
    core.setFailed(`Post step: ${(err as Error).message}`)
  } finally {
    await removeDir(dir)
    if (dir) core.info('Removed the kubeconfig written by the main step')
  }
}

async function finishInterruptedRun(
  inputs: Inputs,
  runId: string,
  namespace: string,
  virtualService: string,
  deps: Deps,
): Promise<void> {
  core.warning('The main step did not finish its run: checking whether its traffic change must be reverted')
  const session = await openSession(inputs.access, {
    tempDir: deps.env['RUNNER_TEMP'],
    setSecret: core.setSecret,
    log: core.info,
    getIdToken: (aud) => core.getIDToken(aud),
    sleep: deps.sleep,
  })
  try {
    const kube: Kube = session.kube
    const engine = new Engine(
      {
        kube,
        sleep: deps.sleep,
        signal: new AbortController().signal,
        runId,
        log: core.info,
        now: deps.now,
        verify: () => Promise.reject(new Error('no smoke test in post')),
      },
      { namespace, virtualService, route: inputs.route, stableSubset: inputs['stable-subset'] },
    )
    await engine.load()
    const preview = JSON.parse(core.getState(State.Preview) || 'null') as {
      value: string
      before: HttpRoute | null
    } | null
    if (preview) {
      // Report only what this step did: a preview write that never landed leaves nothing to restore.
      if (await engine.restorePreview(preview.value, preview.before ?? undefined)) {
        core.setOutput('result', 'rolled-back')
        core.warning(
          `Restored the preview route '${preview.value}' of ${namespace}/${virtualService} as it was before the interrupted run`,
        )
      } else {
        core.info(
          `The preview route '${preview.value}' of ${namespace}/${virtualService} is as it was before the run: nothing to restore`,
        )
      }
    } else if (await engine.finishRevert(runId)) {
      core.setOutput('result', 'rolled-back')
      core.warning(`Reverted ${namespace}/${virtualService} to the route it had before the interrupted run`)
    } else {
      core.info('Nothing to revert: the VirtualService is not in a change made by this run')
    }
    if (await releaseIfHeld(kube, namespace, virtualService, runId))
      core.info('Released the lock left by the main step')
  } finally {
    await removeDir(session.createdDir)
  }
}
