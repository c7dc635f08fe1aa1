/**
 * Checks a `file:pos` start position against the server before reading from it, so that each way it can be wrong
 * gets its own code: a file no longer on the server is BINLOG_PURGED (a new snapshot is needed), a position inside
 * an event (or past the file's end) is POSITION_NOT_AN_EVENT_BOUNDARY (the operator picks a boundary with
 * `npx cdc set-position`). Without this check the server answers the dump of a mid-event position with error 1236
 * ("bogus data in log event", "binlog truncated in the middle of event"), which reads like a purged binlog.
 */
import type mysql from 'mysql2/promise';
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
