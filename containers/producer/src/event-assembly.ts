/**
 * Event assembly: a captured row (binlog or snapshot) or table-level change → a change event. Per table shape, one
 * plan is compiled once (each outgoing column with its encoder's type and its capture rule: keep, hash or mask;
 * dropped columns left out), so an image is encoded and filtered in one pass over the plan, with no pattern matched
 * per value. Pure apart from `Date.now()` in `emitted_ms`.
 */
import { createHash } from 'node:crypto';
import {
  type ChangeEvent,
  type ChangeOp,
  type ColumnMeta,
  EVENT_VERSION,
  formatPosition,
  type JsonValue,
  type RowImage,
  type TableChange,
  type TableOp,
} from '../../../shared/change-event';
import { isKnownMysqlType, parseMysqlType } from '../../../shared/type-mapping';
import { encodeValue } from '../../../shared/value-encoding';
import type { RowChange } from './binlog-source';
import { buildEvent, type TableShape } from './event-encoder';
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

/** How one outgoing column is assembled. */
export interface ColumnPlan {
  readonly name: string;
  /** The MySQL type its value is encoded by. */
  readonly type: string;
  readonly rule: 'keep' | 'hash' | 'mask';
}

/** Everything the assembly of one table shape's events needs, computed once per shape. */
export interface ShapePlan {
  readonly columns: readonly ColumnPlan[];
  /** Column metadata as it leaves the producer (hashed/masked columns typed as text). */
  readonly outgoing: readonly ColumnMeta[];
  /** Outgoing columns of a type the type table does not know (sent as text, counted and warned about). */
  readonly unknown: readonly ColumnMeta[];
}

export function compileShapePlan(shape: TableShape, filter: TableFilter): ShapePlan {
  const columns: ColumnPlan[] = [];
  const outgoing: ColumnMeta[] = [];
  const unknown: ColumnMeta[] = [];
  for (const c of shape.columns) {
    const rule = filter.columnRule(shape.db, shape.table, c.name);
    if (rule === 'drop') continue;
    columns.push({ name: c.name, type: c.type, rule });
    // Hashed and masked values are text of a fixed width, whatever the column held.
    outgoing.push(
      rule === 'hash' ? { name: c.name, type: 'char(64)' } : rule === 'mask' ? { name: c.name, type: 'varchar(4)' } : c,
    );
    if (!isKnownMysqlType(parseMysqlType(c.type))) unknown.push(c);
  }
  return { columns, outgoing, unknown };
}

/** One outgoing value: encoded by its column's type, then its capture rule applied. */
export function assembleValue(c: ColumnPlan, raw: unknown): JsonValue {
  const value = encodeValue(c.type, raw);
  if (c.rule === 'keep' || value === null) return value;
  if (c.rule === 'hash')
    return createHash('sha256')
      .update(typeof value === 'string' ? value : JSON.stringify(value))
      .digest('hex');
  return '****';
}

/** A row's image, encoded and filtered in one pass: hashed values as SHA-256 hex, masked ones `****`, NULL kept. */
export function assembleImage(plan: ShapePlan, row: Record<string, unknown>): RowImage {
  const out: RowImage = {};
  for (const c of plan.columns) out[c.name] = assembleValue(c, row[c.name]);
  return out;
}

/**
 * The same image from the row's values in the plan's column order (`values[at]` onwards), the form rows travel in to
 * the encode worker (encode-worker-protocol.ts).
 */
export function assembleImageFromValues(plan: ShapePlan, values: readonly unknown[], at: number): RowImage {
  const out: RowImage = {};
  const columns = plan.columns;
  for (let i = 0; i < columns.length; i++) out[columns[i]!.name] = assembleValue(columns[i]!, values[at + i]);
  return out;
}

/** A row event from its assembled images (what `EventAssembler.rowEvent` and the encode worker both build). */
export function rowEventFromImages(
  serverId: number,
  shape: Pick<TableShape, 'db' | 'table' | 'pk'>,
  plan: Pick<ShapePlan, 'outgoing'>,
  c: Pick<CapturedRow, 'op' | 'file' | 'pos' | 'row' | 'gtid' | 'commitMs'>,
  before: RowImage | null,
  after: RowImage | null,
): ChangeEvent {
  return buildEvent(
    shape,
    c.op,
    before,
    after,
    { serverId, file: c.file, pos: c.pos, gtid: c.gtid, tx: c.gtid ?? `${c.file}:${c.pos}`, commitMs: c.commitMs },
    c.row,
    plan.outgoing,
  );
}

export class EventAssembler {
  /** Plans per table shape (a shape object lives as long as its table map or snapshot chunk). */
  private readonly plans = new WeakMap<object, ShapePlan>();

  constructor(private readonly props: { readonly serverId: number; readonly filter: TableFilter }) {}

  plan(shape: TableShape): ShapePlan {
    let plan = this.plans.get(shape);
    if (!plan) {
      plan = compileShapePlan(shape, this.props.filter);
      this.plans.set(shape, plan);
    }
    return plan;
  }

  rowEvent(c: CapturedRow): ChangeEvent {
    const plan = this.plan(c.shape);
    return rowEventFromImages(
      this.props.serverId,
      c.shape,
      plan,
      c,
      c.before ? assembleImage(plan, c.before) : null,
      c.after ? assembleImage(plan, c.after) : null,
    );
  }

  tableEvent(t: CapturedTableChange): ChangeEvent {
    return {
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
    };
  }
}
