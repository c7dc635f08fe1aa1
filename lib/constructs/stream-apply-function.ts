import * as path from 'node:path';
import { Duration, type RemovalPolicy, Token } from 'aws-cdk-lib';
import { Metric, type MetricOptions } from 'aws-cdk-lib/aws-cloudwatch';
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import type { IStream } from 'aws-cdk-lib/aws-kinesis';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { EventSourceMapping, type IEventSourceDlq, MetricType, StartingPosition } from 'aws-cdk-lib/aws-lambda';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import {
  LAKE_CLAIM_CHECK_PREFIX,
  LAKE_HANDOFF_PREFIX,
  LAKE_STAGING_PREFIX,
  LAKE_STREAM_ERROR_PREFIX,
} from '../../shared/lake-layout';
import { MergeMetric } from '../../shared/metrics';
import { type ChangelogLake, STREAM_FAILURE_PREFIX } from './changelog-lake';
import { grantKey, STREAM_READ_ACTIONS } from './grants';
import { createMergeRuntime, MergeRuntimeConstruct } from './merge-function';
import { acknowledgeWildcards, objectPrefixes } from './nag';
import { REPO_ROOT } from './producer-service';
import { PropsCheck } from './props-validation';
import type { RedshiftTarget } from './redshift-target';

export const STREAM_APPLY_ENTRY = path.join(REPO_ROOT, 'lambdas/merge/stream-handler.ts');
/** The stream apply's Powertools service name (lambdas/merge/stream-handler.ts): a dimension of its metrics. */
export const STREAM_APPLY_SERVICE = 'stream-apply';

export interface StreamApplyFunctionProps {
  readonly pipelineId: string;
  /** The change stream (KMS-encrypted: the function gets kms:Decrypt on its key). */
  readonly stream: IStream;
  /** Claim checks, staging files, handoffs and failed batches live in the lake; handoffs go to its merge queue. */
  readonly lake: ChangelogLake;
  readonly warehouse: RedshiftTarget;
  /** Encrypts the function's environment and logs (the pipeline key). */
  readonly encryptionKey: IKey;
  /** Records per invocation, 1–10000 (one shard's records). @default 1000 */
  readonly batchSize?: number;
  /**
   * Time Lambda gathers records before invoking, 0–300 s in whole seconds: while changes trickle in, each shard
   * (× parallelization factor) commits at most about once per window. @default 1 second
   */
  readonly maxBatchingWindow?: Duration;
  /** Batches of one shard processed at once, 1–10 (Lambda keeps order per partition key). @default 1 */
  readonly parallelizationFactor?: number;
  /**
   * Retries of a batch the function failed (bisected each time) before Lambda writes it to the on-failure
   * destination; -1 retries until the records expire. @default 1000
   */
  readonly retryAttempts?: number;
  /**
   * Records older than this are not retried but written to the on-failure destination, 60 s to 7 days, or
   * `'unlimited'` (the stream's retention decides). @default 1 day
   */
  readonly maxRecordAge?: Duration | 'unlimited';
  /**
   * Tables whose row merges share one warehouse transaction, 1–8 (never more than fit the Data API's 40 statements).
   * @default 4
   */
  readonly tablesPerTransaction?: number;
  /** @default 1024 */
  readonly memorySize?: number;
  /** @default 5 minutes */
  readonly timeout?: Duration;
  readonly logRetention?: RetentionDays;
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The stream apply: a Lambda (lambdas/merge/stream-handler.ts) fed by a Kinesis event source mapping on the change
 * stream, so a committed row reaches its replica in seconds instead of after Firehose's ≥ 60 s buffer. Each batch is
 * staged to S3 and merged set-based, several tables per warehouse transaction, with the same merge as the lake path.
 *
 * Failure handling, smallest unit first: an undecodable record is kept under `errors/stream/` with its reason; a table
 * whose merge fails while the warehouse answers is handed off (its events under `handoff/`, a message on the lake
 * path's merge queue, which retries with backoff and dead-letters with the reason); only when the warehouse or S3 does
 * not answer does the function report a batch item failure, and the mapping retries from that record, bisecting the
 * batch (`bisectBatchOnError`), up to `retryAttempts` or `maxRecordAge`; then Lambda writes the whole invocation record
 * (the batch's records and why) to the lake bucket under `aws/lambda/`, and moves on.
 */
export class StreamApplyFunction extends MergeRuntimeConstruct {
  readonly fn: NodejsFunction;
  readonly mapping: EventSourceMapping;
  /** The function's timeout: the duration alarm is a share of it. */
  readonly timeout: Duration;

  constructor(scope: Construct, id: string, props: StreamApplyFunctionProps) {
    super(scope, id, props.pipelineId, STREAM_APPLY_SERVICE);
    const batchSize = props.batchSize ?? 1000;
    const window = props.maxBatchingWindow ?? Duration.seconds(1);
    const parallelizationFactor = props.parallelizationFactor ?? 1;
    const retryAttempts = props.retryAttempts ?? 1000;
    const maxRecordAge = props.maxRecordAge ?? Duration.days(1);
    const tablesPerTransaction = props.tablesPerTransaction ?? 4;
    const memorySize = props.memorySize ?? 1024;
    this.timeout = props.timeout ?? Duration.minutes(5);

    const check = new PropsCheck(this);
    check.number('batchSize', batchSize, { min: 1, max: 10000, integer: true });
    check.duration('maxBatchingWindow', window, {
      maxSeconds: 300,
      wholeSeconds: true,
      why: 'MaximumBatchingWindowInSeconds',
    });
    if (!Token.isUnresolved(batchSize) && !window.isUnresolved() && batchSize > 10)
      check.require(
        window.toSeconds({ integral: false }) >= 1,
        'maxBatchingWindow',
        window.toHumanString(),
        `must be at least 1 s when batchSize is over 10 (got ${batchSize}; Lambda API, MaximumBatchingWindowInSeconds)`,
      );
    check.number('parallelizationFactor', parallelizationFactor, { min: 1, max: 10, integer: true });
    check.number('retryAttempts', retryAttempts, { min: -1, max: 10000, integer: true });
    if (maxRecordAge !== 'unlimited')
      check.duration('maxRecordAge', maxRecordAge, {
        minSeconds: 60,
        maxSeconds: 604800,
        wholeSeconds: true,
        why: 'MaximumRecordAgeInSeconds',
      });
    check.number('tablesPerTransaction', tablesPerTransaction, { min: 1, max: 8, integer: true });
    check.number('memorySize', memorySize, { min: 128, max: 10240, integer: true });
    check.duration('timeout', this.timeout, { minSeconds: 1, maxSeconds: 900, wholeSeconds: true });
    check.throwIfAny();

    const { lake } = props;
    const { fn, role } = createMergeRuntime(this, {
      entry: STREAM_APPLY_ENTRY,
      serviceName: STREAM_APPLY_SERVICE,
      description: `Stream apply of the CDC pipeline ${props.pipelineId}`,
      pipelineId: props.pipelineId,
      encryptionKey: props.encryptionKey,
      memorySize,
      timeout: this.timeout,
      environment: {
        ...props.warehouse.mergeEnvironment,
        STAGING_BUCKET: lake.bucketName,
        LAKE_BUCKET: lake.bucketName,
        HANDOFF_QUEUE_URL: lake.notifications.queueUrl,
        DEAD_LETTER_QUEUE_URL: lake.deadLetterQueue.queueUrl,
        TABLES_PER_TRANSACTION: String(tablesPerTransaction),
      },
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
      ...(props.removalPolicy ? { removalPolicy: props.removalPolicy } : {}),
    });
    this.fn = fn;

    // All in the role's default policy, which the function depends on (and the mapping on the function): Lambda
    // checks the role's permissions when the mapping is created, so it must not come first.
    grantStreamEventSource(fn, props.stream, props.encryptionKey);
    lake.grantStreamApply(fn);
    lake.grantStreamFailureWrite(fn);
    lake.notifications.grantSendMessages(fn);
    lake.deadLetterQueue.grantSendMessages(fn);
    props.warehouse.grantDataApi(fn);

    // The lake bucket by name in this stack: the destination ARN and the grants above name the same bucket.
    const failures = lake.bucketIn(this);
    const onFailure: IEventSourceDlq = { bind: () => ({ destination: failures.bucketArn }) };
    this.mapping = new EventSourceMapping(this, 'StreamMapping', {
      target: fn,
      eventSourceArn: props.stream.streamArn,
      // The oldest record still in the stream: a new mapping (first deploy, or lake → stream) misses nothing; what the
      // lake path already merged merges again to the same rows (positions).
      startingPosition: StartingPosition.TRIM_HORIZON,
      batchSize,
      maxBatchingWindow: window,
      parallelizationFactor,
      bisectBatchOnError: true,
      reportBatchItemFailures: true,
      retryAttempts,
      ...(maxRecordAge === 'unlimited' ? {} : { maxRecordAge }),
      onFailure,
      // Opt-in metrics of the mapping itself: how many records it gave up on (metricRecordsSetAside).
      metricsConfig: { metrics: [MetricType.EVENT_COUNT] },
    });

    acknowledgeWildcards(
      role,
      objectPrefixes(
        LAKE_CLAIM_CHECK_PREFIX,
        LAKE_STAGING_PREFIX,
        LAKE_HANDOFF_PREFIX,
        LAKE_STREAM_ERROR_PREFIX,
        STREAM_FAILURE_PREFIX,
      ),
      `Object access only under the lake prefixes the stream apply reads (${LAKE_CLAIM_CHECK_PREFIX}) and writes (${LAKE_STAGING_PREFIX}, ${LAKE_HANDOFF_PREFIX}, ${LAKE_STREAM_ERROR_PREFIX}), and where Lambda writes its failed batches (${STREAM_FAILURE_PREFIX})`,
    );
  }

  /**
   * Age of the last record of a batch when the function received it, in milliseconds (Lambda's
   * `IteratorAge` of a stream event source): the apply falling behind the stream, reported even while every
   * invocation fails. Maximum over 1 minute.
   */
  metricIteratorAgeMilliseconds(options?: MetricOptions): Metric {
    return this.fn.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(1), ...options });
  }
  /**
   * Records the mapping gave up on (retries or record age exhausted) and wrote to the on-failure destination
   * (`aws/lambda/` in the lake bucket): changes the replicas miss until they are replayed. Count, Sum over 5 minutes.
   */
  metricRecordsSetAside(options?: MetricOptions): Metric {
    return this.mappingMetric('OnFailureDestinationDeliveredEventCount', options);
  }
  /** Records the mapping gave up on and could not even write to the on-failure destination. Count, Sum. */
  metricRecordsDropped(options?: MetricOptions): Metric {
    return this.mappingMetric('DroppedEventCount', options);
  }
  private mappingMetric(metricName: string, options?: MetricOptions): Metric {
    // Event source mapping metrics (MetricsConfig EventCount) are per mapping, in Lambda's namespace.
    return new Metric({
      namespace: 'AWS/Lambda',
      metricName,
      dimensionsMap: { EventSourceMappingUUID: this.mapping.eventSourceMappingId },
      statistic: 'Sum',
      period: Duration.minutes(5),
      ...options,
    });
  }
  /** Tables of a batch handed to the lake path's merge queue because their merge failed: count, Sum. */
  metricHandedOff(options?: MetricOptions): Metric {
    return this.metric(MergeMetric.HandedOff, 'Sum', options);
  }
}

/**
 * What a Kinesis event source mapping needs in the function's role, as Lambda lists it
 * (https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-create.html), on the one stream, and kms:Decrypt on
 * the key that encrypts its records. SubscribeToShard serves enhanced fan-out, which the mapping does not use; it is
 * granted anyway because Lambda lists it among the permissions it checks when the mapping is created.
 */
export function grantStreamEventSource(grantee: IGrantable, stream: IStream, fallbackKey: IKey): Grant {
  return Grant.addToPrincipal({
    grantee,
    actions: [...STREAM_READ_ACTIONS, 'kinesis:SubscribeToShard'],
    resourceArns: [stream.streamArn],
  }).combine(grantKey(grantee, stream.encryptionKey ?? fallbackKey, 'decrypt'));
}
