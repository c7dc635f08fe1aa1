/**
 * Producer benchmarks, each against a reference measured in the same run on the same binlog:
 * 1. producer_vs_mariadb_binlog: the producer's read → decode → encode path into a null sink (PutRecords answered at
 *    once) ÷ `mariadb-binlog --verbose` decoding the same binlog file to /dev/null.
 * 2. producer_vs_raw_putrecords: the producer into kinesalite ÷ raw PutRecords (500 per call, one call in flight) of
 *    the same, pre-encoded events into kinesalite.
 * 3. producer_peak_rss_mb_1m_row_txn: peak RSS (VmHWM) of the producer process while one transaction of 1M rows
 *    (100k with --quick) streams through it into kinesalite.
 * Rows: a 6-column orders table (BIGINT, INT, ENUM, DECIMAL, DATETIME(6), VARCHAR).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateStreamCommand,
  KinesisClient,
  PutRecordsCommand,
  type PutRecordsRequestEntry,
} from '@aws-sdk/client-kinesis';
import mysql from 'mysql2/promise';
import { BinlogSource } from '../containers/producer/src/binlog-source';
import { KinesisSink } from '../containers/producer/src/kinesis-sink';
import { EmfMetrics } from '../containers/producer/src/metrics';
import { ProducerCore } from '../containers/producer/src/producer';
import { TableFilter } from '../containers/producer/src/table-filter';
import { localAwsClientConfig } from '../local/services/aws-config';
import { createCheckpointTable } from '../local/services/checkpoint-table';
import { startEmulator } from '../local/services/emulators';
import { startMariaDb } from '../local/services/mariadb';
import { run as runCmd, waitFor } from '../local/services/process';
import type { Figures } from './figures';

const ROOT = join(import.meta.dirname, '..');

async function capture(opts: {
  host: string;
  port: number;
  user: string;
  password: string;
  file: string;
  rows: number;
  client: KinesisClient;
  stream: string;
}): Promise<{ seconds: number; records: Buffer[] }> {
  const records: Buffer[] = [];
  const filter = new TableFilter({
    include: ['bench.*'],
    exclude: [],
    excludeColumns: [],
    hashColumns: [],
    maskColumns: [],
  });
  const source = new BinlogSource({
    ...opts,
    serverId: 9000 + Math.floor(Math.random() * 1000),
    captures: (d, t) => filter.captures(d, t),
  });
  let core: ProducerCore;
  const sink = new KinesisSink({ client: opts.client, streamName: opts.stream, onAcked: (low) => core.acked(low) });
  let seen = 0;
  core = new ProducerCore({
    serverId: 1,
    filter,
    sink,
    partitionKeyMode: 'table',
    metrics: new EmfMetrics('bench', 'bench', () => undefined),
    maxInFlight: 20_000,
    pause: () => source.pause(),
    resume: () => source.resume(),
  });
  const started = performance.now();
  const done = new Promise<void>((resolve, reject) => {
    source.on('row', (c) => {
      core.onRow(c);
      if (++seen === opts.rows) resolve();
    });
    source.on('commit', (b) => core.onCommit(b));
    source.on('error', reject);
  });
  source.start({ kind: 'file', file: opts.file, pos: 4 });
  await done;
  await core.drain();
  const seconds = (performance.now() - started) / 1000;
  source.stop();
  return { seconds, records };
}

/** A Kinesis client that answers every PutRecords at once (the null sink), keeping the encoded records' sizes. */
function nullKinesis(): KinesisClient {
  return {
    send: async (cmd: PutRecordsCommand) => ({
      FailedRecordCount: 0,
      Records: (cmd.input.Records ?? []).map((_, i) => ({
        SequenceNumber: String(i),
        ShardId: 'shardId-000000000000',
      })),
    }),
  } as unknown as KinesisClient;
}

export async function run({ quick }: { quick: boolean }): Promise<Figures> {
  const rows = quick ? 50_000 : 200_000;
  const txnRows = quick ? 100_000 : 1_000_000;
  const dir = mkdtempSync(join(tmpdir(), 'cdc-bench-producer-'));
  const maria = await startMariaDb({ dir: join(dir, 'mariadb'), extraArgs: ['--max-binlog-size=1073741824'] });
  const kinesisEmu = await startEmulator('kinesis');
  const dynamoEmu = await startEmulator('dynamodb');
  try {
    const db = await mysql.createConnection({
      host: maria.host,
      port: maria.port,
      user: maria.user,
      password: maria.password,
      multipleStatements: true,
    });
    await db.query('FLUSH BINARY LOGS');
    const [[{ File: file }]] = (await db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string }]];
    await db.query(
      "CREATE DATABASE bench; CREATE TABLE bench.orders (id BIGINT PRIMARY KEY, customer INT, status ENUM('new','paid','shipped'), total DECIMAL(12,2), created DATETIME(6), note VARCHAR(64))",
    );
    // Rows in transactions of 1,000 (realistic OLTP-ish batches), generated server-side.
    for (let i = 0; i < rows; i += 10_000) {
      for (let j = i; j < i + 10_000; j += 1000) {
        await db.query(
          `INSERT INTO bench.orders SELECT seq, seq % 5000, ELT(1 + seq % 3, 'new','paid','shipped'), (seq % 1000) + 0.25, '2026-11-23 10:00:00.123456', CONCAT('order ', seq) FROM bench.seq_${j + 1}_to_${j + 1000}`,
        );
      }
    }
    await db.query('FLUSH BINARY LOGS');
    const binlogPath = join(maria.binlogBase.replace(/mysql-bin$/, ''), file);

    // 1. mariadb-binlog --verbose on the same file.
    let t0 = performance.now();
    runCmd('sh', ['-c', `mariadb-binlog --verbose --base64-output=decode-rows ${binlogPath} > /dev/null`]);
    const refBinlogS = (performance.now() - t0) / 1000;
    const nullRun = await capture({ ...maria, file, rows, client: nullKinesis(), stream: 'null' });

    // 2. producer → kinesalite vs raw PutRecords of the same encoded events.
    const kinesis = new KinesisClient(localAwsClientConfig(kinesisEmu.endpoint));
    await kinesis.send(new CreateStreamCommand({ StreamName: 'p', ShardCount: 1 }));
    await kinesis.send(new CreateStreamCommand({ StreamName: 'raw', ShardCount: 1 }));
    const kRun = await capture({ ...maria, file, rows, client: kinesis, stream: 'p' });
    const sample = Buffer.from(
      `${JSON.stringify({ v: 1, op: 'insert', db: 'bench', table: 'orders', pk: ['id'], columns: [], before: null, after: { id: '1', customer: 1, status: 'new', total: '1.25', created: '2026-11-23 10:00:00.123456', note: 'order 1' }, position: '000001.000000000100.00000000' })}\n`,
    );
    const entries: PutRecordsRequestEntry[] = Array.from({ length: 500 }, () => ({
      PartitionKey: 'bench.orders',
      Data: sample,
    }));
    t0 = performance.now();
    for (let i = 0; i < rows; i += 500)
      await kinesis.send(new PutRecordsCommand({ StreamName: 'raw', Records: entries }));
    const rawS = (performance.now() - t0) / 1000;

    // 3. Peak RSS of the real producer process through one transaction of txnRows rows.
    const dynamo = new DynamoDBClient(localAwsClientConfig(dynamoEmu.endpoint));
    await createCheckpointTable(dynamo, 'cdc-bench-cp');
    await kinesis.send(new CreateStreamCommand({ StreamName: 'big', ShardCount: 2 }));
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'containers/producer/src/main.ts')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        SOURCE_HOST: maria.host,
        SOURCE_PORT: String(maria.port),
        SOURCE_USER: maria.user,
        SOURCE_PASSWORD: maria.password,
        CAPTURE_INCLUDE: 'bench.big',
        STREAM_NAME: 'big',
        CHECKPOINT_TABLE: 'cdc-bench-cp',
        PIPELINE_ID: 'bench',
        START_FROM: 'end',
        HEALTH_PORT: '0',
        AWS_ENDPOINT_KINESIS: kinesisEmu.endpoint,
        AWS_ENDPOINT_DYNAMODB: dynamoEmu.endpoint,
      },
    });
    let out = '';
    let captured = 0;
    child.stdout.on('data', (d: Buffer) => {
      out = (out + d.toString()).slice(-100_000);
      for (const m of d.toString().matchAll(/"RowsCaptured":(\d+)/g)) captured += Number(m[1]);
    });
    await waitFor('the producer to read the binlog', async () => out.includes('reading the binlog'), 60_000);
    await db.query(
      "CREATE TABLE bench.big (id BIGINT PRIMARY KEY, customer INT, status ENUM('new','paid','shipped'), total DECIMAL(12,2), created DATETIME(6), note VARCHAR(64))",
    );
    await db.query(
      `INSERT INTO bench.big SELECT seq, seq % 5000, ELT(1 + seq % 3, 'new','paid','shipped'), (seq % 1000) + 0.25, '2026-11-23 10:00:00.123456', CONCAT('order ', seq) FROM bench.seq_1_to_${txnRows}`,
    );
    await waitFor(`${txnRows} rows through the producer`, async () => captured >= txnRows, 1_800_000);
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await db.end();

    const producerNullRate = Math.round(rows / nullRun.seconds);
    const binlogRate = Math.round(rows / refBinlogS);
    const producerKRate = Math.round(rows / kRun.seconds);
    const rawRate = Math.round(rows / rawS);
    const notes = `${rows} rows of a 6-column table, transactions of 1,000 rows, MariaDB 10.11, 2 vCPU`;
    return {
      producer_vs_mariadb_binlog: {
        value: producerNullRate,
        unit: 'rows/s',
        reference: binlogRate,
        referenceName: 'mariadb-binlog --verbose --base64-output=decode-rows > /dev/null',
        ratio: Number((producerNullRate / binlogRate).toFixed(2)),
        target: '≥ 0.5',
        notes,
      },
      producer_vs_raw_putrecords: {
        value: producerKRate,
        unit: 'rows/s',
        reference: rawRate,
        referenceName: 'raw PutRecords of pre-encoded events, 500 per call, into kinesalite',
        ratio: Number((producerKRate / rawRate).toFixed(2)),
        target: '≥ 0.8',
        notes,
      },
      producer_peak_rss_mb_1m_row_txn: {
        value: Math.round(hwm),
        unit: 'MB',
        target: '≤ 256',
        notes: `peak RSS (VmHWM) of the producer process while one ${txnRows}-row transaction streamed into kinesalite`,
      },
    };
  } finally {
    await Promise.all([maria.stop(), kinesisEmu.stop(), dynamoEmu.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}
