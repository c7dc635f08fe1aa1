/**
 * The whole pipeline on one machine: private MariaDB and PostgreSQL, Kinesis/DynamoDB/S3 emulators, the real
 * producer, the local Firehose stand-in (the lake and the raw changelog) and the stream apply (the event source
 * mapping stand-in invoking the real merge), each a child process configured only by its environment and started
 * again when it dies. `applySource: 'lake'` merges the stand-in's objects instead (no stream apply), `'both'` does
 * both into one warehouse. Used by `npm run local` (local/main.ts), the end-to-end tests and the freshness benchmark.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateStreamCommand, KinesisClient, ListStreamsCommand } from '@aws-sdk/client-kinesis';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { APPLY_STREAM_DEFAULTS } from '../lib/config/environment-config';
import { checkMappingSettings } from './event-source-mapping';
import { FIREHOSE_STATE_FILE_NAME, STREAM_APPLY_STATE_FILE_NAME } from './firehose-dead-letters';
import { localAwsClientConfig } from './services/aws-config';
import { createCheckpointTable } from './services/checkpoint-table';
import { type Emulator, startEmulator } from './services/emulators';
import { type MariaDbServer, startMariaDb } from './services/mariadb';
import { type PostgresServer, startPostgres } from './services/postgres';
import { stopProcess, waitFor } from './services/process';

export const ROOT = join(import.meta.dirname, '..');
export const STREAM = 'cdc-changes';
export const BUCKET = 'cdc-lake';
export const CHECKPOINT_TABLE = 'cdc-checkpoints';
/**
 * A database of the source the producer does not capture: `startProducer` writes its readiness markers there (a
 * transaction the producer reads and acknowledges like any other, without sending anything).
 */
export const MARKER_DB = 'cdc_local';

export interface BinlogPosition {
  readonly file: string;
  readonly pos: number;
}

/** Orders two binlog positions (file names share a base and sort by their zero-padded sequence number). */
export function comparePositions(a: BinlogPosition, b: BinlogPosition): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  return a.pos - b.pos;
}

export interface PipelineOptions {
  readonly dir: string;
  readonly database?: string;
  /** Firehose buffering interval. @default 1000 */
  readonly bufferMs?: number;
  readonly loadSampleSchema?: boolean;
  readonly log?: (line: string) => void;
  /**
   * Which path applies changes to the replicas: `stream` (the deployed default: the merge consumes the stream through
   * the event source mapping stand-in, local/stream-apply-main.ts), `lake` (the Firehose stand-in's objects are
   * merged, as S3 → SQS → Lambda), or `both` (both paths feed one warehouse: tests of their equivalence). The
   * Firehose stand-in always writes the lake and the raw changelog.
   * @default 'stream'
   */
  readonly applySource?: ApplySource;
  /** The event source mapping stand-in's settings (stream apply). @default see each field */
  readonly streamApply?: StreamApplyOptions;
  /**
   * Every stdout line of the producer, the Firehose stand-in and the stream apply (their EMF metrics and JSON events),
   * as it arrives: the local dashboard (local/dashboard/) reads the pipeline's own metrics from them.
   * @default none
   */
  readonly onChildLine?: (part: PartName, line: string, at: number) => void;
}

/** The pipeline's own processes, each started again when it dies. */
export const PART_NAMES = ['producer', 'firehose', 'stream-apply'] as const;
export type PartName = (typeof PART_NAMES)[number];

export interface PartState {
  readonly name: PartName;
  /**
   * Whether it runs now: false between a kill or a crash and its restart, and until the new process is ready (the
   * producer: reads the binlog, which may wait for its predecessor's lease; the others: say `ready`).
   */
  readonly up: boolean;
  /** Times it was started. */
  readonly starts: number;
}

export const APPLY_SOURCES = ['stream', 'lake', 'both'] as const;
export type ApplySource = (typeof APPLY_SOURCES)[number];

export { STREAM_APPLY_APPLICATION_NAME } from './event-source-mapping';

/** One JSON line of the Firehose stand-in or the stream apply (their stdout). */
interface ChildLine {
  event?: string;
  rows?: number;
  maxCommitMs?: number;
  error?: string;
  key?: string;
  reason?: string;
}

/** Refuses options the child processes would refuse, before anything starts, naming the field and the value. */
export function checkPipelineOptions(opts: Pick<PipelineOptions, 'applySource' | 'streamApply'>): void {
  if (opts.applySource !== undefined && !APPLY_SOURCES.includes(opts.applySource))
    throw new RangeError(
      `applySource must be one of ${APPLY_SOURCES.join(', ')}, got ${JSON.stringify(opts.applySource)}`,
    );
  checkMappingSettings({
    batchSize: opts.streamApply?.batchSize ?? APPLY_STREAM_DEFAULTS.batchSize,
    batchingWindowMs: opts.streamApply?.batchingWindowMs ?? 0,
    pollMs: opts.streamApply?.pollMs ?? 1000,
    maxRetryAttempts: 3,
  });
}

export interface StreamApplyOptions {
  /** MaximumBatchingWindowInSeconds, in ms. @default 0 (invoke with what one poll got) */
  readonly batchingWindowMs?: number;
  /**
   * BatchSize. Not Lambda's 100: at a steady 1,000 rows/s a batch of 100 takes more invocations (and commits) than
   * the local warehouse on a small machine keeps up with; the stages' default keeps one invocation per shard and poll.
   * @default APPLY_STREAM_DEFAULTS.batchSize (1000, the stages' default; lib/config/environment-config.ts)
   */
  readonly batchSize?: number;
  /** How often each shard is polled. @default 1000 (Lambda's base rate) */
  readonly pollMs?: number;
}

export interface Endpoints {
  mysql: { host: string; port: number; user: string; password: string; database: string };
  postgres: { url: string };
  replicaSchema: string;
  aws: { kinesis: string; dynamodb: string; s3: string; stream: string; bucket: string; checkpointTable: string };
  /** The local dashboard page (local/dashboard/), when `npm run local` serves it. */
  dashboard?: { url: string };
}

export interface Pipeline {
  readonly endpoints: Endpoints;
  readonly maria: MariaDbServer;
  readonly postgres: PostgresServer;
  readonly pool: pg.Pool;
  readonly stats: PipelineStats;
  /**
   * Starts the producer and resolves once it streams from a position that covers every write made after it
   * resolves: the producer has read and acknowledged the binlog past the server's end as it was when waiting began
   * (a marker transaction, written into MARKER_DB once a second while waiting, gives it something to read). Rejects
   * after `readyTimeoutMs` (@default 120000) naming the position it reached and its last error.
   */
  startProducer(readyTimeoutMs?: number): Promise<ChildProcess>;
  producer(): ChildProcess | undefined;
  /** Kill the running producer (tests); the pipeline starts a new one, as ECS would. */
  killProducer(signal?: NodeJS.Signals): Promise<void>;
  /** Kill the Firehose stand-in (+ merge, in lake apply) process (tests); the pipeline starts a new one. */
  killFirehose(signal?: NodeJS.Signals): Promise<void>;
  /** Kill the stream apply process (tests; not with applySource 'lake'); the pipeline starts a new one. */
  killApply(signal?: NodeJS.Signals): Promise<void>;
  /** Which of the pipeline's processes run now (the stream apply only when it applies from the stream). */
  parts(): PartState[];
  stop(): Promise<void>;
}

export interface PipelineStats {
  /** Rows the producer reported captured (its RowsCaptured metric), over all its restarts. */
  captured: number;
  /**
   * Rows the merge applied (events in merged stream batches and objects; re-deliveries count again, and with
   * applySource 'both' each row counts once per path).
   */
  applied: number;
  /** Seconds between the newest commit in the last merged batch or object and the end of that merge. */
  lastFreshnessS: number;
  /** The producer's last SecondsBehindSource. */
  secondsBehind: number;
  /** Times the producer, the Firehose stand-in and the stream apply were started. */
  producerStarts: number;
  firehoseStarts: number;
  applyStarts: number;
  /** When producers exited non-zero (newest last, at most 20): several in a short time is a crash loop. */
  producerFailedAt: number[];
  errors: string[];
}

/** A crash loop: this many producer failures within `PRODUCER_CRASH_WINDOW_MS`. */
export const PRODUCER_CRASH_LOOP = 2;
export const PRODUCER_CRASH_WINDOW_MS = 120_000;

/** Why the producer counts as down (crash-looping, with its last error), or undefined while it is not. */
export function producerDown(stats: PipelineStats, now = Date.now()): string | undefined {
  const recent = stats.producerFailedAt.filter((t) => now - t <= PRODUCER_CRASH_WINDOW_MS).length;
  if (recent < PRODUCER_CRASH_LOOP) return undefined;
  const last = [...stats.errors].reverse().find((e) => e.startsWith('producer: '));
  return `crash-looping (${recent} failures in ${PRODUCER_CRASH_WINDOW_MS / 60_000} min)${last ? `; last error: ${last.slice('producer: '.length)}` : ''}`;
}

/** Appends to a log file; a log line that arrives after the folder was removed (test teardown) is dropped. */
function append(file: string, data: string | Buffer): void {
  try {
    writeFileSync(file, data, { flag: 'a' });
  } catch {
    // the state folder is gone: nobody will read this log
  }
}

/** Calls `each` once per complete line (a chunk may end mid-line). */
function lines(stream: NodeJS.ReadableStream, each: (line: string) => void): void {
  let rest = '';
  stream.on('data', (d: Buffer) => {
    const parts = (rest + d.toString('utf8')).split('\n');
    rest = parts.pop() ?? '';
    for (const l of parts) if (l) each(l);
  });
}

export async function startPipeline(opts: PipelineOptions): Promise<Pipeline> {
  checkPipelineOptions(opts);
  const log = opts.log ?? (() => undefined);
  const database = opts.database ?? 'shop';
  mkdirSync(opts.dir, { recursive: true });
  log('starting MariaDB, PostgreSQL and the Kinesis/DynamoDB/S3 emulators');
  const started = await Promise.allSettled([
    startMariaDb({ dir: join(opts.dir, 'mariadb') }),
    startPostgres({ dir: join(opts.dir, 'postgres') }),
    startEmulator('kinesis', { dir: join(opts.dir, 'kinesis') }),
    startEmulator('dynamodb', { dir: join(opts.dir, 'dynamodb') }),
    startEmulator('s3', { dir: join(opts.dir, 's3') }),
  ] as const);
  const servers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    // Never leave half a pipeline running.
    await Promise.all(servers.map((x) => x.stop()));
    throw failed.reason;
  }
  const [maria, postgres, kinesisEmu, dynamoEmu, s3Emu] = started.map(
    (r) => (r as PromiseFulfilledResult<unknown>).value,
  ) as [MariaDbServer, PostgresServer, Emulator, Emulator, Emulator];
  try {
    return await assemble(opts, log, database, maria, postgres, kinesisEmu, dynamoEmu, s3Emu);
  } catch (err) {
    await Promise.all(servers.map((x) => x.stop()));
    throw err;
  }
}

/** Everything after the servers: stream, table, bucket, sample schema, the Firehose stand-in, the producer. */
async function assemble(
  opts: PipelineOptions,
  log: (line: string) => void,
  database: string,
  maria: MariaDbServer,
  postgres: PostgresServer,
  kinesisEmu: Emulator,
  dynamoEmu: Emulator,
  s3Emu: Emulator,
): Promise<Pipeline> {
  const emulators: Emulator[] = [kinesisEmu, dynamoEmu, s3Emu];
  const kinesis = new KinesisClient(localAwsClientConfig(kinesisEmu.endpoint));
  const dynamo = new DynamoDBClient(localAwsClientConfig(dynamoEmu.endpoint));
  const s3 = new S3Client(localAwsClientConfig(s3Emu.endpoint));
  // The stream persists in .local/kinesis, so records the producer checkpointed but the Firehose stand-in had not
  // delivered when the pipeline stopped are delivered after the next start.
  if (!(await kinesis.send(new ListStreamsCommand({}))).StreamNames?.includes(STREAM)) {
    await kinesis.send(new CreateStreamCommand({ StreamName: STREAM, ShardCount: 2 }));
    // A new stream: shard positions of an earlier run mean nothing any more.
    rmSync(join(opts.dir, FIREHOSE_STATE_FILE_NAME), { force: true });
    rmSync(join(opts.dir, STREAM_APPLY_STATE_FILE_NAME), { force: true });
  }
  await createCheckpointTable(dynamo, CHECKPOINT_TABLE);
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET })).catch(() => undefined);

  maria.sql(`CREATE DATABASE IF NOT EXISTS \`${database}\``);
  if (opts.loadSampleSchema ?? true) {
    const conn = await mysql.createConnection({
      host: maria.host,
      port: maria.port,
      user: maria.user,
      password: maria.password,
      database,
      multipleStatements: true,
    });
    await conn.query(readFileSync(join(ROOT, 'local', 'sample-schema.sql'), 'utf8'));
    await conn.end();
  }

  const pool = new pg.Pool({ connectionString: postgres.url, max: 4 });
  pool.on('error', () => undefined);
  const stats: PipelineStats = {
    captured: 0,
    applied: 0,
    lastFreshnessS: 0,
    secondsBehind: 0,
    producerStarts: 0,
    firehoseStarts: 0,
    applyStarts: 0,
    producerFailedAt: [],
    errors: [],
  };
  const note = (what: string, message: string) => {
    stats.errors.push(`${what}: ${message}`);
    if (stats.errors.length > 100) stats.errors.shift();
    log(`${what}: ${message}`);
  };
  let stopping = false;
  const alive = (c: ChildProcess | undefined): c is ChildProcess => !!c && c.exitCode === null && c.signalCode === null;

  // The Firehose stand-in and the stream apply run in their own processes, so tests can kill them at any moment; each
  // is started again when it dies, as Firehose and Lambda carry on in AWS.
  const applySource = opts.applySource ?? 'stream';
  const mergeEnv = {
    ...process.env,
    WAREHOUSE: 'postgres',
    POSTGRES_URL: postgres.url,
    CHANGELOG_SCHEMA: 'cdc',
    // Explicit, so a REPLICA_SCHEMA or HISTORY_TABLES in the caller's environment cannot move the replicas away
    // from where endpoints.json says they are.
    REPLICA_SCHEMA: database,
    HISTORY_TABLES: '',
    PIPELINE_ID: 'local',
    AWS_ENDPOINT_S3: s3Emu.endpoint,
    AWS_ENDPOINT_KINESIS: kinesisEmu.endpoint,
    STREAM_NAME: STREAM,
    LAKE_BUCKET: BUCKET,
  };
  /** A merge (of a stream batch or of an object) reached the replicas: rows applied, and the freshness it left. */
  const applied = (m: { rows?: number; maxCommitMs?: number }) => {
    stats.applied += m.rows ?? 0;
    if (Number.isFinite(m.maxCommitMs)) stats.lastFreshnessS = (Date.now() - m.maxCommitMs!) / 1000;
  };
  const firehose = supervised({
    name: 'firehose',
    what: 'the local Firehose stand-in',
    script: 'local/firehose-main.ts',
    logFile: join(opts.dir, 'firehose.log'),
    env: {
      ...mergeEnv,
      FIREHOSE_STATE_FILE: join(opts.dir, FIREHOSE_STATE_FILE_NAME),
      BUFFER_INTERVAL_MS: String(opts.bufferMs ?? 1000),
      // Stream apply: the stand-in keeps the lake and the raw changelog, the stream apply merges.
      MERGE_OBJECTS: String(applySource !== 'stream'),
    },
    onStart: () => stats.firehoseStarts++,
    onLine: (m, line) => {
      if (m.event === 'merged') applied(m);
      else if (m.event === 'error' || m.event === 'fatal') note('firehose/merge', m.error ?? line);
    },
  });
  const streamApply = supervised({
    name: 'stream-apply',
    what: 'the local stream apply',
    script: 'local/stream-apply-main.ts',
    logFile: join(opts.dir, 'stream-apply.log'),
    env: {
      ...mergeEnv,
      STREAM_APPLY_STATE_FILE: join(opts.dir, STREAM_APPLY_STATE_FILE_NAME),
      // One queue per run serves `npx cdc redrive`: the stand-in's in lake apply, this one's otherwise.
      ...(applySource === 'stream' ? { REDRIVE_STATE_FILE: join(opts.dir, FIREHOSE_STATE_FILE_NAME) } : {}),
      BATCH_SIZE: String(opts.streamApply?.batchSize ?? APPLY_STREAM_DEFAULTS.batchSize),
      ...(opts.streamApply?.batchingWindowMs !== undefined
        ? { BATCHING_WINDOW_MS: String(opts.streamApply.batchingWindowMs) }
        : {}),
      ...(opts.streamApply?.pollMs !== undefined ? { POLL_MS: String(opts.streamApply.pollMs) } : {}),
    },
    onStart: () => stats.applyStarts++,
    onLine: (m, line) => {
      if (m.event === 'applied' || m.event === 'merged') applied(m);
      else if (m.event === 'set-aside') note('stream-apply', `set aside ${m.key}: ${m.reason}`);
      else if (m.event === 'error' || m.event === 'fatal') note('stream-apply', m.error ?? line);
    },
  });

  /**
   * Starts a child process configured by its environment, resolves once it says `ready` (or exits), and starts it
   * again 500 ms after it dies, until the pipeline stops.
   */
  function supervised(spec: {
    name: PartName;
    what: string;
    script: string;
    logFile: string;
    env: NodeJS.ProcessEnv;
    onStart: () => void;
    onLine: (m: ChildLine, line: string) => void;
  }): { current: () => ChildProcess | undefined; start: () => Promise<ChildProcess>; up: () => boolean } {
    let current: ChildProcess | undefined;
    /** Children that said `ready` (a restarted one applies nothing before). */
    const readyChildren = new WeakSet<ChildProcess>();
    const start = async (): Promise<ChildProcess> => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, spec.script)], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: spec.env,
      });
      spec.onStart();
      current = child;
      let ready!: () => void;
      const isReady = new Promise<void>((r) => {
        ready = r;
      });
      lines(child.stdout, (line) => {
        append(spec.logFile, `${line}\n`);
        opts.onChildLine?.(spec.name, line, Date.now());
        let m: ChildLine;
        try {
          m = JSON.parse(line);
        } catch {
          return;
        }
        if (m.event === 'ready') {
          readyChildren.add(child);
          ready();
        } else spec.onLine(m, line);
      });
      child.stderr.on('data', (d: Buffer) => append(spec.logFile, d));
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.once('exit', (code, signal) => {
        if (stopping || current !== child) return;
        note(spec.name, `exited (${signal ?? code}); starting it again`);
        setTimeout(() => {
          if (!stopping) void start().catch((e: Error) => note(`${spec.name} restart failed`, e.message));
        }, 500);
      });
      await Promise.race([isReady, exited]);
      if (!alive(child)) throw new Error(`${spec.what} did not start; see ${spec.logFile}`);
      return child;
    };
    return { current: () => current, start, up: () => alive(current) && readyChildren.has(current) };
  }

  await firehose.start();
  if (applySource !== 'lake') await streamApply.start();
  log(
    applySource === 'stream'
      ? 'applying from the stream (event source mapping stand-in); the Firehose stand-in writes the lake'
      : applySource === 'lake'
        ? 'applying from the lake (the Firehose stand-in merges its objects)'
        : 'applying from both the stream and the lake into one warehouse',
  );

  const endpoints: Endpoints = {
    mysql: { host: maria.host, port: maria.port, user: maria.user, password: maria.password, database },
    postgres: { url: postgres.url },
    replicaSchema: database,
    aws: {
      kinesis: kinesisEmu.endpoint,
      dynamodb: dynamoEmu.endpoint,
      s3: s3Emu.endpoint,
      stream: STREAM,
      bucket: BUCKET,
      checkpointTable: CHECKPOINT_TABLE,
    },
  };

  const kill = async (current: () => ChildProcess | undefined, what: string, signal: NodeJS.Signals) => {
    const target = await waitFor(what, async () => {
      const c = current();
      return alive(c) ? c : undefined;
    });
    const exited = new Promise((r) => target.once('exit', r));
    target.kill(signal);
    await exited;
  };

  let producer: ChildProcess | undefined;
  const readingChildren = new WeakSet<ChildProcess>();
  const healthPorts = new WeakMap<ChildProcess, number>();

  // First run (no checkpoint yet): the producer snapshots every table of the database (the sample data) while it
  // streams from the binlog's end; later runs resume from the checkpoint, snapshot progress included.
  const spawnProducer = (): ChildProcess => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'containers/producer/src/main.ts')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        SOURCE_HOST: maria.host,
        SOURCE_PORT: String(maria.port),
        SOURCE_USER: maria.user,
        SOURCE_PASSWORD: maria.password,
        CAPTURE_INCLUDE: `${database}.*`,
        STREAM_NAME: STREAM,
        CHECKPOINT_TABLE,
        PIPELINE_ID: 'local',
        // A SIGKILLed producer's successor waits this long for the lease (30 s in AWS).
        LEASE_SECONDS: '4',
        START_FROM: 'checkpoint',
        CLAIM_CHECK_BUCKET: BUCKET,
        HEALTH_PORT: '0',
        AWS_ENDPOINT_KINESIS: kinesisEmu.endpoint,
        AWS_ENDPOINT_DYNAMODB: dynamoEmu.endpoint,
        AWS_ENDPOINT_S3: s3Emu.endpoint,
        // As the CDK sets it for a task of 2 vCPU or more (docs/producer.md, "The sink on its own thread"): on a
        // machine with a second core the producer sends from its own thread. The environment may say otherwise.
        KINESIS_SINK_THREAD: process.env.KINESIS_SINK_THREAD ?? (availableParallelism() >= 2 ? 'on' : 'off'),
      },
    });
    stats.producerStarts++;
    const logFile = join(opts.dir, 'producer.log');
    lines(child.stdout, (line) => {
      append(logFile, `${line}\n`);
      opts.onChildLine?.('producer', line, Date.now());
      if (line.includes('"reading the binlog"')) readingChildren.add(child);
      if (line.includes('"health endpoint listening"')) {
        const port = /"port":(\d+)/.exec(line);
        if (port) healthPorts.set(child, Number(port[1]));
      }
      if (line.startsWith('{"level":"ERROR"')) {
        try {
          const e = JSON.parse(line) as { message?: string; error?: string };
          note('producer', `${e.message ?? 'error'}${e.error ? `: ${e.error}` : ''}`);
        } catch {
          // not one of the producer's log lines
        }
      }
      const captured = /"RowsCaptured":(\d+)/.exec(line);
      if (captured) stats.captured += Number(captured[1]);
      const behind = /"SecondsBehindSource":([\d.]+)/.exec(line);
      if (behind) stats.secondsBehind = Number(behind[1]);
    });
    child.stderr.on('data', (d: Buffer) => append(logFile, d));
    // Like ECS: a producer that dies is started again (it resumes from its checkpoint).
    child.once('exit', (code) => {
      if (!stopping && code !== 0 && code !== null) {
        stats.producerFailedAt.push(Date.now());
        if (stats.producerFailedAt.length > 20) stats.producerFailedAt.shift();
      }
      if (!stopping && producer === child)
        setTimeout(() => {
          if (!stopping) {
            try {
              spawnProducer();
            } catch (e) {
              log(`producer restart failed: ${(e as Error).message}`);
            }
          }
        }, 1000);
    });
    producer = child;
    return child;
  };

  /** The position the running producer has read and acknowledged up to (its /health `checkpoint`). */
  const producerPosition = async (): Promise<BinlogPosition | undefined> => {
    const c = producer;
    const port = alive(c) ? healthPorts.get(c) : undefined;
    if (!port) return undefined;
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { checkpoint?: BinlogPosition | null };
    return body.checkpoint ?? undefined;
  };

  const startProducer = async (readyTimeoutMs = 120_000): Promise<ChildProcess> => {
    const conn = await mysql.createConnection({
      host: maria.host,
      port: maria.port,
      user: maria.user,
      password: maria.password,
    });
    try {
      await conn.query(`CREATE DATABASE IF NOT EXISTS \`${MARKER_DB}\``);
      await conn.query(
        `CREATE TABLE IF NOT EXISTS \`${MARKER_DB}\`.readiness (id INT PRIMARY KEY, at DATETIME(6) NOT NULL)`,
      );
      // Every write made from here on lands at or after this position.
      const [rows] = await conn.query('SHOW MASTER STATUS');
      const end = (rows as { File: string; Position: number }[])[0]!;
      const target = { file: end.File, pos: Number(end.Position) };
      spawnProducer();
      let reached = 'nothing yet';
      let markedAt = 0;
      await waitFor(
        `the producer to stream past ${target.file}:${target.pos}`,
        async () => {
          const at = await producerPosition().catch(() => undefined);
          if (at) {
            reached = `${at.file}:${at.pos}`;
            if (comparePositions(at, target) >= 0) return true;
          }
          if (Date.now() - markedAt >= 1000) {
            markedAt = Date.now();
            await conn.query(`REPLACE INTO \`${MARKER_DB}\`.readiness VALUES (1, NOW(6))`);
          }
          return undefined;
        },
        readyTimeoutMs,
      ).catch((err: Error) => {
        throw new Error(
          `${err.message} (it reached ${reached}; last error: ${stats.errors.at(-1) ?? 'none'}; see ${join(opts.dir, 'producer.log')})`,
        );
      });
      return producer!;
    } finally {
      await conn.end();
    }
  };

  return {
    endpoints,
    maria,
    postgres,
    pool,
    stats,
    startProducer,
    producer: () => producer,
    async killProducer(signal: NodeJS.Signals = 'SIGKILL') {
      // Kill a producer that is really running (reading the binlog), not one that is still starting up.
      const target = await waitFor(
        'a running producer',
        async () => (alive(producer) && readingChildren.has(producer) ? producer : undefined),
        60_000,
      );
      const exited = new Promise((r) => target.once('exit', r));
      target.kill(signal);
      await exited;
    },
    async killFirehose(signal: NodeJS.Signals = 'SIGKILL') {
      await kill(firehose.current, 'a running Firehose stand-in', signal);
    },
    async killApply(signal: NodeJS.Signals = 'SIGKILL') {
      if (applySource === 'lake') throw new Error('killApply: no stream apply runs with applySource "lake"');
      await kill(streamApply.current, 'a running stream apply', signal);
    },
    parts() {
      return [
        // Up once it reads the binlog: a restarted producer waiting for its predecessor's lease captures nothing yet.
        {
          name: 'producer' as const,
          up: alive(producer) && readingChildren.has(producer),
          starts: stats.producerStarts,
        },
        { name: 'firehose' as const, up: firehose.up(), starts: stats.firehoseStarts },
        ...(applySource === 'lake'
          ? []
          : [{ name: 'stream-apply' as const, up: streamApply.up(), starts: stats.applyStarts }]),
      ];
    },
    async stop() {
      stopping = true;
      if (alive(producer)) await stopProcess(producer, 70_000);
      const apply = streamApply.current();
      if (alive(apply)) await stopProcess(apply, 30_000);
      const fh = firehose.current();
      if (alive(fh)) await stopProcess(fh, 30_000);
      await pool.end();
      await Promise.all([maria.stop(), postgres.stop(), ...emulators.map((e) => e.stop())]);
    },
  };
}
