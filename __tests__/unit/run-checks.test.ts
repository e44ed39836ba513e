import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Check, type StepContext, type Verifier, runChecks } from '../../src/verify/verifier.js'

const step = (): StepContext => ({
  kind: 'step',
  index: 1,
  weight: 10,
  pauseMs: 0,
  headers: {},
  signal: new AbortController().signal,
})

/** A verifier that answers after `ticks` turns of the event loop, or waits for the abort when `ticks` is Infinity. */
function fake(kind: string, verdict: Check['verdict'], ticks: number): Verifier {
  return {
    kind,
    describe: () => kind,
    verify: async (s) => {
      if (ticks === Number.POSITIVE_INFINITY) {
        await new Promise((_, reject) => s.signal.addEventListener('abort', () => reject(s.signal.reason)))
      }
      for (let i = 0; i < ticks; i++) await new Promise((r) => setImmediate(r))
      return { kind, verdict, reasons: verdict === 'fail' ? [`${kind} failed`] : [], summary: kind, evidence: null }
    },
  }
}

describe('runChecks', () => {
  it('lists the checks in the verifiers order, not in the order they finish', async () => {
    const checks = await runChecks([fake('smoke', 'pass', 5), fake('telemetry', 'pass', 0)], step())
    assert.deepEqual(
      checks.map((c) => c.kind),
      ['smoke', 'telemetry'],
    )
  })

  it('a failing check stops the others: only the finished ones are listed', async () => {
    const checks = await runChecks(
      [fake('smoke', 'pass', Number.POSITIVE_INFINITY), fake('telemetry', 'fail', 1)],
      step(),
    )
    assert.deepEqual(
      checks.map((c) => [c.kind, c.verdict]),
      [['telemetry', 'fail']],
    )
  })
})
