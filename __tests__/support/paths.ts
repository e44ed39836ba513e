// Where the repository is, for tests and scripts at any depth under __tests__/ (compiled to build/__tests__/).
// Pure path arithmetic, no I/O: unit tests may import it (see unit/tiers.test.ts).
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository root: build/__tests__/support/paths.js is three levels below it. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')

/** Istio's BookInfo manifests the simulation is seeded from. */
export const ISTIO_SAMPLES = resolve(REPO_ROOT, '__tests__/fixtures/istio-samples')
