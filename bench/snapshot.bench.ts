/**
 * Snapshot benchmark, against a reference measured in the same run on the same table:
 *   snapshot_vs_mariadb_dump: the producer's snapshot path (chunked key-order reads between low/high watermarks in
 *   the signal table, the binlog reader closing each window, encode → null sink) ÷ `mariadb-dump --quick
 *   --single-transaction` of the same table to /dev/null. The table has no FLOAT column: its chunks are read through
 *   the text protocol (snapshot-reader.ts). Snapshot rows are encoded on the encode worker, as the producer does on 2
 *   vCPU or more (SNAPSHOT_ENCODE_WORKER=auto follows KINESIS_SINK_THREAD, which the CDK turns on from 2 vCPU; this
 *   machine has 2). The sink stays the null client on the main thread in both variants: a sink thread needs a real
 *   client, whose SDK work (base64, JSON, HTTP) the null sink leaves out on purpose.
 *   snapshot_vs_mariadb_dump_main_thread (context, no target): the same with every row encoded on the main thread
 *   (SNAPSHOT_ENCODE_WORKER=off, the producer below 2 vCPU), in the same rounds.
 * Rows: the 6-column orders table of the producer benchmark (BIGINT, INT, ENUM, DECIMAL, DATETIME(6), VARCHAR).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import mysql from 'mysql2/promise';
import { BinlogSource } from '../containers/producer/src/binlog-source';
import { createCapture } from '../containers/producer/src/capture';
import { EmfMetrics } from '../containers/producer/src/metrics';
import { ensureSignalTable } from '../containers/producer/src/signal-table';
import { EMPTY_STATE } from '../containers/producer/src/snapshot-progress';
import { SnapshotReader } from '../containers/producer/src/snapshot-reader';
import { TableFilter } from '../containers/producer/src/table-filter';
import { startMariaDb } from '../local/services/mariadb';
import { run as runCmd, waitFor } from '../local/services/process';
import type { Figures } from './figures';

/** A Kinesis client that answers every PutRecords at once (the null sink). */
function nullKinesis(): KinesisClient {
  return {
    send: async (cmd: PutRecordsCommand) => ({
      FailedRecordCount: 0,
      Records: (cmd.input.Records ?? []).map((_, i) => ({ SequenceNumber: String(i), ShardId: 'shardId-0' })),
    }),
  } as unknown as KinesisClient;
}

/** Rows of the warm-up table snapshotted before the timed one, by the same producer. */
const WARM_UP_ROWS = 20_000;

/**
 * One producer's snapshot of `bench.warmup` then (timed) of `bench.orders`. The warm-up job runs the code the timed
 * one runs, in the same threads: an encode worker lives as long as its producer, and a new one per run would be timed
 * while V8 still interprets the encoder (the main thread has run it all before, in the earlier runs).
 */
async function snapshot(
  src: { host: string; port: number; user: string; password: string },
  chunkRows: number,
  encodeWorker: boolean,
): Promise<{ seconds: number; rows: number }> {
  const signals = { db: 'cdc', table: 'cdc_signal' };
  const filter = new TableFilter({
    include: ['bench.*'],
    exclude: [],
    excludeColumns: [],
    hashColumns: [],
    maskColumns: [],
  });
  const reader = await SnapshotReader.connect(src);
  await ensureSignalTable(reader.connection, signals);
  const [[end]] = (await reader.connection.query('SHOW MASTER STATUS')) as unknown as [
    [{ File: string; Position: number }],
  ];
  const source = new BinlogSource({
    ...src,
    serverId: 9000 + Math.floor(Math.random() * 1000),
    captures: (d, t) => filter.captures(d, t),
    isSignalTable: (d, t) => d === 'cdc' && t === 'cdc_signal',
  });
  const metrics = new EmfMetrics('bench', 'bench', () => undefined);
  let failure: Error | undefined;
  const { core, snapshotter } = createCapture({
    source,
    reader,
    kinesis: nullKinesis(),
    streamName: 'null',
    serverId: 1,
    filter,
    captures: (d, t) => filter.captures(d, t),
    signalTable: signals,
    pipelineId: 'bench',
    partitionKeyMode: 'table',
    maxInFlight: 20_000,
    chunkRows,
    metrics,
    log: () => undefined,
    initialSnapshotState: EMPTY_STATE,
    snapshotEncodeWorker: encodeWorker,
    fail: (err) => {
      failure = err;
    },
  });
  const ready = new Promise<void>((r) => source.once('ready', () => r()));
  source.start({ kind: 'file', file: end.File, pos: end.Position });
  await ready;
  // As main.ts does at startup: the worker loads while the rest starts.
  await core.startEncodeWorker();
  snapshotter.start((err) => {
    failure = err;
  });
  const finished = (index: number) =>
    waitFor(
      'the snapshot to finish',
      async () => {
        if (failure) throw failure;
        const j = snapshotter.state.jobs[index];
        return j?.status === 'done' || j?.status === 'failed' ? j : undefined;
      },
      1_800_000,
    );
  snapshotter.enqueue('initial', [{ db: 'bench', table: 'warmup' }]);
  const warmUp = await finished(0);
  await core.drain();
  const started = performance.now();
  snapshotter.enqueue('initial', [{ db: 'bench', table: 'orders' }]);
  const job = await finished(1);
  await core.drain();
  const seconds = (performance.now() - started) / 1000;
  await snapshotter.stop();
  source.stop();
  await core.close();
  await reader.close();
  if (warmUp.status !== 'done') throw new Error(`warm-up snapshot failed: ${warmUp.error}`);
  if (job.status !== 'done') throw new Error(`snapshot failed: ${job.error}`);
  return { seconds, rows: job.rowsEmitted };
}

/** Dump and snapshot runs, alternating, whose medians make the figure. */
const PAIRS = 3;

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run({ quick }: { quick: boolean }): Promise<Figures> {
  const rows = quick ? 50_000 : 200_000;
  const dir = mkdtempSync(join(tmpdir(), 'cdc-bench-snapshot-'));
  const maria = await startMariaDb({ dir: join(dir, 'mariadb') });
  try {
    const src = { host: maria.host, port: maria.port, user: maria.user, password: maria.password };
    const db = await mysql.createConnection({ ...src, multipleStatements: true });
    await db.query(
      "CREATE DATABASE bench; CREATE TABLE bench.orders (id BIGINT PRIMARY KEY, customer INT, status ENUM('new','paid','shipped'), total DECIMAL(12,2), created DATETIME(6), note VARCHAR(64)); CREATE TABLE bench.warmup LIKE bench.orders",
    );
    await db.query(
      `SET SESSION sql_log_bin = 0; INSERT INTO bench.orders SELECT seq, seq % 5000, ELT(1 + seq % 3, 'new','paid','shipped'), (seq % 1000) + 0.25, '2026-11-23 10:00:00.123456', CONCAT('order ', seq) FROM bench.seq_1_to_${rows}; INSERT INTO bench.warmup SELECT * FROM bench.orders WHERE id <= ${WARM_UP_ROWS}`,
    );
    await db.end();
    // Warm both the buffer pool and the OS cache before either side is timed.
    await snapshot(src, 4096, false);
    const timed = async (chunkRows: number, encodeWorker: boolean): Promise<number> => {
      const r = await snapshot(src, chunkRows, encodeWorker);
      if (r.rows !== rows) throw new Error(`snapshot emitted ${r.rows} rows, expected ${rows}`);
      return Math.round(rows / r.seconds);
    };

    // The dump and the snapshot (encode worker on, then off) alternate, PAIRS times: on a shared machine either one's
    // rate moves by 2x between runs a minute apart, so the figure is the median of each side, measured in the same
    // minutes.
    const dumps: number[] = [];
    const snapshots: number[] = [];
    const mainThread: number[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const t = performance.now();
      runCmd('sh', [
        '-c',
        `mariadb-dump --no-defaults -h ${maria.host} -P ${maria.port} -u ${maria.user} -p'${maria.password}' --quick --single-transaction --no-create-info bench orders > /dev/null`,
      ]);
      dumps.push(Math.round(rows / ((performance.now() - t) / 1000)));
      snapshots.push(await timed(4096, true));
      mainThread.push(await timed(4096, false));
    }

    // The floor of any Node reader: the same key-order chunks through mysql2 alone, nothing encoded or sent; through
    // the text protocol (what this table takes) and the binary one (what a table with a FLOAT column takes).
    const reader = await SnapshotReader.connect(src);
    const shape = (await reader.describe('bench', 'orders'))!;
    const readOnly: Record<string, number> = {};
    for (const protocol of ['text', 'binary'] as const) {
      const t0 = performance.now();
      let cursor: unknown[] | undefined;
      for (;;) {
        const part = await reader.readChunk(shape, cursor as never, undefined, 4096, protocol);
        if (part.length < 4096) break;
        cursor = [part.at(-1)!.id];
      }
      readOnly[protocol] = Math.round(rows / ((performance.now() - t0) / 1000));
    }
    await reader.close();
    const byChunk: Record<number, number> = {};
    for (const chunk of [1024, 16384]) byChunk[chunk] = await timed(chunk, true);
    const value = median(snapshots);
    const dumpRate = median(dumps);
    const mainValue = median(mainThread);
    const referenceName = 'mariadb-dump --quick --single-transaction --no-create-info > /dev/null';
    return {
      snapshot_vs_mariadb_dump: {
        value,
        unit: 'rows/s',
        reference: dumpRate,
        referenceName,
        ratio: Number((value / dumpRate).toFixed(2)),
        target: '≥ 0.2',
        notes: `${rows} rows of a 6-column table; snapshot with the default 4096-row chunks (watermarks through the binlog), rows encoded on the encode worker as the producer does from 2 vCPU (SNAPSHOT_ENCODE_WORKER=auto with KINESIS_SINK_THREAD=on; this machine has ${availableParallelism()}), records into a null sink on the main thread (no SDK work); the producer warmed by a ${WARM_UP_ROWS}-row snapshot first; medians of ${PAIRS} alternating runs (snapshot ${snapshots.join(', ')} rows/s; dump ${dumps.join(', ')} rows/s; every row on the main thread ${mainThread.join(', ')} rows/s); chunks of 1024: ${byChunk[1024]} rows/s, 16384: ${byChunk[16384]} rows/s; reading the same chunks with mysql2 alone (no encoding, no watermarks): ${readOnly.text} rows/s through the text protocol (the table's), ${readOnly.binary} rows/s through the binary one; MariaDB 10.11`,
      },
      snapshot_vs_mariadb_dump_main_thread: {
        value: mainValue,
        unit: 'rows/s',
        reference: dumpRate,
        referenceName,
        ratio: Number((mainValue / dumpRate).toFixed(2)),
        notes: `context (no target): as snapshot_vs_mariadb_dump with every row encoded on the main thread (SNAPSHOT_ENCODE_WORKER=off: the producer below 2 vCPU), in the same rounds; runs ${mainThread.join(', ')} rows/s`,
      },
    };
  } finally {
    await maria.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
