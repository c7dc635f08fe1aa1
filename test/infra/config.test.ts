import { describe, expect, it } from 'vitest';
import type { EnvironmentConfigInput } from '../../lib/config/environment-config';
import { environments } from '../../lib/config/environments';
import { ConfigError, validateEnvironmentConfig } from '../../lib/config/validate';

/** A deliberately loosely typed copy of an environment, so tests can put wrong values in. */
// biome-ignore lint/suspicious/noExplicitAny: the point is to write values the type would refuse
type Loose = Record<string, any>;
function withChange(stage: string, change: (c: Loose) => void): unknown {
  const c = structuredClone(environments[stage]!) as Loose;
  change(c);
  return c as EnvironmentConfigInput;
}

function problems(raw: unknown): string[] {
  try {
    validateEnvironmentConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return [...(e as ConfigError).problems];
  }
  throw new Error('expected the configuration to be rejected');
}

describe('environment configuration', () => {
  it('accepts dev, staging and prod and applies the defaults', () => {
    for (const stage of ['dev', 'staging', 'prod']) {
      const c = validateEnvironmentConfig(environments[stage]);
      expect(c.stage).toBe(stage);
      expect(c.pipelineId).toBe(stage);
      expect(c.stream.retentionHours).toBeGreaterThanOrEqual(168);
    }
    const dev = validateEnvironmentConfig(environments.dev);
    expect(dev.source.port).toBe(3306);
    expect(dev.producer.stopTimeoutSeconds).toBe(120);
    expect(dev.producer.putRecordsInFlight).toBe(8);
    expect(dev.stream.partitionKeyMode).toBe('table-pk');
    // Also for a stage that leaves the whole stream block out.
    const { stream: _stream, ...noStream } = environments.dev!;
    expect(validateEnvironmentConfig(noStream).stream.partitionKeyMode).toBe('table-pk');
    expect(dev.producer.kinesisSinkThread).toBeUndefined();
    expect(dev.producer.maxInFlightBytes).toBeUndefined();
    expect(dev.merge.maxReceiveCount).toBe(5);
    expect(dev.redshift.changelogSchema).toBe('cdc');
  });

  it('names the field and the value of each bad setting, all in one error', () => {
    const raw = withChange('staging', (c) => {
      c.stream.retentionHours = 24;
      c.source.port = 70000;
      c.producer = { ...c.producer, putRecordsInFlight: 0 };
      c.account = '12345';
    });
    expect(() => validateEnvironmentConfig(raw)).toThrow(/^invalid configuration for stage "staging":\n {2}- /);
    expect(problems(raw)).toEqual([
      'account = "12345": must be a 12-digit AWS account id',
      'source.port = 70000: Too big: expected number to be <=65535',
      'stream.retentionHours = 24: must be at least 168 (7 days, the binlog retention the pipeline can replay from)',
      'producer.putRecordsInFlight = 0: Too small: expected number to be >=1',
    ]);
  });

  it('rejects bad identifiers, ARNs and table patterns with the offending value', () => {
    expect(
      problems(
        withChange('prod', (c) => {
          c.source.secretArn = 'my-secret';
          c.source.include = ['shop'];
          c.redshift.clusterId = 'Analytics_Prod';
          c.alarms.emails = ['on-call'];
          c.producer.logRetentionDays = 45;
        }),
      ),
    ).toEqual([
      'source.secretArn = "my-secret": must be a Secrets Manager secret ARN',
      'source.include[0] = "shop": must be db.table (wildcards * allowed)',
      'producer.logRetentionDays = 45: must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 (CloudWatch Logs)',
      'redshift.clusterId = "Analytics_Prod": must be a Redshift cluster identifier',
      'alarms.emails[0] = "on-call": must be an e-mail address',
    ]);
  });

  it('checks settings that depend on each other', () => {
    expect(problems(withChange('dev', (c) => (c.stream = { mode: 'provisioned' })))).toEqual([
      'stream.shards = (not set): is required when stream.mode is provisioned',
    ]);
    expect(problems(withChange('staging', (c) => delete c.redshift.workgroupId))).toEqual([
      'redshift.workgroupId = (not set): is required when importing a workgroup (redshift.create is not set)',
    ]);
    expect(problems(withChange('prod', (c) => (c.removalPolicy = 'destroy')))).toEqual([
      'removalPolicy = "destroy": must be retain for prod: deleting the stack must not delete the changelog',
    ]);
    expect(problems(withChange('prod', (c) => delete c.redshift.endpoint))).toEqual([
      'redshift.endpoint = (not set): endpoint and secretArn are required when firehoseReachable is true',
    ]);
    expect(problems(withChange('dev', (c) => (c.lake.bufferingIntervalSeconds = 0)))).toEqual([
      'lake.bufferingIntervalSeconds = 0: must be at least 60 (Firehose dynamic partitioning buffers at least 60 s)',
    ]);
    expect(problems(withChange('prod', (c) => (c.alarms = {})))).toEqual([
      'alarms.emails = (not set): prod needs alarms.emails or alarms.topicArn',
    ]);
    expect(problems(withChange('dev', (c) => (c.vpc.availabilityZones = ['eu-west-1a', 'eu-west-1b'])))).toEqual([
      'vpc.availabilityZones = ["eu-west-1a","eu-west-1b"]: must name at least 3 zones when redshift.create is set (a Redshift Serverless workgroup needs subnets in 3 AZs)',
    ]);
    expect(problems(withChange('dev', (c) => (c.redshift.kind = 'warehouse')))[0]).toMatch(
      /^redshift\.kind = "warehouse": /,
    );
  });

  it('names the zones a created VPC uses, so synth needs no AZ lookup (and no AWS credentials)', () => {
    expect(problems(withChange('dev', (c) => delete c.vpc.availabilityZones))).toEqual([
      'vpc.availabilityZones = (not set): Invalid input: expected array, received undefined',
    ]);
    expect(
      problems(withChange('dev', (c) => (c.vpc.availabilityZones = ['eu-west-1a', 'eu-west-1b', 'us-east-1c']))),
    ).toEqual(['vpc.availabilityZones[2] = "us-east-1c": must be a zone of region eu-west-1']);
    expect(
      problems(withChange('dev', (c) => (c.vpc.availabilityZones = ['eu-west-1a', 'eu-west-1a', 'eu-west-1b']))),
    ).toEqual(['vpc.availabilityZones = ["eu-west-1a","eu-west-1a","eu-west-1b"]: must not repeat a zone']);
  });

  it('checks an imported VPC by its explicit attributes, naming the field', () => {
    expect(
      problems(
        withChange('staging', (c) => {
          c.vpc.vpcId = 'vpc-123';
          c.vpc.privateSubnetIds = ['subnet-0a1b2c3d4e5f60718', 'subnet-0a1b2c3d4e5f60718'];
        }),
      ),
    ).toEqual([
      'vpc.vpcId = "vpc-123": must be a VPC id (vpc-…)',
      'vpc.privateSubnetIds = ["subnet-0a1b2c3d4e5f60718","subnet-0a1b2c3d4e5f60718"]: must not repeat a subnet',
    ]);
    expect(
      problems(
        withChange('staging', (c) => {
          c.vpc.availabilityZones = ['eu-west-1a', 'eu-west-2b'];
          c.vpc.privateSubnetIds = ['subnet-0a1b2c3d4e5f60718', 'subnet-0f1e2d3c4b5a69788', 'subnet-0f1e2d3c4b5a69799'];
        }),
      ),
    ).toEqual([
      'vpc.availabilityZones[1] = "eu-west-2b": must be a zone of region eu-west-1',
      'vpc.privateSubnetIds = ["subnet-0a1b2c3d4e5f60718","subnet-0f1e2d3c4b5a69788","subnet-0f1e2d3c4b5a69...: must list the same number of subnets in each of the 2 vpc.availabilityZones (got 3)',
    ]);
    // A workgroup created in an imported VPC: 3 zones, and no public subnets to make it public in.
    expect(
      problems(
        withChange('staging', (c) => {
          c.redshift = {
            ...environments.dev!.redshift,
            create: { publiclyAccessible: true },
            firehoseReachable: false,
          };
        }),
      ),
    ).toEqual([
      'vpc.availabilityZones = ["eu-west-1a","eu-west-1b"]: must name at least 3 zones when redshift.create is set (a Redshift Serverless workgroup needs subnets in 3 AZs)',
      'redshift.create.publiclyAccessible = true: needs vpc.mode create: an imported VPC lists private subnets only',
    ]);
  });

  it('takes the KMS keys of imported secrets as key ARNs, and none for a secret the stack creates', () => {
    expect(
      problems(
        withChange('staging', (c) => {
          c.source.secretKmsKeyArn = 'alias/source';
          c.redshift.secretKmsKeyArn = 'arn:aws:kms:eu-west-1:222222222222:key/11111111-2222-3333-4444-555555555555';
        }),
      ),
    ).toEqual([
      'source.secretKmsKeyArn = "alias/source": must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)',
    ]);
    expect(
      problems(
        withChange('dev', (c) => {
          c.redshift.secretKmsKeyArn = 'arn:aws:kms:eu-west-1:111111111111:key/11111111-2222-3333-4444-555555555555';
        }),
      ),
    ).toEqual([
      'redshift.secretKmsKeyArn = "arn:aws:kms:eu-west-1:111111111111:key/11111111-2222-3333-4444-555555555555": applies only to an imported secret (redshift.create makes its own, encrypted with the pipeline key)',
    ]);
  });
});

describe('apply path (apply.source, apply.stream)', () => {
  it('applies from the stream by default, with the event source mapping settings each stage sets', () => {
    const dev = validateEnvironmentConfig(environments.dev);
    const prod = validateEnvironmentConfig(environments.prod);
    expect(dev.apply.source).toBe('stream');
    expect(prod.apply.source).toBe('stream');
    // dev: fresh and cheap; prod: paced (fewer, larger commits) and two batches per shard at once.
    expect(dev.apply.stream).toEqual({
      batchSize: 500,
      batchingWindowSeconds: 1,
      parallelizationFactor: 1,
      maximumRetryAttempts: 100,
      maximumRecordAgeSeconds: 3600,
      tablesPerTransaction: 4,
    });
    expect(prod.apply.stream).toMatchObject({ batchingWindowSeconds: 5, parallelizationFactor: 2 });
    // An environment that says nothing about the apply path gets the documented defaults.
    const bare = withChange('staging', (c) => delete c.apply);
    expect(validateEnvironmentConfig(bare).apply).toEqual({
      source: 'stream',
      stream: {
        batchSize: 1000,
        batchingWindowSeconds: 1,
        parallelizationFactor: 1,
        maximumRetryAttempts: 1000,
        maximumRecordAgeSeconds: 86400,
        tablesPerTransaction: 4,
      },
    });
    // Only the fields given are overridden; the others keep their defaults.
    const partial = withChange('staging', (c) => (c.apply = { source: 'lake', stream: { batchSize: 50 } }));
    expect(validateEnvironmentConfig(partial).apply).toEqual({
      source: 'lake',
      stream: expect.objectContaining({ batchSize: 50, batchingWindowSeconds: 1, tablesPerTransaction: 4 }),
    });
  });

  it('refuses what the Kinesis event source mapping or one Data API transaction cannot take, naming field and value', () => {
    expect(
      problems(
        withChange('dev', (c) => {
          c.apply = {
            source: 'firehose',
            stream: {
              batchSize: 10001,
              batchingWindowSeconds: 301,
              parallelizationFactor: 11,
              maximumRetryAttempts: -2,
              maximumRecordAgeSeconds: 59,
              tablesPerTransaction: 9,
            },
          };
        }),
      ),
    ).toEqual([
      'apply.source = "firehose": must be stream (apply from the Kinesis stream) or lake (apply from the S3 changelog objects)',
      'apply.stream.batchSize = 10001: must be 1 to 10000 (Kinesis event source mapping BatchSize)',
      'apply.stream.batchingWindowSeconds = 301: must be 0 to 300 (MaximumBatchingWindowInSeconds)',
      'apply.stream.parallelizationFactor = 11: must be 1 to 10 (ParallelizationFactor)',
      'apply.stream.maximumRetryAttempts = -2: must be -1 (retry until the record expires) or 0 to 10000 (MaximumRetryAttempts)',
      'apply.stream.maximumRecordAgeSeconds = 59: must be -1 (no limit) or 60 to 604800 (MaximumRecordAgeInSeconds)',
      'apply.stream.tablesPerTransaction = 9: must be 1 to 8 (TABLES_PER_TRANSACTION of the merge)',
    ]);
    expect(
      problems(
        withChange('dev', (c) => {
          c.apply = { stream: { batchSize: 0, batchingWindowSeconds: 1.5, maximumRecordAgeSeconds: 604801 } };
        }),
      ),
    ).toEqual([
      'apply.stream.batchSize = 0: must be 1 to 10000 (Kinesis event source mapping BatchSize)',
      'apply.stream.batchingWindowSeconds = 1.5: must be a whole number',
      'apply.stream.maximumRecordAgeSeconds = 604801: must be -1 (no limit) or 60 to 604800 (MaximumRecordAgeInSeconds)',
    ]);
    // The Lambda API refuses batches over 10 records without a batching window of at least 1 s.
    expect(problems(withChange('prod', (c) => (c.apply.stream.batchingWindowSeconds = 0)))).toEqual([
      'apply.stream.batchingWindowSeconds = 0: must be at least 1 when apply.stream.batchSize is over 10 (got 2000; Lambda API, MaximumBatchingWindowInSeconds)',
    ]);
    // The limits themselves are accepted.
    for (const stream of [
      { batchSize: 10, batchingWindowSeconds: 0, parallelizationFactor: 1, maximumRetryAttempts: -1 },
      { batchSize: 1, batchingWindowSeconds: 1, parallelizationFactor: 1, maximumRetryAttempts: -1 },
      { batchSize: 10000, batchingWindowSeconds: 300, parallelizationFactor: 10, maximumRetryAttempts: 10000 },
      { maximumRecordAgeSeconds: -1, tablesPerTransaction: 1 },
      { maximumRecordAgeSeconds: 60, tablesPerTransaction: 8 },
      { maximumRecordAgeSeconds: 604800, maximumRetryAttempts: 0 },
    ])
      expect(() => validateEnvironmentConfig(withChange('dev', (c) => (c.apply = { stream })))).not.toThrow();
  });
});
