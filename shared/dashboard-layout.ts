/**
 * The pipeline dashboard's graphs, top to bottom, as pure data: the CloudWatch dashboard
 * (lib/constructs/monitoring.ts) builds its graph widgets from this list, and the local dashboard page
 * (local/dashboard/) draws its sections from it, so the two read alike: same titles, same metric names, same order.
 * test/local/dashboard-layout.test.ts holds the synthesized dashboard to this list.
 * No aws-cdk-lib import: the local dashboard's server (which hands it to the page through /api/state) reads it too.
 */
import { METRICS_NAMESPACE, MergeMetric, ProducerMetric } from './metrics';

/**
 * Who reports a metric: the construct whose `metricXxx()` the CloudWatch widget uses, and the runtime whose own
 * lines (or store) the local page reads it from.
 */
export type MetricSource =
  | 'producer' // the producer's EMF (SecondsBehindSource, RowsCaptured, …)
  | 'producerTask' // ECS Container Insights (the task count); locally: whether the producer process runs
  | 'stream' // Kinesis
  | 'delivery' // Firehose (locally: the Firehose stand-in)
  | 'streamApply' // the stream-apply Lambda and its event source mapping (locally: local/stream-apply-main.ts)
  | 'merge' // the lake path's merge Lambda (locally: the merges of objects)
  | 'lake'; // the lake's notification queue and its dead-letter queue

export interface DashboardMetric {
  readonly source: MetricSource;
  readonly namespace: string;
  /** The CloudWatch metric name, as the dashboard shows it. */
  readonly name: string;
  /** The statistic the CloudWatch widget plots. */
  readonly statistic: string;
  readonly axis: 'left' | 'right';
  /** The label of the series, when the widget sets one (freshness per apply path). */
  readonly label?: string;
}

/** Which pipelines show a section: every one, only those applying from the stream, or by Firehose's destinations. */
export type SectionCondition = 'always' | 'streamApply' | 'redshiftDelivery' | 'noRedshiftDelivery';

export interface DashboardSection {
  /** Stable id (the local page's element ids and test hooks). */
  readonly id: string;
  /** The CloudWatch widget title: the local page uses it as the section's title. */
  readonly title: string;
  /** Sections with the same row share a line of the CloudWatch dashboard (24 columns, each 8 wide). */
  readonly row: number;
  readonly when: SectionCondition;
  readonly metrics: readonly DashboardMetric[];
}

const CDC = METRICS_NAMESPACE;
const m = (
  source: MetricSource,
  namespace: string,
  name: string,
  statistic: string,
  axis: 'left' | 'right' = 'left',
  label?: string,
): DashboardMetric => ({ source, namespace, name, statistic, axis, ...(label ? { label } : {}) });

/** Every graph of the dashboard, top to bottom. */
export const DASHBOARD_SECTIONS: readonly DashboardSection[] = [
  {
    id: 'producer-lag',
    title: '1. Producer: seconds behind source',
    row: 1,
    when: 'always',
    metrics: [
      m('producer', CDC, ProducerMetric.SecondsBehindSource, 'Maximum'),
      m('producerTask', 'ECS/ContainerInsights', 'RunningTaskCount', 'Minimum', 'right'),
    ],
  },
  {
    id: 'producer-rows',
    title: '1. Producer: rows captured / min',
    row: 1,
    when: 'always',
    metrics: [
      m('producer', CDC, ProducerMetric.RowsCaptured, 'Sum'),
      m('producer', CDC, ProducerMetric.Errors, 'Sum', 'right'),
      m('producer', CDC, ProducerMetric.Starts, 'Sum', 'right'),
    ],
  },
  {
    id: 'kinesis-records',
    title: '2. Kinesis: incoming records, throttles',
    row: 1,
    when: 'always',
    metrics: [
      m('stream', 'AWS/Kinesis', 'IncomingRecords', 'Sum'),
      m('stream', 'AWS/Kinesis', 'PutRecords.ThrottledRecords', 'Sum', 'right'),
    ],
  },
  {
    id: 'kinesis-iterator-age',
    title: '2. Kinesis: iterator age (ms)',
    row: 2,
    when: 'always',
    metrics: [m('stream', 'AWS/Kinesis', 'GetRecords.IteratorAgeMilliseconds', 'Maximum')],
  },
  {
    id: 'firehose-s3',
    title: '3. Firehose → S3: freshness (s), records, active partitions',
    row: 2,
    when: 'always',
    metrics: [
      m('delivery', 'AWS/Firehose', 'DeliveryToS3.DataFreshness', 'Maximum'),
      m('delivery', 'AWS/Firehose', 'DeliveryToS3.Records', 'Sum', 'right'),
      m('delivery', 'AWS/Firehose', 'PartitionCount', 'Maximum', 'right'),
    ],
  },
  {
    id: 'firehose-redshift',
    title: '3. Firehose → Redshift: success, records',
    row: 2,
    when: 'redshiftDelivery',
    metrics: [
      m('delivery', 'AWS/Firehose', 'DeliveryToRedshift.Success', 'Minimum'),
      m('delivery', 'AWS/Firehose', 'DeliveryToRedshift.Records', 'Sum', 'right'),
    ],
  },
  {
    id: 'firehose-s3-success',
    title: '3. Firehose → S3: success',
    row: 2,
    when: 'noRedshiftDelivery',
    metrics: [m('delivery', 'AWS/Firehose', 'DeliveryToS3.Success', 'Minimum')],
  },
  {
    id: 'stream-apply-age',
    title: '4. Stream apply: iterator age (ms), handed off, set aside',
    row: 3,
    when: 'streamApply',
    metrics: [
      m('streamApply', 'AWS/Lambda', 'IteratorAge', 'Maximum'),
      m('streamApply', CDC, MergeMetric.HandedOff, 'Sum', 'right'),
      m('streamApply', 'AWS/Lambda', 'OnFailureDestinationDeliveredEventCount', 'Sum', 'right'),
      m('streamApply', 'AWS/Lambda', 'DroppedEventCount', 'Sum', 'right'),
    ],
  },
  {
    id: 'stream-apply-rows',
    title: '4. Stream apply: rows applied / min, errors',
    row: 3,
    when: 'streamApply',
    metrics: [
      m('streamApply', CDC, MergeMetric.RowsApplied, 'Sum'),
      m('streamApply', CDC, MergeMetric.Errors, 'Sum', 'right'),
      m('streamApply', 'AWS/Lambda', 'Errors', 'Sum', 'right'),
      m('streamApply', CDC, MergeMetric.PoisonBatches, 'Sum', 'right'),
    ],
  },
  {
    id: 'stream-apply-duration',
    title: '4. Stream apply: duration p99 (ms)',
    row: 3,
    when: 'streamApply',
    metrics: [m('streamApply', 'AWS/Lambda', 'Duration', 'p99')],
  },
  {
    id: 'merge-rows',
    title: '4. Merge: rows applied / min',
    row: 4,
    when: 'always',
    metrics: [
      m('merge', CDC, MergeMetric.RowsApplied, 'Sum'),
      m('merge', CDC, MergeMetric.Errors, 'Sum', 'right'),
      m('merge', CDC, MergeMetric.PoisonBatches, 'Sum', 'right'),
    ],
  },
  {
    id: 'merge-duration',
    title: '4. Merge: duration p99 (ms), backlog age (s)',
    row: 4,
    when: 'always',
    metrics: [
      m('merge', 'AWS/Lambda', 'Duration', 'p99'),
      m('lake', 'AWS/SQS', 'ApproximateAgeOfOldestMessage', 'Maximum', 'right'),
    ],
  },
  {
    id: 'replica-freshness',
    title: '5. Replicas: freshness p50/p99 (s), dead letters',
    row: 4,
    when: 'always',
    metrics: [
      m('streamApply', CDC, MergeMetric.ReplicaFreshness, 'p50', 'left', 'stream path p50'),
      m('streamApply', CDC, MergeMetric.ReplicaFreshness, 'p99', 'left', 'stream path p99'),
      m('merge', CDC, MergeMetric.ReplicaFreshness, 'p50', 'left', 'lake path p50'),
      m('merge', CDC, MergeMetric.ReplicaFreshness, 'p99', 'left', 'lake path p99'),
      m('lake', 'AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'Maximum', 'right'),
    ],
  },
];

export interface DashboardShape {
  /** The pipeline applies from the stream (a stream-apply function exists). */
  readonly streamApply: boolean;
  /** Firehose also delivers into Redshift's raw changelog table. */
  readonly redshiftDelivery: boolean;
}

/** The sections (and, in each, the metrics) a pipeline of this shape shows, top to bottom. */
export function dashboardSections(shape: DashboardShape): DashboardSection[] {
  const shows = (c: SectionCondition) =>
    c === 'always' ||
    (c === 'streamApply' && shape.streamApply) ||
    (c === 'redshiftDelivery' && shape.redshiftDelivery) ||
    (c === 'noRedshiftDelivery' && !shape.redshiftDelivery);
  return DASHBOARD_SECTIONS.filter((s) => shows(s.when)).map((s) => ({
    ...s,
    // Without a stream apply there is no stream path to show freshness for.
    metrics: s.metrics.filter((x) => shape.streamApply || x.source !== 'streamApply'),
  }));
}
