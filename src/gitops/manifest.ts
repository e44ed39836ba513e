// GitOps hand-back (SPEC section 9): after a run that ends `promoted` or `rolled-back`, the action
// rewrites the target route of the VirtualService or HTTPRoute in the user's manifest file to what the
// cluster now has, so that Argo CD or Flux does not put the old weights back, and a later step can
// commit the file (e.g. peter-evans/create-pull-request).
//
// How the caller (main step) uses it, when input `manifest` is set:
//   const path = resolveManifestPath(process.env.GITHUB_WORKSPACE, inputs.manifest) // before any change
//   ... run the rollout ...
//   if (result is 'promoted' or 'rolled-back') {
//     const { text, changed } = handBack(readFileSync(path, 'utf8'),
//       { kind: 'VirtualService', namespace, name, routeIndex, routeName }, liveTargetRoute.route)
//     if (changed) writeFileSync(path, text)
//     core.setOutput('manifest-changed', String(changed))
//   }
// where `routeIndex` counts the routes that are not istio-canary's previews (as input `route` does) and
// `routeName` is the live route's `name` when it has one (preferred: it survives reordering). The value
// given is what the cluster now has in that route: the `route` list of `spec.http[i]` for a
// VirtualService, the `backendRefs` of `spec.rules[i]` for an HTTPRoute.
//
// Both functions are pure apart from resolveManifestPath's realpath: handBack takes and returns text, so
// on any error the file is left as it was. Everything outside the replaced value is byte-identical
// (comments, key order, quoting, flow or block style, line endings, other documents). Inside it, the
// edit is minimal where it can be: changed scalars are rewritten in their own style, items and keys that
// went away are removed, every other token (and its comments) stays. Only when the new value adds keys
// or list items is the value re-emitted as a whole (in the file's flow or block style, indentation and
// line endings; comments inside that value are then lost). Every result is parsed again and checked
// against the intended data before it is returned.
import { realpathSync } from 'node:fs'
import { isAbsolute, relative, resolve, sep } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import {
  CST,
  Composer,
  type Document,
  Parser,
  type ParsedNode,
  isMap,
  isScalar,
  isSeq,
  parseAllDocuments,
  parse as parseYaml,
  stringify,
} from 'yaml'

export class ManifestError extends Error {
  constructor(message: string) {
    super(`input 'manifest': ${message}`)
    this.name = 'ManifestError'
  }
}

export interface HandBackTarget {
  kind: 'VirtualService' | 'HTTPRoute'
  namespace: string
  name: string
  /** 0-based index among the routes that are not istio-canary's previews (`istio-canary-preview-*`). */
  routeIndex: number
  /** The route's name, when it has one: matched in preference to the index. */
  routeName?: string
}

export interface HandBackResult {
  text: string
  changed: boolean
}

const PREVIEW_PREFIX = 'istio-canary-preview-'
const KINDS = {
  VirtualService: { group: 'networking.istio.io', routes: 'http', value: 'route' },
  HTTPRoute: { group: 'gateway.networking.k8s.io', routes: 'rules', value: 'backendRefs' },
} as const

/**
 * The absolute, symlink-resolved path of `input` inside `workspace`. Refuses a path outside it: `..`,
 * an absolute path elsewhere, or a symlink (of the file or of a directory on the way) leading out.
 */
export function resolveManifestPath(workspace: string, input: string): string {
  if (input.trim() === '')
    throw new ManifestError('is empty; give the path of the YAML file, relative to the workspace')
  if (workspace === '') throw new ManifestError('no workspace (GITHUB_WORKSPACE) to resolve it in')
  const ws = resolve(workspace)
  const path = resolve(ws, input)
  if (path === ws) throw new ManifestError(`'${input}' is the workspace itself; give the path of the YAML file`)
  if (!inside(ws, path)) throw new ManifestError(`'${input}' is outside the workspace ${ws}; give a path inside it`)
  let realWs: string
  let realPath: string
  try {
    realWs = realpathSync(ws)
  } catch (err) {
    throw new ManifestError(`the workspace ${ws} cannot be resolved: ${(err as Error).message}`)
  }
  try {
    realPath = realpathSync(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ManifestError(
      code === 'ENOENT'
        ? `'${input}' does not exist in the workspace (${path})`
        : `'${input}' cannot be resolved: ${(err as Error).message}`,
    )
  }
  if (!inside(realWs, realPath)) {
    throw new ManifestError(
      `'${input}' resolves through a symbolic link to ${realPath}, outside the workspace ${realWs}; ` +
        'give a path inside it',
    )
  }
  return realPath
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path)
  return rel !== '' && !isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`)
}

/**
 * Replaces the target route's destinations (VirtualService `spec.http[i].route`, HTTPRoute
 * `spec.rules[i].backendRefs`) of the one matching resource in `text` with `route`, keeping every other
 * byte. Returns the text unchanged with `changed: false` when the file already has that value.
 */
export function handBack(text: string, target: HandBackTarget, route: unknown): HandBackResult {
  const spec = KINDS[target.kind]
  const wanted = plain(route)
  if (!Array.isArray(wanted)) throw new ManifestError(`the ${spec.value} to write back is not a list`)

  const tokens = [...new Parser().parse(text)]
  const docs = [...new Composer({ keepSourceTokens: true }).compose(tokens)] as Document.Parsed[]
  const broken = docs.find((d) => d.errors.length > 0)
  if (broken) throw new ManifestError(`the file is not valid YAML: ${firstLine((broken.errors[0] as Error).message)}`)

  const describe = `${target.kind} ${target.name} (namespace ${target.namespace})`
  const found: string[] = []
  const matches: number[] = []
  docs.forEach((doc, position) => {
    if (!isMap(doc.contents)) return // comments only, `---` separators, scalars, lists: not a resource
    const kind = doc.get('kind')
    const apiVersion = doc.get('apiVersion')
    const name = doc.getIn(['metadata', 'name'])
    const namespace = doc.getIn(['metadata', 'namespace'])
    if (typeof kind === 'string' && typeof name === 'string') {
      found.push(`${kind}/${name}${typeof namespace === 'string' ? ` (namespace ${namespace})` : ''}`)
    }
    if (kind !== target.kind || name !== target.name) return
    if (typeof apiVersion === 'string' && !apiVersion.startsWith(`${spec.group}/`)) return
    if (namespace !== undefined && namespace !== null && namespace !== target.namespace) return
    matches.push(position)
  })
  if (matches.length === 0) {
    const resources = found.length > 0 ? found.join(', ') : 'no Kubernetes resources'
    throw new ManifestError(
      `no ${describe} in the file (it has: ${resources}); point 'manifest' at the file it is applied from`,
    )
  }
  if (matches.length > 1)
    throw new ManifestError(`${matches.length} documents in the file match ${describe}; keep one per file`)
  const docIndex = matches[0] as number
  const doc = docs[docIndex] as Document.Parsed

  const routes = doc.getIn(['spec', spec.routes], true)
  if (!isSeq(routes)) throw new ManifestError(`${describe} has no spec.${spec.routes} list`)
  const index = routeIndexOf(routes.items, target, `${describe} spec.${spec.routes}`)
  const routeNode = routes.items[index]
  if (!isMap(routeNode)) throw new ManifestError(`${describe} spec.${spec.routes}[${index}] is not a mapping`)
  const valueNode = routeNode.get(spec.value, true) as ParsedNode | undefined
  if (!valueNode)
    throw new ManifestError(`${describe} spec.${spec.routes}[${index}] has no '${spec.value}' to hand back`)
  if (isDeepStrictEqual(valueNode.toJS(doc), wanted)) return { text, changed: false }

  const before = docs.map((d) => d.toJS())
  const expected = structuredClone(before)
  ;((expected[docIndex] as Json).spec[spec.routes][index] as Json)[spec.value] = wanted
  const eol = text.includes('\r\n') ? '\r\n' : '\n'
  const check = (out: string): boolean => same(out, expected, text)

  // 1. minimal edit of the CST: changed scalars, removed keys and items; every other token stays
  if (patch(valueNode, wanted, doc)) {
    const out = tokens.map((t) => CST.stringify(t)).join('')
    if (check(out)) return { text: out, changed: true }
  }
  // 2. the value re-emitted as a whole, in the file's style; the rest of the text spliced around it
  const out = reemit(text, valueNode, wanted, eol)
  if (out !== undefined && check(out)) return { text: out, changed: true }
  throw new ManifestError(
    `cannot rewrite ${describe} spec.${spec.routes}[${index}].${spec.value} in place; the file was left unchanged`,
  )
}

// biome-ignore lint/suspicious/noExplicitAny: a parsed manifest document of any shape, walked by the spec's paths
type Json = Record<string, any>

function plain(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value))
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s
}

function routeIndexOf(items: unknown[], target: HandBackTarget, where: string): number {
  const nameOf = (item: unknown): unknown => (isMap(item) ? item.get('name') : undefined)
  if (target.routeName !== undefined && target.routeName !== '') {
    const byName = items.findIndex((item) => nameOf(item) === target.routeName)
    if (byName >= 0) return byName
    const names = items.map(nameOf).filter((n): n is string => typeof n === 'string')
    const named = names.length > 0 ? names.join(', ') : 'none'
    throw new ManifestError(`${where} has no route named '${target.routeName}' (named routes: ${named})`)
  }
  const own = items
    .map((item, position) => ({ position, name: nameOf(item) }))
    .filter(({ name }) => !(typeof name === 'string' && name.startsWith(PREVIEW_PREFIX)))
  const hit = own[target.routeIndex]
  if (!Number.isInteger(target.routeIndex) || target.routeIndex < 0 || !hit) {
    throw new ManifestError(
      `${where} has ${own.length} route(s) besides istio-canary's previews; index ${target.routeIndex} is out of range`,
    )
  }
  return hit.position
}

/** The file parses to `expected` (every document), without new lone line feeds in a CRLF file. */
function same(out: string, expected: unknown[], original: string): boolean {
  const docs = parseAllDocuments(out)
  if (!Array.isArray(docs) || docs.some((d) => d.errors.length > 0) || docs.length !== expected.length) return false
  if (!docs.every((d, i) => isDeepStrictEqual(d.toJS(), expected[i]))) return false
  const loneLf = (s: string): number => s.replace(/\r\n/g, '').split('\n').length - 1
  return !original.includes('\r\n') || loneLf(out) <= loneLf(original)
}

// ---------------------------------------------------------------------------------------------------
// 1. CST patch

type Item = CST.CollectionItem
type Token = CST.Token

/** Patches `node`'s source tokens to represent `value`; false when that needs more than edits/removals. */
function patch(node: ParsedNode, value: unknown, doc: Document.Parsed, inFlow = false): boolean {
  if (isDeepStrictEqual(node.toJS(doc), value)) return true
  const token = node.srcToken
  if (!token) return false
  if (value === null || typeof value !== 'object') return isScalar(node) ? setScalar(token, value, inFlow) : false
  const inFlowCollection = token.type === 'flow-collection'
  const flow = inFlow || inFlowCollection
  if (Array.isArray(value)) {
    if (!isSeq(node) || !(token.type === 'block-seq' || (inFlowCollection && token.start.source === '['))) return false
    const items = (token as CST.BlockSequence | CST.FlowCollection).items
    if (items.length !== node.items.length || value.length > items.length || value.length === 0) return false
    const old = node.items.map((n) => (n as ParsedNode).toJS(doc) as unknown)
    const pairs = pairItems(old, value)
    for (const [from, to] of pairs) if (!patch(node.items[from] as ParsedNode, value[to], doc, flow)) return false
    const keep = new Set(pairs.map(([from]) => from))
    for (let position = items.length - 1; position >= 0; position--) {
      if (!keep.has(position)) removeItem(token, position)
    }
    return true
  }
  if (!isMap(node) || !(token.type === 'block-map' || (inFlowCollection && token.start.source === '{'))) return false
  const items = (token as CST.BlockMap | CST.FlowCollection).items
  if (items.length !== node.items.length) return false
  const obj = value as Record<string, unknown>
  const keys = node.items.map((p) => (isScalar(p.key) ? p.key.value : undefined))
  if (Object.keys(obj).some((k) => !keys.includes(k))) return false // an added key: re-emit
  const remove: number[] = []
  for (const [position, pair] of node.items.entries()) {
    const key = keys[position]
    if (typeof key !== 'string') return false
    if (!(key in obj)) {
      remove.push(position)
      continue
    }
    if (!pair.value || !patch(pair.value as ParsedNode, obj[key], doc, flow)) return false
  }
  if (remove.length === node.items.length) return false
  for (const position of remove.reverse()) removeItem(token, position)
  return true
}

/**
 * Which old item becomes which new one. Same count: by position. Fewer: the old items the new ones are,
 * up to their weights (a promoted canary keeps its own item and comments), else the first ones.
 */
function pairItems(old: unknown[], value: unknown[]): Array<[number, number]> {
  if (old.length > value.length) {
    const identity = (x: unknown): string =>
      JSON.stringify(canonical(x && typeof x === 'object' && !Array.isArray(x) ? { ...x, weight: undefined } : x))
    const pairs: Array<[number, number]> = []
    let from = 0
    for (const [to, item] of value.entries()) {
      const match = old.findIndex((x, i) => i >= from && identity(x) === identity(item))
      if (match < 0) break
      pairs.push([match, to])
      from = match + 1
    }
    if (pairs.length === value.length) return pairs
  }
  return value.map((_, i) => [i, i])
}

function canonical(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(canonical)
  if (x && typeof x === 'object') {
    return Object.fromEntries(
      Object.entries(x)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => [k, canonical(v)]),
    )
  }
  return x
}

function setScalar(token: Token, value: unknown, inFlow: boolean): boolean {
  if (!(token.type === 'scalar' || token.type === 'single-quoted-scalar' || token.type === 'double-quoted-scalar'))
    return false
  if (typeof value === 'string') {
    // A quoted scalar keeps its quotes; a plain one stays plain when the new value may be.
    let type: 'PLAIN' | 'QUOTE_SINGLE' | 'QUOTE_DOUBLE' = 'QUOTE_DOUBLE'
    if (token.type === 'single-quoted-scalar') type = 'QUOTE_SINGLE'
    else if (token.type === 'scalar' && plainSafe(value, inFlow)) type = 'PLAIN'
    CST.setScalarValue(token, value, { type, inFlow })
  } else {
    CST.setScalarValue(token, value === null ? 'null' : String(value), { type: 'PLAIN', inFlow })
  }
  return true
}

function plainSafe(text: string, inFlow: boolean): boolean {
  if (text === '' || text.trim() !== text || /[\n\r\t]|: | #|^[-?:,[\]{}#&*!|>'"%@`]/.test(text)) return false
  if (inFlow && /[,[\]{}]/.test(text)) return false
  try {
    return parseYaml(text) === text
  } catch {
    return false
  }
}

function removeItem(token: Token, position: number): void {
  const items = (token as { items: Item[] }).items
  const next = items[position + 1]
  if (position === 0 && next) {
    if (token.type === 'flow-collection') {
      const comma = next.start.findIndex((t) => t.type === 'comma')
      if (comma >= 0) {
        let end = comma + 1
        while (next.start[end]?.type === 'space') end++
        next.start.splice(comma, end - comma)
      }
    } else {
      // the indentation before the first item belongs to the parent; the next item's own goes
      while (next.start[0]?.type === 'space') next.start.shift()
    }
  }
  items.splice(position, 1)
}

// ---------------------------------------------------------------------------------------------------
// 2. Re-emit the whole value

function reemit(text: string, node: ParsedNode, value: unknown, eol: string): string | undefined {
  const token = node.srcToken
  const [start, valueEnd] = node.range
  if (!token) return undefined
  let body: string
  if (token.type === 'flow-collection') {
    body = stringify(value, { collectionStyle: 'flow', flowCollectionPadding: false, lineWidth: 0 }).trimEnd()
  } else if (token.type === 'block-seq' || token.type === 'block-map') {
    const column = start - (text.lastIndexOf('\n', start - 1) + 1)
    const lines = stringify(value, { collectionStyle: 'block', lineWidth: 0, indentSeq: indentsSeqs(text) })
      .trimEnd()
      .split('\n')
    body = lines.map((l, i) => (i === 0 ? l : ' '.repeat(column) + l)).join('\n')
    const original = text.slice(start, valueEnd)
    if (original.endsWith('\n')) body += '\n'
  } else {
    return undefined
  }
  return text.slice(0, start) + body.replace(/\r?\n/g, eol) + text.slice(valueEnd)
}

/** Whether the file indents a block sequence under its key (`key:\n  - a`) or not (`key:\n- a`). */
function indentsSeqs(text: string): boolean {
  const match = /^( *)[^\s#-][^\n]*:[ \t]*\r?\n( *)- /m.exec(text)
  return match ? (match[2] as string).length > (match[1] as string).length : true
}
