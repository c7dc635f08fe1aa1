/**
 * The capture pipeline of the producer, assembled once: `createCapture` builds the Kinesis sink, the producer core and
 * the snapshotter and connects them to the binlog source; main.ts, the snapshot benchmark and the snapshot-window
 * test all run this one assembly. `connectCapture` is the wiring: every row is first shown to the snapshotter (a key
 * changed inside an open chunk window is dropped from that chunk), then emitted; signal-table rows carry watermarks
 * and backfill requests; DDL becomes table-level events.
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { BinlogSource, DdlStatement } from './binlog-source';
import { ddlActions } from './ddl-events';
import type { TableShape } from './event-encoder';
import { KinesisSink, type KinesisSinkProps, type Sink } from './kinesis-sink';
import type { EmfMetrics } from './metrics';
import { ProducerCore, type ProducerCoreProps } from './producer';
import { parseSignal, type Signal, type SignalTableName, type WatermarkKind, writeWatermark } from './signal-table';
import type { SnapshotState } from './snapshot-progress';
import type { SnapshotReader } from './snapshot-reader';
import { Snapshotter, type SnapshotterProps } from './snapshotter';
import type { TableFilter } from './table-filter';
import { ThreadedKinesisSink } from './threaded-kinesis-sink';

export interface CaptureProps {
  readonly source: BinlogSource;
  /** The snapshot reader; its connection also writes the watermarks. */
  readonly reader: SnapshotReader;
  readonly kinesis: KinesisClient;
  readonly streamName: string;
  readonly sinkStats?: KinesisSinkProps['stats'];
  /** The source's server id (carried in every event). */
  readonly serverId: number;
  readonly filter: TableFilter;
  /** Whether a table is captured now (capture rules, minus the signal table and quarantined tables). */
  readonly captures: (db: string, table: string) => boolean;
  readonly signalTable: SignalTableName;
  readonly pipelineId: string;
  readonly partitionKeyMode: ProducerCoreProps['partitionKeyMode'];
  readonly claimCheck?: ProducerCoreProps['claimCheck'];
  /** Reading pauses above this many unacknowledged events; snapshot chunks wait above half of it. */
  readonly maxInFlight: number;
  /** The same for bytes of unacknowledged records. @default the core's (DEFAULT_MAX_IN_FLIGHT_BYTES) */
  readonly maxInFlightBytes?: number;
  /** PutRecords calls in flight at once. @default the sink's (8) */
  readonly putRecordsInFlight?: number;
  /**
   * Send from a thread of its own (threaded-kinesis-sink.ts), with a client of its own for this endpoint (the SDK's
   * defaults, AWS, without one); `kinesis` is then not used for PutRecords. @default the caller's thread, with `kinesis`
   */
  readonly sinkThread?: { readonly endpoint?: string };
  readonly chunkRows: number;
  /** Bytes of rows a snapshot chunk aims at. @default the snapshotter's (16 MiB) */
  readonly chunkBytes?: number;
  /** @default the snapshotter's (KEYLESS_MAX_ROWS) */
  readonly keylessMaxRows?: number;
  /** @default the snapshotter's */
  readonly keylessRetryMs?: number;
  readonly metrics: EmfMetrics;
  readonly log: SnapshotterProps['log'];
  readonly initialSnapshotState: SnapshotState;
  /** Encode rows on a worker thread (ProducerCore `encodeWorker`). @default false */
  readonly encodeWorker?: boolean;
  /** Encode snapshot rows on a worker thread (ProducerCore `snapshotEncodeWorker`). @default false */
  readonly snapshotEncodeWorker?: boolean;
  /** Gets every error the capture cannot recover from. */
  readonly fail: (err: Error) => void;
  /** Sees each signal before the snapshotter acts on it. */
  readonly beforeSignal?: (signal: Signal) => void;
  /** Writes one watermark. @default an INSERT into the signal table through the reader's connection */
  readonly writeWatermark?: (kind: WatermarkKind, chunk: string) => Promise<void>;
}

export interface Capture {
  readonly sink: Sink;
  readonly core: ProducerCore;
  readonly snapshotter: Snapshotter;
}

/** Builds the sink, the core and the snapshotter and connects them to the source (not started). */
export function createCapture(p: CaptureProps): Capture {
  const common = {
    streamName: p.streamName,
    onAcked: (low: number) => core.acked(low),
    ...(p.sinkStats ? { stats: p.sinkStats } : {}),
    ...(p.putRecordsInFlight !== undefined ? { maxCallsInFlight: p.putRecordsInFlight } : {}),
  };
  const sink: Sink = p.sinkThread
    ? new ThreadedKinesisSink({
        ...common,
        ...(p.sinkThread.endpoint !== undefined ? { endpoint: p.sinkThread.endpoint } : {}),
        // Checked by main.ts's housekeeping too; told at once here, so reading stops with the sink.
        onFailed: p.fail,
      })
    : new KinesisSink({ ...common, client: p.kinesis });
  const core: ProducerCore = new ProducerCore({
    serverId: p.serverId,
    filter: p.filter,
    sink,
    partitionKeyMode: p.partitionKeyMode,
    metrics: p.metrics,
    ...(p.claimCheck ? { claimCheck: p.claimCheck } : {}),
    maxInFlight: p.maxInFlight,
    ...(p.maxInFlightBytes !== undefined ? { maxInFlightBytes: p.maxInFlightBytes } : {}),
    pause: () => p.source.pause(),
    resume: () => p.source.resume(),
    snapshotState: () => snapshotter.state,
    ...(p.encodeWorker !== undefined ? { encodeWorker: p.encodeWorker } : {}),
    ...(p.snapshotEncodeWorker !== undefined ? { snapshotEncodeWorker: p.snapshotEncodeWorker } : {}),
    fail: p.fail,
  });
  const snapshotter: Snapshotter = new Snapshotter({
    reader: p.reader,
    writeWatermark:
      p.writeWatermark ??
      ((kind, chunk) =>
        writeWatermark(p.reader.connection, p.signalTable, p.pipelineId, kind, chunk).then(() => undefined)),
    captures: p.captures,
    pipelineId: p.pipelineId,
    chunkRows: p.chunkRows,
    ...(p.chunkBytes !== undefined ? { chunkBytes: p.chunkBytes } : {}),
    ...(p.keylessMaxRows !== undefined ? { keylessMaxRows: p.keylessMaxRows } : {}),
    ...(p.keylessRetryMs !== undefined ? { keylessRetryMs: p.keylessRetryMs } : {}),
    emit: (row) => core.onRow(row),
    emitTableChange: (change) => core.onTableChange(change),
    // Rows still at the encode worker count: they are as unacknowledged as those in the sink.
    congested: () => core.halfFull,
    decongested: () => core.whenBelowHalf(),
    metrics: p.metrics,
    log: p.log,
    initialState: p.initialSnapshotState,
  });
  connectCapture(p.source, snapshotter, core, p.fail, p.beforeSignal);
  return { sink, core, snapshotter };
}

export function connectCapture(
  source: BinlogSource,
  snapshotter: Snapshotter,
  core: ProducerCore,
  fail: (err: Error) => void,
  /** Sees each signal before the snapshotter acts on it (a resync ends a table's quarantine first). */
  beforeSignal?: (signal: Signal) => void,
): void {
  const guarded =
    <T>(handle: (value: T) => void) =>
    (value: T) => {
      try {
        handle(value);
      } catch (err) {
        fail(err as Error);
      }
    };
  // The columns each table had at its last row event: what a later CHANGE/MODIFY COLUMN is compared with.
  const shapes = new Map<string, TableShape>();
  let lastShape: TableShape | undefined;
  source.on(
    'row',
    guarded((c) => {
      if (c.shape !== lastShape) {
        lastShape = c.shape;
        shapes.set(`${c.shape.db}.${c.shape.table}`, c.shape);
      }
      snapshotter.observe(c);
      core.onRow(c);
    }),
  );
  source.on(
    'signal',
    guarded((s) => {
      const signal = parseSignal(s.row);
      beforeSignal?.(signal);
      snapshotter.onSignal(signal, s);
    }),
  );
  source.on(
    'ddl',
    guarded((d: DdlStatement) => {
      snapshotter.onDdl(d.query);
      onDdl(d, source, snapshotter, core, shapes);
    }),
  );
  source.on('commit', (b) => core.onCommit(b));
  source.on('error', (err) => fail(err));
}

/**
 * Turns a DDL statement into table-level events, resyncs and backfills (ddl-events.ts), at the statement's place in
 * the stream: its events are emitted before any row the binlog has after it.
 */
function onDdl(
  d: DdlStatement,
  source: BinlogSource,
  snapshotter: Snapshotter,
  core: ProducerCore,
  shapes: Map<string, TableShape>,
): void {
  const actions = ddlActions(d.query, {
    defaultDb: d.schema,
    captures: (db, table) => source.captures(db, table),
    shape: (db, table) => shapes.get(`${db}.${table}`),
  });
  let row = 0;
  for (const a of actions) {
    const at = { file: d.file, pos: d.pos, gtid: d.gtid, commitMs: d.commitMs };
    if (a.kind === 'event') {
      const shape = shapes.get(`${a.db}.${a.table}`);
      core.onTableChange({
        db: a.db,
        table: a.table,
        op: a.op,
        change: a.change,
        ...(shape ? { pk: shape.pk, columns: shape.columns } : {}),
        ...at,
        row: row++,
      });
      if (a.op === 'drop' || a.op === 'rename') shapes.delete(`${a.db}.${a.table}`);
    } else if (a.kind === 'resync') {
      snapshotter.resync(a.db, a.table, a.reason, { ...at, rowIndex: row++ });
    } else {
      snapshotter.enqueue('added', [{ db: a.db, table: a.table }]);
    }
  }
}
