// The one place that reads action inputs. Everything else is built from the typed Inputs it returns.
import * as core from '@actions/core'
import { AZURE_CLOUD_NAMES } from './azure/clouds.js'
import { resolveManifestPath } from './gitops/manifest.js'
import type { ClusterAccess } from './k8s/access.js'
import { ACTIONS, MODES, type Mode } from './modes.js'
import { parseServiceRef } from './telemetry/prometheus.js'
import type { RouteSelector, TargetKind, TargetRef } from './routing/router.js'
import {
  InputError,
  type Step,
  oneOf,
  parseBoolean,
  parseDuration,
  parseHeaderName,
  parseHeaders,
  parseBaseUrl,
  parseHttpUrl,
  parseInteger,
  parseIstioVersion,
  parseK8sName,
  parseNamespacedName,
  parseRatio,
  parseRegex,
  parseSteps,
} from './parse.js'

export { ACTIONS, type Mode } from './modes.js'

export interface Inputs {
  access: ClusterAccess
  'istioctl-version': string | 'auto'
  'istioctl-mirror': string
  'istio-namespace': string | 'auto'
  'istio-revision': string | 'auto'
  'install-istio': boolean
  'istio-profile': string
  analyze: boolean
  namespace: string
  /** The routing resource to shift: exactly one of `virtual-service` and `http-route` (SPEC 7) is set. */
  'virtual-service'?: string
  'http-route'?: string
  'destination-rule'?: string
  /**
   * The versions the rollout moves between, whatever the routing API: with `virtual-service` the subsets
   * (`stable-subset`, `canary-subset`), with `http-route` the backend Services (`stable-backend`, `canary-backend`).
   * The input names are kept for messages in `versionInputNames`.
   */
  'stable-subset': string | 'auto'
  'canary-subset'?: string
  /** SPEC 7: the service mesh; auto = the control plane found. */
  mesh: 'auto' | 'istio' | 'linkerd'
  route: RouteSelector
  action: Mode
  steps: Step[]
  pause: number
  'preview-header': string
  'preview-value'?: string
  'gateway-url'?: string
  'gateway-service'?: { namespace: string; name: string }
  'smoke-path': string
  'smoke-requests': number
  'smoke-concurrency': number
  'smoke-timeout': number
  'smoke-expect'?: RegExp
  'smoke-headers': Record<string, string>
  'success-threshold': number
  'max-latency'?: number
  'version-pattern'?: RegExp
  'lock-ttl': number
  /** SPEC section 6: where the mesh's telemetry is, and how a step is judged on it. */
  'prometheus-url'?: string
  /** 'auto' (Istio's addon Service when it exists), 'none', or a Service queried through the service proxy. */
  'prometheus-service': 'auto' | 'none' | { namespace: string; name: string; port: number | string }
  'prometheus-token'?: string
  /**
   * Entra scope of an Azure Monitor-style `prometheus-url` the cloud table does not recognise by its host (a proxy,
   * Azure Stack, a simulation): setting it makes the URL one that gets Entra tokens from the AKS login.
   */
  'prometheus-scope'?: string
  metrics: 'auto' | 'true' | 'false'
  'max-error-rate'?: number
  'min-canary-requests': number
  /** undefined: 3 x the step's pause, at least 5 minutes. */
  'max-step-time'?: number
  'analysis-alpha': number
  /** Absolute path of the GitOps manifest (inside the workspace) to hand the result back to. */
  manifest?: string
  /** Kiali's base URL with its web root (e.g. https://kiali.example.com/kiali): the job summary links into it. */
  'kiali-url'?: string
}

/** Header names Istio accepts in an HTTPMatchRequest (its webhook denies others): ^[-_A-Za-z0-9]+$. */
const ISTIO_HEADER_NAME = /^[-_A-Za-z0-9]+$/

export const DEFAULT_MIRROR = 'https://github.com/istio/istio/releases/download'
const MAX_PAUSE_MS = 6 * 3_600_000

/** Every input problem found, each naming its input and what it accepts. */
export class InvalidInputs extends Error {
  constructor(readonly problems: string[]) {
    super(
      problems.length === 1
        ? (problems[0] as string)
        : `${problems.length} inputs are invalid:\n  - ${problems.join('\n  - ')}`,
    )
    this.name = 'InvalidInputs'
  }
}

function azureName(input: string, v: string, re: RegExp, accepted: string): string {
  if (!re.test(v)) throw new InputError(input, `'${v}' is not a valid name (${accepted})`)
  return v
}

export type ReadInput = (name: string) => string

/** Reads and validates every input; all problems are reported together, before anything touches a cluster. */
export function getInputs(read: ReadInput = (n) => core.getInput(n), env: NodeJS.ProcessEnv = process.env): Inputs {
  const errors: string[] = []
  const raw = (name: string): string => read(name).trim()
  function attempt<T>(fn: () => T): T | undefined {
    try {
      return fn()
    } catch (err) {
      if (err instanceof InputError) {
        errors.push(err.message)
        return undefined
      }
      throw err
    }
  }
  const opt = <T>(name: string, fn: (v: string) => T): T | undefined => {
    const v = raw(name)
    return v === '' ? undefined : attempt(() => fn(v))
  }
  const withDefault = <T>(name: string, def: string, fn: (v: string) => T): T | undefined =>
    attempt(() => fn(raw(name) === '' ? def : raw(name)))
  const required = (name: string, why: string): string | undefined => {
    const v = raw(name)
    if (v === '') errors.push(`Input '${name}': required ${why}`)
    return v === '' ? undefined : v
  }

  const action = withDefault('action', 'rollout', (v) => oneOf('action', v, ACTIONS))
  const access = readAccess(raw, env, attempt)
  const namespace = required('namespace', '(the application namespace, e.g. bookinfo)')
  const mode = action === undefined ? undefined : MODES[action]
  const target = readTarget(raw, errors)
  const names = versionInputNames(target?.kind ?? 'VirtualService')
  const canary = mode?.needsCanary
    ? required(
        names.canary,
        target?.kind === 'HTTPRoute'
          ? `for action '${action}' with http-route (the new version's Service, e.g. reviews-v3)`
          : `for action '${action}' (the DestinationRule subset of the new version, e.g. v3)`,
      )
    : raw(names.canary) || undefined
  const pause = withDefault('pause', '60s', (v) => parseDuration('pause', v, { maxMs: MAX_PAUSE_MS }))
  const previewValue = raw('preview-value')
  if (mode?.needsPreviewValue && previewValue === '') {
    errors.push(
      `Input 'preview-value': required for action '${action}' (the header value that selects the preview, e.g. pr-123)`,
    )
  }
  if (previewValue !== '' && !/^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(previewValue)) {
    errors.push(`Input 'preview-value': '${previewValue}' must be printable ASCII without leading or trailing spaces`)
  }

  const inputs = {
    access,
    'istioctl-version': withDefault('istioctl-version', 'auto', parseIstioVersion),
    'istioctl-mirror': withDefault('istioctl-mirror', DEFAULT_MIRROR, (v) => parseHttpUrl('istioctl-mirror', v)),
    'istio-namespace': withDefault('istio-namespace', 'auto', (v) =>
      v === 'auto' ? v : parseK8sName('istio-namespace', v, 'label'),
    ),
    'istio-revision': withDefault('istio-revision', 'auto', (v) =>
      v === 'auto' ? v : parseK8sName('istio-revision', v, 'label'),
    ),
    'install-istio': withDefault('install-istio', 'false', (v) => parseBoolean('install-istio', v)),
    'istio-profile': withDefault('istio-profile', 'default', (v) =>
      oneOf('istio-profile', v, ['default', 'demo', 'minimal', 'empty', 'preview', 'ambient', 'remote']),
    ),
    analyze: withDefault('analyze', 'true', (v) => parseBoolean('analyze', v)),
    namespace: namespace === undefined ? undefined : attempt(() => parseK8sName('namespace', namespace, 'label')),
    'virtual-service':
      target?.kind === 'VirtualService' ? attempt(() => parseK8sName('virtual-service', target.name, 'subdomain')) : '',
    'http-route':
      target?.kind === 'HTTPRoute' ? attempt(() => parseK8sName('http-route', target.name, 'subdomain')) : '',
    'destination-rule': opt('destination-rule', (v) => parseK8sName('destination-rule', v, 'subdomain')),
    'stable-subset': withDefault(names.stable, 'auto', (v) =>
      v === 'auto' ? v : parseK8sName(names.stable, v, names.kind),
    ),
    'canary-subset': canary === undefined ? undefined : attempt(() => parseK8sName(names.canary, canary, names.kind)),
    mesh: withDefault('mesh', 'auto', (v) => oneOf('mesh', v, ['auto', 'istio', 'linkerd'] as const)),
    route: withDefault('route', '', parseRouteSelector),
    action,
    steps: withDefault('steps', '10,25,50,100', (v) => parseSteps(v, MAX_PAUSE_MS)),
    pause,
    'preview-header': withDefault('preview-header', 'x-canary-preview', (v) => {
      const name = parseHeaderName('preview-header', v)
      // Istio's validating webhook accepts match header names of these characters only (a name such as x.canary is
      // denied on write): refuse it here, before any change.
      if (!ISTIO_HEADER_NAME.test(name)) {
        throw new InputError(
          'preview-header',
          `'${v}' is not a header name Istio accepts in a route match: letters, digits, '-' and '_' only`,
        )
      }
      return name
    }),
    'preview-value': previewValue || undefined,
    'gateway-url': opt('gateway-url', (v) => parseHttpUrl('gateway-url', v)),
    'gateway-service': opt('gateway-service', (v) => parseNamespacedName('gateway-service', v)),
    'smoke-path': withDefault('smoke-path', '/productpage', (v) => {
      if (!v.startsWith('/')) throw new InputError('smoke-path', `'${v}' must start with '/', e.g. /productpage`)
      return v
    }),
    'smoke-requests': withDefault('smoke-requests', '200', (v) => parseInteger('smoke-requests', v, 1, 10_000)),
    'smoke-concurrency': withDefault('smoke-concurrency', '4', (v) => parseInteger('smoke-concurrency', v, 1, 256)),
    'smoke-timeout': withDefault('smoke-timeout', '5s', (v) => {
      const ms = parseDuration('smoke-timeout', v, { maxMs: 300_000 })
      if (ms <= 0) throw new InputError('smoke-timeout', `'${v}' must be longer than zero`)
      return ms
    }),
    'smoke-expect': opt('smoke-expect', (v) => parseRegex('smoke-expect', v)),
    'smoke-headers': attempt(() => parseHeaders('smoke-headers', read('smoke-headers'))),
    'success-threshold': withDefault('success-threshold', '0.9', (v) => parseRatio('success-threshold', v)),
    'max-latency': opt('max-latency', (v) => parseDuration('max-latency', v, { maxMs: 300_000 })),
    'version-pattern': opt('version-pattern', (v) => parseRegex('version-pattern', v, { captureGroup: true })),
    manifest: opt('manifest', (v) => {
      try {
        return resolveManifestPath(env['GITHUB_WORKSPACE'] ?? process.cwd(), v)
      } catch (err) {
        throw new InputError('manifest', (err as Error).message.replace(/^input 'manifest': /, ''))
      }
    }),
    'prometheus-url': opt('prometheus-url', (v) => parseHttpUrl('prometheus-url', v)),
    'kiali-url': opt('kiali-url', (v) => parseBaseUrl('kiali-url', v, 'https://kiali.example.com/kiali')),
    'prometheus-service': withDefault('prometheus-service', 'auto', (v) => {
      if (v === 'auto' || v === 'none') return v
      try {
        return parseServiceRef(v)
      } catch (err) {
        throw new InputError(
          'prometheus-service',
          `${(err as Error).message.replace(/^prometheus-service /, '')}, or auto, or none`,
        )
      }
    }),
    'prometheus-token': opt('prometheus-token', (v) => {
      core.setSecret(v)
      return v
    }),
    'prometheus-scope': opt('prometheus-scope', (v) => {
      if (!/^\S+\/\.default$/.test(v) || v === '/.default') {
        throw new InputError(
          'prometheus-scope',
          `'${v}' is not an Entra scope: the resource followed by /.default, ` +
            'e.g. https://prometheus.monitor.azure.com/.default',
        )
      }
      return v
    }),
    metrics: withDefault('metrics', 'auto', (v) => oneOf('metrics', v, ['auto', 'true', 'false'] as const)),
    'max-error-rate': opt('max-error-rate', (v) => parseRatio('max-error-rate', v)),
    'min-canary-requests': withDefault('min-canary-requests', '100', (v) =>
      parseInteger('min-canary-requests', v, 1, 10_000_000),
    ),
    'max-step-time': opt('max-step-time', (v) => {
      const ms = parseDuration('max-step-time', v, { maxMs: 24 * 3_600_000 })
      if (ms <= 0) throw new InputError('max-step-time', `'${v}' must be longer than zero`)
      return ms
    }),
    'analysis-alpha': withDefault('analysis-alpha', '0.01', (v) => {
      const alpha = parseRatio('analysis-alpha', v)
      if (alpha <= 0 || alpha >= 0.5)
        throw new InputError('analysis-alpha', `'${v}' must be above 0 and below 0.5 (e.g. 0.01)`)
      return alpha
    }),
    'lock-ttl': withDefault('lock-ttl', '2m', (v) => {
      const ms = parseDuration('lock-ttl', v, { maxMs: 3_600_000 })
      if (ms < 15_000) throw new InputError('lock-ttl', `'${v}' is shorter than the minimum of 15s`)
      return ms
    }),
  }
  if (inputs.steps && inputs['canary-subset'] && inputs['stable-subset'] === inputs['canary-subset']) {
    errors.push(`Input '${names.stable}': '${inputs['stable-subset']}' is also the ${names.canary}; they must differ`)
  }
  if (target?.kind === 'VirtualService' && inputs.mesh === 'linkerd') {
    errors.push("Input 'mesh': 'linkerd' has no VirtualService; with Linkerd set http-route (a Gateway API HTTPRoute)")
  }
  if (inputs['prometheus-scope'] !== undefined) {
    if (inputs['prometheus-url'] === undefined && raw('prometheus-url') === '') {
      errors.push("Input 'prometheus-scope': it applies to prometheus-url, which is not set")
    }
    if (inputs['prometheus-token'] !== undefined) {
      errors.push("Input 'prometheus-scope': set either prometheus-token or prometheus-scope, not both")
    }
  }
  if (errors.length > 0) throw new InvalidInputs(errors)
  // The target's name is kept in its own input only ('' marks the other one, dropped below).
  // Every field is defined here: each undefined (required) one pushed an error above.
  return Object.fromEntries(Object.entries(inputs).filter(([, v]) => v !== undefined && v !== '')) as unknown as Inputs
}

/** The version inputs of a routing API: subsets of a VirtualService, backend Services of an HTTPRoute. */
export function versionInputNames(kind: TargetKind): { stable: string; canary: string; kind: 'subdomain' | 'label' } {
  return kind === 'HTTPRoute'
    ? { stable: 'stable-backend', canary: 'canary-backend', kind: 'label' }
    : { stable: 'stable-subset', canary: 'canary-subset', kind: 'subdomain' }
}

/** The target resource the run shifts (SPEC 7: exactly one of `virtual-service` and `http-route`). */
export function targetOf(inputs: Inputs): TargetRef {
  const kind: TargetKind = inputs['http-route'] ? 'HTTPRoute' : 'VirtualService'
  const name = (kind === 'HTTPRoute' ? inputs['http-route'] : inputs['virtual-service']) as string
  return { kind, namespace: inputs.namespace, name, route: inputs.route }
}

/**
 * Exactly one of `virtual-service` and `http-route`, and none of the other API's inputs (a `canary-subset` with
 * `http-route` is a mistake to name, not to ignore). Problems go to `errors`.
 */
function readTarget(raw: (name: string) => string, errors: string[]): { kind: TargetKind; name: string } | undefined {
  const vs = raw('virtual-service')
  const hr = raw('http-route')
  if (vs !== '' && hr !== '') {
    errors.push(
      "Input 'http-route': set either 'virtual-service' (an Istio VirtualService) or 'http-route' " +
        '(a Gateway API HTTPRoute), not both',
    )
    return undefined
  }
  if (vs === '' && hr === '') {
    errors.push(
      "Input 'virtual-service': required unless 'http-route' is set (the VirtualService to shift, e.g. reviews; " +
        'or http-route: the Gateway API HTTPRoute)',
    )
    return undefined
  }
  const kind: TargetKind = hr !== '' ? 'HTTPRoute' : 'VirtualService'
  const given = kind === 'HTTPRoute' ? 'http-route' : 'virtual-service'
  const instead: Record<string, string> =
    kind === 'HTTPRoute'
      ? {
          'stable-subset': "use 'stable-backend'",
          'canary-subset': "use 'canary-backend', the new version's Service",
          'destination-rule': 'an HTTPRoute names backend Services, no DestinationRule',
        }
      : { 'stable-backend': "use 'stable-subset'", 'canary-backend': "use 'canary-subset'" }
  for (const [other, hint] of Object.entries(instead)) {
    const v = raw(other)
    // action.yml's default of the stable inputs ('auto') arrives with every run: not a choice the user made.
    if (v === '' || (v === 'auto' && other.startsWith('stable-'))) continue
    const belongs = given === 'http-route' ? 'virtual-service' : 'http-route'
    errors.push(`Input '${other}': applies to ${belongs}, not with ${given} (${hint})`)
  }
  return { kind, name: kind === 'HTTPRoute' ? hr : vs }
}

export function parseRouteSelector(raw: string): RouteSelector {
  const selector = raw.trim()
  if (selector === '') return { by: 'default' }
  if (/^\d+$/.test(selector)) return { by: 'index', index: Number(selector) }
  if (!/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(selector)) {
    throw new InputError(
      'route',
      `'${raw}' is not a route name or a 0-based index (of the VirtualService's http routes or the HTTPRoute's rules)`,
    )
  }
  return { by: 'name', name: selector }
}

type Check = <T>(fn: () => T) => T | undefined

/** Cluster access inputs; every problem goes through `check`, so all of them are reported together. */
function readAccess(raw: (n: string) => string, env: NodeJS.ProcessEnv, check: Check): ClusterAccess | undefined {
  const rg = raw('resource-group')
  const cluster = raw('cluster-name')
  const kubeconfig = raw('kubeconfig')
  if ((rg === '') !== (cluster === '')) {
    return check(() => {
      throw new InputError(
        rg === '' ? 'resource-group' : 'cluster-name',
        `'resource-group' and 'cluster-name' go together: set both for AKS login, or neither`,
      )
    })
  }
  if (rg !== '' && kubeconfig !== '') {
    return check(() => {
      throw new InputError('kubeconfig', `set either 'kubeconfig' or 'resource-group' + 'cluster-name', not both`)
    })
  }
  if (kubeconfig !== '') return { kind: 'kubeconfig', content: kubeconfig }
  if (rg === '') return { kind: 'runner' }
  const fromEnv = (name: string, envName: string, what: string, guid: boolean): string | undefined =>
    check(() => {
      const value = raw(name) || (env[envName] ?? '').trim()
      if (value === '') {
        throw new InputError(
          name,
          `required for AKS login (${what}); set the input or the ${envName} environment variable`,
        )
      }
      if (guid && !/^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/.test(value)) {
        throw new InputError(name, `'${value}' is not a GUID`)
      }
      return value
    })
  const fields = {
    resourceGroup: check(() =>
      azureName(
        'resource-group',
        rg,
        /^[-\w._()]{1,89}[-\w_()]$/u,
        'letters, digits, -, _, ., ( and ), at most 90 characters, not ending in .',
      ),
    ),
    clusterName: check(() =>
      azureName(
        'cluster-name',
        cluster,
        /^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/,
        'letters, digits, - and _, at most 63 characters',
      ),
    ),
    subscriptionId: fromEnv('subscription-id', 'AZURE_SUBSCRIPTION_ID', 'the Azure subscription', true),
    tenantId: fromEnv('tenant-id', 'AZURE_TENANT_ID', 'the Entra ID tenant', false),
    clientId: fromEnv('client-id', 'AZURE_CLIENT_ID', 'the app registration or managed identity client id', true),
    cloud: check(() => oneOf('azure-cloud', raw('azure-cloud') || 'AzureCloud', AZURE_CLOUD_NAMES)),
    admin: check(() => parseBoolean('admin', raw('admin') || 'false')),
  }
  const optional = {
    clientSecret: raw('client-secret') || undefined,
    audience: raw('audience') || undefined,
    authorityHost: raw('authority-host')
      ? check(() => parseHttpUrl('authority-host', raw('authority-host')))
      : undefined,
    armEndpoint: raw('arm-endpoint') ? check(() => parseHttpUrl('arm-endpoint', raw('arm-endpoint'))) : undefined,
  }
  if (Object.values(fields).some((v) => v === undefined)) return undefined
  const given = Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined))
  return { kind: 'aks', ...fields, ...given } as Extract<ClusterAccess, { kind: 'aks' }>
}
