/**
 * SQL for reading a table in primary-key order, one chunk at a time (keyset pagination: each chunk starts after the
 * last key of the previous one, so every chunk is an index range scan however far the snapshot has come). A table
 * without a primary key is read whole, in no order (one chunk: snapshotter.ts). Pure.
 */

const ident = (name: string) => `\`${name.replace(/`/g, '``')}\``;

/** A key column value as stored in the snapshot progress (JSON): binary values as base64. */
export type KeyValue = string | number | { readonly b64: string } | null;

export interface ChunkQueryInput {
  readonly db: string;
  readonly table: string;
  readonly columns: readonly string[];
  readonly pk: readonly string[];
  /** Last key of the previous chunk; undefined for the first chunk. */
  readonly after?: readonly KeyValue[] | undefined;
  /** An operator's WHERE clause (backfill of a key range), ANDed in parentheses. */
  readonly where?: string | undefined;
  readonly limit: number;
  /**
   * Key values written into the SQL as literals (`sqlLiteral`) instead of `?` parameters, for reads through the text
   * protocol (a plain query, which has no server-side parameters). @default false
   */
  readonly literals?: boolean;
}

/**
 * `(a, b) > (?, ?)` expanded as `a > ? OR (a = ? AND b > ?)`, which every MySQL/MariaDB version turns into a range
 * on the primary key.
 */
export function keysetPredicate(pk: readonly string[]): { sql: string; params: (i: readonly unknown[]) => unknown[] } {
  const order: number[] = [];
  const sql = keysetSql(pk, (i) => {
    order.push(i);
    return '?';
  });
  return { sql, params: (key) => order.map((i) => key[i]) };
}

/** The keyset predicate with each key value (by its index in the key) written by `value`. */
function keysetSql(pk: readonly string[], value: (i: number) => string): string {
  const parts: string[] = [];
  for (let i = 0; i < pk.length; i++) {
    const eq = pk.slice(0, i).map((k, j) => `${ident(k)} = ${value(j)}`);
    const gt = `${ident(pk[i]!)} > ${value(i)}`;
    parts.push(eq.length > 0 ? `(${eq.join(' AND ')} AND ${gt})` : gt);
  }
  return `(${parts.join(' OR ')})`;
}

/**
 * A key value as an SQL literal that reads the same whatever the session's sql_mode (no backslash escapes, so
 * NO_BACKSLASH_ESCAPES cannot change it): integers as digits, text as a utf8mb4 hex literal (the column's collation
 * applies in the comparison, as with a `?` parameter), bytes as a hex literal.
 * @throws for a value a key read never holds (a fraction, a non-finite number, an object)
 */
export function sqlLiteral(v: unknown): string {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  if (typeof v === 'string') return v === '' ? "''" : `_utf8mb4 X'${Buffer.from(v, 'utf8').toString('hex')}'`;
  if (Buffer.isBuffer(v)) return v.length === 0 ? "X''" : `X'${v.toString('hex')}'`;
  throw new Error(`key value ${String(v)} (${typeof v}) has no SQL literal form for a chunk read`);
}

export function decodeKeyValue(v: KeyValue): unknown {
  return v !== null && typeof v === 'object' ? Buffer.from(v.b64, 'base64') : v;
}

export function encodeKeyValue(v: unknown): KeyValue {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return { b64: v.toString('base64') };
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return v.toString();
  return String(v);
}

export function buildChunkQuery(input: ChunkQueryInput): { sql: string; params: unknown[] } {
  const keyless = input.pk.length === 0;
  if (keyless && input.after) throw new Error(`${input.db}.${input.table} has no primary key: nothing to read after`);
  const conditions: string[] = [];
  let params: unknown[] = [];
  if (input.where) conditions.push(`(${input.where})`);
  if (input.after && input.literals) {
    const key = input.after.map(decodeKeyValue);
    conditions.push(keysetSql(input.pk, (i) => sqlLiteral(key[i])));
  } else if (input.after) {
    const k = keysetPredicate(input.pk);
    conditions.push(k.sql);
    params = k.params(input.after.map(decodeKeyValue));
  }
  const sql =
    `SELECT ${input.columns.map(ident).join(', ')} FROM ${ident(input.db)}.${ident(input.table)}` +
    (conditions.length > 0 ? ` WHERE ${conditions.join(' AND ')}` : '') +
    (keyless ? '' : ` ORDER BY ${input.pk.map(ident).join(', ')}`) +
    ` LIMIT ${Math.floor(input.limit)}`;
  return { sql, params };
}
