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
import { connectCapture } from '../../containers/producer/src/capture';
import { KinesisSink } from '../../containers/producer/src/kinesis-sink';
import { EmfMetrics } from '../../containers/producer/src/metrics';
import { ProducerCore } from '../../containers/producer/src/producer';
import { ensureSignalTable, writeWatermark } from '../../containers/producer/src/signal-table';
import { EMPTY_STATE } from '../../containers/producer/src/snapshot-progress';
import { SnapshotReader } from '../../containers/producer/src/snapshot-reader';
import { Snapshotter } from '../../containers/producer/src/snapshotter';
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
    "CREATE DATABASE shop; CREATE TABLE shop.w (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO shop.w SELECT seq, 'old' FROM shop.seq_1_to_10",
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

describe('the watermark window', () => {
  it('drops chunk rows changed between the watermarks, so a stale read never lands after a newer change', async () => {
    const signals = { db: 'cdc', table: 'cdc_signal' };
    const src = { host: maria.host, port: maria.port, user: maria.user, password: maria.password };
    const filter = new TableFilter({
      include: ['shop.*'],
      exclude: [],
      excludeColumns: [],
      hashColumns: [],
      maskColumns: [],
    });
    const reader = await SnapshotReader.connect(src);
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
    let core: ProducerCore;
    const sink = new KinesisSink({ client: kinesis, streamName: 'w', onAcked: (low) => core.acked(low) });
    const snapshotter: Snapshotter = new Snapshotter({
      reader,
      writeWatermark: async (kind, chunk) => {
        // After the read, before the high watermark: the chunk holds 'old' for id 7, the binlog a newer value.
        if (kind === 'high') await db.query("UPDATE shop.w SET v = 'after-read' WHERE id = 7");
        await writeWatermark(reader.connection, signals, 'test', kind, chunk);
        // After the low watermark, before the read: the chunk already holds the new value of id 3 (and the delete).
        if (kind === 'low')
          await db.query("UPDATE shop.w SET v = 'in-window' WHERE id = 3; DELETE FROM shop.w WHERE id = 9");
      },
      captures: (d, t) => filter.captures(d, t),
      pipelineId: 'test',
      chunkRows: 100,
      emit: (row) => core.onRow(row),
      emitTableChange: (change) => core.onTableChange(change),
      congested: () => false,
      metrics,
      log: () => undefined,
      initialState: EMPTY_STATE,
    });
    core = new ProducerCore({
      serverId: 1,
      filter,
      sink,
      partitionKeyMode: 'table',
      metrics,
      maxInFlight: 20_000,
      pause: () => source.pause(),
      resume: () => source.resume(),
      snapshotState: () => snapshotter.state,
    });
    let failure: Error | undefined;
    connectCapture(source, snapshotter, core, (err) => {
      failure = err;
    });
    const ready = new Promise<void>((r) => source.once('ready', () => r()));
    source.start({ kind: 'file', file: end.File, pos: end.Position });
    await ready;
    snapshotter.enqueue('initial', [{ db: 'shop', table: 'w' }]);
    snapshotter.start((err) => {
      failure = err;
    });
    await waitFor('the snapshot', async () => {
      if (failure) throw failure;
      return snapshotter.state.jobs[0]?.status === 'done';
    });
    await core.drain();
    await snapshotter.stop();
    source.stop();
    await reader.close();
    metrics.flush();

    const events = (await stream()).sort((a, b) => (a.position < b.position ? -1 : 1));
    const reads = events.filter((e) => e.op === 'read').map((e) => e.after!.id);
    expect(reads).toEqual([1, 2, 4, 5, 6, 8, 10]);
    expect(JSON.parse(metricLines.at(-1)!)).toMatchObject({ SnapshotRows: 7, SnapshotRowsSkipped: 2 });
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
