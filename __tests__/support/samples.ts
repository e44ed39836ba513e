// BookInfo's Gateway API samples (the fixtures), read as the tests need them.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadAll } from 'js-yaml'
import type { GatewayHttpRoute } from '../../src/k8s/resources.js'
import { ISTIO_SAMPLES } from './paths.js'

/** The HTTPRoute of a file of BookInfo's gateway-api samples, in `namespace`. */
export function httpRouteSample(file: string, namespace = 'bookinfo'): GatewayHttpRoute {
  const docs = loadAll(readFileSync(join(ISTIO_SAMPLES, 'gateway-api', file), 'utf8')) as GatewayHttpRoute[]
  const route = docs.find((d) => d?.kind === 'HTTPRoute') as GatewayHttpRoute
  return { ...route, metadata: { ...route.metadata, namespace } }
}
