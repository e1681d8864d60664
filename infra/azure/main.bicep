// The handoff bot on Azure, as Microsoft's own samples deploy a bot: an Azure Bot resource
// (single-tenant app registration or a user-assigned managed identity) with the Teams channel,
// Azure Container Apps (two replicas or more, health probes), Azure Database for PostgreSQL
// Flexible Server, Key Vault for every secret, and Log Analytics for logs.
//
//   az group create -n handoff-rg -l westeurope
//   az deployment group create -g handoff-rg -f infra/azure/main.bicep \
//     -p infra/azure/main.parameters.json -p botAppId=<app id> tenantId=<tenant id> \
//        image=<registry>/teams-handoff:<tag> postgresPassword=<...> directlineTokenKey=<...>
//
// The README's "Azure" section lists the steps after it (the Teams app package, consent).

targetScope = 'resourceGroup'

@description('Where everything goes (the Azure Bot resource itself is global).')
param location string = resourceGroup().location

@description('Short prefix for resource names: lower-case letters and digits.')
@minLength(3)
@maxLength(12)
param prefix string = 'handoff'

@description('Entra tenant of the bot\'s app registration (and of the Teams users).')
param tenantId string = subscription().tenantId

@description('How the bot authenticates: SingleTenant (an app registration with a secret) or UserAssignedMSI (the identity created here; no secret at all). New multi-tenant registrations are no longer possible.')
@allowed([
  'SingleTenant'
  'UserAssignedMSI'
])
param appType string = 'SingleTenant'

@description('The app registration\'s client id (SingleTenant); ignored for UserAssignedMSI.')
param botAppId string = ''

@description('The app registration\'s client secret (SingleTenant only); kept in Key Vault.')
@secure()
param botAppPassword string = ''

@description('The bot\'s public host name, if you map a custom domain to the container app; empty: the container app\'s own host name.')
param botDomain string = ''

@description('The container image, e.g. myregistry.azurecr.io/teams-handoff:1.0.0 (build it from infra/container/Containerfile).')
param image string

@description('Replicas that always run (two or more: a crash or a deploy never stops the service).')
@minValue(2)
param minReplicas int = 2

@maxValue(30)
param maxReplicas int = 4

@description('PostgreSQL administrator password; kept in Key Vault.')
@secure()
param postgresPassword string

@description('The key widget tokens are signed with, shared by every replica (openssl rand -base64 32); kept in Key Vault.')
@secure()
param directlineTokenKey string

@description('Optional: lets a scraper read /metrics with it as a bearer token; kept in Key Vault.')
@secure()
param metricsToken string = ''

@description('Azure Bot pricing tier (F0 is free, with message limits on premium channels only).')
@allowed([
  'F0'
  'S1'
])
param botSku string = 'F0'

@description('When the secrets kept in Key Vault expire (rotate them before; default: a year from the deployment).')
param secretsExpire string = dateTimeAdd(utcNow(), 'P1Y')

var suffix = uniqueString(resourceGroup().id, prefix)
var postgresUser = 'handoff'
var botHost = empty(botDomain) ? app.properties.configuration.ingress.fqdn : botDomain
var msaAppId = appType == 'UserAssignedMSI' ? identity.properties.clientId : botAppId

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${prefix}-logs-${suffix}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${prefix}-id-${suffix}'
  location: location
}

// The container apps read their secrets over the vault's public endpoint (RBAC decides who
// may; the firewall cannot tell the app's outbound addresses). Behind a private endpoint in a
// VNet-integrated Container Apps environment it can be closed: not part of this template.
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_189: read by Container Apps over the public endpoint, RBAC only
  // checkov:skip=CKV_AZURE_109: as above: no firewall the app's outbound addresses could pass
  name: take('${prefix}kv${suffix}', 24)
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 30
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

var requiredSecrets = {
  'postgres-password': postgresPassword
  'database-url': 'postgresql://${postgresUser}:${uriComponent(postgresPassword)}@${postgres.properties.fullyQualifiedDomainName}:5432/handoff?sslmode=require'
  'directline-token-key': directlineTokenKey
}
var passwordSecret = empty(botAppPassword) ? {} : { 'bot-app-password': botAppPassword }
var metricsSecret = empty(metricsToken) ? {} : { 'metrics-token': metricsToken }
var secretsToKeep = union(requiredSecrets, passwordSecret, metricsSecret)

resource secrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [
  for entry in items(secretsToKeep): {
    parent: vault
    name: entry.key
    properties: {
      value: entry.value
      contentType: 'text/plain'
      attributes: {
        exp: dateTimeToEpoch(secretsExpire)
      }
    }
  }
]

// Key Vault Secrets User, for the app's identity: it reads its secrets, nothing else.
var secretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource readSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, secretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource postgres 'Microsoft.DBforPostgreSQL/flexibleServers@2023-06-01-preview' = {
  name: '${prefix}-pg-${suffix}'
  location: location
  sku: {
    name: 'Standard_B1ms'
    tier: 'Burstable'
  }
  properties: {
    version: '16'
    administratorLogin: postgresUser
    administratorLoginPassword: postgresPassword
    storage: {
      storageSizeGB: 32
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: 14
      geoRedundantBackup: 'Enabled'
    }
    highAvailability: {
      mode: 'Disabled'
    }
    network: {
      publicNetworkAccess: 'Enabled'
    }
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2023-06-01-preview' = {
  parent: postgres
  name: 'handoff'
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
}

// Only Azure services (the container apps) reach the server; every connection uses TLS.
resource azureOnly 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2023-06-01-preview' = {
  parent: postgres
  name: 'AllowAzureServices'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource requireTls 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2023-06-01-preview' = {
  parent: postgres
  name: 'require_secure_transport'
  properties: {
    value: 'on'
    source: 'user-override'
  }
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${prefix}-env-${suffix}'
  location: location
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
  }
}

var vaultSecret = '${vault.properties.vaultUri}secrets/'
var appSecrets = [
  for entry in items(secretsToKeep): {
    name: entry.key
    keyVaultUrl: '${vaultSecret}${entry.key}'
    identity: identity.id
  }
]
var baseEnv = [
  { name: 'DATABASE_URL', secretRef: 'database-url' }
  { name: 'DIRECTLINE_TOKEN_KEY', secretRef: 'directline-token-key' }
  { name: 'MicrosoftAppType', value: appType }
  { name: 'MicrosoftAppId', value: msaAppId }
  { name: 'MicrosoftAppTenantId', value: tenantId }
  { name: 'LOG_FORMAT', value: 'json' }
  { name: 'PORT', value: '3978' }
  { name: 'HOST', value: '0.0.0.0' }
]
var passwordEnv = empty(botAppPassword) ? [] : [{ name: 'MicrosoftAppPassword', secretRef: 'bot-app-password' }]
var metricsEnv = empty(metricsToken) ? [] : [{ name: 'METRICS_TOKEN', secretRef: 'metrics-token' }]

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: '${prefix}-app-${suffix}'
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  dependsOn: [
    readSecrets
    secrets
    database
    requireTls
  ]
  properties: {
    managedEnvironmentId: environment.id
    configuration: {
      activeRevisionsMode: 'Single'
      secrets: appSecrets
      ingress: {
        external: true
        targetPort: 3978
        transport: 'auto' // HTTP/1.1 with WebSocket upgrades for the widget
        allowInsecure: false
      }
    }
    template: {
      containers: [
        {
          name: 'bot'
          image: image
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
          env: concat(baseEnv, passwordEnv, metricsEnv)
          probes: [
            {
              type: 'Startup'
              httpGet: { path: '/healthz', port: 3978 }
              periodSeconds: 2
              failureThreshold: 30
            }
            {
              type: 'Liveness'
              httpGet: { path: '/healthz', port: 3978 }
              periodSeconds: 10
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: { path: '/readyz', port: 3978 }
              periodSeconds: 5
              failureThreshold: 2
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'http'
            http: {
              metadata: {
                concurrentRequests: '200'
              }
            }
          }
        ]
      }
    }
  }
}

resource bot 'Microsoft.BotService/botServices@2022-09-15' = {
  name: '${prefix}-bot-${suffix}'
  location: 'global'
  kind: 'azurebot'
  sku: {
    name: botSku
  }
  properties: {
    displayName: prefix
    endpoint: 'https://${botHost}/api/messages'
    msaAppId: msaAppId
    msaAppType: appType
    msaAppTenantId: tenantId
    msaAppMSIResourceId: appType == 'UserAssignedMSI' ? identity.id : null
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource teams 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'MsTeamsChannel'
  location: 'global'
  properties: {
    channelName: 'MsTeamsChannel'
    properties: {
      isEnabled: true
      acceptedTerms: true
    }
  }
}

@description('The bot\'s messaging endpoint (set on the Azure Bot resource).')
output messagingEndpoint string = 'https://${botHost}/api/messages'

@description('The host name for the Teams app package: make package APP_ID=<app id> DOMAIN=<this>.')
output botDomain string = botHost

@description('The app id the Teams app package needs.')
output botAppId string = msaAppId

output keyVault string = vault.name
output logAnalyticsWorkspace string = logs.name
