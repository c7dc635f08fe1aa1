/**
 * Turns decoded binlog rows into change events with exact values (docs/event-format.md). zongji is configured to
 * hand over values without lossy conversions (DECIMAL as exact strings, 64-bit integers beyond 2^53 as strings,
 * DATE/DATETIME/TIMESTAMP as strings, TIMESTAMP rendered in UTC); each value is encoded by shared/value-encoding.ts,
 * which fixes each column's JSON type per MySQL type (shared/type-mapping.ts `jsonKind`).
 */
import {
  type ChangeEvent,
  type ChangeOp,
  type ColumnMeta,
  EVENT_VERSION,
  formatPosition,
  type RowImage,
} from '../../../shared/change-event';
import { encodeValue } from '../../../shared/value-encoding';

/** One value's encoding lives in shared/ (the CLI's validation encodes source values with it too). */
export { encodeValue };

export interface TableShape {
  readonly db: string;
  readonly table: string;
  /** Column names and `COLUMN_TYPE` texts in table order. */
  readonly columns: readonly ColumnMeta[];
  /** Primary key column names in key order (empty when the table has none). */
  readonly pk: readonly string[];
}

export interface SourceRef {
  readonly serverId: number;
  readonly file: string;
  /** End position of the rows event. */
  readonly pos: number;
  readonly gtid: string | null;
  readonly tx: string;
  readonly commitMs: number;
}

export function encodeImage(shape: TableShape, row: Record<string, unknown>): RowImage {
  const out: RowImage = {};
  for (const c of shape.columns) out[c.name] = encodeValue(c.type, row[c.name]);
  return out;
}

export function buildEvent(
  shape: Pick<TableShape, 'db' | 'table' | 'pk'>,
  op: ChangeOp,
  before: RowImage | null,
  after: RowImage | null,
  src: SourceRef,
  row: number,
  columns: readonly ColumnMeta[],
): ChangeEvent {
  return {
    v: EVENT_VERSION,
    op,
    db: shape.db,
    table: shape.table,
    pk: shape.pk,
    columns,
    before,
    after,
    source: { server_id: src.serverId, file: src.file, pos: src.pos, row, gtid: src.gtid },
    position: formatPosition(src.file, src.pos, row),
    tx: src.tx,
    ts_ms: src.commitMs,
    emitted_ms: Date.now(),
  };
}

const fragments = new WeakMap<object, string>();

/** JSON of an array that many events share (a table's key and column list): serialised once per array. */
function shared(value: readonly unknown[]): string {
  let json = fragments.get(value);
  if (json === undefined) {
    json = JSON.stringify(value);
    fragments.set(value, json);
  }
  return json;
}

/**
 * `JSON.stringify(event)`, byte for byte, with the column list and key serialised once per table shape instead of
 * once per row (they are most of an event's bytes, and this is the hot path of the binlog and snapshot readers).
 */
export function serializeEvent(e: ChangeEvent): string {
  if (e.claim_check !== undefined || e.change !== undefined) return JSON.stringify(e);
  return (
    `{"v":${e.v},"op":${JSON.stringify(e.op)},"db":${JSON.stringify(e.db)},"table":${JSON.stringify(e.table)}` +
    `,"pk":${shared(e.pk)},"columns":${shared(e.columns)},"before":${JSON.stringify(e.before)}` +
    `,"after":${JSON.stringify(e.after)},"source":${JSON.stringify(e.source)},"position":${JSON.stringify(e.position)}` +
    `,"tx":${JSON.stringify(e.tx)},"ts_ms":${e.ts_ms},"emitted_ms":${e.emitted_ms}}`
  );
}
