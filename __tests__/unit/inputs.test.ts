import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidInputs, getInputs, targetOf } from '../../src/inputs.js'
import { parseDuration, parseHeaders, parseSteps } from '../../src/parse.js'

const base = { namespace: 'bookinfo', 'virtual-service': 'reviews', 'canary-subset': 'v3' }
const read =
  (m: Record<string, string>) =>
  (n: string): string =>
    m[n] ?? ''
const problems = (m: Record<string, string>, env: NodeJS.ProcessEnv = {}): string[] => {
  try {
    getInputs(read(m), env)
  } catch (err) {
    assert.ok(err instanceof InvalidInputs, String(err))
    return err.problems
  }
  assert.fail('expected invalid inputs')
}

describe('parseDuration', () => {
  it('accepts the documented forms', () => {
    assert.equal(parseDuration('pause', '90'), 90_000)
    assert.equal(parseDuration('pause', '45s'), 45_000)
    assert.equal(parseDuration('pause', '2m'), 120_000)
    assert.equal(parseDuration('pause', '1m30s'), 90_000)
    assert.equal(parseDuration('pause', '1h'), 3_600_000)
    assert.equal(parseDuration('max-latency', '800ms'), 800)
    assert.equal(parseDuration('pause', '0'), 0)
  })
  it('rejects the rest, naming the input', () => {
    for (const bad of ['5x', '', 'm', '1m1m', '-1s', '1.5.2s', '10 s']) {
      assert.throws(
        () => parseDuration('pause', bad),
        /^InputError: Input 'pause': .* is not a duration like 90 \(seconds\), 45s, 2m, 1m30s, 1h or 800ms|repeats a unit/,
      )
    }
  })
})

describe('parseSteps', () => {
  it('parses weights and per-step pauses', () => {
    assert.deepEqual(parseSteps('10,25,50,100', 1e9), [{ weight: 10 }, { weight: 25 }, { weight: 50 }, { weight: 100 }])
    assert.deepEqual(parseSteps('10:2m, 50:5m,100', 1e9), [
      { weight: 10, pauseMs: 120_000 },
      { weight: 50, pauseMs: 300_000 },
      { weight: 100 },
    ])
    assert.deepEqual(parseSteps('50', 1e9), [{ weight: 50 }])
  })
  it('rejects 10,5 / abc / 0 / 101 / empty items / bad pauses', () => {
    assert.throws(() => parseSteps('10,5', 1e9), /Input 'steps': weights must be strictly increasing, but 5 follows 10/)
    assert.throws(() => parseSteps('10,10', 1e9), /strictly increasing/)
    assert.throws(() => parseSteps('abc', 1e9), /Input 'steps': 'abc' is not a weight/)
    assert.throws(() => parseSteps('0', 1e9), /Input 'steps': weight 0 is outside 1\.\.100/)
    assert.throws(() => parseSteps('101', 1e9), /weight 101 is outside 1\.\.100/)
    assert.throws(() => parseSteps('10,,50', 1e9), /Input 'steps'/)
    assert.throws(() => parseSteps('10:5x', 1e9), /Input 'steps': '5x' is not a duration/)
    assert.throws(() => parseSteps('12.5', 1e9), /not a weight/)
  })
})

describe('parseHeaders', () => {
  it('reads Name: value lines', () => {
    assert.deepEqual(parseHeaders('smoke-headers', 'Host: bookinfo.example.com\n\nX-Test:  a:b \n'), {
      host: 'bookinfo.example.com',
      'x-test': 'a:b',
    })
    assert.throws(() => parseHeaders('smoke-headers', 'no colon here'), /Input 'smoke-headers'/)
    assert.throws(
      () => parseHeaders('smoke-headers', 'X-Token: a\u0000b'),
      /Input 'smoke-headers': the value of header 'X-Token' has characters HTTP does not allow/,
    )
  })
})

describe('getInputs', () => {
  it('applies the SPEC defaults', () => {
    const i = getInputs(read(base), {})
    assert.equal(i.action, 'rollout')
    assert.deepEqual(
      i.steps.map((s) => s.weight),
      [10, 25, 50, 100],
    )
    assert.equal(i.pause, 60_000)
    assert.equal(i['smoke-path'], '/productpage')
    assert.equal(i['smoke-requests'], 200) // SPEC 6 rule 4: the calibrated default (README, how a step is judged)
    assert.equal(i['smoke-concurrency'], 4)
    assert.equal(i['smoke-timeout'], 5000)
    assert.equal(i['success-threshold'], 0.9)
    assert.equal(i['preview-header'], 'x-canary-preview')
    assert.equal(i['istioctl-version'], 'auto')
    assert.equal(i['istio-namespace'], 'auto')
    assert.equal(i.analyze, true)
    assert.equal(i['install-istio'], false)
    assert.deepEqual(i.route, { by: 'default' })
    assert.deepEqual(i.access, { kind: 'runner' })
  })
  it('reports every bad input at once, each named with what it accepts', () => {
    const p = problems({
      ...base,
      'canary-subset': '',
      steps: '10,5',
      pause: '5x',
      'smoke-requests': '0',
      'success-threshold': '2',
      action: 'deploy',
    })
    assert.ok(
      p.some((m) =>
        m.startsWith(
          "Input 'action': 'deploy' is not accepted; expected one of rollout, promote, rollback, status, preview, preview-cleanup",
        ),
      ),
      p.join('\n'),
    )
    assert.ok(p.some((m) => m.startsWith("Input 'steps'")))
    assert.ok(p.some((m) => m.startsWith("Input 'pause'")))
    assert.ok(p.some((m) => m.startsWith("Input 'smoke-requests': '0' is not an integer in 1..10000")))
    assert.ok(p.some((m) => m.startsWith("Input 'success-threshold'")))
  })
  it('requires canary-subset for rollout and preview, preview-value for preview modes', () => {
    assert.match(
      problems({ ...base, 'canary-subset': '' }).join('\n'),
      /Input 'canary-subset': required for action 'rollout'/,
    )
    assert.match(
      problems({ ...base, action: 'preview' }).join('\n'),
      /Input 'preview-value': required for action 'preview'/,
    )
    assert.doesNotThrow(() => getInputs(read({ ...base, 'canary-subset': '', action: 'rollback' }), {}))
  })
  it('SPEC 7: exactly one of virtual-service and http-route; each with its own version inputs, the other refused', () => {
    const hr = {
      ...base,
      'virtual-service': '',
      'http-route': 'reviews',
      'canary-subset': '',
      'canary-backend': 'reviews-v3',
    }
    const i = getInputs(read(hr), {})
    assert.deepEqual(targetOf(i), {
      kind: 'HTTPRoute',
      namespace: 'bookinfo',
      name: 'reviews',
      route: { by: 'default' },
    })
    assert.equal(i['canary-subset'], 'reviews-v3', 'the version the engine moves to: the backend Service')
    assert.equal(i['stable-subset'], 'auto')
    assert.equal(i.mesh, 'auto')
    assert.equal(i['virtual-service'], undefined)
    assert.deepEqual(targetOf(getInputs(read(base), {})), {
      kind: 'VirtualService',
      namespace: 'bookinfo',
      name: 'reviews',
      route: { by: 'default' },
    })
    assert.match(
      problems({ ...hr, 'virtual-service': 'reviews' }).join('\n'),
      /Input 'http-route': set either 'virtual-service' .* not both/,
    )
    assert.match(
      problems({ ...base, 'virtual-service': '' }).join('\n'),
      /Input 'virtual-service': required unless 'http-route' is set/,
    )
    assert.match(
      problems({ ...hr, 'canary-subset': 'v3' }).join('\n'),
      /Input 'canary-subset': applies to virtual-service, not with http-route \(use 'canary-backend'/,
    )
    assert.match(
      problems({ ...hr, 'stable-subset': 'v1' }).join('\n'),
      /Input 'stable-subset': applies to virtual-service/,
    )
    assert.match(
      problems({ ...hr, 'destination-rule': 'reviews' }).join('\n'),
      /Input 'destination-rule': applies to virtual-service/,
    )
    assert.match(
      problems({ ...base, 'canary-backend': 'reviews-v3' }).join('\n'),
      /Input 'canary-backend': applies to http-route/,
    )
    assert.match(
      problems({ ...hr, 'canary-backend': '' }).join('\n'),
      /Input 'canary-backend': required for action 'rollout' with http-route \(the new version's Service/,
    )
    assert.match(
      problems({ ...hr, 'canary-backend': 'Reviews_v3' }).join('\n'),
      /Input 'canary-backend': 'Reviews_v3' is not a valid Kubernetes name/,
    )
    assert.match(
      problems({ ...hr, 'stable-backend': 'reviews-v3' }).join('\n'),
      /Input 'stable-backend': 'reviews-v3' is also the canary-backend/,
    )
    assert.match(
      problems({ ...hr, mesh: 'osm' }).join('\n'),
      /Input 'mesh': 'osm' is not accepted; expected one of auto, istio, linkerd/,
    )
    assert.match(problems({ ...base, mesh: 'linkerd' }).join('\n'), /Input 'mesh': 'linkerd' has no VirtualService/)
    assert.equal(getInputs(read({ ...hr, mesh: 'linkerd' }), {}).mesh, 'linkerd')
    // The action.yml default of stable-subset ('auto') arrives with every http-route run: not a conflict.
    assert.doesNotThrow(() => getInputs(read({ ...hr, 'stable-subset': 'auto' }), {}))
  })
  it('AKS login: ids from inputs or env, GUIDs checked, rg/cluster together, not with kubeconfig', () => {
    const env = {
      AZURE_SUBSCRIPTION_ID: '11111111-1111-1111-1111-111111111111',
      AZURE_TENANT_ID: 'contoso.onmicrosoft.com',
      AZURE_CLIENT_ID: '22222222-2222-2222-2222-222222222222',
    }
    const i = getInputs(read({ ...base, 'resource-group': 'rg', 'cluster-name': 'aks1' }), env)
    assert.equal(i.access.kind, 'aks')
    assert.match(
      problems({ ...base, 'resource-group': 'rg' }).join('\n'),
      /'resource-group' and 'cluster-name' go together/,
    )
    assert.match(
      problems({ ...base, 'resource-group': 'rg', 'cluster-name': 'aks1' }).join('\n'),
      /Input 'subscription-id': required for AKS login .* AZURE_SUBSCRIPTION_ID/,
    )
    assert.match(
      problems({ ...base, 'resource-group': 'rg', 'cluster-name': 'aks1', 'client-id': 'nope' }, env).join('\n'),
      /Input 'client-id': 'nope' is not a GUID/,
    )
    assert.match(
      problems({ ...base, 'resource-group': 'rg', 'cluster-name': 'aks1', kubeconfig: 'x' }, env).join('\n'),
      /either 'kubeconfig' or 'resource-group'/,
    )
    assert.match(
      problems({ ...base, 'resource-group': 'rg', 'cluster-name': 'aks1', 'azure-cloud': 'Mars' }, env).join('\n'),
      /Input 'azure-cloud': 'Mars' is not accepted/,
    )
  })
  it('reports every cluster access problem at once', () => {
    const p = problems(
      {
        ...base,
        'resource-group': 'rg',
        'cluster-name': 'aks1',
        'subscription-id': 'x',
        'client-id': 'y',
        admin: 'maybe',
        'authority-host': 'nope',
      },
      { AZURE_TENANT_ID: 't' },
    )
    for (const input of ['subscription-id', 'client-id', 'admin', 'authority-host'])
      assert.ok(
        p.some((m) => m.startsWith(`Input '${input}'`)),
        `${input}: ${p.join('\n')}`,
      )
  })

  it('validates regexes, urls and names', () => {
    assert.match(
      problems({ ...base, 'version-pattern': 'reviews-v[0-9]+' }).join('\n'),
      /Input 'version-pattern': .* needs one capture group/,
    )
    assert.match(
      problems({ ...base, 'smoke-expect': '(' }).join('\n'),
      /Input 'smoke-expect': '\(' is not a valid regular expression/,
    )
    assert.match(problems({ ...base, 'gateway-url': 'ftp://x' }).join('\n'), /Input 'gateway-url': .* must be an http/)
    assert.match(
      problems({ ...base, namespace: 'Book_Info' }).join('\n'),
      /Input 'namespace': 'Book_Info' is not a valid Kubernetes name/,
    )
    assert.match(
      problems({ ...base, 'gateway-service': 'istio-ingressgateway' }).join('\n'),
      /Input 'gateway-service': .* is not namespace\/name/,
    )
    assert.match(
      problems({ ...base, 'istioctl-version': '1.24' }).join('\n'),
      /Input 'istioctl-version': '1.24' is not 'auto' or an exact version/,
    )
    assert.match(problems({ ...base, 'stable-subset': 'v3' }).join('\n'), /'v3' is also the canary-subset/)
  })
})
