/**
 * The merge's half of a `range` event (docs/event-format.md, "range"; docs/snapshot.md, "Rows the source no longer
 * has"): after a snapshot or backfill chunk's `read` rows, every key of the chunk's key range whose last change is
 * older than the chunk's low watermark was neither read by the chunk nor changed since: the source no longer has it.
 * Pure SQL planning; the statements run inside the table's merge transaction, after its lock, and are order-
 * insensitive like the rest of the merge (docs/merge.md): the keys table records the deletion at the low watermark's
 * position, so a late, older insert of such a key is discarded instead of bringing it back, and a newer change (the
 * chunk's own reads, at the high watermark) still wins whether it is merged before or after the range.
 *
 * Key order: the range's bounds are compared in the warehouse, so they are only used when the warehouse orders the key
 * exactly as the source does: numbers, exact decimals, dates and date-times. Strings are not (MySQL orders them by
 * collation, case-insensitively by default; the warehouse compares bytes), nor are binary, BIT, TIME or JSON keys. For
 * such keys the producer sends one range without bounds at the end of a whole-table job instead (its low position is
 * the job's first low watermark): that one needs no order. A bounded range over such a key is ignored here (no SQL).
 *
 * Tables without a primary key (`pk` empty) are read whole, between two watermarks, only when nothing changed inside:
 * their `range` has no bounds and comes first at the high watermark (row index 0), before the reads (1…n). It replaces
 * every older change: the deltas older than it are deleted and the event is recorded in the state table as a floor,
 * so a late or replayed older change is discarded like one older than a TRUNCATE (`planKeylessRange`).
 */
import type { ChangeEvent, JsonValue, KeyRange, RowImage } from '../../../shared/change-event';
import { POSITION_PATTERN } from '../../../shared/change-event';
import { isZeroDate, type JsonKind } from '../../../shared/type-mapping';
import type { Dialect } from './dialect';
import { ident, literal } from './dialect';
import { PoisonBatchError } from './errors';
import type { TableNames } from './naming';
import { META } from './replica-layout';
import { planStateRecord } from './table-change-plan';
import type { ReplicaColumn } from './table-model';

/** Key kinds the warehouse orders exactly as MySQL does. */
const ORDERED_KINDS: ReadonlySet<JsonKind> = new Set([
  'number',
  'int-string',
  'decimal-string',
  'date',
  'datetime',
  'timestamp',
]);

/**
 * Whether a key can be ranged over in the warehouse with the source's order. Also false for DECIMAL keys Redshift
 * stores as text (precision over 38).
 */
export function keyOrderedAlike(pk: readonly ReplicaColumn[]): boolean {
  return pk.length > 0 && pk.every((c) => ORDERED_KINDS.has(c.kind) && !/^(VARCHAR|TEXT)/i.test(c.warehouseType));
}

/** A key value as a typed warehouse literal; undefined when the warehouse cannot hold it (zero dates, NULL). */
function keyLiteral(col: ReplicaColumn, value: JsonValue | undefined): string | undefined {
  if (value === null || value === undefined || typeof value === 'object' || typeof value === 'boolean')
    return undefined;
  let text = String(value);
  if (col.kind === 'date' || col.kind === 'datetime' || col.kind === 'timestamp') {
    if (isZeroDate(text)) return undefined;
    // "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" → "YYYY-MM-DD HH:MM:SS[.ffffff]+00", as the staging CSV writes it.
    if (col.kind === 'timestamp') text = text.replace('T', ' ').replace(/Z$/, '+00');
  } else if (!/^-?\d+(?:\.\d+)?(?:e[-+]?\d+)?$/i.test(text)) {
    return undefined;
  }
  return `CAST(${literal(text)} AS ${col.warehouseType})`;
}

/**
 * `key > bound` / `key <= bound` expanded lexicographically: `a > x OR (a = x AND b > y)`; Redshift has no
 * row-value comparison. `prefix` qualifies the columns (`r.`) or is empty.
 */
function compare(
  pk: readonly ReplicaColumn[],
  bound: readonly string[],
  op: '>' | '<',
  inclusiveLast: boolean,
  prefix: string,
): string {
  const parts = pk.map((c, i) => {
    const eq = pk.slice(0, i).map((p, j) => `${prefix}${ident(p.name)} = ${bound[j]}`);
    const last = i === pk.length - 1 && inclusiveLast ? `${op}=` : op;
    const cmp = `${prefix}${ident(c.name)} ${last} ${bound[i]}`;
    return eq.length > 0 ? `(${eq.join(' AND ')} AND ${cmp})` : cmp;
  });
  return parts.length === 1 ? parts[0]! : `(${parts.join(' OR ')})`;
}

function bound(pk: readonly ReplicaColumn[], image: RowImage, where: string): string[] | undefined {
  const out: string[] = [];
  for (const c of pk) {
    if (!(c.name in image)) {
      throw new PoisonBatchError(
        'BATCH_UNDECODABLE',
        `${where}: range bound ${JSON.stringify(image)} lacks key column ${c.name}`,
      );
    }
    const lit = keyLiteral(c, image[c.name]);
    if (lit === undefined) return undefined;
    out.push(lit);
  }
  return out;
}

/** The range condition on the key columns, or undefined when the warehouse cannot evaluate it like the source. */
export function rangeCondition(
  range: KeyRange,
  pk: readonly ReplicaColumn[],
  prefix: string,
  where: string,
): string | undefined {
  if (range.after === null && range.upto === null) return 'TRUE';
  if (!keyOrderedAlike(pk)) return undefined;
  const conds: string[] = [];
  if (range.after !== null) {
    const b = bound(pk, range.after, where);
    if (!b) return undefined;
    conds.push(compare(pk, b, '>', false, prefix));
  }
  if (range.upto !== null) {
    const b = bound(pk, range.upto, where);
    if (!b) return undefined;
    conds.push(compare(pk, b, '<', true, prefix));
  }
  return conds.join(' AND ');
}

/**
 * The statements that apply one `range` event to a keyed table's replica, in this order:
 *   1. tombstones of the range older than the low watermark (keys deleted before it; and, in a keys table written
 *      before it held tombstones only, live keys' rows): moved to the low watermark;
 *   2. replica rows of the range older than the low watermark without a tombstone: one at the low watermark;
 *   3. replica rows of the range older than the low watermark: deleted.
 * Empty when the range cannot be evaluated in the warehouse (see the module comment). Plain UPDATE/INSERT … SELECT/
 * DELETE without aliases on their targets (r_UPDATE, r_INSERT_30, r_DELETE), valid on Redshift and PostgreSQL.
 * @throws PoisonBatchError (BATCH_UNDECODABLE) for a range event without a range or with a malformed low position
 */
export function planRangeDelete(
  event: ChangeEvent,
  pk: readonly ReplicaColumn[],
  names: TableNames,
  _d: Dialect,
): string[] {
  const where = `${event.db}.${event.table} range event at ${event.position}`;
  const range = event.change?.range;
  if (event.op !== 'range' || !range) throw new PoisonBatchError('BATCH_UNDECODABLE', `${where}: no change.range`);
  if (!POSITION_PATTERN.test(range.low_position)) {
    throw new PoisonBatchError(
      'BATCH_UNDECODABLE',
      `${where}: low_position ${JSON.stringify(range.low_position)} is not a position`,
    );
  }
  if (pk.length === 0) return []; // a keyless table's range: planKeylessRange
  const inRange = rangeCondition(range, pk, '', where);
  const inRangeR = rangeCondition(range, pk, 'r.', where);
  if (inRange === undefined || inRangeR === undefined) return [];
  const low = literal(range.low_position);
  const pos = ident(META.position);
  // A row without a position was not written by the merge (a replica written to by hand): older than anything.
  const older = (prefix: string) => `(${prefix}${pos} IS NULL OR ${prefix}${pos} < ${low})`;
  const keyCols = pk.map((c) => ident(c.name));
  return [
    `UPDATE ${names.keys} SET ${pos} = ${low}, ${ident(META.deleted)} = TRUE WHERE ${inRange} AND ${older('')}`,
    `INSERT INTO ${names.keys} (${[...keyCols, pos, ident(META.deleted)].join(', ')}) ` +
      `SELECT ${[...keyCols.map((k) => `r.${k}`), low, 'TRUE'].join(', ')} FROM ${names.replica} r ` +
      `WHERE ${inRangeR} AND ${older('r.')} AND NOT EXISTS (SELECT 1 FROM ${names.keys} k WHERE ` +
      `${keyCols.map((k) => `k.${k} = r.${k}`).join(' AND ')})`,
    `DELETE FROM ${names.replica} WHERE ${inRange} AND ${older('')}`,
  ];
}

/**
 * A keyless table's whole-table read (module comment): the changes older than the event are replaced by the reads
 * that follow it. An `INSERT … SELECT … WHERE NOT EXISTS` (r_INSERT_30) and a plain `DELETE … WHERE` without an alias
 * (r_DELETE), as the Redshift reference gives them; checked by the allow-list grammar in test/merge/range-delete.test.ts. `exists`: the table's deltas exist already (false: only the floor is recorded). A bounded range on a
 * keyless table cannot be evaluated (no key): nothing.
 * @throws PoisonBatchError (BATCH_UNDECODABLE) for a range event without a range
 */
export function planKeylessRange(event: ChangeEvent, names: TableNames, d: Dialect, exists: boolean): string[] {
  const range = event.change?.range;
  if (event.op !== 'range' || !range) {
    throw new PoisonBatchError(
      'BATCH_UNDECODABLE',
      `${event.db}.${event.table} range event at ${event.position}: no change.range`,
    );
  }
  if (range.after !== null || range.upto !== null) return [];
  const out = [planStateRecord(event, names, d)];
  // A delta without a position was not written by the merge (a replica written to by hand): older than anything.
  const pos = ident(META.position);
  if (exists) out.push(`DELETE FROM ${names.deltas} WHERE ${pos} IS NULL OR ${pos} < ${literal(event.position)}`);
  return out;
}
