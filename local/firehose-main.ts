/**
 * The local Firehose stand-in (and, in lake apply, the merge it hands objects to) as its own process, so the local pipeline and the
 * end-to-end tests can kill it at any moment, as a Lambda or a Firehose delivery can die in AWS. Configured only by
 * its environment: the merge's variables (WAREHOUSE=postgres, POSTGRES_URL, REPLICA_SCHEMA, CHANGELOG_SCHEMA,
 * HISTORY_TABLES, AWS_ENDPOINT_S3, PIPELINE_ID; lambdas/merge/src/config.ts) plus the delivery's own below
 * (`MERGE_OBJECTS=false`: lake only, the stream apply merges).
 *
 * stdout: one JSON line per event (`ready`, `merged`, `error`, `value-nulled`), read by local/pipeline.ts for its status
 * line (`value-nulled`: a date the warehouse cannot hold, staged as NULL; the Lambda counts it as `ValuesNulled`).
 * SIGTERM: finish the delivery in progress, exit 0 (anything buffered but undelivered is read again next start).
 */
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { z } from 'zod';
import { LocalFirehose } from './firehose';
import { FIREHOSE_APPLICATION_NAME, FirehoseConfigError } from './firehose-batching';
import { mergeProcess, parseEnv, say } from './merge-process';
import { localAwsClientConfig } from './services/aws-config';

const schema = z.object({
  AWS_ENDPOINT_KINESIS: z.string().url(),
  AWS_ENDPOINT_S3: z.string().url(),
  STREAM_NAME: z.string().regex(/^[a-zA-Z0-9_.-]{1,128}$/, 'must be a Kinesis stream name'),
  LAKE_BUCKET: z.string().min(3),
  FIREHOSE_STATE_FILE: z.string().min(1),
  BUFFER_INTERVAL_MS: z.coerce.number().int().min(0).max(900_000).default(1000),
  BUFFER_SIZE_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(128 * 1024 * 1024)
    .default(1024 * 1024),
  /** Merge attempts per object before it is set aside under errors/merge/ (SQS maxReceiveCount). */
  DELIVERY_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(5),
  /** Wait before an object's first retry, doubled for each further one. */
  DELIVERY_RETRY_BACKOFF_MS: z.coerce.number().int().min(0).max(900_000).default(1000),
  /** Merges running at once, each of another table (Lambda's concurrency). */
  MERGE_CONCURRENCY: z.coerce.number().int().min(1).max(32).default(4),
  /**
   * A merge statement running longer is cancelled and the attempt fails with PostgreSQL's reason (e.g. a lock held on
   * the replica), as the Lambda's Data API deadline cancels a Redshift statement: a hang becomes a retry, then a
   * set-aside object with a reason, instead of a lane held forever.
   */
  MERGE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(1000).max(900_000).default(60_000),
  /**
   * Whether delivered objects are merged (lake apply). `false` when the stream apply merges (the default of the local
   * pipeline): the stand-in then only writes the lake and the raw changelog, as Firehose does in AWS.
   */
  MERGE_OBJECTS: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
});

async function main(): Promise<void> {
  const config = parseEnv(
    schema,
    process.env,
    (problems) => new FirehoseConfigError(`invalid local Firehose configuration: ${problems}`),
  );
  const { merge, pool, s3, ctx, close } = mergeProcess({
    applicationName: FIREHOSE_APPLICATION_NAME,
    // One per merge in flight, one for the raw changelog load.
    maxConnections: config.MERGE_CONCURRENCY + 1,
    statementTimeoutMs: config.MERGE_STATEMENT_TIMEOUT_MS,
    s3Endpoint: config.AWS_ENDPOINT_S3,
  });
  const firehose = new LocalFirehose({
    kinesis: new KinesisClient(localAwsClientConfig(config.AWS_ENDPOINT_KINESIS)),
    s3,
    pool,
    streamName: config.STREAM_NAME,
    bucket: config.LAKE_BUCKET,
    changelogSchema: merge.CHANGELOG_SCHEMA,
    merge: ctx,
    stateFile: config.FIREHOSE_STATE_FILE,
    bufferMs: config.BUFFER_INTERVAL_MS,
    bufferBytes: config.BUFFER_SIZE_BYTES,
    maxDeliveryAttempts: config.DELIVERY_MAX_ATTEMPTS,
    retryBackoffMs: config.DELIVERY_RETRY_BACKOFF_MS,
    mergeConcurrency: config.MERGE_CONCURRENCY,
    mergeObjects: config.MERGE_OBJECTS,
    onMerged: (results, events, key) =>
      say('merged', {
        key,
        rows: events.length,
        maxCommitMs: Math.max(...results.map((r) => r.maxCommitMs)),
      }),
    onError: (err) => say('error', { error: err.message, code: (err as { code?: string }).code }),
  });
  await firehose.start();
  say('ready');
  process.on('SIGTERM', () => {
    // A merge left hung past stop()'s grace holds its connection: do not wait for it to be released.
    void firehose
      .stop()
      .then(close)
      .then(() => process.exit(0));
  });
}

main().catch((err: Error) => {
  say('fatal', { error: err.message, code: (err as { code?: string }).code });
  process.exit(1);
});
