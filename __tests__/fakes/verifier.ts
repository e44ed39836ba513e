// A verifier for in-process engine tests: its verdicts scripted per call (pass once the script runs out), each step
// it saw kept, and an optional hook run during each step (to change the cluster mid-step). No I/O.
import type { Check, StepContext, Verifier } from '../../src/verify/verifier.js'

export class ScriptedVerifier implements Verifier {
  readonly kind = 'scripted'
  readonly seen: StepContext[] = []
  constructor(
    private readonly verdicts: Array<'pass' | 'fail'> = [],
    private readonly during?: (step: StepContext) => void,
  ) {}
  describe(): string {
    return 'scripted'
  }
  async verify(step: StepContext): Promise<Check> {
    this.seen.push(step)
    this.during?.(step)
    const verdict = this.verdicts.shift() ?? 'pass'
    return {
      kind: this.kind,
      verdict,
      reasons: verdict === 'fail' ? ['scripted failure'] : [],
      summary: verdict,
      evidence: {},
    }
  }
}
