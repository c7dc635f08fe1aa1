/**
 * Canonical values on either side of the pipeline, so that a source row (read from MySQL) and its replica row (read
 * back from the warehouse) compare equal exactly when the pipeline carried every value faithfully. Never a lossy
 * text: the source value goes through the producer's own encoder (shared/value-encoding.ts) and the replica value is
 * read with an expression chosen by the replica column's warehouse type (`replicaExpression`), then both are brought
 * to one exact form per JSON kind (shared/type-mapping.ts):
 * - integers as exact decimal digits, FLOAT as float32, DOUBLE as the shortest text of the double;
 * - DECIMAL as exact decimal text without insignificant zeros (12.50 = 12.5, never rounded);
 * - DATE/DATETIME/TIMESTAMP to the microsecond, TIMESTAMP as the UTC wall clock; TIME as [-]H:MM:SS.ffffff;
 * - binary as hex; spatial values as the hex of their WKB (MySQL's SRID prefix removed, on either side);
 * - JSON with object keys sorted and every number as its exact value (1.10 = 1.1, 12345678901234567891 ≠ …890);
 * - NULL as null, distinct from every text.
 * Pure.
 */
import {
  type JsonKind,
  jsonKind,
  parseMysqlType,
  unrepresentableDate,
  unrepresentableText,
  type Warehouse,
} from '../../shared/type-mapping';
import { encodeValue } from '../../shared/value-encoding';

/** A canonical value: equal for two values exactly when they are the same value. null is SQL NULL. */
export type Canonical = string | null;

export interface CompareColumn {
  readonly name: string;
  /** MySQL column type as the binlog spells it. */
  readonly type: string;
  readonly kind: JsonKind;
  readonly float: boolean;
  readonly spatial: boolean;
  /**
   * The replica column's type as the warehouse's information_schema names it (`data_type`, or `udt_name` for
   * user-defined types), lower case; undefined: the type the merge creates for `type`.
   */
  readonly replicaType?: string;
}

const SPATIAL =
  /^(geometry|point|linestring|polygon|multipoint|multilinestring|multipolygon|geometrycollection|geomcollection)$/;

export function compareColumn(name: string, type: string, replicaType?: string): CompareColumn {
  const t = parseMysqlType(type);
  return {
    name,
    type,
    kind: jsonKind(t),
    float: t.base === 'float',
    spatial: SPATIAL.test(t.base),
    ...(replicaType ? { replicaType: replicaType.toLowerCase() } : {}),
  };
}

/** Exact decimal text without insignificant zeros: `+012.500` → `12.5`, `-0.0` → `0`. */
function decimal(text: string): string {
  let s = text.trim().replace(/^\+/, '');
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
  if (/^-0*$/.test(s)) s = '0';
  return s.replace(/^(-?)0+(?=\d)/, '$1');
}

/** A JSON number literal as its exact value: digits without trailing zeros and a power of ten (`1.10` → `11e-1`). */
function exactNumber(literal: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?$/.exec(literal);
  if (!m) return literal;
  let digits = `${m[2]}${m[3] ?? ''}`.replace(/^0+/, '');
  let exp = Number(m[4] ?? 0) - (m[3] ?? '').length;
  if (digits === '') return '0';
  const trailing = /0*$/.exec(digits)![0].length;
  digits = digits.slice(0, digits.length - trailing);
  exp += trailing;
  return `${m[1]}${digits}e${exp}`;
}

/**
 * JSON text → canonical JSON text: object keys sorted, insignificant whitespace dropped, numbers as their exact value
 * (JSON.parse would round them to doubles, so this reads the text itself).
 */
export function canonicalJson(text: string): string {
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const fail = (): never => {
    throw new Error(`not JSON at ${i}: ${JSON.stringify(text.slice(0, 80))}`);
  };
  const value = (): string => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const members: [string, string][] = [];
      ws();
      if (text[i] === '}') {
        i++;
        return '{}';
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        const key = JSON.parse(str()) as string;
        ws();
        if (text[i++] !== ':') fail();
        members.push([key, value()]);
        ws();
        if (text[i] === ',') i++;
        else if (text[i++] === '}') break;
        else fail();
      }
      members.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      return `{${members.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
    }
    if (c === '[') {
      i++;
      const items: string[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return '[]';
      }
      for (;;) {
        items.push(value());
        ws();
        if (text[i] === ',') i++;
        else if (text[i++] === ']') break;
        else fail();
      }
      return `[${items.join(',')}]`;
    }
    if (c === '"') return JSON.stringify(JSON.parse(str()));
    const lit = /^(true|false|null|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)/.exec(text.slice(i, i + 400));
    if (!lit) return fail();
    i += lit[1]!.length;
    return /^[-\d]/.test(lit[1]!) ? `#${exactNumber(lit[1]!)}` : lit[1]!;
  };
  const str = (): string => {
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail();
    i++;
    return text.slice(start, i);
  };
  const out = value();
  ws();
  if (i !== text.length) fail();
  return out;
}

/** End offset of the WKB geometry starting at `o` (2D, and ISO Z/M/ZM types), or -1 when the bytes are not one. */
function wkbEnd(b: Buffer, o: number, depth = 0): number {
  if (depth > 32 || o + 5 > b.length || (b[o] !== 0 && b[o] !== 1)) return -1;
  const le = b[o] === 1;
  const u32 = (at: number) => (at + 4 > b.length ? -1 : le ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const type = u32(o + 1);
  const base = type % 1000;
  const dims = 2 + [0, 1, 1, 2][Math.floor(type / 1000)]!;
  if (Math.floor(type / 1000) > 3) return -1;
  let p = o + 5;
  const points = (n: number) => (n < 0 ? -1 : p + n * dims * 8);
  switch (base) {
    case 1:
      p += dims * 8;
      break;
    case 2: {
      const n = u32(p);
      p += 4;
      p = points(n);
      break;
    }
    case 3: {
      const rings = u32(p);
      if (rings < 0) return -1;
      p += 4;
      for (let r = 0; r < rings && p >= 0; r++) {
        const n = u32(p);
        p += 4;
        p = points(n);
      }
      break;
    }
    case 4:
    case 5:
    case 6:
    case 7: {
      const n = u32(p);
      if (n < 0) return -1;
      p += 4;
      for (let k = 0; k < n && p >= 0; k++) p = wkbEnd(b, p, depth + 1);
      break;
    }
    default:
      return -1;
  }
  return p >= 0 && p <= b.length ? p : -1;
}

/** A spatial value's WKB as hex: MySQL stores (and the binlog carries) a 4-byte SRID before the WKB. */
export function wkbHex(bytes: Buffer): string {
  if (wkbEnd(bytes, 0) === bytes.length) return bytes.toString('hex');
  if (bytes.length > 4 && wkbEnd(bytes, 4) === bytes.length) return bytes.subarray(4).toString('hex');
  return `bytes:${bytes.toString('hex')}`; // not a geometry: compared as the bytes they are
}

function micros(text: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?)?(.*)$/.exec(text);
  if (!m) return text;
  if (!m[2]) return `${m[1]}${m[4]}`;
  return `${m[1]} ${m[2]}.${(m[3] ?? '').padEnd(6, '0')}${m[4] === 'Z' ? '' : m[4]}`;
}

function time(text: string): string {
  const m = /^(-?)(\d+):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!m) return text;
  return `${m[1]}${Number(m[2])}:${m[3]}:${m[4]}.${(m[5] ?? '').padEnd(6, '0')}`;
}

function number(col: CompareColumn, v: string | number): string {
  if (col.float) return String(Math.fround(Number(v)));
  const s = String(v).trim();
  return /^-?\d+$/.test(s) ? BigInt(s).toString() : String(Number(s));
}

/** A source value as the snapshot reader returns it (spatial values as the server's bytes: `rawSpatial`). */
export function sourceText(col: CompareColumn, raw: unknown): Canonical {
  if (raw === null || raw === undefined) return null;
  if (col.spatial) {
    if (!Buffer.isBuffer(raw)) throw new Error(`${col.name}: spatial value read as ${typeof raw}, not as bytes`);
    return wkbHex(raw);
  }
  const v = encodeValue(col.type, raw);
  if (v === null) return null;
  switch (col.kind) {
    case 'number':
      return number(col, v as number);
    case 'int-string':
      return BigInt(String(v)).toString();
    case 'decimal-string':
      return decimal(String(v));
    case 'date':
    case 'datetime':
    case 'timestamp':
      // Zero, partial-zero and impossible dates are NULL in the replica (docs/merge.md).
      return unrepresentableDate(String(v)) ? null : micros(String(v));
    case 'time':
      return time(String(v));
    case 'base64':
      return Buffer.from(String(v), 'base64').toString('hex');
    case 'json':
      // The encoder parsed the server's text; read the server's text itself so numbers stay exact.
      return canonicalJson(
        typeof raw === 'string' ? raw : Buffer.isBuffer(raw) ? raw.toString('utf8') : JSON.stringify(v),
      );
    case 'string':
      // Text holding U+0000 is NULL in the replica (docs/merge.md).
      return unrepresentableText(String(v)) ? null : String(v);
    default:
      return String(v);
  }
}

/** A replica value as `replicaExpression` returns it (text, or null). */
export function replicaText(col: CompareColumn, text: unknown): Canonical {
  if (text === null || text === undefined) return null;
  const s = String(text);
  switch (col.kind) {
    case 'number':
      return number(col, s);
    case 'int-string':
      return /^-?\d+$/.test(s.trim()) ? BigInt(s.trim()).toString() : `text:${s}`;
    case 'decimal-string':
      return decimal(s);
    case 'date':
    case 'datetime':
    case 'timestamp':
      return micros(s);
    case 'time':
      return time(s);
    case 'base64': {
      const hex = s.replace(/^\\x/, '').toLowerCase();
      if (!/^(?:[0-9a-f]{2})*$/.test(hex)) return `text:${s}`; // not bytes (e.g. a text column holding garbage)
      return col.spatial ? wkbHex(Buffer.from(hex, 'hex')) : hex;
    }
    case 'json':
      try {
        return canonicalJson(s);
      } catch {
        return `text:${s}`;
      }
    default:
      return s;
  }
}

const ident = (n: string) => `"${n.replace(/"/g, '""')}"`;

/**
 * The warehouse expression that reads a replica column as exact text, chosen by the column's warehouse type:
 * TIMESTAMPTZ as the UTC wall clock, bytes (BYTEA, VARBYTE) as hex, GEOMETRY as the hex of its WKB, JSON (JSONB,
 * SUPER) serialised, everything else cast to text.
 */
export function replicaExpression(col: CompareColumn, warehouse: Warehouse): string {
  const c = ident(col.name);
  const rs = warehouse === 'redshift';
  const t = col.replicaType ?? '';
  // A replica column holding text where the merge would create another type: read (and compared) as the text.
  const text = /char|text/.test(t);
  if (t === 'geometry') return rs ? `FROM_VARBYTE(ST_AsBinary(${c}), 'hex')` : `encode(ST_AsBinary(${c}), 'hex')`;
  if (col.kind === 'base64' && !text) return rs ? `FROM_VARBYTE(${c}, 'hex')` : `encode(${c}, 'hex')`;
  if (col.kind === 'json' && rs && !text) return `JSON_SERIALIZE(${c})`;
  if (col.kind === 'timestamp' && !text && t !== 'timestamp without time zone') {
    return `CAST((${c} AT TIME ZONE 'UTC') AS VARCHAR(64))`;
  }
  // Redshift's widest text; on PostgreSQL a cast to VARCHAR(65535) would cut longer text (LONGTEXT, JSONB) silently.
  return rs ? `CAST(${c} AS VARCHAR(65535))` : `CAST(${c} AS TEXT)`;
}

/** A source key value as a warehouse literal (standard SQL string; the warehouse casts it to the column's type). */
export function warehouseKeyLiteral(col: CompareColumn, raw: unknown): string {
  const v = encodeValue(col.type, raw);
  if (v === null) return 'NULL';
  if (typeof v === 'number') return String(v);
  return `'${String(v).replace(/'/g, "''")}'`;
}
