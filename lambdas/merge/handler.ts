/**
 * The merge Lambda: SQS messages carrying S3 ObjectCreated notifications of changelog objects. Each object is merged
 * on its own; failures are reported per message (partial batch response) so SQS retries only those. A poison object
 * (it can never succeed) is sent to the dead-letter queue at once with its reason, instead of being retried.
 *
 * Concurrency model (docs/merge.md, "Concurrency model"): the records of a batch are merged one after the other, never
 * in parallel (Powertools' default), so one invocation holds one object in memory and one warehouse transaction at a
 * time; parallelism comes from concurrent invocations (the event source's maximum concurrency). A record is not
 * started when the invocation has less than MIN_REMAINING_MS left: it is reported failed and SQS redelivers it.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { S3Client } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import pg from 'pg';
import { clientConfig } from '../../shared/aws-client-config';
import { METRICS_NAMESPACE, MergeMetric, PIPELINE_DIMENSION } from '../../shared/metrics';
import { processObject } from './src/apply-object';
import { loadConfig } from './src/config';
import { configureDateValues } from './src/date-values';
import { mergeContextFromConfig } from './src/merge';
import { RedshiftDataWarehouse } from './src/redshift-client';
import { parseS3Notification } from './src/s3-notification';
import { configureValueLimits } from './src/value-limits';
import { warehouseFromConfig } from './src/warehouse';

const config = loadConfig(process.env);
const logger = new Logger({ serviceName: 'merge' });
// Default dimensions, not addDimension: publishStoredMetrics clears added dimensions after each flush, so a warm
// Lambda's later flushes (and every singleMetric) would lose the Pipeline the alarms select on.
const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
  serviceName: 'merge',
  defaultDimensions: { [PIPELINE_DIMENSION]: config.PIPELINE_ID },
});

configureValueLimits({
  policy: config.OVERSIZE_VALUES,
  onTruncated: (v) => {
    logger.warn('value truncated to fit its Redshift column', { ...v });
    metrics.addMetric(MergeMetric.ValuesTruncated, MetricUnit.Count, 1);
  },
});
configureDateValues({
  onNulled: (v) => {
    logger.warn('date the warehouse cannot hold staged as NULL', { ...v });
    metrics.addMetric(MergeMetric.ValuesNulled, MetricUnit.Count, 1);
  },
  onRowSkipped: (r) => {
    logger.error('row not merged: its primary key holds a value the warehouse cannot hold', { ...r });
    metrics.addMetric(MergeMetric.RowsSkipped, MetricUnit.Count, 1);
  },
});

function postgresPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  // An idle connection dropped by the server must not crash the process; the next merge reconnects.
  pool.on('error', (err) => logger.warn('idle PostgreSQL connection lost', { error: err.message }));
  return pool;
}

const s3 = new S3Client(clientConfig(config.AWS_ENDPOINT_S3));
const sqs = new SQSClient({});
const warehouse = warehouseFromConfig(config, {
  s3,
  ...(config.WAREHOUSE === 'postgres' ? { pool: postgresPool(config.POSTGRES_URL!) } : {}),
});
const ctx = mergeContextFromConfig(config, warehouse, {
  onRetry: (table, attempt, err) => {
    logger.warn('serialization conflict, retrying', { table, attempt, error: err.message });
    metrics.addMetric(MergeMetric.Retries, MetricUnit.Count, 1);
  },
});

const processor = new BatchProcessor(EventType.SQS);

async function processRecord(record: SQSRecord): Promise<void> {
  for (const ref of parseS3Notification(record.body)) {
    const started = Date.now();
    const object = `s3://${ref.bucket}/${ref.key}`;
    const outcome = await processObject(ref, s3, ctx);
    if (outcome.kind === 'merged') {
      for (const r of outcome.results) {
        for (const [op, n] of Object.entries(r.byOp)) {
          // One EMF document per table and operation (singleMetric flushes on addMetric).
          const m = metrics.singleMetric();
          m.addDimension('Table', `${r.db}.${r.table}`);
          m.addDimension('Operation', op);
          m.addMetric(MergeMetric.RowsApplied, MetricUnit.Count, n);
        }
        metrics.addMetric(
          MergeMetric.RowsApplied,
          MetricUnit.Count,
          Object.values(r.byOp).reduce((a, b) => a + b, 0),
        );
        metrics.addMetric(
          MergeMetric.ReplicaFreshness,
          MetricUnit.Seconds,
          Math.max(0, (Date.now() - r.maxCommitMs) / 1000),
        );
        logger.info('merged', { object, ...r });
      }
      metrics.addMetric(MergeMetric.BatchLatency, MetricUnit.Milliseconds, Date.now() - started);
      continue;
    }
    if (outcome.kind === 'poison' && config.DEAD_LETTER_QUEUE_URL) {
      metrics.addMetric(MergeMetric.PoisonBatches, MetricUnit.Count, 1);
      logger.error('poison batch sent to the dead-letter queue', { object, reason: outcome.reason });
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: config.DEAD_LETTER_QUEUE_URL,
          MessageBody: JSON.stringify({
            reason: outcome.reason,
            code: outcome.error.code,
            object: ref,
            original: record.body,
          }),
          MessageAttributes: { reason: { DataType: 'String', StringValue: outcome.reason.slice(0, 1000) } },
        }),
      );
      continue;
    }
    // Retriable, or poison without a dead-letter queue: SQS redelivers it (its redrive policy bounds the attempts).
    metrics.addMetric(MergeMetric.Errors, MetricUnit.Count, 1);
    logger.error('merge failed, will be retried', { object, error: outcome.reason });
    throw outcome.error;
  }
}

/** Thrown for a record not started for lack of time: SQS redelivers it; it is not a merge error. */
class NotStartedError extends Error {}

/** Time left in the invocation; a context without the method (a local caller) has no limit. */
function remainingMs(context: Context): number {
  return typeof context.getRemainingTimeInMillis === 'function'
    ? context.getRemainingTimeInMillis()
    : Number.POSITIVE_INFINITY;
}

/** Left at the end of an invocation to delete staging objects and flush metrics after statements were cancelled. */
const END_MARGIN_MS = 5_000;

export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  // Data API statements are cancelled before this invocation ends rather than left running by a timed-out Lambda.
  const left = remainingMs(context);
  if (warehouse instanceof RedshiftDataWarehouse)
    warehouse.setInvocationDeadline(Number.isFinite(left) ? Date.now() + left - END_MARGIN_MS : undefined);
  try {
    return await processPartialResponse(
      event,
      async (record: SQSRecord) => {
        const left = remainingMs(context);
        if (left < config.MIN_REMAINING_MS) {
          logger.warn('not started: too little time left in this invocation', {
            messageId: record.messageId,
            remainingMs: left,
            minRemainingMs: config.MIN_REMAINING_MS,
          });
          throw new NotStartedError(`not started: ${left} ms left < MIN_REMAINING_MS ${config.MIN_REMAINING_MS}`);
        }
        await processRecord(record);
      },
      processor,
      // One record at a time (see the file comment); a batch whose every record failed or was deferred is reported
      // item by item like any other rather than thrown, so SQS redelivers exactly those messages.
      { context, processInParallel: false, throwOnFullBatchFailure: false },
    );
  } finally {
    metrics.publishStoredMetrics();
  }
}
