/**
 * Stream apply, locally: the event source mapping stand-in (local/event-source-mapping.ts) invoking the stream-apply
 * Lambda's core (lambdas/merge/src/apply-stream.ts) over Lambda's own event shape, as its own process, so the local
 * pipeline and the end-to-end tests can kill it at any moment, as a Lambda can die in AWS. Configured only by its
 * environment: the merge's variables (WAREHOUSE=postgres, POSTGRES_URL, REPLICA_SCHEMA, CHANGELOG_SCHEMA,
 * HISTORY_TABLES, AWS_ENDPOINT_S3, PIPELINE_ID, TABLES_PER_TRANSACTION; lambdas/merge/src/config.ts) plus its own below.
 *
 * The stream apply's policy, locally: a table handed off (its merge failed while the warehouse answers) joins this
 * process's merge queue (local/merge-queue.ts, saved as `<STREAM_APPLY_STATE_FILE>.retrying`: retries with backoff,
 * then set aside under errors/merge/, as the lake path's SQS queue and dead-letter queue do in AWS); poison is set
 * aside at once under errors/merge/ with its reason; so `npx cdc status` and `npx cdc redrive` see both paths alike.
 *
 * stdout: one JSON line per event: `ready`, `applied` (a batch merged: rows, maxCommitMs, tables, durationMs), `merged` (a
 * handed-off object merged from the queue), `handed-off`, `set-aside` (poison, or a batch out of retries at the
 * on-failure destination), `error`, `value-nulled`, `fatal`; read by local/pipeline.ts.
 * SIGTERM: finish the batch in flight (no further retries), then the merges in flight, exit 0.
 */
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { z } from 'zod';
import {
  applyStreamBatch,
  batchResponse,
  recordsFromKinesisEvent,
  type StreamApplyPolicy,
} from '../lambdas/merge/src/apply-stream';
import {
  EventSourceMappingConfigError,
  LocalEventSourceMapping,
  type LocalStreamHandler,
  STREAM_APPLY_APPLICATION_NAME,
} from './event-source-mapping';
import { mergeProcess, parseEnv, say } from './merge-process';
import { LocalMergeQueue } from './merge-queue';
import { localAwsClientConfig } from './services/aws-config';

const schema = z.object({
  AWS_ENDPOINT_KINESIS: z.string().url(),
  AWS_ENDPOINT_S3: z.string().url(),
  STREAM_NAME: z.string().regex(/^[a-zA-Z0-9_.-]{1,128}$/, 'must be a Kinesis stream name'),
  LAKE_BUCKET: z.string().min(3),
  /** Per-shard checkpoints; the merge queue of handed-off objects is saved beside it (`.retrying`). */
  STREAM_APPLY_STATE_FILE: z.string().min(1),
  /** Serve `npx cdc redrive` requests written beside this state file (the pipeline sets it when this process serves them). */
  REDRIVE_STATE_FILE: z.string().min(1).optional(),
  /** The event source mapping's settings (Lambda's names in ms; its ranges). */
  BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(100),
  BATCHING_WINDOW_MS: z.coerce.number().int().min(0).max(300_000).default(0),
  POLL_MS: z.coerce.number().int().min(10).max(60_000).default(1000),
  MAX_RETRY_ATTEMPTS: z.coerce.number().int().min(-1).max(10_000).default(3),
  /** The handed-off objects' queue, as the Firehose stand-in's (local/firehose-main.ts). */
  DELIVERY_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(5),
  DELIVERY_RETRY_BACKOFF_MS: z.coerce.number().int().min(0).max(900_000).default(1000),
  MERGE_CONCURRENCY: z.coerce.number().int().min(1).max(32).default(4),
  /** A merge statement running longer is cancelled (the Lambda's Data API deadline, locally). */
  MERGE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(1000).max(900_000).default(60_000),
});

async function main(): Promise<void> {
  const config = parseEnv(
    schema,
    process.env,
    (problems) => new EventSourceMappingConfigError(`invalid local stream apply configuration: ${problems}`),
  );
  const { merge, s3, ctx, close } = mergeProcess({
    applicationName: STREAM_APPLY_APPLICATION_NAME,
    // The queue's merges, plus the batches in flight (one per shard; the local stream has 2).
    maxConnections: config.MERGE_CONCURRENCY + 4,
    statementTimeoutMs: config.MERGE_STATEMENT_TIMEOUT_MS,
    s3Endpoint: config.AWS_ENDPOINT_S3,
    mergeEnv: { LAKE_BUCKET: config.LAKE_BUCKET },
  });
  const onError = (err: Error) => say('error', { error: err.message, code: (err as { code?: string }).code });

  const queue = new LocalMergeQueue({
    s3,
    bucket: config.LAKE_BUCKET,
    merge: ctx,
    stateFile: config.STREAM_APPLY_STATE_FILE,
    ...(config.REDRIVE_STATE_FILE ? { redriveStateFile: config.REDRIVE_STATE_FILE } : {}),
    maxDeliveryAttempts: config.DELIVERY_MAX_ATTEMPTS,
    retryBackoffMs: config.DELIVERY_RETRY_BACKOFF_MS,
    mergeConcurrency: config.MERGE_CONCURRENCY,
    onMerged: (results, events, key) =>
      say('merged', { key, rows: events.length, maxCommitMs: Math.max(...results.map((r) => r.maxCommitMs)) }),
    onError,
  });

  const policy: StreamApplyPolicy = {
    bucket: config.LAKE_BUCKET,
    async enqueue(ref, table, reason) {
      // The lake path's queue, locally: saved before the batch is reported done, so a kill keeps the object queued.
      queue.add(ref.key);
      queue.save();
      queue.schedule();
      say('handed-off', { table, key: ref.key, reason });
    },
    async setAside(ref, table, reason, code) {
      await queue.setAside(ref.key, reason, 1, Date.now(), table);
      say('set-aside', { table, key: ref.key, reason, code });
    },
  };

  const apply: LocalStreamHandler = async (event) => {
    const started = Date.now();
    const records = recordsFromKinesisEvent(event);
    const outcome = await applyStreamBatch(records, s3, ctx, policy, {
      tablesPerTransaction: merge.TABLES_PER_TRANSACTION,
    });
    if (outcome.events.length > 0) {
      say('applied', {
        shard: records[0]?.shardId,
        records: records.length,
        rows: outcome.events.length,
        maxCommitMs: Math.max(...outcome.results.map((r) => r.maxCommitMs)),
        tables: outcome.results.length,
        // The invocation's duration (Lambda's Duration metric): the local dashboard charts its p99.
        durationMs: Date.now() - started,
      });
    }
    if (outcome.retryFrom) return { ...batchResponse(outcome), reason: outcome.retryFrom.reason };
    warm ||= outcome.results.length > 0;
    return batchResponse(outcome);
  };
  /**
   * Until one batch merged in this process, batches run one at a time (the shards' first batches would otherwise start
   * together): the merge creates its bookkeeping with CREATE … IF NOT EXISTS once per process, and two of those at once
   * can collide in PostgreSQL, which would hand healthy tables off.
   */
  let warm = false;
  let gate: Promise<unknown> = Promise.resolve();
  const handler: LocalStreamHandler = async (event) => {
    if (warm) return apply(event);
    const turn = gate.then(() => apply(event));
    gate = turn.catch(() => undefined);
    return turn;
  };

  const esm = new LocalEventSourceMapping({
    kinesis: new KinesisClient(localAwsClientConfig(config.AWS_ENDPOINT_KINESIS)),
    s3,
    streamName: config.STREAM_NAME,
    failureBucket: config.LAKE_BUCKET,
    stateFile: config.STREAM_APPLY_STATE_FILE,
    handler,
    batchSize: config.BATCH_SIZE,
    batchingWindowMs: config.BATCHING_WINDOW_MS,
    pollMs: config.POLL_MS,
    maxRetryAttempts: config.MAX_RETRY_ATTEMPTS,
    onFailedBatch: (key, reason, records) =>
      say('set-aside', { key, reason, records, condition: 'RetryAttemptsExhausted' }),
    onError,
  });
  queue.start();
  await esm.start();
  say('ready', {
    batchSize: config.BATCH_SIZE,
    batchingWindowMs: config.BATCHING_WINDOW_MS,
    pollMs: config.POLL_MS,
  });
  process.on('SIGTERM', () => {
    // A merge left hung past the graces holds its connection: do not wait for it to be released.
    void esm
      .stop()
      .then(() => queue.stop())
      .then(close)
      .then(() => process.exit(0));
  });
}

main().catch((err: Error) => {
  say('fatal', { error: err.message, code: (err as { code?: string }).code });
  process.exit(1);
});
