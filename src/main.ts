// The action's main and post steps, as named phases (each a log group). One bundle serves both: the main step
// saves `isPost`. What each mode needs is the table in ./modes.ts.
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import * as core from '@actions/core'
import { type JobState, actionsJobState } from './action/job-state.js'
import { RUNNERS } from './action/modes.js'
import { checkManifest, handBackManifest } from './gitops/hand-back.js'
import { type Inputs, getInputs, targetOf } from './inputs.js'
import type { MeshFlavor } from './dataplane/flavor.js'
import { describeMesh, prepareMesh } from './dataplane/prepare.js'
import { ForbiddenError, type Subset } from './k8s/resources.js'
import { type Session, openSession, removeDir } from './k8s/session.js'
import { MODES } from './modes.js'
import { kialiLinks, workloadOfPod } from './report/kiali.js'
import { type RunReport, writeReport } from './report/report.js'
import { writeJobSummary } from './report/summary.js'
import { Engine, ISTIO_PROPAGATION_HINT, type Outcome } from './rollout/engine.js'
import { RolloutLock, releaseIfHeld } from './rollout/lock.js'
import { outputResult } from './rollout/machine.js'
import { createRouter } from './routing/index.js'
import { type MeshFacts, type Route, type TargetRef, type TrafficRouter, describeSelector } from './routing/router.js'
import { isActive } from './routing/state.js'
import { type Sleep, realSleep } from './retry.js'
import { kubeconfigHttpGet } from './telemetry/prometheus.js'
import { createVerifiers } from './verify/index.js'
import type { ClusterEndpoint } from './verify/verifier.js'

export interface Deps {
  sleep: Sleep
  env: NodeJS.ProcessEnv
  now: () => Date
  jobState: JobState
}

const defaultDeps: Deps = { sleep: realSleep, env: process.env, now: () => new Date(), jobState: actionsJobState }

export async function entry(): Promise<void> {
  if (actionsJobState.get('isPost') === true) {
    await post()
    return
  }
  actionsJobState.save('isPost', true)
  await run()
}

function runIdentity(env: NodeJS.ProcessEnv): string {
  const run = `${env['GITHUB_RUN_ID']}.${env['GITHUB_RUN_ATTEMPT'] ?? '1'}`
  const job = `${env['GITHUB_REPOSITORY'] ?? 'repo'}#${run}/${env['GITHUB_JOB'] ?? 'job'}`
  return `${env['GITHUB_RUN_ID'] ? job : 'local'}/${randomBytes(3).toString('hex')}`
}

class Cancelled extends Error {
  override name = 'Cancelled'
}

/**
 * Aborts on SIGINT/SIGTERM (workflow cancellation) so the run can revert before it ends. A runner cancels a step with
 * SIGINT, then SIGTERM 7.5 s later, then kills it 2.5 s after that (actions/runner src/Runner.Sdk/ProcessInvoker.cs,
 * CancelAndKillProcessTree): the handlers stay until the outputs, the report and the job summary are written, so a
 * signal that comes after the last traffic change (or after the lock is released) cannot end the step without them.
 */
function cancellation(): {
  signal: AbortSignal
  /** Seconds since the first signal; undefined when none came. */
  since: () => number | undefined
  settled: () => void
  dispose: () => void
} {
  const controller = new AbortController()
  let settled = false
  let first: number | undefined
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((sig) => {
    const handler = (): void => {
      if (settled) {
        core.warning(`Received ${sig} after the run settled: writing the outputs, the report and the job summary`)
      } else if (first === undefined) {
        core.warning(`Received ${sig}: the workflow is being cancelled; stopping and reverting`)
      } else {
        const after = ((Date.now() - first) / 1000).toFixed(1)
        core.warning(
          `Received ${sig} ${after} s after the first signal: still reverting; if the runner kills the step first, ` +
            'its post step finishes the revert',
        )
      }
      first ??= Date.now()
      controller.abort(new Cancelled(`cancelled by ${sig}`))
    }
    process.on(sig, handler)
    return () => process.off(sig, handler)
  })
  return {
    signal: controller.signal,
    since: () => (first === undefined ? undefined : (Date.now() - first) / 1000),
    settled: () => {
      settled = true
    },
    dispose: () => {
      for (const off of handlers) off()
    },
  }
}

async function connect(inputs: Inputs, deps: Deps): Promise<Session> {
  return openSession(inputs.access, {
    tempDir: deps.env['RUNNER_TEMP'],
    setSecret: core.setSecret,
    log: core.info,
    getIdToken: (audience) => core.getIDToken(audience),
    sleep: deps.sleep,
  })
}

/** The API server as the verifiers reach in-cluster services: with the cluster credential. */
function clusterEndpoint(session: Session): ClusterEndpoint {
  return {
    server: session.kube.server,
    get: kubeconfigHttpGet(session.kube.kc),
    serviceExists: async (namespace, name) => {
      try {
        return (await session.kube.getService(namespace, name)) !== undefined
      } catch (err) {
        // May not read Services there: the Prometheus is as good as absent (metrics 'auto' warns, 'true' fails).
        if (err instanceof ForbiddenError) return false
        throw err
      }
    },
  }
}

function versionKeys(name: string, subset: Subset | undefined): string[] {
  const keys = [name, subset?.labels?.['version']]
  return [...new Set(keys.filter((v): v is string => typeof v === 'string' && v !== ''))]
}

/** The main step: its phases in order, and what they found out along the way. */
class MainStep {
  private readonly report: RunReport
  private readonly cancel = cancellation()
  private readonly runId: string
  private lock: RolloutLock | undefined
  /** A traffic change of this run began. */
  private touched = false
  private failure: Error | undefined
  private outcome: Outcome | undefined
  /** The target's router, once made: what the outputs report when the run fails before its mode's outcome. */
  private router: TrafficRouter | undefined
  private manifestChanged = false
  /** Each subset's workload as Istio and Kiali name it (found only with kiali-url). */
  private readonly workloads = new Map<string, string>()
  /** The data plane found by the mesh checks (for messages in its words). */
  private flavor: MeshFlavor | undefined
  /** When the rollout this run continues (or, for status, reports on) began: the Kiali links' window starts there. */
  private rolloutStartedAt: string | undefined

  constructor(
    private readonly inputs: Inputs,
    private readonly deps: Deps,
  ) {
    this.runId = runIdentity(deps.env)
    const startedAt = deps.now().toISOString()
    const target = targetOf(inputs)
    this.report = {
      version: 2,
      action: inputs.action,
      target: {
        kind: target.kind,
        namespace: target.namespace,
        name: target.name,
        route: describeSelector(target.route, target.kind),
      },
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
    deps.jobState.save('runId', this.runId)
    deps.jobState.save('target', { kind: target.kind, namespace: target.namespace, name: target.name })
  }

  private get mode() {
    return MODES[this.inputs.action]
  }

  async run(): Promise<void> {
    try {
      const session = await core.group('Connect to the cluster', () => this.connect())
      const router = createRouter(session.kube, targetOf(this.inputs), { log: core.info })
      this.router = router
      const engine = this.engine(router)
      await engine.load()
      const found = router.state
      if (found && (isActive(found) || this.inputs.action === 'status')) this.rolloutStartedAt = found.startedAt
      await this.checkManifest(router)
      await this.checkMesh(session, router, engine)
      if (this.mode.locks && (await core.group('Take the lock', () => this.takeLock(session, router, engine)))) {
        core.info(`The ${router.target.kind} changed while the checks ran: checking again`)
        await this.checkMesh(session, router, engine)
      }
      this.cancel.signal.throwIfAborted()
      const title = `${this.inputs.action} ${this.inputs.namespace}/${router.target.name}`
      this.outcome = await core.group(title, () => RUNNERS[this.inputs.action](engine, this.inputs, this.deps.jobState))
      this.failure = this.outcome.error
      if (this.inputs.manifest) await core.group('Hand back to the manifest', () => this.handBack(router))
    } catch (err) {
      this.failure = err as Error
    }
    this.cancel.settled()
    const since = this.cancel.since()
    if (since !== undefined && this.touched) {
      core.info(
        this.outcome?.result === 'rolled-back' && this.outcome.unsettled !== true
          ? `Cancelled: the revert finished in the main step, ${since.toFixed(1)} s after the first signal ` +
              '(the runner kills a step 10 s after it)'
          : 'Cancelled: the revert did not finish in the main step; its post step finishes it',
      )
    }
    await this.releaseLock()
    this.deps.jobState.save('mainDone', true)
    try {
      await core.group('Report', () => this.finish())
      if (this.failure) core.setFailed(this.failure.message)
    } finally {
      this.cancel.dispose()
    }
  }

  private async connect(): Promise<Session> {
    const session = await connect(this.inputs, this.deps)
    if (session.createdDir) this.deps.jobState.save('tempDir', session.createdDir)
    core.info(`Connected: ${session.describe}, API server ${session.kube.server}`)
    return session
  }

  private engine(router: TrafficRouter): Engine {
    const canary = this.inputs['canary-subset']
    return new Engine(
      {
        router,
        signal: this.cancel.signal,
        runId: this.runId,
        log: core.info,
        warn: core.warning,
        now: this.deps.now,
        sleep: this.deps.sleep,
        onTrafficChange: () => {
          this.touched = true
          this.deps.jobState.save('changed', true)
        },
        checkLock: () => this.lock?.check(),
        propagationHint: () =>
          this.flavor === 'linkerd'
            ? "Linkerd's policy controller has not sent it to every proxy: see linkerd diagnostics policy " +
              `-n ${this.inputs.namespace} svc/<service> <port>`
            : ISTIO_PROPAGATION_HINT,
      },
      { stableSubset: this.inputs['stable-subset'], ...(canary ? { canarySubset: canary } : {}) },
    )
  }

  /** The GitOps manifest must hold the target before anything changes (the file is only read here). */
  private async checkManifest(router: TrafficRouter): Promise<void> {
    if (!this.inputs.manifest || !this.mode.handsBack) return
    await checkManifest(this.inputs.manifest, router.manifestTarget(router.state?.route ?? this.inputs.route))
  }

  /**
   * Everything to check before a traffic change (mesh, readiness, analyze) and the verifiers each step runs: the
   * subsets come from the plan of the run (or the canary alone for a preview). Reads only.
   */
  private async checkMesh(session: Session, router: TrafficRouter, engine: Engine): Promise<void> {
    if (this.inputs.action === 'status') {
      const route = router.findRoute(this.inputs.route) ?? {}
      Object.assign(this.report, await describeMesh(this.inputs, session, () => router.meshFacts(route)))
      await this.statusVerifiers(session, router, engine)
      return
    }
    if (!this.mode.verifies || (this.inputs.action !== 'preview' && engine.alreadyPromoted())) return
    this.cancel.signal.throwIfAborted()
    await core.group('Check the mesh', async () => {
      const preview = this.inputs.action === 'preview'
      const start = preview ? undefined : engine.start()
      const route = start?.route ?? router.inputRoute({ shadowed: 'allow' })
      const stable = start?.stable ?? ''
      const canary = start?.canary ?? (this.inputs['canary-subset'] as string)
      this.report.stableSubset = stable
      this.report.canarySubset = canary
      await this.prepareVerifiers(this.inputs, session, router, engine, { route, stable, canary, preview })
    })
  }

  /**
   * `status`: the verifiers of the route as it is, read-only: no istioctl, no install, no analyze; a mesh that is not
   * ready, or a Prometheus that cannot be used, leaves a note in the report instead of failing the run.
   */
  private async statusVerifiers(session: Session, router: TrafficRouter, engine: Engine): Promise<void> {
    const { route, stable, canary } = engine.statusTarget()
    if (!canary) {
      engine.statusNotes.push("no evidence per version: no rollout in progress and no 'canary-subset'")
      return
    }
    this.report.stableSubset = stable
    this.report.canarySubset = canary
    // Only the versions that take traffic now must be ready (after a promotion the old one may be scaled down).
    const shares = router.shares(route)
    const ready = [stable, canary].filter((s) => s !== '' && (shares.get(s) ?? 0) > 0)
    const readOnly: Inputs = {
      ...this.inputs,
      'install-istio': false,
      analyze: false,
      metrics: this.inputs.metrics === 'false' ? 'false' : 'auto',
    }
    try {
      await core.group('Check the mesh (read-only, for status)', () =>
        this.prepareVerifiers(readOnly, session, router, engine, { route, stable, canary, preview: false, ready }),
      )
    } catch (err) {
      const message = (err as Error).message
      core.warning(`Status without evidence per version: ${message}`)
      engine.statusNotes.push(`no evidence per version: ${message}`)
    }
  }

  /** The mesh checks and the verifiers of the plan's versions (reads only, with `inputs` as given). */
  private async prepareVerifiers(
    inputs: Inputs,
    session: Session,
    router: TrafficRouter,
    engine: Engine,
    plan: { route: Route; stable: string; canary: string; preview: boolean; ready?: string[] },
  ): Promise<void> {
    const { route, stable, canary, preview } = plan
    let facts: Promise<MeshFacts> | undefined
    const meshFacts = (): Promise<MeshFacts> => {
      facts ??= router.meshFacts(route)
      return facts
    }
    const mesh = await prepareMesh(
      inputs,
      session,
      {
        kind: router.target.kind,
        name: router.target.name,
        route,
        subsets: plan.ready ?? [stable, canary].filter((s) => s !== ''),
        facts: meshFacts,
      },
      (version) => {
        this.report.istioVersion = version
      },
    )
    this.report.gatewayUrl = mesh.gatewayUrl
    this.flavor = mesh.flavor
    const state = router.state
    const base = state && isActive(state) ? state.originalRoute : route
    const versionLabel = (subset: string): string => mesh.subsets.get(subset)?.labels?.['version'] ?? subset
    const routeFacts = await meshFacts()
    const service = routeFacts.destinationHost.split('.')[0] ?? ''
    // An HTTPRoute sends to one Service per version: the mesh counts each version's requests under its own Service.
    const services =
      router.target.kind === 'HTTPRoute'
        ? [...new Set([...(routeFacts.meshParents ?? []), stable, canary].filter((s) => s !== ''))]
        : undefined
    const workloads = Object.fromEntries(
      [...mesh.workloads].map(([version, workload]) => [versionLabel(version), workload] as const),
    )
    const verifiers = await createVerifiers(
      inputs,
      {
        namespace: inputs.namespace,
        service,
        stableVersion: versionLabel(stable),
        canaryVersion: versionLabel(canary),
        gatewayUrl: mesh.gatewayUrl,
        canaryVersions: versionKeys(canary, mesh.subsets.get(canary)),
        stableVersions: stable ? versionKeys(stable, mesh.subsets.get(stable)) : [],
        // Shares are tested where the split is exactly stable/canary, and for a preview (all of it to the canary).
        splitIsStableCanary: preview || [...router.shares(base).keys()].every((v) => v === stable || v === canary),
        flavor: mesh.flavor,
        ...(services ? { services } : {}),
        ...(mesh.workloads.size > 0 ? { workloads } : {}),
      },
      {
        sleep: this.deps.sleep,
        now: () => this.deps.now().getTime(),
        log: core.info,
        warn: core.warning,
        cluster: clusterEndpoint(session),
        ...(session.azure ? { azure: session.azure } : {}),
      },
    )
    for (const verifier of verifiers) core.info(verifier.describe())
    engine.setVerifiers(verifiers)
    if (inputs['kiali-url']) {
      // An HTTPRoute's backends were found with their workloads; a VirtualService's subsets are looked up.
      for (const [version, workload] of mesh.workloads) this.workloads.set(version, workload)
      if (mesh.workloads.size === 0) await this.findWorkloads(session, service, mesh.subsets)
    }
  }

  /**
   * For the Kiali links: each subset's workload, named as Istio names it from a pod the subset selects (the Service's
   * selector and the subset's labels, as the readiness check selects them). Reads only; a failure only drops a link.
   */
  private async findWorkloads(session: Session, service: string, subsets: Map<string, Subset>): Promise<void> {
    try {
      const selector = (await session.kube.getService(this.inputs.namespace, service))?.spec?.selector ?? {}
      for (const [name, subset] of subsets) {
        const labels = { ...selector, ...(subset.labels ?? {}) }
        const sel = Object.entries(labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(',')
        const pod = (await session.kube.listPods(this.inputs.namespace, sel))[0]
        const workload = pod?.metadata ? workloadOfPod(pod.metadata as Parameters<typeof workloadOfPod>[0]) : undefined
        if (workload) this.workloads.set(name, workload)
      }
    } catch (err) {
      core.info(`Kiali links: could not name the versions' workloads (${(err as Error).message})`)
    }
  }

  /**
   * The lock, then a fresh read under it: a run that finished while we checked may have changed the plan.
   * True when the target changed since the checks.
   */
  private async takeLock(session: Session, router: TrafficRouter, engine: Engine): Promise<boolean> {
    const seen = router.revision
    this.lock = new RolloutLock(session.kube, {
      target: router.target,
      holder: this.runId,
      ttlMs: this.inputs['lock-ttl'],
      log: core.info,
      sleep: this.deps.sleep,
    })
    // Saved before the create: a step killed right after it landed leaves the post step a Lease to release.
    this.deps.jobState.save('lockHolder', this.runId)
    await this.lock.acquire()
    await engine.load()
    return router.revision !== seen
  }

  /** After `promoted` or `rolled-back`: the GitOps manifest gets the target route as the cluster now has it. */
  private async handBack(router: TrafficRouter): Promise<void> {
    const outcome = this.outcome
    if (!this.inputs.manifest || !outcome || (outcome.result !== 'promoted' && outcome.result !== 'rolled-back')) return
    try {
      const target = router.manifestTarget(router.state?.route ?? this.inputs.route)
      this.manifestChanged = await handBackManifest(this.inputs.manifest, target)
      core.info(
        this.manifestChanged
          ? `Wrote the target route as the cluster now has it to ${this.inputs.manifest}`
          : `${this.inputs.manifest} already has the target route as the cluster does`,
      )
    } catch (err) {
      const message = (err as Error).message
      this.failure ??= new Error(
        `the rollout ended ${outcome.result}, but handing it back to the manifest failed: ${message}`,
      )
    }
  }

  /**
   * Unsettled: the revert failed or a traffic change's outcome is unknown (an error escaped the engine after a
   * change began). The lock stays held, unrenewed, for the post step to finish and release; others wait.
   */
  private async releaseLock(): Promise<void> {
    const unsettled = this.outcome?.unsettled === true || (this.touched && this.outcome === undefined)
    if (unsettled) this.deps.jobState.save('unsettled', true)
    try {
      if (unsettled) this.lock?.stopRenewing()
      else await this.lock?.release()
    } catch (err) {
      core.warning(`Could not release the lock: ${(err as Error).message} (it expires by itself)`)
    }
  }

  /**
   * A run that failed before its mode ended (a check, the lock, a rollout of another canary in progress): it changed
   * nothing, so the outputs say where traffic is, as the target was last read: a rollout in progress (its versions
   * and weight, e.g. 50 % on the canary of a paused rollout), else the input canary's weight on the target route.
   */
  private reportLiveTarget(report: RunReport): void {
    const router = this.router
    if (!router || router.revision === undefined) return
    const state = router.state
    const active = state !== undefined && isActive(state)
    const canary = active ? state.canary : this.inputs['canary-subset']
    if (active) {
      report.stableSubset = state.stable
      report.canarySubset = state.canary
    }
    if (!canary) return
    const route = router.findRoute(active ? state.route : router.target.route)
    if (route) report.canaryWeight = router.weightOf(route, canary)
  }

  /** Outputs, the report file and the job summary: written whatever happened. */
  private async finish(): Promise<void> {
    const report = this.report
    const outcome = this.outcome
    report.result = outputResult(outcome?.result ?? 'unchanged', this.inputs.action)
    report.canaryWeight = outcome?.canaryWeight ?? 0
    if (!outcome) this.reportLiveTarget(report)
    else {
      report.stableSubset = outcome.stable || report.stableSubset
      report.canarySubset = outcome.canary || report.canarySubset
      report.steps = outcome.steps
      report.events = outcome.events
      if (outcome.observation) report.observation = outcome.observation
    }
    report.endedAt = this.deps.now().toISOString()
    const kiali = this.inputs['kiali-url']
    if (kiali) {
      const versions = (['stable', 'canary'] as const).flatMap((role) => {
        const version = role === 'stable' ? report.stableSubset : report.canarySubset
        const workload = this.workloads.get(version)
        return version ? [{ role, version, ...(workload ? { workload } : {}) }] : []
      })
      report.links = {
        kiali: kialiLinks(
          kiali,
          {
            namespace: report.target.namespace,
            startedAt: this.rolloutStartedAt ?? report.startedAt,
            endedAt: report.endedAt,
            versions,
          },
          this.deps.now(),
        ),
      }
    }
    if (this.failure) report.error = this.failure.message
    core.setOutput('result', report.result)
    core.setOutput('canary-weight', String(report.canaryWeight))
    core.setOutput('stable-subset', report.stableSubset)
    core.setOutput('canary-subset', report.canarySubset)
    core.setOutput('gateway-url', report.gatewayUrl)
    core.setOutput('istio-version', report.istioVersion)
    core.setOutput('manifest-changed', String(this.manifestChanged))
    try {
      const path = await writeReport(this.deps.env['RUNNER_TEMP'] ?? tmpdir(), report)
      core.setOutput('report', path)
      core.info(`Report: ${path}`)
      await writeJobSummary(report)
    } catch (err) {
      core.warning(`Could not write the report or job summary: ${(err as Error).message}`)
    }
    core.info(`Result: ${report.result}, canary weight ${report.canaryWeight} %`)
  }
}

export async function run(deps: Deps = defaultDeps): Promise<void> {
  let inputs: Inputs
  try {
    inputs = getInputs(undefined, deps.env)
  } catch (err) {
    core.setFailed((err as Error).message)
    return
  }
  await new MainStep(inputs, deps).run()
}

/** Post step: finish a revert the main step could not (it was killed), release its lock, remove its kubeconfig. */
export async function post(deps: Deps = defaultDeps): Promise<void> {
  const state = deps.jobState
  const runId = state.get('runId')
  const dir = state.get('tempDir')
  try {
    // Killed main step (no mainDone), a revert that failed, or a traffic change whose outcome main could not
    // read back: look at the target (the engine acts only on a change this run left unfinished).
    const unfinished = state.get('mainDone') !== true || state.get('unsettled') === true
    const target = state.get('target')
    if (unfinished && (state.get('changed') === true || state.get('lockHolder') !== undefined) && runId && target) {
      await core.group('Finish the interrupted run', () =>
        finishInterruptedRun(getInputs(undefined, deps.env), runId, target, deps),
      )
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
  target: Pick<TargetRef, 'kind' | 'namespace' | 'name'>,
  deps: Deps,
): Promise<void> {
  core.warning('The main step did not finish its run: checking whether its traffic change must be reverted')
  const session = await connect(inputs, deps)
  try {
    const router = createRouter(session.kube, { ...target, route: inputs.route }, { log: core.info })
    const engine = new Engine(
      { router, signal: new AbortController().signal, runId, log: core.info, now: deps.now },
      { stableSubset: inputs['stable-subset'] },
    )
    await engine.load()
    const preview = deps.jobState.get('preview')
    const what = `${target.namespace}/${target.name}`
    if (preview) {
      // Report only what this step did: a preview write that never landed leaves nothing to restore.
      if (await engine.restorePreview(preview.value, preview.before ?? undefined)) {
        core.setOutput('result', 'rolled-back')
        core.warning(`Restored the preview route '${preview.value}' of ${what} as it was before the interrupted run`)
      } else {
        core.info(`The preview route '${preview.value}' of ${what} is as it was before the run: nothing to restore`)
      }
    } else if (await engine.finishRevert(runId)) {
      core.setOutput('result', 'rolled-back')
      core.warning(`Reverted ${what} to the route it had before the interrupted run`)
    } else {
      core.info(`Nothing to revert: the ${target.kind} is not in a change made by this run`)
    }
    if (await releaseIfHeld(session.kube, target, runId)) core.info('Released the lock left by the main step')
  } finally {
    await removeDir(session.createdDir)
  }
}
