/**
 * The watermark window, made deterministic: the producer's own pieces (binlog reader, snapshotter, core, Kinesis sink)
 * against a real MariaDB and kinesalite, with row changes written at exact moments of a chunk's life — after its low
 * watermark (before the read) and after the read (before its high watermark). The second one is the case the
 * algorithm exists for: the chunk holds the old value, and emitting it at the high watermark would overwrite the newer
 * change in every replica.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateStreamCommand,
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
} from '@aws-sdk/client-kinesis';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BinlogSource } from '../../containers/producer/src/binlog-source';
import { type CaptureProps, createCapture } from '../../containers/producer/src/capture';
import { EmfMetrics } from '../../containers/producer/src/metrics';
import type { WatermarkKind } from '../../containers/producer/src/signal-table';
import { ensureSignalTable, writeWatermark } from '../../containers/producer/src/signal-table';
import { EMPTY_STATE, type SnapshotState } from '../../containers/producer/src/snapshot-progress';
import { SnapshotReader } from '../../containers/producer/src/snapshot-reader';
import { TableFilter } from '../../containers/producer/src/table-filter';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { type MariaDbServer, startMariaDb } from '../../local/services/mariadb';
import { waitFor } from '../../local/services/process';
import { type ChangeEvent, isTableOp } from '../../shared/change-event';

const dir = mkdtempSync(join(tmpdir(), 'cdc-window-'));
let maria: MariaDbServer;
let kinesisEmu: Emulator;
let kinesis: KinesisClient;
let db: mysql.Connection;

beforeAll(async () => {
  [maria, kinesisEmu] = await Promise.all([startMariaDb({ dir: join(dir, 'mariadb') }), startEmulator('kinesis')]);
  kinesis = new KinesisClient(localAwsClientConfig(kinesisEmu.endpoint));
  await kinesis.send(new CreateStreamCommand({ StreamName: 'w', ShardCount: 1 }));
  await waitFor('the stream', async () => {
    const d = await kinesis.send(new DescribeStreamCommand({ StreamName: 'w' }));
    return d.StreamDescription?.StreamStatus === 'ACTIVE';
  });
  db = await mysql.createConnection({ ...maria, multipleStatements: true });
  await db.query(
    "CREATE DATABASE shop; CREATE TABLE shop.w (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO shop.w SELECT seq, 'old' FROM shop.seq_1_to_10; " +
      'CREATE TABLE shop.fence (id INT AUTO_INCREMENT PRIMARY KEY)',
  );
});
afterAll(async () => {
  await db?.end();
  await Promise.all([maria?.stop(), kinesisEmu?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function stream(): Promise<ChangeEvent[]> {
  const desc = await kinesis.send(new DescribeStreamCommand({ StreamName: 'w' }));
  const shardId = desc.StreamDescription!.Shards![0]!.ShardId!;
  const it = await kinesis.send(
    new GetShardIteratorCommand({ StreamName: 'w', ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }),
  );
  const res = await kinesis.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator!, Limit: 10_000 }));
  return (res.Records ?? []).map((r) => JSON.parse(Buffer.from(r.Data!).toString()) as ChangeEvent);
}

interface SnapshotRun {
  readonly events: ChangeEvent[];
  readonly metrics: Record<string, unknown>;
  readonly job: SnapshotState['jobs'][number];
  readonly logs: string[];
}

/**
 * The producer's pieces on one table: a snapshot of `table` with `hook` called around each watermark write, until its
 * job ends; then every event the stream holds for the table, in position order.
 */
async function snapshotOf(
  table: string,
  hook: (kind: WatermarkKind, phase: 'before' | 'after') => Promise<void>,
  extra: Pick<CaptureProps, 'keylessMaxRows' | 'keylessRetryMs'> = {},
  spy: (reader: SnapshotReader) => void = () => undefined,
): Promise<SnapshotRun> {
  const signals = { db: 'cdc', table: 'cdc_signal' };
  const src = { host: maria.host, port: maria.port, user: maria.user, password: maria.password };
  const filter = new TableFilter({
    include: [`shop.${table}`],
    exclude: [],
    excludeColumns: [],
    hashColumns: [],
    maskColumns: [],
  });
  const reader = await SnapshotReader.connect(src);
  spy(reader);
  await ensureSignalTable(reader.connection, signals);
  const [[end]] = (await db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string; Position: number }]];
  const source = new BinlogSource({
    ...src,
    serverId: 77,
    captures: (d, t) => filter.captures(d, t) && d !== 'cdc',
    isSignalTable: (d, t) => d === 'cdc' && t === 'cdc_signal',
  });
  const metricLines: string[] = [];
  const metrics = new EmfMetrics('test', 'test', (l) => metricLines.push(l));
  const logs: string[] = [];
  let failure: Error | undefined;
  const { core, snapshotter } = createCapture({
    source,
    reader,
    kinesis,
    streamName: 'w',
    serverId: 1,
    filter,
    captures: (d, t) => filter.captures(d, t),
    signalTable: signals,
    pipelineId: 'test',
    partitionKeyMode: 'table',
    maxInFlight: 20_000,
    chunkRows: 100,
    ...extra,
    metrics,
    log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
    initialSnapshotState: EMPTY_STATE,
    fail: (err) => {
      failure = err;
    },
    writeWatermark: async (kind, chunk) => {
      await hook(kind, 'before');
      await writeWatermark(reader.connection, signals, 'test', kind, chunk);
      await hook(kind, 'after');
    },
  });
  const ready = new Promise<void>((r) => source.once('ready', () => r()));
  source.start({ kind: 'file', file: end.File, pos: end.Position });
  await ready;
  snapshotter.enqueue('initial', [{ db: 'shop', table }]);
  snapshotter.start((err) => {
    failure = err;
  });
  await waitFor('the snapshot', async () => {
    if (failure) throw failure;
    return ['done', 'failed'].includes(snapshotter.state.jobs[0]?.status ?? '');
  });
  // A last row change after the job: the reader has passed everything before it.
  await db.query(`INSERT INTO shop.fence VALUES (NULL)`);
  await new Promise((r) => setTimeout(r, 300));
  await core.drain();
  await snapshotter.stop();
  source.stop();
  await reader.close();
  metrics.flush();
  const events = (await stream()).filter((e) => e.table === table).sort((a, b) => (a.position < b.position ? -1 : 1));
  const sum: Record<string, unknown> = {};
  for (const l of metricLines) {
    for (const [k, v] of Object.entries(JSON.parse(l) as Record<string, unknown>)) {
      if (typeof v === 'number' && k !== 'ts') sum[k] = ((sum[k] as number | undefined) ?? 0) + v;
    }
  }
  return { events, metrics: sum, job: snapshotter.state.jobs[0]!, logs };
}

describe('the watermark window', () => {
  it('drops chunk rows changed between the watermarks, so a stale read never lands after a newer change', async () => {
    const { events, metrics } = await snapshotOf('w', async (kind, phase) => {
      // After the read, before the high watermark: the chunk holds 'old' for id 7, the binlog a newer value.
      if (kind === 'high' && phase === 'before') await db.query("UPDATE shop.w SET v = 'after-read' WHERE id = 7");
      // After the low watermark, before the read: the chunk already holds the new value of id 3 (and the delete).
      if (kind === 'low' && phase === 'after')
        await db.query("UPDATE shop.w SET v = 'in-window' WHERE id = 3; DELETE FROM shop.w WHERE id = 9");
    });
    const reads = events.filter((e) => e.op === 'read').map((e) => e.after!.id);
    expect(reads).toEqual([1, 2, 4, 5, 6, 8, 10]);
    expect(metrics).toMatchObject({ SnapshotRows: 7, SnapshotRowsSkipped: 2 });
    // Replayed in position order, as the merge orders them, the events leave exactly the source's rows.
    const rows = new Map<unknown, unknown>();
    for (const e of events) {
      if (isTableOp(e.op)) continue;
      if (e.op === 'delete') rows.delete(e.before!.id);
      else rows.set(e.after!.id, e.after!.v);
    }
    const [src2] = await db.query('SELECT id, v FROM shop.w ORDER BY id');
    expect([...rows].sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual(
      (src2 as { id: number; v: string }[]).map((r) => [r.id, r.v]),
    );
    expect(rows.get(7)).toBe('after-read');
    // After the reads, at the high watermark: the chunk's key range (the only chunk: the whole table) with the low
    // watermark's position, older than the changes inside the window.
    const ranges = events.filter((e) => e.op === 'range');
    expect(ranges.map((e) => e.change?.range)).toEqual([{ after: null, upto: null, low_position: expect.any(String) }]);
    const inWindow = events.find((e) => e.op === 'update' && e.after!.id === 3)!;
    expect(ranges[0]!.change!.range!.low_position < inWindow.position).toBe(true);
    expect(events.at(-1)).toBe(ranges[0]);
  });
});

describe("a table's shape", () => {
  /** Counts the reader's `describe` calls (the information_schema reads of the table's shape). */
  const counting = (calls: string[]) => (reader: SnapshotReader) => {
    const describe = reader.describe.bind(reader);
    reader.describe = (d, t) => {
      calls.push(`${d}.${t}`);
      return describe(d, t);
    };
  };

  it('is read once per job, not before every chunk', async () => {
    await db.query(
      "CREATE TABLE shop.s1 (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO shop.s1 SELECT seq, 'x' FROM shop.seq_1_to_350",
    );
    const calls: string[] = [];
    const { events, job } = await snapshotOf('s1', async () => undefined, {}, counting(calls));
    expect(job).toMatchObject({ status: 'done', rowsEmitted: 350 });
    expect(events.filter((e) => e.op === 'range')).toHaveLength(5); // 4 chunks of 100 rows at most, then the whole table
    expect(calls).toEqual(['shop.s1']);
  });

  it('is read again when the table changes after it was read, and the chunk read with the old one is read again', async () => {
    await db.query(
      "CREATE TABLE shop.s2 (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO shop.s2 SELECT seq, 'x' FROM shop.seq_1_to_300",
    );
    const calls: string[] = [];
    let lows = 0;
    const { events, job, logs } = await snapshotOf(
      's2',
      async (kind, phase) => {
        // Before the second chunk's low watermark: its shape (taken before) no longer has every column, and the DDL
        // is in the binlog before the window opens.
        if (kind === 'low' && phase === 'before' && ++lows === 2) {
          await db.query('ALTER TABLE shop.s2 ADD COLUMN extra INT NOT NULL DEFAULT 7');
        }
      },
      {},
      counting(calls),
    );
    expect(job).toMatchObject({ status: 'done' });
    const reads = events.filter((e) => e.op === 'read');
    // Each row's newest read (the merge keeps the newest position): after the DDL, every read has the new column.
    const newest = new Map(reads.map((e) => [e.after!.id, e]));
    expect([...newest.keys()].sort((a, b) => Number(a) - Number(b))).toEqual(
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    for (const e of reads.filter((r) => Number(r.after!.id) > 100)) {
      expect(e.after, `row ${String(e.after!.id)}`).toEqual({ id: e.after!.id, v: 'x', extra: 7 });
      expect(e.columns.map((c) => c.name)).toEqual(['id', 'v', 'extra']);
    }
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(logs.some((l) => l.includes('reading it again'))).toBe(true);
  });

  it('fails its job, not the producer, when the table is dropped between two chunks', async () => {
    await db.query('CREATE TABLE shop.s3 (id INT PRIMARY KEY); INSERT INTO shop.s3 SELECT seq FROM shop.seq_1_to_300');
    let lows = 0;
    // Before the second chunk's low watermark: the chunk is read with the shape of a table that no longer exists.
    const { job } = await snapshotOf('s3', async (kind, phase) => {
      if (kind === 'low' && phase === 'before' && ++lows === 2) await db.query('DROP TABLE shop.s3');
    });
    expect(job).toMatchObject({ status: 'failed', error: 'shop.s3 does not exist' });
  });
});

/** A keyless table's rows as the merge keeps them: +1/−1 per image, everything before a whole-table range dropped. */
function multisetOf(events: readonly ChangeEvent[]): Map<string, number> {
  const m = new Map<string, number>();
  const add = (image: Record<string, unknown>, n: number) => {
    const k = JSON.stringify(image);
    m.set(k, (m.get(k) ?? 0) + n);
    if (m.get(k) === 0) m.delete(k);
  };
  for (const e of events) {
    if (e.op === 'range') m.clear();
    else if (isTableOp(e.op)) continue;
    if (e.before && e.op !== 'insert' && e.op !== 'read') add(e.before, -1);
    if (e.after && e.op !== 'delete') add(e.after, 1);
  }
  return m;
}

async function sourceMultiset(table: string): Promise<Map<string, number>> {
  const [rows] = await db.query(`SELECT * FROM shop.${table}`);
  const m = new Map<string, number>();
  for (const r of rows as Record<string, unknown>[]) {
    const k = JSON.stringify(r);
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

describe('tables without a primary key', () => {
  it('are read whole between one watermark pair, read again while they change inside it, and sent once: the range first, then every row', async () => {
    await db.query(
      "CREATE TABLE shop.k (a INT, v VARCHAR(10)); INSERT INTO shop.k VALUES (1,'x'),(1,'x'),(2,'y'),(3,NULL)",
    );
    let windows = 0;
    const { events, metrics, job, logs } = await snapshotOf('k', async (kind, phase) => {
      // Inside the first two windows (after the low watermark), the table changes: both reads are discarded.
      if (kind === 'low' && phase === 'after' && ++windows <= 2) {
        await db.query(`INSERT INTO shop.k VALUES (${10 + windows}, 'new'); DELETE FROM shop.k WHERE a = 2 LIMIT 1`);
      }
    });
    expect(windows).toBe(3);
    expect(job).toMatchObject({ status: 'done', rowsRead: 5, rowsEmitted: 5 });
    expect(logs.filter((l) => l.includes('reading it again'))).toHaveLength(2);
    const ranges = events.filter((e) => e.op === 'range');
    expect(ranges).toHaveLength(1);
    expect(ranges[0]).toMatchObject({ pk: [], change: { range: { after: null, upto: null } } });
    const reads = events.filter((e) => e.op === 'read');
    // Sent once (the third read), identical rows as separate events, right after the range at the same position.
    expect(reads).toHaveLength(5);
    expect(reads.filter((e) => e.after!.a === 1)).toHaveLength(2);
    expect(reads.map((e) => e.source.row)).toEqual([1, 2, 3, 4, 5]);
    for (const r of reads) {
      expect(r.source.file).toBe(ranges[0]!.source.file);
      expect(r.source.pos).toBe(ranges[0]!.source.pos);
    }
    expect(ranges[0]!.source.row).toBe(0);
    // The discarded reads' rows are counted as skipped: 4 rows (1, 1, 3, 11), then 5 (12 added, no 2 left to delete).
    expect(metrics).toMatchObject({ SnapshotRows: 5, SnapshotRowsSkipped: 9 });
    // Replayed as the merge applies them (every change before the range replaced by the reads), the events leave
    // exactly the source's multiset of rows.
    expect(multisetOf(events)).toEqual(await sourceMultiset('k'));
  });

  it('fail their job with the reason when they change inside every window, or hold more rows than allowed', async () => {
    await db.query('CREATE TABLE shop.busy (a INT); INSERT INTO shop.busy VALUES (1),(2),(3)');
    const busy = await snapshotOf(
      'busy',
      async (kind, phase) => {
        if (kind === 'low' && phase === 'after') await db.query('UPDATE shop.busy SET a = a + 1 LIMIT 1');
      },
      { keylessRetryMs: 1 },
    );
    expect(busy.job.status).toBe('failed');
    expect(busy.job.error).toMatch(/shop\.busy has no primary key and changed while it was read, 10 times/);
    expect(busy.events.filter((e) => e.op === 'read' || e.op === 'range')).toEqual([]);

    await db.query('CREATE TABLE shop.big (a INT); INSERT INTO shop.big SELECT seq FROM shop.seq_1_to_5');
    const big = await snapshotOf('big', async () => undefined, { keylessMaxRows: 4 });
    expect(big.job.status).toBe('failed');
    expect(big.job.error).toMatch(/shop\.big has no primary key and more than 4 rows \(SNAPSHOT_KEYLESS_MAX_ROWS\)/);
    expect(big.events.filter((e) => e.op === 'read' || e.op === 'range')).toEqual([]);
  });
});
