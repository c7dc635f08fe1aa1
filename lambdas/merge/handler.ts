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
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { MergeMetric } from '../../shared/metrics';
import { createMergeRuntime, remainingMs } from './runtime';
import { processObject } from './src/apply-object';
import { parseS3Notification } from './src/s3-notification';

const { config, logger, metrics, s3, ctx, reportMerged, startInvocation } = createMergeRuntime('merge', process.env);
const sqs = new SQSClient({});

const processor = new BatchProcessor(EventType.SQS);

async function processRecord(record: SQSRecord): Promise<void> {
  for (const ref of parseS3Notification(record.body)) {
    const started = Date.now();
    const object = `s3://${ref.bucket}/${ref.key}`;
    const outcome = await processObject(ref, s3, ctx);
    if (outcome.kind === 'merged') {
      reportMerged(outcome.results, { object });
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

export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  startInvocation(context);
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
