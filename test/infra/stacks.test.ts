import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { PRODUCER_DOCKERFILE, REPO_ROOT } from '../../lib/constructs/producer-service';
import { CHANGELOG_LOADED_COLUMNS } from '../../shared/changelog-table';
import { FIREHOSE_ERROR_PREFIX, FIREHOSE_PREFIX } from '../../shared/lake-layout';
import { METRICS_NAMESPACE } from '../../shared/metrics';
import { normalizedTemplate, type SynthesizedStage, synthStage } from './support/synth';

let dev: SynthesizedStage;
let staging: SynthesizedStage;
let prod: SynthesizedStage;
beforeAll(() => {
  dev = synthStage('dev');
  staging = synthStage('staging');
  prod = synthStage('prod');
});
let lake: SynthesizedStage | undefined;
/** prod with `apply.source: lake` (today's wiring), synthesized once on first use, without bundling the Lambdas. */
function lakeApply(): SynthesizedStage {
  lake ??= synthStage('prod', (c) => ({ ...c, apply: { ...c.apply, source: 'lake' } }), { bundle: false });
  return lake;
}

describe('every stage', () => {
  it('synthesizes without a warning or an error annotation on any stack', () => {
    for (const stage of [dev, staging, prod])
      for (const stack of Object.values(stage.stacks)) {
        const found = [
          ...Annotations.fromStack(stack).findWarning('*', Match.anyValue()),
          ...Annotations.fromStack(stack).findError('*', Match.anyValue()),
        ].map((m) => `${stack.stackName} ${m.id}: ${String(m.entry.data).split('\n')[0]}`);
        expect(found).toEqual([]);
      }
  });
});

describe('stateful stack', () => {
  it('keeps seven days of KMS-encrypted changes in the stream, on-demand or provisioned per stage', () => {
    dev.templates.stateful.hasResourceProperties('AWS::Kinesis::Stream', {
      RetentionPeriodHours: 168,
      StreamEncryption: { EncryptionType: 'KMS', KeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DataKey'), 'Arn'] } },
      StreamModeDetails: { StreamMode: 'ON_DEMAND' },
    });
    prod.templates.stateful.hasResourceProperties('AWS::Kinesis::Stream', {
      ShardCount: 4,
      StreamModeDetails: { StreamMode: 'PROVISIONED' },
    });
    dev.templates.stateful.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  it('makes the lake bucket KMS-encrypted, SSL-only, private, versioned and logged, with lifecycle per prefix', () => {
    const t = staging.templates.stateful;
    t.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: 'cdc-staging-lake-222222222222-eu-west-1',
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: true },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      VersioningConfiguration: { Status: 'Enabled' },
      LoggingConfiguration: { LogFilePrefix: 'lake/' },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({
            Id: 'changelog',
            Prefix: 'changelog/',
            Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 30 }],
          }),
          Match.objectLike({ Id: 'staging', Prefix: 'staging/', ExpirationInDays: 1 }),
          Match.objectLike({ Id: 'errors', Prefix: 'errors/', ExpirationInDays: 90 }),
        ]),
      },
    });
    t.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    expect(t.findResources('AWS::S3::Bucket', { DeletionPolicy: 'Retain' })).not.toEqual({});
    // dev is disposable: its buckets go with the stack.
    expect(dev.templates.stateful.findResources('AWS::S3::Bucket', { DeletionPolicy: 'Retain' })).toEqual({});
  });

  it('announces every new changelog object on a queue with a dead-letter queue after bounded retries (lake apply)', () => {
    const t = lakeApply().templates.stateful;
    t.hasResourceProperties('Custom::S3BucketNotifications', {
      NotificationConfiguration: {
        QueueConfigurations: [
          {
            Events: ['s3:ObjectCreated:*'],
            Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'changelog/' }] } },
          },
        ],
      },
    });
    t.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 1800,
      RedrivePolicy: { maxReceiveCount: 5 },
      SqsManagedSseEnabled: true,
    });
  });

  it('announces no changelog object in stream apply, but keeps the queue for handoffs, replays and redrives', () => {
    const t = dev.templates.stateful;
    t.resourceCountIs('Custom::S3BucketNotifications', 0);
    t.hasResourceProperties('AWS::SQS::Queue', { VisibilityTimeout: 1800, RedrivePolicy: { maxReceiveCount: 5 } });
  });

  it('keeps handoffs past the dead-letter queue retention and failed stream batches as long as other errors', () => {
    prod.templates.stateful.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          // The dead-letter queue keeps a message 14 days: a redrive must still find its object.
          Match.objectLike({ Id: 'handoffs', Prefix: 'handoff/', ExpirationInDays: 30 }),
          Match.objectLike({ Id: 'stream-failures', Prefix: 'aws/lambda/', ExpirationInDays: 90 }),
          Match.objectLike({ Id: 'errors', Prefix: 'errors/', ExpirationInDays: 90 }),
        ]),
      },
    });
    prod.templates.stateful.hasResourceProperties('AWS::SQS::Queue', { MessageRetentionPeriod: 14 * 24 * 3600 });
  });

  it('keeps checkpoints in a KMS-encrypted table with point-in-time recovery', () => {
    dev.templates.stateful.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS' },
      Replicas: [Match.objectLike({ PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true } })],
    });
  });

  it('catalogs the lake in Glue with partition projection over the keys Firehose writes', () => {
    const t = dev.templates.stateful;
    t.hasResourceProperties('AWS::Glue::Database', { DatabaseInput: { Name: 'cdc_dev' } });
    t.hasResourceProperties('AWS::Glue::Table', {
      DatabaseName: 'cdc_dev',
      TableInput: {
        Name: 'changelog',
        PartitionKeys: [
          { Name: 'source_db', Type: 'string' },
          { Name: 'source_table', Type: 'string' },
          { Name: 'dt', Type: 'string' },
          { Name: 'hour', Type: 'string' },
        ],
        Parameters: Match.objectLike({
          'projection.enabled': 'true',
          'projection.source_db.type': 'injected',
          'projection.dt.type': 'date',
          'projection.hour.digits': '2',
          'storage.location.template': Match.anyValue(),
        }),
        StorageDescriptor: Match.objectLike({
          SerdeInfo: Match.objectLike({ SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe' }),
          Columns: Match.arrayWith([
            Match.objectLike({ Name: 'after', Type: 'map<string,string>' }),
            Match.objectLike({ Name: 'position', Type: 'string' }),
          ]),
        }),
      },
    });
    const [table] = Object.values(t.findResources('AWS::Glue::Table'));
    expect(JSON.stringify(table!.Properties.TableInput.Parameters['storage.location.template'])).toContain(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Glue/IAM placeholders, not a template
      '/changelog/source_db=${source_db}/source_table=${source_table}/dt=${dt}/hour=${hour}/',
    );
    // The projection template and Firehose's prefix describe the same keys.
    expect(FIREHOSE_PREFIX).toBe(
      'changelog/source_db=!{partitionKeyFromQuery:db}/source_table=!{partitionKeyFromQuery:table}/dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/',
    );
  });

  it('creates a Redshift Serverless namespace and workgroup only where the stage asks for one', () => {
    dev.templates.stateful.hasResourceProperties('AWS::RedshiftServerless::Workgroup', {
      WorkgroupName: 'cdc-dev',
      PubliclyAccessible: false,
      EnhancedVpcRouting: true,
    });
    dev.templates.stateful.hasResourceProperties('AWS::RedshiftServerless::Namespace', {
      DbName: 'analytics',
      IamRoles: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^WarehouseCopyRole'), 'Arn'] }],
    });
    staging.templates.stateful.resourceCountIs('AWS::RedshiftServerless::Workgroup', 0);
    prod.templates.stateful.resourceCountIs('AWS::RedshiftServerless::Namespace', 0);
  });
});

describe('dev warehouse network (enhanced VPC routing)', () => {
  it('routes the created workgroup to S3 through a gateway endpoint and lets its security group reach only S3', () => {
    const t = dev.templates.stateful;
    const [endpoint] = Object.values(
      t.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Gateway' } }),
    );
    expect(JSON.stringify(endpoint?.Properties.ServiceName)).toContain('.s3');
    // Every private subnet's route table (where the workgroup lives) has the S3 route.
    const privateTables = Object.keys(t.findResources('AWS::EC2::RouteTable')).filter((id) => id.includes('private'));
    expect(privateTables).toHaveLength(3);
    for (const id of privateTables) expect(endpoint!.Properties.RouteTableIds).toContainEqual({ Ref: id });

    const [group] = Object.entries(
      t.findResources('AWS::EC2::SecurityGroup', {
        Properties: { GroupDescription: 'Redshift Serverless workgroup of the CDC pipeline' },
      }),
    );
    const egress = group![1].Properties.SecurityGroupEgress as Record<string, unknown>[];
    expect(egress).toEqual([
      expect.objectContaining({
        IpProtocol: 'tcp',
        FromPort: 443,
        ToPort: 443,
        DestinationPrefixListId: expect.anything(),
      }),
    ]);
    // The prefix list is the region's S3 list, found at deploy time (no lookup at synth).
    t.hasResourceProperties('Custom::AWS', {
      Create: Match.stringLikeRegexp('describeManagedPrefixLists.*com\\.amazonaws\\.eu-west-1\\.s3'),
    });
  });
});

describe('capture stack', () => {
  it('runs exactly one producer and never two at once, with time to drain on SIGTERM', () => {
    const t = staging.templates.capture;
    t.hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: 1,
      LaunchType: 'FARGATE',
      DeploymentConfiguration: {
        MinimumHealthyPercent: 0,
        MaximumPercent: 100,
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
      },
      NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED' } },
    });
    t.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          StopTimeout: 120,
          ReadonlyRootFilesystem: true,
          HealthCheck: Match.objectLike({ Command: ['CMD', 'node', '/app/healthcheck.js'] }),
          Secrets: [
            {
              Name: 'SOURCE_USER',
              ValueFrom: 'arn:aws:secretsmanager:eu-west-1:222222222222:secret:cdc/staging/source-AbCdEf:username::',
            },
            {
              Name: 'SOURCE_PASSWORD',
              ValueFrom: 'arn:aws:secretsmanager:eu-west-1:222222222222:secret:cdc/staging/source-AbCdEf:password::',
            },
          ],
          Environment: Match.arrayWith([
            { Name: 'PIPELINE_ID', Value: 'staging' },
            { Name: 'CAPTURE_INCLUDE', Value: 'shop.*' },
            { Name: 'CAPTURE_HASH_COLUMNS', Value: 'shop.customers.email' },
            { Name: 'SNAPSHOT_MODE', Value: 'initial' },
            { Name: 'SIGNAL_TABLE', Value: 'cdc.cdc_signal' },
            { Name: 'CLAIM_CHECK_BUCKET', Value: 'cdc-staging-lake-222222222222-eu-west-1' },
          ]),
        }),
      ],
    });
    t.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    // The database's security group lets the producer in on the MySQL port.
    t.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: 'sg-0a1b2c3d4e5f60718',
      IpProtocol: 'tcp',
      FromPort: 3306,
      ToPort: 3306,
    });
  });

  it('lets the producer write only the stream, its own checkpoint item and claim-check objects', () => {
    const policies = Object.values(staging.templates.capture.findResources('AWS::IAM::Policy')).filter((p) =>
      String(p.Properties.PolicyName).startsWith('ProducerTaskTaskRole'),
    );
    expect(policies).toHaveLength(1);
    const statements = policies[0]!.Properties.PolicyDocument.Statement as Record<string, unknown>[];
    expect(statements.map((s) => s.Action)).toEqual([
      // Sorted: cdk.json turns on @aws-cdk/aws-iam:minimizePolicies, which the deployed templates get too.
      ['kinesis:DescribeStreamSummary', 'kinesis:ListShards', 'kinesis:PutRecord', 'kinesis:PutRecords'],
      ['kms:Decrypt', 'kms:GenerateDataKey'],
      ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
      's3:PutObject',
    ]);
    expect(statements[2]!.Condition).toEqual({
      'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['staging'] },
    });
    expect(JSON.stringify(statements[3]!.Resource)).toContain(
      ':s3:::cdc-staging-lake-222222222222-eu-west-1/claim-check/*',
    );
  });
});

describe('producer image', () => {
  it('builds and runs on the Node.js major the merge Lambda runs (24), not an end-of-life one', () => {
    const dockerfile = readFileSync(join(REPO_ROOT, PRODUCER_DOCKERFILE), 'utf8');
    const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(bases).toEqual(['node:24-slim', 'node:24-slim']);
    expect(dockerfile).toContain('--target=node24');
    prod.templates.apply.hasResourceProperties('AWS::Lambda::Function', { Runtime: 'nodejs24.x' });
  });
});

describe('delivery stack', () => {
  it('writes the lake through Firehose with dynamic partitioning by table and hour, gzip and an error prefix', () => {
    dev.templates.delivery.hasResourceProperties('AWS::KinesisFirehose::DeliveryStream', {
      DeliveryStreamType: 'KinesisStreamAsSource',
      ExtendedS3DestinationConfiguration: Match.objectLike({
        Prefix: FIREHOSE_PREFIX,
        ErrorOutputPrefix: FIREHOSE_ERROR_PREFIX,
        CompressionFormat: 'GZIP',
        BufferingHints: { IntervalInSeconds: 60, SizeInMBs: 64 },
        DynamicPartitioningConfiguration: { Enabled: true, RetryOptions: { DurationInSeconds: 3600 } },
        ProcessingConfiguration: {
          Enabled: true,
          Processors: [
            {
              Type: 'MetadataExtraction',
              Parameters: Match.arrayWith([
                { ParameterName: 'MetadataExtractionQuery', ParameterValue: '{"db":.db,"table":.table}' },
              ]),
            },
          ],
        },
        EncryptionConfiguration: { KMSEncryptionConfig: { AWSKMSKeyARN: Match.anyValue() } },
      }),
    });
  });

  it('loads the raw changelog table only where Firehose can reach Redshift, with S3 backup and retries', () => {
    dev.templates.delivery.resourceCountIs('AWS::KinesisFirehose::DeliveryStream', 1);
    const t = prod.templates.delivery;
    t.resourceCountIs('AWS::KinesisFirehose::DeliveryStream', 2);
    t.hasResourceProperties('AWS::KinesisFirehose::DeliveryStream', {
      RedshiftDestinationConfiguration: Match.objectLike({
        ClusterJDBCURL: 'jdbc:redshift://analytics-prod.abcdefghijkl.eu-west-1.redshift.amazonaws.com:5439/analytics',
        CopyCommand: {
          DataTableName: 'cdc.changelog',
          DataTableColumns: CHANGELOG_LOADED_COLUMNS.map((c) => c.name).join(','),
          CopyOptions:
            "FORMAT AS JSON 's3://cdc-prod-lake-333333333333-eu-west-1/config/changelog-jsonpaths.json' GZIP TRUNCATECOLUMNS",
        },
        SecretsManagerConfiguration: Match.objectLike({
          Enabled: true,
          SecretARN: 'arn:aws:secretsmanager:eu-west-1:333333333333:secret:cdc/prod/redshift-AbCdEf',
        }),
        S3BackupMode: 'Enabled',
        RetryOptions: { DurationInSeconds: 3600 },
      }),
    });
    // The table exists before Firehose first COPYs into it.
    t.hasResourceProperties('Custom::ChangelogTable', {
      Sqls: ['CREATE SCHEMA IF NOT EXISTS cdc', Match.stringLikeRegexp('^CREATE TABLE IF NOT EXISTS cdc\\.changelog')],
      ClusterIdentifier: 'analytics-prod',
      Database: 'analytics',
      SecretArn: 'arn:aws:secretsmanager:eu-west-1:333333333333:secret:cdc/prod/redshift-AbCdEf',
    });
    const firehose = Object.values(t.findResources('AWS::KinesisFirehose::DeliveryStream')).find(
      (r) => r.Properties.RedshiftDestinationConfiguration,
    );
    expect(JSON.stringify(firehose!.DependsOn)).toMatch(/ChangelogTable/);
  });
});

describe('changelog table custom resource', () => {
  it('waits for the Data API statement to finish (Provider framework isComplete), not only for its submission', () => {
    const t = staging.templates.delivery;
    t.resourceCountIs('Custom::AWS', 0);
    const handlers = Object.values(t.findResources('AWS::Lambda::Function')).map((f) => f.Properties.Handler);
    expect(handlers).toEqual(expect.arrayContaining(['index.onEvent', 'index.isComplete']));
    // The framework polls isComplete from a waiter state machine every 10 s, for at most 15 minutes.
    const [machine] = Object.values(t.findResources('AWS::StepFunctions::StateMachine'));
    const definition = JSON.stringify(machine!.Properties.DefinitionString);
    expect(definition).toContain('\\"IntervalSeconds\\":10');
    expect(definition).toContain('\\"MaxAttempts\\":90');
    t.hasResourceProperties('Custom::ChangelogTable', {
      WorkgroupName: 'analytics-staging',
      PhysicalId: 'changelog-table-cdc',
    });
  });

  it('lets isComplete describe the statement onEvent submitted: another Lambda session of the same role', () => {
    // Each Lambda function is its own role session (aws:userid = <role id>:<function name>), so the usual
    // "statement owner = ${aws:userid}" condition would deny isComplete the statement onEvent ran.
    staging.templates.delivery.hasResourceProperties('AWS::IAM::Policy', {
      PolicyName: Match.stringLikeRegexp('^ChangelogTableRole'),
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Action: 'redshift-data:DescribeStatement',
            Effect: 'Allow',
            Resource: '*',
            Condition: {
              StringLike: {
                'redshift-data:statement-owner-iam-userid': [
                  {
                    'Fn::Join': [
                      '',
                      [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^ChangelogTableRole'), 'RoleId'] }, ':*'],
                    ],
                  },
                  { 'Fn::GetAtt': [Match.stringLikeRegexp('^ChangelogTableRole'), 'RoleId'] },
                ],
              },
            },
          },
        ]),
      },
    });
  });
});

describe('apply stack', () => {
  it('bundles the merge Lambda and feeds it from the queue with partial batch failures and bounded concurrency', () => {
    const t = prod.templates.apply;
    t.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Handler: 'index.handler',
      Timeout: 300,
      MemorySize: 2048,
      TracingConfig: { Mode: 'Active' },
      Environment: {
        Variables: Match.objectLike({
          WAREHOUSE: 'redshift',
          REDSHIFT_CLUSTER_ID: 'analytics-prod',
          REDSHIFT_DATABASE: 'analytics',
          REDSHIFT_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:333333333333:secret:cdc/prod/redshift-AbCdEf',
          STAGING_BUCKET: 'cdc-prod-lake-333333333333-eu-west-1',
          HISTORY_TABLES: 'billing.invoices',
          DROPPED_TABLE_POLICY: 'drop',
          PIPELINE_ID: 'prod',
          POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        }),
      },
    });
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 8 },
    });
  });

  it('scopes the Data API to the one workgroup or cluster and its secret', () => {
    const statements = (t: SynthesizedStage) =>
      Object.values(t.templates.apply.findResources('AWS::IAM::Policy')).flatMap(
        (p) => p.Properties.PolicyDocument.Statement as Record<string, unknown>[],
      );
    const prodData = statements(prod).find((s) => JSON.stringify(s.Action).includes('redshift-data:ExecuteStatement'));
    expect(JSON.stringify(prodData!.Resource)).toContain(':redshift:eu-west-1:333333333333:cluster:analytics-prod');
    const stagingData = statements(staging).find((s) =>
      JSON.stringify(s.Action).includes('redshift-data:ExecuteStatement'),
    );
    expect(JSON.stringify(stagingData!.Resource)).toContain(
      ':redshift-serverless:eu-west-1:222222222222:workgroup/0f1e2d3c-4b5a-4697-8877-665544332211',
    );
    const describe = statements(prod).find((s) => JSON.stringify(s.Action).includes('DescribeStatement'));
    expect(describe!.Condition).toEqual({
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Glue/IAM placeholders, not a template
      StringEquals: { 'redshift-data:statement-owner-iam-userid': '${aws:userid}' },
    });
    expect(
      statements(prod).some(
        (s) => s.Resource === 'arn:aws:secretsmanager:eu-west-1:333333333333:secret:cdc/prod/redshift-AbCdEf',
      ),
    ).toBe(true);
  });
});

describe('secrets encrypted with a customer managed KMS key', () => {
  const sourceKey = 'arn:aws:kms:eu-west-1:222222222222:key/11111111-2222-3333-4444-555555555555';
  const redshiftKey = 'arn:aws:kms:eu-west-1:222222222222:key/66666666-7777-8888-9999-000000000000';
  /** Every IAM policy statement of a template, with the logical id of the policy that holds it. */
  const statements = (t: SynthesizedStage['templates'][keyof SynthesizedStage['templates']]) =>
    Object.entries(t.findResources('AWS::IAM::Policy')).flatMap(([id, p]) =>
      (p.Properties.PolicyDocument.Statement as Record<string, unknown>[]).map((s) => ({ id, ...s })),
    );
  const decryptVia = (key: string) =>
    expect.objectContaining({
      Action: 'kms:Decrypt',
      Resource: key,
      Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' } },
    });

  it('lets every reader of the source and Redshift secrets decrypt them with their key, through Secrets Manager only', () => {
    const s = synthStage('staging', (c) => ({
      ...c,
      source: { ...c.source, secretKmsKeyArn: sourceKey },
      redshift: { ...c.redshift, secretKmsKeyArn: redshiftKey },
    }));
    // ECS reads the source secret with the task execution role to inject it.
    const capture = statements(s.templates.capture).filter((x) => x.id.startsWith('ProducerTaskExecutionRole'));
    expect(capture).toContainEqual(decryptVia(sourceKey));
    // The merge and the table-creating resource read the Redshift secret through the Data API; Firehose for COPY.
    expect(statements(s.templates.apply).filter((x) => x.id.startsWith('MergeRole'))).toContainEqual(
      decryptVia(redshiftKey),
    );
    const delivery = statements(s.templates.delivery);
    expect(delivery.filter((x) => x.id.startsWith('ChangelogTableRole'))).toContainEqual(decryptVia(redshiftKey));
    expect(delivery.filter((x) => x.id.startsWith('DeliveryToRedshiftRole'))).toContainEqual(decryptVia(redshiftKey));
  });

  it('adds no key grant when the secrets use the AWS managed key', () => {
    for (const t of Object.values(staging.templates))
      expect(JSON.stringify(t.toJSON())).not.toContain('kms:ViaService');
  });
});

describe('observability stack', () => {
  const expected: [string, string, number, string][] = [
    ['ProducerLag', 'SecondsBehindSource', 120, 'GreaterThanThreshold'],
    ['ProducerNotRunning', 'RunningTaskCount', 1, 'LessThanThreshold'],
    ['ProducerErrors', 'ProducerErrors', 0, 'GreaterThanThreshold'],
    ['ProducerRestarts', 'ProducerStarts', 3, 'GreaterThanOrEqualToThreshold'],
    ['BinlogPurged', 'BinlogPurged', 0, 'GreaterThanThreshold'],
    ['StreamIteratorAge', 'GetRecords.IteratorAgeMilliseconds', 120_000, 'GreaterThanThreshold'],
    ['StreamWriteThrottles', 'PutRecords.ThrottledRecords', 0, 'GreaterThanThreshold'],
    ['TableResync', 'TableResyncs', 0, 'GreaterThanThreshold'],
    ['LakeDeliveryFreshness', 'DeliveryToS3.DataFreshness', 900, 'GreaterThanThreshold'],
    ['LakeDeliveryFailures', 'DeliveryToS3.Success', 1, 'LessThanThreshold'],
    ['LakePartitionsExceeded', 'PartitionCountExceeded', 0, 'GreaterThanThreshold'],
    ['RedshiftDeliveryFailures', 'DeliveryToRedshift.Success', 1, 'LessThanThreshold'],
    ['MergeThrottles', 'Throttles', 0, 'GreaterThanThreshold'],
    ['MergeDuration', 'Duration', 240_000, 'GreaterThanThreshold'],
    ['MergeBacklog', 'ApproximateAgeOfOldestMessage', 600, 'GreaterThanThreshold'],
    ['DeadLetters', 'ApproximateNumberOfMessagesVisible', 0, 'GreaterThanThreshold'],
    ['ReplicaFreshness', 'ReplicaFreshnessSeconds', 600, 'GreaterThanThreshold'],
    ['StreamApplyIteratorAge', 'IteratorAge', 120_000, 'GreaterThanThreshold'],
    ['StreamApplyHandedOff', 'HandedOff', 0, 'GreaterThanThreshold'],
    ['StreamApplyDuration', 'Duration', 240_000, 'GreaterThanThreshold'],
    ['StreamApplyThrottles', 'Throttles', 0, 'GreaterThanThreshold'],
    ['TableQuarantined', 'TablesQuarantined', 1, 'GreaterThanOrEqualToThreshold'],
    ['UnknownTypeValues', 'UnknownTypeValues', 0, 'GreaterThanThreshold'],
    ['ValuesNulled', 'ValuesNulled', 0, 'GreaterThanThreshold'],
    ['ValuesTruncated', 'ValuesTruncated', 0, 'GreaterThanThreshold'],
    ['RowsSkipped', 'RowsSkipped', 0, 'GreaterThanThreshold'],
  ];

  it.each(expected)('alarms on %s (%s) at %d', (id, metric, threshold, comparison) => {
    const alarms = prod.templates.observability.findResources('AWS::CloudWatch::Alarm', {
      Properties: { AlarmName: Match.stringLikeRegexp(`^cdc-prod-(critical|warning)-${id}$`) },
    });
    const [alarm] = Object.values(alarms);
    expect(alarm, id).toBeDefined();
    expect(alarm!.Properties).toMatchObject({ Threshold: threshold, ComparisonOperator: comparison });
    // A metric alarm names its metric; a math alarm (both apply paths) names it in each of its metric queries.
    const names = alarm!.Properties.Metrics
      ? (alarm!.Properties.Metrics as { MetricStat?: { Metric: { MetricName: string } } }[]).flatMap((q) =>
          q.MetricStat ? [q.MetricStat.Metric.MetricName] : [],
        )
      : [alarm!.Properties.MetricName];
    expect(new Set(names)).toEqual(new Set([metric]));
    expect(alarm!.Properties.AlarmActions).toHaveLength(1);
    expect(alarm!.Properties.AlarmDescription).toMatch(/Runbook: docs\/operations\.md#[a-z-]+$/);
  });

  it('alarms on merge errors from both the Lambda and the merge metric, and on a silent producer', () => {
    const t = prod.templates.observability;
    // Lake apply: the merge alone (stream apply adds its function's: 'freshness and the stream apply' below).
    lakeApply().templates.observability.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-prod-critical-MergeErrors',
      Metrics: Match.arrayWith([Match.objectLike({ Expression: 'FILL(lambdaErrors, 0) + FILL(mergeErrors, 0)' })]),
      Threshold: 0,
    });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-prod-critical-ProducerLag',
      Namespace: METRICS_NAMESPACE,
      Dimensions: [{ Name: 'Pipeline', Value: 'prod' }],
      TreatMissingData: 'breaching',
    });
    // dev has no Redshift delivery, so no alarm for it.
    expect(
      Object.keys(
        dev.templates.observability.findResources('AWS::CloudWatch::Alarm', {
          Properties: { AlarmName: 'cdc-dev-warning-RedshiftDeliveryFailures' },
        }),
      ),
    ).toHaveLength(0);
  });

  it('alarms on what one table or one value could not get: a quarantined table is critical, altered values warn', () => {
    const t = prod.templates.observability;
    const alarm = (name: string) => {
      const [a] = Object.values(t.findResources('AWS::CloudWatch::Alarm', { Properties: { AlarmName: name } }));
      expect(a, name).toBeDefined();
      return a!.Properties as Record<string, unknown>;
    };
    // A gauge the producer reports every second while a table is set aside: any minute at 1 or more alarms, and it
    // stays in alarm until the quarantine ends (npx cdc resync).
    expect(alarm('cdc-prod-critical-TableQuarantined')).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      Dimensions: [{ Name: 'Pipeline', Value: 'prod' }],
      Statistic: 'Maximum',
      Period: 60,
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
      AlarmDescription: expect.stringMatching(/stopped replicating.*Runbook: docs\/operations\.md#table-quarantined$/),
    });
    expect(alarm('cdc-prod-warning-UnknownTypeValues')).toMatchObject({
      Dimensions: [{ Name: 'Pipeline', Value: 'prod' }],
      Statistic: 'Sum',
      TreatMissingData: 'notBreaching',
      AlarmDescription: expect.stringMatching(/Runbook: docs\/operations\.md#unknown-type-values$/),
    });
    // The merge's metrics carry Powertools' `service` dimension beside the pipeline (`merge` on the lake path,
    // `stream-apply` on the stream path: the alarm adds both); emitted only when a value is altered (sparse), so a
    // missing datapoint is no alarm.
    for (const [name, runbook] of [
      ['cdc-prod-warning-ValuesNulled', 'values-nulled'],
      ['cdc-prod-warning-ValuesTruncated', 'values-truncated'],
      ['cdc-prod-critical-RowsSkipped', 'rows-skipped'],
    ]) {
      const a = alarm(name!);
      expect(a).toMatchObject({
        TreatMissingData: 'notBreaching',
        AlarmDescription: expect.stringMatching(new RegExp(`Runbook: docs/operations\\.md#${runbook}$`)),
      });
      const queries = a.Metrics as { Id: string; Expression?: string; MetricStat?: Record<string, unknown> }[];
      expect(queries.find((q) => q.Expression)?.Expression).toBe('FILL(lakePath, 0) + FILL(streamPath, 0)');
      for (const [id, service] of [
        ['lakePath', 'merge'],
        ['streamPath', 'stream-apply'],
      ])
        expect(queries.find((q) => q.Id === id)?.MetricStat).toMatchObject({
          Metric: {
            Namespace: METRICS_NAMESPACE,
            Dimensions: expect.arrayContaining([
              { Name: 'Pipeline', Value: 'prod' },
              { Name: 'service', Value: service },
            ]),
          },
          Stat: 'Sum',
        });
    }
    // In lake apply the merge's own metric, as before.
    const [lakeNulled] = Object.values(
      lakeApply().templates.observability.findResources('AWS::CloudWatch::Alarm', {
        Properties: { AlarmName: 'cdc-prod-warning-ValuesNulled' },
      }),
    );
    expect(lakeNulled!.Properties).toMatchObject({
      MetricName: 'ValuesNulled',
      Dimensions: expect.arrayContaining([{ Name: 'service', Value: 'merge' }]),
      Statistic: 'Sum',
    });
  });

  it('fills every metric of an alarm math expression, so one missing series does not hide the others', () => {
    for (const stage of [dev, staging, prod]) {
      const alarms = Object.values(stage.templates.observability.findResources('AWS::CloudWatch::Alarm')).filter(
        (a) => a.Properties.Metrics,
      );
      expect(alarms.length).toBeGreaterThan(0);
      for (const a of alarms) {
        const queries = a.Properties.Metrics as { Id: string; Expression?: string; MetricStat?: unknown }[];
        const expression = queries.find((q) => q.Expression)!.Expression!;
        for (const q of queries.filter((m) => m.MetricStat))
          expect(expression, String(a.Properties.AlarmName)).toContain(`FILL(${q.Id}, 0)`);
      }
    }
  });

  it('notifies an encrypted SNS topic with the on-call e-mail and shows one top-to-bottom dashboard', () => {
    const t = prod.templates.observability;
    t.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'data-oncall@example.com' });
    const [dashboard] = Object.values(t.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard!.Properties.DashboardBody);
    for (const title of [
      '1. Producer',
      '2. Kinesis',
      '3. Firehose',
      '4. Merge',
      '5. Replicas',
      'Alarms (top to bottom)',
    ])
      expect(body).toContain(title);
  });
});

describe('stream apply (apply.source: stream)', () => {
  const mapping = (t: SynthesizedStage) => {
    const found = Object.values(
      t.templates.apply.findResources('AWS::Lambda::EventSourceMapping', {
        Properties: { StartingPosition: 'TRIM_HORIZON' },
      }),
    );
    expect(found).toHaveLength(1);
    return found[0]!.Properties as Record<string, unknown>;
  };
  const streamApplyStatements = (t: SynthesizedStage) =>
    Object.entries(t.templates.apply.findResources('AWS::IAM::Policy'))
      .filter(([id]) => id.startsWith('StreamApplyRole'))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Record<string, unknown>[]);
  const importOf = (exportLike: string) => ({ 'Fn::ImportValue': Match.stringLikeRegexp(exportLike) });

  it('reads the change stream through an event source mapping with the batch, window and parallelization of each stage', () => {
    const expected = {
      dev: { BatchSize: 500, MaximumBatchingWindowInSeconds: 1, ParallelizationFactor: 1 },
      staging: { BatchSize: 2000, MaximumBatchingWindowInSeconds: 5, ParallelizationFactor: 1 },
      prod: { BatchSize: 2000, MaximumBatchingWindowInSeconds: 5, ParallelizationFactor: 2 },
    };
    for (const [stage, t] of [
      ['dev', dev],
      ['staging', staging],
      ['prod', prod],
    ] as const) {
      expect(mapping(t), stage).toMatchObject(expected[stage]);
      Template.fromJSON(t.templates.apply.toJSON()).hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        EventSourceArn: importOf('ChangeStream'),
        FunctionName: { Ref: Match.stringLikeRegexp('^StreamApplyFunction') },
      });
    }
  });

  it('bisects failing batches, takes partial batch failures, and bounds retries and record age per stage', () => {
    expect(mapping(dev)).toMatchObject({
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      StartingPosition: 'TRIM_HORIZON',
      MaximumRetryAttempts: 100,
      MaximumRecordAgeInSeconds: 3600,
    });
    expect(mapping(prod)).toMatchObject({
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      MaximumRetryAttempts: 1000,
      MaximumRecordAgeInSeconds: 86400,
    });
    // -1 (no age limit) leaves MaximumRecordAgeInSeconds to the service default, which is -1.
    const unlimited = synthStage(
      'dev',
      (c) => ({ ...c, apply: { stream: { maximumRecordAgeSeconds: -1, maximumRetryAttempts: -1 } } }),
      { bundle: false },
    );
    const p = mapping(unlimited);
    expect(p.MaximumRecordAgeInSeconds).toBeUndefined();
    expect(p.MaximumRetryAttempts).toBe(-1);
  });

  it('writes batches it gives up on, with their records and reason, to the lake bucket (S3 on-failure destination)', () => {
    expect(mapping(prod).DestinationConfig).toEqual({
      OnFailure: {
        Destination: {
          'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::cdc-prod-lake-333333333333-eu-west-1']],
        },
      },
    });
    // Lambda writes there with the function's role: PutObject under aws/lambda/ and ListBucket, only in this account
    // (AWS's advice against a same-named bucket elsewhere), and the pipeline key for the bucket's SSE-KMS.
    const st = streamApplyStatements(prod);
    const inAccount = { StringEquals: { 's3:ResourceAccount': '333333333333' } };
    expect(st).toContainEqual({
      Action: 's3:PutObject',
      Effect: 'Allow',
      Condition: inAccount,
      Resource: {
        'Fn::Join': [
          '',
          ['arn:', { Ref: 'AWS::Partition' }, ':s3:::cdc-prod-lake-333333333333-eu-west-1/aws/lambda/*'],
        ],
      },
    });
    expect(st).toContainEqual({
      Action: 's3:ListBucket',
      Effect: 'Allow',
      Condition: inAccount,
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::cdc-prod-lake-333333333333-eu-west-1']] },
    });
  });

  it('runs the stream handler with the warehouse settings of the merge, the lake bucket, the merge queue and the DLQ', () => {
    prod.templates.apply.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      Runtime: 'nodejs24.x',
      Timeout: 300,
      MemorySize: 2048,
      TracingConfig: { Mode: 'Active' },
      Environment: {
        Variables: Match.objectLike({
          WAREHOUSE: 'redshift',
          REDSHIFT_CLUSTER_ID: 'analytics-prod',
          REDSHIFT_DATABASE: 'analytics',
          REDSHIFT_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:333333333333:secret:cdc/prod/redshift-AbCdEf',
          COPY_ROLE_ARN: importOf('WarehouseCopyRole'),
          HISTORY_TABLES: 'billing.invoices',
          STAGING_BUCKET: 'cdc-prod-lake-333333333333-eu-west-1',
          LAKE_BUCKET: 'cdc-prod-lake-333333333333-eu-west-1',
          // The lake path's merge queue: the merge Lambda retries a handed-off table from it.
          HANDOFF_QUEUE_URL: importOf('RefLakeNotifications'),
          DEAD_LETTER_QUEUE_URL: importOf('RefLakeDeadLetterQueue'),
          TABLES_PER_TRANSACTION: '4',
          PIPELINE_ID: 'prod',
          POWERTOOLS_SERVICE_NAME: 'stream-apply',
          POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        }),
      },
    });
  });

  it('lets the stream apply read only the one stream and decrypt with its key, and write only its lake prefixes', () => {
    const st = streamApplyStatements(prod);
    const kinesis = st.filter((x) => JSON.stringify(x.Action).includes('kinesis:'));
    expect(kinesis).toEqual([
      {
        Action: [
          'kinesis:DescribeStream',
          'kinesis:DescribeStreamSummary',
          'kinesis:GetRecords',
          'kinesis:GetShardIterator',
          'kinesis:ListShards',
          'kinesis:SubscribeToShard',
        ],
        Effect: 'Allow',
        Resource: { 'Fn::ImportValue': expect.stringMatching(/ChangeStream.*Arn/) },
      },
    ]);
    // One key encrypts the stream, the lake and the logs: decrypt stream records and claim checks, encrypt staging,
    // handoff and failure objects; on that key only.
    const kms = st.filter((x) => JSON.stringify(x.Action).includes('kms:'));
    expect(kms).toEqual([
      {
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Effect: 'Allow',
        Resource: { 'Fn::ImportValue': expect.stringMatching(/DataKey.*Arn/) },
      },
    ]);
    const objects = (action: string) =>
      st
        .filter((x) => x.Action === action || (Array.isArray(x.Action) && x.Action.includes(action)))
        .flatMap((x) => [x.Resource].flat())
        .map((r) => JSON.stringify(r).match(/eu-west-1(\/[^"]*)?"/)?.[1] ?? '(bucket)')
        .sort();
    expect(objects('s3:GetObject')).toEqual(['/claim-check/*']);
    expect(objects('s3:PutObject')).toEqual(['/aws/lambda/*', '/errors/stream/*', '/handoff/*', '/staging/*']);
    expect(objects('s3:DeleteObject')).toEqual(['/staging/*']);
    // It reads no changelog object and never deletes outside staging/.
    expect(JSON.stringify(st)).not.toContain('/changelog/');
    // Sends to the merge queue (handoffs) and the dead-letter queue (poison), nothing else of SQS.
    const sqs = st.filter((x) => JSON.stringify(x.Action).includes('sqs:'));
    expect(sqs).toEqual([
      {
        Action: ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage'],
        Effect: 'Allow',
        Resource: [
          { 'Fn::ImportValue': expect.stringMatching(/LakeDeadLetterQueue.*Arn/) },
          { 'Fn::ImportValue': expect.stringMatching(/LakeNotifications.*Arn/) },
        ],
      },
    ]);
    // The Data API as the merge has it: the one cluster, its secret, and its own statements.
    expect(st).toContainEqual(
      expect.objectContaining({
        Action: ['redshift-data:BatchExecuteStatement', 'redshift-data:ExecuteStatement'],
        Resource: {
          'Fn::Join': [
            '',
            ['arn:', { Ref: 'AWS::Partition' }, ':redshift:eu-west-1:333333333333:cluster:analytics-prod'],
          ],
        },
      }),
    );
    // Resource "*" only where the action takes no resource: X-Ray, and the Data API's statement calls limited to the
    // caller's own statements.
    expect(st.filter((x) => x.Resource === '*').map((x) => [x.Action, x.Condition ?? null])).toEqual([
      [['xray:PutTelemetryRecords', 'xray:PutTraceSegments'], null],
      [
        ['redshift-data:CancelStatement', 'redshift-data:DescribeStatement', 'redshift-data:GetStatementResult'],
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, not a template
        { StringEquals: { 'redshift-data:statement-owner-iam-userid': '${aws:userid}' } },
      ],
    ]);
  });

  it('lets the lake path merge read handed-off objects, since it retries them from the queue', () => {
    const merge = Object.entries(prod.templates.apply.findResources('AWS::IAM::Policy'))
      .filter(([id]) => id.startsWith('MergeRole'))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Record<string, unknown>[]);
    const get = merge.find((x) => x.Action === 's3:GetObject');
    expect(JSON.stringify(get!.Resource)).toContain('/handoff/*');
  });

  it('keeps the current wiring with apply.source lake: no stream apply, no stream mapping, notifications to the merge', () => {
    const l = lakeApply();
    l.templates.apply.resourceCountIs('AWS::Lambda::Function', 1);
    const mappings = Object.values(l.templates.apply.findResources('AWS::Lambda::EventSourceMapping'));
    expect(mappings).toHaveLength(1);
    expect(JSON.stringify(mappings[0]!.Properties.EventSourceArn)).toMatch(/LakeNotifications/);
    expect(l.stacks.apply.streamApply).toBeUndefined();
    l.templates.stateful.resourceCountIs('Custom::S3BucketNotifications', 1);
    // Stream mode: two functions, two mappings (the queue and the stream).
    prod.templates.apply.resourceCountIs('AWS::Lambda::Function', 2);
    prod.templates.apply.resourceCountIs('AWS::Lambda::EventSourceMapping', 2);
  });
});

describe('freshness and the stream apply on the dashboard and in alarms', () => {
  const alarmOf = (t: SynthesizedStage, name: string) => {
    const [a] = Object.values(
      t.templates.observability.findResources('AWS::CloudWatch::Alarm', { Properties: { AlarmName: name } }),
    );
    return a?.Properties as Record<string, unknown> | undefined;
  };

  it('alarms on end-to-end freshness from both handlers: the maximum of both paths in stream apply', () => {
    const a = alarmOf(prod, 'cdc-prod-critical-ReplicaFreshness')!;
    const queries = a.Metrics as { Id: string; Expression?: string; MetricStat?: Record<string, unknown> }[];
    expect(queries.find((q) => q.Expression)?.Expression).toBe('MAX([FILL(lakePath, 0), FILL(streamPath, 0)])');
    for (const [id, service] of [
      ['lakePath', 'merge'],
      ['streamPath', 'stream-apply'],
    ])
      expect(queries.find((q) => q.Id === id)?.MetricStat, id).toEqual({
        Metric: {
          Namespace: METRICS_NAMESPACE,
          MetricName: 'ReplicaFreshnessSeconds',
          Dimensions: [
            { Name: 'Pipeline', Value: 'prod' },
            { Name: 'service', Value: service },
          ],
        },
        Period: 60,
        Stat: 'Maximum',
      });
    expect(a).toMatchObject({ Threshold: 600, EvaluationPeriods: 5, DatapointsToAlarm: 3 });
    // Lake apply: the merge's metric alone.
    expect(alarmOf(lakeApply(), 'cdc-prod-critical-ReplicaFreshness')).toMatchObject({
      MetricName: 'ReplicaFreshnessSeconds',
      Dimensions: [
        { Name: 'Pipeline', Value: 'prod' },
        { Name: 'service', Value: 'merge' },
      ],
      Threshold: 600,
    });
  });

  it('links every alarm of every stage to a runbook section that exists in docs/operations.md', () => {
    const runbook = readFileSync(join(REPO_ROOT, 'docs/operations.md'), 'utf8');
    const sections = new Set([...runbook.matchAll(/^## ([a-z0-9-]+)$/gm)].map((m) => m[1]));
    const missing = [dev, staging, prod, lakeApply()].flatMap((t) =>
      Object.values(t.templates.observability.findResources('AWS::CloudWatch::Alarm'))
        .map((a) => /#([a-z0-9-]+)$/.exec(String(a.Properties.AlarmDescription))?.[1] ?? '(no anchor)')
        .filter((anchor) => !sections.has(anchor)),
    );
    expect([...new Set(missing)]).toEqual([]);
  });

  it("alarms on the mapping's iterator age (Lambda's, in ms) and warns on handoffs, only in stream apply", () => {
    expect(alarmOf(prod, 'cdc-prod-critical-StreamApplyIteratorAge')).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'IteratorAge',
      Dimensions: [
        { Name: 'FunctionName', Value: { 'Fn::ImportValue': expect.stringMatching(/StreamApplyFunction/) } },
      ],
      Statistic: 'Maximum',
      Period: 60,
      Threshold: 120_000,
    });
    expect(alarmOf(prod, 'cdc-prod-warning-StreamApplyHandedOff')).toMatchObject({
      MetricName: 'HandedOff',
      Dimensions: [
        { Name: 'Pipeline', Value: 'prod' },
        { Name: 'service', Value: 'stream-apply' },
      ],
      Statistic: 'Sum',
      Threshold: 0,
      TreatMissingData: 'notBreaching',
    });
    expect(alarmOf(lakeApply(), 'cdc-prod-critical-StreamApplyIteratorAge')).toBeUndefined();
    expect(alarmOf(lakeApply(), 'cdc-prod-warning-StreamApplyHandedOff')).toBeUndefined();
    // Errors of either function count as merge errors.
    expect(alarmOf(prod, 'cdc-prod-critical-MergeErrors')).toMatchObject({
      Metrics: expect.arrayContaining([
        expect.objectContaining({
          Expression:
            'FILL(lambdaErrors, 0) + FILL(mergeErrors, 0) + FILL(streamLambdaErrors, 0) + FILL(streamMergeErrors, 0)',
        }),
      ]),
    });
  });

  it('alarms when the mapping gives up on records (written under aws/lambda/, or dropped): the replicas miss them', () => {
    // The mapping's event metrics are opt-in (EventCount), per mapping (EventSourceMappingUUID).
    expect(
      Object.values(prod.templates.apply.findResources('AWS::Lambda::EventSourceMapping')).find(
        (m) => m.Properties.StartingPosition === 'TRIM_HORIZON',
      )!.Properties.MetricsConfig,
    ).toEqual({ Metrics: ['EventCount'] });
    const a = alarmOf(prod, 'cdc-prod-critical-StreamApplySetAside')!;
    expect(a).toMatchObject({
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    const queries = a.Metrics as { Id: string; Expression?: string; MetricStat?: Record<string, unknown> }[];
    expect(queries.find((q) => q.Expression)?.Expression).toBe('FILL(setAside, 0) + FILL(dropped, 0)');
    for (const [id, name] of [
      ['setAside', 'OnFailureDestinationDeliveredEventCount'],
      ['dropped', 'DroppedEventCount'],
    ])
      expect(queries.find((q) => q.Id === id)?.MetricStat, id).toMatchObject({
        Metric: {
          Namespace: 'AWS/Lambda',
          MetricName: name,
          Dimensions: [
            {
              Name: 'EventSourceMappingUUID',
              Value: { 'Fn::ImportValue': expect.stringMatching(/StreamApplyStreamMapping/) },
            },
          ],
        },
        Stat: 'Sum',
      });
    expect(alarmOf(lakeApply(), 'cdc-prod-critical-StreamApplySetAside')).toBeUndefined();
  });

  it('shows freshness p50/p99 of each path and, in stream apply, the iterator age on the dashboard', () => {
    const body = (t: SynthesizedStage) =>
      JSON.stringify(Object.values(t.templates.observability.findResources('AWS::CloudWatch::Dashboard'))[0]);
    const stream = body(prod);
    expect(stream).toContain('5. Replicas: freshness p50/p99 (s)');
    for (const label of ['stream path p50', 'stream path p99', 'lake path p50', 'lake path p99'])
      expect(stream).toContain(label);
    expect(stream).toContain('4. Stream apply: iterator age (ms), handed off, set aside');
    expect(stream).toContain('\\"IteratorAge\\"');
    const lakeBody = body(lakeApply());
    expect(lakeBody).toContain('lake path p99');
    expect(lakeBody).not.toContain('stream path');
    expect(lakeBody).not.toContain('IteratorAge\\"');
  });
});

describe('snapshots', () => {
  it.each(['stateful', 'capture', 'delivery', 'apply', 'observability'] as const)('%s stack (prod)', (part) => {
    expect(normalizedTemplate(prod.templates[part])).toMatchSnapshot();
  });
});
