import type mysql from 'mysql2/promise';
import type pg from 'pg';
import { waitFor } from '../../../local/services/process';
import { replicaRows, sourceRows } from './compare';

/** A source table's columns in order and its primary key columns. */
export async function tableShape(
  db: mysql.Connection,
  database: string,
  table: string,
): Promise<{ columns: string[]; key: string[] }> {
  const [cols] = await db.query(
    'SELECT column_name AS c, column_key AS k FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position',
    [database, table],
  );
  const list = cols as { c: string; k: string }[];
  return { columns: list.map((r) => r.c), key: list.filter((r) => r.k === 'PRI').map((r) => r.c) };
}

/**
 * Waits until every replica equals its source table row by row (canonical value text of compare.ts, both sides
 * ordered by the primary key); on timeout the error names the first table and row that still differ.
 */
export async function waitForReplicas(
  warehouse: pg.Pool,
  replicaSchema: string,
  db: mysql.Connection,
  database: string,
  tables: readonly string[],
  timeoutMs = 60_000,
): Promise<void> {
  const client = await warehouse.connect();
  await client.query("SET TIME ZONE 'UTC'");
  let lastDiff = 'none yet';
  try {
    await waitFor(
      'replicas to equal the source row by row',
      async () => {
        for (const t of tables) {
          const { columns, key } = await tableShape(db, database, t);
          const src = await sourceRows(db, database, t, columns, key);
          const rep = await replicaRows(client, replicaSchema, t, columns, key).catch((e: Error) => [
            `error: ${e.message}`,
          ]);
          if (JSON.stringify(src) !== JSON.stringify(rep)) {
            const i = src.findIndex((r, j) => r !== rep[j]);
            const at = i === -1 ? src.length : i;
            lastDiff = `${t}: source ${src.length} rows, replica ${rep.length} rows; first difference at ${at}: source ${JSON.stringify(src[at])} replica ${JSON.stringify(rep[at])}`;
            return false;
          }
        }
        return true;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\nlast difference: ${lastDiff}`);
  } finally {
    client.release();
  }
}

/**
 * Every row of a replica table as PostgreSQL prints the whole row (the pipeline's own columns included), ordered by
 * the given key: two snapshots are equal only if nothing in the table changed.
 */
export async function replicaSnapshot(
  client: pg.ClientBase,
  schema: string,
  table: string,
  key: readonly string[],
): Promise<string[]> {
  const res = await client.query(
    `SELECT t::text AS r FROM "${schema}"."${table}" t ORDER BY ${key.map((k) => `t."${k}"`).join(', ')}`,
  );
  return res.rows.map((r: { r: string }) => r.r);
}
