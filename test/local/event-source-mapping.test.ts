/**
 * The local stand-in for Lambda's Kinesis event source mapping (local/event-source-mapping.ts) against kinesalite
 * (2 shards) and s3rver (its on-failure destination). The handler is a recording function: what a Lambda would have
 * received, invocation by invocation.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateStreamCommand, DescribeStreamCommand, KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { KinesisStreamEvent } from 'aws-lambda';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LocalEventSourceMapping,
  type LocalEventSourceMappingProps,
  type LocalStreamHandler,
} from '../../local/event-source-mapping';
import type { PendingRetry } from '../../local/merge-queue';
import { checkPipelineOptions, ROOT } from '../../local/pipeline';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { type PostgresServer, startPostgres } from '../../local/services/postgres';
import { sleep, stopProcess, waitFor } from '../../local/services/process';
import type { ChangeEvent } from '../../shared/change-event';
import { TableEvents } from '../merge/support/event-factory';

const dir = mkdtempSync(join(tmpdir(), 'cdc-esm-'));
let kinesisEmu: Emulator;
let s3Emu: Emulator;
let kinesis: KinesisClient;
let s3: S3Client;
let n = 0;

beforeAll(async () => {
  [kinesisEmu, s3Emu] = await Promise.all([startEmulator('kinesis'), startEmulator('s3', { dir: join(dir, 's3') })]);
  kinesis = new KinesisClient(localAwsClientConfig(kinesisEmu.endpoint));
  s3 = new S3Client(localAwsClientConfig(s3Emu.endpoint));
});
afterAll(async () => {
  await Promise.all([kinesisEmu?.stop(), s3Emu?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/** The two shards' hash key ranges start at 0 and 2^127: an explicit hash key puts a record on the one we want. */
const SHARD_KEYS = ['0', (2n ** 127n).toString()] as const;

/** One invocation as the handler saw it: when, which shard, and the records' payloads and sequence numbers. */
interface Invocation {
  readonly at: number;
  readonly shard: string;
  readonly data: string[];
  readonly seqs: string[];
  readonly event: KinesisStreamEvent;
}

/** A fresh stream (2 shards), bucket and state file per test. */
async function setup(): Promise<{ stream: string; bucket: string; stateFile: string }> {
  n++;
  const stream = `esm${n}`;
  const bucket = `esm-lake-${n}`;
  await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 2 }));
  await waitFor('the stream to be active', async () => {
    const d = await kinesis.send(new DescribeStreamCommand({ StreamName: stream }));
    return d.StreamDescription?.StreamStatus === 'ACTIVE';
  });
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  return { stream, bucket, stateFile: join(dir, `esm-state-${n}.json`) };
}

/** Puts records in order, all on one shard (0 or 1); returns their sequence numbers. */
async function put(stream: string, data: readonly string[], shard: 0 | 1 = 0): Promise<string[]> {
  const res = await kinesis.send(
    new PutRecordsCommand({
      StreamName: stream,
      Records: data.map((d) => ({ Data: Buffer.from(d), PartitionKey: 'k', ExplicitHashKey: SHARD_KEYS[shard] })),
    }),
  );
  expect(res.FailedRecordCount ?? 0).toBe(0);
  return res.Records!.map((r) => r.SequenceNumber!);
}

/** A handler that records every invocation, then answers with `answer` (a success when it returns nothing). */
function recording(answer: (inv: Invocation, nth: number) => ReturnType<LocalStreamHandler> = async () => undefined): {
  calls: Invocation[];
  handler: LocalStreamHandler;
} {
  const calls: Invocation[] = [];
  return {
    calls,
    handler: async (event) => {
      const inv: Invocation = {
        at: Date.now(),
        shard: event.Records[0]!.eventID.split(':')[0]!,
        data: event.Records.map((r) => Buffer.from(r.kinesis.data, 'base64').toString('utf8')),
        seqs: event.Records.map((r) => r.kinesis.sequenceNumber),
        event,
      };
      calls.push(inv);
      return answer(inv, calls.length);
    },
  };
}

function mapping(
  base: { stream: string; bucket: string; stateFile: string },
  handler: LocalStreamHandler,
  more: Partial<LocalEventSourceMappingProps> = {},
): LocalEventSourceMapping {
  return new LocalEventSourceMapping({
    kinesis,
    s3,
    streamName: base.stream,
    failureBucket: base.bucket,
    stateFile: base.stateFile,
    handler,
    pollMs: 100,
    ...more,
  });
}

const delivered = (calls: readonly Invocation[]) => calls.flatMap((c) => c.data);

async function keys(bucket: string, prefix: string): Promise<string[]> {
  const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (res.Contents ?? []).map((o) => o.Key!).sort();
}

describe('local event source mapping', () => {
  it("invokes with Lambda's event shape, one batch in flight per shard, each shard's records in order", async () => {
    const base = await setup();
    const sent: Record<string, string[]> = { a: [], b: [] };
    const inFlight = new Map<string, number>();
    let overlapped = 0;
    const { calls, handler } = recording(async (inv) => {
      const now = (inFlight.get(inv.shard) ?? 0) + 1;
      inFlight.set(inv.shard, now);
      if (now > 1) overlapped++;
      await sleep(150); // slow enough that a second batch of the shard would overlap if one were started
      inFlight.set(inv.shard, (inFlight.get(inv.shard) ?? 1) - 1);
    });
    const esm = mapping(base, handler, { batchSize: 4, pollMs: 50 });
    await esm.start();
    try {
      for (let round = 0; round < 5; round++) {
        const a = Array.from({ length: 6 }, (_, i) => `a${round * 6 + i}`);
        const b = Array.from({ length: 6 }, (_, i) => `b${round * 6 + i}`);
        sent.a!.push(...a);
        sent.b!.push(...b);
        await put(base.stream, a, 0);
        await put(base.stream, b, 1);
      }
      await waitFor('every record', async () => delivered(calls).length >= 60);
    } finally {
      await esm.stop();
    }
    const shards = [...new Set(calls.map((c) => c.shard))].sort();
    expect(shards).toEqual(['shardId-000000000000', 'shardId-000000000001']);
    for (const c of calls) {
      // One shard per batch, and the batch size respected.
      expect(new Set(c.event.Records.map((r) => r.eventID.split(':')[0]))).toEqual(new Set([c.shard]));
      expect(c.data.length).toBeLessThanOrEqual(4);
    }
    const perShard = (shard: string) => calls.filter((c) => c.shard === shard).flatMap((c) => c.data);
    // Every record exactly once, in the order it was written to its shard.
    expect(perShard('shardId-000000000000')).toEqual(sent.a);
    expect(perShard('shardId-000000000001')).toEqual(sent.b);
    expect(overlapped).toBe(0);
    const record = calls[0]!.event.Records[0]!;
    expect(record).toMatchObject({
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventName: 'aws:kinesis:record',
      eventSourceARN: `arn:aws:kinesis:us-east-1:000000000000:stream/${base.stream}`,
      eventID: `${calls[0]!.shard}:${record.kinesis.sequenceNumber}`,
      kinesis: { kinesisSchemaVersion: '1.0', partitionKey: 'k' },
    });
    // Seconds since the epoch, with milliseconds, as Lambda sends it.
    expect(Math.abs(record.kinesis.approximateArrivalTimestamp - Date.now() / 1000)).toBeLessThan(120);
    expect(esm.counters).toMatchObject({ records: 60, retries: 0, failures: 0 });
  });

  it('never puts more than batchSize records in one invocation, and fills batches from a backlog', async () => {
    const base = await setup();
    const data = Array.from({ length: 25 }, (_, i) => `r${i}`);
    await put(base.stream, data);
    const { calls, handler } = recording();
    const esm = mapping(base, handler, { batchSize: 10 });
    await esm.start();
    try {
      await waitFor('every record', async () => delivered(calls).length >= 25);
    } finally {
      await esm.stop();
    }
    expect(calls.map((c) => c.data.length)).toEqual([10, 10, 5]);
    expect(delivered(calls)).toEqual(data);
  });

  it('gathers the records that arrive within the batching window into one invocation', async () => {
    const base = await setup();
    const { calls, handler } = recording();
    const esm = mapping(base, handler, { batchingWindowMs: 2500 });
    await esm.start();
    let firstPutAt = 0;
    try {
      firstPutAt = Date.now();
      await put(base.stream, ['first']);
      await sleep(800);
      await put(base.stream, ['second']);
      await waitFor('an invocation', async () => calls.length >= 1, 10_000);
    } finally {
      await esm.stop();
    }
    expect(calls).toHaveLength(1);
    expect(calls[0]!.data).toEqual(['first', 'second']);
    // Invoked when the window closed, not at the first poll that found a record.
    expect(calls[0]!.at - firstPutAt).toBeGreaterThanOrEqual(2300);
  });

  it('invokes with what one poll got when there is no batching window', async () => {
    const base = await setup();
    const { calls, handler } = recording();
    const esm = mapping(base, handler);
    await esm.start();
    try {
      await put(base.stream, ['first']);
      await waitFor('the first invocation', async () => calls.length >= 1);
      await sleep(500);
      await put(base.stream, ['second']);
      await waitFor('the second invocation', async () => calls.length >= 2);
    } finally {
      await esm.stop();
    }
    expect(calls.map((c) => c.data)).toEqual([['first'], ['second']]);
  });

  it('retries from the first reported batch item failure; the records before it are not delivered again', async () => {
    const base = await setup();
    const data = ['r0', 'r1', 'r2', 'r3', 'r4'];
    const seqs = await put(base.stream, data);
    const { calls, handler } = recording(async (inv, nth) =>
      // r3 and r2 reported (in that order): the lowest sequence number is where the retry starts.
      nth === 1
        ? { batchItemFailures: [{ itemIdentifier: inv.seqs[3]! }, { itemIdentifier: inv.seqs[2]! }] }
        : undefined,
    );
    const esm = mapping(base, handler);
    await esm.start();
    try {
      await waitFor('the retry', async () => calls.length >= 2);
      await sleep(500);
    } finally {
      await esm.stop();
    }
    expect(calls.map((c) => c.data)).toEqual([data, ['r2', 'r3', 'r4']]);
    expect(esm.counters).toMatchObject({ batches: 2, retries: 1, records: 5, failures: 0 });
    expect(JSON.parse(readFileSync(base.stateFile, 'utf8'))).toEqual({ 'shardId-000000000000': seqs[4] });
  });

  it('bisects a batch whose invocation throws until the failing record is alone, and sets only that one aside', async () => {
    const base = await setup();
    const data = Array.from({ length: 8 }, (_, i) => (i === 5 ? 'poison' : `r${i}`));
    const seqs = await put(base.stream, data);
    const { calls, handler } = recording(async (inv) => {
      if (inv.data.includes('poison')) throw new Error('cannot apply the poison record');
    });
    const esm = mapping(base, handler, { batchSize: 8, maxRetryAttempts: 1, pollMs: 50 });
    await esm.start();
    try {
      await waitFor('the records after the poison one', async () => calls.at(-1)?.data.join(',') === 'r6,r7');
    } finally {
      await esm.stop();
    }
    // 8 → 4 + 4 → (4 ok) 2 + 2 → 1 + 1 → the poison record alone: invoked, retried once, then set aside.
    expect(calls.map((c) => c.data.join(','))).toEqual([
      'r0,r1,r2,r3,r4,poison,r6,r7',
      'r0,r1,r2,r3',
      'r4,poison,r6,r7',
      'r4,poison',
      'r4',
      'poison',
      'poison',
      'r6,r7',
    ]);
    expect(await keys(base.bucket, 'errors/stream-apply/')).toEqual([
      `errors/stream-apply/shardId-000000000000/${seqs[5]}-${seqs[5]}.json`,
    ]);
    expect(esm.counters).toMatchObject({ bisects: 3, failures: 1, failedRecords: 1, records: 7 });
  });

  it('sends a batch out of retries to the on-failure destination with its reason, and the shard moves on', async () => {
    const base = await setup();
    const [badSeq] = await put(base.stream, ['bad']);
    const { calls, handler } = recording(async (inv) => {
      if (inv.data.includes('bad')) throw new Error('the warehouse refused it');
    });
    const failed: string[] = [];
    const esm = mapping(base, handler, {
      maxRetryAttempts: 2,
      bisectBatchOnFunctionError: false,
      onFailedBatch: (key) => failed.push(key),
    });
    await esm.start();
    try {
      await waitFor('the batch set aside', async () => failed.length === 1);
      await put(base.stream, ['good']);
      await waitFor('the next record', async () => delivered(calls).includes('good'));
    } finally {
      await esm.stop();
    }
    // One invocation and two retries, then never again.
    expect(calls.map((c) => c.data.join(','))).toEqual(['bad', 'bad', 'bad', 'good']);
    const key = `errors/stream-apply/shardId-000000000000/${badSeq}-${badSeq}.json`;
    expect(failed).toEqual([key]);
    const res = await s3.send(new GetObjectCommand({ Bucket: base.bucket, Key: key }));
    const doc = JSON.parse(await res.Body!.transformToString());
    expect(doc).toMatchObject({
      requestContext: { condition: 'RetryAttemptsExhausted', approximateInvokeCount: 3 },
      responseContext: { functionError: 'Unhandled' },
      KinesisBatchInfo: {
        shardId: 'shardId-000000000000',
        startSequenceNumber: badSeq,
        endSequenceNumber: badSeq,
        batchSize: 1,
        streamArn: `arn:aws:kinesis:us-east-1:000000000000:stream/${base.stream}`,
      },
      reason: 'the warehouse refused it',
    });
    expect(Buffer.from(doc.payload.Records[0].kinesis.data, 'base64').toString()).toBe('bad');
    expect(JSON.parse(readFileSync(base.stateFile, 'utf8'))['shardId-000000000000']).not.toBe(badSeq);
  });

  it('keeps the reason a handler gives with its reported failure when the batch ends at the destination', async () => {
    const base = await setup();
    const [seq] = await put(base.stream, ['late']);
    const { handler } = recording(async (inv) => ({
      batchItemFailures: [{ itemIdentifier: inv.seqs[0]! }],
      reason: 'the warehouse does not answer',
    }));
    const esm = mapping(base, handler, { maxRetryAttempts: 0 });
    await esm.start();
    try {
      await waitFor('the batch set aside', async () => (await keys(base.bucket, 'errors/stream-apply/')).length === 1);
    } finally {
      await esm.stop();
    }
    const res = await s3.send(
      new GetObjectCommand({ Bucket: base.bucket, Key: `errors/stream-apply/shardId-000000000000/${seq}-${seq}.json` }),
    );
    const doc = JSON.parse(await res.Body!.transformToString());
    expect(doc.reason).toBe('the warehouse does not answer');
    expect(doc.responseContext.functionError).toBeUndefined();
  });

  it('resumes after a restart from its checkpoint; a batch not finished when it stopped is delivered again', async () => {
    const base = await setup();
    await put(base.stream, ['r0', 'r1', 'r2']);
    const first = recording();
    const one = mapping(base, first.handler);
    await one.start();
    await waitFor('the first records', async () => delivered(first.calls).length === 3);
    await one.stop();

    await put(base.stream, ['r3', 'r4']);
    // This instance never finishes its batch: it is abandoned when stop() gives up, as a kill would leave it.
    let release!: () => void;
    const hung = new Promise<void>((r) => {
      release = r;
    });
    const second = recording(async () => hung);
    const two = mapping(base, second.handler);
    await two.start();
    await waitFor('the hung batch', async () => second.calls.length === 1);
    await two.stop(200);
    release(); // finishing after being abandoned must not move the checkpoint
    await sleep(100);

    const third = recording();
    const three = mapping(base, third.handler);
    await three.start();
    try {
      await waitFor('the records after the checkpoint', async () => delivered(third.calls).length >= 2);
      await sleep(300);
    } finally {
      await three.stop();
    }
    expect(delivered(first.calls)).toEqual(['r0', 'r1', 'r2']);
    expect(delivered(second.calls)).toEqual(['r3', 'r4']);
    // Resumed after r2 (nothing of the first instance again), and r3, r4 again: they were never finished.
    expect(delivered(third.calls)).toEqual(['r3', 'r4']);
  });

  it('makes the local pipeline refuse an unknown apply source or stream apply settings before starting anything', async () => {
    expect(() => checkPipelineOptions({ applySource: 'sideways' as never })).toThrow(
      'applySource must be one of stream, lake, both, got "sideways"',
    );
    expect(() => checkPipelineOptions({ streamApply: { pollMs: 5 } })).toThrow(
      'pollMs must be an integer from 10 to 60000, got 5',
    );
    expect(() => checkPipelineOptions({ applySource: 'both', streamApply: { batchingWindowMs: 5000 } })).not.toThrow();
  });

  it('refuses settings out of Lambda ranges, naming each field and value', () => {
    expect(() =>
      mapping({ stream: 's', bucket: 'b', stateFile: join(dir, 'never.json') }, async () => undefined, {
        batchSize: 0,
        batchingWindowMs: 300_001,
        maxRetryAttempts: -2,
      }),
    ).toThrow(
      'invalid event source mapping settings: batchSize must be an integer from 1 to 10000, got 0; batchingWindowMs must be an integer from 0 to 300000, got 300001; maxRetryAttempts must be an integer from -1 to 10000, got -2',
    );
  });
});

describe('local stream apply process (local/stream-apply-main.ts)', () => {
  it('refuses to start with a bad configuration, naming each variable and its value', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'local/stream-apply-main.ts')], {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        AWS_ENDPOINT_KINESIS: 'http://127.0.0.1:1',
        AWS_ENDPOINT_S3: 'http://127.0.0.1:1',
        STREAM_NAME: 'cdc-changes',
        LAKE_BUCKET: 'lake',
        STREAM_APPLY_STATE_FILE: join(dir, 'never.json'),
        BATCH_SIZE: '0',
        BATCHING_WINDOW_MS: 'soon',
      },
    });
    expect(res.status).toBe(1);
    const fatal = JSON.parse(res.stdout.trim().split('\n').at(-1)!);
    expect(fatal).toMatchObject({ event: 'fatal', code: 'LOCAL_ESM_CONFIG' });
    expect(fatal.error).toContain('BATCH_SIZE="0"');
    expect(fatal.error).toContain('BATCHING_WINDOW_MS="soon"');
  });
});

describe('local stream apply process, its handoffs (local/stream-apply-main.ts with PostgreSQL and the real merge)', () => {
  let postgres: PostgresServer;
  let pool: pg.Pool;
  let child: ChildProcess | undefined;
  const lines: Record<string, unknown>[] = [];
  beforeAll(async () => {
    postgres = await startPostgres({ dir: join(dir, 'pg') });
    pool = new pg.Pool({ connectionString: postgres.url, max: 2 });
  });
  afterAll(async () => {
    if (child) await stopProcess(child, 10_000);
    await pool?.end();
    await postgres?.stop();
  });

  async function put(stream: string, events: readonly ChangeEvent[]): Promise<void> {
    const res = await kinesis.send(
      new PutRecordsCommand({
        StreamName: stream,
        Records: events.map((e) => ({ Data: Buffer.from(JSON.stringify(e)), PartitionKey: `${e.db}.${e.table}` })),
      }),
    );
    expect(res.FailedRecordCount ?? 0).toBe(0);
  }
  const ids = async (db: string, table: string): Promise<number[]> =>
    (await pool.query(`SELECT id FROM "${db}"."${table}" ORDER BY id`)).rows.map((r: { id: number }) => r.id);

  it('hands a table the warehouse refuses off to its merge queue (retried, then set aside with the reason) while the other table flows, and merges it on redrive once fixed', async () => {
    const base = await setup();
    const db = 'handoff';
    const redriveState = join(dir, 'firehose-state-handoff.json');
    const queueFile = `${base.stateFile}.retrying`;
    child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'local/stream-apply-main.ts')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        WAREHOUSE: 'postgres',
        POSTGRES_URL: postgres.url,
        CHANGELOG_SCHEMA: 'cdc',
        REPLICA_SCHEMA: db,
        HISTORY_TABLES: '',
        PIPELINE_ID: 'esm-test',
        AWS_ENDPOINT_S3: s3Emu.endpoint,
        AWS_ENDPOINT_KINESIS: kinesisEmu.endpoint,
        STREAM_NAME: base.stream,
        LAKE_BUCKET: base.bucket,
        STREAM_APPLY_STATE_FILE: base.stateFile,
        REDRIVE_STATE_FILE: redriveState,
        POLL_MS: '100',
        DELIVERY_MAX_ATTEMPTS: '3',
        DELIVERY_RETRY_BACKOFF_MS: '300',
      },
    });
    let rest = '';
    child.stdout!.on('data', (d: Buffer) => {
      const parts = (rest + d.toString()).split('\n');
      rest = parts.pop() ?? '';
      for (const l of parts) if (l.startsWith('{')) lines.push(JSON.parse(l) as Record<string, unknown>);
    });
    child.stderr!.resume();
    await waitFor('the process to be ready', async () => lines.some((l) => l.event === 'ready'), 60_000);

    const orders = new TableEvents(db, 'orders', { id: 'int', note: 'varchar(20)' });
    const items = new TableEvents(db, 'items', { id: 'int', note: 'varchar(20)' });
    await put(base.stream, [orders.insert({ id: 1, note: 'a' }), items.insert({ id: 1, note: 'a' })]);
    await waitFor('both replicas', async () => (await ids(db, 'orders').catch(() => [])).length === 1);
    await waitFor('both replicas', async () => (await ids(db, 'items').catch(() => [])).length === 1);
    // A real fault: the warehouse refuses every change to one replica.
    await pool.query(`
      CREATE FUNCTION "${db}".refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
      CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON "${db}".orders
        FOR EACH ROW EXECUTE FUNCTION "${db}".refuse()`);
    await put(base.stream, [orders.insert({ id: 2, note: 'b' }), items.insert({ id: 2, note: 'b' })]);
    await waitFor('the other table', async () => (await ids(db, 'items')).length === 2);
    const handedOff = await waitFor('the handoff', async () => lines.find((l) => l.event === 'handed-off'));
    expect(handedOff).toMatchObject({
      table: `${db}.orders`,
      key: expect.stringMatching(/^handoff\/source_db=handoff\/source_table=orders\//),
    });
    expect(String(handedOff.reason)).toContain('refused by the test');
    // Retried from the queue (saved beside the checkpoints), with the reason, as the lake path's queue does.
    const queued = await waitFor('a failed retry in the queue', async () =>
      existsSync(queueFile)
        ? (JSON.parse(readFileSync(queueFile, 'utf8')) as PendingRetry[]).find((r) => r.attempts > 0)
        : undefined,
    );
    expect(queued.key).toBe(handedOff.key);
    expect(queued.lastError).toContain('refused by the test');
    const report = `errors/merge/${String(handedOff.key)}.json`;
    await waitFor(
      'the object set aside',
      async () => (await keys(base.bucket, 'errors/merge/')).includes(report),
      30_000,
    );
    const res = await s3.send(new GetObjectCommand({ Bucket: base.bucket, Key: report }));
    expect(JSON.parse(await res.Body!.transformToString())).toMatchObject({
      object: handedOff.key,
      table: `${db}.orders`,
      attempts: 3,
      reason: expect.stringContaining('refused by the test'),
    });
    expect(await ids(db, 'orders')).toEqual([1]);

    // Fixed, then redriven (what `npx cdc redrive` writes): merged from the queue, nothing set aside any more.
    await pool.query(`DROP TRIGGER refuse ON "${db}".orders`);
    writeFileSync(`${redriveState}.redrive.tmp`, JSON.stringify({ id: 'r1', tables: [] }));
    renameSync(`${redriveState}.redrive.tmp`, `${redriveState}.redrive`);
    await waitFor('the redrive answer', async () => existsSync(`${redriveState}.redrive.done`));
    expect(JSON.parse(readFileSync(`${redriveState}.redrive.done`, 'utf8'))).toEqual({
      id: 'r1',
      objects: [handedOff.key],
    });
    await waitFor('orders merged', async () => (await ids(db, 'orders')).length === 2);
    expect(await keys(base.bucket, 'errors/merge/')).toEqual([]);
    expect(lines.filter((l) => l.event === 'applied').length).toBeGreaterThanOrEqual(2);
  });
});
