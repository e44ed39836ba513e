import { startSimulation } from '../sim/index.js'
import { runAction } from '../sim/harness.js'
import { dirname } from 'node:path'
const sim = await startSimulation()
try {
  sim.mesh.setFault('reviews', 'v3', { errorRate: 0.3 })
  const r = await runAction({
    inputs: { ...sim.aksInputs(), namespace: 'bookinfo', 'virtual-service': 'reviews', 'canary-subset': 'v3', pause: '0', steps: '10,50,100', 'version-pattern': 'reviews-(v[0-9]+)', 'smoke-expect': '<title>Simple Bookstore App</title>', 'istioctl-mirror': sim.releases.url },
    env: { ...sim.env(), PATH: `${dirname(process.execPath)}:${process.env['PATH']}` },
  })
  console.log(r.main.summary)
  console.log(r.main.stdout.split('\n').filter((l) => !l.startsWith('::debug') && !l.startsWith('::add-mask')).join('\n'))
} finally { await sim.close() }
