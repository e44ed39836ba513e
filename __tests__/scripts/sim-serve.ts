// Keeps a loopback simulation (Entra ID, ARM, a Kubernetes API server with BookInfo in an Istio mesh,
// the ingress gateway, an istioctl release mirror) running for later steps of a CI job, which then
// use the action with `uses: ./` against it.
//
//   node build/__tests__/scripts/sim-serve.js <ready-file> [seconds]     (default 600 s, env SIM_SERVE_SECONDS)
//
// Once everything listens it writes
//   - $GITHUB_OUTPUT: kubeconfig (multi-line), mirror, gateway-url, the AKS inputs (resource-group,
//     cluster-name, subscription-id, tenant-id, client-id, client-secret, authority-host, arm-endpoint),
//     oidc-request-url / oidc-request-token (the simulated GitHub OIDC endpoint: only for local use; on
//     GitHub the runner's own endpoint is used, which the simulated Entra ID does not trust) and ca-file;
//   - $GITHUB_ENV: NODE_EXTRA_CA_CERTS=<the simulation's CA>, so the action trusts its HTTPS servers;
//   - $GITHUB_PATH: this Node's directory (the simulated istioctl is a `#!/usr/bin/env node` script);
//   - stdout: ::add-mask:: for the secrets (the starting step must print this output while it runs);
//   - <ready-file>: the same values as JSON (mode 0600), written last, atomically.
// Without GITHUB_OUTPUT (a local run) only the ready file and a summary on stdout are written.
// It exits by itself after the given time, or on SIGTERM/SIGINT, closing every server.
import { randomUUID } from 'node:crypto'
import { appendFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { startSimulation } from '../sim/index.js'

function usage(message: string): never {
  console.error(`sim-serve: ${message}\nusage: node build/__tests__/scripts/sim-serve.js <ready-file> [seconds]`)
  process.exit(2)
}

/** GitHub's file command format: `name<<DELIM` ... `DELIM` for values that may span lines. */
function fileCommand(name: string, value: string): string {
  let delim = `ghadelimiter_${randomUUID()}`
  while (value.includes(delim)) delim = `ghadelimiter_${randomUUID()}`
  return `${name}<<${delim}\n${value}\n${delim}\n`
}

async function main(): Promise<void> {
  const readyFile = process.argv[2]
  if (!readyFile) usage('missing <ready-file>')
  const seconds = Number(process.argv[3] ?? process.env['SIM_SERVE_SECONDS'] ?? 600)
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 6 * 3600)
    usage(`seconds must be in (0, 21600], got '${process.argv[3] ?? process.env['SIM_SERVE_SECONDS']}'`)

  const sim = await startSimulation()
  let closing = false
  const stop = async (why: string): Promise<void> => {
    if (closing) return
    closing = true
    console.log(
      `sim-serve: ${why}; served ${sim.kube.requests.length} Kubernetes API request(s), ${sim.arm.calls.length} ARM call(s), ${sim.entra.issued.length} Entra token(s), istioctl downloads: ${sim.releases.downloads.join(', ') || 'none'}`,
    )
    await sim.close()
    process.exit(0)
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
  setTimeout(() => void stop(`${seconds} s elapsed`), seconds * 1000)

  const aks = sim.aksInputs({ secret: true })
  const outputs: Record<string, string> = {
    kubeconfig: sim.kubeconfig('user'),
    mirror: sim.releases.url,
    'gateway-url': sim.mesh.url,
    ...aks,
    'oidc-request-url': sim.oidc.url,
    'oidc-request-token': sim.oidc.requestToken,
    'ca-file': sim.pki.caFile,
  }

  // Masks first: everything below may end up in a log.
  for (const secret of [sim.ids.clientSecret, sim.tokens.user, sim.tokens.admin, sim.oidc.requestToken])
    console.log(`::add-mask::${secret}`)

  const ghOutput = process.env['GITHUB_OUTPUT']
  if (ghOutput)
    appendFileSync(
      ghOutput,
      Object.entries(outputs)
        .map(([k, v]) => fileCommand(k, v))
        .join(''),
    )
  const ghEnv = process.env['GITHUB_ENV']
  if (ghEnv) appendFileSync(ghEnv, fileCommand('NODE_EXTRA_CA_CERTS', sim.pki.caFile))
  const ghPath = process.env['GITHUB_PATH']
  if (ghPath) appendFileSync(ghPath, `${dirname(process.execPath)}\n`)

  const tmp = `${readyFile}.${process.pid}.tmp`
  writeFileSync(
    tmp,
    `${JSON.stringify({ pid: process.pid, until: new Date(Date.now() + seconds * 1000).toISOString(), ...outputs }, null, 2)}\n`,
    { mode: 0o600 },
  )
  renameSync(tmp, readyFile)

  console.log(`sim-serve: ready (pid ${process.pid}, for ${seconds} s or until SIGTERM)`)
  console.log(`  Kubernetes API  ${sim.kube.url}`)
  console.log(`  ingress gateway ${sim.mesh.url}`)
  console.log(`  istioctl mirror ${sim.releases.url}`)
  console.log(`  Entra ID        ${sim.entra.authorityHost}   ARM ${sim.arm.url}`)
  console.log(
    `  AKS cluster     ${aks['resource-group']}/${aks['cluster-name']} in subscription ${aks['subscription-id']}`,
  )
  console.log(`  CA              ${sim.pki.caFile}${ghEnv ? ' (NODE_EXTRA_CA_CERTS set for later steps)' : ''}`)
  console.log(
    ghOutput
      ? `  outputs written to GITHUB_OUTPUT: ${Object.keys(outputs).join(', ')}`
      : `  (no GITHUB_OUTPUT: the values are in ${readyFile})`,
  )
}

main().catch((err: unknown) => {
  console.error('sim-serve:', err)
  process.exit(1)
})
