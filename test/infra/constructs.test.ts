/**
 * The constructs on their own: props validation (exact messages), grant methods returning iam.Grant, and metric
 * methods whose names carry their unit, with alarm thresholds converted to that unit.
 */
import { App, Duration, Lazy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { ContainerImage } from 'aws-cdk-lib/aws-ecs';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { beforeAll, describe, expect, it } from 'vitest';
import { environments } from '../../lib/config/environments';
import { validateEnvironmentConfig } from '../../lib/config/validate';
import { Monitoring, type MonitoringProps } from '../../lib/constructs/monitoring';
import { ProducerService, type ProducerServiceProps } from '../../lib/constructs/producer-service';
import { ConstructPropsError } from '../../lib/constructs/props-validation';
import { StreamApplyFunction, type StreamApplyFunctionProps } from '../../lib/constructs/stream-apply-function';
import { createPipeline, type PipelineStacks } from '../../lib/pipeline';
import { CDK_JSON_CONTEXT } from './support/synth';

/** The dev stage's stacks in an app of their own: an app synthesizes once, so each test that synthesizes takes one. */
function devPipeline(): PipelineStacks {
  // No stack is bundled: these tests read alarms, policies and task settings, never the merge Lambda's code.
  const app = new App({ context: { ...CDK_JSON_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
  return createPipeline(app, validateEnvironmentConfig(structuredClone(environments.dev!)), {
    producerImage: ContainerImage.fromRegistry('public.ecr.aws/docker/library/node:24-alpine'),
  });
}

/** Shared by the tests that do not synthesize. */
let stacks: PipelineStacks;
beforeAll(() => {
  stacks = devPipeline();
});

/** The message a construct's props error carries, or a failure when it did not throw one. */
function propsError(build: () => unknown): string {
  try {
    build();
  } catch (e) {
    expect(e).toBeInstanceOf(ConstructPropsError);
    expect((e as ConstructPropsError).code).toBe('CDC_INVALID_CONSTRUCT_PROPS');
    return (e as Error).message;
  }
  throw new Error('expected the props to be rejected');
}

function producerProps(change: Partial<ProducerServiceProps> = {}, p = stacks): ProducerServiceProps {
  const s = p.stateful;
  return {
    vpc: s.vpc,
    pipelineId: 'probe',
    source: { host: 'db.example.com', credentials: s.sourceSecret },
    capture: { include: ['shop.*'] },
    stream: s.changeStream.stream,
    checkpoints: s.checkpoints,
    lake: s.lake,
    encryptionKey: s.key,
    image: ContainerImage.fromRegistry('public.ecr.aws/docker/library/node:24-alpine'),
    ...change,
  };
}

function monitoringProps(change: Partial<MonitoringProps> = {}, p = stacks): MonitoringProps {
  return {
    pipelineId: 'probe',
    sourceHost: 'db.example.com',
    encryptionKey: p.stateful.key,
    producer: p.capture.producer,
    changeStream: p.stateful.changeStream,
    delivery: p.delivery.delivery,
    lake: p.stateful.lake,
    merge: p.apply.merge,
    ...change,
  };
}

describe('ProducerService props', () => {
  it('rejects what Fargate and MySQL cannot take, naming each field and its value in one error', () => {
    const message = propsError(
      () =>
        new ProducerService(
          stacks.capture,
          'BadProducer',
          producerProps({
            pipelineId: 'Probe_1',
            cpu: 1024,
            memoryLimitMiB: 1000,
            stopTimeout: Duration.minutes(3),
            leaseDuration: Duration.millis(1500),
            putRecordsInFlight: 100,
            maxInFlightBytes: 1024 * 1024 * 1024,
            source: {
              host: 'db.example.com',
              port: 70000,
              serverId: 0,
              credentials: stacks.stateful.sourceSecret,
              securityGroupId: 'db-sg',
            },
            capture: { include: [], snapshotChunkRows: 0, snapshotChunkBytes: 1000, signalTable: 'cdc_signal' },
          }),
        ),
    );
    expect(message).toBe(
      [
        'invalid props for Cdc-Dev-Capture/BadProducer:',
        '  - pipelineId = "Probe_1": must be 2-20 lower-case letters, digits and -',
        '  - memoryLimitMiB = 1000: Fargate does not run cpu 1024 with this memory (from 2048 to 8192 in steps of 1024)',
        '  - stopTimeout = 3 minutes: must be at most 120 s (ECS container stopTimeout on Fargate)',
        '  - leaseDuration = 1 second 500 millis: must be a whole number of seconds',
        '  - source.port = 70000: must be between 1 and 65535',
        '  - source.serverId = 0: must be between 1 and 4294967295',
        '  - source.securityGroupId = "db-sg": must be a security group id (sg-…)',
        '  - capture.include = "[]": must name at least one db.table pattern',
        '  - putRecordsInFlight = 100: must be between 1 and 64',
        '  - maxInFlightBytes = 1073741824: must be between 1048576 and 524288000',
        '  - capture.snapshotChunkRows = 0: must be at least 1',
        '  - capture.snapshotChunkBytes = 1000: must be between 1048576 and 1073741824',
        '  - capture.signalTable = "cdc_signal": must be db.table',
      ].join('\n'),
    );
  });

  it('names a CPU size Fargate does not offer', () => {
    expect(propsError(() => new ProducerService(stacks.capture, 'BadCpu', producerProps({ cpu: 300 })))).toBe(
      'invalid props for Cdc-Dev-Capture/BadCpu:\n  - cpu = 300: must be one of 256, 512, 1024, 2048, 4096, 8192, 16384',
    );
  });

  it('skips values known only at deploy time (tokens)', () => {
    const p = devPipeline();
    const unknown = Lazy.number({ produce: () => 0 });
    expect(
      () =>
        new ProducerService(
          p.capture,
          'TokenProducer',
          producerProps(
            {
              stopTimeout: Duration.seconds(unknown),
              source: { host: 'db.example.com', serverId: unknown, credentials: p.stateful.sourceSecret },
            },
            p,
          ),
        ),
    ).not.toThrow();
    // The token resolves at synth into the environment variable, as a string.
    Template.fromStack(p.capture).hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([{ Name: 'SOURCE_SERVER_ID', Value: '0' }]),
          StopTimeout: 0,
        }),
      ],
    });
  });
});

describe('ProducerService KINESIS_SINK_THREAD and MAX_IN_FLIGHT_BYTES', () => {
  /** The value of `name` the producer container gets, for a task of this size and setting. */
  const envOf = (change: Partial<ProducerServiceProps>, name: string): string | undefined => {
    const p = devPipeline();
    new ProducerService(p.capture, 'SizedProducer', producerProps(change, p));
    const defs = Template.fromStack(p.capture).findResources('AWS::ECS::TaskDefinition');
    const env = Object.values(defs)
      .map((d) => d.Properties as { ContainerDefinitions: { Environment: { Name: string; Value: string }[] }[] })
      .map((props) => props.ContainerDefinitions[0]!.Environment)
      .find((e) => e.some((v) => v.Name === 'SOURCE_HOST' && v.Value === 'db.example.com'));
    return env?.find((v) => v.Name === name)?.Value;
  };
  const sinkThread = (change: Partial<ProducerServiceProps>) => envOf(change, 'KINESIS_SINK_THREAD');

  it('bounds unacknowledged bytes at 64 MiB unless set, up to half the task memory', () => {
    expect(envOf({}, 'MAX_IN_FLIGHT_BYTES')).toBe(String(64 * 1024 * 1024));
    expect(envOf({ memoryLimitMiB: 1024, maxInFlightBytes: 256 * 1024 * 1024 }, 'MAX_IN_FLIGHT_BYTES')).toBe(
      String(256 * 1024 * 1024),
    );
  });

  it('is on from 2 vCPU (a second core to send from) and off below, unless set', () => {
    expect(sinkThread({})).toBe('off');
    expect(sinkThread({ cpu: 1024, memoryLimitMiB: 2048 })).toBe('off');
    expect(sinkThread({ cpu: 2048, memoryLimitMiB: 4096 })).toBe('on');
    expect(sinkThread({ cpu: 2048, memoryLimitMiB: 4096, kinesisSinkThread: false })).toBe('off');
    expect(sinkThread({ cpu: 512, kinesisSinkThread: true })).toBe('on');
  });
});

function streamApplyProps(change: Partial<StreamApplyFunctionProps> = {}, p = stacks): StreamApplyFunctionProps {
  const s = p.stateful;
  return {
    pipelineId: 'probe',
    stream: s.changeStream.stream,
    lake: s.lake,
    warehouse: s.warehouse,
    encryptionKey: s.key,
    ...change,
  };
}

describe('StreamApplyFunction props', () => {
  it('rejects what the Kinesis event source mapping and the merge cannot take, naming each field and value', () => {
    const message = propsError(
      () =>
        new StreamApplyFunction(
          stacks.apply,
          'BadStreamApply',
          streamApplyProps({
            batchSize: 0,
            maxBatchingWindow: Duration.seconds(301),
            parallelizationFactor: 11,
            retryAttempts: -2,
            maxRecordAge: Duration.seconds(59),
            tablesPerTransaction: 9,
            memorySize: 64,
            timeout: Duration.minutes(16),
          }),
        ),
    );
    expect(message).toBe(
      [
        'invalid props for Cdc-Dev-Apply/BadStreamApply:',
        '  - batchSize = 0: must be between 1 and 10000',
        '  - maxBatchingWindow = 5 minutes 1 second: must be at most 300 s (MaximumBatchingWindowInSeconds)',
        '  - parallelizationFactor = 11: must be between 1 and 10',
        '  - retryAttempts = -2: must be between -1 and 10000',
        '  - maxRecordAge = 59 seconds: must be at least 60 s (MaximumRecordAgeInSeconds)',
        '  - tablesPerTransaction = 9: must be between 1 and 8',
        '  - memorySize = 64: must be between 128 and 10240',
        '  - timeout = 16 minutes: must be at most 900 s',
      ].join('\n'),
    );
    expect(
      propsError(
        () =>
          new StreamApplyFunction(
            stacks.apply,
            'BadWindow',
            streamApplyProps({ maxBatchingWindow: Duration.millis(1500), batchSize: 100 }),
          ),
      ),
    ).toBe(
      'invalid props for Cdc-Dev-Apply/BadWindow:\n  - maxBatchingWindow = 1 second 500 millis: must be a whole number of seconds (MaximumBatchingWindowInSeconds)',
    );
  });

  it('refuses batches over 10 records without a batching window (Lambda API), and takes an unlimited record age', () => {
    expect(
      propsError(
        () =>
          new StreamApplyFunction(
            stacks.apply,
            'NoWindow',
            streamApplyProps({ maxBatchingWindow: Duration.seconds(0), batchSize: 11 }),
          ),
      ),
    ).toBe(
      'invalid props for Cdc-Dev-Apply/NoWindow:\n  - maxBatchingWindow = "0 seconds": must be at least 1 s when batchSize is over 10 (got 11; Lambda API, MaximumBatchingWindowInSeconds)',
    );
    const p = devPipeline();
    const f = new StreamApplyFunction(p.apply, 'Unlimited', streamApplyProps({ maxRecordAge: 'unlimited' }, p));
    const d = new StreamApplyFunction(p.apply, 'Defaults', streamApplyProps({}, p));
    const resources = Template.fromStack(p.apply).toJSON().Resources;
    const mappingOf = (x: StreamApplyFunction) =>
      resources[p.apply.getLogicalId(x.mapping.node.defaultChild as never)].Properties as Record<string, unknown>;
    expect(mappingOf(f).MaximumRecordAgeInSeconds).toBeUndefined();
    // The documented defaults: 1000 records, 1 s window, one batch per shard, 1000 retries, a day.
    const dp = mappingOf(d);
    expect(dp).toMatchObject({
      BatchSize: 1000,
      MaximumBatchingWindowInSeconds: 1,
      ParallelizationFactor: 1,
      MaximumRetryAttempts: 1000,
      MaximumRecordAgeInSeconds: 86400,
      BisectBatchOnFunctionError: true,
      StartingPosition: 'TRIM_HORIZON',
    });
  });
});

describe('Monitoring props', () => {
  it('rejects thresholds that can never or always fire and bad e-mail addresses, naming field and value', () => {
    const stack = new Stack(stacks.observability.node.scope!, 'MonitoringProbe1', { env: stacks.observability.env });
    const message = propsError(
      () =>
        new Monitoring(
          stack,
          'Monitoring',
          monitoringProps({
            emails: ['on-call'],
            thresholds: {
              producerLag: Duration.seconds(0),
              producerStartsPerHour: 0,
              mergeErrorsPer5Minutes: 1.5,
              deadLetters: -1,
            },
          }),
        ),
    );
    expect(message).toBe(
      [
        'invalid props for MonitoringProbe1/Monitoring:',
        '  - thresholds.producerLag = "0 seconds": must be more than 0',
        '  - thresholds.producerStartsPerHour = 0: must be at least 1',
        '  - thresholds.mergeErrorsPer5Minutes = 1.5: must be a whole number',
        '  - thresholds.deadLetters = -1: must be at least 0',
        '  - emails[0] = "on-call": must be an e-mail address',
      ].join('\n'),
    );
  });

  it('refuses e-mail subscriptions for a topic it does not create (they would be ignored)', () => {
    const stack = new Stack(stacks.observability.node.scope!, 'MonitoringProbe2', { env: stacks.observability.env });
    const topic = Topic.fromTopicArn(stack, 'Existing', 'arn:aws:sns:eu-west-1:111111111111:on-call');
    expect(
      propsError(() => new Monitoring(stack, 'Monitoring', monitoringProps({ topic, emails: ['a@example.com'] }))),
    ).toBe(
      'invalid props for MonitoringProbe2/Monitoring:\n  - emails = "a@example.com": only a topic this construct creates is subscribed to; subscribe them to the given topic',
    );
  });
});

describe('metrics named with their unit', () => {
  /** CloudWatch metrics measured in a unit of time, and that unit (AWS docs; shared/metrics.ts for the runtimes'). */
  const TIME_UNITS: Record<string, 'Milliseconds' | 'Seconds'> = {
    'GetRecords.IteratorAgeMilliseconds': 'Milliseconds',
    'DeliveryToS3.DataFreshness': 'Seconds',
    ApproximateAgeOfOldestMessage: 'Seconds',
    SecondsBehindSource: 'Seconds',
    ReplicaFreshnessSeconds: 'Seconds',
    MergeBatchLatency: 'Milliseconds',
    IteratorAge: 'Milliseconds',
  };

  it('every metricXxx method of a time metric names its unit, and no method names a unit its metric does not have', () => {
    const owners = {
      ProducerService: stacks.capture.producer,
      ChangeStream: stacks.stateful.changeStream,
      ChangelogDelivery: stacks.delivery.delivery,
      ChangelogLake: stacks.stateful.lake,
      MergeFunction: stacks.apply.merge,
      StreamApplyFunction: stacks.apply.streamApply!,
    };
    const wrong: string[] = [];
    let checked = 0;
    for (const [owner, construct] of Object.entries(owners)) {
      const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(construct)).filter((m) =>
        /^metric[A-Z]/.test(m),
      );
      for (const method of methods) {
        const metric = (construct as unknown as Record<string, () => { metricName: string } | undefined>)[method]!.call(
          construct,
        );
        if (!metric) continue; // a metric of a part this stage does not have (the Redshift delivery in dev)
        checked++;
        const unit = TIME_UNITS[metric.metricName];
        const named = /Milliseconds/.test(method) ? 'Milliseconds' : /Seconds/.test(method) ? 'Seconds' : undefined;
        if (unit !== named) wrong.push(`${owner}.${method}: ${metric.metricName} is in ${unit ?? 'no time unit'}`);
      }
    }
    expect(checked).toBeGreaterThan(20);
    expect(wrong).toEqual([]);
  });

  it('reads the Kinesis iterator age in milliseconds and alarms at the threshold converted to milliseconds', () => {
    const p = devPipeline();
    const metric = p.stateful.changeStream.metricIteratorAgeMilliseconds();
    expect(metric.metricName).toBe('GetRecords.IteratorAgeMilliseconds');
    expect(metric.statistic).toBe('Maximum');

    const stack = new Stack(p.observability.node.scope!, 'MonitoringProbe3', { env: p.observability.env });
    new Monitoring(stack, 'Monitoring', monitoringProps({ thresholds: { iteratorAge: Duration.seconds(90) } }, p));
    // Metrics in seconds get thresholds in seconds, whatever unit the Duration was written in.
    const inSeconds = new Stack(p.observability.node.scope!, 'MonitoringProbe4', { env: p.observability.env });
    new Monitoring(
      inSeconds,
      'Monitoring',
      monitoringProps({ thresholds: { replicaFreshness: Duration.minutes(10), producerLag: Duration.minutes(2) } }, p),
    );
    const t = Template.fromStack(stack);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-probe-critical-StreamIteratorAge',
      MetricName: 'GetRecords.IteratorAgeMilliseconds',
      Threshold: 90_000,
      AlarmDescription: Match.stringLikeRegexp(
        '^\\[CRITICAL\\] the slowest reader of the stream \\(Firehose, or the stream apply\\) more than 90 s behind it',
      ),
    });
    // The merge's Lambda Duration is in milliseconds too: 80% of the dev function's 300 s timeout.
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-probe-warning-MergeDuration',
      MetricName: 'Duration',
      Threshold: 240_000,
    });
    const t4 = Template.fromStack(inSeconds);
    t4.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-probe-critical-ReplicaFreshness',
      MetricName: 'ReplicaFreshnessSeconds',
      Threshold: 600,
    });
    t4.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'cdc-probe-critical-ProducerLag',
      MetricName: 'SecondsBehindSource',
      Threshold: 120,
    });
  });

  it('reads the merge batch latency in milliseconds (p99), as the handler emits it', () => {
    const metric = stacks.apply.merge.metricBatchLatencyMilliseconds();
    expect(metric.metricName).toBe('MergeBatchLatency');
    expect(metric.statistic).toBe('p99');
  });
});

describe('grant methods', () => {
  function probeRole(id: string, p = stacks) {
    const stack = new Stack(p.capture.node.scope!, id, { env: p.capture.env });
    return { stack, role: new Role(stack, 'Role', { assumedBy: new ServicePrincipal('ecs-tasks.amazonaws.com') }) };
  }

  it('ChangeStream.grantWrite returns a Grant of exactly the put actions on the one stream', () => {
    const p = devPipeline();
    const { stack, role } = probeRole('GrantProbe1', p);
    const grant = p.stateful.changeStream.grantWrite(role);
    expect(grant.success).toBe(true);
    expect(grant.principalStatements.flatMap((s) => s.actions)).toEqual([
      'kinesis:PutRecords',
      'kinesis:PutRecord',
      'kinesis:ListShards',
      'kinesis:DescribeStreamSummary',
    ]);
    Template.fromStack(stack).hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: [
          Match.objectLike({
            Action: ['kinesis:DescribeStreamSummary', 'kinesis:ListShards', 'kinesis:PutRecord', 'kinesis:PutRecords'],
            Resource: Match.anyValue(),
          }),
        ],
      },
    });
  });

  it('ChangeStream.grantRead returns a Grant of the shard-iterator reads, no writes', () => {
    const { role } = probeRole('GrantProbe2');
    const grant = stacks.stateful.changeStream.grantRead(role);
    expect(grant.success).toBe(true);
    const actions = grant.principalStatements.flatMap((s) => s.actions);
    expect(actions).toContain('kinesis:GetRecords');
    expect(actions.filter((a) => a.startsWith('kinesis:Put'))).toEqual([]);
  });

  it('the lake, checkpoint and warehouse grants return one combined Grant of every statement they add', () => {
    const { role } = probeRole('GrantProbe3');
    const s = stacks.stateful;
    const claimCheck = s.lake.grantClaimCheckWrite(role);
    expect(claimCheck.principalStatements.map((st) => st.actions)).toEqual([
      ['s3:PutObject'],
      ['kms:Decrypt', 'kms:GenerateDataKey'],
    ]);
    const items = s.checkpoints.grantPipelineItems(role, 'probe');
    expect(items.success).toBe(true);
    expect(items.principalStatements[0]!.toStatementJson()).toMatchObject({
      Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['probe'] } },
    });
    expect(items.principalStatements).toHaveLength(2);
    expect(s.lake.grantMerge(role).principalStatements).toHaveLength(3);
    expect(s.lake.grantStreamApply(role).principalStatements.map((st) => st.actions)).toEqual([
      ['s3:GetObject'],
      ['s3:PutObject', 's3:DeleteObject'],
      ['s3:PutObject'],
      ['kms:Decrypt', 'kms:GenerateDataKey'],
    ]);
    const failures = s.lake.grantStreamFailureWrite(role);
    expect(failures.principalStatements.map((st) => st.actions)).toEqual([
      ['s3:PutObject'],
      ['s3:ListBucket'],
      ['kms:Decrypt', 'kms:GenerateDataKey'],
    ]);
    expect(failures.principalStatements[0]!.toStatementJson().Condition).toEqual({
      StringEquals: { 's3:ResourceAccount': '111111111111' },
    });
    expect(s.lake.grantCopyRead(role).principalStatements).toHaveLength(4);
    const dataApi = s.warehouse.grantDataApi(role);
    expect(dataApi.success).toBe(true);
    expect(dataApi.principalStatements.flatMap((st) => st.actions)).toContain('redshift-data:ExecuteStatement');
  });
});
