import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Dialect } from './dialect';
import { ident } from './dialect';
import { postgresDialect } from './dialect-postgres';
import { MergeError, RetriableMergeError } from './errors';
import type { Step } from './merge-plan';
import { CSV_NULL } from './stage-csv';
import type { WarehouseClient } from './warehouse-client';

/** SQLSTATEs that mean "try again": serialization failure, deadlock, lock timeout. */
const RETRIABLE = new Set(['40001', '40P01', '55P03']);

function wrap(err: unknown, statement?: string): Error {
  const e = err as { code?: string; message?: string };
  if (e.code && RETRIABLE.has(e.code)) {
    return new RetriableMergeError('SERIALIZATION_CONFLICT', `${e.message} (SQLSTATE ${e.code})`, statement);
  }
  return new RetriableMergeError(
    'WAREHOUSE_STATEMENT_FAILED',
    `${e.message ?? String(err)}${statement ? ` in statement: ${statement.slice(0, 500)}` : ''}`,
    statement,
  );
}

/** PostgreSQL through a `pg` pool; the staging CSV is streamed with COPY FROM STDIN. */
export class PostgresWarehouse implements WarehouseClient {
  readonly dialect: Dialect = postgresDialect;

  constructor(private readonly pool: pg.Pool) {}

  async query(sql: string): Promise<Record<string, unknown>[]> {
    try {
      return (await this.pool.query(sql)).rows as Record<string, unknown>[];
    } catch (err) {
      throw wrap(err, sql);
    }
  }

  async executeAll(statements: readonly string[]): Promise<void> {
    for (const s of statements) await this.query(s);
  }

  stageLocation(): undefined {
    return undefined;
  }

  async runTransaction(steps: readonly Step[], csv: string): Promise<void> {
    const client = await this.pool.connect();
    let current: string | undefined;
    try {
      await client.query('BEGIN');
      for (const step of steps) {
        if (step.kind === 'load') {
          current = `COPY ${ident(step.table)} (${step.columns.map(ident).join(', ')}) FROM STDIN WITH (FORMAT csv, NULL '${CSV_NULL}')`;
          // Chunks stream in as they are built (PostgreSQL parses one while the next is formatted).
          const body = step.csvChunks ? step.csvChunks() : [step.csv ?? csv];
          await pipeline(Readable.from(body), client.query(copyFrom(current)));
        } else {
          current = step.sql;
          await client.query(step.sql);
        }
      }
      current = 'COMMIT';
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      // A value the CSV cannot hold, found while streaming it, stays what it is (a poison batch), not a failed COPY.
      throw err instanceof MergeError ? err : wrap(err, current);
    } finally {
      client.release();
    }
  }
}
