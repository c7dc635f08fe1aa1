/**
 * How one MySQL column value is encoded in a change event (docs/event-format.md): the column's JSON type is fixed per
 * MySQL type (shared/type-mapping.ts `jsonKind`). The producer encodes every binlog and snapshot value with it, and
 * `npx cdc validate` encodes source values with it to compare them with the replica. Pure. The values it takes are
 * what the binlog reader (zongji) and the snapshot reader (mysql2) hand over, configured for exact values: DECIMAL as
 * exact strings, 64-bit integers beyond 2^53 as strings, DATE/DATETIME/TIMESTAMP as strings, TIMESTAMP in UTC.
 */
import type { JsonValue } from './change-event';
import { type JsonKind, jsonKind, type MysqlType, parseMysqlType } from './type-mapping';

const pad2 = (n: number) => String(n).padStart(2, '0');

/** BIT(n) bytes (big-endian) → n characters '0'/'1'. */
function bits(value: unknown, width: number): string {
  const buf = Buffer.isBuffer(value) ? value : Buffer.from(String(value));
  let text = '';
  for (const byte of buf) text += byte.toString(2).padStart(8, '0');
  return text.slice(-width).padStart(width, '0');
}

function dateText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Date) {
    return `${v.getUTCFullYear()}-${pad2(v.getUTCMonth() + 1)}-${pad2(v.getUTCDate())} ${pad2(v.getUTCHours())}:${pad2(v.getUTCMinutes())}:${pad2(v.getUTCSeconds())}.${String(v.getUTCMilliseconds()).padStart(3, '0')}`;
  }
  return String(v);
}

const typeCache = new Map<string, { t: MysqlType; kind: JsonKind }>();

/** Parsed type and JSON kind of a column type text, computed once per distinct type (this is the hot path). */
function typeInfo(columnType: string): { t: MysqlType; kind: JsonKind } {
  let info = typeCache.get(columnType);
  if (!info) {
    const t = parseMysqlType(columnType);
    info = { t, kind: jsonKind(t) };
    typeCache.set(columnType, info);
  }
  return info;
}

/** Encodes one value of a column of the given MySQL type. */
export function encodeValue(columnType: string, value: unknown): JsonValue {
  if (value === null || value === undefined) return null;
  const { t, kind } = typeInfo(columnType);
  switch (kind) {
    case 'number':
      return typeof value === 'number' ? value : Number(value);
    case 'int-string':
    case 'decimal-string':
      return typeof value === 'bigint' ? value.toString() : String(value);
    case 'string':
      return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
    case 'date':
      return dateText(value).slice(0, 10);
    case 'datetime':
      return dateText(value);
    case 'timestamp': {
      const text = dateText(value);
      // zongji renders TIMESTAMP in the connection time zone, which the source sets to UTC ('Z').
      return /^0000-00-00/.test(text) ? text : `${text.replace(' ', 'T')}Z`;
    }
    case 'time':
      return String(value);
    case 'bits':
      return bits(value, t.length ?? 1);
    case 'base64':
      return (Buffer.isBuffer(value) ? value : Buffer.from(String(value))).toString('base64');
    case 'json':
      if (typeof value === 'string') {
        try {
          return JSON.parse(value) as JsonValue;
        } catch {
          return value;
        }
      }
      return value as JsonValue;
  }
}
