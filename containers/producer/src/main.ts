/**
 * Composition root of the producer (the Fargate task): config → server check → lease → binlog source → core →
 * Kinesis sink, checkpoints every second, health endpoint, EMF metrics, and SIGTERM: stop reading, drain, save the
 * checkpoint, release the lease, exit 0. Any fatal error exits non-zero WITHOUT checkpointing past unacknowledged
 * events (ECS restarts the task, which resumes from the last checkpoint: at-least-once).
 */
import { hostname } from 'node:os';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import mysql from 'mysql2/promise';
import { clientConfig } from '../../../shared/aws-client-config';
import { ProducerMetric } from '../../../shared/metrics';
import { BinlogSource } from './binlog-source';
import { createCapture } from './capture';
import { CheckpointStore, failureOf, type PositionRequest } from './checkpoint-store';
import { Checkpointer } from './checkpointer';
import { loadConfig, parseStartFrom, snapshotEncodeWorkerOn } from './config';
import { failureMetrics, ProducerError } from './errors';
import { startHealthServer } from './health';
import { sinkClient } from './kinesis-sink';
import { EmfMetrics, log, setLogLevel } from './metrics';
import { checkServer } from './server-check';
import { DRAIN_TIMEOUT_MS, drainAndRelease } from './shutdown';
import { ensureSignalTable, parseSignalTableName } from './signal-table';
import { EMPTY_STATE, parseState, snapshotGauges } from './snapshot-progress';
import { SnapshotReader } from './snapshot-reader';
import { checkStartPosition, chooseStart } from './start-position';
import { TableFilter } from './table-filter';
import { resyncedTable, TableQuarantine } from './table-quarantine';
import { ThreadedKinesisSink } from './threaded-kinesis-sink';

/** Set once the configuration is read, so a failure during startup still reaches CloudWatch (see the catch below). */
let startupMetrics: EmfMetrics | undefined;
/** Set once the store exists, so a failure during startup is still kept in the checkpoint item for `cdc status`. */
let startupStore: CheckpointStore | undefined;

/** How long an exiting producer waits for its failure to be kept in the checkpoint item. */
const FAILURE_RECORD_TIMEOUT_MS = 3000;

/**
 * Keeps a fatal failure in the checkpoint item (how `npx cdc status` sees a crash loop where no log can be read),
 * bounded in time: a store that cannot be reached must not keep a failed producer from exiting.
 */
async function keepFailure(store: CheckpointStore | undefined, err: unknown): Promise<void> {
  if (!store) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    store.recordFailure(failureOf(err)),
    new Promise((resolve) => {
      timer = setTimeout(resolve, FAILURE_RECORD_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
}

/** Counts a fatal failure (ProducerErrors, and BinlogPurged for a purged binlog) and writes every metric held. */
function recordFailure(metrics: EmfMetrics, err: unknown): void {
  for (const name of failureMetrics(err)) metrics.add(name, 'Count', 1);
  metrics.flush();
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  setLogLevel(config.LOG_LEVEL);
  const metrics = new EmfMetrics(config.PIPELINE_ID, config.METRICS_NAMESPACE);
  startupMetrics = metrics;
  metrics.add(ProducerMetric.Starts, 'Count', 1);
  const kinesis = sinkClient(config.AWS_ENDPOINT_KINESIS);
  const dynamo = new DynamoDBClient(clientConfig(config.AWS_ENDPOINT_DYNAMODB));
  const s3 = new S3Client(clientConfig(config.AWS_ENDPOINT_S3));
  const owner = `${process.env.ECS_CONTAINER_METADATA_URI_V4?.split('/').pop() ?? hostname()}:${process.pid}`;
  const store = new CheckpointStore({
    client: dynamo,
    tableName: config.CHECKPOINT_TABLE,
    pipelineId: config.PIPELINE_ID,
    owner,
    leaseMs: config.LEASE_SECONDS * 1000,
  });
  startupStore = store;

  const conn = await mysql.createConnection({
    host: config.SOURCE_HOST,
    port: config.SOURCE_PORT,
    user: config.SOURCE_USER,
    password: config.SOURCE_PASSWORD,
  });
  const server = await checkServer(conn);
  await store.acquireLease();
  log('info', 'lease acquired', { pipeline: config.PIPELINE_ID, owner, server: server.version });

  // An operator's `npx cdc set-position` made while no producer ran: it becomes the checkpoint now.
  const request = await store.positionRequest();
  if (request) {
    await store.applyPositionRequest(request);
    log('info', 'moved to the position an operator requested', { request });
  }

  const cp = await store.read();
  const requested = parseStartFrom(config.START_FROM);
  // The binlog's end, read only when it is where reading starts (as before any watermark is written).
  const binlogEnd = async () => {
    const [rows] = await conn.query('SHOW MASTER STATUS');
    const end = (rows as { File: string; Position: number }[])[0]!;
    return { file: end.File, pos: end.Position };
  };
  const { from, initialSnapshot, reason } = chooseStart({
    requested,
    checkpoint: cp,
    flavor: server.flavor,
    binlogEnd: requested.kind === 'checkpoint' && !cp ? await binlogEnd() : undefined,
    snapshotMode: config.SNAPSHOT_MODE,
  });
  log('info', reason, { from, checkpoint: cp ? { file: cp.file, pos: cp.pos, gtid: cp.gtid } : null });
  // Refuse a position whose file is gone (instead of letting the server skip ahead), and one inside an event.
  if (from.kind === 'file') await checkStartPosition(conn, from.file, from.pos);
  // Tables set aside earlier (their rows could not be decoded): left out, from the first event on, until a resync.
  const quarantine = new TableQuarantine(await store.quarantined());
  if (quarantine.size > 0) {
    log('warn', 'tables in quarantine are not read until npx cdc resync', {
      quarantined: quarantine.list.map((q) => ({ table: q.table, reason: q.reason, since: q.since })),
    });
  }
  const filter = new TableFilter({
    include: config.CAPTURE_INCLUDE,
    exclude: config.CAPTURE_EXCLUDE,
    excludeColumns: config.CAPTURE_EXCLUDE_COLUMNS,
    hashColumns: config.CAPTURE_HASH_COLUMNS,
    maskColumns: config.CAPTURE_MASK_COLUMNS,
  });
  const signalTable = parseSignalTableName(config.SIGNAL_TABLE);
  const isSignalTable = (db: string, t: string) =>
    db.toLowerCase() === signalTable.db.toLowerCase() && t.toLowerCase() === signalTable.table.toLowerCase();
  const captures = (db: string, t: string) => filter.captures(db, t) && !isSignalTable(db, t) && !quarantine.has(db, t);
  const source = new BinlogSource({
    host: config.SOURCE_HOST,
    port: config.SOURCE_PORT,
    user: config.SOURCE_USER,
    password: config.SOURCE_PASSWORD,
    serverId: config.SOURCE_SERVER_ID,
    captures,
    isSignalTable,
    heartbeatMs: config.HEARTBEAT_SECONDS * 1000,
    excluded: quarantine.list.map((q) => q.table),
  });
  const reader = await SnapshotReader.connect({
    host: config.SOURCE_HOST,
    port: config.SOURCE_PORT,
    user: config.SOURCE_USER,
    password: config.SOURCE_PASSWORD,
  });
  try {
    await ensureSignalTable(reader.connection, signalTable);
  } catch (err) {
    throw new ProducerError(
      'SIGNAL_TABLE_UNAVAILABLE',
      `cannot create or use the signal table ${config.SIGNAL_TABLE} (snapshots and backfills write watermarks there; grant CREATE, INSERT, UPDATE on it or create it as docs/snapshot.md shows): ${(err as Error).message}`,
    );
  }
  const captureRules = JSON.stringify({ include: config.CAPTURE_INCLUDE, exclude: config.CAPTURE_EXCLUDE });
  const [idRows] = await conn.query('SELECT @@server_id AS id');
  const serverId = Number((idRows as { id: number }[])[0]!.id);
  let fail: (err: Error) => void = () => undefined;
  const checkpointerRef: { current?: Checkpointer } = {};
  const { sink, core, snapshotter } = createCapture({
    source,
    reader,
    kinesis,
    streamName: config.STREAM_NAME,
    sinkStats: {
      onPut: (ms) => metrics.add(ProducerMetric.PutLatency, 'Milliseconds', ms),
      onRetry: (failed, throttled) => {
        metrics.add(ProducerMetric.PutRetries, 'Count', failed);
        metrics.add(ProducerMetric.PutThrottles, 'Count', throttled);
      },
    },
    serverId,
    filter,
    captures,
    signalTable,
    pipelineId: config.PIPELINE_ID,
    partitionKeyMode: config.PARTITION_KEY_MODE,
    ...(config.CLAIM_CHECK_BUCKET
      ? { claimCheck: { s3, bucket: config.CLAIM_CHECK_BUCKET, prefix: config.CLAIM_CHECK_PREFIX } }
      : {}),
    maxInFlight: config.MAX_IN_FLIGHT_EVENTS,
    maxInFlightBytes: config.MAX_IN_FLIGHT_BYTES,
    encodeWorker: config.ENCODE_WORKER === 'on',
    snapshotEncodeWorker: snapshotEncodeWorkerOn(config),
    ...(config.KINESIS_SINK_THREAD === 'on'
      ? { sinkThread: config.AWS_ENDPOINT_KINESIS ? { endpoint: config.AWS_ENDPOINT_KINESIS } : {} }
      : {}),
    putRecordsInFlight: config.PUT_RECORDS_IN_FLIGHT,
    chunkRows: config.SNAPSHOT_CHUNK_ROWS,
    chunkBytes: config.SNAPSHOT_CHUNK_BYTES,
    keylessMaxRows: config.SNAPSHOT_KEYLESS_MAX_ROWS,
    metrics,
    log,
    initialSnapshotState: cp?.snapshot ? parseState(cp.snapshot) : EMPTY_STATE,
    fail: (err) => fail(err),
    beforeSignal: (signal) => {
      // npx cdc resync ends a quarantine: the table is decoded again from the signal on, and the resync's backfill
      // (started by the snapshotter right after this) rebuilds its replica.
      const t = resyncedTable(signal, config.PIPELINE_ID);
      if (!t || !quarantine.remove(t.db, t.table)) return;
      source.include(t.db, t.table);
      checkpointerRef.current?.quarantineChanged();
      log('info', 'quarantine lifted by npx cdc resync: the table is read again and rebuilt by a backfill', {
        table: `${t.db}.${t.table}`,
      });
    },
  });
  const checkpointer = new Checkpointer({ store, core, quarantine, captureRules });
  checkpointerRef.current = checkpointer;
  // The encode worker loads while the rest starts (rows read before it is ready are encoded on this thread).
  core.startEncodeWorker().catch((err: Error) => fail(err));
  if (initialSnapshot) {
    snapshotter.enqueue(
      'initial',
      (await reader.listTables()).filter((t) => captures(t.db, t.table)),
    );
  } else if (cp?.captureRules && cp.captureRules !== captureRules && config.SNAPSHOT_MODE === 'initial') {
    // Tables the new capture rules take in, which the old ones left out: their existing rows are snapshotted.
    const before = JSON.parse(cp.captureRules) as { include: string[]; exclude: string[] };
    const old = new TableFilter({ ...before, excludeColumns: [], hashColumns: [], maskColumns: [] });
    const added = (await reader.listTables()).filter((t) => captures(t.db, t.table) && !old.captures(t.db, t.table));
    if (added.length > 0) log('info', 'tables added to the capture rules: snapshotting them', { tables: added });
    snapshotter.enqueue('added', added);
  }

  let stopping = false;
  let fatal: Error | undefined;
  let housekeptAt = Date.now();
  fail = (err: Error) => {
    if (fatal) return;
    fatal = err;
    // Nothing more is read or checkpointed while the failure is being kept (the ticker and stop() check `stopping`).
    stopping = true;
    try {
      source.pause();
      source.stop();
    } catch {
      // exiting anyway
    }
    recordFailure(metrics, err);
    log('error', 'fatal error, stopping without checkpointing past unacknowledged events', { error: err.message });
    void keepFailure(store, err).finally(() => process.exit(1));
  };
  // One table's undecodable rows set that table aside; every other table goes on (docs/operations.md).
  source.on('undecodable', (u) => {
    const added = quarantine.add({
      table: `${u.db}.${u.table}`,
      reason: u.reason,
      since: Date.now(),
      position: u.position,
    });
    if (!added) return;
    checkpointer.quarantineChanged();
    log('error', 'table quarantined: its binlog rows cannot be decoded; every other table goes on', {
      table: `${u.db}.${u.table}`,
      reason: u.reason,
      position: u.position,
      remedy: `fix the cause, then npx cdc resync ${u.db}.${u.table}`,
    });
  });
  // Seconds behind: age of the newest event read while events flow; 0 once we have read up to the server's end.
  const lag = async (): Promise<number> => {
    if (sink.pending > 0 || source.isPaused) return Math.max(0, (Date.now() - core.lastCommitMs) / 1000);
    const [rows] = await conn.query('SHOW MASTER STATUS');
    const end = (rows as { File: string; Position: number }[])[0];
    const safe = core.safe;
    if (!end || !safe || (end.File === safe.file && end.Position <= safe.pos)) return 0;
    return Math.max(0, (Date.now() - (core.lastCommitMs || Date.now())) / 1000);
  };

  const ticker = setInterval(() => {
    if (stopping) return;
    void (async () => {
      try {
        if (sink.failure) return fail(sink.failure);
        await checkpointer.save();
        const moveTo = await store.renewLease();
        if (moveTo) return stop('an operator requested a new position', moveTo);
        housekeptAt = Date.now();
        const snap = snapshotGauges(snapshotter.state, Date.now());
        metrics.gauge(ProducerMetric.SnapshotJobsPending, 'Count', snap.jobsPending);
        metrics.gauge(ProducerMetric.SnapshotRowsRemaining, 'Count', snap.rowsRemaining);
        if (snap.etaS !== undefined) metrics.gauge(ProducerMetric.SnapshotEtaSeconds, 'Seconds', snap.etaS);
        metrics.gauge(ProducerMetric.SecondsBehindSource, 'Seconds', await lag());
        metrics.gauge(ProducerMetric.CheckpointAge, 'Seconds', checkpointer.ageSeconds());
        metrics.gauge(ProducerMetric.TablesQuarantined, 'Count', quarantine.size);
        metrics.flush();
      } catch (err) {
        if (err instanceof ProducerError) fail(err);
        else log('warn', 'housekeeping failed, will retry', { error: (err as Error).message });
      }
    })();
  }, 1000);

  const health = startHealthServer(
    config.HEALTH_PORT,
    config.HEALTH_STALE_SECONDS * 1000,
    () => ({
      now: Date.now(),
      fatal: !!fatal,
      sinkFailed: !!sink.failure,
      housekeptAt,
      lastReadAt: source.lastReadAt,
      readerPaused: source.isPaused,
      checkpoint: core.safe ?? null,
      pending: sink.pending,
    }),
    (port) => log('info', 'health endpoint listening', { port }),
  );

  /**
   * Stops reading, drains, then either saves the checkpoint (SIGTERM) or moves it to an operator's requested position
   * (the orchestrator starts the producer again, which then reads from there), releases the lease and exits 0.
   */
  const stop = (why: string, moveTo?: PositionRequest) => {
    if (stopping) return;
    stopping = true;
    log('info', `${why}: stop reading, drain, checkpoint`);
    const deadline = setTimeout(
      () => fail(new Error(`drain did not finish within ${DRAIN_TIMEOUT_MS / 1000} s`)),
      DRAIN_TIMEOUT_MS,
    );
    void (async () => {
      try {
        await drainAndRelease({ source, snapshotter, core, checkpointer, store, log }, moveTo);
        metrics.flush();
        clearTimeout(deadline);
        clearInterval(ticker);
        health.close();
        await reader.close();
        await conn.end();
        process.exit(0);
      } catch (err) {
        fail(err as Error);
      }
    })();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));

  source.on('ready', () =>
    log('info', 'reading the binlog', {
      from,
      // Where the work runs, from what was built (the encode worker and the sink's thread are off unless turned on).
      threads: {
        encode: config.ENCODE_WORKER,
        snapshotEncode: snapshotEncodeWorkerOn(config) ? 'on' : 'off',
        kinesisSink: sink instanceof ThreadedKinesisSink ? 'on' : 'off',
      },
    }),
  );
  source.start(from);
  snapshotter.start(fail);
}

main().catch((err: Error) => {
  log('error', 'producer failed to start', {
    error: err.message,
    code: err instanceof ProducerError ? err.code : undefined,
  });
  // Without a valid configuration there is no pipeline id to put on a metric: the log line is all there is.
  if (startupMetrics) recordFailure(startupMetrics, err);
  void keepFailure(startupStore, err).finally(() => process.exit(1));
});
