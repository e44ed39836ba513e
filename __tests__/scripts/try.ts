import { startSimulation } from '../sim/index.js'
import { runAction } from '../sim/harness.js'
const sim = await startSimulation()
try {
  const r = await runAction({
    inputs: { ...sim.aksInputs(), namespace: 'bookinfo', 'virtual-service': 'reviews', 'canary-subset': 'v3', pause: '0', 'version-pattern': 'reviews-(v[0-9]+)', 'smoke-expect': '<title>Simple Bookstore App</title>', 'istioctl-mirror': sim.releases.url },
    env: sim.env(),
  })
  console.log(r.main.code, r.main.stdout.slice(-6000), r.main.stderr.slice(-2000), r.main.outputs, r.post?.stdout.slice(-1500))
} finally { await sim.close() }
