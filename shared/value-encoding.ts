/**
 * How one MySQL column value is encoded in a change event (docs/event-format.md): the column's JSON type is fixed per
 * MySQL type (shared/type-mapping.ts `jsonKind`). The producer encodes every binlog and snapshot value with it, and
 * `npx cdc validate` encodes source values with it to compare them with the replica. Pure. The values it takes are
 * what the binlog reader (zongji) and the snapshot reader (mysql2) hand over, configured for exact values: DECIMAL as
 * exact strings, 64-bit integers beyond 2^53 as strings, DATE/DATETIME/TIMESTAMP as strings, TIMESTAMP in UTC,
 * spatial values as the bytes the server stores (4-byte SRID, little-endian, then WKB), MariaDB UUID/INET4/INET6 as
 * the server's text (snapshot) or their stored bytes (binlog), both encoded as the server's text. A type the table
 * does not know is never an error: its value goes through as lossless text (`unknownTypeText`).
 */
import type { JsonValue } from './change-event';
import {
  isKnownMysqlType,
  type JsonKind,
  jsonKind,
  MARIADB_BINARY_TEXT_TYPES,
  type MysqlType,
  parseMysqlType,
} from './type-mapping';

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

/** `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower case: MariaDB's UUID text. */
function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function inet4Text(b: Buffer, at = 0): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * MariaDB's INET6 text: RFC 5952 (lower-case groups without leading zeros, the longest run of two or more zero groups
 * as `::`, the leftmost on a tie), IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`, except `::` and
 * `::1`) addresses with a dotted tail.
 */
function inet6Text(b: Buffer): string {
  if (b.subarray(0, 10).every((x) => x === 0)) {
    if (b[10] === 0xff && b[11] === 0xff) return `::ffff:${inet4Text(b, 12)}`;
    if (b[10] === 0 && b[11] === 0 && b.readUInt32BE(12) > 1) return `::${inet4Text(b, 12)}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
  let start = -1;
  let length = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > length) {
      start = i;
      length = j - i;
    }
    i = j;
  }
  const hex = (g: number) => g.toString(16);
  if (start < 0) return groups.map(hex).join(':');
  const head = groups.slice(0, start).map(hex).join(':');
  const tail = groups
    .slice(start + length)
    .map(hex)
    .join(':');
  return `${head}::${tail}`;
}

/** A MariaDB UUID/INET4/INET6 value: the snapshot reads the server's text, the binlog carries the stored bytes. */
function binaryText(base: string, value: unknown): string {
  if (!Buffer.isBuffer(value)) return String(value);
  if (base === 'uuid') return uuidText(value);
  if (base === 'inet4') return inet4Text(value);
  return inet6Text(value);
}

/**
 * A value of a type the type table does not know, as lossless text: bytes as lower-case hex (no prefix), text as is,
 * numbers and big integers as their decimal text, anything else the driver decoded as its JSON.
 */
function unknownTypeText(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString('hex');
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value) ?? String(value);
}

const typeCache = new Map<string, { t: MysqlType; kind: JsonKind; known: boolean }>();

/** Parsed type and JSON kind of a column type text, computed once per distinct type (this is the hot path). */
function typeInfo(columnType: string): { t: MysqlType; kind: JsonKind; known: boolean } {
  let info = typeCache.get(columnType);
  if (!info) {
    const t = parseMysqlType(columnType);
    info = { t, kind: jsonKind(t), known: isKnownMysqlType(t) };
    typeCache.set(columnType, info);
  }
  return info;
}

/** Encodes one value of a column of the given MySQL type. */
export function encodeValue(columnType: string, value: unknown): JsonValue {
  if (value === null || value === undefined) return null;
  const { t, kind, known } = typeInfo(columnType);
  if (!known) return unknownTypeText(value);
  switch (kind) {
    case 'number': {
      const n = typeof value === 'number' ? value : Number(value);
      // zongji reads YEAR as 1900 + the stored byte, so the year 0000 (byte 0) arrives as 1900, a year YEAR cannot
      // hold (1901..2155 and 0000): the snapshot reads it as 0.
      return n === 1900 && t.base === 'year' ? 0 : n;
    }
    case 'int-string':
    case 'decimal-string':
      return typeof value === 'bigint' ? value.toString() : String(value);
    case 'string':
      if (Object.hasOwn(MARIADB_BINARY_TEXT_TYPES, t.base)) return binaryText(t.base, value);
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
      if (Buffer.isBuffer(value)) return value.toString('base64');
      // A decoded object (a parsed geometry) has no exact bytes left: refuse rather than write "[object Object]".
      if (typeof value === 'object') {
        throw new Error(`${columnType} value arrived decoded (${JSON.stringify(value)?.slice(0, 80)}), not as bytes`);
      }
      return Buffer.from(String(value)).toString('base64');
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
