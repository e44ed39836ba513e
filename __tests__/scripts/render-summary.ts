// `npm run render-summary`: the job summaries of a promoted, a rolled-back, a status and a telemetry run (a real
// Prometheus scraping the simulated mesh under background load; its canary errs 10 %), made by the real bundle
// on the loopback simulation (as the e2e tests run it), rendered the way GitHub shows them (GitHub-flavoured
// Markdown to HTML with `marked`, GitHub's Markdown CSS from `github-markdown-css`, Mermaid drawn client-side from
// the local node_modules copy), in headless Chromium (Debian package `chromium`), as PNGs in .render/.
// No network: the page loads only file:// URLs (every other request is refused).
import { accessSync, constants, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Marked } from 'marked'
import puppeteer from 'puppeteer-core'
import { REPO_ROOT, runAction } from '../runner/harness.js'
import { type Sim, startSimulation } from '../sim/index.js'
import { bookinfoInputs, runnerEnv, withFault } from '../e2e/common.js'
import { startLoad } from '../sim/mesh/load.js'

const OUT = join(REPO_ROOT, '.render')
const CHROMIUM_NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']
/** GitHub's job summary column is about this wide on a desktop browser. */
const WIDTH = 1012

/** The first Chromium on PATH (an executable file of one of the usual names). */
function findChromium(): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '')) {
    for (const name of CHROMIUM_NAMES) {
      const file = join(dir, name)
      try {
        accessSync(file, constants.X_OK)
        if (statSync(file).isFile()) return file
      } catch {
        // not here
      }
    }
  }
  return undefined
}

const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** GitHub-flavoured Markdown to HTML; ```mermaid blocks become <pre class="mermaid"> for Mermaid to draw. */
function toHtml(markdown: string, title: string): string {
  const marked = new Marked({ gfm: true, breaks: false })
  marked.use({
    renderer: {
      code({ text, lang }) {
        if (lang === 'mermaid') return `<pre class="mermaid">${escapeHtml(text)}</pre>\n`
        return false
      },
    },
  })
  const body = marked.parse(markdown, { async: false })
  const css = pathToFileURL(join(REPO_ROOT, 'node_modules', 'github-markdown-css', 'github-markdown-light.css'))
  const mermaid = pathToFileURL(join(REPO_ROOT, 'node_modules', 'mermaid', 'dist', 'mermaid.min.js'))
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="${css}">
<style>
  body { background: #fff; margin: 0; }
  .markdown-body { box-sizing: border-box; width: ${WIDTH}px; padding: 24px 32px;
    font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; }
  .markdown-body pre.mermaid { background: transparent; text-align: center; }
</style>
<script src="${mermaid}"></script>
</head><body><article class="markdown-body">
${body}
</article>
<script>
  mermaid.initialize({ startOnLoad: false, theme: 'default', securityLevel: 'strict' });
  mermaid.run({ querySelector: 'pre.mermaid' })
    .then(() => { document.body.dataset.rendered = 'ok' })
    .catch((e) => { document.body.dataset.rendered = 'error: ' + (e && e.message ? e.message : e) });
</script>
</body></html>
`
}

/** The three runs, each's job summary as the bundle wrote it. */
async function summaries(sim: Sim): Promise<Array<{ name: string; markdown: string }>> {
  const env = runnerEnv(sim)
  const base = { 'smoke-requests': '40', 'kiali-url': 'https://kiali.example.com/kiali' }
  const out: Array<{ name: string; markdown: string }> = []
  const promoted = await runAction({ inputs: bookinfoInputs(sim, base), env })
  if (promoted.main.outputs['result'] !== 'promoted') throw new Error(`promoted run: ${promoted.main.stdout}`)
  out.push({ name: 'promoted', markdown: promoted.main.summary })
  // A v2 canary that fails half its requests, over the promoted v3.
  await withFault(sim, 'v2', { errorRate: 0.5 }, async () => {
    const rolled = await runAction({ inputs: bookinfoInputs(sim, { ...base, 'canary-subset': 'v2' }), env })
    if (rolled.main.outputs['result'] !== 'rolled-back') throw new Error(`rolled-back run: ${rolled.main.stdout}`)
    out.push({ name: 'rolled-back', markdown: rolled.main.summary })
  })
  const paused = await runAction({ inputs: bookinfoInputs(sim, { ...base, 'canary-subset': 'v2', steps: '25' }), env })
  if (paused.main.outputs['result'] !== 'paused') throw new Error(`paused run: ${paused.main.stdout}`)
  const status = await runAction({
    inputs: bookinfoInputs(sim, { ...base, action: 'status', 'canary-subset': '' }),
    env,
  })
  if (status.main.outputs['result'] !== 'unchanged') throw new Error(`status run: ${status.main.stdout}`)
  out.push({ name: 'status', markdown: status.main.summary })
  return out
}

/** A rollout judged on the mesh's telemetry whose canary fails 10 % of its calls: rolled back on the counts. */
async function telemetrySummary(): Promise<{ name: string; markdown: string }> {
  const sim = await startSimulation({ meshSeed: 7, prometheus: true, rbac: ['istio-canary', 'analyze', 'telemetry'] })
  const load = startLoad({ url: sim.mesh.url, rate: 40, durationMs: 120_000, loggedInShare: 0.2 })
  try {
    await sim.prometheus?.waitForSeries(
      'sum(istio_requests_total{reporter="destination",destination_service_name="reviews",destination_version="v1"})',
      { min: 20, timeoutMs: 20_000 },
    )
    let markdown = ''
    await withFault(sim, 'v3', { errorRate: 0.1 }, async () => {
      const inputs = bookinfoInputs(sim, {
        steps: '25,50,100',
        pause: '4s',
        metrics: 'true',
        'min-canary-requests': '40',
        'max-step-time': '30s',
        'kiali-url': 'https://kiali.example.com/kiali',
      })
      const run = await runAction({ inputs, env: runnerEnv(sim), timeoutMs: 150_000 })
      if (run.main.outputs['result'] !== 'rolled-back') throw new Error(`telemetry run: ${run.main.stdout}`)
      markdown = run.main.summary
    })
    return { name: 'telemetry', markdown }
  } finally {
    await load.stop({ abort: true })
    await sim.close()
  }
}

async function main(): Promise<void> {
  const chromium = findChromium()
  if (!chromium) {
    console.error('render-summary needs Chromium on PATH: apt-get install -y --no-install-recommends chromium')
    process.exit(1)
  }
  mkdirSync(OUT, { recursive: true })
  const sim = await startSimulation()
  let runs: Array<{ name: string; markdown: string }>
  try {
    runs = await summaries(sim)
  } finally {
    await sim.close()
  }
  runs.push(await telemetrySummary())
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--allow-file-access-from-files'],
  })
  try {
    for (const run of runs) {
      const html = join(OUT, `summary-${run.name}.html`)
      const png = join(OUT, `summary-${run.name}.png`)
      writeFileSync(join(OUT, `summary-${run.name}.md`), run.markdown)
      writeFileSync(html, toHtml(run.markdown, `istio-canary summary: ${run.name}`))
      const page = await browser.newPage()
      await page.setRequestInterception(true)
      page.on('request', (request) => {
        if (request.url().startsWith('file:')) void request.continue()
        else void request.abort()
      })
      await page.setViewport({ width: WIDTH, height: 800, deviceScaleFactor: 1 })
      await page.goto(pathToFileURL(html).toString(), { waitUntil: 'load', timeout: 30_000 })
      await page.waitForFunction(() => document.body.dataset['rendered'] !== undefined, { timeout: 30_000 })
      const rendered = await page.evaluate(() => document.body.dataset['rendered'])
      if (rendered !== 'ok') throw new Error(`${run.name}: Mermaid did not render: ${rendered}`)
      await page.screenshot({ path: png as `${string}.png`, fullPage: true })
      await page.close()
      console.log(`wrote ${png}`)
    }
  } finally {
    await browser.close()
  }
}

await main()
