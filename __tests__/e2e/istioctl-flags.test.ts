// istioctl flags by version (SPEC section 8, issue 8 item 1): the action runs istioctl with long flag forms only,
// so a non-default revision works on releases whose `analyze` has no `-r` yet (it came in 1.25.0, istio/istio#53339).
// The simulated istioctl accepts exactly the flags of the release it pretends to be and exits 64 on others.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runAction } from '../runner/harness.js'
import type { KubeObject } from '../sim/kube/store.js'
import { VS, bookinfoInputs, runnerEnv, withSim } from './common.js'

const istioctlLog = (file: string): string[][] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string[])
    : []

describe('istioctl flags by version', () => {
  it('a rollout on the AKS add-on revision asm-1-24 with istioctl 1.24.2 analyzes with --revision and promotes', () =>
    // An Istio older than the supported ones on purpose: the release before `analyze -r` existed.
    withSim({ layout: 'aks-addon', seed: { istioVersion: '1.24.2' } }, async (sim) => {
      const log = join(mkdtempSync(join(tmpdir(), 'ic-flags-')), 'istioctl.log')
      const { main } = await runAction({
        inputs: bookinfoInputs(sim, { steps: '50,100', 'istioctl-version': '1.24.2' }),
        env: { ...runnerEnv(sim), ISTIOCTL_SIM_LOG: log },
      })
      const calls = istioctlLog(log)
      assert.equal(main.code, 0, `${main.stdout}\n${JSON.stringify(calls)}`)
      assert.equal(main.outputs['result'], 'promoted')
      const analyze = calls.find((a) => a[0] === 'analyze')
      assert.ok(analyze, JSON.stringify(calls))
      assert.equal(analyze[analyze.indexOf('--revision') + 1], 'asm-1-24')
      assert.equal(analyze[analyze.indexOf('--istioNamespace') + 1], 'aks-istio-system')
      // no short form anywhere (every release has the long ones)
      for (const argv of calls) assert.ok(!argv.some((a) => /^-[a-zA-Z]/.test(a)), argv.join(' '))
      const spec = (sim.store.get(VS, 'bookinfo', 'reviews') as KubeObject)['spec'] as {
        http: Array<{ route: unknown[] }>
      }
      assert.deepEqual(spec.http.at(-1)?.route, [{ destination: { host: 'reviews', subset: 'v3' } }])
    }))
})
