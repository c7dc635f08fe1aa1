/**
 * Merge of mixed changes (60% updates, 20% inserts, 20% deletes) into a large replica on local PostgreSQL, against
 * two references measured in the same run on the same server:
 * - per-row upserts as a JDBC sink applies them: one INSERT … ON CONFLICT DO UPDATE or DELETE per change, 500
 *   changes per transaction over one connection (each batch sent as one multi-statement round trip, which is as
 *   favourable to the reference as JDBC batching gets);
 * - a plain COPY of the same rows into an empty table (the floor no merge can beat).
 * Full run: 100k changes into 1M rows; --quick: 10k into 100k.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { postgresDialect } from '../lambdas/merge/src/dialect-postgres';
import { mergeEvents, resetSchemaCache } from '../lambdas/merge/src/merge';
import { PostgresWarehouse } from '../lambdas/merge/src/postgres-client';
import { buildStageCsv } from '../lambdas/merge/src/stage-csv';
import { modelFromEvents } from '../lambdas/merge/src/table-model';
import { startPostgres } from '../local/services/postgres';
import type { ChangeEvent } from '../shared/change-event';
import { TableEvents } from '../test/merge/support/event-factory';
import type { Figures } from './figures';

const COLUMNS = {
  id: 'bigint(20)',
  customer_id: 'int(11)',
  status: "enum('new','paid','packed','shipped','delivered')",
  total: 'decimal(12,2)',
  updated_at: 'datetime(6)',
  note: 'varchar(100)',
};
const STATUSES = ['new', 'paid', 'packed', 'shipped', 'delivered'];

function row(id: number, v: number) {
  return {
    id: String(id),
    customer_id: (id * 7919) % 100_000,
    status: STATUSES[v % 5]!,
    total: `${(id % 1000) + v}.${String(v % 100).padStart(2, '0')}`,
    updated_at: `2026-11-23 10:${String(v % 60).padStart(2, '0')}:00.${String(v % 1_000_000).padStart(6, '0')}`,
    note: `order ${id} v${v}`,
  };
}

function changes(tableRows: number, n: number): ChangeEvent[] {
  const t = new TableEvents('bench', 'orders', COLUMNS);
  const events: ChangeEvent[] = [];
  let nextId = tableRows + 1;
  // Deterministic pseudo-random keys (LCG in 32-bit integer arithmetic: the float form used until 2026-11-30 lost
  // precision and cycled through 6,335 existing keys; this one touches ~77k of the 80k updated or deleted).
  let seed = 42;
  const rand = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return seed / 2147483648;
  };
  for (let i = 0; i < n; i++) {
    const r = rand();
    const id = 1 + Math.floor(rand() * tableRows);
    if (r < 0.6) events.push(t.update(row(id, 0), row(id, i + 1)));
    else if (r < 0.8) events.push(t.insert(row(nextId++, i)));
    else events.push(t.delete(row(id, 0)));
  }
  return events;
}

function lit(v: unknown): string {
  return v === null ? 'NULL' : `'${String(v).replace(/'/g, "''")}'`;
}

export async function run({ quick }: { quick: boolean }): Promise<Figures> {
  const tableRows = quick ? 100_000 : 1_000_000;
  const n = quick ? 10_000 : 100_000;
  const dir = mkdtempSync(join(tmpdir(), 'cdc-bench-merge-'));
  const server = await startPostgres({ dir });
  const pool = new pg.Pool({ connectionString: server.url, max: 2 });
  try {
    const events = changes(tableRows, n);
    const ctx = {
      warehouse: new PostgresWarehouse(pool),
      naming: { stateSchema: 'cdc' },
      historyTables: new Set<string>(),
    };
    resetSchemaCache();
    // Seed the replica with tableRows rows through the merge's own tables, then fill by SQL.
    const seed = new TableEvents('bench', 'orders', COLUMNS);
    await mergeEvents([seed.insert(row(0, 0))], 'seed', ctx);
    const fill = (target: string, extra: string) =>
      pool.query(
        `INSERT INTO ${target} SELECT g, (g::bigint * 7919) % 100000, 'new', ((g % 1000) || '.00')::numeric, '2026-11-23 10:00:00', 'order ' || g || ' v0'${extra} FROM generate_series(1, ${tableRows}) g`,
      );
    await fill('bench.orders', ", '000000.000000000000.00000000', 'read', now(), now()");
    // The keys table holds tombstones only (docs/merge.md): a tenth of the table's size of keys deleted earlier,
    // none of them touched by the batch.
    await pool.query(
      `INSERT INTO cdc.bench__orders__keys SELECT -g, '000000.000000000000.00000000', true FROM generate_series(1, ${tableRows / 10}) g`,
    );
    await pool.query('CREATE SCHEMA perrow');
    await pool.query(
      'CREATE TABLE perrow.orders (id BIGINT PRIMARY KEY, customer_id INTEGER, status TEXT, total DECIMAL(12,2), updated_at TIMESTAMP(6), note VARCHAR(100))',
    );
    await fill('perrow.orders', '');
    await pool.query('CREATE TABLE perrow.copy_target (LIKE perrow.orders)');
    await pool.query('VACUUM ANALYZE');

    // 1. The merge (CSV building, COPY, the planned statements), as one batch.
    let t0 = performance.now();
    await mergeEvents(events, 'bench-batch', ctx);
    const mergeS = (performance.now() - t0) / 1000;

    // 2. Per-row upserts/deletes, 500 per transaction, one connection.
    const client = await pool.connect();
    t0 = performance.now();
    for (let i = 0; i < events.length; i += 500) {
      const stmts = events.slice(i, i + 500).map((e) => {
        if (e.op === 'delete') return `DELETE FROM perrow.orders WHERE id = ${lit(e.before!.id)}`;
        const a = e.after!;
        return (
          `INSERT INTO perrow.orders VALUES (${[a.id, a.customer_id, a.status, a.total, a.updated_at, a.note].map(lit).join(', ')}) ` +
          'ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id, status = EXCLUDED.status, total = EXCLUDED.total, ' +
          'updated_at = EXCLUDED.updated_at, note = EXCLUDED.note'
        );
      });
      await client.query(`BEGIN; ${stmts.join('; ')}; COMMIT`);
    }
    const perRowS = (performance.now() - t0) / 1000;

    // 3. Plain COPY of the same rows (images of the same events) into an empty table.
    const model = modelFromEvents(events, 'postgres');
    const csv = buildStageCsv(events, model, postgresDialect)
      .split('\n')
      .map((l) => l.split(',').slice(0, 6).join(','))
      .join('\n');
    t0 = performance.now();
    await pipeline(
      Readable.from([csv]),
      client.query(copyFrom("COPY perrow.copy_target FROM STDIN WITH (FORMAT csv, NULL '\\N')")),
    );
    const copyS = (performance.now() - t0) / 1000;
    client.release();

    // Both ways must agree before their speeds are compared.
    const diff = await pool.query(
      'SELECT count(*)::int AS n FROM ((SELECT id, status, total, note FROM bench.orders WHERE id <> 0 EXCEPT SELECT id, status, total, note FROM perrow.orders) ' +
        'UNION ALL (SELECT id, status, total, note FROM perrow.orders EXCEPT SELECT id, status, total, note FROM bench.orders)) d',
    );
    if (diff.rows[0].n !== 0) throw new Error(`merge and per-row replicas differ in ${diff.rows[0].n} rows`);

    const mergeRate = Math.round(n / mergeS);
    const perRowRate = Math.round(n / perRowS);
    const copyRate = Math.round(n / copyS);
    const notes = `${n} changes into ${tableRows} rows (and ${tableRows / 10} tombstones of earlier deletes) on PostgreSQL 15 (local, fsync off)`;
    return {
      merge_rows_per_s: { value: mergeRate, unit: 'rows/s', notes },
      merge_vs_per_row_upsert: {
        value: mergeRate,
        unit: 'rows/s',
        reference: perRowRate,
        referenceName: 'per-row upsert/delete, 500 per transaction',
        ratio: Number((mergeRate / perRowRate).toFixed(2)),
        target: '≥ 5',
        notes,
      },
      merge_vs_copy: {
        value: mergeRate,
        unit: 'rows/s',
        reference: copyRate,
        referenceName: 'plain COPY into an empty table',
        ratio: Number((mergeRate / copyRate).toFixed(2)),
        target: '≥ 0.3',
        notes,
      },
    };
  } finally {
    await pool.end();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
