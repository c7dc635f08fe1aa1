/**
 * The local Firehose stand-in against real components: kinesalite (2 shards), s3rver, PostgreSQL, and the real merge.
 * Records go into Kinesis through the SDK, as the producer writes them.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  KinesisClient,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetriableMergeError } from '../../lambdas/merge/src/errors';
import { PostgresWarehouse } from '../../lambdas/merge/src/postgres-client';
import type { WarehouseClient } from '../../lambdas/merge/src/warehouse-client';
import { LocalFirehose, type LocalFirehoseProps } from '../../local/firehose';
import { checkHints, flushDue, lakeObjectKey } from '../../local/firehose-batching';
import { ROOT } from '../../local/pipeline';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { type PostgresServer, startPostgres } from '../../local/services/postgres';
import { waitFor } from '../../local/services/process';
import type { ChangeEvent } from '../../shared/change-event';
import { parseLakeKey } from '../../shared/lake-layout';
import { TableEvents } from '../merge/support/event-factory';

const dir = mkdtempSync(join(tmpdir(), 'cdc-firehose-'));
let kinesisEmu: Emulator;
let s3Emu: Emulator;
let postgres: PostgresServer;
let kinesis: KinesisClient;
let s3: S3Client;
let pool: pg.Pool;
let n = 0;

beforeAll(async () => {
  [kinesisEmu, s3Emu, postgres] = await Promise.all([
    startEmulator('kinesis'),
    startEmulator('s3', { dir: join(dir, 's3') }),
    startPostgres({ dir: join(dir, 'pg') }),
  ]);
  kinesis = new KinesisClient(localAwsClientConfig(kinesisEmu.endpoint));
  s3 = new S3Client(localAwsClientConfig(s3Emu.endpoint));
  pool = new pg.Pool({ connectionString: postgres.url, max: 4 });
});
afterAll(async () => {
  await pool?.end();
  await Promise.all([kinesisEmu?.stop(), s3Emu?.stop(), postgres?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh stream, bucket, schemas and state file per test, so tests do not see each other's records. */
async function setup(): Promise<{ stream: string; bucket: string; db: string; props: LocalFirehoseProps }> {
  n++;
  const stream = `s${n}`;
  const bucket = `lake-${n}`;
  const db = `shop${n}`;
  await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 2 }));
  // A new stream takes writes once ACTIVE: a PutRecords before that failed a CI run with "Stream … not found".
  await waitFor(`stream ${stream} active`, async () => {
    const d = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: stream })).catch(() => undefined);
    return d?.StreamDescriptionSummary?.StreamStatus === 'ACTIVE';
  });
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const props: LocalFirehoseProps = {
    kinesis,
    s3,
    pool,
    streamName: stream,
    bucket,
    changelogSchema: `cdc${n}`,
    merge: { warehouse: new PostgresWarehouse(pool), naming: { stateSchema: `cdc${n}` }, historyTables: new Set() },
    stateFile: join(dir, `state-${n}.json`),
    bufferMs: 200,
  };
  return { stream, bucket, db, props };
}

async function put(stream: string, events: readonly (ChangeEvent | string)[]): Promise<void> {
  const res = await kinesis.send(
    new PutRecordsCommand({
      StreamName: stream,
      Records: events.map((e, i) => ({
        Data: Buffer.from(typeof e === 'string' ? e : JSON.stringify(e)),
        // Spread over both shards, like the producer's per-table partition keys.
        PartitionKey: typeof e === 'string' ? `raw${i}` : `${e.db}.${e.table}`,
      })),
    }),
  );
  expect(res.FailedRecordCount ?? 0).toBe(0);
}

async function keys(bucket: string, prefix = ''): Promise<string[]> {
  const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (res.Contents ?? []).map((o) => o.Key!).sort();
}

async function objectEvents(bucket: string, key: string): Promise<ChangeEvent[]> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const text = gunzipSync(await res.Body!.transformToByteArray()).toString('utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ChangeEvent);
}

async function changelogPositions(schema: string): Promise<string[]> {
  const res = await pool.query(`SELECT source_table || ' ' || position AS p FROM "${schema}".changelog ORDER BY 1`);
  return res.rows.map((r: { p: string }) => r.p);
}

function workload(db: string) {
  const orders = new TableEvents(db, 'orders', { id: 'int', status: "enum('new','paid')", total: 'decimal(10,2)' });
  const items = new TableEvents(db, 'items', { id: 'int', sku: 'varchar(32)' });
  const events = [
    orders.insert({ id: 1, status: 'new', total: '10.50' }),
    items.insert({ id: 7, sku: 'BK-1' }),
    orders.insert({ id: 2, status: 'new', total: '99.99' }),
    orders.update({ id: 1, status: 'new', total: '10.50' }, { id: 1, status: 'paid', total: '10.50' }),
    items.insert({ id: 8, sku: 'TY-1' }),
    orders.delete({ id: 2, status: 'new', total: '99.99' }),
  ];
  return { orders, items, events };
}

/** The replica's source columns as text, one `a|b|c` line per row, by id. */
async function replica(db: string, table: string): Promise<string[]> {
  const cols = table === 'orders' ? ['id', 'status', 'total'] : ['id', 'sku'];
  const res = await pool.query(
    `SELECT ${cols.map((c) => `${c}::text`).join(` || '|' || `)} AS r FROM "${db}"."${table}" ORDER BY id`,
  );
  return res.rows.map((r: { r: string }) => r.r);
}

describe('local Firehose stand-in', () => {
  it('writes one gzip NDJSON object per table under the lake keys, loads the raw changelog, and merges each object', async () => {
    const { stream, bucket, db, props } = await setup();
    const { events } = workload(db);
    await put(stream, events);
    const fh = new LocalFirehose(props);
    await fh.start();
    try {
      await waitFor('both replicas', async () => (await replica(db, 'items').catch(() => [])).length === 2);
      await waitFor('orders merged', async () => (await replica(db, 'orders').catch(() => [])).length === 1);
    } finally {
      await fh.stop();
    }
    const written = await keys(bucket, 'changelog/');
    const byTable = new Map<string, ChangeEvent[]>();
    for (const key of written) {
      const ref = parseLakeKey(key);
      expect(ref, key).toBeDefined();
      const inObject = await objectEvents(bucket, key);
      // One table per object, and it is the table the key names.
      expect(new Set(inObject.map((e) => `${e.db}.${e.table}`))).toEqual(new Set([`${ref!.db}.${ref!.table}`]));
      byTable.set(ref!.table, [...(byTable.get(ref!.table) ?? []), ...inObject]);
    }
    expect(byTable.get('orders')).toEqual(events.filter((e) => e.table === 'orders'));
    expect(byTable.get('items')).toEqual(events.filter((e) => e.table === 'items'));
    expect(await changelogPositions(props.changelogSchema)).toEqual(
      events.map((e) => `${e.table} ${e.position}`).sort(),
    );
    // Like COPY with the JSONPaths: JSON null as SQL NULL, documents as JSON.
    const images = await pool.query(
      `SELECT op, before_image IS NULL AS no_before, after_image IS NULL AS no_after, pk, claim_check FROM "${props.changelogSchema}".changelog ORDER BY position`,
    );
    expect(images.rows.map((r) => `${r.op} before:${!r.no_before} after:${!r.no_after}`).sort()).toEqual([
      'delete before:true after:false',
      'insert before:false after:true',
      'insert before:false after:true',
      'insert before:false after:true',
      'insert before:false after:true',
      'update before:true after:true',
    ]);
    expect(images.rows.every((r) => JSON.stringify(r.pk) === '["id"]' && r.claim_check === null)).toBe(true);
    expect(await replica(db, 'orders')).toEqual(['1|paid|10.50']);
    expect(await replica(db, 'items')).toEqual(['7|BK-1', '8|TY-1']);
  });

  it('with mergeObjects off (stream apply), writes the lake and the raw changelog and merges nothing', async () => {
    const { stream, bucket, db, props } = await setup();
    const { events } = workload(db);
    await put(stream, events);
    const fh = new LocalFirehose({ ...props, mergeObjects: false });
    await fh.start();
    try {
      await waitFor('the raw changelog', async () => (await changelogPositions(props.changelogSchema)).length === 6);
      await new Promise((r) => setTimeout(r, 500)); // time enough for a merge, had one been queued
    } finally {
      await fh.stop();
    }
    expect(await keys(bucket, 'changelog/')).toHaveLength(2);
    expect(fh.pendingRetries).toEqual([]);
    expect(await replica(db, 'items').catch((e: Error) => e.message)).toMatch(/does not exist/);
  });

  it('delivers as soon as the size hint is reached, without waiting for the interval', async () => {
    const { stream, bucket, db, props } = await setup();
    await put(stream, workload(db).events);
    // 15 minutes (Firehose's longest interval): only the size hint can make it deliver within the test.
    const fh = new LocalFirehose({ ...props, bufferMs: 900_000, bufferBytes: 1 });
    await fh.start();
    try {
      await waitFor('objects by size', async () => (await keys(bucket, 'changelog/')).length >= 2);
    } finally {
      await fh.stop();
    }
  });

  it('resumes after a restart from its saved shard positions: nothing lost, nothing delivered twice', async () => {
    const { stream, db, props } = await setup();
    const { orders, events } = workload(db);
    await put(stream, events);
    const first = new LocalFirehose(props);
    await first.start();
    await waitFor('first delivery', async () => (await changelogPositions(props.changelogSchema)).length === 6);
    await first.stop();
    expect(Object.keys(JSON.parse(readFileSync(props.stateFile, 'utf8')))).not.toHaveLength(0);

    const more = [orders.insert({ id: 3, status: 'new', total: '1.00' })];
    await put(stream, more);
    const second = new LocalFirehose(props);
    await second.start();
    try {
      await waitFor('second delivery', async () => (await changelogPositions(props.changelogSchema)).length >= 7);
    } finally {
      await second.stop();
    }
    expect(await changelogPositions(props.changelogSchema)).toEqual(
      [...events, ...more].map((e) => `${e.table} ${e.position}`).sort(),
    );
    expect(await replica(db, 'orders')).toEqual(['1|paid|10.50', '3|new|1.00']);
  });

  it('reads again what it had buffered but not delivered when it stopped', async () => {
    const { stream, db, props } = await setup();
    const { events } = workload(db);
    await put(stream, events);
    const buffering = new LocalFirehose({ ...props, bufferMs: 900_000, bufferBytes: 128 * 1024 * 1024 });
    await buffering.start();
    await new Promise((r) => setTimeout(r, 1000)); // it has read the records by now, and must not deliver them
    await buffering.stop();
    expect(await changelogPositions(props.changelogSchema)).toEqual([]);

    const next = new LocalFirehose(props);
    await next.start();
    try {
      await waitFor('redelivery', async () => (await changelogPositions(props.changelogSchema)).length === 6);
    } finally {
      await next.stop();
    }
    expect(await replica(db, 'items')).toHaveLength(2);
  });

  it('retries a delivery whose merge failed, without loading the raw changelog twice', async () => {
    const { stream, db, props } = await setup();
    const { events } = workload(db);
    await put(stream, events);
    // A real PostgreSQL behind a client that fails its first transaction the way a busy warehouse does.
    const real: WarehouseClient = new PostgresWarehouse(pool);
    let failures = 0;
    const flaky: WarehouseClient = {
      dialect: real.dialect,
      query: (sql) => real.query(sql),
      executeAll: (statements) => real.executeAll(statements),
      stageLocation: (id) => real.stageLocation(id),
      runTransaction: async (steps, csv, stage) => {
        if (failures++ === 0) throw new RetriableMergeError('SERIALIZATION_CONFLICT', 'injected: could not serialize');
        return real.runTransaction(steps, csv, stage);
      },
    };
    const errors: string[] = [];
    const fh = new LocalFirehose({
      ...props,
      merge: { ...props.merge, warehouse: flaky, maxAttempts: 1 },
      onError: (e) => errors.push(e.message),
    });
    await fh.start();
    try {
      await waitFor('both replicas', async () => (await replica(db, 'items').catch(() => [])).length === 2);
      await waitFor('orders merged', async () => (await replica(db, 'orders').catch(() => [])).length === 1);
    } finally {
      await fh.stop();
    }
    expect(errors.join('\n')).toContain('injected: could not serialize');
    expect(await changelogPositions(props.changelogSchema)).toEqual(
      events.map((e) => `${e.table} ${e.position}`).sort(),
    );
  });

  /** A real PostgreSQL behind a client whose transactions on `table` always fail (a fault no real server makes on demand). */
  function failingFor(table: string, calls: { n: number }): WarehouseClient {
    const real: WarehouseClient = new PostgresWarehouse(pool);
    return {
      dialect: real.dialect,
      query: (sql) => real.query(sql),
      executeAll: (statements) => real.executeAll(statements),
      stageLocation: (id) => real.stageLocation(id),
      runTransaction: async (steps, csv, stage) => {
        if (JSON.stringify(steps).includes(`\\"${table}\\"`)) {
          calls.n++;
          throw new RetriableMergeError('WAREHOUSE_STATEMENT_FAILED', `injected: ${table} cannot be applied`);
        }
        return real.runTransaction(steps, csv, stage);
      },
    };
  }

  it('sets aside an object that fails every attempt after the bounded attempts, while other tables keep merging', async () => {
    const { stream, bucket, db, props } = await setup();
    const { orders, items } = workload(db);
    // The failing table first, on the same shard and in the same delivery as the other one: it must not hold it back.
    const sent = await kinesis.send(
      new PutRecordsCommand({
        StreamName: stream,
        Records: [orders.insert({ id: 1, status: 'new', total: '1.00' }), items.insert({ id: 7, sku: 'BK-1' })].map(
          (e) => ({ Data: Buffer.from(JSON.stringify(e)), PartitionKey: 'one-shard' }),
        ),
      }),
    );
    expect(sent.FailedRecordCount ?? 0).toBe(0);
    const calls = { n: 0 };
    const errors: string[] = [];
    const fh = new LocalFirehose({
      ...props,
      merge: { ...props.merge, warehouse: failingFor('orders', calls), maxAttempts: 1 },
      maxDeliveryAttempts: 3,
      retryBackoffMs: 2000, // retried after 2 s, then 4 s: long enough to see the other table go on meanwhile
      onError: (e) => errors.push(e.message),
    });
    await fh.start();
    try {
      await waitFor('items merged', async () => (await replica(db, 'items').catch(() => [])).length === 1);
      // A later delivery of the other table goes on while orders is still being retried.
      await put(stream, [items.insert({ id: 8, sku: 'TY-1' })]);
      await waitFor('later items merged', async () => (await replica(db, 'items').catch(() => [])).length === 2);
      // The queue holds every delivered object until its merge returned (its rows are visible a moment earlier: the
      // merge records the batch in its own transaction after the data's), so wait for the items object to leave it;
      // meanwhile the orders object is still being retried: the one retried is the orders object, no items object.
      await waitFor('the items objects out of the queue', async () =>
        fh.pendingRetries.every((r) => !r.key.includes('source_table=items')),
      );
      const pending = fh.pendingRetries;
      expect(pending.filter((r) => r.attempts > 0).map((r) => r.key)).toEqual([
        expect.stringContaining('source_table=orders'),
      ]);
      await waitFor('orders set aside', async () => (await keys(bucket, 'errors/merge/')).length === 1);
    } finally {
      await fh.stop();
    }
    const [aside] = await keys(bucket, 'errors/merge/');
    expect(aside).toContain('source_table=orders');
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: aside }));
    const doc = JSON.parse(await res.Body!.transformToString()) as { object: string; reason: string; attempts: number };
    expect(doc.reason).toContain('injected: orders cannot be applied');
    expect(doc.attempts).toBe(3);
    expect(`errors/merge/${doc.object}.json`).toBe(aside);
    expect(calls.n).toBe(3);
    expect(fh.pendingRetries).toHaveLength(0);
    expect(errors.filter((e) => e.includes('injected'))).toHaveLength(3);
  });

  it('keeps an object queued for a retry across a restart, and merges it once the table can be applied', async () => {
    const { stream, bucket, db, props } = await setup();
    const { orders, items } = workload(db);
    await put(stream, [orders.insert({ id: 1, status: 'new', total: '1.00' }), items.insert({ id: 7, sku: 'BK-1' })]);
    const calls = { n: 0 };
    const first = new LocalFirehose({
      ...props,
      merge: { ...props.merge, warehouse: failingFor('orders', calls), maxAttempts: 1 },
      retryBackoffMs: 2000,
    });
    await first.start();
    try {
      await waitFor('items merged', async () => (await replica(db, 'items').catch(() => [])).length === 1);
      await waitFor('orders queued', async () => first.pendingRetries.length === 1);
    } finally {
      await first.stop();
    }
    // The shard positions moved past the orders record: only the saved retry queue still knows its object.
    const next = new LocalFirehose(props);
    expect(next.pendingRetries).toHaveLength(1);
    await next.start();
    try {
      await waitFor('orders merged', async () => (await replica(db, 'orders').catch(() => [])).length === 1);
    } finally {
      await next.stop();
    }
    expect(await keys(bucket, 'errors/')).toEqual([]);
    expect(await keys(bucket, 'changelog/')).toHaveLength(2); // nothing delivered twice
  });

  it('sets aside a poison object and an unparseable record with their reason, and keeps delivering', async () => {
    const { stream, bucket, db, props } = await setup();
    const { items } = workload(db);
    const poison = { ...items.insert({ id: 1, sku: 'X' }), table: 'future', v: 99 } as unknown as ChangeEvent;
    await put(stream, [poison, 'not json at all']);
    await put(stream, [items.insert({ id: 9, sku: 'OK-1' })]);
    const errors: string[] = [];
    const fh = new LocalFirehose({ ...props, onError: (e) => errors.push(e.message) });
    await fh.start();
    try {
      await waitFor('the good record merged', async () => (await replica(db, 'items').catch(() => [])).length === 1);
    } finally {
      await fh.stop();
    }
    const setAside = await keys(bucket, 'errors/');
    expect(setAside.filter((k) => k.startsWith('errors/unparseable/'))).toHaveLength(1);
    const merge = setAside.filter((k) => k.startsWith('errors/merge/'));
    expect(merge).toHaveLength(1);
    expect(merge[0]).toContain('source_table=future');
    expect(errors.join('\n')).toMatch(/event version 99/);
  });
});

describe('local Firehose buffering and keys', () => {
  const hints = { intervalMs: 1000, sizeBytes: 100 };
  it('is due when the interval has passed since the oldest buffered record, or the size is reached', () => {
    expect(flushDue(hints, 10, 0, 999)).toBe(false);
    expect(flushDue(hints, 10, 0, 1000)).toBe(true);
    expect(flushDue(hints, 100, 0, 1)).toBe(true);
    expect(flushDue(hints, 0, 0, 5000)).toBe(false); // nothing to deliver
  });

  it('names objects with the lake partitions of their table and delivery hour (UTC)', () => {
    const key = lakeObjectKey('shop', 'orders', new Date('2026-11-23T23:59:59.123Z'), 'u1');
    expect(key).toBe(
      'changelog/source_db=shop/source_table=orders/dt=2026-11-23/hour=23/local-firehose-20261123T235959123Z-u1.gz',
    );
    expect(parseLakeKey(key)).toEqual({ db: 'shop', table: 'orders', dt: '2026-11-23', hour: '23' });
  });

  it('rejects buffering hints out of Firehose range, naming the field and the value', () => {
    expect(() => checkHints({ intervalMs: -1, sizeBytes: 0 })).toThrow(
      'invalid buffering hints: intervalMs must be an integer from 0 to 900000, got -1; sizeBytes must be an integer from 1 to 134217728, got 0',
    );
  });
});

describe('local Firehose process (local/firehose-main.ts)', () => {
  it('refuses to start with a bad configuration, naming each variable and its value', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'local/firehose-main.ts')], {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        AWS_ENDPOINT_KINESIS: 'http://127.0.0.1:1',
        AWS_ENDPOINT_S3: 'http://127.0.0.1:1',
        STREAM_NAME: 'no spaces allowed',
        LAKE_BUCKET: 'lake',
        FIREHOSE_STATE_FILE: join(dir, 'never.json'),
        BUFFER_INTERVAL_MS: '-5',
      },
    });
    expect(res.status).toBe(1);
    const fatal = JSON.parse(res.stdout.trim().split('\n').at(-1)!);
    expect(fatal).toMatchObject({ event: 'fatal', code: 'LOCAL_FIREHOSE_CONFIG' });
    expect(fatal.error).toContain('STREAM_NAME="no spaces allowed": must be a Kinesis stream name');
    expect(fatal.error).toContain('BUFFER_INTERVAL_MS="-5"');
  });
});
