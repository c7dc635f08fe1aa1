import { Duration } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IMetric,
  MathExpression,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { type ITopic, Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { type DashboardMetric, dashboardSections } from '../../shared/dashboard-layout';
import { MergeMetric, ProducerMetric } from '../../shared/metrics';
import type { ChangeStream } from './change-stream';
import type { ChangelogDelivery } from './changelog-delivery';
import type { ChangelogLake } from './changelog-lake';
import type { MergeFunction } from './merge-function';
import type { ProducerService } from './producer-service';
import { PropsCheck } from './props-validation';
import type { StreamApplyFunction } from './stream-apply-function';

export type Severity = 'critical' | 'warning';

/** When each alarm fires. Durations in any unit: each alarm converts to its metric's unit. */
export interface MonitoringThresholds {
  /** Producer behind the source (commit time of the last event read). @default 300 seconds */
  readonly producerLag?: Duration;
  /** Producer starts within an hour that mean a crash loop. @default 3 */
  readonly producerStartsPerHour?: number;
  /** A consumer (Firehose, or the stream apply's event source mapping) behind the stream. @default 300 seconds */
  readonly iteratorAge?: Duration;
  /** Records waiting to reach the S3 changelog. @default 900 seconds */
  readonly lakeFreshness?: Duration;
  /** Replicas behind the source commit time (end to end), and changelog objects waiting to be merged. @default 900 seconds */
  readonly replicaFreshness?: Duration;
  /** Merge errors in 5 minutes, twice in a row. @default 0 */
  readonly mergeErrorsPer5Minutes?: number;
  /** Changelog objects in the dead-letter queue. @default 0 */
  readonly deadLetters?: number;
}

export interface MonitoringProps {
  /** Names the alarms, the dashboard and the topic. */
  readonly pipelineId: string;
  /** The source database host, shown in the dashboard header. */
  readonly sourceHost: string;
  /** Encrypts the topic this construct creates. */
  readonly encryptionKey: IKey;
  /** An existing topic to notify. @default a new KMS-encrypted topic */
  readonly topic?: ITopic;
  /** E-mail addresses subscribed to the topic this construct creates (not to a given `topic`). @default none */
  readonly emails?: readonly string[];
  /** @default the defaults of MonitoringThresholds */
  readonly thresholds?: MonitoringThresholds;
  readonly producer: ProducerService;
  readonly changeStream: ChangeStream;
  readonly delivery: ChangelogDelivery;
  readonly lake: ChangelogLake;
  readonly merge: MergeFunction;
  /**
   * The stream apply, when the pipeline applies from the stream: its metrics join the merge's in the freshness,
   * error and value alarms, and its event source mapping's iterator age and handoffs get alarms of their own.
   * @default none (lake apply)
   */
  readonly streamApply?: StreamApplyFunction;
  /** Runbook base URL; each alarm links to its section. @default docs/operations.md in the repository */
  readonly runbookUrl?: string;
}

interface AlarmSpec {
  readonly id: string;
  readonly severity: Severity;
  readonly metric: IMetric;
  readonly threshold: number;
  readonly comparison?: ComparisonOperator;
  readonly evaluationPeriods?: number;
  readonly datapointsToAlarm?: number;
  readonly missing?: TreatMissingData;
  readonly what: string;
  readonly runbook: string;
}

/**
 * Alarms on every stage of the pipeline, an SNS topic they notify, and one dashboard that shows the pipeline top to
 * bottom (source → producer → Kinesis → Firehose → lake/Redshift → merge → replicas): the view on-call opens first.
 */
export class Monitoring extends Construct {
  readonly topic: ITopic;
  readonly dashboard: Dashboard;
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { producer, changeStream, delivery, lake, merge, streamApply } = props;
    const t = props.thresholds ?? {};
    const producerLag = t.producerLag ?? Duration.seconds(300);
    const iteratorAge = t.iteratorAge ?? Duration.seconds(300);
    const lakeFreshness = t.lakeFreshness ?? Duration.seconds(900);
    const replicaFreshness = t.replicaFreshness ?? Duration.seconds(900);
    const producerStartsPerHour = t.producerStartsPerHour ?? 3;
    const mergeErrorsPer5Minutes = t.mergeErrorsPer5Minutes ?? 0;
    const deadLetters = t.deadLetters ?? 0;
    const emails = props.emails ?? [];

    const check = new PropsCheck(this);
    check.matches(
      'pipelineId',
      props.pipelineId,
      /^[a-z][a-z0-9-]{1,19}$/,
      'must be 2-20 lower-case letters, digits and -',
    );
    for (const [field, d] of [
      ['thresholds.producerLag', producerLag],
      ['thresholds.iteratorAge', iteratorAge],
      ['thresholds.lakeFreshness', lakeFreshness],
      ['thresholds.replicaFreshness', replicaFreshness],
    ] as const)
      check.require(
        d.isUnresolved() || d.toMilliseconds({ integral: false }) > 0,
        field,
        d.toHumanString(),
        'must be more than 0',
      );
    check.number('thresholds.producerStartsPerHour', producerStartsPerHour, { min: 1, integer: true });
    check.number('thresholds.mergeErrorsPer5Minutes', mergeErrorsPer5Minutes, { min: 0, integer: true });
    check.number('thresholds.deadLetters', deadLetters, { min: 0, integer: true });
    emails.forEach((e, i) => {
      check.matches(`emails[${i}]`, e, /^[^@\s]+@[^@\s]+\.[^@\s]+$/, 'must be an e-mail address');
    });
    check.require(
      !(props.topic && emails.length > 0),
      'emails',
      emails.join(','),
      'only a topic this construct creates is subscribed to; subscribe them to the given topic',
    );
    check.throwIfAny();

    const seconds = (d: Duration) => d.toSeconds({ integral: false });
    const pipelineId = props.pipelineId;
    const runbook = props.runbookUrl ?? 'docs/operations.md';
    const prefix = `cdc-${pipelineId}`;

    if (props.topic) this.topic = props.topic;
    else {
      const topic = new Topic(this, 'Topic', {
        displayName: `CDC pipeline ${pipelineId} alarms`,
        masterKey: props.encryptionKey,
        enforceSSL: true,
      });
      for (const email of emails) topic.addSubscription(new EmailSubscription(email));
      this.topic = topic;
    }

    /**
     * A merge metric over both apply paths: the merge's alone in lake apply; in stream apply the sum (counts) or the
     * maximum (freshness) of both runtimes' series, each FILLed: either is sparse, and an expression over a missing
     * series has no datapoint at all.
     */
    const bothPaths = (
      pick: (runtime: MergeFunction | StreamApplyFunction) => IMetric,
      how: 'sum' | 'max',
      label: string,
      period: Duration,
    ): IMetric =>
      streamApply
        ? new MathExpression({
            expression:
              how === 'sum'
                ? 'FILL(lakePath, 0) + FILL(streamPath, 0)'
                : 'MAX([FILL(lakePath, 0), FILL(streamPath, 0)])',
            usingMetrics: { lakePath: pick(merge), streamPath: pick(streamApply) },
            label,
            period,
          })
        : pick(merge);
    const fiveMinutes = Duration.minutes(5);

    const specs: AlarmSpec[] = [
      {
        id: 'ProducerLag',
        severity: 'critical',
        metric: producer.metricSecondsBehindSource(),
        threshold: seconds(producerLag),
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        // No lag reported means no producer reporting: as bad as lagging.
        missing: TreatMissingData.BREACHING,
        what: `producer more than ${seconds(producerLag)} s behind the source, or not reporting`,
        runbook: 'producer-lag',
      },
      {
        id: 'ProducerNotRunning',
        severity: 'critical',
        metric: producer.metricRunningTasks(),
        threshold: 1,
        comparison: ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 5,
        datapointsToAlarm: 5,
        missing: TreatMissingData.BREACHING,
        what: 'no producer task running for 5 minutes',
        runbook: 'producer-not-running',
      },
      {
        id: 'ProducerErrors',
        severity: 'warning',
        metric: producer.metricErrors(),
        threshold: 0,
        what: 'the producer reported errors',
        runbook: 'producer-errors',
      },
      {
        id: 'ProducerRestarts',
        severity: 'warning',
        metric: producer.metricStarts(),
        threshold: producerStartsPerHour,
        comparison: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        what: `the producer started ${producerStartsPerHour} or more times within an hour (crash loop)`,
        runbook: 'producer-restarts',
      },
      {
        id: 'BinlogPurged',
        severity: 'critical',
        metric: producer.metricBinlogPurged(),
        threshold: 0,
        what: 'the binlog position the producer needs is gone from the source: a re-snapshot is needed',
        runbook: 'binlog-purged',
      },
      {
        id: 'TableResync',
        severity: 'warning',
        metric: producer.metricTableResyncs(),
        threshold: 0,
        what: 'a replica is being rebuilt from a backfill (incompatible type change, RENAME TABLE or npx cdc resync): it is incomplete until the backfill ends',
        runbook: 'table-resync',
      },
      {
        id: 'TableQuarantined',
        severity: 'critical',
        metric: producer.metricTablesQuarantined(),
        threshold: 1,
        comparison: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        // A gauge reported every second: no datapoint means no producer reporting, which ProducerLag covers.
        what: 'a table stopped replicating: the producer cannot decode its binlog rows and set it aside (the others flow); npx cdc status names it and why',
        runbook: 'table-quarantined',
      },
      {
        id: 'UnknownTypeValues',
        severity: 'warning',
        metric: producer.metricUnknownTypeValues(),
        threshold: 0,
        // Sparse: emitted only while values of an unknown column type flow (missing data is not breaching).
        what: 'values of a column type the type table does not know are sent as text (bytes as hex) into a text replica column',
        runbook: 'unknown-type-values',
      },
      {
        id: 'StreamIteratorAge',
        severity: 'critical',
        // Kinesis reports the iterator age in milliseconds: the threshold is converted to that unit.
        metric: changeStream.metricIteratorAgeMilliseconds(),
        threshold: iteratorAge.toMilliseconds({ integral: false }),
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        what: `the slowest reader of the stream (Firehose, or the stream apply) more than ${seconds(iteratorAge)} s behind it`,
        runbook: 'stream-iterator-age',
      },
      ...(streamApply
        ? [
            {
              id: 'StreamApplyIteratorAge',
              severity: 'critical' as const,
              // Lambda reports IteratorAge in milliseconds, even while every invocation fails (freshness then stops).
              metric: streamApply.metricIteratorAgeMilliseconds(),
              threshold: iteratorAge.toMilliseconds({ integral: false }),
              evaluationPeriods: 5,
              datapointsToAlarm: 3,
              what: `the stream apply more than ${seconds(iteratorAge)} s behind the stream (a shard retrying a batch, or too few concurrent batches)`,
              runbook: 'stream-apply-iterator-age',
            },
            {
              id: 'StreamApplySetAside',
              severity: 'critical' as const,
              metric: new MathExpression({
                // Both sparse: emitted only when the mapping gives up on records.
                expression: 'FILL(setAside, 0) + FILL(dropped, 0)',
                usingMetrics: {
                  setAside: streamApply.metricRecordsSetAside(),
                  dropped: streamApply.metricRecordsDropped(),
                },
                label: 'Stream records given up on',
                period: fiveMinutes,
              }),
              threshold: 0,
              what: 'the stream apply gave up on records after its retries or record age (kept under aws/lambda/ in the lake bucket): the replicas miss those changes until npx cdc replay',
              runbook: 'stream-apply-set-aside',
            },
            {
              id: 'StreamApplyHandedOff',
              severity: 'warning' as const,
              metric: streamApply.metricHandedOff(),
              threshold: 0,
              // Sparse: emitted only when a table is handed off.
              what: 'the stream apply handed tables to the merge queue: their merge failed while the warehouse answered; the merge retries them (minutes, not seconds, fresh)',
              runbook: 'stream-apply-handed-off',
            },
          ]
        : []),
      {
        id: 'StreamWriteThrottles',
        severity: 'warning',
        metric: changeStream.metricWriteThrottles(),
        threshold: 0,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        what: 'Kinesis throttles producer writes for 15 minutes (add shards or use on-demand)',
        runbook: 'stream-write-throttles',
      },
      {
        id: 'LakeDeliveryFreshness',
        severity: 'critical',
        metric: delivery.metricS3FreshnessSeconds(),
        threshold: seconds(lakeFreshness),
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        what: `records wait more than ${seconds(lakeFreshness)} s to reach the S3 changelog`,
        runbook: 'lake-delivery',
      },
      {
        id: 'LakeDeliveryFailures',
        severity: 'critical',
        metric: delivery.metricS3Success(),
        threshold: 1,
        comparison: ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        what: 'Firehose fails to write to the S3 changelog',
        runbook: 'lake-delivery',
      },
      {
        id: 'LakePartitionsExceeded',
        severity: 'critical',
        metric: delivery.metricPartitionCountExceeded(),
        threshold: 0,
        what: 'Firehose is over its active-partition quota: changes go to errors/ instead of the changelog (replay them)',
        runbook: 'lake-partitions-exceeded',
      },
      ...(delivery.metricRedshiftSuccess()
        ? [
            {
              id: 'RedshiftDeliveryFailures',
              severity: 'warning' as const,
              metric: delivery.metricRedshiftSuccess()!,
              threshold: 1,
              comparison: ComparisonOperator.LESS_THAN_THRESHOLD,
              evaluationPeriods: 3,
              datapointsToAlarm: 2,
              what: 'Firehose COPY into the raw changelog table fails (batches go to the S3 backup)',
              runbook: 'redshift-delivery',
            },
          ]
        : []),
      {
        id: 'MergeErrors',
        severity: 'critical',
        metric: new MathExpression({
          // FILL each term: the merge's own metric is sparse (emitted only when a merge fails), and a sum over a
          // missing series has no datapoint at all, which would hide the Lambda's errors too.
          expression: streamApply
            ? 'FILL(lambdaErrors, 0) + FILL(mergeErrors, 0) + FILL(streamLambdaErrors, 0) + FILL(streamMergeErrors, 0)'
            : 'FILL(lambdaErrors, 0) + FILL(mergeErrors, 0)',
          usingMetrics: {
            lambdaErrors: merge.fn.metricErrors({ period: Duration.minutes(5) }),
            mergeErrors: merge.metricMergeErrors(),
            ...(streamApply
              ? {
                  streamLambdaErrors: streamApply.fn.metricErrors({ period: Duration.minutes(5) }),
                  streamMergeErrors: streamApply.metricMergeErrors(),
                }
              : {}),
          },
          label: 'Merge errors',
          period: Duration.minutes(5),
        }),
        threshold: mergeErrorsPer5Minutes,
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        what: `more than ${mergeErrorsPer5Minutes} merge errors in 5 minutes, twice in a row`,
        runbook: 'merge-errors',
      },
      {
        id: 'ValuesNulled',
        severity: 'warning',
        metric: bothPaths((r) => r.metricValuesNulled(), 'sum', 'Values stored as NULL', fiveMinutes),
        threshold: 0,
        // Sparse: emitted only when a value is staged as NULL.
        what: 'the merge stored values as NULL: dates no warehouse holds (zero, partial zero, invalid calendar date); the changelog keeps the original',
        runbook: 'values-nulled',
      },
      {
        id: 'RowsSkipped',
        severity: 'critical',
        metric: bothPaths((r) => r.metricRowsSkipped(), 'sum', 'Rows skipped', fiveMinutes),
        threshold: 0,
        // Sparse: emitted only when a row is skipped.
        what: 'the merge left rows out of a replica: their primary key holds a value the warehouse cannot hold (impossible date, NUL character, text over 65,535 bytes); the changelog keeps them',
        runbook: 'rows-skipped',
      },
      {
        id: 'ValuesTruncated',
        severity: 'warning',
        metric: bothPaths((r) => r.metricValuesTruncated(), 'sum', 'Values truncated', fiveMinutes),
        threshold: 0,
        // Sparse: emitted only when a value is cut.
        what: 'the merge cut text values to fit their Redshift column (OVERSIZE_VALUES=truncate); the changelog keeps the whole value',
        runbook: 'values-truncated',
      },
      {
        id: 'MergeThrottles',
        severity: 'warning',
        metric: merge.fn.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 0,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        what: 'the merge function is throttled (account concurrency)',
        runbook: 'merge-throttles',
      },
      {
        id: 'MergeDuration',
        severity: 'warning',
        metric: merge.fn.metricDuration({ statistic: 'p99', period: Duration.minutes(5) }),
        // Lambda's Duration is in milliseconds.
        threshold: merge.timeout.toMilliseconds({ integral: false }) * 0.8,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        what: 'merges take more than 80% of the function timeout (p99)',
        runbook: 'merge-duration',
      },
      ...(streamApply
        ? [
            {
              id: 'StreamApplyThrottles',
              severity: 'warning' as const,
              metric: streamApply.fn.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }),
              threshold: 0,
              evaluationPeriods: 3,
              datapointsToAlarm: 3,
              what: 'the stream apply is throttled (account concurrency): its shards wait',
              runbook: 'merge-throttles',
            },
            {
              id: 'StreamApplyDuration',
              severity: 'warning' as const,
              metric: streamApply.fn.metricDuration({ statistic: 'p99', period: Duration.minutes(5) }),
              // Lambda's Duration is in milliseconds. A timed-out batch is retried (bisected) from its start.
              threshold: streamApply.timeout.toMilliseconds({ integral: false }) * 0.8,
              evaluationPeriods: 3,
              datapointsToAlarm: 3,
              what: 'stream batches take more than 80% of the function timeout (p99): lower apply.stream.batchSize or scale the warehouse',
              runbook: 'merge-duration',
            },
          ]
        : []),
      {
        id: 'MergeBacklog',
        severity: 'warning',
        metric: lake.metricNotificationBacklogAgeSeconds({ statistic: 'Maximum' }),
        threshold: seconds(replicaFreshness),
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        what: `changelog objects wait more than ${seconds(replicaFreshness)} s to be merged`,
        runbook: 'merge-backlog',
      },
      {
        id: 'DeadLetters',
        severity: 'critical',
        metric: lake.metricDeadLetters(),
        threshold: deadLetters,
        what: `more than ${deadLetters} changelog objects in the dead-letter queue (not merged)`,
        runbook: 'dead-letters',
      },
      {
        id: 'ReplicaFreshness',
        severity: 'critical',
        metric: bothPaths(
          (r) => r.metricReplicaFreshnessSeconds(),
          'max',
          'Replica freshness (s)',
          Duration.minutes(1),
        ),
        threshold: seconds(replicaFreshness),
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        what: `replicas more than ${seconds(replicaFreshness)} s behind the source commit time (end to end)`,
        runbook: 'replica-freshness',
      },
    ];
    for (const s of specs) this.alarms.push(this.alarm(prefix, runbook, s));

    this.dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: `${prefix}-pipeline`,
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(
      new TextWidget({
        markdown: `# CDC pipeline \`${pipelineId}\`\nMySQL \`${props.sourceHost}\` → producer → Kinesis → Firehose → S3 lake / Redshift → merge → replicas. Runbook: ${runbook}`,
        width: 24,
        height: 2,
      }),
      new AlarmStatusWidget({ title: 'Alarms (top to bottom)', alarms: this.alarms, width: 24, height: 4 }),
    );
    // The graphs come from the shared layout (shared/dashboard-layout.ts), which the local dashboard page draws too.
    const metricOf = (x: DashboardMetric): IMetric => {
      const none = () => {
        throw new Error(`dashboard layout: no ${x.source} metric ${x.name} (shared/dashboard-layout.ts)`);
      };
      const fn = x.source === 'streamApply' ? streamApply : x.source === 'merge' ? merge : undefined;
      switch (`${x.source}:${x.name}`) {
        case `producer:${ProducerMetric.SecondsBehindSource}`:
          return producer.metricSecondsBehindSource();
        case 'producerTask:RunningTaskCount':
          return producer.metricRunningTasks();
        case `producer:${ProducerMetric.RowsCaptured}`:
          return producer.metricRowsCaptured();
        case `producer:${ProducerMetric.Errors}`:
          return producer.metricErrors();
        case `producer:${ProducerMetric.Starts}`:
          return producer.metricStarts();
        case 'stream:IncomingRecords':
          return changeStream.metricIncomingRecords();
        case 'stream:PutRecords.ThrottledRecords':
          return changeStream.metricWriteThrottles();
        case 'stream:GetRecords.IteratorAgeMilliseconds':
          return changeStream.metricIteratorAgeMilliseconds();
        case 'delivery:DeliveryToS3.DataFreshness':
          return delivery.metricS3FreshnessSeconds();
        case 'delivery:DeliveryToS3.Records':
          return delivery.metricS3Records();
        case 'delivery:PartitionCount':
          return delivery.metricPartitionCount();
        case 'delivery:DeliveryToS3.Success':
          return delivery.metricS3Success();
        case 'delivery:DeliveryToRedshift.Success':
          return delivery.metricRedshiftSuccess() ?? none();
        case 'delivery:DeliveryToRedshift.Records':
          return delivery.metricRedshiftRecords() ?? none();
        case 'streamApply:IteratorAge':
          return streamApply?.metricIteratorAgeMilliseconds() ?? none();
        case `streamApply:${MergeMetric.HandedOff}`:
          return streamApply?.metricHandedOff() ?? none();
        case 'streamApply:OnFailureDestinationDeliveredEventCount':
          return streamApply?.metricRecordsSetAside() ?? none();
        case 'streamApply:DroppedEventCount':
          return streamApply?.metricRecordsDropped() ?? none();
        case `streamApply:${MergeMetric.RowsApplied}`:
        case `merge:${MergeMetric.RowsApplied}`:
          return (fn ?? none()).metricRowsApplied();
        case `streamApply:${MergeMetric.Errors}`:
        case `merge:${MergeMetric.Errors}`:
          return (fn ?? none()).metricMergeErrors();
        case `streamApply:${MergeMetric.PoisonBatches}`:
        case `merge:${MergeMetric.PoisonBatches}`:
          return (fn ?? none()).metricPoisonBatches();
        case 'streamApply:Errors':
          return (fn ?? none()).fn.metricErrors();
        case 'streamApply:Duration':
        case 'merge:Duration':
          return (fn ?? none()).fn.metricDuration({ statistic: x.statistic });
        case `streamApply:${MergeMetric.ReplicaFreshness}`:
        case `merge:${MergeMetric.ReplicaFreshness}`:
          return (fn ?? none()).metricReplicaFreshnessSeconds({
            statistic: x.statistic,
            ...(x.label ? { label: x.label } : {}),
          });
        case 'lake:ApproximateAgeOfOldestMessage':
          return lake.metricNotificationBacklogAgeSeconds();
        case 'lake:ApproximateNumberOfMessagesVisible':
          return lake.metricDeadLetters();
        default:
          return none();
      }
    };
    const sections = dashboardSections({
      streamApply: !!streamApply,
      redshiftDelivery: !!delivery.metricRedshiftSuccess(),
    });
    for (const row of [...new Set(sections.map((s) => s.row))])
      this.dashboard.addWidgets(
        ...sections
          .filter((s) => s.row === row)
          .map(
            (s) =>
              new GraphWidget({
                title: s.title,
                left: s.metrics.filter((x) => x.axis === 'left').map(metricOf),
                right: s.metrics.filter((x) => x.axis === 'right').map(metricOf),
                width: 8,
                height: 6,
              }),
          ),
      );
  }

  private alarm(prefix: string, runbook: string, s: AlarmSpec): Alarm {
    const alarm = new Alarm(this, s.id, {
      alarmName: `${prefix}-${s.severity}-${s.id}`,
      alarmDescription: `[${s.severity.toUpperCase()}] ${s.what}. Runbook: ${runbook}#${s.runbook}`,
      metric: s.metric,
      threshold: s.threshold,
      comparisonOperator: s.comparison ?? ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: s.evaluationPeriods ?? 1,
      datapointsToAlarm: s.datapointsToAlarm ?? s.evaluationPeriods ?? 1,
      treatMissingData: s.missing ?? TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new SnsAction(this.topic));
    alarm.addOkAction(new SnsAction(this.topic));
    return alarm;
  }
}
