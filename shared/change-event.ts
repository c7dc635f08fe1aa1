/**
 * The change-event contract: the one JSON document per changed row that the producer writes to Kinesis, Firehose
 * lands in S3 / the Redshift changelog table, and the merge applies. Both runtimes import this module; the JSON
 * Schema next to it (change-event.schema.json) is the same contract for other consumers and is checked by tests.
 * See docs/event-format.md. Bump EVENT_VERSION on any incompatible change.
 */
export const EVENT_VERSION = 2 as const;
/** Versions a consumer of this contract reads: version 1 events are version 2 events without table-level ops. */
export const READABLE_EVENT_VERSIONS: readonly number[] = [1, 2];

/** insert/update/delete come from the binlog; read is a row emitted by a snapshot or backfill. */
export type RowOp = 'insert' | 'update' | 'delete' | 'read';
/**
 * Table-level events (version 2), ordered by `position` like rows, with null images and a `change`:
 * - `truncate`: every row older than the event is gone (TRUNCATE TABLE);
 * - `drop`: the table's incarnation ends (DROP TABLE, or the old name of a RENAME); rows older than it are gone and
 *   a table created later under the same name starts clean with its own columns;
 * - `rename`: the table was renamed to `change.rename_to`; emitted under the old name (which then ends like a drop);
 *   the new name's replica starts with a `resync` and is filled by a backfill;
 * - `alter`: column changes the replica follows in place (`change.columns`: rename, add with default, drop);
 * - `resync`: the replica is rebuilt: rows older than the event are gone, the schema starts anew from the events
 *   after it, and a backfill follows (incompatible type change, rename target, `npx cdc resync`);
 * - `range`: written after a backfill chunk's `read` rows: keys inside `change.range` that the chunk did not
 *   carry and whose last change is older than the chunk's low watermark are gone from the source.
 */
export type TableOp = 'truncate' | 'drop' | 'rename' | 'alter' | 'resync' | 'range';
export type ChangeOp = RowOp | TableOp;

export const TABLE_OPS: readonly TableOp[] = ['truncate', 'drop', 'rename', 'alter', 'resync', 'range'];

export function isTableOp(op: ChangeOp): op is TableOp {
  return (TABLE_OPS as readonly string[]).includes(op);
}

/** A column value as encoded in the event; see docs/event-format.md for the encoding per MySQL type. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type RowImage = Record<string, JsonValue>;

export interface ColumnMeta {
  /** Column name as in the source. */
  readonly name: string;
  /** Full MySQL column type as `information_schema.COLUMNS.COLUMN_TYPE` spells it, e.g. `decimal(12,2)`, `bigint(20) unsigned`. */
  readonly type: string;
  readonly nullable?: boolean;
}

export interface SourcePosition {
  readonly server_id: number;
  /** Binlog file name, e.g. `mysql-bin.000042`. */
  readonly file: string;
  /** End position of the rows event inside the file (the position a reader resumes at after this event). */
  readonly pos: number;
  /** Index of the row inside its rows event (0-based). */
  readonly row: number;
  /** GTID of the transaction (`domain-server-seq` on MariaDB, `uuid:n` on MySQL), null when GTIDs are off. */
  readonly gtid: string | null;
}

export interface ClaimCheck {
  readonly bucket: string;
  readonly key: string;
  readonly bytes: number;
}

/** One column change of an `alter` event, in statement order. */
export type ColumnChange =
  | { readonly kind: 'rename_column'; readonly from: string; readonly to: string }
  /**
   * A column added with the value every existing row received: `default` is encoded like an event value of `type`
   * (null when the column was added without a default, or with DEFAULT NULL). Defaults that are not a constant
   * (expressions) are not sent here: the producer backfills the table instead.
   */
  | { readonly kind: 'add_column'; readonly name: string; readonly type: string; readonly default: JsonValue }
  | { readonly kind: 'drop_column'; readonly name: string };

/** A backfill chunk's key range: keys after `after` (exclusive, null = from the start) up to `upto` (inclusive). */
export interface KeyRange {
  readonly after: RowImage | null;
  readonly upto: RowImage | null;
  /** Position of the chunk's low watermark: a replica row older than it and absent from the chunk is gone. */
  readonly low_position: string;
}

/** What a table-level event says; which fields are present depends on `op`. */
export interface TableChange {
  /** The statement as the binlog carries it (truncate, drop, rename, alter). */
  readonly statement?: string;
  readonly rename_to?: { readonly db: string; readonly table: string };
  readonly columns?: readonly ColumnChange[];
  readonly range?: KeyRange;
  /** Why a resync was started (human text). */
  readonly reason?: string;
}

export interface ChangeEvent {
  readonly v: 1 | typeof EVENT_VERSION;
  readonly op: ChangeOp;
  readonly db: string;
  readonly table: string;
  /** Primary key columns in key order; empty when the table has no primary key. */
  readonly pk: readonly string[];
  readonly columns: readonly ColumnMeta[];
  /** Row before the change (update, delete), null for insert/read. */
  readonly before: RowImage | null;
  /** Row after the change (insert, update, read), null for delete. */
  readonly after: RowImage | null;
  readonly source: SourcePosition;
  /**
   * Total order of every event of one server: `FFFFFF.PPPPPPPPPPPP.RRRRRRRR` (binlog file sequence, event end
   * position, row index), zero-padded so that plain string comparison orders events. See `formatPosition`.
   */
  readonly position: string;
  /** Transaction id: the GTID, or `file:pos` of the transaction's first event when GTIDs are off. */
  readonly tx: string;
  /** Commit time of the transaction on the source, epoch milliseconds (binlog timestamps have second precision). */
  readonly ts_ms: number;
  /** When the producer emitted the event, epoch milliseconds. */
  readonly emitted_ms: number;
  /** Present when the full event did not fit a Kinesis record: before/after are null here and live in S3. */
  readonly claim_check?: ClaimCheck;
  /** Table-level events only (`isTableOp(op)`): what happened to the table. Row events have none. */
  readonly change?: TableChange;
}

const FILE_DIGITS = 6;
const POS_DIGITS = 12;
const ROW_DIGITS = 8;

/** Characters of every `position` (28: `FFFFFF.PPPPPPPPPPPP.RRRRRRRR`): the width of each warehouse column holding one. */
export const POSITION_CHARS = FILE_DIGITS + 1 + POS_DIGITS + 1 + ROW_DIGITS;
/** The SQL type of a column holding a position, the same in Redshift and PostgreSQL (fixed width, ordered as text). */
export const POSITION_SQL_TYPE = `CHAR(${POSITION_CHARS})`;
/** What a position looks like; change-event.schema.json spells the same pattern (a test holds them equal). */
export const POSITION_PATTERN = new RegExp(`^\\d{${FILE_DIGITS}}\\.\\d{${POS_DIGITS}}\\.\\d{${ROW_DIGITS}}$`);

/** Binlog file sequence number from its name (`mysql-bin.000042` → 42). */
export function binlogSequence(file: string): number {
  const m = /\.(\d+)$/.exec(file);
  if (!m) throw new Error(`binlog file name without a numeric suffix: ${JSON.stringify(file)}`);
  return Number(m[1]);
}

let lastFile = '';
let lastFilePart = '';

/** Formats the totally ordered, string-comparable position of one row event. */
export function formatPosition(file: string, pos: number, row: number): string {
  if (file !== lastFile) {
    // Called for every event, and nearly always with the file of the previous one.
    lastFilePart = String(binlogSequence(file)).padStart(FILE_DIGITS, '0');
    lastFile = file;
  }
  return `${lastFilePart}.${String(pos).padStart(POS_DIGITS, '0')}.${String(row).padStart(ROW_DIGITS, '0')}`;
}

export function comparePositions(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The row image that identifies the row: after for insert/update/read, before for delete; null for table events and
 * claim-check pointers (their images are in S3).
 */
export function keyImage(event: ChangeEvent): RowImage | null {
  return event.op === 'delete' ? event.before : event.after;
}

/** The row's primary key: its key columns' values in `keyImage`, in key order (null where there is no image). */
export function keyValues(event: ChangeEvent): JsonValue[] {
  const image = keyImage(event);
  return event.pk.map((k) => image?.[k] ?? null);
}

/** True for a claim-check pointer: the full event was too large for a Kinesis record and lies in S3. */
export function isClaimCheckPointer(event: ChangeEvent): event is ChangeEvent & { readonly claim_check: ClaimCheck } {
  return event.claim_check !== undefined;
}

/** The pointer that travels in place of an event too large for a Kinesis record: no images, where the event lies. */
export function claimCheckPointer(event: ChangeEvent, claimCheck: ClaimCheck): ChangeEvent {
  return { ...event, before: null, after: null, claim_check: claimCheck };
}
