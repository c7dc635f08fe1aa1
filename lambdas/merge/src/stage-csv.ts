/**
 * Turns change events into the staging CSV (pure): one row per event (keyed tables) or per image delta (keyless
 * tables: delete/update-before −1, insert/read/update-after +1), values converted from their event encoding
 * (docs/event-format.md) to what the warehouse's COPY reads. NULL is written as an unquoted \N; every other text
 * value is quoted, so an empty string stays an empty string.
 */
import { type ChangeEvent, type JsonValue, keyImage, type RowImage } from '../../../shared/change-event';
import { unrepresentableText } from '../../../shared/type-mapping';
import { type DateValueOptions, dateValueOptions, unrepresentableDate } from './date-values';
import type { Dialect } from './dialect';
import { PoisonBatchError } from './errors';
import type { ReplicaColumn, TableModel } from './table-model';
import { byteLimit, limitValue } from './value-limits';

export const CSV_NULL = '\\N';

function quote(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}

const INT_TEXT = /^-?\d+$/;
const DECIMAL_TEXT = /^-?\d+(?:\.\d+)?$/;

/** CSV field for one value of one column. */
export function csvField(
  col: ReplicaColumn,
  value: JsonValue | undefined,
  d: Dialect,
  where: string,
  dates: DateValueOptions = dateValueOptions(),
): string {
  if (value === null || value === undefined) return CSV_NULL;
  const bad = (why: string): never => {
    throw new PoisonBatchError(
      'SCHEMA_INCOMPATIBLE',
      `${where} column ${JSON.stringify(col.name)} (${col.mysqlType}): ${why}: ${JSON.stringify(value).slice(0, 100)}`,
    );
  };
  // A date no warehouse calendar has becomes NULL (date-values.ts); the event keeps the original text.
  const nulled = (text: string): boolean => {
    const reason = unrepresentableDate(text);
    if (reason) dates.onNulled?.({ where, column: col.name, value: text, reason });
    return reason !== undefined;
  };
  switch (col.kind) {
    case 'number':
      if (typeof value === 'number' && Number.isFinite(value)) return String(value);
      if (typeof value === 'string' && DECIMAL_TEXT.test(value)) return value;
      return bad('not a number');
    case 'int-string':
      if (typeof value === 'string' && INT_TEXT.test(value)) return value;
      if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
      return bad('not an integer');
    case 'decimal-string':
      if (typeof value === 'string' && DECIMAL_TEXT.test(value)) return value;
      if (typeof value === 'number' && Number.isFinite(value)) return String(value);
      return bad('not a decimal');
    case 'date':
    case 'datetime':
      if (typeof value !== 'string') return bad('not a date string');
      return nulled(value) ? CSV_NULL : quote(value);
    case 'timestamp': {
      if (typeof value !== 'string') return bad('not a timestamp string');
      if (nulled(value)) return CSV_NULL;
      // "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" → "YYYY-MM-DD HH:MM:SS[.ffffff]+00", which both COPYs read as UTC.
      return quote(value.replace('T', ' ').replace(/Z$/, '+00'));
    }
    case 'base64':
      if (typeof value !== 'string') return bad('not base64 text');
      return quote(d.bytesCsv(Buffer.from(value, 'base64')));
    case 'json':
      return quote(JSON.stringify(value));
    case 'string':
      // MySQL text may hold U+0000; neither warehouse stores it (PostgreSQL refuses the byte, Redshift's COPY fails
      // on it): NULL, like an impossible date, rather than a COPY retried forever or a silently altered text.
      if (typeof value === 'string' && unrepresentableText(value)) {
        dates.onNulled?.({ where, column: col.name, value, reason: 'NUL character' });
        return CSV_NULL;
      }
      return quote(typeof value === 'string' ? value : String(value));
    default: // time, bits
      return quote(typeof value === 'string' ? value : String(value));
  }
}

/** True when an update's before and after images have different primary key values. */
export function keyChanged(pk: readonly string[], before: RowImage, after: RowImage): boolean {
  return pk.some((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
}

/** An update that moves its row to another key under `pk`: staged as a delete of the old key and a write of the new. */
function movesKey(e: ChangeEvent, pk: readonly string[]): e is ChangeEvent & { before: RowImage; after: RowImage } {
  return e.op === 'update' && e.before !== null && e.after !== null && keyChanged(pk, e.before, e.after);
}

/** Whether a keyed table's event stages a delete: a delete, or an update that moves its row to another key. */
export function stagesDelete(e: ChangeEvent, pk: readonly string[]): boolean {
  return e.op === 'delete' || movesKey(e, pk);
}

/**
 * Why a keyed row's key cannot identify it in the warehouse, or undefined: a key value the staging would turn into NULL
 * (an impossible date, text with U+0000) or cut (text over its Redshift column's bytes).
 */
export function keyProblem(model: TableModel, image: RowImage, d: Dialect): string | undefined {
  for (const k of model.pk) {
    const col = model.columns.find((c) => c.name === k);
    const value = image[k];
    if (!col || typeof value !== 'string') continue;
    if (col.kind === 'date' || col.kind === 'datetime' || col.kind === 'timestamp') {
      const reason = unrepresentableDate(value);
      if (reason) return `${reason} in key column ${k}`;
    } else if (col.kind === 'string') {
      if (unrepresentableText(value)) return `NUL character in key column ${k}`;
      const limit = byteLimit(col, d.warehouse);
      const bytes = Buffer.byteLength(value);
      if (limit && limit.what === 'text' && bytes > limit.limit)
        return `key column ${k}: ${bytes} bytes > ${limit.limit} its Redshift ${limit.type} holds`;
    }
  }
  return undefined;
}

/** A value's CSV field, given the event and the image it comes from (for messages, built only when needed). */
type ValueFormatter = (value: JsonValue | undefined, e: ChangeEvent, image: RowImage) => string;

const where = (e: ChangeEvent): string => `${e.db}.${e.table} at ${e.position}`;

/** `quote` without the scan-and-replace when the text holds no quote (nearly always). */
function quoteFast(text: string): string {
  return text.includes('"') ? quote(text) : `"${text}"`;
}

/**
 * True when `text` starts with a date every calendar has (year 0001–9999, month 01–12, day 01–28): the common case,
 * decided without the regular expression. Anything else goes through `unrepresentableDate`.
 */
function plainDate(text: string): boolean {
  if (text.length < 10 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45) return false;
  let year = 0;
  for (let i = 0; i < 4; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return false;
    year = year * 10 + c;
  }
  const m1 = text.charCodeAt(5) - 48;
  const m2 = text.charCodeAt(6) - 48;
  const d1 = text.charCodeAt(8) - 48;
  const d2 = text.charCodeAt(9) - 48;
  if (m1 < 0 || m1 > 1 || m2 < 0 || m2 > 9 || d1 < 0 || d1 > 2 || d2 < 0 || d2 > 9) return false;
  const month = m1 * 10 + m2;
  const day = d1 * 10 + d2;
  return year > 0 && month >= 1 && month <= 12 && day >= 1 && day <= 28;
}

/**
 * The formatter of one column, built once per batch: the common values (those `csvField` would return unchanged
 * after `limitValue`) take a short path; every other value (NULL excepted) goes the general way, `limitValue` then
 * `csvField`, so the output is the same byte for byte (test/merge/stage-csv.test.ts compares them).
 */
function columnFormatter(
  col: ReplicaColumn,
  pk: readonly string[],
  d: Dialect,
  dates: DateValueOptions,
): ValueFormatter {
  const limit = byteLimit(col, d.warehouse);
  // Text of n UTF-16 units has at most 3n UTF-8 bytes: within the limit without counting.
  const textFits =
    limit === undefined
      ? (_v: string) => true
      : limit.what === 'text'
        ? (v: string) => v.length * 3 <= limit.limit
        : (_v: string) => false;
  const general: ValueFormatter = (value, e, image) => {
    const at = where(e);
    const ref = { where: at, key: pk.map((k) => image[k]) };
    return csvField(col, limitValue(col, value, d.warehouse, ref), d, at, dates);
  };
  const numberish =
    col.kind === 'number' || col.kind === 'decimal-string'
      ? DECIMAL_TEXT
      : col.kind === 'int-string'
        ? INT_TEXT
        : undefined;
  if (numberish) {
    const safeOnly = col.kind === 'int-string';
    return (value, e, image) => {
      if (value === null || value === undefined) return CSV_NULL;
      if (typeof value === 'number') {
        if ((safeOnly ? Number.isSafeInteger(value) : Number.isFinite(value)) && limit === undefined)
          return String(value);
      } else if (typeof value === 'string' && textFits(value) && numberish.test(value)) return value;
      return general(value, e, image);
    };
  }
  switch (col.kind) {
    case 'date':
    case 'datetime':
      return (value, e, image) => {
        if (value === null || value === undefined) return CSV_NULL;
        if (typeof value === 'string' && textFits(value) && plainDate(value)) return quoteFast(value);
        return general(value, e, image);
      };
    case 'timestamp':
      return (value, e, image) => {
        if (value === null || value === undefined) return CSV_NULL;
        if (typeof value === 'string' && textFits(value) && plainDate(value))
          return quoteFast(value.replace('T', ' ').replace(/Z$/, '+00'));
        return general(value, e, image);
      };
    case 'string':
      return (value, e, image) => {
        if (value === null || value === undefined) return CSV_NULL;
        if (typeof value === 'string' && textFits(value) && !value.includes('\u0000')) return quoteFast(value);
        return general(value, e, image);
      };
    case 'time':
    case 'bits':
      return (value, e, image) => {
        if (value === null || value === undefined) return CSV_NULL;
        if (typeof value === 'string' && textFits(value)) return quoteFast(value);
        return general(value, e, image);
      };
    default: // base64, json: converted whatever their size
      return (value, e, image) => (value === null || value === undefined ? CSV_NULL : general(value, e, image));
  }
}

export interface StageCsvOptions {
  /**
   * Stage only the newest change (by position) of each primary key, so the warehouse needs no de-duplication of its
   * own (`MergeOptions.stagedLatest`). Keys are compared by their CSV text, which is the value the warehouse loads.
   * Ignored for a table without a primary key. @default false
   */
  readonly latestPerKey?: boolean;
  /** Bytes per chunk yielded by `stageCsvChunks` (a longer row gets a chunk of its own). @default 1048576 */
  readonly chunkBytes?: number;
}

/** One row image to stage: its event, the image and the op it is staged as. */
interface StagedImage {
  readonly e: ChangeEvent;
  readonly image: RowImage;
  readonly op: string;
  readonly delta?: number;
}

/**
 * The staging CSV for one table's events (column order: `stageColumns(model)`) as UTF-8, in chunks of whole rows, so
 * a warehouse that streams its load (PostgreSQL's COPY FROM STDIN) parses one chunk while the next is built.
 * Column formatters are built once per call; the text is `buildStageCsv`'s.
 */
export function* stageCsvChunks(
  events: readonly ChangeEvent[],
  model: TableModel,
  d: Dialect,
  opts: StageCsvOptions = {},
): Generator<Buffer, void, undefined> {
  const dates = dateValueOptions();
  const formatters = model.columns.map((c) => columnFormatter(c, model.pk, d, dates));
  const names = model.columns.map((c) => c.name);
  const keyless = model.pk.length === 0;
  // Only string and date keys can be unusable (keyProblem): other tables skip the check.
  const checkKeys = model.pk.some((k) => {
    const kind = model.columns.find((c) => c.name === k)?.kind;
    return kind === 'string' || kind === 'date' || kind === 'datetime' || kind === 'timestamp';
  });
  const staged = (e: ChangeEvent, image: RowImage): boolean => {
    const problem = checkKeys ? keyProblem(model, image, d) : undefined;
    if (problem === undefined) return true;
    // A key the warehouse cannot hold as it is: the row is skipped and reported, never merged under a NULL or cut key.
    dates.onRowSkipped?.({ where: where(e), key: model.pk.map((k) => image[k]), reason: problem });
    return false;
  };
  const images: StagedImage[] = [];
  const latest = new Map<string, StagedImage>();
  const keyFormatters = model.pk.map((k) => ({ k, f: formatters[names.indexOf(k)]! }));
  const add = (s: StagedImage) => {
    if (!opts.latestPerKey) {
      images.push(s);
      return;
    }
    let key = '';
    for (const { k, f } of keyFormatters) key += `${f(s.image[k], s.e, s.image)},`;
    const prev = latest.get(key);
    if (!prev || s.e.position >= prev.e.position) latest.set(key, s);
  };
  for (const e of events) {
    if (keyless) {
      if (e.before && (e.op === 'update' || e.op === 'delete'))
        images.push({ e, image: e.before, op: e.op, delta: -1 });
      if (e.after && e.op !== 'delete') images.push({ e, image: e.after, op: e.op, delta: 1 });
      continue;
    }
    // An update that changes the key deletes the old key and writes the new one, at the same position (so the keys
    // table also remembers the old key as deleted there, and a late older change cannot revive it).
    if (movesKey(e, model.pk) && staged(e, e.before)) add({ e, image: e.before, op: 'delete' });
    const image = keyImage(e);
    if (image && staged(e, image)) add({ e, image, op: e.op });
  }
  const rows: Iterable<StagedImage> = opts.latestPerKey && !keyless ? latest.values() : images;
  // Each row is written into a chunk buffer as soon as it is built: appending to one long string instead leaves
  // ropes for the garbage collector, which cost more than formatting the values (measured: docs/benchmarks.md).
  const chunkBytes = opts.chunkBytes ?? 1 << 20;
  let buf = Buffer.allocUnsafe(chunkBytes);
  let used = 0;
  let lastMs = Number.NaN;
  let lastTs = '';
  for (const { e, image, op, delta } of rows) {
    let line = '';
    for (let i = 0; i < formatters.length; i++) line += `${formatters[i]!(image[names[i]!], e, image)},`;
    if (e.ts_ms !== lastMs) {
      lastMs = e.ts_ms;
      lastTs = quote(new Date(e.ts_ms).toISOString().replace('T', ' ').replace('Z', '+00'));
    }
    line += `${quoteFast(e.position)},${quoteFast(op)},${lastTs}`;
    line += delta === undefined ? '\n' : `,${delta}\n`;
    // A UTF-16 unit is at most 3 UTF-8 bytes: the line fits when 3 × its length does.
    if (used + line.length * 3 > buf.length) {
      if (used > 0) yield buf.subarray(0, used);
      buf = Buffer.allocUnsafe(Math.max(chunkBytes, line.length * 3));
      used = 0;
    }
    used += buf.write(line, used, 'utf8');
  }
  if (used > 0) yield buf.subarray(0, used);
}

/** The staging CSV for one table's events as one text (column order: `stageColumns(model)`). */
export function buildStageCsv(
  events: readonly ChangeEvent[],
  model: TableModel,
  d: Dialect,
  opts: StageCsvOptions = {},
): string {
  return Buffer.concat([...stageCsvChunks(events, model, d, opts)]).toString('utf8');
}
