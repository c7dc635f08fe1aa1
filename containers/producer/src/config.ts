import { z } from 'zod';
import { LAKE_CLAIM_CHECK_PREFIX } from '../../../shared/lake-layout';
import { ProducerError } from './errors';

const list = z
  .string()
  .default('')
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  );

const fields = z.object({
  SOURCE_HOST: z.string().min(1),
  SOURCE_PORT: z.coerce.number().int().min(1).max(65535).default(3306),
  SOURCE_USER: z.string().min(1),
  SOURCE_PASSWORD: z.string().default(''),
  SOURCE_SERVER_ID: z.coerce.number().int().min(1).max(4294967295).default(4242),
  CAPTURE_INCLUDE: list,
  CAPTURE_EXCLUDE: list,
  CAPTURE_EXCLUDE_COLUMNS: list,
  CAPTURE_HASH_COLUMNS: list,
  CAPTURE_MASK_COLUMNS: list,
  STREAM_NAME: z.string().regex(/^[a-zA-Z0-9_.-]{1,128}$/, 'must be a Kinesis stream name'),
  /**
   * `table-pk` (the default): a table's rows spread over shards by key, order kept per row, so a busy table is not held
   * to one shard; `table`: one shard per table (docs/producer.md, "Writes to Kinesis").
   */
  PARTITION_KEY_MODE: z.enum(['table', 'table-pk']).default('table-pk'),
  /** PutRecords calls in flight at once, for disjoint partition keys (never two for one key). */
  PUT_RECORDS_IN_FLIGHT: z.coerce.number().int().min(1).max(64).default(8),
  CHECKPOINT_TABLE: z.string().regex(/^[a-zA-Z0-9_.-]{3,255}$/, 'must be a DynamoDB table name'),
  PIPELINE_ID: z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'letters, digits, _ . - only'),
  CLAIM_CHECK_BUCKET: z.string().min(3).optional(),
  CLAIM_CHECK_PREFIX: z.string().default(LAKE_CLAIM_CHECK_PREFIX),
  START_FROM: z
    .string()
    .default('checkpoint')
    .refine(
      (s) => /^(checkpoint|end|file:[^:]+:\d+|gtid:.+)$/.test(s),
      'must be checkpoint | end | file:<name>:<pos> | gtid:<set>',
    ),
  HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** The source sends a heartbeat on the replication connection after this long without events (reader liveness). */
  HEARTBEAT_SECONDS: z.coerce.number().int().min(1).max(300).default(10),
  /** /health turns unhealthy when the reader or the housekeeping loop showed no sign of life for this long. */
  HEALTH_STALE_SECONDS: z.coerce.number().int().min(2).max(3600).default(60),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  METRICS_NAMESPACE: z.string().default('MysqlRedshiftCdc'),
  /** How long a lease outlives its last renewal (renewed every second). A killed producer's successor waits this long. */
  LEASE_SECONDS: z.coerce.number().int().min(2).max(600).default(30),
  MAX_IN_FLIGHT_EVENTS: z.coerce.number().int().min(1).default(20_000),
  /**
   * Reading also pauses above this many bytes of unacknowledged records (rows of 100 KB reach MAX_IN_FLIGHT_EVENTS at
   * 2 GB). At least 1 MiB, Kinesis' largest record.
   */
  MAX_IN_FLIGHT_BYTES: z.coerce
    .number()
    .int()
    .min(1024 * 1024)
    .default(64 * 1024 * 1024),
  /** `on`: rows are encoded on a worker thread while the main thread reads the binlog; `off`: on the main thread. */
  ENCODE_WORKER: z.enum(['on', 'off']).default('off'),
  /** `on`: PutRecords calls are serialized and sent from a thread of their own; `off`: from the main thread. */
  KINESIS_SINK_THREAD: z.enum(['on', 'off']).default('off'),
  /**
   * `on`: snapshot rows are encoded on the encode worker (binlog rows as ENCODE_WORKER says); `off`: as ENCODE_WORKER
   * says; `auto`: `on` where the producer sends from its own thread (KINESIS_SINK_THREAD=on, which the CDK sets on
   * tasks of 2 vCPU or more: the sign that a second core is there).
   */
  SNAPSHOT_ENCODE_WORKER: z.enum(['auto', 'on', 'off']).default('auto'),
  /** `initial`: snapshot every captured table when no checkpoint exists, and tables newly added to the capture rules. */
  SNAPSHOT_MODE: z.enum(['initial', 'never']).default('initial'),
  /** Rows per snapshot chunk (one low/high watermark pair each). */
  SNAPSHOT_CHUNK_ROWS: z.coerce.number().int().min(1).max(1_000_000).default(4096),
  /**
   * Bytes of rows a snapshot chunk aims at: a table of large rows reads fewer than SNAPSHOT_CHUNK_ROWS at a time
   * (docs/snapshot.md). From 1 MiB to 1 GiB.
   */
  SNAPSHOT_CHUNK_BYTES: z.coerce
    .number()
    .int()
    .min(1024 * 1024)
    .max(1024 * 1024 * 1024)
    .default(16 * 1024 * 1024),
  /** Most rows of a table without a primary key: it is read whole, in memory (docs/snapshot.md). */
  SNAPSHOT_KEYLESS_MAX_ROWS: z.coerce.number().int().min(1).max(50_000_000).default(250_000),
  /** The signal table in the source (watermarks, backfill requests); created when missing. */
  SIGNAL_TABLE: z
    .string()
    .regex(/^[A-Za-z0-9_$]+\.[A-Za-z0-9_$]+$/, 'must be db.table (letters, digits, _ $)')
    .default('cdc.cdc_signal'),
  AWS_ENDPOINT_KINESIS: z.string().url().optional(),
  AWS_ENDPOINT_DYNAMODB: z.string().url().optional(),
  AWS_ENDPOINT_S3: z.string().url().optional(),
});

const schema = fields.superRefine((c, ctx) => {
  // One heartbeat lost or late must not flap the health check.
  if (c.HEARTBEAT_SECONDS * 2 > c.HEALTH_STALE_SECONDS) {
    ctx.addIssue({
      code: 'custom',
      path: ['HEARTBEAT_SECONDS'],
      message: `must be at most half of HEALTH_STALE_SECONDS (${c.HEALTH_STALE_SECONDS})`,
    });
  }
});

export type ProducerConfig = z.infer<typeof schema>;

export type StartFrom =
  | { readonly kind: 'checkpoint' }
  | { readonly kind: 'end' }
  | { readonly kind: 'file'; readonly file: string; readonly pos: number }
  | { readonly kind: 'gtid'; readonly gtidSet: string };

export function parseStartFrom(text: string): StartFrom {
  if (text === 'checkpoint' || text === 'end') return { kind: text };
  const f = /^file:([^:]+):(\d+)$/.exec(text);
  if (f) return { kind: 'file', file: f[1]!, pos: Number(f[2]) };
  return { kind: 'gtid', gtidSet: text.slice('gtid:'.length) };
}

/** Whether snapshot rows are encoded on the encode worker: SNAPSHOT_ENCODE_WORKER, `auto` following KINESIS_SINK_THREAD. */
export function snapshotEncodeWorkerOn(
  c: Pick<ProducerConfig, 'SNAPSHOT_ENCODE_WORKER' | 'KINESIS_SINK_THREAD'>,
): boolean {
  return c.SNAPSHOT_ENCODE_WORKER === 'auto' ? c.KINESIS_SINK_THREAD === 'on' : c.SNAPSHOT_ENCODE_WORKER === 'on';
}

/** Parses the environment once; every problem is named with its variable and value. */
export function loadConfig(env: Record<string, string | undefined>): ProducerConfig {
  const res = schema.safeParse(env);
  if (!res.success) {
    const problems = res.error.issues.map((i) => {
      const field = String(i.path[0] ?? '');
      const value = /PASSWORD/.test(field) ? '***' : JSON.stringify(env[field] ?? null);
      return `${field}=${value}: ${i.message}`;
    });
    throw new ProducerError('CONFIG_INVALID', `invalid producer configuration: ${problems.join('; ')}`);
  }
  return res.data;
}
