/**
 * `cdc backfill <db.table> [--where <sql>] [--no-follow]`: asks the producer (through the signal table, so the
 * request has its place in the binlog) to read a table, or the rows of a WHERE, again while it keeps streaming, then
 * follows the job in the checkpoint store with a progress bar until it is done.
 */
import mysql from 'mysql2/promise';
import { requestBackfill } from '../../../containers/producer/src/signal-table';
import { parseState, progressOf, type SnapshotJob } from '../../../containers/producer/src/snapshot-progress';
import { SnapshotReader } from '../../../containers/producer/src/snapshot-reader';
import { CliError } from '../errors';
import { bar, count, duration, type Output } from '../output';
import type { Target } from '../target';

export interface BackfillOptions {
  readonly db: string;
  readonly table: string;
  readonly where?: string | undefined;
  readonly follow: boolean;
  /** Give up following after this long (the job goes on). @default no limit */
  readonly timeoutS?: number | undefined;
  readonly pollMs?: number;
}

export function progressLine(job: SnapshotJob, now: number): string {
  const p = progressOf(job, now);
  const total = Math.max(job.rowsEstimate, job.rowsRead);
  return `${job.db}.${job.table} ${bar(p.fraction)} ${count(job.rowsRead)}/${count(total)} rows, ${count(p.rowsPerS)} rows/s, ETA ${duration(p.etaS)}`;
}

export async function backfill(t: Target, opts: BackfillOptions, out: Output): Promise<number> {
  // Refuse what the producer would refuse, before writing anything.
  const reader = await SnapshotReader.connect(t.source);
  try {
    const shape = await reader.describe(opts.db, opts.table);
    if (!shape) throw new CliError('NOT_FOUND', `${opts.db}.${opts.table} does not exist in the source`);
    if (shape.pk.length === 0 && opts.where) {
      throw new CliError(
        'REFUSED',
        `${opts.db}.${opts.table} has no primary key: it is backfilled whole, never with --where (the rows it selects would be counted twice)`,
      );
    }
    if (opts.where) {
      await reader.estimate(opts.db, opts.table, opts.where).catch((err: Error) => {
        throw new CliError(
          'USAGE',
          `--where ${JSON.stringify(opts.where)} is not valid for ${opts.db}.${opts.table}: ${err.message}`,
        );
      });
    }
  } finally {
    await reader.close();
  }
  const conn = await mysql.createConnection({ ...t.source });
  let id: string;
  try {
    id = await requestBackfill(conn, t.signalTable, {
      table: `${opts.db}.${opts.table}`,
      where: opts.where,
      pipeline: t.pipelineId,
    });
  } finally {
    await conn.end();
  }
  return followJob(t, id, `${opts.db}.${opts.table}`, 'backfill', opts, out);
}

/**
 * Follows a snapshot job (backfill or resync) in the checkpoint store with a progress bar until it is done, failed,
 * or `timeoutS` passed; prints the job (`--json`) and a summary. Exit code 0 when done.
 */
export async function followJob(
  t: Target,
  id: string,
  name: string,
  what: string,
  opts: { readonly follow: boolean; readonly timeoutS?: number | undefined; readonly pollMs?: number },
  out: Output,
): Promise<number> {
  const item = await t.store.read();
  const running = !!item?.leaseOwner && (item.leaseExpires ?? 0) > Date.now();
  out.say(`${what} requested: job ${id}${running ? '' : ' (no producer is running: it starts when one does)'}`);
  if (!opts.follow) {
    out.result({ job: id, status: 'requested' });
    return 0;
  }
  const started = Date.now();
  let last: SnapshotJob | undefined;
  for (;;) {
    const job = parseState((await t.store.read())?.snapshot).jobs.find((j) => j.id === id);
    const now = Date.now();
    if (job) {
      last = job;
      if (job.status === 'running' || job.status === 'done') out.progress(progressLine(job, now));
      if (job.status === 'done' || job.status === 'failed') break;
    } else {
      out.progress(`${name} waiting for the producer to read the request…`);
    }
    if (opts.timeoutS !== undefined && now - started > opts.timeoutS * 1000) {
      out.done();
      out.result({ job: id, status: last?.status ?? 'requested', rowsRead: last?.rowsRead ?? 0 });
      throw new CliError('FAILED', `stopped following after ${opts.timeoutS} s; the job goes on (cdc status shows it)`);
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
  }
  out.done();
  out.result(last);
  if (last.status === 'failed') throw new CliError('FAILED', `${what} ${id} failed: ${last.error}`);
  const secs = ((last.finishedAt ?? Date.now()) - (last.startedAt ?? started)) / 1000;
  out.say(
    `done: ${count(last.rowsEmitted)} rows of ${name} emitted (${count(last.rowsRead)} read in ${last.chunks} chunks, ${duration(secs)})`,
  );
  return 0;
}
