/**
 * The capture pipeline: binlog rows → events (filtered, transformed, encoded) → Kinesis, with the checkpoint moved
 * only to a transaction boundary whose events are all acknowledged (Maxwell's in-flight list: boundaries are queued
 * with the sequence number of their last event and popped once the sink has acknowledged past it).
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  type ChangeEvent,
  type ChangeOp,
  type ColumnMeta,
  claimCheckPointer,
  EVENT_VERSION,
  formatPosition,
  isTableOp,
  keyValues,
  type TableChange,
  type TableOp,
} from '../../../shared/change-event';
import { claimCheckKey } from '../../../shared/lake-layout';
import { ProducerMetric } from '../../../shared/metrics';
import type { Boundary, RowChange } from './binlog-source';
import { buildEvent, encodeImage, outgoingColumns, serializeEvent, unknownTypeColumns } from './event-encoder';
import { type KinesisSink, MAX_RECORD_BYTES } from './kinesis-sink';
import { type EmfMetrics, log } from './metrics';
import type { SnapshotState } from './snapshot-progress';
import type { TableFilter } from './table-filter';

/** A row to emit: from the binlog, or (op `read`) from a snapshot chunk. */
export type CapturedRow = Omit<RowChange, 'op'> & { readonly op: ChangeOp };

/** A table-level event to emit (docs/event-format.md, "Table-level events"), at a binlog (or watermark) position. */
export interface CapturedTableChange {
  readonly db: string;
  readonly table: string;
  readonly op: TableOp;
  readonly change: TableChange;
  /** The table's key and columns where known (they help a consumer; the merge does not need them). */
  readonly pk?: readonly string[];
  readonly columns?: readonly ColumnMeta[];
  readonly file: string;
  readonly pos: number;
  readonly row: number;
  readonly gtid: string | null;
  readonly commitMs: number;
}

interface ShapeColumns {
  readonly outgoing: ColumnMeta[];
  readonly unknown: readonly ColumnMeta[];
}

export interface ProducerCoreProps {
  readonly serverId: number;
  readonly filter: TableFilter;
  readonly sink: KinesisSink;
  readonly partitionKeyMode: 'table' | 'table-pk';
  readonly metrics: EmfMetrics;
  readonly claimCheck?: { readonly s3: S3Client; readonly bucket: string; readonly prefix: string };
  /** Pause reading above this many events not yet acknowledged. */
  readonly maxInFlight: number;
  readonly pause: () => void;
  readonly resume: () => void;
  /** The snapshot progress current at this point of the stream; saved with the boundary it is attached to. */
  readonly snapshotState?: () => SnapshotState;
}

export class ProducerCore {
  private seq = 0;
  /** Outgoing columns per table shape (a shape object lives as long as its table map or snapshot chunk). */
  private readonly columnsByShape = new WeakMap<object, ShapeColumns>();
  private readonly boundaries: { seq: number; b: Boundary; snapshot: SnapshotState | undefined }[] = [];
  /** The newest boundary whose events are all in Kinesis: what the checkpoint may move to. */
  safe: Boundary | undefined;
  /** The snapshot progress as of `safe` (every chunk counted in it is in Kinesis). */
  safeSnapshot: SnapshotState | undefined;
  lastCommitMs = 0;
  /** `db.table.column` of unknown-type columns already warned about (one warning each, not one per row). */
  private readonly warnedUnknown = new Set<string>();

  constructor(private readonly props: ProducerCoreProps) {}

  /** Lowest unacknowledged sequence number reported by the sink. */
  acked(lowestUnacked: number): void {
    while (this.boundaries.length > 0 && this.boundaries[0]!.seq < lowestUnacked) {
      const done = this.boundaries.shift()!;
      this.safe = done.b;
      this.safeSnapshot = done.snapshot;
    }
    if (this.props.sink.pending < this.props.maxInFlight / 2) this.props.resume();
  }

  private partitionKey(e: ChangeEvent): string {
    const base = `${e.db}.${e.table}`;
    // Table-level events go with the table's name (a range event has no image to spread by).
    if (this.props.partitionKeyMode === 'table' || e.pk.length === 0 || isTableOp(e.op)) return base;
    return `${base}#${JSON.stringify(keyValues(e))}`.slice(0, 256);
  }

  onRow(c: CapturedRow): void {
    const { filter } = this.props;
    const { db, table } = c.shape;
    const cols = this.columns(c.shape);
    const before = c.before ? filter.transform(db, table, encodeImage(c.shape, c.before)) : null;
    const after = c.after ? filter.transform(db, table, encodeImage(c.shape, c.after)) : null;
    const event = buildEvent(
      c.shape,
      c.op,
      before,
      after,
      {
        serverId: this.props.serverId,
        file: c.file,
        pos: c.pos,
        gtid: c.gtid,
        tx: c.gtid ?? `${c.file}:${c.pos}`,
        commitMs: c.commitMs,
      },
      c.row,
      cols.outgoing,
    );
    this.emit(event);
    if (cols.unknown.length > 0) this.countUnknownTypes(c, cols.unknown);
  }

  /** Counts values of unknown-type columns (sent as text) and warns once per column. */
  private countUnknownTypes(c: CapturedRow, columns: readonly ColumnMeta[]): void {
    let n = 0;
    for (const col of columns) {
      if (c.before?.[col.name] != null) n++;
      if (c.after?.[col.name] != null) n++;
      const key = `${c.shape.db}.${c.shape.table}.${col.name}`;
      if (this.warnedUnknown.has(key)) continue;
      this.warnedUnknown.add(key);
      log('warn', 'column type not in the type table: its values are sent as text (bytes as hex)', {
        db: c.shape.db,
        table: c.shape.table,
        column: col.name,
        type: col.type,
      });
    }
    if (n > 0) this.props.metrics.add(ProducerMetric.UnknownTypeValues, 'Count', n);
  }

  /** Emits a table-level event of a captured table (the caller decides what is captured). */
  onTableChange(t: CapturedTableChange): void {
    this.props.metrics.add(ProducerMetric.TableEvents, 'Count', 1);
    this.emit(
      {
        v: EVENT_VERSION,
        op: t.op,
        db: t.db,
        table: t.table,
        pk: t.pk ?? [],
        columns: t.columns ?? [],
        before: null,
        after: null,
        source: { server_id: this.props.serverId, file: t.file, pos: t.pos, row: t.row, gtid: t.gtid },
        position: formatPosition(t.file, t.pos, t.row),
        tx: t.gtid ?? `${t.file}:${t.pos}`,
        ts_ms: t.commitMs,
        emitted_ms: Date.now(),
        change: t.change,
      },
      false,
    );
  }

  /** A shape's outgoing columns and its unknown-type ones, computed once per shape (the hot path looks them up). */
  private columns(shape: CapturedRow['shape']): ShapeColumns {
    let cols = this.columnsByShape.get(shape);
    if (!cols) {
      cols = {
        outgoing: outgoingColumns(shape, this.props.filter),
        unknown: unknownTypeColumns(shape, this.props.filter),
      };
      this.columnsByShape.set(shape, cols);
    }
    return cols;
  }

  /** Sends one event; `RowsCaptured` counts row events only (table-level events count as `TableEvents`). */
  emit(event: ChangeEvent, row = true): void {
    let data: Buffer = Buffer.from(`${serializeEvent(event)}\n`);
    let ready: Promise<void> | undefined;
    const key = this.partitionKey(event);
    if (data.length + Buffer.byteLength(key) > MAX_RECORD_BYTES) ({ data, ready } = this.claimCheck(event, data));
    this.props.sink.enqueue({ seq: this.seq++, partitionKey: key, data, ready });
    if (row) this.props.metrics.add(ProducerMetric.RowsCaptured, 'Count', 1);
    this.props.metrics.add(ProducerMetric.BytesWritten, 'Bytes', data.length);
    if (this.props.sink.pending >= this.props.maxInFlight) this.props.pause();
  }

  /**
   * Parks an oversized event in S3 and returns the pointer event that goes to Kinesis instead, with the write it must
   * wait for: a consumer must never see a pointer to an object that is not there yet.
   */
  private claimCheck(event: ChangeEvent, data: Buffer): { data: Buffer; ready: Promise<void> } {
    const cc = this.props.claimCheck;
    if (!cc) {
      throw new Error(
        `event ${event.db}.${event.table}@${event.position} is ${data.length} bytes, over the Kinesis record limit, and no CLAIM_CHECK_BUCKET is configured`,
      );
    }
    const key = claimCheckKey(event, cc.prefix);
    const ready = cc.s3.send(new PutObjectCommand({ Bucket: cc.bucket, Key: key, Body: data })).then(() => undefined);
    // The sink awaits it before sending the pointer (and fails on a rejection), so the checkpoint, which moves only
    // past acknowledged records, never passes an unwritten claim check. This handler only keeps a rejection that the
    // sink never reaches (it failed earlier) from being unhandled.
    ready.catch(() => undefined);
    const pointer = claimCheckPointer(event, { bucket: cc.bucket, key, bytes: data.length });
    return { data: Buffer.from(`${JSON.stringify(pointer)}\n`), ready };
  }

  onCommit(b: Boundary): void {
    this.lastCommitMs = b.commitMs;
    this.boundaries.push({ seq: this.seq - 1, b, snapshot: this.props.snapshotState?.() });
    if (this.props.sink.pending === 0) this.acked(this.seq);
  }

  /** Waits for every pending write (Kinesis records, and through them their claim-check objects). */
  async drain(): Promise<void> {
    await this.props.sink.drain();
    this.acked(this.seq);
  }
}
