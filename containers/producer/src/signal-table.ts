/**
 * The signal table in the source database (`SIGNAL_TABLE`, default `cdc.cdc_signal`): the producer's channel through
 * the binlog, as Debezium's signalling table. Rows written here are never emitted as change events; the producer
 * recognises them when it reads them back from the binlog, at their exact position in the stream:
 * - `watermark` (one row per pipeline, upserted): the low and high watermark around each snapshot chunk;
 * - `backfill` (one row per request, written by `npx cdc backfill`): snapshot a table (or the rows of a WHERE) again;
 * - `resync` (one row per request, written by `npx cdc resync`): the replica of a table is rebuilt: a `resync` event at
 *   the signal's position, then a backfill of the whole table.
 * Whoever may write this table can make the producer run a SELECT with their WHERE clause: grant INSERT on it to
 * operators only.
 */
import { randomUUID } from 'node:crypto';
import type mysql from 'mysql2/promise';
import { useBackslashEscapes } from '../../../shared/mysql-session';

export interface SignalTableName {
  readonly db: string;
  readonly table: string;
}

/** `low`/`high` bracket a chunk; `mark` only makes a transaction boundary (progress saved while the source is idle). */
export type WatermarkKind = 'low' | 'high' | 'mark';

export type Signal =
  | { readonly type: 'watermark'; readonly id: string; readonly kind: WatermarkKind; readonly chunk: string }
  | {
      readonly type: 'backfill';
      readonly id: string;
      readonly table: string;
      readonly where: string | null;
      /** Only this pipeline acts on it; null: every pipeline capturing the table. */
      readonly pipeline: string | null;
    }
  | {
      readonly type: 'resync';
      readonly id: string;
      readonly table: string;
      /** Only this pipeline acts on it; null: every pipeline capturing the table. */
      readonly pipeline: string | null;
    }
  | { readonly type: 'unknown'; readonly id: string; readonly rawType: string };

export function parseSignalTableName(text: string): SignalTableName {
  const [db, table] = text.split('.');
  if (!db || !table) throw new Error(`signal table ${JSON.stringify(text)} is not db.table`);
  return { db, table };
}

const q = (name: string) => `\`${name.replace(/`/g, '``')}\``;

export function qualified(t: SignalTableName): string {
  return `${q(t.db)}.${q(t.table)}`;
}

function text(v: unknown): string {
  if (v === null || v === undefined) return '';
  return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

/** Reads a signal from a row image of the signal table (as the binlog reader decoded it). */
export function parseSignal(row: Record<string, unknown>): Signal {
  const id = text(row.id);
  const type = text(row.type);
  let data: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(text(row.data) || '{}') as unknown;
    if (typeof parsed === 'object' && parsed !== null) data = parsed as Record<string, unknown>;
  } catch {
    return { type: 'unknown', id, rawType: type };
  }
  if (
    type === 'watermark' &&
    (data.kind === 'low' || data.kind === 'high' || data.kind === 'mark') &&
    typeof data.chunk === 'string'
  ) {
    return { type, id, kind: data.kind, chunk: data.chunk };
  }
  if (type === 'backfill' && typeof data.table === 'string') {
    return {
      type,
      id,
      table: data.table,
      where: typeof data.where === 'string' && data.where.trim() !== '' ? data.where : null,
      pipeline: typeof data.pipeline === 'string' ? data.pipeline : null,
    };
  }
  if (type === 'resync' && typeof data.table === 'string') {
    return { type, id, table: data.table, pipeline: typeof data.pipeline === 'string' ? data.pipeline : null };
  }
  return { type: 'unknown', id, rawType: type };
}

export const SIGNAL_TABLE_DDL = (t: SignalTableName) =>
  `CREATE TABLE IF NOT EXISTS ${qualified(t)} (
  id VARCHAR(64) NOT NULL PRIMARY KEY,
  type VARCHAR(32) NOT NULL,
  data TEXT NULL,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
)`;

/** Creates the signal table (and its database) when missing. */
export async function ensureSignalTable(conn: mysql.Connection, t: SignalTableName): Promise<void> {
  await conn.query(`CREATE DATABASE IF NOT EXISTS ${q(t.db)}`);
  await conn.query(SIGNAL_TABLE_DDL(t));
}

/**
 * Writes one watermark. The row is upserted (one per pipeline), so the table does not grow with every chunk; the
 * binlog still carries every write, each with its own chunk id. `conn` is the snapshot reader's, whose session reads
 * backslash escapes whatever the server's sql_mode (shared/mysql-session.ts): the JSON is sent escaped.
 */
export async function writeWatermark(
  conn: mysql.Connection,
  t: SignalTableName,
  pipelineId: string,
  kind: WatermarkKind,
  chunk: string,
): Promise<void> {
  await conn.query(
    `INSERT INTO ${qualified(t)} (id, type, data) VALUES (?, 'watermark', ?) ` +
      'ON DUPLICATE KEY UPDATE type = VALUES(type), data = VALUES(data), created_at = CURRENT_TIMESTAMP(6)',
    [`watermark:${pipelineId}`.slice(0, 64), JSON.stringify({ kind, chunk })],
  );
}

/** Requests a backfill (what `npx cdc backfill` does); returns the request id, which is also the job id. */
export async function requestBackfill(
  conn: mysql.Connection,
  t: SignalTableName,
  request: { table: string; where?: string | undefined; pipeline?: string | undefined },
): Promise<string> {
  const id = `backfill-${randomUUID()}`;
  await useBackslashEscapes(conn); // the request's JSON is sent escaped
  await conn.query(`INSERT INTO ${qualified(t)} (id, type, data) VALUES (?, 'backfill', ?)`, [
    id,
    JSON.stringify({ table: request.table, where: request.where ?? null, pipeline: request.pipeline ?? null }),
  ]);
  return id;
}

/** Requests a resync of a table's replica (what `npx cdc resync` does); returns the request id, also the job id. */
export async function requestResync(
  conn: mysql.Connection,
  t: SignalTableName,
  request: { table: string; pipeline?: string | undefined },
): Promise<string> {
  const id = `resync-${randomUUID()}`;
  await useBackslashEscapes(conn); // the request's JSON is sent escaped
  await conn.query(`INSERT INTO ${qualified(t)} (id, type, data) VALUES (?, 'resync', ?)`, [
    id,
    JSON.stringify({ table: request.table, pipeline: request.pipeline ?? null }),
  ]);
  return id;
}
