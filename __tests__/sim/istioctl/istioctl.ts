// A fake istioctl release server laid out like GitHub release downloads of istio/istio:
//   <base>/<version>/istioctl-<version>-<platform>.tar.gz  and  <base>/<version>/istioctl-<version>-<platform>.tar.gz.sha256
// (sha256 file content as Istio's release builder writes it: "<hex> <file name>\n"). Like GitHub, asset
// URLs answer with a redirect to the blob. Each tarball holds one executable `istioctl`: a Node script
// that reads the kubeconfig, talks to the (simulated) Kubernetes API over HTTPS and answers `version`,
// `analyze`, `install`, `x precheck` from the real cluster state with the output formats of istioctl 1.2x.
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from '../../support/paths.js'
import { startHttps } from '../net/https.js'
import type { TestPki } from '../net/tls.js'

export interface IstioctlReleases {
  /** Base URL: <url>/<version>/istioctl-<version>-<os>-<arch>.tar.gz */
  url: string
  /** Asset paths requested (before the redirect), e.g. /1.24.2/istioctl-1.24.2-linux-amd64.tar.gz */
  downloads: string[]
  /** While on, the version's .sha256 files name a digest that does not match the tarballs. */
  corrupt(version: string, on: boolean): void
  close(): Promise<void>
}

export interface IstioctlReleasesOptions {
  pki: TestPki
  versions: string[]
  /** Repository root whose node_modules provides js-yaml to the script. Default: this checkout. */
  repoRoot?: string
}

/** Platforms of the standalone istioctl archives of an Istio release (`osx` is the amd64 build). */
export const ISTIOCTL_PLATFORMS = [
  'linux-amd64',
  'linux-arm64',
  'linux-armv7',
  'osx',
  'osx-amd64',
  'osx-arm64',
] as const

export const istioctlArchiveName = (version: string, platform: string): string =>
  `istioctl-${version}-${platform}.tar.gz`

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')

export async function startIstioctlReleases(opts: IstioctlReleasesOptions): Promise<IstioctlReleases> {
  const repoRoot = opts.repoRoot ?? REPO_ROOT
  const dir = mkdtempSync(join(tmpdir(), 'ic-istioctl-'))
  const archives = new Map<string, { version: string; data: Buffer }>()
  for (const version of opts.versions) {
    const vdir = join(dir, version)
    mkdirSync(vdir, { recursive: true })
    writeFileSync(join(vdir, 'istioctl'), istioctlScript(version, repoRoot), { mode: 0o755 })
    execFileSync('tar', ['-czf', 'istioctl.tar.gz', '--owner=0', '--group=0', '--numeric-owner', 'istioctl'], {
      cwd: vdir,
      stdio: 'pipe',
    })
    const data = readFileSync(join(vdir, 'istioctl.tar.gz'))
    for (const p of ISTIOCTL_PLATFORMS)
      archives.set(`/${version}/${istioctlArchiveName(version, p)}`, { version, data })
  }
  rmSync(dir, { recursive: true, force: true })

  const corrupted = new Set<string>()
  const downloads: string[] = []

  const asset = (path: string): Buffer | undefined => {
    const a = archives.get(path)
    if (a) return a.data
    const sum = archives.get(path.replace(/\.sha256$/, ''))
    if (!path.endsWith('.sha256') || !sum) return undefined
    const digest = corrupted.has(sum.version)
      ? sha256(Buffer.concat([sum.data, Buffer.from('tampered')]))
      : sha256(sum.data)
    return Buffer.from(`${digest} ${path.slice(path.lastIndexOf('/') + 1, -'.sha256'.length)}\n`)
  }

  const server = await startHttps(opts.pki, (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'https://x').pathname)
    const method = req.method ?? 'GET'
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain' })
      res.end('Method Not Allowed')
      return
    }
    // GitHub answers release asset URLs with a redirect to short-lived blob storage.
    const blob = path.startsWith('/blob/') ? path.slice('/blob'.length) : undefined
    const data = asset(blob ?? path)
    if (!data) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
      res.end('Not Found')
      return
    }
    if (blob === undefined) {
      downloads.push(path)
      res.writeHead(302, {
        location: `https://127.0.0.1:${req.socket.localPort ?? 0}/blob${path}`,
        'content-length': 0,
      })
      res.end()
      return
    }
    const name = path.slice(path.lastIndexOf('/') + 1)
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': data.length,
      'content-disposition': `attachment; filename=${name}`,
    })
    res.end(method === 'HEAD' ? undefined : data)
  })

  return {
    url: server.url,
    downloads,
    corrupt(version, on) {
      if (on) corrupted.add(version)
      else corrupted.delete(version)
    },
    close: () => server.close(),
  }
}

/** The executable: a self-contained Node script (js-yaml is required from the repository by absolute path). */
export function istioctlScript(version: string, repoRoot: string): string {
  const cfg: IstioctlProgramConfig = {
    version,
    gitRevision: createHash('sha1').update(`istio/istio@${version}`).digest('hex'),
    golangVersion: 'go1.23.4',
    yamlFrom: join(repoRoot, 'package.json'),
  }
  return `#!/usr/bin/env node
// istioctl ${version} (simulated for the istio-canary tests)
'use strict';
(${istioctlProgram.toString()})(${JSON.stringify(cfg)});
`
}

export interface IstioctlProgramConfig {
  version: string
  gitRevision: string
  golangVersion: string
  /** A file in the repository root, for createRequire('js-yaml'). */
  yamlFrom: string
}

/**
 * The body of the simulated istioctl. It is serialized with Function.prototype.toString into the script,
 * so it must stay self-contained: no reference to anything outside this function (modules come from
 * process.getBuiltinModule, which works in CommonJS and ESM alike).
 */
export async function istioctlProgram(cfg: IstioctlProgramConfig): Promise<void> {
  const fs = process.getBuiltinModule('node:fs')
  const pathMod = process.getBuiltinModule('node:path')
  const os = process.getBuiltinModule('node:os')
  const https = process.getBuiltinModule('node:https')
  const http = process.getBuiltinModule('node:http')
  const crypto = process.getBuiltinModule('node:crypto')
  const yaml = process.getBuiltinModule('node:module').createRequire(cfg.yamlFrom)('js-yaml') as {
    load(text: string): unknown
    dump(value: unknown): string
  }

  type Obj = Record<string, unknown>
  const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
  const obj = (v: unknown): Obj => (isObj(v) ? v : {})
  const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)
  const labelsOf = (o: unknown): Record<string, string> =>
    obj(obj(obj(o)['metadata'])['labels']) as Record<string, string>
  const nameOf = (o: unknown): string => str(obj(obj(o)['metadata'])['name']) ?? ''
  const nsOf = (o: unknown): string => str(obj(obj(o)['metadata'])['namespace']) ?? ''

  class CliError extends Error {
    constructor(
      message: string,
      readonly exitCode = 1,
    ) {
      super(message)
    }
  }

  const argv = process.argv.slice(2)
  const logFile = process.env['ISTIOCTL_SIM_LOG']
  if (logFile) fs.appendFileSync(logFile, `${JSON.stringify(argv)}\n`)
  const out = (s: string): void => void process.stdout.write(s)
  const errOut = (s: string): void => void process.stderr.write(s)
  const [major, minor] = cfg.version.split('.')
  const docBase = `https://istio.io/v${major}.${minor}/docs/reference/config/analysis`

  // ---- command line (cobra/pflag-like) ----
  interface FlagSpec {
    value: string[]
    bool: string[]
    short: Record<string, string>
  }
  // The flags each command of istioctl 1.2x really registers, looked up per release tag in istio/istio:
  // root: istioctl/pkg/cli/option.go AddRootFlags (-c/--kubeconfig, --context, --as, --as-uid, --as-group,
  // -n/--namespace, -i/--istioNamespace) and pkg/log's hidden --log_* flags; version: pkg/version/cobra.go
  // (-s/--short, -o/--output, --remote) plus istioctl/pkg/clioptions/control_plane.go (-r/--revision);
  // analyze: istioctl/pkg/analyze/analyze.go (--revision has no shorthand before 1.25.0, where `-r` was added by
  // istio/istio#53339; --remote-contexts since 1.24.0, --analyzer since 1.26.0); install:
  // operator/cmd/mesh/install.go (+ --dry-run from operator/cmd/mesh/root.go); x precheck:
  // istioctl/pkg/precheck/precheck.go (+ -r/--revision from control_plane.go). The root flag --kubeclient-timeout
  // came in 1.27.0 (istio/istio#56020, istioctl/pkg/cli/option.go FlagKubeTimeout). From 1.29.0 to 1.31.x these
  // commands register the same flags (compared per tag: 1.29.0, 1.30.0, 1.31.0).
  const [vMajor, vMinor] = cfg.version.split('.').map((n) => Number.parseInt(n, 10)) as [number, number]
  const atLeast = (minorWanted: number): boolean => vMajor > 1 || (vMajor === 1 && vMinor >= minorWanted)
  const GLOBAL: FlagSpec = {
    value: [
      'kubeconfig',
      'context',
      'istioNamespace',
      'namespace',
      'vklog',
      'as',
      'as-group',
      'as-uid',
      'log_output_level',
      ...(atLeast(27) ? ['kubeclient-timeout'] : []),
    ],
    bool: ['help'],
    short: { c: 'kubeconfig', i: 'istioNamespace', n: 'namespace', h: 'help' },
  }
  const COMMANDS: Record<string, FlagSpec> = {
    version: {
      value: ['output', 'revision'],
      bool: ['remote', 'short'],
      short: { o: 'output', r: 'revision', s: 'short' },
    },
    analyze: {
      value: [
        'output',
        'revision',
        'failure-threshold',
        'output-threshold',
        'meshConfigFile',
        'suppress',
        'timeout',
        ...(atLeast(24) ? ['remote-contexts'] : []),
        ...(atLeast(26) ? ['analyzer'] : []),
      ],
      bool: ['all-namespaces', 'use-kube', 'color', 'verbose', 'recursive', 'ignore-unknown', 'list-analyzers'],
      short: {
        o: 'output',
        A: 'all-namespaces',
        k: 'use-kube',
        v: 'verbose',
        R: 'recursive',
        L: 'list-analyzers',
        S: 'suppress',
        ...(atLeast(25) ? { r: 'revision' } : {}),
      },
    },
    install: {
      value: ['set', 'filename', 'revision', 'readiness-timeout', 'manifests', 'charts'],
      bool: ['skip-confirmation', 'dry-run', 'force', 'verify'],
      short: { s: 'set', f: 'filename', r: 'revision', y: 'skip-confirmation', d: 'manifests' },
    },
    precheck: {
      value: ['revision', 'output', 'output-threshold', 'from-version'],
      bool: ['skip-controlplane'],
      short: { r: 'revision', o: 'output', f: 'from-version' },
    },
  }
  /** istioctl's root command turns flag errors into util.CommandParseError: exit 64 (istioctl/pkg/util/... ExitIncorrectUsage). */
  const USAGE = 64
  type Flags = Record<string, string[] | boolean>

  function parse(tokens: string[], spec: FlagSpec): { flags: Flags; args: string[] } {
    const value = new Set([...GLOBAL.value, ...spec.value])
    const bool = new Set([...GLOBAL.bool, ...spec.bool])
    const short: Record<string, string> = { ...GLOBAL.short, ...spec.short }
    const flags: Flags = {}
    const args: string[] = []
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!
      if (t === '--') {
        args.push(...tokens.slice(i + 1))
        break
      }
      let name: string
      let inline: string | undefined
      if (t.startsWith('--')) {
        const eq = t.indexOf('=')
        name = eq < 0 ? t.slice(2) : t.slice(2, eq)
        inline = eq < 0 ? undefined : t.slice(eq + 1)
        if (!value.has(name) && !bool.has(name)) throw new CliError(`unknown flag: --${name}`, USAGE)
      } else if (t.startsWith('-') && t.length > 1) {
        const long = short[t[1]!]
        if (!long) throw new CliError(`unknown shorthand flag: '${t[1]}' in ${t}`, USAGE)
        name = long
        const rest = t.slice(2)
        inline = rest === '' ? undefined : rest.startsWith('=') ? rest.slice(1) : rest
      } else {
        args.push(t)
        continue
      }
      if (bool.has(name)) {
        if (inline !== undefined && !['true', 'false', '1', '0'].includes(inline)) {
          throw new CliError(
            `invalid argument "${inline}" for "--${name}" flag: strconv.ParseBool: parsing "${inline}": invalid syntax`,
            USAGE,
          )
        }
        flags[name] = inline === undefined || inline === 'true' || inline === '1'
      } else {
        const v = inline ?? tokens[++i]
        if (v === undefined) throw new CliError(`flag needs an argument: --${name}`, USAGE)
        const prev = flags[name]
        flags[name] = [...(Array.isArray(prev) ? prev : []), v]
      }
    }
    return { flags, args }
  }
  const one = (f: Flags, name: string): string | undefined => {
    const v = f[name]
    return Array.isArray(v) ? v[v.length - 1] : undefined
  }
  const many = (f: Flags, name: string): string[] => {
    const v = f[name]
    return Array.isArray(v) ? v : []
  }
  const flag = (f: Flags, name: string, dflt: boolean): boolean =>
    typeof f[name] === 'boolean' ? (f[name] as boolean) : dflt

  // ---- kubeconfig and API access ----
  interface Kube {
    get(path: string, headers?: Record<string, string>): Promise<Obj | undefined>
    send(method: string, path: string, body: unknown): Promise<{ status: number; body: Obj }>
    namespace: string
  }

  function kubeClient(f: Flags): Kube {
    const file =
      one(f, 'kubeconfig') ??
      (process.env['KUBECONFIG'] ?? '').split(pathMod.delimiter).find(Boolean) ??
      pathMod.join(os.homedir(), '.kube', 'config')
    let text: string
    try {
      text = fs.readFileSync(file, 'utf8')
    } catch {
      throw new CliError(
        'invalid configuration: no configuration has been provided, try setting KUBERNETES_MASTER environment variable',
      )
    }
    const kc = obj(yaml.load(text))
    const named = (list: unknown, name: string | undefined, key: string): Obj | undefined => {
      const hit = arr(list)
        .map(obj)
        .find((e) => e['name'] === name)
      return hit ? obj(hit[key]) : undefined
    }
    const ctxName = one(f, 'context') ?? str(kc['current-context'])
    const ctx = named(kc['contexts'], ctxName, 'context')
    if (!ctx) throw new CliError(`context "${ctxName ?? ''}" does not exist`)
    const cluster = named(kc['clusters'], str(ctx['cluster']), 'cluster')
    if (!cluster || !str(cluster['server']))
      throw new CliError(`invalid configuration: cluster "${str(ctx['cluster']) ?? ''}" has no server defined`)
    const user = named(kc['users'], str(ctx['user']), 'user') ?? {}
    if (user['exec'] !== undefined)
      throw new CliError('the simulated istioctl does not run kubeconfig exec credential plugins')
    const server = str(cluster['server'])!.replace(/\/$/, '')
    const b64 = (v: unknown): Buffer | undefined => (typeof v === 'string' ? Buffer.from(v, 'base64') : undefined)
    const ca =
      b64(cluster['certificate-authority-data']) ??
      (str(cluster['certificate-authority']) ? fs.readFileSync(str(cluster['certificate-authority'])!) : undefined)
    const token =
      str(user['token']) ??
      (str(user['tokenFile']) ? fs.readFileSync(str(user['tokenFile'])!, 'utf8').trim() : undefined)
    const cert = b64(user['client-certificate-data'])
    const key = b64(user['client-key-data'])
    const insecure = cluster['insecure-skip-tls-verify'] === true

    const send = (
      method: string,
      path: string,
      body: unknown,
      extra: Record<string, string> = {},
    ): Promise<{ status: number; body: Obj }> =>
      new Promise((resolve, reject) => {
        const url = new URL(server + path)
        const verb = method[0] + method.slice(1).toLowerCase()
        const payload = body === undefined ? undefined : JSON.stringify(body)
        const options = {
          method,
          headers: {
            accept: 'application/json',
            'user-agent': `istioctl/${cfg.version} (linux/amd64) kubernetes/simulated`,
            ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...extra,
          },
          timeout: 30000,
          ...(ca ? { ca } : {}),
          ...(cert && key ? { cert, key } : {}),
          rejectUnauthorized: !insecure,
        }
        const req = (url.protocol === 'http:' ? http : https).request(url, options, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            let parsed: Obj = {}
            try {
              parsed = obj(JSON.parse(text))
            } catch {
              parsed = { message: text }
            }
            resolve({ status: res.statusCode ?? 0, body: parsed })
          })
        })
        req.on('timeout', () => req.destroy(new Error('context deadline exceeded')))
        req.on('error', (e: NodeJS.ErrnoException) => {
          const cause =
            e.code === 'ECONNREFUSED'
              ? `dial tcp ${url.host}: connect: connection refused`
              : e.code === 'ECONNRESET'
                ? 'read: connection reset by peer'
                : /certificate|self.signed|issuer/i.test(e.message)
                  ? 'tls: failed to verify certificate: x509: certificate signed by unknown authority'
                  : e.message
          reject(new CliError(`${verb} "${url.href}": ${cause}`))
        })
        req.end(payload)
      })

    const get = async (path: string, headers: Record<string, string> = {}): Promise<Obj | undefined> => {
      const r = await send('GET', path, undefined, headers)
      if (r.status === 200) return r.body
      if (r.status === 404) return undefined
      throw apiError(r)
    }
    return { get, send, namespace: str(ctx['namespace']) ?? 'default' }
  }

  function apiError(r: { status: number; body: Obj }): CliError {
    if (r.status === 401) return new CliError('the server has asked for the client to provide credentials')
    return new CliError(str(r.body['message']) ?? `the server responded with the status code ${r.status}`)
  }

  const items = (list: Obj | undefined): Obj[] => arr(list?.['items']).map(obj)
  const q = (s: string): string => encodeURIComponent(s)

  function podReady(p: Obj): boolean {
    const st = obj(p['status'])
    return (
      st['phase'] === 'Running' &&
      arr(st['conditions']).some((c) => obj(c)['type'] === 'Ready' && obj(c)['status'] === 'True')
    )
  }

  /** Version from an image tag: docker.io/istio/pilot:1.24.2, mcr.microsoft.com/oss/istio/pilot:v1.23.3-distroless */
  function imageVersion(image: string | undefined): string {
    const tag = /:([^:/@]+)(@.*)?$/.exec(image ?? '')?.[1]
    return tag ? tag.replace(/^v/, '').replace(/-(distroless|debug)$/, '') : 'unknown'
  }
  function buildInfo(version: string): Obj {
    const revision =
      version === cfg.version
        ? cfg.gitRevision
        : crypto.createHash('sha1').update(`istio/istio@${version}`).digest('hex')
    return { version, revision, golang_version: cfg.golangVersion, status: 'Clean', tag: version }
  }
  const containerImage = (p: Obj, name: string): string | undefined => {
    const s = obj(p['spec'])
    const c = [...arr(s['containers']), ...arr(s['initContainers'])].map(obj).find((x) => x['name'] === name)
    return str(c?.['image'])
  }

  // ---- version ----
  async function version(f: Flags): Promise<void> {
    const output = one(f, 'output') ?? ''
    if (!['', 'json', 'yaml'].includes(output)) throw new CliError("--output must be 'yaml' or 'json'")
    const remote = flag(f, 'remote', true)
    const short = flag(f, 'short', true)
    const client = buildInfo(cfg.version)
    const result: Obj = { clientVersion: client }
    if (remote) {
      const istioNs = one(f, 'istioNamespace') ?? 'istio-system'
      const revision = one(f, 'revision')
      try {
        const kube = kubeClient(f)
        const selector = `app=istiod${revision ? `,istio.io/rev=${revision}` : ''}`
        const pods = items(
          await kube.get(
            `/api/v1/namespaces/${q(istioNs)}/pods?labelSelector=${q(selector)}&fieldSelector=${q('status.phase=Running')}`,
          ),
        )
        const ready = pods.filter(podReady)
        if (ready.length === 0) throw new CliError(`no running Istio pods in namespace "${istioNs}"`)
        result['meshVersion'] = ready.map((p) => ({
          Component: labelsOf(p)['istio'] ?? 'pilot',
          Revision: labelsOf(p)['istio.io/rev'] ?? '',
          Info: buildInfo(
            imageVersion(containerImage(p, 'discovery') ?? str(obj(arr(obj(p['spec'])['containers'])[0])['image'])),
          ),
        }))
        try {
          const all = items(await kube.get('/api/v1/pods'))
          result['dataPlaneVersion'] = all
            .filter((p) => obj(p['status'])['phase'] === 'Running' && containerImage(p, 'istio-proxy') !== undefined)
            .map((p) => ({
              ID: `${nameOf(p)}.${nsOf(p)}`,
              IstioVersion: imageVersion(containerImage(p, 'istio-proxy')),
            }))
        } catch {
          // like istioctl: data plane versions are best effort
        }
      } catch (e) {
        errOut(`Istio is not present in the cluster: ${(e as Error).message}\n`)
        throw e
      }
    }
    if (output === 'json') return out(`${JSON.stringify(result, null, 2)}\n`)
    if (output === 'yaml') return out(`${yaml.dump(result)}\n`)
    const mesh = result['meshVersion'] as Array<{ Component: string; Info: Obj }> | undefined
    const dp = result['dataPlaneVersion'] as Array<{ IstioVersion: string }> | undefined
    const longForm = (b: Obj): string =>
      `version.BuildInfo{Version:"${String(b['version'])}", GitRevision:"${String(b['revision'])}", GolangVersion:"${String(b['golang_version'])}", BuildStatus:"${String(b['status'])}", GitTag:"${String(b['tag'])}"}`
    if (!mesh) return out(`${short ? cfg.version : longForm(client)}\n`)
    if (short) {
      out(`client version: ${cfg.version}\n`)
      const versions = [...new Set(mesh.map((m) => String(m.Info['version'])))]
      if (versions.length === 1) out(`control plane version: ${versions[0]}\n`)
      else for (const m of mesh) out(`${m.Component} version: ${String(m.Info['version'])}\n`)
      if (dp) {
        const counts = new Map<string, number>()
        for (const p of dp) counts.set(p.IstioVersion, (counts.get(p.IstioVersion) ?? 0) + 1)
        const text = [...counts.keys()]
          .sort()
          .map((v) => `${v} (${counts.get(v)} proxies)`)
          .join(', ')
        out(`data plane version: ${text || 'none'}\n`)
      }
      return
    }
    out(`client version: ${longForm(client)}\n`)
    for (const m of mesh) out(`${m.Component} version: ${longForm(m.Info)}\n`)
    for (const p of dp ?? [])
      out(`data plane version: version.ProxyInfo{ID:"${String((p as Obj)['ID'])}", IstioVersion:"${p.IstioVersion}"}\n`)
  }

  // ---- analyze ----
  interface Message {
    code: string
    level: 'Error' | 'Warning' | 'Info'
    message: string
    origin?: string
    reference?: string
    documentationUrl: string
  }
  const LEVELS = ['Error', 'Warning', 'Info']
  const IGNORED_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage']

  async function analyze(f: Flags, args: string[]): Promise<void> {
    const output = one(f, 'output') ?? 'log'
    if (!['log', 'json', 'yaml'].includes(output))
      throw new CliError(`${output} not a valid option for format. See istioctl analyze --help`)
    const level = (name: string, dflt: string): number => {
      const v = one(f, name) ?? dflt
      const i = LEVELS.findIndex((l) => l.toUpperCase() === v.toUpperCase())
      if (i < 0)
        throw new CliError(
          `invalid argument "${v}" for "--${name}" flag: "${v}" not a valid option, please choose from: [Info Warning Error]`,
        )
      return i
    }
    const failureThreshold = level('failure-threshold', 'Error')
    const outputThreshold = level('output-threshold', 'Info')
    if (args.length > 0) throw new CliError('the simulated istioctl analyzes the live cluster only, not files')
    const all = flag(f, 'all-namespaces', false)
    const messages: Message[] = []
    let target = 'all namespaces'

    if (flag(f, 'use-kube', true)) {
      const kube = kubeClient(f)
      const selected = one(f, 'namespace') ?? kube.namespace
      if (!all) target = `namespace: ${selected}`
      const istioNs = one(f, 'istioNamespace') ?? 'istio-system'
      const istioList = async (resource: string): Promise<Obj[]> => {
        for (const v of ['v1', 'v1beta1', 'v1alpha3']) {
          const l = await kube.get(`/apis/networking.istio.io/${v}/${resource}`)
          if (l) return items(l)
        }
        return []
      }
      // What the real analyze reads, so that RBAC sees the same requests (istioctl/pkg/analyze/analyze.go gets the
      // analyzed Namespace; pkg/config/analysis/local/istiod_analyze.go lists and watches every input kind of the
      // analyzers cluster-wide, and the mesh config ConfigMaps in the Istio namespace). Kinds this API server does
      // not serve answer 404 and are skipped, as the CRD watcher skips absent CRDs; a 403 fails the command.
      if (!all && (await kube.get(`/api/v1/namespaces/${q(selected)}`)) === undefined) {
        errOut(`namespace "${selected}" not found\n`)
        return
      }
      for (const path of [
        '/api/v1/pods',
        '/api/v1/secrets',
        '/apis/apps/v1/deployments',
        '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
        '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations',
        '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
        '/apis/networking.istio.io/v1/serviceentries',
        '/apis/networking.istio.io/v1/sidecars',
        '/apis/networking.istio.io/v1alpha3/envoyfilters',
        '/apis/networking.istio.io/v1beta1/proxyconfigs',
        '/apis/security.istio.io/v1/authorizationpolicies',
        '/apis/security.istio.io/v1/requestauthentications',
        '/apis/telemetry.istio.io/v1/telemetries',
        '/apis/extensions.istio.io/v1alpha1/wasmplugins',
        `/api/v1/namespaces/${q(istioNs)}/configmaps`,
      ])
        await kube.get(path)
      const namespaces = items(await kube.get('/api/v1/namespaces'))
      const services = items(await kube.get('/api/v1/services'))
      const virtualServices = await istioList('virtualservices')
      const destinationRules = await istioList('destinationrules')
      const gateways = await istioList('gateways')
      const inScope = (ns: string): boolean => (all ? !IGNORED_NAMESPACES.includes(ns) : ns === selected)
      const fqdn = (host: string, ns: string): string => {
        const [name = host, hns = ns] = host.split('.')
        return `${name}.${hns}.svc.cluster.local`
      }
      const add = (code: string, lvl: Message['level'], message: string, origin: string): void => {
        messages.push({
          code,
          level: lvl,
          message,
          origin,
          documentationUrl: `${docBase}/${code.toLowerCase()}/?ref=istioctl-analyze`,
        })
      }

      for (const vs of virtualServices.filter((v) => inScope(nsOf(v)))) {
        const ns = nsOf(vs)
        const origin = `VirtualService ${ns}/${nameOf(vs)}`
        const spec = obj(vs['spec'])
        for (const g of arr(spec['gateways'])) {
          if (typeof g !== 'string' || g === 'mesh') continue
          const [gns, gname] = g.includes('/') ? (g.split('/') as [string, string]) : [ns, g]
          if (!gateways.some((x) => nameOf(x) === gname && nsOf(x) === gns))
            add('IST0101', 'Error', `Referenced gateway not found: "${g}"`, origin)
        }
        const routes = [...arr(spec['http']), ...arr(spec['tcp']), ...arr(spec['tls'])].map(obj)
        for (const d of routes.flatMap((r) => arr(r['route'])).map((x) => obj(obj(x)['destination']))) {
          const host = str(d['host'])
          if (!host) continue
          const hostFqdn = fqdn(host, ns)
          const isService = services.some((s) => `${nameOf(s)}.${nsOf(s)}.svc.cluster.local` === hostFqdn)
          if (!isService && !host.includes('*') && host.split('.').length <= 5) {
            add('IST0101', 'Error', `Referenced host not found: "${host}"`, origin)
            continue
          }
          const subset = str(d['subset'])
          if (subset === undefined) continue
          const found = destinationRules.some(
            (dr) =>
              fqdn(str(obj(dr['spec'])['host']) ?? '', nsOf(dr)) === hostFqdn &&
              arr(obj(dr['spec'])['subsets']).some((s) => obj(s)['name'] === subset),
          )
          if (!found)
            add('IST0101', 'Error', `Referenced host+subset in destinationrule not found: "${host}+${subset}"`, origin)
        }
      }

      for (const n of namespaces) {
        const ns = nameOf(n)
        if (!inScope(ns) || ns === istioNs || IGNORED_NAMESPACES.includes(ns)) continue
        const labels = labelsOf(n)
        if (labels['istio-injection'] === undefined && labels['istio.io/rev'] === undefined) {
          add(
            'IST0102',
            'Info',
            `The namespace is not enabled for Istio injection. Run 'kubectl label namespace ${ns} istio-injection=enabled' to enable it, or 'kubectl label namespace ${ns} istio-injection=disabled' to explicitly mark it as not needing injection.`,
            `Namespace ${ns}`,
          )
        }
        // The tests' knob: extra findings stored in the analyzed namespace.
        // Not a read of the real istioctl: the simulated API server lets this one through whatever the RBAC.
        const cm = await kube.get(`/api/v1/namespaces/${q(ns)}/configmaps/istioctl-analyze-findings`, {
          'x-simulation-knob': 'analyze-findings',
        })
        const raw = str(obj(cm?.['data'])['findings.json'])
        if (raw === undefined) continue
        for (const e of arr(JSON.parse(raw)).map(obj)) {
          const code = str(e['code']) ?? 'IST0000'
          const lvl = (LEVELS.find((l) => l === e['level']) ?? 'Warning') as Message['level']
          messages.push({
            code,
            level: lvl,
            message: str(e['message']) ?? '',
            ...(str(e['origin']) !== undefined ? { origin: str(e['origin'])! } : {}),
            ...(str(e['reference']) !== undefined ? { reference: str(e['reference'])! } : {}),
            documentationUrl: str(e['documentationUrl']) ?? `${docBase}/${code.toLowerCase()}/?ref=istioctl-analyze`,
          })
        }
      }
    }

    messages.sort(
      (a, b) =>
        LEVELS.indexOf(a.level) - LEVELS.indexOf(b.level) ||
        a.code.localeCompare(b.code) ||
        (a.origin ?? '').localeCompare(b.origin ?? ''),
    )
    const shown = messages.filter((m) => LEVELS.indexOf(m.level) <= outputThreshold)
    if (output === 'json')
      out(`${JSON.stringify(shown, ['code', 'documentationUrl', 'level', 'message', 'origin', 'reference'], '\t')}\n`)
    else if (output === 'yaml') out(`${shown.length ? yaml.dump(shown) : '[]\n'}\n`)
    else
      for (const m of shown)
        out(
          `${m.level} [${m.code}]${m.origin ? ` (${m.origin}${m.reference ? ` ${m.reference}` : ''})` : ''} ${m.message}\n`,
        )
    if (shown.length === 0) errOut(`\u2714 No validation issues found when analyzing ${target}.\n`)
    // Only the log format turns findings into an exit code (istioctl: AnalyzerFoundIssuesError => 79).
    if (output === 'log' && messages.some((m) => LEVELS.indexOf(m.level) <= failureThreshold)) {
      throw new CliError(
        `Analyzers found issues when analyzing ${target}.\nSee ${docBase} for more information about causes and resolutions.`,
        79,
      )
    }
  }

  // ---- x precheck ----
  async function precheck(f: Flags): Promise<void> {
    const kube = kubeClient(f)
    const v = await kube.get('/version')
    const minorK8s = Number.parseInt(str(v?.['minor']) ?? '0', 10)
    if (minorK8s > 0 && minorK8s < 28) {
      out(`Error [IST0136] The Kubernetes API version: v1.${minorK8s} is lower than the minimum version: 1.28\n`)
      throw new CliError(
        'Issues found when checking the cluster. Istio may not be safe to install or upgrade.\nSee https://istio.io/latest/docs/reference/config/analysis for more information about causes and resolutions.',
      )
    }
    out(
      '\u2714 No issues found when checking the cluster. Istio is safe to install or upgrade!\n  To get started, check out https://istio.io/latest/docs/setup/getting-started/\n',
    )
  }

  // ---- install ----
  const PROFILES: Record<string, { istiod: boolean; ingress: boolean }> = {
    default: { istiod: true, ingress: true },
    demo: { istiod: true, ingress: true },
    minimal: { istiod: true, ingress: false },
    remote: { istiod: false, ingress: false },
    empty: { istiod: false, ingress: false },
    preview: { istiod: true, ingress: true },
    ambient: { istiod: true, ingress: false },
  }

  async function readAnswer(ms: number): Promise<string> {
    try {
      if (!process.stdin.isTTY && !fs.fstatSync(0).isFIFO()) return ''
    } catch {
      return ''
    }
    return new Promise((resolve) => {
      let data = ''
      const done = (): void => {
        clearTimeout(timer)
        process.stdin.removeAllListeners('data')
        process.stdin.destroy()
        resolve(data.split('\n')[0]!.trim())
      }
      const timer = setTimeout(done, ms)
      process.stdin.setEncoding('utf8')
      process.stdin.on('data', (c: string) => {
        data += c
        if (data.includes('\n')) done()
      })
      process.stdin.once('end', done)
    })
  }

  async function install(f: Flags): Promise<void> {
    let profile = 'default'
    let revision = one(f, 'revision') ?? ''
    let hub = 'docker.io/istio'
    let tag = cfg.version
    for (const file of many(f, 'filename')) {
      const iop = obj(yaml.load(fs.readFileSync(file, 'utf8')))
      if (iop['kind'] !== 'IstioOperator') throw new CliError(`could not parse ${file}: the kind must be IstioOperator`)
      const spec = obj(iop['spec'])
      profile = str(spec['profile']) ?? profile
      revision = str(spec['revision']) ?? revision
      hub = str(spec['hub']) ?? hub
      tag = str(spec['tag']) ?? tag
    }
    for (const s of many(f, 'set')) {
      const eq = s.indexOf('=')
      if (eq < 0) throw new CliError(`--set must have type path=value: ${s}`)
      const [k, v] = [s.slice(0, eq), s.slice(eq + 1)]
      if (k === 'profile') profile = v
      else if (k === 'revision') revision = v
      else if (k === 'hub' || k === 'values.global.hub') hub = v
      else if (k === 'tag' || k === 'values.global.tag') tag = v
    }
    const components = PROFILES[profile]
    if (!components) throw new CliError(`generate config: could not read profile "${profile}": profile does not exist`)
    const istioNs = one(f, 'istioNamespace') ?? 'istio-system'
    if (!flag(f, 'skip-confirmation', false)) {
      out(`This will install the Istio ${cfg.version} profile "${profile}" into the cluster. Proceed? (y/N) `)
      const answer = await readAnswer(2000)
      if (!/^y(es)?$/i.test(answer)) {
        out('Cancelled.\n')
        throw new CliError('', 1)
      }
    }
    if (flag(f, 'dry-run', false)) {
      out('\u2714 Installation complete\n')
      return
    }
    const kube = kubeClient(f)
    const rev = revision || 'default'
    const suffix = revision ? `-${revision}` : ''
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
    const rand = (n: number, alphabet: string): string =>
      Array.from({ length: n }, () => alphabet[crypto.randomInt(alphabet.length)]).join('')

    const check = (r: { status: number; body: Obj }): Obj => {
      if (r.status >= 200 && r.status < 300) return r.body
      throw apiError(r)
    }
    /** Create, or replace the spec of an existing object (like server-side apply of the rendered manifests). */
    const apply = async (collection: string, o: Obj): Promise<Obj> => {
      const created = await kube.send('POST', collection, o)
      if (created.status !== 409) return check(created)
      const cur = await kube.get(`${collection}/${q(nameOf(o))}`)
      return check(
        await kube.send('PUT', `${collection}/${q(nameOf(o))}`, {
          ...o,
          metadata: { ...obj(o['metadata']), resourceVersion: obj(cur?.['metadata'])['resourceVersion'] },
        }),
      )
    }
    const setStatus = async (collection: string, o: Obj, status: Obj): Promise<void> => {
      check(await kube.send('PUT', `${collection}/${q(nameOf(o))}/status`, { ...o, status }))
    }

    /** A Deployment with one Running, Ready pod (what the ReplicaSet controller and kubelet would produce). */
    const workload = async (
      name: string,
      serviceAccount: string,
      labels: Record<string, string>,
      selector: Record<string, string>,
      container: Obj,
    ): Promise<void> => {
      const deployments = `/apis/apps/v1/namespaces/${q(istioNs)}/deployments`
      const pods = `/api/v1/namespaces/${q(istioNs)}/pods`
      const template = {
        metadata: { labels: { ...labels, 'sidecar.istio.io/inject': 'false' } },
        spec: { serviceAccountName: serviceAccount, containers: [container] },
      }
      const d = await apply(deployments, {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name, namespace: istioNs, labels },
        spec: { replicas: 1, selector: { matchLabels: selector }, strategy: { type: 'RollingUpdate' }, template },
      })
      await setStatus(deployments, d, {
        observedGeneration: obj(d['metadata'])['generation'],
        replicas: 1,
        updatedReplicas: 1,
        readyReplicas: 1,
        availableReplicas: 1,
        conditions: [
          {
            type: 'Available',
            status: 'True',
            reason: 'MinimumReplicasAvailable',
            message: 'Deployment has minimum availability.',
            lastUpdateTime: now,
            lastTransitionTime: now,
          },
          {
            type: 'Progressing',
            status: 'True',
            reason: 'NewReplicaSetAvailable',
            message: `ReplicaSet "${name}" has successfully progressed.`,
            lastUpdateTime: now,
            lastTransitionTime: now,
          },
        ],
      })
      const sel = Object.entries(selector)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')
      for (const old of items(await kube.get(`${pods}?labelSelector=${q(sel)}`)))
        await kube.send('DELETE', `${pods}/${q(nameOf(old))}`, undefined)
      const hash = crypto.createHash('sha1').update(JSON.stringify(template)).digest('hex').slice(0, 10)
      const pod = check(
        await kube.send('POST', pods, {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: `${name}-${hash}-${rand(5, 'bcdfghjklmnpqrstvwxz2456789')}`,
            namespace: istioNs,
            labels: { ...template.metadata.labels, 'pod-template-hash': hash },
          },
          spec: template.spec,
        }),
      )
      await setStatus(pods, pod, {
        phase: 'Running',
        qosClass: 'Burstable',
        podIP: `10.244.0.${crypto.randomInt(2, 250)}`,
        hostIP: '10.224.0.4',
        startTime: now,
        conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({
          type,
          status: 'True',
          lastTransitionTime: now,
        })),
        containerStatuses: [
          {
            name: container['name'],
            image: container['image'],
            imageID: '',
            ready: true,
            started: true,
            restartCount: 0,
            state: { running: { startedAt: now } },
          },
        ],
      })
    }

    const nsRes = await kube.send('POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: istioNs },
    })
    if (nsRes.status !== 409) check(nsRes)
    out('\u2714 Istio core installed \u26f5\ufe0f\n')
    const common = { 'install.operator.istio.io/owning-resource': 'unknown', 'istio.io/rev': rev, release: 'istio' }
    if (components.istiod) {
      const labels = { app: 'istiod', istio: 'pilot', 'operator.istio.io/component': 'Pilot', ...common }
      await workload(
        `istiod${suffix}`,
        `istiod${suffix}`,
        labels,
        { app: 'istiod', 'istio.io/rev': rev },
        {
          name: 'discovery',
          image: `${hub}/pilot:${tag}`,
          args: [
            'discovery',
            '--monitoringAddr=:15014',
            '--log_output_level=default:info',
            '--domain',
            'cluster.local',
            '--keepaliveMaxServerConnectionAge',
            '30m',
          ],
          ports: [{ containerPort: 8080 }, { containerPort: 15010 }, { containerPort: 15017 }],
        },
      )
      await apply(`/api/v1/namespaces/${q(istioNs)}/services`, {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: `istiod${suffix}`, namespace: istioNs, labels: { app: 'istiod', istio: 'pilot', ...common } },
        spec: {
          selector: { app: 'istiod', 'istio.io/rev': rev },
          ports: [
            { name: 'grpc-xds', port: 15010, protocol: 'TCP' },
            { name: 'https-dns', port: 15012, protocol: 'TCP' },
            { name: 'https-webhook', port: 443, targetPort: 15017, protocol: 'TCP' },
            { name: 'http-monitoring', port: 15014, protocol: 'TCP' },
          ],
        },
      })
      out('\u2714 Istiod installed \ud83e\udde0\n')
    }
    if (components.ingress) {
      const selector = { app: 'istio-ingressgateway', istio: 'ingressgateway' }
      const labels = { ...selector, 'operator.istio.io/component': 'IngressGateways', ...common }
      await workload('istio-ingressgateway', 'istio-ingressgateway-service-account', labels, selector, {
        name: 'istio-proxy',
        image: `${hub}/proxyv2:${tag}`,
        args: ['proxy', 'router', '--domain', '$(POD_NAMESPACE).svc.cluster.local'],
        ports: [
          { containerPort: 15021 },
          { containerPort: 8080 },
          { containerPort: 8443 },
          { containerPort: 15090, name: 'http-envoy-prom' },
        ],
      })
      const services = `/api/v1/namespaces/${q(istioNs)}/services`
      // An existing gateway Service keeps its load balancer address.
      if (!(await kube.get(`${services}/istio-ingressgateway`))) {
        check(
          await kube.send('POST', services, {
            apiVersion: 'v1',
            kind: 'Service',
            metadata: { name: 'istio-ingressgateway', namespace: istioNs, labels },
            spec: {
              type: 'LoadBalancer',
              selector,
              ports: [
                { name: 'status-port', port: 15021, targetPort: 15021, protocol: 'TCP' },
                { name: 'http2', port: 80, targetPort: 8080, protocol: 'TCP' },
                { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' },
              ],
            },
          }),
        )
      }
      out('\u2714 Ingress gateways installed \ud83d\udeec\n')
    }
    out('\u2714 Installation complete\n')
    if (!revision) out('Made this installation the default for cluster-wide operations.\n')
  }

  const HELP = `Istio configuration command line utility for service operators to
debug and diagnose their Istio mesh.

Usage:
  istioctl [command]

Available Commands:
  analyze                Analyze Istio configuration and print validation messages
  experimental           Experimental commands that may be modified or deprecated
  install                Applies an Istio manifest, installing or reconfiguring Istio on a cluster.
  precheck               Check whether Istio can safely be installed or upgraded
  version                Prints out build version information

Flags:
      --context string          Kubernetes configuration context
  -h, --help                    help for istioctl
  -i, --istioNamespace string   Istio system namespace (default "istio-system")
  -c, --kubeconfig string       Kubernetes configuration file
  -n, --namespace string        Kubernetes namespace

Use "istioctl [command] --help" for more information about a command.
`

  // ---- dispatch ----
  try {
    // The command words are the first arguments that are not flags (skipping the values of global flags).
    const words: string[] = []
    const at: number[] = []
    for (let i = 0; i < argv.length && words.length < 2; i++) {
      const t = argv[i]!
      if (t === '--') break
      if (t.startsWith('-')) {
        const long = t.startsWith('--') ? t.slice(2) : GLOBAL.short[t.slice(1)]
        if (!t.includes('=') && long !== undefined && GLOBAL.value.includes(long)) i++
        continue
      }
      words.push(t)
      at.push(i)
      if (!['x', 'experimental'].includes(t)) break
    }
    const experimental = words[0] === 'x' || words[0] === 'experimental'
    const command = experimental ? words[1] : words[0]
    const rest = argv.filter((_, i) => !at.includes(i))
    const spec = command !== undefined ? COMMANDS[command] : undefined
    if (command === undefined || command === 'help') {
      parse(rest, { value: [], bool: [], short: {} })
      out(HELP)
      return
    }
    if (!spec || (experimental && command !== 'precheck')) {
      throw new CliError(
        `unknown command "${command}" for "istioctl${experimental ? ' experimental' : ''}"\nRun 'istioctl${experimental ? ' experimental' : ''} --help' for usage.`,
        USAGE,
      )
    }
    const { flags, args } = parse(rest, spec)
    if (flags['help'] === true) {
      out(`Usage:\n  istioctl ${experimental ? 'x ' : ''}${command} [flags]\n`)
      return
    }
    if (command === 'version') await version(flags)
    else if (command === 'analyze') await analyze(flags, args)
    else if (command === 'install') await install(flags)
    else await precheck(flags)
  } catch (e) {
    const code = e instanceof CliError ? e.exitCode : 1
    const message = e instanceof Error ? e.message : String(e)
    if (message) errOut(`Error: ${message}\n`)
    process.exitCode = code
  }
}
