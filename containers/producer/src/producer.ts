/**
 * The capture pipeline's core: captured rows and table-level changes → events (event-assembly.ts) → Kinesis (an
 * oversized event parked in S3 first: claim-check.ts), with the checkpoint moved only to a transaction boundary whose
 * events are all acknowledged (in-flight-checkpoints.ts, Maxwell's in-flight list).
 *
 * With the encode worker (the default), rows are numbered here and encoded on a worker thread in batches
 * (encode-worker-client.ts) while this thread goes on reading; answers come back in order and go to the sink in
 * sequence order, after any table-level event numbered before them. An event still being encoded counts as
 * unacknowledged everywhere: in `pending` (backpressure), in the boundary check of `onCommit`, and in `drain`.
 */
import type { ChangeEvent, ColumnMeta, JsonValue } from '../../../shared/change-event';
import { ProducerMetric } from '../../../shared/metrics';
import type { Boundary } from './binlog-source';
import { type ClaimCheckProps, parkOversized } from './claim-check';
import { EncodeFailed, EncodeWorkerClient } from './encode-worker-client';
import {
  type CompiledShape,
  compileShape,
  directParts,
  type EncodeBatch,
  type EncodedBatch,
  HAS_AFTER,
  HAS_BEFORE,
  headBytesOf,
  headOf,
  partitionKeyOf,
  type WorkerInit,
  type WorkerShape,
} from './encode-worker-protocol';
import { ProducerError } from './errors';
import { type CapturedRow, type CapturedTableChange, EventAssembler, type ShapePlan } from './event-assembly';
import { serializeEvent } from './event-encoder';
import { InFlightCheckpoints } from './in-flight-checkpoints';
import { MAX_RECORD_BYTES, type Sink } from './kinesis-sink';
import { type EmfMetrics, log } from './metrics';
import type { SnapshotState } from './snapshot-progress';
import type { TableFilter } from './table-filter';

export type { CapturedRow, CapturedTableChange };

export interface ProducerCoreProps {
  readonly serverId: number;
  readonly filter: TableFilter;
  readonly sink: Sink;
  readonly partitionKeyMode: 'table' | 'table-pk';
  readonly metrics: EmfMetrics;
  /** Where oversized events are parked; without it an event over the Kinesis record limit is an error. */
  readonly claimCheck?: ClaimCheckProps;
  /** Pause reading above this many events not yet acknowledged. */
  readonly maxInFlight: number;
  /**
   * Pause reading above this many bytes of records in the sink not yet acknowledged, whatever their number: a table of
   * 100 KB rows reaches 20,000 events at 2 GB. Resumes below half, as `maxInFlight`. @default DEFAULT_MAX_IN_FLIGHT_BYTES
   */
  readonly maxInFlightBytes?: number;
  readonly pause: () => void;
  readonly resume: () => void;
  /** The snapshot progress current at this point of the stream; saved with the boundary it is attached to. */
  readonly snapshotState?: () => SnapshotState;
  /**
   * Encode rows on a worker thread while this thread reads (encode-worker.ts). Off by default: on the 2-vCPU benchmark
   * machine, where MariaDB shares the cores, the worker's transfer and garbage cost more than the encoding it takes
   * off this thread (docs/benchmarks.md, "Decode and encode"). @default false
   */
  readonly encodeWorker?: boolean;
  /**
   * Encode snapshot rows (op `read`) on the encode worker even when `encodeWorker` is off; binlog rows stay on this
   * thread. A snapshot chunk arrives as one burst of rows that this thread only reads (mysql2's text rows, no binlog
   * decoding), so the encoding is most of its work and moving it pays where the producer has a second core; the
   * binlog's rows, whose decoding keeps this thread busy, did not gain (docs/benchmarks.md, "Snapshot" and "Decode
   * and encode"). The worker starts with the first snapshot row. @default false
   */
  readonly snapshotEncodeWorker?: boolean;
  /**
   * Rows per batch handed to the worker; a smaller batch leaves at the end of the event loop's turn, so a quiet stream
   * waits for no batch to fill. @default 512
   */
  readonly encodeBatchRows?: number;
  /**
   * Gets a failure found after the call that caused it returned (a row the worker could not encode, the worker's
   * death, an oversized event without a claim-check bucket): the core has stopped, and every later call throws it.
   * @default none: the failure is thrown by the next call (onRow, emit, drain)
   */
  readonly fail?: (err: Error) => void;
}

/**
 * Rows numbered and waiting to go to the worker (as the flat columns the worker takes, made typed arrays when the batch
 * leaves), or gone and waiting for it.
 */
interface RowBatch {
  readonly kind: 'rows';
  readonly firstSeq: number;
  readonly rows: CapturedRow[];
  readonly shapes: WorkerShape[];
  readonly strings: string[];
  /** Where each of `strings` is. */
  readonly stringIds: Map<string, number>;
  readonly op: number[];
  readonly shape: number[];
  readonly flags: number[];
  readonly file: number[];
  readonly pos: number[];
  readonly row: number[];
  readonly gtid: number[];
  readonly commitMs: number[];
  readonly values: unknown[];
  result?: EncodedBatch;
}

/** The index of `text` in the batch's strings (added on first use). */
function stringId(b: RowBatch, text: string): number {
  let id = b.stringIds.get(text);
  if (id === undefined) {
    id = b.strings.length;
    b.strings.push(text);
    b.stringIds.set(text, id);
  }
  return id;
}

/** An event encoded on this thread (a table-level event) waiting for the rows numbered before it. */
interface ReadyRecord {
  readonly kind: 'record';
  readonly seq: number;
  readonly key: string;
  readonly data: Buffer;
  readonly ready: Promise<void> | undefined;
}

export const DEFAULT_ENCODE_BATCH_ROWS = 512;
/** 64 MiB: a dozen full PutRecords calls (5 MiB each), so the bound never starves the sink's 8 calls in flight. */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;

export class ProducerCore {
  private seq = 0;
  private worker: EncodeWorkerClient | undefined;
  /** The batch being filled. */
  private open: RowBatch | undefined;
  private flushScheduled = false;
  /** Batches at the worker and records behind them, in sequence order. */
  private readonly out: (RowBatch | ReadyRecord)[] = [];
  /** Events numbered but not yet handed to the sink (being batched, at the worker, or behind a batch). */
  private encoding = 0;
  private readonly shapeIds = new WeakMap<object, number>();
  private readonly shapeIdsByContent = new Map<string, number>();
  private readonly outWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** `whenBelowHalf` callers, woken by the acknowledgement that takes the core under half of both limits. */
  private belowWaiters: (() => void)[] = [];
  private failure: Error | undefined;
  private readonly compiledPlans = new WeakMap<ShapePlan, CompiledShape>();
  private readonly scratch: [JsonValue[], JsonValue[]] = [[], []];
  private readonly init: WorkerInit;
  private readonly assembler: EventAssembler;
  private readonly inFlight = new InFlightCheckpoints();
  lastCommitMs = 0;
  /** `db.table.column` of unknown-type columns already warned about (one warning each, not one per row). */
  private readonly warnedUnknown = new Set<string>();

  constructor(private readonly props: ProducerCoreProps) {
    this.assembler = new EventAssembler({ serverId: props.serverId, filter: props.filter });
    this.init = { serverId: props.serverId, partitionKeyMode: props.partitionKeyMode };
  }

  /** The newest boundary whose events are all in Kinesis: what the checkpoint may move to. */
  get safe(): Boundary | undefined {
    return this.inFlight.safe;
  }

  /** The snapshot progress as of `safe` (every chunk counted in it is in Kinesis). */
  get safeSnapshot(): SnapshotState | undefined {
    return this.inFlight.safeSnapshot;
  }

  /** Events not yet acknowledged: in the sink, and (with the worker) numbered but not yet handed to it. */
  get pending(): number {
    return this.props.sink.pending + this.encoding;
  }

  /** Bytes of records in the sink not yet acknowledged. */
  get pendingBytes(): number {
    return this.props.sink.pendingBytes;
  }

  private get maxInFlightBytes(): number {
    return this.props.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES;
  }

  /** At either limit, reading pauses; below half of both it resumes. */
  private get full(): boolean {
    return this.pending >= this.props.maxInFlight || this.pendingBytes >= this.maxInFlightBytes;
  }

  /** Half of both limits, where reading resumes and a snapshot reads its next chunk: events, then bytes. */
  get halfFull(): boolean {
    return this.pending >= this.props.maxInFlight / 2 || this.pendingBytes >= this.maxInFlightBytes / 2;
  }

  /** Lowest unacknowledged sequence number reported by the sink. */
  acked(lowestUnacked: number): void {
    this.inFlight.acknowledgedBelow(lowestUnacked);
    if (this.halfFull) return;
    this.props.resume();
    for (const wake of this.belowWaiters.splice(0)) wake();
  }

  /**
   * Resolves once the core is under half of both limits (`halfFull` false; checked at each acknowledgement, and at
   * once): the snapshot reads its next chunk then, instead of polling. Never rejects; after a failure it may never
   * resolve.
   */
  whenBelowHalf(): Promise<void> {
    if (!this.halfFull) return Promise.resolve();
    return new Promise((resolve) => this.belowWaiters.push(resolve));
  }

  private partitionKey(e: ChangeEvent): string {
    return partitionKeyOf(e, this.props.partitionKeyMode);
  }

  onRow(c: CapturedRow): void {
    if (this.failure) throw this.failure;
    const plan = this.assembler.plan(c.shape);
    if (this.props.encodeWorker === true || (c.op === 'read' && this.props.snapshotEncodeWorker === true))
      this.startWorker();
    // Until the worker has loaded, rows are encoded here (emit queues them behind any batch still out). With only
    // snapshot rows going to the worker, a binlog row is encoded here and waits behind the batches still out.
    if (this.worker?.ready && (this.props.encodeWorker === true || c.op === 'read')) this.batchRow(c, plan);
    else this.emitRow(c, plan);
    if (plan.unknown.length > 0) this.countUnknownTypes(c, plan.unknown);
  }

  /**
   * Encodes a row on this thread from its shape's template (encode-worker-protocol.ts `directParts` after the shape's
   * head, the worker's code): no image or event object is built, the same bytes as `serializeEvent(rowEvent(c))`. A
   * sink that takes parts (the sink thread's) gets the head's bytes and the rest's text, written into its outgoing
   * buffer with no Buffer per record. The object path for a shape or value the template cannot write, and for an
   * oversized event (the claim check needs the event).
   */
  private emitRow(c: CapturedRow, plan: ShapePlan): void {
    let cs = this.compiledPlans.get(plan);
    if (!cs) {
      const { db, table, pk } = c.shape;
      cs = compileShape({ id: -1, shape: { db, table, pk }, plan });
      this.compiledPlans.set(plan, cs);
    }
    if (!cs.direct) {
      this.emit(this.assembler.rowEvent(c));
      return;
    }
    const values: unknown[] = [];
    let beforeAt = -1;
    let afterAt = -1;
    if (c.before) {
      beforeAt = 0;
      for (const col of plan.columns) values.push(c.before[col.name]);
    }
    if (c.after) {
      afterAt = values.length;
      for (const col of plan.columns) values.push(c.after[col.name]);
    }
    const r = directParts(this.init, cs, c, values, beforeAt, afterAt, Date.now(), this.scratch);
    if (!r) {
      this.emit(this.assembler.rowEvent(c));
      return;
    }
    const key = r.key ?? `${c.shape.db}.${c.shape.table}`;
    const sink = this.props.sink;
    const head = headBytesOf(cs, c.op);
    let bytes: number;
    // Under Kinesis' limit even at 3 bytes per UTF-16 unit: the sink writes it without measuring it first.
    if (
      sink.enqueueParts &&
      !this.open &&
      this.out.length === 0 &&
      head.length + (r.rest.length + key.length) * 3 <= MAX_RECORD_BYTES
    ) {
      bytes = sink.enqueueParts(this.seq++, key, head, r.rest);
    } else {
      const data = Buffer.from(headOf(cs, c.op) + r.rest);
      if (data.length + Buffer.byteLength(key) > MAX_RECORD_BYTES) {
        this.emit(this.assembler.rowEvent(c));
        return;
      }
      if (this.open || this.out.length > 0) {
        this.flush();
        this.out.push({ kind: 'record', seq: this.seq++, key, data, ready: undefined });
        this.encoding++;
      } else sink.enqueue({ seq: this.seq++, partitionKey: key, data, ready: undefined });
      bytes = data.length;
    }
    this.props.metrics.add(ProducerMetric.RowsCaptured, 'Count', 1);
    this.props.metrics.add(ProducerMetric.BytesWritten, 'Bytes', bytes);
    if (this.full) this.props.pause();
  }

  private startWorker(): EncodeWorkerClient {
    this.worker ??= new EncodeWorkerClient({
      serverId: this.props.serverId,
      partitionKeyMode: this.props.partitionKeyMode,
    });
    return this.worker;
  }

  /**
   * Starts the encode worker (when `encodeWorker` or `snapshotEncodeWorker` is true) and resolves once it takes rows;
   * rows captured before are encoded on this thread. Optional: the first row (snapshot row) starts it too.
   */
  async startEncodeWorker(): Promise<void> {
    if (this.props.encodeWorker !== true && this.props.snapshotEncodeWorker !== true) return;
    await this.startWorker().whenReady();
  }

  /** Numbers a row and adds it to the open batch for the worker. */
  private batchRow(c: CapturedRow, plan: ShapePlan): void {
    this.open ??= {
      kind: 'rows',
      firstSeq: this.seq,
      rows: [],
      shapes: [],
      strings: [],
      stringIds: new Map(),
      op: [],
      shape: [],
      flags: [],
      file: [],
      pos: [],
      row: [],
      gtid: [],
      commitMs: [],
      values: [],
    };
    const b = this.open;
    b.rows.push(c);
    b.op.push(stringId(b, c.op));
    b.shape.push(this.shapeId(c, plan, b));
    b.flags.push((c.before ? HAS_BEFORE : 0) | (c.after ? HAS_AFTER : 0));
    b.file.push(stringId(b, c.file));
    b.pos.push(c.pos);
    b.row.push(c.row);
    b.gtid.push(c.gtid === null ? -1 : stringId(b, c.gtid));
    b.commitMs.push(c.commitMs);
    for (const image of [c.before, c.after]) {
      if (!image) continue;
      for (const col of plan.columns) {
        const v = image[col.name];
        // A Buffer is often a view of a whole network packet: a clone would copy the packet, so copy the value alone.
        b.values.push(v instanceof Uint8Array ? new Uint8Array(v) : v);
      }
    }
    this.seq++;
    this.encoding++;
    this.props.metrics.add(ProducerMetric.RowsCaptured, 'Count', 1);
    if (b.rows.length >= (this.props.encodeBatchRows ?? DEFAULT_ENCODE_BATCH_ROWS)) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
    if (this.full) this.props.pause();
  }

  /** The worker's number for a table shape: one per distinct content (the binlog reader makes a shape per event). */
  private shapeId(c: CapturedRow, plan: ShapePlan, b: RowBatch): number {
    let id = this.shapeIds.get(c.shape);
    if (id !== undefined) return id;
    const { db, table, pk } = c.shape;
    const content = JSON.stringify([db, table, pk, plan.columns, plan.outgoing]);
    id = this.shapeIdsByContent.get(content);
    if (id === undefined) {
      id = this.shapeIdsByContent.size;
      this.shapeIdsByContent.set(content, id);
      // Sent with the first batch that uses it; the worker keeps it for the batches after.
      b.shapes.push({ id, shape: { db, table, pk }, plan: { columns: plan.columns, outgoing: plan.outgoing } });
    }
    this.shapeIds.set(c.shape, id);
    return id;
  }

  /** Sends the open batch to the worker. */
  private flush(): void {
    const b = this.open;
    if (!b || this.failure) return;
    this.open = undefined;
    this.out.push(b);
    const batch: Omit<EncodeBatch, 'id'> = {
      shapes: b.shapes,
      strings: b.strings,
      op: Uint32Array.from(b.op),
      shape: Uint32Array.from(b.shape),
      flags: Uint8Array.from(b.flags),
      file: Uint32Array.from(b.file),
      pos: Float64Array.from(b.pos),
      row: Float64Array.from(b.row),
      gtid: Int32Array.from(b.gtid),
      commitMs: Float64Array.from(b.commitMs),
      values: b.values,
    };
    this.worker!.encode(batch).then(
      (result) => {
        b.result = result;
        this.handOver();
      },
      (err: Error) => this.stop(this.describeFailure(err, b)),
    );
  }

  /** A worker failure naming the table and position of the row that could not be encoded. */
  private describeFailure(err: Error, b: RowBatch): Error {
    if (!(err instanceof EncodeFailed)) return err;
    const c = b.rows[err.index];
    if (!c) return err;
    return new ProducerError(
      'ENCODE_FAILED',
      `${c.shape.db}.${c.shape.table} at ${c.file}:${c.pos} row ${c.row}: ${err.reason}; stopping without checkpointing`,
    );
  }

  /** Hands every answered batch and the records behind it to the sink, in sequence order. */
  private handOver(): void {
    try {
      while (this.out.length > 0 && !this.failure) {
        const item = this.out[0]!;
        if (item.kind === 'record') {
          this.props.sink.enqueue({ seq: item.seq, partitionKey: item.key, data: item.data, ready: item.ready });
          this.encoding--;
        } else {
          if (!item.result) break;
          this.enqueueBatch(item, item.result);
        }
        this.out.shift();
      }
    } catch (err) {
      this.stop(err as Error);
      return;
    }
    if (this.out.length === 0) for (const w of this.outWaiters.splice(0)) w.resolve();
  }

  private enqueueBatch(b: RowBatch, r: EncodedBatch): void {
    const bytes = Buffer.from(r.data);
    let start = 0;
    for (let i = 0; i < b.rows.length; i++) {
      const end = r.ends[i]!;
      let data: Buffer = bytes.subarray(start, end);
      start = end;
      const c = b.rows[i]!;
      const key = r.keys?.[i] ?? `${c.shape.db}.${c.shape.table}`;
      let ready: Promise<void> | undefined;
      if (data.length + Buffer.byteLength(key) > MAX_RECORD_BYTES)
        ({ data, ready } = parkOversized(this.props.claimCheck, this.assembler.rowEvent(c), data));
      this.props.sink.enqueue({ seq: b.firstSeq + i, partitionKey: key, data, ready });
      this.encoding--;
      this.props.metrics.add(ProducerMetric.BytesWritten, 'Bytes', data.length);
    }
  }

  /** Stops the core: every later call throws `err`, and `props.fail` hears of it. */
  private stop(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const w of this.outWaiters.splice(0)) w.reject(err);
    this.props.fail?.(err);
  }

  /** Ends the encode worker (after `drain`, when the producer stops). */
  async close(): Promise<void> {
    await this.worker?.close();
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

  /**
   * Sends one event encoded on this thread; `RowsCaptured` counts row events only (table-level events count as
   * `TableEvents`). Behind rows still at the worker it waits for them, so the sink still gets sequence order.
   */
  emit(event: ChangeEvent, row = true): void {
    if (this.failure) throw this.failure;
    let data: Buffer = Buffer.from(`${serializeEvent(event)}\n`);
    let ready: Promise<void> | undefined;
    const key = this.partitionKey(event);
    if (data.length + Buffer.byteLength(key) > MAX_RECORD_BYTES)
      ({ data, ready } = parkOversized(this.props.claimCheck, event, data));
    if (this.open || this.out.length > 0) {
      this.flush();
      this.out.push({ kind: 'record', seq: this.seq++, key, data, ready });
      this.encoding++;
    } else this.props.sink.enqueue({ seq: this.seq++, partitionKey: key, data, ready });
    if (row) this.props.metrics.add(ProducerMetric.RowsCaptured, 'Count', 1);
    this.props.metrics.add(ProducerMetric.BytesWritten, 'Bytes', data.length);
    if (this.full) this.props.pause();
  }

  onCommit(b: Boundary): void {
    this.lastCommitMs = b.commitMs;
    this.inFlight.push(this.seq - 1, b, this.props.snapshotState?.());
    if (this.pending === 0) this.acked(this.seq);
  }

  /** Waits for every pending write (rows at the worker, Kinesis records, and through them their claim-check objects). */
  async drain(): Promise<void> {
    if (this.failure) throw this.failure;
    this.flush();
    if (this.out.length > 0) await new Promise<void>((resolve, reject) => this.outWaiters.push({ resolve, reject }));
    await this.props.sink.drain();
    this.acked(this.seq);
  }
}
