// End-to-end safety tests (SPEC section 4, rules 3 to 6: "it never leaves their traffic in a state they did
// not choose"). Each test runs the REAL bundle (dist/index.js) through the harness against its own loopback
// simulation: concurrent edits, the per-VirtualService lock, cancellation (SIGTERM/SIGINT), a killed main
// step finished by the post step, exact restores, secrets kept out of every log and file, transient API errors.
import assert from 'node:assert/strict'
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { after, describe, it } from 'node:test'
import { type Runner, type RunOptions, type StepResult, makeRunner, runAction } from '../runner/harness.js'
import type { Sim } from '../sim/index.js'
import type { KubeObject, ResourceRef } from '../sim/kube/store.js'
import { LEASES, STATE, VS, bookinfoInputs, runnerEnv, withSim } from './common.js'

const NS = 'bookinfo'
const LEASE = 'istio-canary-reviews'

type Json = Record<string, unknown>
interface Dest {
  destination: { host: string; subset?: string }
  weight?: number
}
interface Route {
  name?: string
  match?: unknown
  route?: Dest[]
  timeout?: string
  [k: string]: unknown
}
interface Spec {
  hosts?: string[]
  http?: Route[]
  [k: string]: unknown
}

// One tool cache for the whole file (istioctl is downloaded and verified once); every run gets its own RUNNER_TEMP.
const roots: string[] = []
const first = makeRunner()
roots.push(dirname(first.temp))
const toolCache = first.toolCache
function newRunner(): Runner {
  const r = makeRunner(toolCache)
  roots.push(dirname(r.temp))
  return r
}
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true })
})

const env = runnerEnv
const inputs = bookinfoInputs

function run(
  sim: Sim,
  extra: Record<string, string> = {},
  o: Partial<RunOptions> & { aks?: { secret?: boolean; admin?: boolean } } = {},
): Running {
  const { aks, ...rest } = o
  return runAction({
    inputs: inputs(sim, extra, aks ?? {}),
    env: env(sim),
    runner: newRunner(),
    timeoutMs: 40_000,
    ...rest,
  })
}

function getVs(sim: Sim): KubeObject {
  const vs = sim.store.get(VS, NS, 'reviews')
  assert.ok(vs, 'VirtualService bookinfo/reviews exists')
  return vs
}
const specOf = (vs: KubeObject): Spec => vs['spec'] as Spec
function stateOf(vs: KubeObject): Json | undefined {
  const raw = vs.metadata.annotations?.[STATE]
  return raw === undefined ? undefined : (JSON.parse(raw) as Json)
}
const leaseOf = (sim: Sim): KubeObject | undefined => sim.store.get(LEASES, NS, LEASE)
const vsWritesSince = (sim: Sim, mark: number): number =>
  sim.store.writes.slice(mark).filter((w) => w.ref.resource === 'virtualservices').length

type Running = ReturnType<typeof runAction>

/** Polls `probe` every 25 ms until it returns a value (bounded); fails early, with its log, if the run ends first. */
async function waitFor<T>(what: string, running: Running, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  let ended: Awaited<Running> | undefined
  void running.then(
    (r) => (ended = r),
    () => undefined,
  )
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    const v = probe()
    if (v !== undefined) return v
    if (ended) throw new Error(`the run ended before ${what}\n${diag(ended.main)}`)
    await delay(25)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** The step's failure message(s): `::error::` lines, decoded like the runner does. */
function errors(r: StepResult): string {
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('::error'))
    .map((l) =>
      l
        .replace(/^::error[^:]*::/, '')
        .replace(/%0A/g, '\n')
        .replace(/%0D/g, '\r')
        .replace(/%25/g, '%'),
    )
    .join('\n')
}

function diag(r: StepResult): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout (tail) ---\n${r.stdout.slice(-4000)}\n--- stderr (tail) ---\n${r.stderr.slice(-2000)}`
}

function report(r: StepResult): Json {
  const path = r.outputs['report']
  assert.ok(path, `a report output\n${diag(r)}`)
  return JSON.parse(readFileSync(path, 'utf8')) as Json
}

/** A MicroTime as the API server writes it (six fractional digits). */
const micro = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z')

function foreignLease(holder: string, renew: Date, seconds: number): KubeObject {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: LEASE, namespace: NS, labels: { 'app.kubernetes.io/managed-by': 'istio-canary' } },
    spec: {
      holderIdentity: holder,
      leaseDurationSeconds: seconds,
      acquireTime: micro(renew),
      renewTime: micro(renew),
      leaseTransitions: 0,
    },
  }
}

const clean = (subset: string): Dest[] => [{ destination: { host: 'reviews', subset } }]

describe('e2e safety: concurrent changes (rule 3)', () => {
  it('never overwrites a change of the target route made during a pause, and says so', async () => {
    await withSim({}, async (sim) => {
      // No version-pattern here: the smoke test after the pause must pass whatever weights the user chose, so
      // that the conflict is met by the next write (not by a revert).
      const running = run(sim, { steps: '50:3s,100', 'version-pattern': '' })
      await waitFor('the 50 % shift', running, () => {
        const s = stateOf(getVs(sim))
        return s?.['phase'] === 'shifting' && s['weight'] === 50 ? true : undefined
      })
      await delay(300)
      // The user takes over: 70/30, written with the resourceVersion they read (like kubectl apply/edit).
      const vs = getVs(sim)
      const userRoute: Dest[] = [
        { destination: { host: 'reviews', subset: 'v1' }, weight: 70 },
        { destination: { host: 'reviews', subset: 'v3' }, weight: 30 },
      ]
      ;(specOf(vs).http as Route[])[0]!.route = userRoute
      sim.store.update(VS, vs)
      const userSpec = structuredClone(specOf(getVs(sim)))
      const mark = sim.store.writes.length
      const { main, post } = await running

      assert.notEqual(main.code, 0, diag(main))
      const msg = errors(main)
      assert.match(msg, /VirtualService bookinfo\/reviews/, msg)
      assert.match(msg, /changed by someone else/, msg)
      assert.match(msg, /not overwriting/, msg)
      assert.equal(vsWritesSince(sim, mark), 0, 'no write to the VirtualService after the user changed it')
      assert.deepEqual(specOf(getVs(sim)), userSpec, 'the route stays exactly as the user wrote it')
      assert.deepEqual(specOf(getVs(sim)).http?.[0]?.route, userRoute)
      assert.notEqual(main.outputs['result'], 'promoted')
      assert.equal(leaseOf(sim), undefined, 'the lock is released')
      assert.equal(post?.code, 0, post && diag(post))
      assert.equal(vsWritesSince(sim, mark), 0, 'the post step does not touch it either')
    })
  })

  it('re-reads and goes on when someone edits another part of the VirtualService, keeping their edit', async () => {
    await withSim({ seed: { reviewsRoute: 'jason-v2-v1' } }, async (sim) => {
      const before = structuredClone(specOf(getVs(sim)))
      const running = run(sim, { steps: '50:3s,100' })
      await waitFor('the 50 % shift', running, () => (stateOf(getVs(sim))?.['weight'] === 50 ? true : undefined))
      await delay(300)
      // Someone adds a timeout to the jason route and a label, during the pause.
      const vs = getVs(sim)
      ;(specOf(vs).http as Route[])[0]!.timeout = '3s'
      vs.metadata.labels = { ...(vs.metadata.labels ?? {}), team: 'reviews' }
      sim.store.update(VS, vs)
      const { main } = await running

      assert.equal(main.code, 0, diag(main))
      assert.equal(main.outputs['result'], 'promoted')
      assert.match(main.stdout, /re-reading/)
      const expected = structuredClone(before)
      ;(expected.http as Route[])[0]!.timeout = '3s'
      ;(expected.http as Route[])[1]!.route = clean('v3')
      const after = getVs(sim)
      assert.deepEqual(specOf(after), expected, 'the other edit is kept; the default route is promoted and clean')
      assert.equal(after.metadata.labels?.['team'], 'reviews')
      assert.equal(stateOf(after)?.['phase'], 'promoted')
    })
  })
})

describe('e2e safety: one rollout at a time (rule 5)', () => {
  it('refuses a second run while the first holds the lock; the first finishes and releases it', async () => {
    await withSim({}, async (sim) => {
      const runningA = run(sim, { steps: '50:5s,100' })
      let aDone = false
      void runningA.then(
        () => (aDone = true),
        () => undefined,
      )
      const holderA = await waitFor('run A to take the Lease', runningA, () => {
        const h = (leaseOf(sim)?.['spec'] as Json | undefined)?.['holderIdentity']
        return typeof h === 'string' ? h : undefined
      })
      const b = await run(sim)
      assert.notEqual(b.main.code, 0, diag(b.main))
      const msg = errors(b.main)
      assert.match(msg, /another istio-canary run holds the lock/, msg)
      assert.ok(msg.includes(holderA), `B names the holder '${holderA}': ${msg}`)
      const runB = b.main.state['runId']
      assert.ok(runB && runB !== holderA)
      const byB = sim.store.writes.filter(
        (w) =>
          w.ref.resource === 'virtualservices' &&
          (w.object.metadata.annotations?.[STATE] ?? '').includes(JSON.stringify(runB)),
      )
      assert.equal(byB.length, 0, 'B made no VirtualService write')
      if (!aDone)
        assert.equal(
          (leaseOf(sim)?.['spec'] as Json | undefined)?.['holderIdentity'],
          holderA,
          "B's post step left A's lock alone",
        )

      const a = await runningA
      assert.equal(a.main.code, 0, diag(a.main))
      assert.equal(a.main.outputs['result'], 'promoted')
      assert.equal(a.main.state['runId'], holderA)
      assert.deepEqual(specOf(getVs(sim)).http?.[0]?.route, clean('v3'))
      assert.equal(leaseOf(sim), undefined, 'the Lease is gone after A')
      const leaseWrites = sim.store.writes.filter((w) => w.ref.resource === 'leases')
      assert.equal(leaseWrites.filter((w) => w.verb === 'delete').length, 1, 'deleted once, by A at its end')
      assert.ok(
        leaseWrites.every((w) => (w.object['spec'] as Json)['holderIdentity'] === holderA),
        'B never wrote the Lease',
      )
    })
  })

  it('refuses a live foreign lock, and takes over one left by a dead run', async () => {
    await withSim({}, async (sim) => {
      const foreign = 'octo-org/octo-repo#4242.1/canary/dead01'
      sim.store.create(LEASES, foreignLease(foreign, new Date(), 120))
      const rv = leaseOf(sim)?.metadata.resourceVersion
      let mark = sim.store.writes.length
      const refused = await run(sim)
      assert.notEqual(refused.main.code, 0, diag(refused.main))
      assert.ok(errors(refused.main).includes(`held by '${foreign}'`), errors(refused.main))
      assert.equal(vsWritesSince(sim, mark), 0)
      assert.equal(leaseOf(sim)?.metadata.resourceVersion, rv, 'the live lock is untouched')

      // The holder died ten minutes ago; its lock said 15 s.
      const dead = leaseOf(sim) as KubeObject
      dead['spec'] = foreignLease(foreign, new Date(Date.now() - 600_000), 15)['spec']
      sim.store.update(LEASES, dead)
      mark = sim.store.writes.length
      const ok = await run(sim, { steps: '100' })
      assert.equal(ok.main.code, 0, diag(ok.main))
      assert.equal(ok.main.outputs['result'], 'promoted')
      assert.ok(ok.main.stdout.includes(`Taking over expired lock held by '${foreign}'`), diag(ok.main))
      const taken = sim.store.writes.slice(mark).find((w) => w.ref.resource === 'leases' && w.verb === 'update')
      assert.equal(
        (taken?.object['spec'] as Json | undefined)?.['holderIdentity'],
        ok.main.state['runId'],
        'the Lease was taken over by the run',
      )
      assert.equal(leaseOf(sim), undefined, 'and released at its end')
    })
  })
})

describe('e2e safety: cancellation and interrupted runs (rule 4)', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} during a pause reverts to the exact pre-run route and fails`, async () => {
      await withSim({}, async (sim) => {
        const pre = structuredClone(specOf(getVs(sim)))
        const t0 = Date.now()
        const { main, post } = await run(
          sim,
          { steps: '50,100', pause: '20s' },
          { interrupt: { when: 'Pausing', signal } },
        )
        assert.ok(Date.now() - t0 < 15_000, 'it did not sit out the pause')
        assert.notEqual(main.code, 0, diag(main))
        assert.equal(main.signal, null, 'the action handled the signal and exited by itself')
        assert.match(errors(main), new RegExp(`cancelled by ${signal}`), diag(main))
        assert.equal(main.outputs['result'], 'rolled-back')
        assert.equal(main.outputs['canary-weight'], '0')
        const vs = getVs(sim)
        assert.deepEqual(specOf(vs), pre, 'the route is restored exactly')
        assert.equal(stateOf(vs)?.['phase'], 'rolled-back')
        assert.equal(leaseOf(sim), undefined)
        assert.equal(post?.code, 0, post && diag(post))
      })
    })
  }

  it('a main step killed with SIGKILL is reverted by the post step', async () => {
    await withSim({}, async (sim) => {
      const pre = structuredClone(specOf(getVs(sim)))
      const { main, post, runner } = await run(
        sim,
        { steps: '50,100', pause: '20s' },
        { interrupt: { when: 'Pausing', signal: 'SIGKILL' } },
      )
      assert.equal(main.signal, 'SIGKILL', diag(main))
      // Killed mid-shift: the route is at 50 % and the lock is held until the post step runs... which it did.
      assert.ok(post, 'the post step ran')
      assert.equal(post.code, 0, diag(post))
      assert.equal(post.outputs['result'], 'rolled-back')
      assert.match(post.stdout, /Reverted bookinfo\/reviews/)
      const vs = getVs(sim)
      assert.deepEqual(specOf(vs), pre, 'the route is restored exactly')
      assert.equal(stateOf(vs)?.['phase'], 'rolled-back')
      assert.equal(leaseOf(sim), undefined, 'the lock is released')
      const dir = main.state['tempDir']
      assert.ok(dir, 'the main step recorded its kubeconfig directory')
      assert.equal(existsSync(dir), false, 'the kubeconfig directory is removed')
      assert.deepEqual(
        readdirSync(runner.temp).filter((n) => n.startsWith('istio-canary-') && !n.endsWith('.json')),
        [],
        'no kubeconfig directory is left',
      )
    })
  })

  it('a bad canary is rolled back at step 1 to the exact original route, header route untouched', async () => {
    await withSim({ seed: { reviewsRoute: 'jason-v2-v1' } }, async (sim) => {
      const pre = structuredClone(specOf(getVs(sim)))
      assert.ok(pre.http?.[0]?.match, 'the fixture has the jason header route first')
      sim.mesh.setFault('reviews', 'v3', { errorRate: 1 })
      const { main } = await run(sim)
      assert.notEqual(main.code, 0, diag(main))
      assert.match(errors(main), /smoke test failed at 10 %/)
      assert.equal(main.outputs['result'], 'rolled-back')
      assert.equal(main.outputs['canary-weight'], '0')
      const vs = getVs(sim)
      assert.deepEqual(specOf(vs), pre, 'the whole spec is as before the run')
      assert.deepEqual(specOf(vs).http?.[0], pre.http?.[0], 'the jason route is untouched')
      assert.equal(stateOf(vs)?.['phase'], 'rolled-back')
      const rep = report(main)
      assert.equal(rep['result'], 'rolled-back')
      const steps = rep['steps'] as Json[]
      assert.equal(steps.length, 1)
      assert.equal(steps[0]?.['weight'], 10)
      assert.equal(steps[0]?.['verdict'], 'fail')
      assert.ok((steps[0]?.['reasons'] as string[]).length > 0)
      assert.match(String(rep['error']), /smoke test failed at 10 %/)
      assert.match(main.summary, /<td>10 %<\/td>/)
      assert.match(main.summary, /❌ fail/)
    })
  })
})

// ---- secrets (rule 6) --------------------------------------------------------------------------------

const JWT = /eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}/

function walk(dir: string): string[] {
  if (!existsSync(dir)) return []
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...walk(p))
    else if (e.isFile()) out.push(p)
  }
  return out
}

function readOr(p: string): string {
  try {
    return readFileSync(p, 'utf8')
  } catch {
    return '' // removed meanwhile
  }
}

interface KubeconfigSeen {
  path: string
  mode: number
  dirMode: number
  holds: string[]
}

/** Watches RUNNER_TEMP while a step runs: every file that holds a secret, its mode and its directory's. */
function watchTemp(runner: Runner, secrets: () => string[]): { stop: () => Promise<KubeconfigSeen[]> } {
  const seen = new Map<string, KubeconfigSeen>()
  let on = true
  const loop = (async () => {
    for (let i = 0; on && i < 4000; i++) {
      for (const f of walk(runner.temp)) {
        const text = readOr(f)
        const holds = secrets().filter((s) => text.includes(s))
        if (holds.length === 0) continue
        try {
          seen.set(f, { path: f, mode: statSync(f).mode & 0o777, dirMode: statSync(dirname(f)).mode & 0o777, holds })
        } catch {
          // removed between read and stat
        }
      }
      await delay(20)
    }
  })()
  return {
    stop: async () => {
      on = false
      await loop
      return [...seen.values()]
    },
  }
}

describe('e2e safety: secrets never reach the log (rule 6)', () => {
  it('no client secret, cluster token or access token in logs, outputs, state, summary or report; the kubeconfig is 0600 and removed', async () => {
    await withSim({ clusterKind: 'entra' }, async (sim) => {
      // Every access token that ARM and the Kubernetes API (Entra bearer tokens) received.
      const received = new Set<string>()
      const validate = sim.entra.validate.bind(sim.entra)
      sim.entra.validate = (token, audience) => {
        received.add(token)
        return validate(token, audience)
      }
      const secrets = (): string[] => [
        sim.ids.clientSecret,
        sim.tokens.user,
        sim.tokens.admin,
        sim.oidc.requestToken,
        ...received,
      ]
      const original = getVs(sim)
      const reset = (): void => {
        const vs = getVs(sim)
        vs['spec'] = structuredClone(original['spec'])
        const { [STATE]: _drop, ...rest } = vs.metadata.annotations ?? {}
        vs.metadata.annotations = rest
        sim.store.update(VS, vs)
        sim.mesh.setFault('reviews', 'v3', undefined)
      }
      const cases: Array<{
        name: string
        aks: { secret?: boolean; admin?: boolean }
        bad: boolean
        token: () => string | undefined
        expectCode: number
      }> = [
        // OIDC (federated credential), Entra-integrated cluster: the kube API gets an Entra bearer token.
        { name: 'oidc', aks: {}, bad: false, token: () => undefined, expectCode: 0 },
        // Client secret, admin credential: the static admin token.
        {
          name: 'secret-admin',
          aks: { secret: true, admin: true },
          bad: false,
          token: () => sim.tokens.admin,
          expectCode: 0,
        },
        // Client secret, failing run (bad canary, rolled back).
        { name: 'secret-failing', aks: { secret: true }, bad: true, token: () => undefined, expectCode: 1 },
      ]
      for (const c of cases) {
        reset()
        if (c.bad) sim.mesh.setFault('reviews', 'v3', { errorRate: 1 })
        const runner = newRunner()
        const watch = watchTemp(runner, secrets)
        const { main, post } = await run(sim, { steps: '50,100', pause: '1s' }, { aks: c.aks, runner })
        const holders = await watch.stop()
        assert.equal(main.code, c.expectCode, `${c.name}: ${diag(main)}`)
        assert.equal(main.outputs['result'], c.bad ? 'rolled-back' : 'promoted', c.name)
        assert.ok(post, c.name)
        assert.equal(post.code, 0, `${c.name}: ${diag(post)}`)
        assert.ok(received.size >= 1, 'tokens were captured (the check is not vacuous)')
        const known = secrets()
        const t = c.token()
        if (t) assert.ok(known.includes(t))

        // Logs, file commands, summary, report.
        const texts: Array<[string, string]> = []
        for (const [step, r] of [
          ['main', main],
          ['post', post],
        ] as const) {
          texts.push([
            `${step} stdout`,
            r.stdout
              .split('\n')
              .filter((l) => !l.startsWith('::add-mask::'))
              .join('\n'),
          ])
          texts.push([`${step} stderr`, r.stderr])
          texts.push([`${step} GITHUB_OUTPUT`, readOr(r.files.output)])
          texts.push([`${step} GITHUB_STATE`, readOr(r.files.state)])
          texts.push([`${step} step summary`, readOr(r.files.summary)])
        }
        texts.push(['report', readFileSync(main.outputs['report'] as string, 'utf8')])
        for (const [where, text] of texts) {
          for (const s of known)
            assert.ok(!text.includes(s), `${c.name}: a secret (${s.slice(0, 6)}...) appears in ${where}`)
          assert.doesNotMatch(text, JWT, `${c.name}: a JWT appears in ${where}`)
        }

        // While it ran, the only files under RUNNER_TEMP holding a secret were kubeconfigs, 0600 in a 0700 directory.
        assert.ok(holders.length >= 1, `${c.name}: the kubeconfig was seen under RUNNER_TEMP`)
        for (const h of holders) {
          assert.ok(!relative(runner.temp, h.path).startsWith('..'), h.path)
          assert.match(
            h.path,
            /\/istio-canary-[^/]+\/kubeconfig$/,
            `${c.name}: only the kubeconfig holds a token, not ${h.path}`,
          )
          assert.equal(h.mode, 0o600, `${c.name}: kubeconfig mode ${h.mode.toString(8)}`)
          assert.equal(h.dirMode, 0o700, `${c.name}: kubeconfig directory mode ${h.dirMode.toString(8)}`)
        }
        if (t)
          assert.ok(
            holders.some((h) => h.holds.includes(t)),
            `${c.name}: the kubeconfig holds the cluster token`,
          )
        // After the post step: no file under RUNNER_TEMP holds any secret; the kubeconfig is gone.
        for (const f of walk(runner.temp)) {
          const text = readOr(f)
          for (const s of secrets()) assert.ok(!text.includes(s), `${c.name}: ${f} holds a secret after the post step`)
        }
        for (const h of holders)
          assert.equal(existsSync(h.path), false, `${c.name}: ${h.path} removed by the post step`)
        assert.match(post.stdout, /Removed the kubeconfig/)
      }
    })
  })
})

describe('e2e safety: transient API errors; report and summary', () => {
  it('retries 503s and a connection reset on VirtualService GET/PUT, promotes, and reports every step', async () => {
    await withSim({}, async (sim) => {
      const path = /\/namespaces\/bookinfo\/virtualservices\/reviews(\?|$)/
      sim.kube.injectFault({ method: 'GET', path, status: 503, times: 2 })
      let injected = false
      const onWrite = (ev: { ref: ResourceRef; object: KubeObject }): void => {
        // Once the rollout has shifted: the next PUTs meet two 503s and a reset.
        if (injected || ev.ref.resource !== 'virtualservices' || stateOf(ev.object)?.['phase'] !== 'shifting') return
        injected = true
        sim.kube.injectFault({ method: 'PUT', path, status: 503, times: 2 })
        sim.kube.injectFault({ method: 'PUT', path, status: 'reset', times: 1 })
      }
      sim.store.on('write', onWrite)
      const from = sim.kube.requests.length
      try {
        const { main } = await run(sim, { steps: '50,100' })
        assert.equal(main.code, 0, diag(main))
        assert.equal(main.outputs['result'], 'promoted')
        assert.ok(injected)
        const vsCalls = sim.kube.requests.slice(from).filter((r) => path.test(r.path))
        assert.equal(vsCalls.filter((r) => r.method === 'GET' && r.status === 503).length, 2)
        assert.equal(vsCalls.filter((r) => r.method === 'PUT' && r.status === 503).length, 2)
        assert.equal(vsCalls.filter((r) => r.method === 'PUT' && r.status === 0).length, 1, 'one reset PUT')
        assert.match(main.stdout, /retry 1 in/)
        assert.deepEqual(specOf(getVs(sim)).http?.[0]?.route, clean('v3'))
        assert.equal(leaseOf(sim), undefined)

        const rep = report(main)
        assert.equal(rep['result'], 'promoted')
        assert.equal(rep['canaryWeight'], 100)
        assert.equal(rep['stableSubset'], 'v1')
        assert.equal(rep['canarySubset'], 'v3')
        const steps = rep['steps'] as Json[]
        assert.deepEqual(
          steps.map((s) => s['weight']),
          [50, 100],
        )
        assert.deepEqual(
          steps.map((s) => s['verdict']),
          ['pass', 'pass'],
        )
        for (const s of steps) {
          const smoke = (s['checks'] as Json[])[0]!['evidence'] as Json
          assert.equal(smoke['requests'], 200) // the smoke-requests default
          assert.equal(smoke['successes'], 200)
          assert.equal(typeof smoke['p95Ms'], 'number')
          assert.ok(
            !Number.isNaN(Date.parse(String(s['startedAt']))) && !Number.isNaN(Date.parse(String(s['endedAt']))),
          )
        }
        const by50 = ((steps[0]?.['checks'] as Json[])[0]!['evidence'] as Json)['byVersion'] as Record<string, Json>
        assert.ok(by50['v1'] && by50['v3'], `per-version stats at 50 %: ${JSON.stringify(by50)}`)

        // The job summary: the step table (GitHub renders core.summary tables as HTML) and the chart.
        const sum = main.summary
        for (const h of ['Step', 'Weight', 'Pause', 'Requests', 'Success', 'Verdict'])
          assert.ok(sum.includes(`<th>${h}</th>`), `summary header ${h}`)
        assert.match(sum, /<td>50 %<\/td>/)
        assert.match(sum, /<td>100 %<\/td>/)
        assert.equal(sum.match(/✅ pass/g)?.length, 2)
        assert.match(sum, /xychart-beta/)
      } finally {
        sim.store.off('write', onWrite)
      }
    })
  })
})
