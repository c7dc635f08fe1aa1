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
}

/**
 * `(a, b) > (?, ?)` expanded as `a > ? OR (a = ? AND b > ?)`, which every MySQL/MariaDB version turns into a range
 * on the primary key.
 */
export function keysetPredicate(pk: readonly string[]): { sql: string; params: (i: readonly unknown[]) => unknown[] } {
  const parts: string[] = [];
  const order: number[] = [];
  for (let i = 0; i < pk.length; i++) {
    const eq = pk.slice(0, i).map((k, j) => {
      order.push(j);
      return `${ident(k)} = ?`;
    });
    order.push(i);
    parts.push(eq.length > 0 ? `(${eq.join(' AND ')} AND ${ident(pk[i]!)} > ?)` : `${ident(pk[i]!)} > ?`);
  }
  return { sql: `(${parts.join(' OR ')})`, params: (key) => order.map((i) => key[i]) };
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
  if (input.after) {
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
