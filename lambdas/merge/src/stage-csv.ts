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

function commitTs(ms: number): string {
  return quote(new Date(ms).toISOString().replace('T', ' ').replace('Z', '+00'));
}

function row(
  model: TableModel,
  image: RowImage,
  e: ChangeEvent,
  d: Dialect,
  delta?: number,
  op: string = e.op,
): string {
  const where = `${e.db}.${e.table} at ${e.position}`;
  const ref = { where, key: model.pk.map((k) => image[k]) };
  const fields = model.columns.map((c) => csvField(c, limitValue(c, image[c.name], d.warehouse, ref), d, where));
  fields.push(quote(e.position), quote(op), commitTs(e.ts_ms));
  if (delta !== undefined) fields.push(String(delta));
  return fields.join(',');
}

/** True when an update's before and after images have different primary key values. */
export function keyChanged(pk: readonly string[], before: RowImage, after: RowImage): boolean {
  return pk.some((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
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

/** The staging CSV for one table's events (column order: `stageColumns(model)`). */
export function buildStageCsv(events: readonly ChangeEvent[], model: TableModel, d: Dialect): string {
  const lines: string[] = [];
  const keyless = model.pk.length === 0;
  for (const e of events) {
    if (keyless) {
      if (e.before && (e.op === 'update' || e.op === 'delete')) lines.push(row(model, e.before, e, d, -1));
      if (e.after && e.op !== 'delete') lines.push(row(model, e.after, e, d, 1));
    } else {
      // A key the warehouse cannot hold as it is: the row is skipped and reported (keyProblem), never merged under a
      // NULL or cut key.
      const keyed = (image: RowImage, op?: string) => {
        const problem = keyProblem(model, image, d);
        if (problem === undefined) lines.push(row(model, image, e, d, undefined, op));
        else
          dateValueOptions().onRowSkipped?.({
            where: `${e.db}.${e.table} at ${e.position}`,
            key: model.pk.map((k) => image[k]),
            reason: problem,
          });
      };
      // An update that changes the key deletes the old key and writes the new one, at the same position (so the
      // keys table also remembers the old key as deleted there, and a late older change cannot revive it).
      if (e.op === 'update' && e.before && e.after && keyChanged(model.pk, e.before, e.after))
        keyed(e.before, 'delete');
      const image = keyImage(e);
      if (image) keyed(image);
    }
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}
