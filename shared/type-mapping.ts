/**
 * MySQL column types: how the producer encodes their values in change events, and which warehouse type the merge
 * creates for them. The single place both runtimes agree on types; the tables of docs/event-format.md ("Values, per
 * MySQL type") and docs/merge.md ("Type mapping") document it, and test/merge/type-table-doc.test.ts fails when they
 * say otherwise (edit both together).
 */

export type Warehouse = 'redshift' | 'postgres';

/** JSON representation of a column's values in a change event (besides null). */
export type JsonKind =
  | 'number' //   JSON number, exact (integers up to 2^31, FLOAT/DOUBLE, YEAR)
  | 'int-string' // decimal digits, optional leading '-' (BIGINT, so values beyond 2^53 stay exact)
  | 'decimal-string' // exact decimal text, e.g. "-12.50" (DECIMAL/NUMERIC)
  | 'string' // text (CHAR/VARCHAR/TEXT, ENUM label, SET labels joined with ',', MariaDB UUID/INET4/INET6 as the server prints them)
  //            and an unknown type's value as text (bytes as lower-case hex: see isKnownMysqlType)
  | 'date' // "YYYY-MM-DD"; zero dates kept verbatim ("0000-00-00")
  | 'datetime' // "YYYY-MM-DD HH:MM:SS[.ffffff]", wall clock, no zone; zero dates kept verbatim
  | 'timestamp' // "YYYY-MM-DDTHH:MM:SS[.ffffff]Z", UTC; zero timestamp kept verbatim ("0000-00-00 00:00:00")
  | 'time' // "[-]HHH:MM:SS[.ffffff]" (MySQL TIME spans -838:59:59..838:59:59)
  | 'bits' // "0101…": BIT(n) as n characters '0'/'1'
  | 'base64' // binary data (BINARY/VARBINARY/BLOB; spatial types as MySQL stores them: 4-byte SRID LE, then WKB)
  | 'json'; // JSON column: the JSON value itself

export interface MysqlType {
  /** Lower-case base type name, e.g. `decimal`, `varchar`, `bigint`. */
  readonly base: string;
  readonly unsigned: boolean;
  /** Length / precision argument (`varchar(255)` → 255, `decimal(12,2)` → 12, `datetime(6)` → 6). */
  readonly length?: number;
  readonly scale?: number;
  /** ENUM / SET labels. */
  readonly values?: readonly string[];
}

/** Parses `information_schema.COLUMNS.COLUMN_TYPE` text (`bigint(20) unsigned`, `enum('a','b')`, `decimal(10,2)`). */
export function parseMysqlType(columnType: string): MysqlType {
  const text = columnType.trim().toLowerCase();
  const m = /^([a-z][a-z0-9_]*)\s*(?:\((.*)\))?\s*(.*)$/s.exec(text); // digits: MariaDB's inet4, inet6
  if (!m) throw new Error(`unrecognised MySQL column type: ${JSON.stringify(columnType)}`);
  const base = m[1]!;
  const args = m[2];
  const rest = m[3] ?? '';
  const unsigned = /\bunsigned\b/.test(rest);
  if (base === 'enum' || base === 'set') {
    const values: string[] = [];
    const re = /'((?:[^']|'')*)'/g;
    // Labels come from the original (case-preserving) text.
    const original = /\((.*)\)/s.exec(columnType.trim())?.[1] ?? '';
    for (let v = re.exec(original); v; v = re.exec(original)) values.push(v[1]!.replace(/''/g, "'"));
    return { base, unsigned: false, values };
  }
  if (args === undefined || args === '') return { base, unsigned };
  const [a, b] = args.split(',').map((s) => Number(s.trim()));
  return { base, unsigned, length: a, ...(b !== undefined ? { scale: b } : {}) };
}

const INT_BASES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer']);
const TEXT_BASES = new Set(['tinytext', 'text', 'mediumtext', 'longtext']);
const BLOB_BASES = new Set(['tinyblob', 'blob', 'mediumblob', 'longblob', 'binary', 'varbinary']);
const SPATIAL_BASES = new Set([
  'geometry',
  'point',
  'linestring',
  'polygon',
  'multipoint',
  'multilinestring',
  'multipolygon',
  'geometrycollection',
  'geomcollection',
]);

/**
 * MariaDB types stored as fixed-width binary and printed as text (10.7+ UUID, 10.10+ INET4, 10.5+ INET6), with their
 * stored width in bytes and their longest text. The binlog metadata only says `binary(<width>)` for them, so the binlog
 * reader relabels such columns from information_schema (containers/producer/src/binlog-source.ts) and the encoder
 * formats their bytes the way the server prints them (shared/value-encoding.ts).
 */
export const MARIADB_BINARY_TEXT_TYPES: Readonly<Record<string, { readonly bytes: number; readonly chars: number }>> = {
  uuid: { bytes: 16, chars: 36 },
  inet4: { bytes: 4, chars: 15 },
  inet6: { bytes: 16, chars: 45 }, // the longest IPv6 text there is (INET6_ADDRSTRLEN - 1)
};

/**
 * Base type names the type table maps. Any other name (a type of a later server, e.g. MariaDB 11.7's `vector(n)`) is
 * an *unknown* type, carried with a fallback instead of stopping the producer (docs/event-format.md, "Unknown column
 * types"): JSON kind `string` holding the driver's value losslessly as text (bytes as lower-case hex, text as is,
 * numbers as their decimal text), the server's type text kept in the event's column list, a text replica column
 * (`VARCHAR(65535)` on Redshift, `TEXT` on PostgreSQL), one producer warning per table and column and the metric
 * `UnknownTypeValues`. A later release that maps the type changes the replica column from text to the new type: the
 * merge treats that as an incompatible type change (a resync), as for any other.
 */
const KNOWN_BASES: ReadonlySet<string> = new Set([
  ...INT_BASES,
  ...TEXT_BASES,
  ...BLOB_BASES,
  ...SPATIAL_BASES,
  ...Object.keys(MARIADB_BINARY_TEXT_TYPES),
  'bigint',
  'year',
  'float',
  'double',
  'real',
  'decimal',
  'numeric',
  'dec',
  'fixed',
  'char',
  'varchar',
  'enum',
  'set',
  'date',
  'datetime',
  'timestamp',
  'time',
  'bit',
  'json',
]);

/** False for a type the table does not map (its values go through with the unknown-type fallback, see KNOWN_BASES). */
export function isKnownMysqlType(t: MysqlType): boolean {
  return KNOWN_BASES.has(t.base);
}

export function jsonKind(t: MysqlType): JsonKind {
  const { base } = t;
  if (INT_BASES.has(base) || base === 'year' || base === 'float' || base === 'double' || base === 'real') {
    return 'number';
  }
  if (base === 'bigint') return 'int-string';
  if (base === 'decimal' || base === 'numeric' || base === 'dec' || base === 'fixed') return 'decimal-string';
  if (base === 'char' || base === 'varchar' || TEXT_BASES.has(base) || base === 'enum' || base === 'set') {
    return 'string';
  }
  if (Object.hasOwn(MARIADB_BINARY_TEXT_TYPES, base)) return 'string';
  if (base === 'date') return 'date';
  if (base === 'datetime') return 'datetime';
  if (base === 'timestamp') return 'timestamp';
  if (base === 'time') return 'time';
  if (base === 'bit') return 'bits';
  if (BLOB_BASES.has(base) || SPATIAL_BASES.has(base)) return 'base64';
  if (base === 'json') return 'json';
  // An unknown type: its values as text (value-encoding.ts), so one unusual column never stops every table.
  return 'string';
}

/** Redshift's widest VARCHAR, in bytes. */
export const REDSHIFT_MAX_VARCHAR = 65535;
/** Redshift's widest VARBYTE, in bytes. */
export const REDSHIFT_MAX_VARBYTE = 1024000;
/** Redshift's widest DECIMAL precision. */
export const REDSHIFT_MAX_DECIMAL_PRECISION = 38;

/** Bytes that a MySQL utf8mb4 CHAR/VARCHAR(n) can take: Redshift sizes VARCHAR in bytes, MySQL in characters. */
function utf8Bytes(chars: number): number {
  return Math.min(chars * 4, REDSHIFT_MAX_VARCHAR);
}

function intType(t: MysqlType): string {
  switch (t.base) {
    case 'tinyint':
      return 'SMALLINT';
    case 'smallint':
      return t.unsigned ? 'INTEGER' : 'SMALLINT';
    case 'mediumint':
      return 'INTEGER';
    default: // int / integer
      return t.unsigned ? 'BIGINT' : 'INTEGER';
  }
}

/**
 * The warehouse column type for a MySQL column type. Lossless by design: exact numerics stay exact, unsigned types
 * widen, text sizes fit the warehouse's limits (Redshift VARCHAR is in bytes, hence ×4 for utf8mb4).
 */
export function warehouseType(columnType: string, warehouse: Warehouse): string {
  const t = parseMysqlType(columnType);
  const rs = warehouse === 'redshift';
  const kind = jsonKind(t);
  switch (kind) {
    case 'number':
      if (t.base === 'float') return 'REAL';
      if (t.base === 'double' || t.base === 'real') return 'DOUBLE PRECISION';
      if (t.base === 'year') return 'SMALLINT';
      return intType(t);
    case 'int-string':
      return t.unsigned ? 'DECIMAL(20,0)' : 'BIGINT';
    case 'decimal-string': {
      const p = t.length ?? 10;
      const s = t.scale ?? 0;
      // MySQL allows DECIMAL(65,30); Redshift stops at 38 digits: keep such values exact as text.
      if (rs && p > REDSHIFT_MAX_DECIMAL_PRECISION) return 'VARCHAR(68)';
      return `DECIMAL(${p},${s})`;
    }
    case 'string':
      if (t.base === 'char' || t.base === 'varchar') {
        return rs ? `VARCHAR(${utf8Bytes(t.length ?? 1)})` : `VARCHAR(${t.length ?? 1})`;
      }
      if (Object.hasOwn(MARIADB_BINARY_TEXT_TYPES, t.base)) {
        return rs ? `VARCHAR(${MARIADB_BINARY_TEXT_TYPES[t.base]!.chars})` : 'TEXT';
      }
      if (t.base === 'enum' || t.base === 'set') {
        const labels = t.values ?? [];
        const longest =
          t.base === 'enum'
            ? Math.max(1, ...labels.map((l) => Buffer.byteLength(l)))
            : Math.max(
                1,
                labels.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0),
              );
        return rs ? `VARCHAR(${Math.min(longest, REDSHIFT_MAX_VARCHAR)})` : 'TEXT';
      }
      // TEXT types, and an unknown type's fallback text (its width is unknown too).
      return rs ? `VARCHAR(${REDSHIFT_MAX_VARCHAR})` : 'TEXT';
    case 'date':
      return 'DATE';
    case 'datetime':
      return rs ? 'TIMESTAMP' : 'TIMESTAMP(6)';
    case 'timestamp':
      return rs ? 'TIMESTAMPTZ' : 'TIMESTAMPTZ(6)';
    case 'time':
      return 'VARCHAR(20)';
    case 'bits':
      return `VARCHAR(${t.length ?? 1})`;
    case 'base64':
      return rs ? `VARBYTE(${REDSHIFT_MAX_VARBYTE})` : 'BYTEA';
    case 'json':
      return rs ? 'SUPER' : 'JSONB';
  }
}

/** True for the zero dates MySQL allows in DATE/DATETIME/TIMESTAMP columns (no warehouse can store them). */
export function isZeroDate(value: string): boolean {
  return /^0000-00-00/.test(value) || /-00(?:[ T]|$)/.test(value.slice(0, 11));
}

/** How a replica column of type `existing` follows a source type change whose warehouse type is `incoming`. */
export type TypeChangePlan =
  /** The existing column holds every value of the new type: nothing to do. */
  | { readonly kind: 'holds' }
  /** Widen VARCHAR in place (the one ALTER COLUMN TYPE Redshift has). */
  | { readonly kind: 'widen-varchar'; readonly to: string }
  /** Rebuild the column under a type holding both (add, copy, drop, rename: lossless). */
  | { readonly kind: 'rebuild'; readonly to: string }
  /** No warehouse type holds both exactly: the replica must be rebuilt from the source (resync). */
  | { readonly kind: 'incompatible' };

const VARCHAR_TYPE = /^VARCHAR\((\d+)\)$/i;
const DECIMAL_TYPE = /^DECIMAL\((\d+),(\d+)\)$/i;
const INT_DIGITS: Record<string, number> = { SMALLINT: 5, INTEGER: 10, BIGINT: 19 };

/** Integer digits and scale of an exact numeric warehouse type, or undefined. */
function exactNumeric(t: string): { int: number; scale: number; integer: boolean } | undefined {
  const u = t.toUpperCase();
  if (u in INT_DIGITS) return { int: INT_DIGITS[u]!, scale: 0, integer: true };
  const m = DECIMAL_TYPE.exec(u);
  return m ? { int: Number(m[1]) - Number(m[2]), scale: Number(m[2]), integer: false } : undefined;
}

/**
 * The schema-change lattice shared by the producer (to decide on a resync) and the merge (to follow a change in
 * place): integers widen to wider integers or decimals, decimals to a precision and scale holding both, REAL to
 * DOUBLE PRECISION, VARCHAR(n) to a longer VARCHAR; a narrower source type fits the existing column. Anything else
 * (INT → VARCHAR, DOUBLE → DECIMAL, …) is incompatible.
 */
export function planTypeChange(existing: string, incoming: string, warehouse: Warehouse): TypeChangePlan {
  const a = existing.toUpperCase();
  const b = incoming.toUpperCase();
  if (a === b) return { kind: 'holds' };
  const va = VARCHAR_TYPE.exec(a);
  const vb = VARCHAR_TYPE.exec(b);
  if (va && vb) return Number(vb[1]) <= Number(va[1]) ? { kind: 'holds' } : { kind: 'widen-varchar', to: b };
  if (a === 'TEXT' && vb) return { kind: 'holds' };
  if (va && b === 'TEXT') return { kind: 'widen-varchar', to: 'TEXT' };
  if (a === 'DOUBLE PRECISION' && b === 'REAL') return { kind: 'holds' };
  if (a === 'REAL' && b === 'DOUBLE PRECISION') return { kind: 'rebuild', to: b };
  const na = exactNumeric(a);
  const nb = exactNumeric(b);
  if (na && nb) {
    const int = Math.max(na.int, nb.int);
    const scale = Math.max(na.scale, nb.scale);
    if (na.int >= nb.int && na.scale >= nb.scale) return { kind: 'holds' };
    if (na.integer && nb.integer) return { kind: 'rebuild', to: b };
    const max = warehouse === 'redshift' ? REDSHIFT_MAX_DECIMAL_PRECISION : 1000;
    if (int + scale > max) return { kind: 'incompatible' };
    return { kind: 'rebuild', to: `DECIMAL(${int + scale},${scale})` };
  }
  return { kind: 'incompatible' };
}

/**
 * Why a text value cannot be stored by a warehouse: MySQL text may hold U+0000, which PostgreSQL refuses in text and
 * Redshift's COPY fails on. The warehouse stores NULL for it (docs/merge.md, "Values the warehouse cannot hold").
 */
export function unrepresentableText(text: string): 'NUL character' | undefined {
  return text.includes('\u0000') ? 'NUL character' : undefined;
}

/** Why a date value cannot be stored by a warehouse (docs/merge.md, "Values the warehouse cannot hold"). */
export type DateProblem = 'zero date' | 'invalid date';

const DATE_PREFIX = /^(\d{4})-(\d{2})-(\d{2})/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Why the date part of a DATE/DATETIME/TIMESTAMP event value has no warehouse equivalent, or undefined when it has
 * one. Text that does not start with `YYYY-MM-DD` is not judged here (it is not a date the event format produces).
 */
/** Zero, partial-zero and impossible calendar dates (and year 0): the warehouse stores NULL for them. */
export function unrepresentableDate(text: string): DateProblem | undefined {
  const m = DATE_PREFIX.exec(text);
  if (!m) return undefined;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (month === 0 || day === 0) return 'zero date';
  if (year === 0 || month > 12 || day > daysInMonth(year, month)) return 'invalid date';
  return undefined;
}
