/**
 * `cdc resync <db.table> [--no-follow] [--timeout <s>]`: rebuilds a table's replica from a fresh read of the source,
 * while every other table keeps flowing (what zero-ETL calls a resync). The request goes through the signal table, so
 * it has its place in the binlog: the producer emits a `resync` event there (the merge empties the replica and starts
 * it anew from that position, docs/merge.md) and then backfills the whole table; this command follows that backfill.
 */
import mysql from 'mysql2/promise';
import { requestResync } from '../../../containers/producer/src/signal-table';
import { SnapshotReader } from '../../../containers/producer/src/snapshot-reader';
import { CliError } from '../errors';
import type { Output } from '../output';
import type { Target } from '../target';
import { followJob } from './backfill';

export interface ResyncOptions {
  readonly db: string;
  readonly table: string;
  readonly follow: boolean;
  /** Give up following after this long (the job goes on). @default no limit */
  readonly timeoutS?: number | undefined;
  readonly pollMs?: number;
}

export async function resync(t: Target, opts: ResyncOptions, out: Output): Promise<number> {
  const name = `${opts.db}.${opts.table}`;
  // Refuse what the producer could not finish, before the replica is emptied.
  const reader = await SnapshotReader.connect(t.source);
  try {
    const shape = await reader.describe(opts.db, opts.table);
    if (!shape) throw new CliError('NOT_FOUND', `${name} does not exist in the source`);
  } finally {
    await reader.close();
  }
  const conn = await mysql.createConnection({ ...t.source });
  let id: string;
  try {
    id = await requestResync(conn, t.signalTable, { table: name, pipeline: t.pipelineId });
  } finally {
    await conn.end();
  }
  return followJob(t, id, name, 'resync', opts, out);
}
