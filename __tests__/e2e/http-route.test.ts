// The HTTPRoute target (SPEC section 7) end to end, one suite per data plane layout the simulation offers
// (__tests__/sim/mesh/layouts.ts): Istio sidecars with the Gateway API, Istio ambient (ztunnel and a waypoint), and
// Linkerd. Each suite runs the real bundle through every mode and the rules of SPEC section 4 on BookInfo's reviews
// HTTPRoute (reviews-v1 -> reviews-v3, one Service per version): the data plane routes by the HTTPRoute, so the
// served versions follow the weights the action writes. Short pauses and few steps keep it fast.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { runAction } from '../runner/harness.js'
import type { Sim, SimOptions } from '../sim/index.js'
import type { KubeObject } from '../sim/kube/store.js'
import {
  HR,
  changesSince,
  httpRouteInputs,
  reviewsRoute,
  rulesOf,
  runnerEnv,
  stateOf,
  withFault,
  withSim,
} from './common.js'

interface Layout {
  name: string
  options: SimOptions
  /** What the action's mesh check says of this layout (so a suite cannot pass on another layout). */
  seen: RegExp
  /** This layout's own inputs. */
  inputs?: (sim: Sim) => Record<string, string>
}

const CONTROLLER = { delayMs: 50 }

const LAYOUTS: Layout[] = [
  {
    name: 'Istio sidecar + Gateway API',
    options: { gatewayApi: { controller: CONTROLLER } },
    seen: /Data plane: Istio \(sidecars\)/,
  },
  {
    name: 'Istio ambient (waypoint)',
    options: { dataplane: 'istio-ambient', gatewayApi: { controller: CONTROLLER } },
    seen: /Data plane: Istio ambient mode[\s\S]*Service bookinfo\/reviews: waypoint bookinfo\/waypoint \(Programmed\)/,
  },
  {
    name: 'Linkerd',
    options: { dataplane: 'linkerd', gatewayApi: { seed: { mesh: 'linkerd' }, controller: CONTROLLER } },
    seen: /Data plane: Linkerd[\s\S]*Control plane: Linkerd/,
    // Linkerd has no ingress of its own (the action asks for gateway-url): the simulated ingress-nginx's address.
    inputs: (sim) => ({ 'gateway-url': sim.mesh.url }),
  },
]

type Rule = { name?: string; matches?: unknown[]; backendRefs?: Array<{ name: string; weight?: number }> }

/** The target rule (the last without matches other than the default "/" prefix the CRD writes in). */
const targetRule = (o: KubeObject): Rule => rulesOf(o).at(-1) as Rule
const split = (o: KubeObject): string =>
  (targetRule(o).backendRefs ?? []).map((b) => `${b.name}:${b.weight ?? 1}`).join(',')
/** Everything of the HTTPRoute but its rules and the action's annotation. */
const rest = (o: KubeObject): unknown => ({
  spec: { ...(o['spec'] as object), rules: undefined },
  parentRefs: (o['spec'] as { parentRefs?: unknown }).parentRefs,
  labels: o.metadata.labels,
})

for (const layout of LAYOUTS) {
  describe(`HTTPRoute on ${layout.name}`, () => {
    const sim = (fn: (sim: Sim) => Promise<void>): Promise<void> => withSim(layout.options, fn)
    const inputs = (sim: Sim, extra: Record<string, string> = {}): Record<string, string> =>
      httpRouteInputs(sim, { steps: '50,100', 'smoke-requests': '20', ...layout.inputs?.(sim), ...extra })

    it('a healthy canary is promoted: reviews-v3 takes 100 %, every other field of the HTTPRoute as it was', () =>
      sim(async (sim) => {
        const before = reviewsRoute(sim)
        const { main } = await runAction({ inputs: inputs(sim), env: runnerEnv(sim) })
        assert.equal(main.code, 0, main.stdout)
        assert.equal(main.outputs['result'], 'promoted')
        assert.equal(main.outputs['stable-subset'], 'reviews-v1')
        assert.equal(main.outputs['canary-subset'], 'reviews-v3')
        const after = reviewsRoute(sim)
        assert.equal(split(after), 'reviews-v3:100')
        assert.deepEqual(rest(after), rest(before))
        assert.deepEqual(rulesOf(after).slice(0, -1), rulesOf(before).slice(0, -1))
        assert.equal(stateOf(after)?.['phase'], 'promoted')
        assert.match(main.stdout, layout.seen)
        assert.match(main.outputs['gateway-url'] ?? '', /^http:\/\/127\.0\.0\.1:\d+$/)
        // Each shift: accepted by the parent, then traffic follows it (the data plane routes by the HTTPRoute).
        assert.match(
          main.stdout,
          /Shifted to reviews-v1 50 % \/ reviews-v3 50 %\nHTTPRoute bookinfo\/reviews generation \d+ accepted by its parent .*\nSettled at 50 %: traffic follows 50 %/,
        )
        assert.match(main.stdout, /Step 1 at 50 %: .*: pass/)
        assert.match(main.stdout, /Settled at 100 %: traffic follows 100 %/)
      }))

    it('a bad canary is reverted at its first step, to the exact original rule', () =>
      sim(async (sim) => {
        const before = structuredClone(rulesOf(reviewsRoute(sim)))
        await withFault(sim, 'v3', { errorRate: 1 }, async () => {
          const { main } = await runAction({ inputs: inputs(sim), env: runnerEnv(sim) })
          assert.equal(main.code, 1, main.stdout)
          assert.equal(main.outputs['result'], 'rolled-back')
          assert.match(main.stdout, /Step 1 at 50 %: .*FAIL/)
          assert.doesNotMatch(main.stdout, /Step 2 at/)
        })
        assert.deepEqual(rulesOf(reviewsRoute(sim)), before)
        assert.equal(stateOf(reviewsRoute(sim))?.['phase'], 'rolled-back')
      }))

    it('paused at 50 %, then promote from a later run', () =>
      sim(async (sim) => {
        const first = await runAction({ inputs: inputs(sim, { steps: '50' }), env: runnerEnv(sim) })
        assert.equal(first.main.code, 0, first.main.stdout)
        assert.equal(first.main.outputs['result'], 'paused')
        assert.equal(split(reviewsRoute(sim)), 'reviews-v1:50,reviews-v3:50')
        // status in between: reports the rollout, changes nothing.
        const since = sim.store.writes.length
        const status = await runAction({
          inputs: inputs(sim, { action: 'status', 'canary-backend': '' }),
          env: runnerEnv(sim),
        })
        assert.equal(status.main.code, 0, status.main.stdout)
        assert.equal(status.main.outputs['result'], 'unchanged')
        assert.equal(status.main.outputs['canary-weight'], '50')
        assert.match(status.main.stdout, /Rollout state: paused at 50 % \(canary 'reviews-v3', stable 'reviews-v1'/)
        assert.deepEqual(
          changesSince(sim, since).filter((w) => w.resource !== 'leases'),
          [],
        )
        const { main } = await runAction({
          inputs: inputs(sim, { action: 'promote', 'canary-backend': '' }),
          env: runnerEnv(sim),
        })
        assert.equal(main.code, 0, main.stdout)
        assert.equal(main.outputs['result'], 'promoted')
        assert.equal(split(reviewsRoute(sim)), 'reviews-v3:100')
      }))

    it('paused at 50 %, then rollback from a later run: the original rule exactly', () =>
      sim(async (sim) => {
        const before = structuredClone(rulesOf(reviewsRoute(sim)))
        const first = await runAction({ inputs: inputs(sim, { steps: '50' }), env: runnerEnv(sim) })
        assert.equal(first.main.outputs['result'], 'paused', first.main.stdout)
        const { main } = await runAction({
          inputs: inputs(sim, { action: 'rollback', 'canary-backend': '' }),
          env: runnerEnv(sim),
        })
        assert.equal(main.code, 0, main.stdout)
        assert.equal(main.outputs['result'], 'rolled-back')
        assert.deepEqual(rulesOf(reviewsRoute(sim)), before)
      }))

    it('preview adds a header rule to reviews-v3 first; preview-cleanup removes it; the default rule untouched', () =>
      sim(async (sim) => {
        const before = structuredClone(rulesOf(reviewsRoute(sim)))
        const preview = { action: 'preview', 'preview-value': 'pr-7' }
        const { main } = await runAction({ inputs: inputs(sim, preview), env: runnerEnv(sim) })
        assert.equal(main.code, 0, main.stdout)
        assert.equal(main.outputs['result'], 'previewed')
        const rules = rulesOf(reviewsRoute(sim)) as Rule[]
        assert.equal(rules.length, before.length + 1)
        assert.deepEqual(
          (rules[0]?.backendRefs ?? []).map((b) => b.name),
          ['reviews-v3'],
        )
        assert.match(JSON.stringify(rules[0]?.matches), /"name":"x-canary-preview","value":"pr-7"/)
        assert.deepEqual(rules.slice(1), before)
        const cleanup = await runAction({
          inputs: inputs(sim, { action: 'preview-cleanup', 'preview-value': 'pr-7' }),
          env: runnerEnv(sim),
        })
        assert.equal(cleanup.main.code, 0, cleanup.main.stdout)
        assert.equal(cleanup.main.outputs['result'], 'cleaned-up')
        assert.deepEqual(rulesOf(reviewsRoute(sim)), before)
      }))

    it('someone else edits the target rule mid-rollout: the action stops and does not overwrite it', () =>
      sim(async (sim) => {
        let theirs = ''
        const { main } = await runAction({
          inputs: inputs(sim, { pause: '2s' }),
          env: runnerEnv(sim),
          onStdout: {
            when: 'Pausing',
            do: () => {
              const hr = reviewsRoute(sim)
              const rule = targetRule(hr)
              rule.backendRefs = (rule.backendRefs ?? []).map((b) => ({
                ...b,
                weight: b.name === 'reviews-v1' ? 80 : 20,
              }))
              sim.store.update(HR, hr)
              theirs = split(reviewsRoute(sim))
            },
          },
        })
        assert.equal(main.code, 1, main.stdout)
        assert.match(main.stdout, /changed by someone else/)
        assert.equal(theirs, 'reviews-v1:80,reviews-v3:20')
        assert.equal(split(reviewsRoute(sim)), theirs, 'their change stands')
      }))

    it('someone else adds another rule mid-rollout: kept, and the rollout goes on: promoted', () =>
      sim(async (sim) => {
        const qa = {
          matches: [
            { path: { type: 'PathPrefix', value: '/' }, headers: [{ type: 'Exact', name: 'x-team', value: 'qa' }] },
          ],
          backendRefs: [{ group: '', kind: 'Service', name: 'reviews-v2', port: 9080, weight: 1 }],
        }
        const { main } = await runAction({
          inputs: inputs(sim, { pause: '1s' }),
          env: runnerEnv(sim),
          onStdout: {
            when: 'Pausing',
            do: () => {
              const hr = reviewsRoute(sim)
              ;(hr['spec'] as { rules: unknown[] }).rules.unshift(structuredClone(qa))
              sim.store.update(HR, hr)
            },
          },
        })
        assert.equal(main.code, 0, main.stdout)
        assert.equal(main.outputs['result'], 'promoted')
        const rules = rulesOf(reviewsRoute(sim))
        assert.deepEqual(rules[0], qa)
        assert.equal(split(reviewsRoute(sim)), 'reviews-v3:100')
      }))

    it('a parent rejecting the first shift: reverted, the original rule exactly', () =>
      sim(async (sim) => {
        const before = structuredClone(rulesOf(reviewsRoute(sim)))
        sim.gatewayController?.rejectNextGeneration('bookinfo', 'reviews')
        const { main } = await runAction({ inputs: inputs(sim), env: runnerEnv(sim) })
        assert.equal(main.code, 1, main.stdout)
        assert.equal(main.outputs['result'], 'rolled-back')
        assert.match(main.stdout, /a parent of HTTPRoute bookinfo\/reviews rejected the change/)
        assert.deepEqual(rulesOf(reviewsRoute(sim)), before)
      }))

    it('killed during a pause: the post step restores the original rule', () =>
      sim(async (sim) => {
        const before = structuredClone(rulesOf(reviewsRoute(sim)))
        let live = ''
        const { main, post } = await runAction({
          inputs: inputs(sim, { pause: '30s' }),
          env: runnerEnv(sim),
          interrupt: { when: 'Pausing', signal: 'SIGKILL' },
          beforePost: () => {
            live = split(reviewsRoute(sim))
          },
        })
        assert.equal(main.signal, 'SIGKILL')
        assert.equal(live, 'reviews-v1:50,reviews-v3:50', 'the shift was live when the main step was killed')
        assert.equal(post?.code, 0, post?.stdout)
        assert.match(post?.stdout ?? '', /Reverted bookinfo\/reviews to the route it had before the interrupted run/)
        assert.deepEqual(rulesOf(reviewsRoute(sim)), before)
      }))

    it('killed during a preview: the post step removes the preview rule', () =>
      sim(async (sim) => {
        const before = structuredClone(rulesOf(reviewsRoute(sim)))
        let live = 0
        const { main, post } = await runAction({
          inputs: inputs(sim, { action: 'preview', 'preview-value': 'pr-8', pause: '30s' }),
          env: runnerEnv(sim),
          interrupt: { when: 'Pausing', signal: 'SIGKILL' },
          beforePost: () => {
            live = rulesOf(reviewsRoute(sim)).length
          },
        })
        assert.equal(main.signal, 'SIGKILL')
        assert.equal(live, before.length + 1, 'the preview rule was live when the main step was killed')
        assert.equal(post?.code, 0, post?.stdout)
        assert.match(post?.stdout ?? '', /Restored the preview route 'pr-8' of bookinfo\/reviews/)
        assert.deepEqual(rulesOf(reviewsRoute(sim)), before)
      }))

    it('bad inputs: a clear error naming the input, zero writes', () =>
      sim(async (sim) => {
        const cases: Array<[Record<string, string>, RegExp]> = [
          [
            { 'virtual-service': 'reviews' },
            /::error::.*Input 'http-route': set either 'virtual-service' .* or 'http-route'/,
          ],
          [
            { 'canary-subset': 'v3' },
            /::error::.*Input 'canary-subset': applies to virtual-service, not with http-route \(use 'canary-backend'/,
          ],
          [
            { 'canary-backend': 'reviews-v9' },
            /::error::.*backend Service bookinfo\/reviews-v9 \(input 'canary-backend'\) does not exist/,
          ],
        ]
        for (const [extra, message] of cases) {
          const since = sim.store.writes.length
          const { main } = await runAction({ inputs: inputs(sim, extra), env: runnerEnv(sim) })
          assert.equal(main.code, 1, main.stdout)
          assert.match(main.stdout, message)
          assert.equal(main.outputs['result'] ?? 'unchanged', 'unchanged')
          assert.deepEqual(changesSince(sim, since), [], JSON.stringify(extra))
        }
      }))
  })
}
