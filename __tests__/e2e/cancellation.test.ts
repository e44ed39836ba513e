// Cancellation as a real runner does it (issue 8 item 7): SIGINT, SIGTERM 7.5 s later, SIGKILL 2.5 s after that
// (harness RUNNER_CANCEL, from actions/runner's ProcessInvoker), against an API server slow to answer.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { RUNNER_CANCEL, runAction } from '../runner/harness.js'
import type { Sim } from '../sim/index.js'
import type { KubeObject } from '../sim/kube/store.js'
import { LEASES, bookinfoInputs, reviews, runnerEnv, stateOf, withSim } from './common.js'

const spec = (o: KubeObject): unknown => o['spec']
const lease = (sim: Sim): KubeObject | undefined => sim.store.get(LEASES, 'bookinfo', 'istio-canary-reviews')

/** From now on, every request reaches the API server only after `ms` (bounded in count). */
function slowApiServer(sim: Sim, ms: number): void {
  sim.faults.kube({ status: 'ok', delayMs: ms, times: 1000 })
}

describe('cancellation on a real runner (SIGINT, SIGTERM after 7.5 s, SIGKILL after 2.5 s more)', () => {
  it('an API server answering in 2 s: the revert finishes inside the window and the main step says so', async () => {
    await withSim({}, async (sim) => {
      const original = structuredClone(spec(reviews(sim)))
      const { main, post } = await runAction({
        inputs: bookinfoInputs(sim, { steps: '50,100', pause: '30s' }),
        env: runnerEnv(sim),
        onStdout: { when: 'Pausing', do: () => slowApiServer(sim, 2000) },
        cancel: { when: 'Pausing' },
        beforePost: () => sim.faults.clear(),
      })
      assert.deepEqual(
        main.cancelled?.map((c) => c.signal),
        ['SIGINT'],
        'the step exited before the runner sent SIGTERM',
      )
      assert.equal(main.signal, null, main.stdout)
      assert.equal(main.code, 1)
      assert.equal(main.outputs['result'], 'rolled-back')
      assert.equal(main.outputs['canary-weight'], '0')
      assert.match(main.stdout, /Cancelled: the revert finished in the main step, [0-9.]+ s after the first signal/)
      assert.deepEqual(spec(reviews(sim)), original)
      assert.equal(stateOf(reviews(sim))?.['phase'], 'rolled-back')
      assert.equal(lease(sim), undefined, 'the lock released')
      assert.ok(existsSync(main.outputs['report'] as string))
      assert.equal(post?.code, 0, post?.stdout)
      assert.doesNotMatch(post?.stdout ?? '', /Reverted/, 'nothing left for the post step')
    })
  })

  it('an API server slower than the window: SIGTERM, then SIGKILL mid-revert; the post step finishes it and says so', async () => {
    await withSim({}, async (sim) => {
      const original = structuredClone(spec(reviews(sim)))
      const window = RUNNER_CANCEL.sigintTimeoutMs + RUNNER_CANCEL.sigtermTimeoutMs
      let phaseAfterMain: unknown
      const { main, post } = await runAction({
        inputs: bookinfoInputs(sim, { steps: '50,100', pause: '30s' }),
        env: runnerEnv(sim),
        // The revert's write reaches the server only after the runner killed the step: it never lands.
        onStdout: { when: 'Pausing', do: () => slowApiServer(sim, window + 1500) },
        cancel: { when: 'Pausing' },
        beforePost: () => {
          sim.faults.clear()
          phaseAfterMain = stateOf(reviews(sim))?.['phase']
        },
      })
      assert.deepEqual(
        main.cancelled?.map((c) => c.signal),
        ['SIGINT', 'SIGTERM', 'SIGKILL'],
      )
      const at = Object.fromEntries((main.cancelled ?? []).map((c) => [c.signal, c.atMs]))
      assert.ok((at['SIGTERM'] ?? 0) >= 7400 && (at['SIGKILL'] ?? 0) >= 9900, JSON.stringify(main.cancelled))
      assert.equal(main.signal, 'SIGKILL')
      assert.match(main.stdout, /Received SIGINT: the workflow is being cancelled; stopping and reverting/)
      assert.match(main.stdout, /Received SIGTERM 7\.\d s after the first signal: still reverting; .*post step/)
      assert.equal(phaseAfterMain, 'shifting', 'killed before the revert landed')
      assert.equal(post?.code, 0, post?.stdout)
      assert.equal(post?.outputs['result'], 'rolled-back')
      assert.match(post?.stdout ?? '', /Reverted bookinfo\/reviews to the route it had before the interrupted run/)
      assert.deepEqual(spec(reviews(sim)), original)
      assert.equal(lease(sim), undefined, 'the post step released the lock')
    })
  })

  for (const how of ['runner', 'SIGTERM'] as const) {
    it(`${how === 'runner' ? 'a runner cancellation' : 'a lone SIGTERM'} arriving after the last Kubernetes request (the lock released) still leaves outputs, report and summary`, async () => {
      await withSim({}, async (sim) => {
        let arrived: () => void = () => {}
        const released = new Promise<void>((resolve) => {
          arrived = resolve
        })
        // The lock's release is the run's last request: slow, and the signal comes while it is on its way.
        sim.faults.kube({
          method: 'DELETE',
          path: /leases\/istio-canary-reviews/,
          status: 'ok',
          delayMs: 1500,
          times: 1,
          onMatch: () => arrived(),
        })
        const { main } = await runAction({
          inputs: bookinfoInputs(sim, { steps: '100' }),
          env: runnerEnv(sim),
          ...(how === 'runner'
            ? { cancel: { when: released } }
            : { interrupt: { when: released, signal: 'SIGTERM' as const } }),
        })
        assert.equal(main.signal, null, `the step was not ended by the signal: ${main.stdout}`)
        assert.match(main.stdout, /Received SIG(INT|TERM) after the run settled/)
        assert.equal(main.outputs['result'], 'promoted')
        assert.equal(main.outputs['canary-weight'], '100')
        const report = JSON.parse(readFileSync(main.outputs['report'] as string, 'utf8')) as { result: string }
        assert.equal(report.result, 'promoted')
        assert.match(main.summary, /promoted/)
        assert.equal(lease(sim), undefined)
      })
    })
  }
})
