/**
 * Canonical text of a column value on either side of the pipeline, so that a source row (read from MySQL) and its
 * replica row (read back from the warehouse as text) compare equal exactly when the pipeline carried the value
 * faithfully: the source value goes through the producer's own encoder first (event encoding), then both sides are
 * brought to one form per JSON kind (shared/type-mapping.ts). Pure.
 */
import { encodeValue } from '../../containers/producer/src/event-encoder';
import { type JsonKind, jsonKind, parseMysqlType, type Warehouse } from '../../shared/type-mapping';

export const NULL_TEXT = '\u2205';

export interface CompareColumn {
  readonly name: string;
  /** MySQL column type as the binlog spells it. */
  readonly type: string;
  readonly kind: JsonKind;
  readonly float: boolean;
}

export function compareColumn(name: string, type: string): CompareColumn {
  const t = parseMysqlType(type);
  return { name, type, kind: jsonKind(t), float: t.base === 'float' };
}

function decimal(text: string): string {
  let s = text.trim().replace(/^\+/, '');
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
  if (/^-0*$/.test(s)) s = '0';
  return s.replace(/^(-?)0+(?=\d)/, '$1');
}

function sortedJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedJson);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, sortedJson((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

function micros(text: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?/.exec(text);
  return m ? `${m[1]} ${m[2]}.${(m[3] ?? '').padEnd(6, '0')}` : text;
}

const zeroDate = (s: string) => /^0000-00-00/.test(s);

/** A source value as the snapshot reader returns it. */
export function sourceText(col: CompareColumn, raw: unknown): string {
  const v = encodeValue(col.type, raw);
  if (v === null) return NULL_TEXT;
  switch (col.kind) {
    case 'number':
      return String(col.float ? Math.fround(Number(v)) : Number(v));
    case 'int-string':
      return BigInt(String(v)).toString();
    case 'decimal-string':
      return decimal(String(v));
    case 'date':
    case 'datetime':
    case 'timestamp':
      return zeroDate(String(v)) ? NULL_TEXT : micros(String(v));
    case 'base64':
      return Buffer.from(String(v), 'base64').toString('hex');
    case 'json':
      return JSON.stringify(sortedJson(typeof v === 'string' ? JSON.parse(v) : v));
    default:
      return String(v);
  }
}

/** A replica value as `replicaExpression` returns it (text or NULL). */
export function replicaText(col: CompareColumn, text: unknown): string {
  if (text === null || text === undefined) return NULL_TEXT;
  const s = String(text);
  switch (col.kind) {
    case 'number':
      return String(col.float ? Math.fround(Number(s)) : Number(s));
    case 'int-string':
      return BigInt(s).toString();
    case 'decimal-string':
      return decimal(s);
    case 'date':
    case 'datetime':
    case 'timestamp':
      return micros(s);
    case 'base64':
      return s.replace(/^\\x/, '').toLowerCase();
    case 'json':
      return JSON.stringify(sortedJson(JSON.parse(s)));
    default:
      return s;
  }
}

const ident = (n: string) => `"${n.replace(/"/g, '""')}"`;

/** The warehouse expression that reads a replica column as text (TIMESTAMPTZ in UTC, SUPER serialised). */
export function replicaExpression(col: CompareColumn, warehouse: Warehouse): string {
  const c = ident(col.name);
  if (col.kind === 'timestamp') return `CAST((${c} AT TIME ZONE 'UTC') AS VARCHAR(64))`;
  if (col.kind === 'json' && warehouse === 'redshift') return `JSON_SERIALIZE(${c})`;
  return `CAST(${c} AS VARCHAR(65535))`;
}

/** A source key value as a warehouse literal (standard SQL string; the warehouse casts it to the column's type). */
export function warehouseKeyLiteral(col: CompareColumn, raw: unknown): string {
  const v = encodeValue(col.type, raw);
  if (v === null) return 'NULL';
  if (typeof v === 'number') return String(v);
  return `'${String(v).replace(/'/g, "''")}'`;
}
