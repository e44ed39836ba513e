// The real Prometheus the telemetry tests use: starts, scrapes a loopback target every second, stops clean.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { startLoad } from '../../sim/mesh/load.js'
import { startPrometheus } from '../../sim/telemetry/prometheus.js'

describe('real Prometheus on loopback', () => {
  it('becomes ready, scrapes a target at 1 s and stops, removing its TSDB', async () => {
    let n = 0
    const target = createServer((_req, res) => {
      n++
      res
        .writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
        .end(`# TYPE sim_hits_total counter\nsim_hits_total{job_label="x"} ${n}\n`)
    })
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r))
    const address = `127.0.0.1:${(target.address() as AddressInfo).port}`
    const prom = await startPrometheus({ targets: [{ job: 'sim', address }] })
    try {
      console.log(`# Prometheus ready in ${prom.startupMs} ms`)
      assert.ok(prom.startupMs < 30_000)
      await prom.waitForSeries('sim_hits_total', { min: 3, timeoutMs: 10_000 })
      const up = await prom.query('up{job="sim"}')
      assert.equal(up[0]?.value[1], '1')
      await assert.rejects(prom.waitForSeries('no_such_metric', { timeoutMs: 500 }), /no series for no_such_metric/)
    } finally {
      await prom.stop()
      target.close()
    }
    await assert.rejects(fetch(`${prom.url}/-/ready`))
  })
})

describe('simulated user load', () => {
  it('is bounded by max requests and by duration, and counts failures', async () => {
    let hits = 0
    let jason = 0
    const gw = createServer((req, res) => {
      hits++
      if ((req.headers.cookie ?? '').includes('session=jason')) jason++
      res.writeHead(hits % 10 === 0 ? 500 : 200).end('ok')
    })
    await new Promise<void>((r) => gw.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(gw.address() as AddressInfo).port}`
    try {
      const a = await startLoad({ url, rate: 200, maxRequests: 50, durationMs: 5000, loggedInShare: 0.5 }).done
      assert.equal(a.sent, 50)
      assert.equal(a.ok + a.failed, 50)
      assert.equal(a.failed, 5)
      assert.ok(jason > 10 && jason < 40, `jason ${jason}`)
      const t0 = Date.now()
      const b = await startLoad({ url, rate: 20, durationMs: 500 }).done
      assert.ok(b.sent <= 11 && Date.now() - t0 < 3000)
      const c = startLoad({ url, rate: 20, durationMs: 60_000 })
      const stopped = await c.stop()
      assert.ok(stopped.sent <= 2)
    } finally {
      gw.close()
    }
  })
})
