// Cluster access for the run: AKS login, kubeconfig input, or the runner's KUBECONFIG. A kubeconfig the
// action writes is 0600 in a private directory under RUNNER_TEMP (removed by the post step); every secret
// in it is masked.
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KubeConfig } from '@kubernetes/client-node'
import type { TokenCredential } from '@azure/identity'
import type { AzureCloudName } from '../azure/clouds.js'
import { loginToAks } from '../azure/login.js'
import type { Sleep } from '../retry.js'
import type { ClusterAccess } from './access.js'
import { Kube } from './client.js'

export interface SessionDeps {
  tempDir: string | undefined
  setSecret: (v: string) => void
  log: (msg: string) => void
  getIdToken: (audience: string) => Promise<string>
  sleep?: Sleep
}

export interface Session {
  kube: Kube
  /** Kubeconfig file for istioctl (undefined: istioctl's own default). */
  kubeconfigPath: string | undefined
  /** Directory this run created (removed by the post step). */
  createdDir: string | undefined
  describe: string
  /**
   * AKS login only: the Entra credential the cluster was reached with (tokens masked as they are issued; the
   * secret itself is never exposed) and its cloud, for Azure resources the run also reads (an Azure Monitor
   * workspace). Undefined for a kubeconfig: there is no Azure identity then.
   */
  azure?: AzureIdentity
}

export interface AzureIdentity {
  credential: TokenCredential
  cloud: AzureCloudName
}

export class AccessError extends Error {
  override name = 'AccessError'
}

function maskKubeConfig(kubeConfig: KubeConfig, setSecret: (v: string) => void): void {
  for (const user of kubeConfig.users) {
    for (const secret of [user.token, user.keyData, user.password]) if (secret) setSecret(secret)
  }
}

async function writePrivate(deps: SessionDeps, text: string): Promise<{ dir: string; path: string }> {
  const dir = await mkdtemp(join(deps.tempDir ?? tmpdir(), 'istio-canary-'))
  await chmod(dir, 0o700)
  const path = join(dir, 'kubeconfig')
  await writeFile(path, text, { mode: 0o600, flag: 'wx' })
  return { dir, path }
}

export async function openSession(access: ClusterAccess, deps: SessionDeps): Promise<Session> {
  const kubeConfig = new KubeConfig()
  if (access.kind === 'runner') {
    try {
      kubeConfig.loadFromDefault()
    } catch (err) {
      throw new AccessError(
        `cannot load the runner's kubeconfig (KUBECONFIG or ~/.kube/config): ${(err as Error).message}`,
      )
    }
    if (!kubeConfig.getCurrentCluster()) {
      throw new AccessError(
        "no cluster to talk to: set 'resource-group' and 'cluster-name' for AKS login, or 'kubeconfig', " +
          'or set KUBECONFIG in an earlier step',
      )
    }
    maskKubeConfig(kubeConfig, deps.setSecret)
    // istioctl reads KUBECONFIG (every file of it, merged) or ~/.kube/config itself, as kubectl does.
    return {
      kube: new Kube(kubeConfig, { log: deps.log, ...(deps.sleep ? { sleep: deps.sleep } : {}) }),
      kubeconfigPath: undefined,
      createdDir: undefined,
      describe: `runner kubeconfig, context ${kubeConfig.getCurrentContext()}`,
    }
  }
  if (access.kind === 'kubeconfig') {
    deps.setSecret(access.content)
    try {
      kubeConfig.loadFromString(access.content)
    } catch (err) {
      throw new AccessError(`Input 'kubeconfig': not a valid kubeconfig (${(err as Error).message.split('\n')[0]})`)
    }
    if (!kubeConfig.getCurrentCluster()) {
      throw new AccessError(`Input 'kubeconfig': it has no current context with a cluster`)
    }
    maskKubeConfig(kubeConfig, deps.setSecret)
    const { dir, path } = await writePrivate(deps, access.content)
    return {
      kube: new Kube(kubeConfig, { log: deps.log, ...(deps.sleep ? { sleep: deps.sleep } : {}) }),
      kubeconfigPath: path,
      createdDir: dir,
      describe: `kubeconfig input, context ${kubeConfig.getCurrentContext()}`,
    }
  }
  const { kind: _aks, ...cluster } = access
  const login = await loginToAks({
    ...cluster,
    getIdToken: deps.getIdToken,
    setSecret: deps.setSecret,
    log: deps.log,
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
  })
  kubeConfig.loadFromString(login.kubeconfig)
  maskKubeConfig(kubeConfig, deps.setSecret)
  const { dir, path } = await writePrivate(deps, login.kubeconfig)
  let beforeRequest: ((config: KubeConfig) => Promise<void>) | undefined
  const aksToken = login.aksToken
  if (aksToken) {
    // Entra-integrated cluster: the bearer token is short-lived; the credential caches it and renews it near
    // expiry. Keep the client and the file istioctl reads in step with it.
    let current = kubeConfig.getCurrentUser()?.token
    beforeRequest = async (config) => {
      const { token } = await aksToken()
      if (token === current) return
      deps.setSecret(token)
      current = token
      const name = config.getCurrentUser()?.name
      config.users = config.users.map((user) => (user.name === name ? { ...user, token } : user))
      await writeFile(path, config.exportConfig(), { mode: 0o600 })
      deps.log('Renewed the AKS bearer token')
    }
  }
  const kube = new Kube(kubeConfig, {
    log: deps.log,
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
    ...(beforeRequest ? { beforeRequest } : {}),
  })
  const credential = `${access.admin ? 'admin' : 'user'} credential${login.entra ? ', Entra ID bearer token' : ''}`
  return {
    kube,
    kubeconfigPath: path,
    createdDir: dir,
    describe: `AKS ${access.resourceGroup}/${access.clusterName} (${credential})`,
    azure: { credential: login.credential, cloud: access.cloud },
  }
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true })
}
