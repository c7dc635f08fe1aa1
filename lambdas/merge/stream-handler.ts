/**
 * The stream-apply Lambda: batches of Kinesis records from the change stream's event source mapping, merged straight
 * into the replicas (lambdas/merge/src/apply-stream.ts), so a committed row reaches its replica seconds later instead
 * of after Firehose's buffering. One batch is one shard's records in order; batches of one shard never overlap.
 *
 * Its failure policy (apply-stream.ts): a table whose merge fails is handed off to the lake path's queue (an
 * S3-notification-shaped message to HANDOFF_QUEUE_URL, retried by the SQS-fed merge Lambda with backoff, then its
 * dead-letter queue), poison goes to the dead-letter queue at once with its reason, and only a warehouse that does not
 * answer (or S3 failing) makes the batch fail: reported as a batch item failure from its first record, so the event
 * source mapping retries it (bisecting on error) and, once its retries are spent, writes it with the reason to its
 * on-failure destination.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { MergeMetric } from '../../shared/metrics';
import { createMergeRuntime } from './runtime';
import { applyStreamBatch, batchResponse, recordsFromKinesisEvent, type StreamApplyPolicy } from './src/apply-stream';
import { MergeError } from './src/errors';
import { s3NotificationBody } from './src/s3-notification';

const { config, logger, metrics, s3, ctx, reportMerged, startInvocation } = createMergeRuntime(
  'stream-apply',
  process.env,
);
for (const [name, value] of [
  ['LAKE_BUCKET', config.LAKE_BUCKET],
  ['HANDOFF_QUEUE_URL', config.HANDOFF_QUEUE_URL],
  ['DEAD_LETTER_QUEUE_URL', config.DEAD_LETTER_QUEUE_URL],
] as const) {
  if (!value) throw new MergeError('CONFIG_INVALID', `invalid stream-apply configuration: ${name}=null: is required`);
}
const sqs = new SQSClient({});

const policy: StreamApplyPolicy = {
  bucket: config.LAKE_BUCKET!,
  async enqueue(ref, table, reason) {
    metrics.addMetric(MergeMetric.HandedOff, MetricUnit.Count, 1);
    logger.warn('table handed off to the lake path: its merge failed, it is retried from the queue', {
      table,
      object: `s3://${ref.bucket}/${ref.key}`,
      reason,
    });
    await sqs.send(
      new SendMessageCommand({ QueueUrl: config.HANDOFF_QUEUE_URL!, MessageBody: s3NotificationBody(ref) }),
    );
  },
  async setAside(ref, table, reason, code) {
    metrics.addMetric(MergeMetric.PoisonBatches, MetricUnit.Count, 1);
    logger.error('poison sent to the dead-letter queue', { table, object: `s3://${ref.bucket}/${ref.key}`, reason });
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: config.DEAD_LETTER_QUEUE_URL!,
        MessageBody: JSON.stringify({ reason, code, object: ref, original: s3NotificationBody(ref) }),
        MessageAttributes: { reason: { DataType: 'String', StringValue: reason.slice(0, 1000) } },
      }),
    );
  },
};

export async function handler(event: KinesisStreamEvent, context: Context): Promise<KinesisStreamBatchResponse> {
  startInvocation(context);
  const started = Date.now();
  try {
    const records = recordsFromKinesisEvent(event);
    const outcome = await applyStreamBatch(records, s3, ctx, policy, {
      tablesPerTransaction: config.TABLES_PER_TRANSACTION,
    });
    reportMerged(outcome.results, { shard: records[0]?.shardId, records: records.length });
    if (outcome.retryFrom) {
      metrics.addMetric(MergeMetric.Errors, MetricUnit.Count, 1);
      logger.error('stream batch failed, the event source mapping retries it', {
        shard: records[0]?.shardId,
        from: outcome.retryFrom.sequenceNumber,
        reason: outcome.retryFrom.reason,
      });
    } else {
      metrics.addMetric(MergeMetric.BatchLatency, MetricUnit.Milliseconds, Date.now() - started);
    }
    return batchResponse(outcome);
  } finally {
    metrics.publishStoredMetrics();
  }
}
