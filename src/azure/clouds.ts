// Endpoints of the Azure clouds the action supports.

export type AzureCloudName = 'AzureCloud' | 'AzureUSGovernment' | 'AzureChinaCloud'

export interface AzureCloud {
  name: AzureCloudName
  /** Entra ID authority host (the authority is `<host>/<tenant>`). */
  authorityHost: string
  /** Azure Resource Manager endpoint, no trailing slash. */
  armEndpoint: string
  /** Scope of ARM access tokens. */
  armScope: string
  /** Audience of the GitHub OIDC token exchanged for an Entra token (workload identity federation). */
  oidcAudience: string
  /** kubelogin's name for the cloud (`--environment`). */
  kubeloginEnvironment: string
  /** Audience of Azure Monitor workspace (Prometheus) query endpoints; the scope is `<audience>/.default`. */
  prometheusAudience: string
}

/** The AKS Entra server application: the audience of tokens for Entra-integrated clusters (same in every cloud). */
export const AKS_SERVER_APP_ID = '6dae42f8-4368-4678-94ff-3960e28e3630'
export const AKS_SCOPE = `${AKS_SERVER_APP_ID}/.default`

export const AZURE_CLOUDS: Readonly<Record<AzureCloudName, AzureCloud>> = {
  AzureCloud: {
    name: 'AzureCloud',
    authorityHost: 'https://login.microsoftonline.com',
    armEndpoint: 'https://management.azure.com',
    armScope: 'https://management.azure.com/.default',
    oidcAudience: 'api://AzureADTokenExchange',
    kubeloginEnvironment: 'AzurePublicCloud',
    prometheusAudience: 'https://prometheus.monitor.azure.com',
  },
  AzureUSGovernment: {
    name: 'AzureUSGovernment',
    authorityHost: 'https://login.microsoftonline.us',
    armEndpoint: 'https://management.usgovcloudapi.net',
    armScope: 'https://management.usgovcloudapi.net/.default',
    oidcAudience: 'api://AzureADTokenExchangeUSGov',
    kubeloginEnvironment: 'AzureUSGovernmentCloud',
    prometheusAudience: 'https://prometheus.monitor.azure.us',
  },
  AzureChinaCloud: {
    name: 'AzureChinaCloud',
    authorityHost: 'https://login.chinacloudapi.cn',
    armEndpoint: 'https://management.chinacloudapi.cn',
    armScope: 'https://management.chinacloudapi.cn/.default',
    oidcAudience: 'api://AzureADTokenExchangeChina',
    kubeloginEnvironment: 'AzureChinaCloud',
    prometheusAudience: 'https://prometheus.monitor.azure.cn',
  },
}

/** The clouds' names, in the table's order. */
export const AZURE_CLOUD_NAMES: readonly AzureCloudName[] = Object.values(AZURE_CLOUDS).map((cloud) => cloud.name)

export function isAzureCloudName(name: string): name is AzureCloudName {
  return Object.hasOwn(AZURE_CLOUDS, name)
}

/** The cloud named `name` (case-insensitive); an error naming the accepted values otherwise. */
export function getAzureCloud(name: string): AzureCloud {
  const found = Object.values(AZURE_CLOUDS).find((cloud) => cloud.name.toLowerCase() === name.trim().toLowerCase())
  if (!found) {
    throw new Error(`Unknown azure-cloud '${name}': use one of ${Object.keys(AZURE_CLOUDS).join(', ')}.`)
  }
  return found
}
