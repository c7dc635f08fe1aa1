/**
 * Checks a `file:pos` start position against the server before reading from it, so that each way it can be wrong
 * gets its own code: a file no longer on the server is BINLOG_PURGED (a new snapshot is needed), a position inside
 * an event (or past the file's end) is POSITION_NOT_AN_EVENT_BOUNDARY (the operator picks a boundary with
 * `npx cdc set-position`). Without this check the server answers the dump of a mid-event position with error 1236
 * ("bogus data in log event", "binlog truncated in the middle of event"), which reads like a purged binlog.
 */
import type mysql from 'mysql2/promise';
import type { StartFrom } from './config';
import { ProducerError } from './errors';

interface BinaryLog {
  readonly Log_name: string;
  readonly File_size: number | string;
}

/** @throws ProducerError BINLOG_PURGED or POSITION_NOT_AN_EVENT_BOUNDARY */
export async function checkStartPosition(conn: mysql.Connection, file: string, pos: number): Promise<void> {
  const [logs] = await conn.query('SHOW BINARY LOGS');
  const list = logs as BinaryLog[];
  const log = list.find((l) => l.Log_name === file);
  if (!log) {
    throw new ProducerError(
      'BINLOG_PURGED',
      `binlog ${file} (position ${pos}) is no longer on the server (oldest: ${list[0]?.Log_name ?? 'none'}); a new snapshot is required, refusing to skip ahead`,
    );
  }
  const notABoundary = (why: string) =>
    new ProducerError(
      'POSITION_NOT_AN_EVENT_BOUNDARY',
      `${file}:${pos} is not the start of an event (${why}); the binlog is still on the server, nothing was purged. Move to an event boundary with npx cdc set-position (SHOW BINLOG EVENTS IN '${file}' lists them: column Pos)`,
    );
  // The end of a file is where the next event will be written (or where the next file begins).
  if (pos === Number(log.File_size)) return;
  if (pos > Number(log.File_size)) throw notABoundary(`the file is ${log.File_size} bytes long`);
  try {
    const [events] = await conn.query(`SHOW BINLOG EVENTS IN ${conn.escape(file)} FROM ${Number(pos)} LIMIT 1`);
    const first = (events as { Pos: number | string }[])[0];
    if (first && Number(first.Pos) === pos) return;
    throw notABoundary(first ? `the server reads an event at ${first.Pos} from there` : 'no event starts there');
  } catch (err) {
    if (err instanceof ProducerError) throw err;
    throw notABoundary(`the server: ${(err as Error).message}`);
  }
}

/**
 * The code for the server's refusal to send the binlog (error 1236) while reading: a start inside an event, or past a
 * file's end, is POSITION_NOT_AN_EVENT_BOUNDARY (the startup check catches a checkpoint's such position first; this
 * covers what reaches the server anyway), anything else (a file or GTID no longer on the server) BINLOG_PURGED.
 */
export function dumpRefusalCode(message: string): 'BINLOG_PURGED' | 'POSITION_NOT_AN_EVENT_BOUNDARY' {
  if (/could not find|purged/i.test(message)) return 'BINLOG_PURGED';
  return /bogus data in log event|middle of event|impossible position|position > file size|wrong offset/i.test(message)
    ? 'POSITION_NOT_AN_EVENT_BOUNDARY'
    : 'BINLOG_PURGED';
}

/** Where to start reading, and whether to snapshot every captured table first. */
export interface StartChoice {
  readonly from: Exclude<StartFrom, { kind: 'checkpoint' }>;
  readonly initialSnapshot: boolean;
  /** The log line that says why. */
  readonly reason: string;
}

/**
 * The start-position policy (pure): `START_FROM=checkpoint` resumes from the saved checkpoint (by GTID on MariaDB,
 * whose GTIDs survive a failover; by file and position on MySQL); without a checkpoint it starts at the binlog's end,
 * read as an explicit position before any watermark is written (so every watermark is read), with an initial
 * snapshot when `SNAPSHOT_MODE=initial`. Any other `START_FROM` is taken as it is, without a snapshot.
 */
export function chooseStart(input: {
  readonly requested: StartFrom;
  readonly checkpoint: { readonly file: string; readonly pos: number; readonly gtid: string | null } | undefined;
  readonly flavor: 'mariadb' | 'mysql';
  /** The binlog's end: needed (only) when resuming from a checkpoint that does not exist. */
  readonly binlogEnd: { readonly file: string; readonly pos: number } | undefined;
  readonly snapshotMode: 'initial' | 'never';
}): StartChoice {
  const { requested, checkpoint: cp } = input;
  if (requested.kind !== 'checkpoint') return { from: requested, initialSnapshot: false, reason: 'START_FROM' };
  if (cp) {
    return {
      from:
        cp.gtid && input.flavor === 'mariadb'
          ? { kind: 'gtid', gtidSet: cp.gtid }
          : { kind: 'file', file: cp.file, pos: cp.pos },
      initialSnapshot: false,
      reason: 'resuming from checkpoint',
    };
  }
  if (!input.binlogEnd) throw new Error('chooseStart: no checkpoint, and the binlog end was not given');
  const initialSnapshot = input.snapshotMode === 'initial';
  return {
    from: { kind: 'file', file: input.binlogEnd.file, pos: input.binlogEnd.pos },
    initialSnapshot,
    reason: initialSnapshot
      ? 'no checkpoint: snapshot of every captured table, streaming from the end of the binlog'
      : 'no checkpoint: starting at the end of the binlog',
  };
}
