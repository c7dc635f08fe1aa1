/**
 * The capture pipeline's core: captured rows and table-level changes → events (event-assembly.ts) → Kinesis (an
 * oversized event parked in S3 first: claim-check.ts), with the checkpoint moved only to a transaction boundary whose
 * events are all acknowledged (in-flight-checkpoints.ts, Maxwell's in-flight list).
 */
import { type ChangeEvent, type ColumnMeta, isTableOp, keyValues } from '../../../shared/change-event';
import { ProducerMetric } from '../../../shared/metrics';
import type { Boundary } from './binlog-source';
import { type ClaimCheckProps, parkOversized } from './claim-check';
import { type CapturedRow, type CapturedTableChange, EventAssembler } from './event-assembly';
import { serializeEvent } from './event-encoder';
import { InFlightCheckpoints } from './in-flight-checkpoints';
import { type KinesisSink, MAX_RECORD_BYTES } from './kinesis-sink';
import { type EmfMetrics, log } from './metrics';
import type { SnapshotState } from './snapshot-progress';
import type { TableFilter } from './table-filter';

export type { CapturedRow, CapturedTableChange };

export interface ProducerCoreProps {
  readonly serverId: number;
  readonly filter: TableFilter;
  readonly sink: KinesisSink;
  readonly partitionKeyMode: 'table' | 'table-pk';
  readonly metrics: EmfMetrics;
  /** Where oversized events are parked; without it an event over the Kinesis record limit is an error. */
  readonly claimCheck?: ClaimCheckProps;
  /** Pause reading above this many events not yet acknowledged. */
  readonly maxInFlight: number;
  readonly pause: () => void;
  readonly resume: () => void;
  /** The snapshot progress current at this point of the stream; saved with the boundary it is attached to. */
  readonly snapshotState?: () => SnapshotState;
}

export class ProducerCore {
  private seq = 0;
  private readonly assembler: EventAssembler;
  private readonly inFlight = new InFlightCheckpoints();
  lastCommitMs = 0;
  /** `db.table.column` of unknown-type columns already warned about (one warning each, not one per row). */
  private readonly warnedUnknown = new Set<string>();

  constructor(private readonly props: ProducerCoreProps) {
    this.assembler = new EventAssembler({ serverId: props.serverId, filter: props.filter });
  }

  /** The newest boundary whose events are all in Kinesis: what the checkpoint may move to. */
  get safe(): Boundary | undefined {
    return this.inFlight.safe;
  }

  /** The snapshot progress as of `safe` (every chunk counted in it is in Kinesis). */
  get safeSnapshot(): SnapshotState | undefined {
    return this.inFlight.safeSnapshot;
  }

  /** Lowest unacknowledged sequence number reported by the sink. */
  acked(lowestUnacked: number): void {
    this.inFlight.acknowledgedBelow(lowestUnacked);
    if (this.props.sink.pending < this.props.maxInFlight / 2) this.props.resume();
  }

  private partitionKey(e: ChangeEvent): string {
    const base = `${e.db}.${e.table}`;
    // Table-level events go with the table's name (a range event has no image to spread by).
    if (this.props.partitionKeyMode === 'table' || e.pk.length === 0 || isTableOp(e.op)) return base;
    return `${base}#${JSON.stringify(keyValues(e))}`.slice(0, 256);
  }

  onRow(c: CapturedRow): void {
    this.emit(this.assembler.rowEvent(c));
    const { unknown } = this.assembler.plan(c.shape);
    if (unknown.length > 0) this.countUnknownTypes(c, unknown);
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
    this.emit(this.assembler.tableEvent(t), false);
  }

  /** Sends one event; `RowsCaptured` counts row events only (table-level events count as `TableEvents`). */
  emit(event: ChangeEvent, row = true): void {
    let data: Buffer = Buffer.from(`${serializeEvent(event)}\n`);
    let ready: Promise<void> | undefined;
    const key = this.partitionKey(event);
    if (data.length + Buffer.byteLength(key) > MAX_RECORD_BYTES)
      ({ data, ready } = parkOversized(this.props.claimCheck, event, data));
    this.props.sink.enqueue({ seq: this.seq++, partitionKey: key, data, ready });
    if (row) this.props.metrics.add(ProducerMetric.RowsCaptured, 'Count', 1);
    this.props.metrics.add(ProducerMetric.BytesWritten, 'Bytes', data.length);
    if (this.props.sink.pending >= this.props.maxInFlight) this.props.pause();
  }

  onCommit(b: Boundary): void {
    this.lastCommitMs = b.commitMs;
    this.inFlight.push(this.seq - 1, b, this.props.snapshotState?.());
    if (this.props.sink.pending === 0) this.acked(this.seq);
  }

  /** Waits for every pending write (Kinesis records, and through them their claim-check objects). */
  async drain(): Promise<void> {
    await this.props.sink.drain();
    this.acked(this.seq);
  }
}
