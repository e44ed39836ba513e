// The smoke verdict end to end through the bundle (issue 8 item 9, issue 10): a canary that answers errors is
// reported as such (not as unreachable); a `route` out of range or unknown is an error naming the input in every mode
// that reads it; the calibrated verdict with its defaults against the simulated BookInfo.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import type { Sim } from '../sim/index.js'
import { startSimulation } from '../sim/index.js'
import { type StepResult, runAction } from '../runner/harness.js'
import type { KubeObject } from '../sim/kube/store.js'
import { bookinfoInputs, reviews, runnerEnv, vsWrites, withFault, withSim } from './common.js'

const spec = (o: KubeObject): unknown => o['spec']
const transcript = (r: StepResult): string => `${r.stdout}\n${r.stderr}`
/** Every ::error:: line of a step, decoded. */
const errors = (r: StepResult): string =>
  r.stdout
    .split('\n')
    .filter((l) => l.startsWith('::error'))
    .map((l) =>
      l
        .replace(/^::error[^:]*::/, '')
        .replace(/%0A/g, '\n')
        .replace(/%25/g, '%'),
    )
    .join('\n')

interface Report {
  steps: Array<{
    weight: number
    verdict: string
    reasons: string[]
    checks: Array<{
      kind: string
      evidence: { requests: number; unattributedFailures?: number; byVersion: Record<string, unknown> }
    }>
  }>
}
const reportOf = (r: StepResult): Report => JSON.parse(readFileSync(r.outputs['report'] as string, 'utf8')) as Report

describe('a canary answering 500 (its pages name no version)', () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
  })
  after(() => sim.close())

  it('is rolled back at its first step and reported as answering errors, not as unreachable', async () => {
    const original = spec(reviews(sim))
    await withFault(sim, 'v3', { errorRate: 1 }, async () => {
      const { main } = await runAction({ inputs: bookinfoInputs(sim), env: runnerEnv(sim) })
      assert.equal(main.code, 1, transcript(main))
      assert.equal(main.outputs['result'], 'rolled-back')
      assert.equal(main.outputs['canary-weight'], '0')
      const report = reportOf(main)
      assert.deepEqual(
        report.steps.map((s) => [s.weight, s.verdict]),
        [[10, 'fail']],
      )
      const reasons = report.steps[0]?.reasons.join('\n') ?? ''
      assert.match(
        reasons,
        /canary \(v3\) answers errors: it is named in none of the \d+ attributed responses at weight 10 % .*while \d+ response\(s\) failed naming no version \(the weight would send it about 20\) \(HTTP 500 ×\d+\)/,
      )
      assert.doesNotMatch(reasons, /reachable/)
      assert.match(errors(main), /smoke test failed at 10 %: .*canary \(v3\) answers errors/)
      const evidence = report.steps[0]?.checks[0]?.evidence
      assert.equal(evidence?.requests, 200, 'the default smoke-requests')
      assert.ok((evidence?.unattributedFailures ?? 0) > 0)
      assert.deepEqual(spec(reviews(sim)), original)
    })
  })
})

describe('the calibrated verdict with its defaults (200 requests a step, a baseline of 400, 1 % per rollout)', () => {
  // Each test on a fresh simulation: the first promotes v3.
  it('stable and canary both failing 1 %: promoted, the failures explained by the baseline', () =>
    withSim({}, async (sim) => {
      sim.faults.mesh('reviews', 'v1', { errorRate: 0.01 })
      try {
        await withFault(sim, 'v3', { errorRate: 0.01 }, async () => {
          const { main } = await runAction({ inputs: bookinfoInputs(sim), env: runnerEnv(sim) })
          assert.equal(main.code, 0, transcript(main))
          assert.equal(main.outputs['result'], 'promoted')
          const steps = reportOf(main).steps
          assert.deepEqual(
            steps.map((s) => [s.weight, s.verdict]),
            [
              [10, 'pass'],
              [25, 'pass'],
              [50, 'pass'],
              [100, 'pass'],
            ],
          )
          const failed = steps.reduce((n, s) => n + (s.checks[0]?.evidence.unattributedFailures ?? 0), 0)
          assert.ok(failed > 0, 'some smoke requests failed, as 1 % of 800 do')
          assert.match(main.stdout, /each step compared with a baseline of 400 requests/)
        })
      } finally {
        sim.faults.mesh('reviews', 'v1', undefined)
      }
    }))

  it('a canary failing 20 % of its calls is rolled back by the comparison with the baseline', () =>
    withSim({}, async (sim) => {
      const original = spec(reviews(sim))
      await withFault(sim, 'v3', { errorRate: 0.2 }, async () => {
        const { main } = await runAction({ inputs: bookinfoInputs(sim), env: runnerEnv(sim) })
        assert.equal(main.code, 1, transcript(main))
        assert.equal(main.outputs['result'], 'rolled-back')
        assert.match(
          errors(main),
          /smoke test failed at \d+ %: \d+\/200 requests failed \(\d+\.\d %\) against 0\/400 \(0\.0 %\) before the rollout: more than the baseline explains/,
        )
        assert.deepEqual(spec(reviews(sim)), original)
      })
    }))
})

describe("the input 'route' out of range or unknown, in every mode that reads it", () => {
  let sim: Sim
  before(async () => {
    sim = await startSimulation()
  })
  after(() => sim.close())

  for (const action of ['rollout', 'status', 'preview'] as const) {
    for (const [route, message] of [
      [
        '7',
        /Input 'route': VirtualService 'reviews' has 1 http route\(s\) besides istio-canary's previews; index 7 is out of range \(0\.\.0\)/,
      ],
      ['nope', /Input 'route': VirtualService 'reviews' has no http route named 'nope'/],
    ] as const) {
      it(`${action}, route '${route}': an error naming the input, no write`, async () => {
        const before = reviews(sim)
        const writes = vsWrites(sim)
        const inputs = bookinfoInputs(sim, {
          action,
          route,
          ...(action === 'preview' ? { 'preview-value': 'pr-1' } : {}),
        })
        if (action === 'status') delete inputs['canary-subset']
        const { main } = await runAction({ inputs, env: runnerEnv(sim) })
        assert.equal(main.code, 1, transcript(main))
        assert.match(errors(main), message)
        assert.equal(vsWrites(sim), writes)
        assert.deepEqual(reviews(sim), before)
      })
    }
  }
})
