/**
 * The environments this project deploys. Edit these values for your accounts (docs/configuration.md explains every
 * field); `bin/app.ts` validates the chosen one, so a wrong value fails `cdk synth` naming the field and the value.
 *
 * - dev: creates its own VPC and a small Redshift Serverless workgroup; everything is destroyed with the stack.
 * - staging: imports the VPC and a Redshift Serverless workgroup; Firehose also loads the raw changelog table.
 * - prod: imports the VPC and a provisioned Redshift cluster; provisioned Kinesis; retains everything.
 */
import type { EnvironmentConfigInput } from './environment-config';

export const environments: Readonly<Record<string, EnvironmentConfigInput>> = {
  dev: {
    stage: 'dev',
    account: '111111111111',
    region: 'eu-west-1',
    vpc: { mode: 'create', availabilityZones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'], natGateways: 1 },
    source: {
      host: 'shop-dev.cluster-abcdefghijkl.eu-west-1.rds.amazonaws.com',
      secretArn: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:cdc/dev/source-AbCdEf',
      include: ['shop.*'],
      exclude: ['shop.audit_*'],
      maskColumns: ['shop.customers.phone'],
    },
    stream: { mode: 'on-demand', retentionHours: 168 },
    lake: { bufferingIntervalSeconds: 60, bufferingSizeMiB: 64 },
    redshift: {
      kind: 'serverless',
      create: { baseCapacityRpu: 8, publiclyAccessible: false },
      namespaceName: 'cdc-dev',
      workgroupName: 'cdc-dev',
      database: 'analytics',
      firehoseReachable: false,
    },
    merge: { maxConcurrency: 2 },
    // Fresh and cheap: a commit about once a second while changes trickle in; failures set aside within the hour.
    apply: {
      source: 'stream',
      stream: {
        batchSize: 500,
        batchingWindowSeconds: 1,
        parallelizationFactor: 1,
        maximumRetryAttempts: 100,
        maximumRecordAgeSeconds: 3600,
      },
    },
    alarms: { emails: [] },
    removalPolicy: 'destroy',
  },
  staging: {
    stage: 'staging',
    account: '222222222222',
    region: 'eu-west-1',
    vpc: {
      mode: 'import',
      vpcId: 'vpc-0a1b2c3d4e5f60718',
      availabilityZones: ['eu-west-1a', 'eu-west-1b'],
      privateSubnetIds: ['subnet-0a1b2c3d4e5f60718', 'subnet-0f1e2d3c4b5a69788'],
    },
    source: {
      host: 'shop-staging.cluster-abcdefghijkl.eu-west-1.rds.amazonaws.com',
      secretArn: 'arn:aws:secretsmanager:eu-west-1:222222222222:secret:cdc/staging/source-AbCdEf',
      securityGroupId: 'sg-0a1b2c3d4e5f60718',
      include: ['shop.*'],
      exclude: ['shop.audit_*'],
      hashColumns: ['shop.customers.email'],
      maskColumns: ['shop.customers.phone'],
    },
    stream: { mode: 'on-demand', retentionHours: 168 },
    lake: { bufferingIntervalSeconds: 60, bufferingSizeMiB: 64 },
    redshift: {
      kind: 'serverless',
      workgroupName: 'analytics-staging',
      workgroupId: '0f1e2d3c-4b5a-4697-8877-665544332211',
      namespaceName: 'analytics-staging',
      database: 'analytics',
      secretArn: 'arn:aws:secretsmanager:eu-west-1:222222222222:secret:cdc/staging/redshift-AbCdEf',
      firehoseReachable: true,
    },
    // As prod paces it, on one batch per shard: what staging measures is what prod will see.
    apply: { source: 'stream', stream: { batchSize: 2000, batchingWindowSeconds: 5 } },
    alarms: { emails: ['data-oncall-staging@example.com'] },
    removalPolicy: 'retain',
  },
  prod: {
    stage: 'prod',
    account: '333333333333',
    region: 'eu-west-1',
    vpc: {
      mode: 'import',
      vpcId: 'vpc-0b1c2d3e4f5a60718',
      availabilityZones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
      privateSubnetIds: ['subnet-0b1c2d3e4f5a60718', 'subnet-0c1d2e3f4a5b60718', 'subnet-0d1e2f3a4b5c60718'],
    },
    source: {
      host: 'shop-prod.cluster-abcdefghijkl.eu-west-1.rds.amazonaws.com',
      secretArn: 'arn:aws:secretsmanager:eu-west-1:333333333333:secret:cdc/prod/source-AbCdEf',
      securityGroupId: 'sg-0b1c2d3e4f5a60718',
      serverId: 91001,
      include: ['shop.*', 'billing.*'],
      exclude: ['shop.audit_*'],
      hashColumns: ['shop.customers.email'],
      maskColumns: ['shop.customers.phone'],
    },
    // table-pk: a busy table spreads over the four shards (docs/producer.md, "Writes to Kinesis").
    stream: { mode: 'provisioned', shards: 4, retentionHours: 168, partitionKeyMode: 'table-pk' },
    producer: { cpu: 1024, memoryMiB: 2048, stopTimeoutSeconds: 120, leaseSeconds: 30, logRetentionDays: 90 },
    lake: { bufferingIntervalSeconds: 60, bufferingSizeMiB: 128, infrequentAccessAfterDays: 30, expireAfterDays: 0 },
    redshift: {
      kind: 'cluster',
      clusterId: 'analytics-prod',
      endpoint: 'analytics-prod.abcdefghijkl.eu-west-1.redshift.amazonaws.com:5439',
      database: 'analytics',
      secretArn: 'arn:aws:secretsmanager:eu-west-1:333333333333:secret:cdc/prod/redshift-AbCdEf',
      firehoseReachable: true,
      historyTables: ['billing.invoices'],
    },
    merge: { maxConcurrency: 8, memoryMiB: 2048 },
    // Paced: at most one commit per shard-batch every 5 s while busy (4 shards × 2 = 8 concurrent batches), so a busy
    // source does not turn into hundreds of small Redshift commits; larger batches amortize each commit.
    apply: { source: 'stream', stream: { batchSize: 2000, batchingWindowSeconds: 5, parallelizationFactor: 2 } },
    alarms: {
      emails: ['data-oncall@example.com'],
      producerLagSeconds: 120,
      iteratorAgeSeconds: 120,
      replicaFreshnessSeconds: 600,
    },
    removalPolicy: 'retain',
  },
};
