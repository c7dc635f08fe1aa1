import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { type MergeContext, resetSchemaCache } from '../../../lambdas/merge/src/merge';
import { PostgresWarehouse } from '../../../lambdas/merge/src/postgres-client';
import { type PostgresServer, startPostgres } from '../../../local/services/postgres';

export interface PgHarness {
  server: PostgresServer;
  pool: pg.Pool;
  ctx(opts?: { history?: string[]; replicaSchema?: string }): MergeContext;
  rows(sql: string): Promise<Record<string, unknown>[]>;
  /** Drops every schema the merge created (fresh state per test). */
  reset(): Promise<void>;
  close(): Promise<void>;
}

export async function startPgHarness(): Promise<PgHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'cdc-merge-'));
  const server = await startPostgres({ dir });
  const pool = new pg.Pool({ connectionString: server.url, max: 4 });
  return {
    server,
    pool,
    ctx: (opts = {}) => ({
      warehouse: new PostgresWarehouse(pool),
      naming: { stateSchema: 'cdc', ...(opts.replicaSchema ? { replicaSchema: opts.replicaSchema } : {}) },
      historyTables: new Set(opts.history ?? []),
      sleep: async () => undefined,
    }),
    rows: async (sql) => (await pool.query(sql)).rows as Record<string, unknown>[],
    reset: async () => {
      resetSchemaCache();
      const schemas = await pool.query(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'public')",
      );
      for (const r of schemas.rows) await pool.query(`DROP SCHEMA "${r.nspname}" CASCADE`);
    },
    close: async () => {
      await pool.end();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One PostgreSQL for the test file (started before its tests, stopped after) with the merge's schemas dropped before
 * each test; returns the harness once it runs.
 */
export function usePgHarness(): () => PgHarness {
  let h: PgHarness | undefined;
  beforeAll(async () => {
    h = await startPgHarness();
  });
  afterAll(async () => {
    await h?.close();
  });
  beforeEach(async () => {
    await h!.reset();
  });
  return () => h!;
}
