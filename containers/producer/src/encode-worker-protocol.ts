/**
 * What travels between the producer's main thread and its encode worker (encode-worker.ts), and the encoding itself
 * (pure, so the worker and the tests run the same function). Rows travel flat: per row a few scalars and its values in
 * the plan's column order, no column names and no row objects, because a structured clone of objects costs about as
 * much as encoding them (measured: 1.1 µs per 6-column row object, 0.2 µs for the same values in one flat array). The
 * answer is one buffer holding every record of the batch, end to end, transferred (not copied) back.
 */
import {
  type ChangeEvent,
  type ChangeOp,
  EVENT_VERSION,
  formatPosition,
  isTableOp,
  type JsonValue,
  keyValues,
} from '../../../shared/change-event';
import { assembleImageFromValues, assembleValue, rowEventFromImages, type ShapePlan } from './event-assembly';
import { serializeEvent, type TableShape } from './event-encoder';
import { RecordBuffer } from './record-buffer';

export type PartitionKeyMode = 'table' | 'table-pk';

/** A table shape as the worker knows it: what its events need, under a number the batches refer to. */
export interface WorkerShape {
  readonly id: number;
  readonly shape: Pick<TableShape, 'db' | 'table' | 'pk'>;
  readonly plan: Pick<ShapePlan, 'columns' | 'outgoing'>;
}

/** Row flags: which images the row has. */
export const HAS_BEFORE = 1;
export const HAS_AFTER = 2;

/**
 * A batch of rows. The per-row fields are typed arrays, and the texts they share (ops, binlog file names, GTIDs) are
 * sent once per batch in `strings` and referred to by index: a structured clone writes every element of a plain array
 * one by one, and every string again each time it occurs (measured with v8.serialize and deserialize, 512 snapshot
 * rows: 1.2 µs a row as plain arrays, 0.6 µs as typed arrays and indexes, of which 0.5 µs are the values).
 */
export interface EncodeBatch {
  readonly id: number;
  /** Shapes first used in this batch (the worker keeps them for later batches). */
  readonly shapes: WorkerShape[];
  /** The batch's distinct ops, binlog file names and GTIDs. */
  readonly strings: string[];
  /** Per row, its op: an index into `strings`. */
  readonly op: Uint32Array;
  readonly shape: Uint32Array;
  readonly flags: Uint8Array;
  /** Per row, its binlog file: an index into `strings`. */
  readonly file: Uint32Array;
  readonly pos: Float64Array;
  readonly row: Float64Array;
  /** Per row, its GTID: an index into `strings`, or -1 for none. */
  readonly gtid: Int32Array;
  readonly commitMs: Float64Array;
  /** Each row's before image's values then its after image's, in its plan's column order. */
  readonly values: unknown[];
}

export interface EncodedBatch {
  readonly id: number;
  /** Every record's bytes (the event's JSON and a newline), end to end. */
  readonly data: ArrayBuffer;
  /** Where each record ends in `data`. */
  readonly ends: Uint32Array;
  /** Each record's partition key; absent in `table` mode (the key is the shape's table). */
  readonly keys?: string[];
}

export interface EncodeFailure {
  readonly id: number;
  /** The row (index in the batch) whose encoding threw, and the message it threw. */
  readonly index: number;
  readonly message: string;
}

/** Sent once, when the worker has loaded and takes batches. */
export interface WorkerReady {
  readonly ready: true;
}

export type WorkerAnswer = EncodedBatch | EncodeFailure | WorkerReady;

export interface WorkerInit {
  readonly serverId: number;
  readonly partitionKeyMode: PartitionKeyMode;
}

/** The partition key of an event: its table, or (`table-pk`) its table and key values, at most 256 characters. */
export function partitionKeyOf(e: ChangeEvent, mode: PartitionKeyMode): string {
  const base = `${e.db}.${e.table}`;
  // Table-level events go with the table's name (a range event has no image to spread by).
  if (mode === 'table' || e.pk.length === 0 || isTableOp(e.op)) return base;
  return `${base}#${JSON.stringify(keyValues(e))}`.slice(0, 256);
}

/**
 * A structured clone turns a Buffer into a plain Uint8Array: the value encoders tell bytes apart with
 * `Buffer.isBuffer`, so bytes are made a Buffer again (a view, no copy).
 */
function revive(v: unknown): unknown {
  return v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v;
}

/**
 * A shape's event text compiled once: everything of a row event's JSON that does not change from row to row, so a
 * row's text is a few concatenations of `JSON.stringify` of single values, with no image or event object built.
 * Byte for byte `serializeEvent` of the object path (test/producer/encode-worker.test.ts compares them per type).
 */
export interface CompiledShape {
  readonly s: WorkerShape;
  /** Per op: `{"v":…,"op":…,"db":…,"table":…,"pk":…,"columns":…,"before":`. */
  readonly head: Map<string, string>;
  /** `head` as UTF-8 bytes, per op: copied into a batch's buffer instead of transcoded for every row. */
  readonly headBytes: Map<string, Buffer>;
  /** Per column: `{"name":` for the first, `,"name":` for the others. */
  readonly keys: string[];
  /** Where each key column is among the outgoing columns (-1: not sent, its key value is null). */
  readonly pkAt: number[];
  /**
   * False when a column name would not keep its place or would not be a key in `JSON.stringify` of an object (an
   * array index such as `1` is listed first; `__proto__` is not an own property): those shapes take the object path.
   */
  readonly direct: boolean;
}

export function compileShape(s: WorkerShape): CompiledShape {
  const names = s.plan.columns.map((c) => c.name);
  return {
    s,
    head: new Map(),
    headBytes: new Map(),
    keys: names.map((n, i) => `${i === 0 ? '{' : ','}${JSON.stringify(n)}:`),
    pkAt: s.shape.pk.map((k) => names.indexOf(k)),
    direct: names.every((n) => n !== '__proto__' && !/^(0|[1-9]\d{0,9})$/.test(n)),
  };
}

export function headBytesOf(cs: CompiledShape, op: string): Buffer {
  let bytes = cs.headBytes.get(op);
  if (bytes === undefined) {
    bytes = Buffer.from(headOf(cs, op));
    cs.headBytes.set(op, bytes);
  }
  return bytes;
}

export function headOf(cs: CompiledShape, op: string): string {
  let head = cs.head.get(op);
  if (head === undefined) {
    const { db, table, pk } = cs.s.shape;
    head =
      `{"v":${EVENT_VERSION},"op":${JSON.stringify(op)},"db":${JSON.stringify(db)},"table":${JSON.stringify(table)}` +
      `,"pk":${JSON.stringify(pk)},"columns":${JSON.stringify(cs.s.plan.outgoing)},"before":`;
    cs.head.set(op, head);
  }
  return head;
}

/** `JSON.stringify` of a number as a member of an object (not finite → null). */
const num = (n: number): string => (Number.isFinite(n) ? String(n) : 'null');

/** An image's values (encoded, rules applied) and its JSON; undefined when a value has no JSON (the object path). */
function imageText(cs: CompiledShape, values: readonly unknown[], at: number, out: JsonValue[]): string | undefined {
  const columns = cs.s.plan.columns;
  if (columns.length === 0) return '{}';
  let text = '';
  for (let i = 0; i < columns.length; i++) {
    const v = assembleValue(columns[i]!, values[at + i]);
    const json = JSON.stringify(v) as string | undefined;
    if (json === undefined) return undefined;
    out[i] = v;
    text += cs.keys[i]! + json;
  }
  return `${text}}`;
}

function keyOf(cs: CompiledShape, image: readonly JsonValue[] | null): string {
  const { db, table } = cs.s.shape;
  return `${db}.${table}#${JSON.stringify(cs.pkAt.map((i) => (image && i >= 0 ? (image[i] ?? null) : null)))}`.slice(
    0,
    256,
  );
}

/**
 * The text of a record that its position fixes (`source` but its row, `position` but its row part, `tx`), written once
 * per position instead of once per row: every row of a snapshot chunk shares one position, and so does every row of a
 * binlog event. Measured on the encoding of 200k snapshot rows alone: 0.39 → 0.32 s.
 */
interface SourceText {
  readonly serverId: number;
  readonly file: string;
  readonly pos: number;
  readonly gtid: string | null;
  /** `,"source":{"server_id":…,"file":…,"pos":…,"row":` */
  readonly head: string;
  /** `,"gtid":…},"position":"<file part>.<pos part>.` */
  readonly middle: string;
  /** Digits of the row part of `position` (formatPosition's). */
  readonly rowDigits: number;
  /** `","tx":…,"ts_ms":` */
  readonly tail: string;
}

let lastSource: SourceText | undefined;

function sourceText(serverId: number, file: string, pos: number, gtid: string | null): SourceText {
  const l = lastSource;
  if (l !== undefined && l.pos === pos && l.file === file && l.gtid === gtid && l.serverId === serverId) return l;
  // formatPosition stays the one definition of a position: its row part is what follows the last dot.
  const position = formatPosition(file, pos, 0);
  const dot = position.lastIndexOf('.') + 1;
  lastSource = {
    serverId,
    file,
    pos,
    gtid,
    head: `,"source":{"server_id":${num(serverId)},"file":${JSON.stringify(file)},"pos":${num(pos)},"row":`,
    middle: `,"gtid":${JSON.stringify(gtid)}},"position":"${position.slice(0, dot)}`,
    rowDigits: position.length - dot,
    tail: `","tx":${JSON.stringify(gtid ?? `${file}:${pos}`)},"ts_ms":`,
  };
  return lastSource;
}

/** The fields of a row event besides its images. */
export interface RowFields {
  readonly op: ChangeOp;
  readonly file: string;
  readonly pos: number;
  readonly row: number;
  readonly gtid: string | null;
  readonly commitMs: number;
}

/**
 * A row's record, written from the shape's template, less the shape's head (`headOf`, `headBytesOf`): the text that
 * follows the head in the record (the event's JSON and a newline) and, in `table-pk` mode, its partition key. `values`
 * holds the before image's values at `beforeAt` and the after image's at `afterAt` (-1: no such image), in the plan's
 * column order. Undefined when the row must take the object path (a value with no JSON). Used by the worker and by the
 * main thread's own encoding, which copy the head's bytes and transcode only this part (about half of a record of the
 * benchmark's table).
 */
export function directParts(
  init: WorkerInit,
  cs: CompiledShape,
  r: RowFields,
  values: readonly unknown[],
  beforeAt: number,
  afterAt: number,
  now: number,
  scratch: [JsonValue[], JsonValue[]],
): { rest: string; key: string | undefined } | undefined {
  const before = beforeAt >= 0 ? imageText(cs, values, beforeAt, scratch[0]) : 'null';
  const after = afterAt >= 0 ? imageText(cs, values, afterAt, scratch[1]) : 'null';
  if (before === undefined || after === undefined) return undefined;
  const { op, row } = r;
  const at = sourceText(init.serverId, r.file, r.pos, r.gtid);
  const rest =
    `${before},"after":${after}${at.head}${num(row)}${at.middle}` +
    `${String(row).padStart(at.rowDigits, '0')}${at.tail}${r.commitMs},"emitted_ms":${now}}\n`;
  let key: string | undefined;
  if (init.partitionKeyMode !== 'table' && cs.s.shape.pk.length > 0 && !isTableOp(op)) {
    const image = op === 'delete' ? beforeAt : afterAt;
    key = keyOf(cs, image < 0 ? null : op === 'delete' ? scratch[0] : scratch[1]);
  }
  return { rest, key };
}

/** Bytes per record of the last batch encoded here: what the next batch's buffer is sized by. */
let bytesPerRow = 1024;

/**
 * Encodes a batch: byte for byte what the main thread's path (`serializeEvent` of `EventAssembler.rowEvent`) writes.
 * @throws an `EncodeError` naming the row whose value could not be encoded
 */
export function encodeBatch(
  init: WorkerInit,
  shapes: ReadonlyMap<number, WorkerShape>,
  b: EncodeBatch,
  compiled: Map<number, CompiledShape> = new Map(),
): EncodedBatch {
  const n = b.op.length;
  const ends = new Uint32Array(n);
  const byKey = init.partitionKeyMode !== 'table';
  const keys = byKey ? new Array<string>(n) : undefined;
  const out = new RecordBuffer(n * bytesPerRow);
  let at = 0;
  const scratch: [JsonValue[], JsonValue[]] = [[], []];
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    let cs = compiled.get(b.shape[i]!);
    if (!cs) {
      const s = shapes.get(b.shape[i]!);
      if (!s) throw new EncodeError(i, `shape ${b.shape[i]} was never sent to the worker`);
      cs = compileShape(s);
      compiled.set(s.id, cs);
    }
    const s = cs.s;
    const width = s.plan.columns.length;
    const flags = b.flags[i]!;
    const op = b.strings[b.op[i]!] as ChangeOp;
    const file = b.strings[b.file[i]!]!;
    const pos = b.pos[i]!;
    const g = b.gtid[i]!;
    const gtid = g < 0 ? null : b.strings[g]!;
    const images = (flags & HAS_BEFORE ? 1 : 0) + (flags & HAS_AFTER ? 1 : 0);
    /** The shape's head, already bytes, when `text` is only what follows it (the template path). */
    let head: Buffer | undefined;
    let text: string | undefined;
    let key: string | undefined;
    try {
      for (let j = at; j < at + images * width; j++) b.values[j] = revive(b.values[j]);
      const beforeAt = at;
      const afterAt = flags & HAS_BEFORE ? at + width : at;
      if (cs.direct) {
        const r = directParts(
          init,
          cs,
          { op, file, pos, row: b.row[i]!, gtid, commitMs: b.commitMs[i]! },
          b.values,
          flags & HAS_BEFORE ? beforeAt : -1,
          flags & HAS_AFTER ? afterAt : -1,
          now,
          scratch,
        );
        if (r) {
          head = headBytesOf(cs, op);
          text = r.rest;
          key = r.key;
        }
      }
      if (text === undefined) {
        const before = flags & HAS_BEFORE ? assembleImageFromValues(s.plan as ShapePlan, b.values, beforeAt) : null;
        const after = flags & HAS_AFTER ? assembleImageFromValues(s.plan as ShapePlan, b.values, afterAt) : null;
        const event: ChangeEvent = rowEventFromImages(
          init.serverId,
          s.shape,
          s.plan,
          { op, file, pos, row: b.row[i]!, gtid, commitMs: b.commitMs[i]! },
          before,
          after,
        );
        text = `${serializeEvent(event)}\n`;
        if (byKey) key = partitionKeyOf(event, init.partitionKeyMode);
      }
    } catch (err) {
      throw new EncodeError(i, (err as Error).message);
    }
    at += images * width;
    out.write(head, text);
    ends[i] = out.used;
    if (keys) keys[i] = key ?? `${s.shape.db}.${s.shape.table}`;
  }
  if (n > 0) bytesPerRow = out.used / n;
  return { id: b.id, data: out.transferable(), ends, ...(keys ? { keys } : {}) };
}

export class EncodeError extends Error {
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(message);
    this.name = 'EncodeError';
  }
}
