/**
 * Snapshots and backfills while the binlog keeps streaming: the DBLog algorithm, as Debezium's incremental snapshots
 * use it. For each chunk of a table, in primary-key order:
 *   1. write a low watermark to the signal table;
 *   2. read the chunk (a plain consistent SELECT: no lock);
 *   3. write a high watermark;
 *   4. when the binlog reader reaches the low watermark, open a window that remembers the key of every change to the
 *      table; when it reaches the high watermark, drop the chunk rows whose key changed inside the window (the binlog
 *      has a newer version of them, emitted already) and emit the others as `read` events at the high watermark's
 *      position.
 * A `read` event is therefore ordered after every change it reflects and before every change it does not, so it never
 * overwrites a newer change in the replica (the merge keeps the newest position per key). Progress moves with the
 * stream: a chunk is finished at its high watermark, and that state is what the checkpoint saved after it carries,
 * so a restart resumes after the last chunk whose rows are in Kinesis.
 *
 * Rows the source no longer has: after a chunk's reads comes a `range` event (the chunk's key range and its low
 * watermark's position): a replica key inside the range last changed before the low watermark was neither read nor
 * changed since, so the source lacks it and the merge deletes it. A job of the whole table ends with one more `range`
 * without bounds at its first chunk's low watermark, for keys the warehouse cannot order as MySQL does (strings).
 * Jobs with an operator's WHERE send no ranges (the rows outside the WHERE are not read, not gone).
 *
 * Tables without a primary key cannot be read in key order: they are read whole, as one chunk between one pair of
 * watermarks (at most `keylessMaxRows` rows, held in memory until the high watermark). If any row of the table changed
 * inside the window, the read is discarded and done again (with a growing pause, `KEYLESS_ATTEMPTS` times at most:
 * then the job fails with the reason). Otherwise the read is the table's content at the high watermark, sent there as
 * a `range` event without bounds (row index 0: the merge replaces every older change of the table, and ignores older
 * changes arriving later) followed by one `read` event per row (row indexes 1…n; identical rows are separate events).
 * A WHERE cannot apply to them (its rows would be counted twice).
 */
import { type ChangeOp, formatPosition, type RowImage } from '../../../shared/change-event';
import { ProducerMetric } from '../../../shared/metrics';
import type { RowChange, SignalRow } from './binlog-source';
import { decodeKeyValue, encodeKeyValue, type KeyValue } from './chunk-query';
import { chunkLimit, DEFAULT_CHUNK_BYTES, maxRowBytes, rowsBytes } from './chunk-size';
import type { CapturedRow, CapturedTableChange } from './event-assembly';
import { encodeValue, type TableShape } from './event-encoder';
import type { EmfMetrics } from './metrics';
import type { Signal, WatermarkKind } from './signal-table';
import {
  addJobs,
  failJob,
  finishChunk,
  isNewRequest,
  newJob,
  nextJob,
  requestSeen,
  type SnapshotJob,
  type SnapshotState,
  startJob,
} from './snapshot-progress';
import type { SnapshotReader } from './snapshot-reader';

export interface SnapshotterProps {
  readonly reader: SnapshotReader;
  /** Writes one watermark (resolves once it is committed). */
  readonly writeWatermark: (kind: WatermarkKind, chunk: string) => Promise<void>;
  readonly captures: (db: string, table: string) => boolean;
  readonly pipelineId: string;
  /** Most rows a chunk reads. */
  readonly chunkRows: number;
  /**
   * Bytes of rows a chunk aims at: fewer rows than `chunkRows` where the table's rows are large (chunk-size.ts).
   * @default DEFAULT_CHUNK_BYTES (16 MiB)
   */
  readonly chunkBytes?: number;
  /**
   * Most rows of a table without a primary key (read whole, in memory); a larger one fails its job with the reason.
   * @default 250000
   */
  readonly keylessMaxRows?: number;
  /** Pause before reading a changed keyless table again, times the attempt. @default 200 */
  readonly keylessRetryMs?: number;
  /** Hands a row to the producer core (which filters, encodes and sends it like a binlog row). */
  readonly emit: (row: CapturedRow) => void;
  /** Hands a table-level event (`range`, `resync`) to the producer core. */
  readonly emitTableChange: (change: CapturedTableChange) => void;
  /** True while too many events are unacknowledged: the next chunk waits. */
  readonly congested: () => boolean;
  /**
   * Resolves once `congested` may have turned false (the core's acknowledgements): the next chunk is read then, not
   * at the next poll. Rows encoded on the encode worker keep the core congested for a few milliseconds at a time,
   * and waiting out 20 ms polls left both threads idle (3–31 waits of up to 20 ms per 200k rows of the benchmark).
   * @default polling every 20 ms
   */
  readonly decongested?: () => Promise<void>;
  readonly metrics: EmfMetrics;
  readonly log: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
  readonly initialState: SnapshotState;
  readonly now?: () => number;
}

/** The canonical text of a row's primary key, equal for the binlog reader's and the snapshot reader's values. */
export function keyText(shape: TableShape, row: Record<string, unknown>): string {
  return JSON.stringify(
    shape.pk.map((k) => encodeValue(shape.columns.find((c) => c.name === k)?.type ?? 'varchar', row[k])),
  );
}

/** A key tuple (a chunk bound) as an image of the key columns, encoded like row images (not shared/change-event.ts `keyImage`, which takes an event). */
export function keyTupleImage(shape: TableShape, key: readonly unknown[]): RowImage {
  const out: RowImage = {};
  shape.pk.forEach((k, i) => {
    out[k] = encodeValue(shape.columns.find((c) => c.name === k)?.type ?? 'varchar', key[i]);
  });
  return out;
}

/** Where a table-level event of the snapshotter goes in the stream. */
export interface StreamPoint {
  readonly file: string;
  readonly pos: number;
  readonly gtid: string | null;
  readonly commitMs: number;
  /** Row index at that position (another event of the same statement may take index 0). @default 0 */
  readonly rowIndex?: number;
}

export const RESYNC_REQUESTED = 'requested by npx cdc resync';

/** Reads of a keyless table discarded because it changed while read, before its job fails. */
export const KEYLESS_ATTEMPTS = 10;
export const KEYLESS_MAX_ROWS = 250_000;

/** Splits a chunk into the rows to emit and the number of rows dropped because their key changed in the window. */
export function rowsToEmit(
  shape: TableShape,
  rows: readonly Record<string, unknown>[],
  changedInWindow: ReadonlySet<string>,
): { emit: { row: Record<string, unknown>; index: number }[]; dropped: number } {
  const emit: { row: Record<string, unknown>; index: number }[] = [];
  rows.forEach((row, index) => {
    // Nothing changed in the window (the common case): no key to compute.
    if (changedInWindow.size === 0 || !changedInWindow.has(keyText(shape, row))) emit.push({ row, index });
  });
  return { emit, dropped: rows.length - emit.length };
}

interface OpenChunk {
  readonly id: string;
  /** Chunks read after a discarded one are discarded too (they were read from a cursor past it). */
  readonly generation: number;
  readonly job: SnapshotJob;
  readonly shape: TableShape;
  /** The key the chunk was read after (undefined: from the start). */
  readonly after: readonly KeyValue[] | undefined;
  /** Rows the chunk asked for: fewer came back only at the end of the table (or of the job's WHERE). */
  readonly limit: number;
  rows?: Record<string, unknown>[];
  /** The low watermark was read from the binlog. */
  open: boolean;
  /** Position of the low watermark, once read. */
  low?: string;
  readonly changed: Set<string>;
  /** Why the chunk must be read again (the table's schema changed inside the window). */
  invalid?: string;
  /** `Snapshotter.schemaChanges` when the chunk's shape was read: a DDL of the table after that makes it stale. */
  readonly schemaEpoch: number;
  readonly closed: () => void;
  readonly done: Promise<void>;
}

/** Server errors of a chunk read with a shape the table no longer has. */
const ER_BAD_FIELD_ERROR = 1054;
const ER_NO_SUCH_TABLE = 1146;

/** A table shape as the loop got it: when it was read (`Snapshotter.schemaChanges`), and whether from the cache. */
interface DescribedShape {
  readonly epoch: number;
  readonly cached: boolean;
}

/** Chunks read ahead while the binlog reader has not reached the previous one's high watermark yet. */
const CHUNKS_IN_FLIGHT = 2;
/** How often a congested snapshot looks again, when nothing wakes it sooner (`decongested`). */
const CONGESTION_POLL_MS = 20;

interface ReadCursor {
  readonly jobId: string;
  readonly generation: number;
  lastKey: SnapshotJob['lastKey'];
  exhausted: boolean;
  /** Rows the next chunk reads (chunk-size.ts); undefined until the table's shape sizes the first one. */
  limit?: number;
}

const sameTable = (a: { db: string; table: string }, db: string, table: string) => a.db === db && a.table === table;

export class Snapshotter {
  private current: SnapshotState;
  /** Chunks whose high watermark the binlog reader has not reached yet, oldest first (their windows follow each other). */
  private readonly chunks: OpenChunk[] = [];
  private generation = 0;
  private wake: (() => void) | undefined;
  private stopped = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly now: () => number;
  /** Jobs this process has logged as started or resumed. */
  private readonly announced = new Set<string>();
  /** Discarded whole-table reads per keyless job (reset when the process restarts). */
  private readonly keylessAttempts = new Map<string, number>();
  /**
   * The shape of the table being read, kept from chunk to chunk of its job: reading it from information_schema (two
   * queries) before every chunk cost more than the chunk's own read (profiled: 20 ms a chunk, 1 s of a 2.4 s snapshot
   * of 200k rows), and one shape object per job lets the event assembly compile its plan once. Dropped at any DDL
   * that names the table (`onDdl`).
   */
  private shapeCache: { readonly jobId: string; readonly shape: TableShape; readonly epoch: number } | undefined;
  /** The table whose shape is being read or cached (a DDL naming it counts from the moment its describe starts). */
  private watched: { readonly db: string; readonly table: string } | undefined;
  /** DDL statements read from the binlog that named the watched table or a table with a chunk in flight. */
  private schemaChanges = 0;

  constructor(private readonly props: SnapshotterProps) {
    this.current = props.initialState;
    this.now = props.now ?? Date.now;
  }

  /** The progress as of the newest event read from the binlog. */
  get state(): SnapshotState {
    return this.current;
  }

  /** Queues a snapshot of each table (startup: initial snapshot, tables added to the capture rules). */
  enqueue(kind: 'initial' | 'added', tables: readonly { db: string; table: string }[]): void {
    const now = this.now();
    const id = (t: { db: string; table: string }) =>
      kind === 'initial' ? `initial:${t.db}.${t.table}` : `added:${t.db}.${t.table}:${now}`;
    this.current = addJobs(
      this.current,
      tables.map((t) => newJob(kind, id(t), t.db, t.table, now)),
    );
    this.wake?.();
  }

  /** Starts working through the jobs; `onFatal` gets an error the snapshot cannot recover from (I/O failure). */
  start(onFatal: (err: Error) => void): void {
    this.loopDone = this.loop().catch((err: Error) => {
      if (!this.stopped) onFatal(err);
    });
  }

  /** Stops after the current step; the chunk in flight is read again after the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    for (const ch of this.chunks) ch.closed();
    await this.loopDone;
  }

  /** Every captured binlog row passes here first: inside a window, its keys are remembered. */
  observe(c: RowChange): void {
    for (const ch of this.chunks) {
      if (!ch.open || !sameTable(ch.shape, c.shape.db, c.shape.table)) continue;
      if (c.before) ch.changed.add(keyText(c.shape, c.before));
      if (c.after) ch.changed.add(keyText(c.shape, c.after));
    }
  }

  /**
   * A DDL statement read from the binlog: a schema change inside a window makes the chunk be read again, and so does
   * one read after the chunk's (cached) shape was taken, even before its window opened (the chunk may have been read
   * with the old columns); the cached shape is dropped.
   */
  onDdl(query: string): void {
    const text = query.replace(/`/g, ' ');
    const names = (table: string) => {
      const name = table.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      return new RegExp(`(^|[^A-Za-z0-9_$])${name}([^A-Za-z0-9_$]|$)`, 'i').test(text);
    };
    let changed = this.watched !== undefined && names(this.watched.table);
    for (const ch of this.chunks) {
      if (!names(ch.shape.table)) continue;
      changed = true;
      if (ch.open) ch.invalid = `schema change inside the window: ${query.slice(0, 200)}`;
    }
    if (changed) {
      this.schemaChanges++;
      this.shapeCache = undefined;
    }
  }

  /** A signal-table row read from the binlog. */
  onSignal(signal: Signal, at: SignalRow): void {
    if (signal.type === 'watermark') {
      const ch = this.chunks.find((c) => c.id === signal.chunk);
      if (!ch) return; // another pipeline's, or one written before a restart
      if (signal.kind === 'low') {
        ch.open = true;
        ch.low = formatPosition(at.file, at.pos, 0);
      } else if (signal.kind === 'high') this.close(ch, at);
      return;
    }
    if (signal.type === 'backfill') {
      if (signal.pipeline !== null && signal.pipeline !== this.props.pipelineId) return;
      const position = formatPosition(at.file, at.pos, 0);
      if (!isNewRequest(this.current, position)) {
        this.props.log('info', 'backfill request read again after the checkpoint moved back: not run twice', {
          job: signal.id,
        });
        return;
      }
      this.current = requestSeen(this.current, position);
      const [db, table] = signal.table.split('.');
      const now = this.now();
      let job = newJob('backfill', signal.id, db ?? '', table ?? '', now, signal.where ?? undefined);
      const known = this.current.jobs.some((j) => j.id === signal.id);
      this.current = addJobs(this.current, [job]);
      if (known) return;
      if (!db || !table) {
        this.current = failJob(this.current, job.id, `${JSON.stringify(signal.table)} is not db.table`, now);
      } else if (!this.props.captures(db, table)) {
        this.current = failJob(this.current, job.id, `${db}.${table} is not captured by this pipeline`, now);
      } else {
        job = this.current.jobs.find((j) => j.id === signal.id)!;
        this.props.log('info', 'backfill requested', {
          job: job.id,
          table: `${db}.${table}`,
          where: job.where ?? null,
        });
      }
      this.wake?.();
      return;
    }
    if (signal.type === 'resync') {
      if (signal.pipeline !== null && signal.pipeline !== this.props.pipelineId) return;
      const [db, table] = signal.table.split('.');
      const point = { file: at.file, pos: at.pos, gtid: at.gtid, commitMs: at.commitMs };
      if (db && table && this.props.captures(db, table)) {
        this.resync(db, table, RESYNC_REQUESTED, point, signal.id);
        return;
      }
      const position = formatPosition(at.file, at.pos, 0);
      if (!isNewRequest(this.current, position)) return;
      this.current = requestSeen(this.current, position);
      // A failed job, so that `npx cdc resync` following it says why.
      const why =
        !db || !table
          ? `${JSON.stringify(signal.table)} is not db.table`
          : `${db}.${table} is not captured by this pipeline`;
      const now = this.now();
      this.current = addJobs(this.current, [newJob('resync', signal.id, db ?? '', table ?? '', now)]);
      this.current = failJob(this.current, signal.id, why, now);
      this.props.log('warn', 'resync refused', { job: signal.id, reason: why });
    }
  }

  /**
   * Rebuilds a table's replica: emits a `resync` event at `at` (the merge empties the replica and starts it anew from
   * there) and queues a backfill of the whole table, whose reads all come after it. The DDL path calls this for a
   * change the replica cannot follow in place. A request at or before the newest one acted on (the stream read again
   * after `set-position` moved back) does nothing: returns false.
   * @param jobId the job's id @default `resync:<db>.<table>@<position>`
   */
  resync(db: string, table: string, reason: string, at: StreamPoint, jobId?: string): boolean {
    const position = formatPosition(at.file, at.pos, at.rowIndex ?? 0);
    if (!isNewRequest(this.current, position)) {
      this.props.log('info', 'resync read again after the checkpoint moved back: not run twice', {
        table: `${db}.${table}`,
        position,
      });
      return false;
    }
    this.current = requestSeen(this.current, position);
    this.props.metrics.add(ProducerMetric.TableResyncs, 'Count', 1);
    this.props.log('warn', 'resync: the replica is rebuilt from a backfill', { table: `${db}.${table}`, reason });
    this.props.emitTableChange({
      db,
      table,
      op: 'resync',
      change: { reason },
      file: at.file,
      pos: at.pos,
      row: at.rowIndex ?? 0,
      gtid: at.gtid,
      commitMs: at.commitMs,
    });
    const id = jobId ?? `resync:${db}.${table}@${position}`;
    this.current = addJobs(this.current, [newJob('resync', id, db, table, this.now())]);
    this.props.log('info', 'resync started', { job: id, table: `${db}.${table}`, reason, position });
    this.wake?.();
    return true;
  }

  /** The high watermark: emit the chunk minus the rows changed in the window, at the watermark's position. */
  private close(ch: OpenChunk, at: SignalRow): void {
    this.chunks.splice(this.chunks.indexOf(ch), 1);
    const now = this.now();
    if (ch.generation !== this.generation) {
      ch.closed(); // read after a discarded chunk: read again from the saved progress
      return;
    }
    if (!this.props.captures(ch.shape.db, ch.shape.table)) {
      // Set aside (quarantined) while the chunk was in flight: none of its rows goes out. The loop fails the job with
      // the reason before its next chunk; chunks read ahead are discarded with this one.
      this.props.log('warn', 'snapshot chunk dropped: its table is no longer captured', { job: ch.job.id });
      this.generation++;
      ch.closed();
      return;
    }
    if (!ch.open || ch.rows === undefined || ch.invalid || ch.schemaEpoch !== this.schemaChanges) {
      this.props.log('warn', 'snapshot chunk discarded, reading it again', {
        job: ch.job.id,
        reason:
          ch.invalid ??
          (ch.open && ch.rows !== undefined
            ? 'schema change after the table was described, before the window opened'
            : 'high watermark without its low watermark'),
      });
      this.generation++;
      ch.closed();
      return;
    }
    if (ch.shape.pk.length === 0) {
      this.closeKeyless(ch, at);
      return;
    }
    const { emit, dropped } = rowsToEmit(ch.shape, ch.rows, ch.changed);
    const op: ChangeOp = 'read';
    for (const { row, index } of emit) {
      this.props.emit({
        shape: ch.shape,
        op,
        before: null,
        after: row,
        file: at.file,
        pos: at.pos,
        row: index,
        gtid: at.gtid,
        commitMs: at.commitMs,
      });
    }
    const lastRow = ch.rows.at(-1);
    const last = ch.rows.length < ch.limit;
    if (ch.job.where === undefined && ch.low !== undefined) {
      // After the reads (row indexes 0..n-1) at the high watermark: the chunk's key range replaces the replica's.
      const range = (after: RowImage | null, upto: RowImage | null, low: string, row: number) =>
        this.props.emitTableChange({
          db: ch.shape.db,
          table: ch.shape.table,
          op: 'range',
          change: { range: { after, upto, low_position: low } },
          pk: ch.shape.pk,
          file: at.file,
          pos: at.pos,
          row,
          gtid: at.gtid,
          commitMs: at.commitMs,
        });
      const after = ch.after ? keyTupleImage(ch.shape, ch.after.map(decodeKeyValue)) : null;
      const upto =
        !last && lastRow
          ? keyTupleImage(
              ch.shape,
              ch.shape.pk.map((k) => lastRow[k]),
            )
          : null;
      range(after, upto, ch.low, ch.rows.length);
      // The whole table once more at the job's end, from its first chunk's low watermark: needs no key order. (A job
      // of one chunk said it all already; a job resumed from progress saved without its first low watermark cannot.)
      const firstLow = this.current.jobs.find((j) => j.id === ch.job.id)?.lowPosition;
      if (last && after !== null && firstLow !== undefined) range(null, null, firstLow, ch.rows.length + 1);
    }
    this.current = finishChunk(
      this.current,
      ch.job.id,
      {
        lastKey: lastRow ? ch.shape.pk.map((k) => encodeKeyValue(lastRow[k])) : undefined,
        ...(ch.low !== undefined ? { lowPosition: ch.low } : {}),
        read: ch.rows.length,
        emitted: emit.length,
        last,
      },
      now,
    );
    const m = this.props.metrics;
    m.add(ProducerMetric.SnapshotRows, 'Count', emit.length);
    m.add(ProducerMetric.SnapshotRowsSkipped, 'Count', dropped);
    m.add(ProducerMetric.SnapshotChunks, 'Count', 1);
    const job = this.current.jobs.find((j) => j.id === ch.job.id);
    if (job?.status === 'done') {
      this.props.log('info', 'snapshot of a table finished', {
        job: job.id,
        table: `${job.db}.${job.table}`,
        rows: job.rowsEmitted,
        position: formatPosition(at.file, at.pos, 0),
      });
    }
    ch.closed();
  }

  /**
   * The high watermark of a keyless table's whole-table read: discarded and read again when the table changed inside
   * the window; otherwise the table's content replaces the replica's at the watermark (module comment).
   */
  private closeKeyless(ch: OpenChunk, at: SignalRow): void {
    const rows = ch.rows!;
    const now = this.now();
    if (ch.changed.size > 0) {
      const attempts = (this.keylessAttempts.get(ch.job.id) ?? 0) + 1;
      this.keylessAttempts.set(ch.job.id, attempts);
      this.props.metrics.add(ProducerMetric.SnapshotRowsSkipped, 'Count', rows.length);
      if (attempts >= KEYLESS_ATTEMPTS) {
        const why =
          `${ch.shape.db}.${ch.shape.table} has no primary key and changed while it was read, ${attempts} times: ` +
          'it is read whole, between two watermarks, and only a read with no change inside is exact. ' +
          'Run `npx cdc backfill` again at a quieter time, or give the table a primary key';
        this.current = failJob(this.current, ch.job.id, why, now);
        this.props.log('error', 'snapshot of a keyless table failed', { job: ch.job.id, reason: why });
      } else {
        this.props.log('warn', 'keyless table changed while read: reading it again', {
          job: ch.job.id,
          attempt: attempts,
          changes: ch.changed.size,
        });
      }
      this.generation++;
      ch.closed();
      return;
    }
    this.keylessAttempts.delete(ch.job.id);
    const point = { file: at.file, pos: at.pos, gtid: at.gtid, commitMs: at.commitMs };
    this.props.emitTableChange({
      db: ch.shape.db,
      table: ch.shape.table,
      op: 'range',
      change: { range: { after: null, upto: null, low_position: ch.low! } },
      pk: [],
      ...point,
      row: 0,
    });
    rows.forEach((row, index) => {
      this.props.emit({ shape: ch.shape, op: 'read', before: null, after: row, ...point, row: index + 1 });
    });
    this.current = finishChunk(
      this.current,
      ch.job.id,
      { lastKey: undefined, lowPosition: ch.low!, read: rows.length, emitted: rows.length, last: true },
      now,
    );
    const m = this.props.metrics;
    m.add(ProducerMetric.SnapshotRows, 'Count', rows.length);
    m.add(ProducerMetric.SnapshotChunks, 'Count', 1);
    this.props.log('info', 'snapshot of a table finished', {
      job: ch.job.id,
      table: `${ch.shape.db}.${ch.shape.table}`,
      rows: rows.length,
      keyless: true,
      position: formatPosition(at.file, at.pos, 0),
    });
    ch.closed();
  }

  private async loop(): Promise<void> {
    let cursor: ReadCursor | undefined;
    while (!this.stopped) {
      // Re-derive where to read from the progress (not the read-ahead) after a discard or when a job ends.
      if (cursor && (cursor.generation !== this.generation || cursor.exhausted)) {
        await Promise.all(this.chunks.map((c) => c.done));
        cursor = undefined;
        continue;
      }
      if (this.chunks.length >= CHUNKS_IN_FLIGHT) {
        await this.chunks[0]!.done;
        continue;
      }
      const job = nextJob(this.current);
      if (!job) {
        await new Promise<void>((r) => {
          this.wake = r;
        });
        this.wake = undefined;
        continue;
      }
      while (this.props.congested() && !this.stopped) await this.untilDecongested();
      if (this.stopped) return;
      if (!this.props.captures(job.db, job.table)) {
        // Checked per chunk: a table quarantined (or left out by new capture rules) while its job runs stops there.
        const why = `${job.db}.${job.table} is no longer captured (quarantined, or left out by the capture rules)`;
        this.props.log('warn', 'snapshot stopped', { job: job.id, reason: why });
        await Promise.all(this.chunks.map((c) => c.done));
        this.current = failJob(this.current, job.id, why, this.now());
        await this.mark(job.id);
        cursor = undefined;
        continue;
      }
      const described = await this.describe(job);
      const { shape } = described;
      if (!shape || (shape.pk.length === 0 && job.where !== undefined)) {
        const why = !shape
          ? `${job.db}.${job.table} does not exist`
          : `${job.db}.${job.table} has no primary key: it is backfilled whole, never with a WHERE (the rows it selects would be counted twice)`;
        this.props.log('warn', 'snapshot skipped', { job: job.id, reason: why });
        await Promise.all(this.chunks.map((c) => c.done));
        this.current = failJob(this.current, job.id, why, this.now());
        await this.mark(job.id);
        cursor = undefined;
        continue;
      }
      if (job.status === 'pending') {
        let estimate: number;
        try {
          estimate = await this.props.reader.estimate(job.db, job.table, job.where);
        } catch (err) {
          const why = `WHERE ${JSON.stringify(job.where)} rejected by the server: ${(err as Error).message}`;
          this.current = failJob(this.current, job.id, why, this.now());
          this.props.log('warn', 'backfill refused', { job: job.id, reason: why });
          await this.mark(job.id);
          continue;
        }
        this.current = startJob(this.current, job.id, estimate, this.now());
        this.props.log('info', 'snapshot started', {
          job: job.id,
          kind: job.kind,
          table: `${job.db}.${job.table}`,
          estimate,
        });
      } else if (!this.announced.has(job.id)) {
        this.props.log('info', 'snapshot resumed', {
          job: job.id,
          table: `${job.db}.${job.table}`,
          afterKey: job.lastKey ?? null,
          rowsRead: job.rowsRead,
        });
      }
      this.announced.add(job.id);
      if (!cursor || cursor.jobId !== job.id) {
        cursor = { jobId: job.id, generation: this.generation, lastKey: job.lastKey, exhausted: false };
      }
      await this.readChunk(this.current.jobs.find((j) => j.id === job.id)!, shape, described, cursor);
    }
  }

  /** The job's table shape: the cached one while no DDL named the table since it was read (`shapeCache`). */
  private async describe(job: SnapshotJob): Promise<DescribedShape & { shape: TableShape | undefined }> {
    const cached = this.shapeCache;
    if (cached?.jobId === job.id) return { shape: cached.shape, epoch: cached.epoch, cached: true };
    this.shapeCache = undefined;
    this.watched = { db: job.db, table: job.table };
    // Counted before the query: a DDL read while it runs may or may not be in the answer, so it makes the shape stale.
    const epoch = this.schemaChanges;
    const shape = await this.props.reader.describe(job.db, job.table);
    if (shape && epoch === this.schemaChanges) this.shapeCache = { jobId: job.id, shape, epoch };
    return { shape, epoch, cached: false };
  }

  /** Until the core's next sign of decongestion, or 20 ms (the poll, which also lets `stop` end the wait). */
  private async untilDecongested(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const poll = new Promise<void>((r) => {
      timer = setTimeout(r, CONGESTION_POLL_MS);
    });
    try {
      await (this.props.decongested ? Promise.race([this.props.decongested(), poll]) : poll);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A state change made outside the stream reaches the checkpoint with the next boundary: make one now. */
  private async mark(jobId: string): Promise<void> {
    await this.props.writeWatermark('mark', `${jobId}#mark`);
  }

  /** Writes the low watermark, reads the chunk, writes the high watermark; the binlog reader closes it later. */
  private async readChunk(
    job: SnapshotJob,
    shape: TableShape,
    described: DescribedShape,
    cursor: ReadCursor,
  ): Promise<void> {
    const id = `${job.id}#${Math.random().toString(36).slice(2, 10)}`;
    let closed!: () => void;
    const done = new Promise<void>((r) => {
      closed = r;
    });
    const keyless = shape.pk.length === 0;
    const maxRows = this.props.keylessMaxRows ?? KEYLESS_MAX_ROWS;
    const chunkBytes = this.props.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    cursor.limit ??= chunkLimit(this.props.chunkRows, chunkBytes, maxRowBytes(shape));
    const limit = keyless ? maxRows + 1 : cursor.limit;
    const ch: OpenChunk = {
      id,
      generation: cursor.generation,
      job,
      shape,
      after: cursor.lastKey,
      limit,
      open: false,
      changed: new Set(),
      schemaEpoch: described.epoch,
      closed,
      done,
    };
    if (keyless) {
      const attempts = this.keylessAttempts.get(job.id) ?? 0;
      if (attempts > 0) await new Promise((r) => setTimeout(r, attempts * (this.props.keylessRetryMs ?? 200)));
    }
    this.chunks.push(ch);
    await this.props.writeWatermark('low', id);
    let rows: Record<string, unknown>[];
    try {
      rows = await this.props.reader.readChunk(shape, cursor.lastKey, job.where, limit);
    } catch (err) {
      // A cached shape older than a DROP or a column change the binlog reader has not reached yet: describe the
      // table again (the job fails there if it is gone) and read the same chunk; the chunk in flight never opens.
      const errno = (err as { errno?: number }).errno;
      if (!described.cached || (errno !== ER_NO_SUCH_TABLE && errno !== ER_BAD_FIELD_ERROR)) throw err;
      this.chunks.splice(this.chunks.indexOf(ch), 1);
      ch.closed();
      if (this.shapeCache?.shape === shape) this.shapeCache = undefined;
      return;
    }
    if (keyless && rows.length > maxRows) {
      // Too large to hold: the chunk never opens (it is dropped at its high watermark as discarded), the job fails.
      this.chunks.splice(this.chunks.indexOf(ch), 1);
      ch.closed();
      const why =
        `${shape.db}.${shape.table} has no primary key and more than ${maxRows} rows (SNAPSHOT_KEYLESS_MAX_ROWS): ` +
        'it would be read whole, in memory. Give it a primary key, or raise the limit with the memory to match';
      this.current = failJob(this.current, job.id, why, this.now());
      this.props.log('error', 'snapshot of a keyless table refused', { job: job.id, reason: why });
      cursor.exhausted = true;
      await this.mark(job.id);
      return;
    }
    ch.rows = rows;
    await this.props.writeWatermark('high', id);
    const last = rows.at(-1);
    if (last && !keyless) cursor.lastKey = shape.pk.map((k) => encodeKeyValue(last[k]));
    cursor.exhausted = keyless || rows.length < limit;
    // The next chunk is sized by what these rows weighed.
    if (rows.length > 0) cursor.limit = chunkLimit(this.props.chunkRows, chunkBytes, rowsBytes(rows) / rows.length);
  }
}
