import * as path from 'node:path';
import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import type { Metric, MetricOptions } from 'aws-cdk-lib/aws-cloudwatch';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Architecture, LoggingFormat, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import {
  LAKE_CHANGELOG_PREFIX,
  LAKE_CLAIM_CHECK_PREFIX,
  LAKE_HANDOFF_PREFIX,
  LAKE_STAGING_PREFIX,
} from '../../shared/lake-layout';
import { METRICS_NAMESPACE, MergeMetric } from '../../shared/metrics';
import type { ChangelogLake } from './changelog-lake';
import { acknowledgeWildcards, objectPrefixes } from './nag';
import { pipelineMetric } from './pipeline-metric';
import { REPO_ROOT } from './producer-service';
import type { RedshiftTarget } from './redshift-target';

export const MERGE_ENTRY = path.join(REPO_ROOT, 'lambdas/merge/handler.ts');
/** The merge's Powertools service name (lambdas/merge/handler.ts): a dimension of its metrics. */
export const MERGE_SERVICE = 'merge';

export interface MergeFunctionProps {
  readonly pipelineId: string;
  readonly lake: ChangelogLake;
  readonly warehouse: RedshiftTarget;
  readonly encryptionKey: IKey;
  /** @default 1024 */
  readonly memorySize?: number;
  /** @default 5 minutes */
  readonly timeout?: Duration;
  /** Concurrent invocations the queue may drive (at least 2). @default 4 */
  readonly maxConcurrency?: number;
  /** Notifications (changelog objects) per invocation. @default 10 */
  readonly batchSize?: number;
  readonly logRetention?: RetentionDays;
  readonly removalPolicy?: RemovalPolicy;
}

/** What the merge and the stream apply share: one bundled Node.js function with its own role and log group. */
export interface MergeRuntimeProps {
  /** The handler module (`handler` is its export). */
  readonly entry: string;
  /** Powertools' `service`: a dimension of every metric the function emits. */
  readonly serviceName: string;
  readonly description: string;
  readonly pipelineId: string;
  readonly encryptionKey: IKey;
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly environment: Record<string, string>;
  readonly logRetention?: RetentionDays;
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The function behind the merge and the stream apply (children `Logs`, `Role`, `Function` of `scope`): its own role
 * with only its own log group (not the AWS-managed AWSLambdaBasicExecutionRole, logs:* on every log group), the
 * handler bundled by esbuild as ESM for Node.js 24 on arm64, X-Ray tracing, environment encrypted with the pipeline
 * key. Grants are the caller's.
 */
export function createMergeRuntime(scope: Construct, props: MergeRuntimeProps): { fn: NodejsFunction; role: Role } {
  const logGroup = new LogGroup(scope, 'Logs', {
    retention: props.logRetention ?? RetentionDays.ONE_MONTH,
    encryptionKey: props.encryptionKey,
    removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
  });
  const role = new Role(scope, 'Role', {
    assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
    description: props.description,
  });
  logGroup.grantWrite(role);
  const fn = new NodejsFunction(scope, 'Function', {
    role,
    entry: props.entry,
    handler: 'handler',
    runtime: Runtime.NODEJS_24_X,
    architecture: Architecture.ARM_64,
    memorySize: props.memorySize,
    timeout: props.timeout,
    logGroup,
    loggingFormat: LoggingFormat.JSON,
    tracing: Tracing.ACTIVE,
    environmentEncryption: props.encryptionKey,
    environment: {
      ...props.environment,
      PIPELINE_ID: props.pipelineId,
      POWERTOOLS_SERVICE_NAME: props.serviceName,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
    },
    bundling: {
      format: OutputFormat.ESM,
      target: 'node24',
      minify: true,
      sourceMap: true,
      // ESM bundles need a require() for the CommonJS dependencies (pg).
      banner: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
      externalModules: ['@aws-sdk/*', 'pg-native'],
    },
  });
  acknowledgeWildcards(
    role,
    (f) => f === 'Resource::*',
    'X-Ray PutTraceSegments/PutTelemetryRecords and Data API DescribeStatement/GetStatementResult/CancelStatement take no resource; the latter are limited to the caller own statements by condition',
  );
  acknowledgeWildcards(
    role,
    (f) => f.startsWith('Resource::') && f.endsWith(':*') && f.includes('Logs'),
    'Log streams inside the function own log group',
  );
  return { fn, role };
}

/**
 * A metric a merge runtime emits (EMF through Powertools): the pipeline's dimension and Powertools' `service`.
 * Period 5 minutes unless given.
 */
export function mergeRuntimeMetric(
  pipelineId: string,
  serviceName: string,
  name: string,
  statistic: string,
  options?: MetricOptions,
): Metric {
  return pipelineMetric(
    pipelineId,
    name,
    statistic,
    { period: Duration.minutes(5), ...options },
    { service: serviceName },
  );
}

/**
 * What the two merge runtimes (the lake path's MergeFunction, the stream path's StreamApplyFunction) report alike: the
 * metrics the shared handler runtime (lambdas/merge/runtime.ts) emits, under each function's Powertools service.
 */
export abstract class MergeRuntimeConstruct extends Construct {
  protected constructor(
    scope: Construct,
    id: string,
    private readonly pipelineId: string,
    private readonly serviceName: string,
  ) {
    super(scope, id);
  }

  protected metric(name: string, statistic: string, options?: MetricOptions): Metric {
    return mergeRuntimeMetric(this.pipelineId, this.serviceName, name, statistic, options);
  }

  metricMergeErrors(options?: MetricOptions): Metric {
    return this.metric(MergeMetric.Errors, 'Sum', options);
  }
  metricPoisonBatches(options?: MetricOptions): Metric {
    return this.metric(MergeMetric.PoisonBatches, 'Sum', options);
  }
  metricRowsApplied(options?: MetricOptions): Metric {
    return this.metric(MergeMetric.RowsApplied, 'Sum', { period: Duration.minutes(1), ...options });
  }
  /** Now minus the newest source commit time applied to a replica. */
  metricReplicaFreshnessSeconds(options?: MetricOptions): Metric {
    return this.metric(MergeMetric.ReplicaFreshness, 'Maximum', { period: Duration.minutes(1), ...options });
  }
  /** Dates no warehouse holds, staged as NULL (the changelog keeps the original). */
  metricValuesNulled(options?: MetricOptions): Metric {
    return this.metric(MergeMetric.ValuesNulled, 'Sum', options);
  }
  /** Row images not merged because their primary key holds a value the warehouse cannot hold. */
  metricRowsSkipped(options?: MetricOptions): Metric {
    return this.metric(MergeMetric.RowsSkipped, 'Sum', options);
  }
  /** Text values cut to fit their Redshift column (OVERSIZE_VALUES=truncate). */
  metricValuesTruncated(options?: MetricOptions): Metric {
    return this.metric(MergeMetric.ValuesTruncated, 'Sum', options);
  }
  /** Time the merge of one batch took, in milliseconds (as the handler emits it), p99. */
  metricBatchLatencyMilliseconds(options?: MetricOptions): Metric {
    return this.metric(MergeMetric.BatchLatency, 'p99', options);
  }
}

/**
 * The merge: a Lambda (lambdas/merge/handler.ts bundled by esbuild) fed by the lake's notification queue. Each
 * changelog object is merged into its replica table; failures are reported per message (partial batch response) so
 * SQS retries only those, up to the queue's maxReceiveCount before the dead-letter queue; poison objects go to the
 * dead-letter queue at once with their reason. Merges of one table serialize on a table lock in the warehouse and are
 * correct in any order (positions), so concurrency only bounds warehouse load. The queue carries Firehose's changelog
 * objects (lake apply) and the stream apply's handed-off objects (`handoff/`), replays and redrives.
 */
export class MergeFunction extends MergeRuntimeConstruct {
  readonly fn: NodejsFunction;
  /** The function's timeout: the merge-duration alarm is a share of it. */
  readonly timeout: Duration;

  constructor(scope: Construct, id: string, props: MergeFunctionProps) {
    super(scope, id, props.pipelineId, MERGE_SERVICE);
    const timeout = props.timeout ?? Duration.minutes(5);
    this.timeout = timeout;
    const maxConcurrency = props.maxConcurrency ?? 4;
    if (!Token.isUnresolved(maxConcurrency) && maxConcurrency < 2)
      throw new Error(`MergeFunction maxConcurrency must be at least 2 (SQS event source), got ${maxConcurrency}`);

    const { fn, role } = createMergeRuntime(this, {
      entry: MERGE_ENTRY,
      serviceName: MERGE_SERVICE,
      description: `Merge function of the CDC pipeline ${props.pipelineId}`,
      pipelineId: props.pipelineId,
      encryptionKey: props.encryptionKey,
      memorySize: props.memorySize ?? 1024,
      timeout,
      environment: {
        ...props.warehouse.mergeEnvironment,
        STAGING_BUCKET: props.lake.bucketName,
        DEAD_LETTER_QUEUE_URL: props.lake.deadLetterQueue.queueUrl,
      },
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
      ...(props.removalPolicy ? { removalPolicy: props.removalPolicy } : {}),
    });
    this.fn = fn;

    this.fn.addEventSource(
      new SqsEventSource(props.lake.notifications, {
        batchSize: props.batchSize ?? 10,
        maxBatchingWindow: Duration.seconds(1),
        reportBatchItemFailures: true,
        maxConcurrency,
      }),
    );
    props.lake.grantMerge(this.fn);
    props.lake.deadLetterQueue.grantSendMessages(this.fn);
    props.warehouse.grantDataApi(this.fn);
    acknowledgeWildcards(
      role,
      objectPrefixes(LAKE_CHANGELOG_PREFIX, LAKE_HANDOFF_PREFIX, LAKE_CLAIM_CHECK_PREFIX, LAKE_STAGING_PREFIX),
      `Object access only under the lake prefixes the merge reads (${LAKE_CHANGELOG_PREFIX}, ${LAKE_HANDOFF_PREFIX}, ${LAKE_CLAIM_CHECK_PREFIX}) and writes (${LAKE_STAGING_PREFIX})`,
    );
  }
}
