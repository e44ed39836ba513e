// Which failed istioctl runs are worth another try (src/istio/istioctl.ts isTransientIstioctlFailure).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { isTransientIstioctlFailure } from '../../src/istio/istioctl.js'

const failed = (stderr: string, exitCode = 1) => ({ exitCode, stdout: '', stderr })

describe('isTransientIstioctlFailure', () => {
  for (const stderr of [
    'Error: Internal error occurred: etcdserver: request timed out\n',
    'Error: the server is currently unable to handle the request\n',
    'Error: the server was unable to return a response in the time allotted, but may still be processing the request\n',
    'Error: Too many requests, please try again later.\n',
    'Error: Get "https://10.0.0.1:443/api/v1/secrets": read tcp 10.1.0.4:51234->10.0.0.1:443: read: connection reset by peer\n',
    'Error: Get "https://10.0.0.1:443/api/v1/namespaces/bookinfo": EOF\n',
    'Error: Get "https://aks.hcp.westeurope.azmk8s.io/version": net/http: TLS handshake timeout\n',
    'Error: an error on the server ("upstream connect error") has prevented the request from succeeding\n',
  ]) {
    it(`transient: ${stderr.trim().slice(0, 70)}`, () => assert.equal(isTransientIstioctlFailure(failed(stderr)), true))
  }
  for (const [stderr, code] of [
    ["Error: unknown shorthand flag: 'r' in -r\n", 64],
    ['Error: Internal error occurred: etcdserver: request timed out\n', 64],
    ['Error: Analyzers found issues when analyzing namespace: bookinfo.\n', 79],
    ['Error: secrets is forbidden: User "ci" cannot list resource "secrets" in API group "" at the cluster scope\n', 1],
    ['Error: the server has asked for the client to provide credentials\n', 1],
    ['Error: namespaces "bookinfo" not found\n', 1],
  ] as const) {
    it(`not transient (exit ${code}): ${stderr.trim().slice(0, 60)}`, () =>
      assert.equal(isTransientIstioctlFailure(failed(stderr, code)), false))
  }
  it('a run that succeeded is no failure', () => assert.equal(isTransientIstioctlFailure(failed('', 0)), false))
})
