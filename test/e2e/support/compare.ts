import type mysql from 'mysql2/promise';
import type pg from 'pg';

/**
 * Canonical text of a value on either side, so that source and replica rows compare exactly:
 * - NULL → 'NULL'; binary → hex;
 * - date-times → 'YYYY-MM-DD HH:MM:SS.ffffff' (fraction padded to 6 digits, zone suffix dropped: both sides are
 *   read in UTC — MySQL TIMESTAMP through a UTC session, PostgreSQL TIMESTAMPTZ with TimeZone=UTC);
 * - JSON documents → compact JSON;
 * - everything else its string form (DECIMAL keeps its scale on both sides; integers print the same).
 */
export function canon(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (Buffer.isBuffer(v)) return v.toString('hex');
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return JSON.stringify(v); // a JSON column the driver parsed
  const s = String(v);
  if (/^[[{]/.test(s)) {
    try {
      return JSON.stringify(JSON.parse(s)); // JSON text: compare documents, not spacing
    } catch {
      // not JSON after all
    }
  }
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(?:Z|[+-]\d{2}(?::?\d{2})?)?$/.exec(s);
  if (m) return `${m[1]} ${m[2]}.${(m[3] ?? '').padEnd(6, '0')}`;
  return s;
}

export async function sourceRows(
  db: mysql.Connection,
  database: string,
  table: string,
  columns: string[],
  key: string[],
): Promise<string[]> {
  const [rows] = await db.query(
    `SELECT ${columns.map((c) => `\`${c}\``).join(', ')} FROM \`${database}\`.\`${table}\` ORDER BY ${key.map((k) => `\`${k}\``).join(', ')}`,
  );
  return (rows as Record<string, unknown>[]).map((r) => columns.map((c) => canon(r[c])).join('|'));
}

export async function replicaRows(
  client: pg.ClientBase,
  schema: string,
  table: string,
  columns: string[],
  key: string[],
): Promise<string[]> {
  const res = await client.query(
    // Ordered by the typed columns (t."k"), not by the text aliases, to match MySQL's order.
    `SELECT ${columns.map((c) => `t."${c}"::text AS "${c}"`).join(', ')} FROM "${schema}"."${table}" t ORDER BY ${key.map((k) => `t."${k}"`).join(', ')}`,
  );
  return res.rows.map((r: Record<string, unknown>) => columns.map((c) => canon(r[c])).join('|'));
}

/**
 * A keyless replica (a view with `_cdc_count` per distinct row) as one canonical line per row it stands for, sorted;
 * compare with `sourceRows(…, columns, columns)` sorted the same way (MySQL and PostgreSQL order NULLs differently).
 */
export async function keylessReplicaRows(
  client: pg.ClientBase,
  schema: string,
  table: string,
  columns: string[],
): Promise<string[]> {
  const res = await client.query(
    `SELECT ${columns.map((c) => `"${c}"::text AS "${c}"`).join(', ')}, "_cdc_count"::int AS "_cdc_count" FROM "${schema}"."${table}"`,
  );
  return res.rows
    .flatMap((r: Record<string, unknown>) =>
      Array.from({ length: Number(r._cdc_count) }, () => columns.map((c) => canon(r[c])).join('|')),
    )
    .sort();
}
