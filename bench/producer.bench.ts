/**
 * Producer benchmarks, each against a reference measured in the same run on the same binlog:
 * 1. producer_vs_mariadb_binlog: the producer's read → decode → encode path into a null sink (PutRecords answered at
 *    once) ÷ `mariadb-binlog --verbose` decoding the same binlog file to /dev/null. In the same minute, as context,
 *    the binlog reader alone (zongji decoding into a listener that only counts: producer_binlog_reader_vs_…).
 * 2. producer_hot_table_rows_per_s_at_50ms: the whole binlog (one hot table) through the producer (partition key
 *    `table-pk`) into the latency Kinesis stand-in (bench/support/latency-kinesis.ts) answering each PutRecords after
 *    50 ms with 20% of entries throttled; per-key order and completeness are checked on what the stand-in wrote.
 *    Reference: raw PutRecords of the same encoded events, as many calls in flight, same stand-in settings. Producer
 *    and reference alternate twice, the best of each kept (the machine is shared).
 * 3. producer_vs_raw_putrecords: the same without throttling at 30 ms per call (the low end of AWS's 30–60 ms, where
 *    the producer's own CPU shows most) ÷ raw PutRecords, same calls in flight. Both 2 and 3 measure the producer
 *    as it runs on the machine's cores (the sink on its own thread from 2 vCPU, KINESIS_SINK_THREAD=on, as the CDK
 *    and the local pipeline run it; on the main thread below) and, in the same rounds, the other variant as context
 *    without a target (`…_main_thread…` or `…_sink_thread…`), with each variant's main-thread CPU. Until 2026-12-01
 *    the figures with targets were always the main-thread variant. Producer and reference use the producer's client (`sinkClient`:
 *    the SDK without its logger middleware), so the reference stays the fastest sender the SDK makes. The stand-in runs on a worker thread
 *    and costs little CPU, so on a 2-core machine this compares the producer with the pipe it fills, not with
 *    kinesalite's own CPU (which took a core and set both sides' pace before).
 * 4. producer_peak_rss_mb_1m_row_txn: peak RSS (VmHWM) of the producer process, bundled and started as its container
 *    starts it, while one transaction of 1M rows (100k with --quick) streams through it into kinesalite.
 * Rows: a 6-column orders table (BIGINT, INT, ENUM, DECIMAL, DATETIME(6), VARCHAR).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateStreamCommand,
  KinesisClient,
  PutRecordsCommand,
  type PutRecordsRequestEntry,
} from '@aws-sdk/client-kinesis';
import { build } from 'esbuild';
import mysql from 'mysql2/promise';
import { BinlogSource } from '../containers/producer/src/binlog-source';
import {
  DEFAULT_CALLS_IN_FLIGHT,
  KinesisSink,
  MAX_RECORDS_PER_CALL,
  sinkClient,
} from '../containers/producer/src/kinesis-sink';
import { EmfMetrics } from '../containers/producer/src/metrics';
import { ProducerCore } from '../containers/producer/src/producer';
import { TableFilter } from '../containers/producer/src/table-filter';
import { ThreadedKinesisSink } from '../containers/producer/src/threaded-kinesis-sink';
import { localAwsClientConfig } from '../local/services/aws-config';
import { createCheckpointTable } from '../local/services/checkpoint-table';
import { startEmulator } from '../local/services/emulators';
import { startMariaDb } from '../local/services/mariadb';
import { run as runCmd, waitFor } from '../local/services/process';
import type { Figures } from './figures';
import {
  checkPerKeyOrder,
  type LatencyKinesisOptions,
  type LatencyKinesisStats,
  startLatencyKinesisInWorker,
} from './support/latency-kinesis';
import { mainThreadCpuS } from './support/thread-cpu';

const ROOT = join(import.meta.dirname, '..');

/** A read of the benchmark's binlog: the server, the file (read from its start) and the rows it holds. */
interface BinlogRead {
  host: string;
  port: number;
  user: string;
  password: string;
  file: string;
  rows: number;
}

/** A binlog reader of its own (a replica server id of its own) for one read of `opts.file`. */
function binlogSource(opts: BinlogRead, captures: (db: string, table: string) => boolean): BinlogSource {
  return new BinlogSource({ ...opts, serverId: 9000 + Math.floor(Math.random() * 1000), captures });
}

async function capture(
  opts: BinlogRead & {
    client: KinesisClient;
    stream: string;
    /** @default 'table' */
    partitionKeyMode?: 'table' | 'table-pk';
    /** @default the sink's default */
    maxCallsInFlight?: number;
    /**
     * The sink on its own thread (KINESIS_SINK_THREAD=on), made and warmed up by the caller: its acknowledgements go to
     * the function `ackTo` is given. @default a KinesisSink on the caller's thread, with `client`
     */
    sinkThread?: { readonly sink: ThreadedKinesisSink; readonly ackTo: (onAcked: (low: number) => void) => void };
  },
): Promise<{ seconds: number; readSeconds: number; pausedSeconds: number; mainCpuS: number }> {
  const filter = new TableFilter({
    include: ['bench.*'],
    exclude: [],
    excludeColumns: [],
    hashColumns: [],
    maskColumns: [],
  });
  const source = binlogSource(opts, (d, t) => filter.captures(d, t));
  let core: ProducerCore;
  opts.sinkThread?.ackTo((low) => core.acked(low));
  const sink = opts.sinkThread
    ? opts.sinkThread.sink
    : new KinesisSink({
        client: opts.client,
        streamName: opts.stream,
        maxCallsInFlight: opts.maxCallsInFlight,
        onAcked: (low) => core.acked(low),
      });
  let seen = 0;
  let pausedAt: number | undefined;
  let pausedMs = 0;
  core = new ProducerCore({
    serverId: 1,
    filter,
    sink,
    partitionKeyMode: opts.partitionKeyMode ?? 'table',
    metrics: new EmfMetrics('bench', 'bench', () => undefined),
    maxInFlight: 20_000,
    pause: () => {
      if (pausedAt === undefined) pausedAt = performance.now();
      source.pause();
    },
    resume: () => {
      if (pausedAt !== undefined) pausedMs += performance.now() - pausedAt;
      pausedAt = undefined;
      source.resume();
    },
  });
  const cpu0 = mainThreadCpuS();
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
  // Every row read and handed to the producer; what follows is waiting for the last acknowledgements.
  const readSeconds = (performance.now() - started) / 1000;
  await core.drain();
  const seconds = (performance.now() - started) / 1000;
  const mainCpuS = mainThreadCpuS() - cpu0;
  source.stop();
  return { seconds, readSeconds, pausedSeconds: pausedMs / 1000, mainCpuS };
}

/**
 * The binlog reader alone (BinlogSource: zongji's decoding and the reader's own per-row work) into a listener that
 * only counts: the ceiling the decoder sets before the producer encodes anything.
 */
async function readOnly(opts: BinlogRead): Promise<number> {
  const source = binlogSource(opts, (db) => db === 'bench');
  let seen = 0;
  const started = performance.now();
  const done = new Promise<void>((resolve, reject) => {
    source.on('row', () => {
      if (++seen === opts.rows) resolve();
    });
    source.on('error', reject);
  });
  source.start({ kind: 'file', file: opts.file, pos: 4 });
  await done;
  const seconds = (performance.now() - started) / 1000;
  source.stop();
  return seconds;
}

/** A Kinesis client that answers every PutRecords at once (the null sink); `keep` collects the entries sent. */
function nullKinesis(keep?: PutRecordsRequestEntry[]): KinesisClient {
  return {
    send: async (cmd: PutRecordsCommand) => {
      if (keep) for (const r of cmd.input.Records ?? []) keep.push(r);
      return {
        FailedRecordCount: 0,
        Records: (cmd.input.Records ?? []).map((_, i) => ({
          SequenceNumber: String(i),
          ShardId: 'shardId-000000000000',
        })),
      };
    },
  } as unknown as KinesisClient;
}

/**
 * The reference for the stand-in figures: `entries` sent with raw PutRecords, 500 per call and `calls` calls in
 * flight, each failed entry put back at once for the next call (no backoff, no per-key bookkeeping): as fast as the
 * pipe allows, which no ordered sender can beat.
 */
async function rawPutRecords(
  client: KinesisClient,
  entries: readonly PutRecordsRequestEntry[],
  calls: number,
): Promise<number> {
  let next = 0;
  let sending = 0;
  const retry: PutRecordsRequestEntry[] = [];
  const started = performance.now();
  const lane = async (): Promise<void> => {
    for (;;) {
      const batch = retry.splice(0, MAX_RECORDS_PER_CALL);
      while (batch.length < MAX_RECORDS_PER_CALL && next < entries.length) batch.push(entries[next++]!);
      if (batch.length === 0) {
        if (sending === 0) return;
        await new Promise((r) => setTimeout(r, 1)); // another lane's call may still hand back failures
        continue;
      }
      sending++;
      const res = await client.send(new PutRecordsCommand({ StreamName: 'raw', Records: batch }));
      sending--;
      (res.Records ?? []).forEach((r, i) => {
        if (r.ErrorCode) retry.push(batch[i]!);
      });
    }
  };
  await Promise.all(Array.from({ length: calls }, lane));
  return (performance.now() - started) / 1000;
}

/**
 * The producer into a fresh latency stand-in with `settings`. Fails loudly unless what the stand-in wrote holds every
 * row at least once, each key's rows last written in position order, with no two calls in flight for one key.
 */
async function producerIntoStandIn(
  settings: LatencyKinesisOptions,
  opts: Parameters<typeof capture>[0],
  /** With the sink on its own thread: these entries first warm the new thread up, outside the timed run. */
  sinkThread: readonly PutRecordsRequestEntry[] | undefined,
): Promise<{
  seconds: number;
  readSeconds: number;
  pausedSeconds: number;
  mainCpuS: number;
  stats: LatencyKinesisStats;
}> {
  const standIn = await startLatencyKinesisInWorker(settings);
  let thread: ThreadedKinesisSink | undefined;
  try {
    let forward: (low: number) => void = () => undefined;
    if (sinkThread) {
      // A producer's sink thread lives as long as the producer: its code is compiled by the time it matters. A new
      // thread per run would be timed while V8 still interprets the SDK (about 0.6 s more CPU per 200k rows here),
      // where the main thread has run it all before. Warm-up records are numbered below the run's and forgotten.
      thread = new ThreadedKinesisSink({
        endpoint: standIn.endpoint,
        streamName: 'hot',
        maxCallsInFlight: DEFAULT_CALLS_IN_FLIGHT,
        onAcked: (low) => forward(low),
      });
      sinkThread.forEach((e, i) => {
        thread!.enqueue({ seq: i - sinkThread.length, partitionKey: `warm-up.${i}`, data: e.Data!, ready: undefined });
      });
      await thread.drain();
      await standIn.reset();
    }
    const { seconds, readSeconds, pausedSeconds, mainCpuS } = await capture({
      ...opts,
      client: sinkClient(standIn.endpoint),
      stream: 'hot',
      partitionKeyMode: 'table-pk',
      maxCallsInFlight: DEFAULT_CALLS_IN_FLIGHT,
      ...(thread
        ? {
            sinkThread: {
              sink: thread,
              ackTo: (f) => {
                forward = f;
              },
            },
          }
        : {}),
    });
    const stats = await standIn.stats();
    const order = checkPerKeyOrder(await standIn.deliveries());
    const problems = [
      order.records !== opts.rows && `${order.records} distinct rows written, ${opts.rows} in the binlog`,
      order.violations > 0 && `${order.violations} out of per-key order, e.g. ${JSON.stringify(order.examples)}`,
      stats.sameKeyOverlaps > 0 && `${stats.sameKeyOverlaps} calls overlapped another on a partition key`,
    ].filter(Boolean);
    if (problems.length > 0)
      throw new Error(`the producer's writes to the stand-in (${JSON.stringify(settings)}): ${problems.join('; ')}`);
    return { seconds, readSeconds, pausedSeconds, mainCpuS, stats };
  } finally {
    await thread?.close();
    await standIn.close();
  }
}

async function rawIntoStandIn(
  settings: LatencyKinesisOptions,
  entries: readonly PutRecordsRequestEntry[],
): Promise<{ seconds: number; stats: LatencyKinesisStats }> {
  const standIn = await startLatencyKinesisInWorker(settings);
  try {
    const client = sinkClient(standIn.endpoint);
    const seconds = await rawPutRecords(client, entries, DEFAULT_CALLS_IN_FLIGHT);
    return { seconds, stats: await standIn.stats() };
  } finally {
    await standIn.close();
  }
}

/** The producer's best round of one variant. */
interface ProducerBest {
  readonly producerS: number;
  /** Seconds until the last row was read (the rest waited for acknowledgements). */
  readonly readS: number;
  /** Seconds reading was paused at `maxInFlight` unacknowledged events. */
  readonly pausedS: number;
  /** CPU seconds of the main thread (which decodes, encodes, and with the sink on it, serializes PutRecords). */
  readonly mainCpuS: number;
  readonly stats: LatencyKinesisStats;
}

/**
 * The producer (its sink on the main thread, the default; then on its own thread, KINESIS_SINK_THREAD=on) and raw
 * PutRecords of the same encoded events, alternated `rounds` times, the best of each kept: on a shared 2-core machine
 * a neighbour's burst otherwise lands on one side of the ratio only.
 */
async function againstStandIn(
  settings: LatencyKinesisOptions,
  opts: Parameters<typeof capture>[0],
  entries: readonly PutRecordsRequestEntry[],
  rounds: number,
): Promise<{ producer: ProducerBest; thread: ProducerBest; rawS: number; rawStats: LatencyKinesisStats }> {
  let producer: ProducerBest | undefined;
  let thread: ProducerBest | undefined;
  let raw: { seconds: number; stats: LatencyKinesisStats } | undefined;
  const best = (b: ProducerBest | undefined, r: Awaited<ReturnType<typeof producerIntoStandIn>>): ProducerBest =>
    b && b.producerS <= r.seconds
      ? b
      : { producerS: r.seconds, readS: r.readSeconds, pausedS: r.pausedSeconds, mainCpuS: r.mainCpuS, stats: r.stats };
  for (let i = 0; i < rounds; i++) {
    const p = await producerIntoStandIn(settings, opts, undefined);
    const t = await producerIntoStandIn(settings, opts, entries.slice(0, 50_000));
    const r = await rawIntoStandIn(settings, entries);
    step(
      `  round ${i + 1}: producer ${Math.round(opts.rows / p.seconds)} rows/s (main thread ${p.mainCpuS.toFixed(2)} s CPU), ` +
        `sink thread ${Math.round(opts.rows / t.seconds)} rows/s (main thread ${t.mainCpuS.toFixed(2)} s), ` +
        `raw ${Math.round(opts.rows / r.seconds)} rows/s`,
    );
    producer = best(producer, p);
    thread = best(thread, t);
    if (!raw || r.seconds < raw.seconds) raw = r;
  }
  return { producer: producer!, thread: thread!, rawS: raw!.seconds, rawStats: raw!.stats };
}

/** One line per step on stderr: a run takes minutes, and a stuck step should say which it is. */
function step(what: string): void {
  process.stderr.write(`  ${new Date().toISOString().slice(11, 19)} ${what}\n`);
}

function describeStats(s: LatencyKinesisStats): string {
  return `${s.calls} calls, ${s.entries} entries (${s.throttled} throttled), up to ${s.maxCallsInFlight} calls in flight`;
}

/** Where the producer's best round spent its time: reading and sending, then only waiting for the last records. */
function describeRun(r: ProducerBest): string {
  return (
    `producer: all rows read after ${r.readS.toFixed(2)} s (reading paused ${r.pausedS.toFixed(2)} s at 20,000 ` +
    `unacknowledged events), last acknowledged after ${r.producerS.toFixed(2)} s, main thread ${r.mainCpuS.toFixed(2)} s ` +
    `CPU; ${describeStats(r.stats)}`
  );
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
    step('mariadb-binlog, then the producer into a null sink');
    const t0 = performance.now();
    runCmd('sh', ['-c', `mariadb-binlog --verbose --base64-output=decode-rows ${binlogPath} > /dev/null`]);
    const refBinlogS = (performance.now() - t0) / 1000;
    const nullRun = await capture({ ...maria, file, rows, client: nullKinesis(), stream: 'null' });
    const readOnlyS = await readOnly({ ...maria, file, rows });

    // 2–3. The producer into the latency stand-in against raw PutRecords of the same encoded events (collected from a
    // null-sink run with the same partition keys).
    const encoded: PutRecordsRequestEntry[] = [];
    step('encoded events for the raw reference');
    await capture({ ...maria, file, rows, client: nullKinesis(encoded), stream: 'null', partitionKeyMode: 'table-pk' });
    const standInRun = { ...maria, file, rows, client: nullKinesis(), stream: 'hot' };
    step('hot table into the stand-in at 50 ms, 20% throttled: producer, then raw PutRecords');
    const hot = await againstStandIn({ delayMs: 50, throttleShare: 0.2 }, standInRun, encoded, 2);
    step('into the stand-in at 30 ms: producer, then raw PutRecords');
    const pipe = await againstStandIn({ delayMs: 30 }, standInRun, encoded, 2);
    encoded.length = 0;

    // 4. Peak RSS of the real producer process through one transaction of txnRows rows.
    step(`peak RSS through a ${txnRows}-row transaction`);
    const kinesis = new KinesisClient(localAwsClientConfig(kinesisEmu.endpoint));
    const dynamo = new DynamoDBClient(localAwsClientConfig(dynamoEmu.endpoint));
    await createCheckpointTable(dynamo, 'cdc-bench-cp');
    await kinesis.send(new CreateStreamCommand({ StreamName: 'big', ShardCount: 2 }));
    // The producer as its container runs it: bundled by esbuild with the Dockerfile's options, started with plain node
    // (under tsx the loader alone adds about 90 MB).
    const bundleDir = join(dir, 'producer-bundle');
    await build({
      entryPoints: ['main', 'healthcheck', 'encode-worker', 'kinesis-sink-thread'].map((f) =>
        join(ROOT, `containers/producer/src/${f}.ts`),
      ),
      bundle: true,
      platform: 'node',
      target: `node${process.versions.node.split('.')[0]}`,
      format: 'esm',
      outdir: bundleDir,
      banner: { js: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);" },
      logLevel: 'error',
    });
    writeFileSync(join(bundleDir, 'package.json'), '{"type":"module"}');
    const child = spawn(process.execPath, [join(bundleDir, 'main.js')], {
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
    const rate = (seconds: number) => Math.round(rows / seconds);
    /** A producer variant's best round against the raw reference of the same rounds. */
    const againstRaw = (run: { rawS: number }, best: ProducerBest, resends = '') => ({
      value: rate(best.producerS),
      unit: 'rows/s',
      reference: rate(run.rawS),
      referenceName: `raw PutRecords of the same encoded events, 500 per call, ${DEFAULT_CALLS_IN_FLIGHT} calls in flight${resends}`,
      ratio: Number((run.rawS / best.producerS).toFixed(2)),
    });
    const notes = `${rows} rows of a 6-column table, transactions of 1,000 rows, MariaDB 10.11, ${availableParallelism()} vCPU`;
    const deployed = availableParallelism() >= 2 ? 'thread' : 'producer';
    const otherVariant = deployed === 'thread' ? 'producer' : 'thread';
    const other = deployed === 'thread' ? 'main_thread' : 'sink_thread';
    const variantNote = (v: 'thread' | 'producer') =>
      v === 'thread'
        ? 'the sink on its own thread (KINESIS_SINK_THREAD=on, as the CDK runs the producer from 2 vCPU)'
        : 'the sink on the main thread (KINESIS_SINK_THREAD=off, as the CDK runs the producer below 2 vCPU)';
    return {
      producer_vs_mariadb_binlog: {
        value: producerNullRate,
        unit: 'rows/s',
        reference: binlogRate,
        referenceName: 'mariadb-binlog --verbose --base64-output=decode-rows > /dev/null',
        ratio: Number((producerNullRate / binlogRate).toFixed(2)),
        target: '≥ 0.15',
        notes,
      },
      // Context for the figure above: how much of the reference's speed the decoder alone leaves to the producer.
      producer_binlog_reader_vs_mariadb_binlog: {
        value: rate(readOnlyS),
        unit: 'rows/s',
        reference: binlogRate,
        referenceName: 'mariadb-binlog --verbose --base64-output=decode-rows > /dev/null',
        ratio: Number((rate(readOnlyS) / binlogRate).toFixed(2)),
        notes: `the binlog reader alone (zongji and BinlogSource), rows counted and dropped; ${notes}`,
      },
      // The producer as it runs on this machine's cores: the CDK turns the sink thread on from 2 vCPU
      // (lib/constructs/producer-service.ts) and the local pipeline where a second core is there (local/pipeline.ts).
      // The other variant, measured in the same rounds, is context without a target.
      producer_hot_table_rows_per_s_at_50ms: {
        ...againstRaw(hot, hot[deployed], `, failed entries resent at once`),
        target: '≥ 40,000 rows/s',
        notes:
          `${notes}; ${variantNote(deployed)}; one table, partition key table-pk, latency stand-in at 50 ms per call ` +
          `with 20% of entries throttled; per-key order and every row verified on what it wrote; ` +
          `${describeRun(hot[deployed])}; reference: ${describeStats(hot.rawStats)}`,
      },
      [`producer_hot_table_${other}_rows_per_s_at_50ms`]: {
        ...againstRaw(hot, hot[otherVariant], `, failed entries resent at once`),
        notes: `as producer_hot_table_rows_per_s_at_50ms, ${variantNote(otherVariant)}; ${describeRun(hot[otherVariant])}`,
      },
      producer_vs_raw_putrecords: {
        ...againstRaw(pipe, pipe[deployed]),
        target: '≥ 0.9',
        notes:
          `${notes}; ${variantNote(deployed)}; partition key table-pk, latency stand-in at 30 ms per call, no ` +
          `throttling; ${describeRun(pipe[deployed])}; reference: ${describeStats(pipe.rawStats)}`,
      },
      [`producer_vs_raw_putrecords_${other}`]: {
        ...againstRaw(pipe, pipe[otherVariant]),
        notes: `as producer_vs_raw_putrecords, ${variantNote(otherVariant)}; ${describeRun(pipe[otherVariant])}`,
      },
      producer_peak_rss_mb_1m_row_txn: {
        value: Math.round(hwm),
        unit: 'MB',
        target: '≤ 256',
        notes: `peak RSS (VmHWM) of the producer process (esbuild bundle as in the container image, plain node ${process.version}) while one ${txnRows}-row transaction streamed into kinesalite`,
      },
    };
  } finally {
    await Promise.all([maria.stop(), kinesisEmu.stop(), dynamoEmu.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}
