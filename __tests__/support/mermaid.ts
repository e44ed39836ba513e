// Mermaid's own parser (npm `mermaid`), run in Node: it needs a DOM for its sanitizer (DOMPurify), which jsdom gives.
// mermaid.parse() throws on a chart it cannot parse, as GitHub's renderer would fail to draw it.
import { JSDOM } from 'jsdom'

type Mermaid = typeof import('mermaid').default

let loaded: Promise<Mermaid> | undefined

function load(): Promise<Mermaid> {
  loaded ??= (async () => {
    const dom = new JSDOM('<!doctype html><html><body></body></html>', { pretendToBeVisual: true })
    const g = globalThis as Record<string, unknown>
    g['window'] ??= dom.window
    g['document'] ??= dom.window.document
    g['DOMParser'] ??= dom.window.DOMParser
    const mermaid = (await import('mermaid')).default
    mermaid.initialize({ startOnLoad: false })
    return mermaid
  })()
  return loaded
}

/** The body of every ```mermaid fenced block of a markdown text, in order. */
export function mermaidBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```mermaid\r?\n([\s\S]*?)\r?\n```$/gm)].map((m) => m[1] as string)
}

/** Parses one chart with mermaid's parser: its diagram type; throws (the parser's error) when it is not valid. */
export async function parseMermaid(chart: string): Promise<string> {
  const mermaid = await load()
  const result = await mermaid.parse(chart)
  if (!result) throw new Error('mermaid.parse returned nothing')
  return result.diagramType
}

/** Parses every chart of a markdown text; returns their diagram types. */
export async function parseAllMermaid(markdown: string): Promise<string[]> {
  const types: string[] = []
  for (const [i, chart] of mermaidBlocks(markdown).entries()) {
    try {
      types.push(await parseMermaid(chart))
    } catch (err) {
      throw new Error(`mermaid chart ${i + 1} does not parse: ${(err as Error).message}\n${chart}`)
    }
  }
  return types
}
