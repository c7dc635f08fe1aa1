/**
 * Resolving an operator's position (`file:pos`, a GTID, or a time) to a resume point the producer can start from,
 * and refusing what cannot be: a file already purged, a position beyond the server's end or not at the start of an
 * event (or inside a transaction), a time before the oldest binlog or in the future. MariaDB GTIDs
 * (`domain-server-seq`).
 *
 * Every answer is checked with the server's own view of its binlog, never with a parser of ours:
 * - file:pos: `SHOW BINLOG EVENTS IN file FROM pos LIMIT 1` errors for a position inside an event;
 * - a GTID: its Gtid event found with `SHOW BINLOG EVENTS` (in the file `BINLOG_GTID_POS(file, 4)` places it), the
 *   position is the end of that transaction (its Xid, COMMIT or DDL event), and `BINLOG_GTID_POS` at that position
 *   must name the GTID, else the resolution is refused;
 * - the GTID state stored with any position is `BINLOG_GTID_POS(file, pos)` (a MariaDB producer resumes by GTID).
 */
import mysql from 'mysql2/promise';
import { BinlogSource, type Boundary } from '../../containers/producer/src/binlog-source';
import { CliError } from './errors';
import type { SourceConnection } from './target';

export type PositionSpec =
  | { readonly kind: 'file'; readonly file: string; readonly pos: number }
  | { readonly kind: 'gtid'; readonly domain: number; readonly server: number; readonly seq: number }
  | { readonly kind: 'time'; readonly ms: number };

/** `mysql-bin.000003:4711`, `0-1-812` / `gtid:0-1-812`, or an ISO time (`2026-11-23T10:00:00Z`, `time:…`). */
export function parsePositionSpec(text: string | undefined): PositionSpec {
  const s = (text ?? '').trim();
  const file = /^(?:file:)?([^:\s]+\.\d+):(\d+)$/.exec(s);
  if (file) return { kind: 'file', file: file[1]!, pos: Number(file[2]) };
  const gtid = /^(?:gtid:)?(\d+)-(\d+)-(\d+)$/.exec(s);
  if (gtid) return { kind: 'gtid', domain: Number(gtid[1]), server: Number(gtid[2]), seq: Number(gtid[3]) };
  const time = s.replace(/^time:/, '');
  const ms = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(time)
    ? Date.parse(/(Z|[+-]\d{2}:?\d{2})$/.test(time) ? time.replace(' ', 'T') : `${time.replace(' ', 'T')}Z`)
    : Number.NaN;
  if (Number.isFinite(ms)) return { kind: 'time', ms };
  throw new CliError(
    'USAGE',
    `set-position needs <file:pos>, <gtid> (domain-server-seq) or <time> (ISO 8601, UTC unless a zone is given), got ${JSON.stringify(text ?? null)}`,
  );
}

export interface BinlogFacts {
  /** Binlog files on the server, oldest first, with their sizes. */
  readonly files: readonly { name: string; size: number }[];
  readonly end: { file: string; pos: number };
}

export async function binlogFacts(conn: mysql.Connection): Promise<BinlogFacts> {
  const [logs] = await conn.query('SHOW BINARY LOGS');
  const files = (logs as { Log_name: string; File_size: number }[]).map((l) => ({
    name: l.Log_name,
    size: Number(l.File_size),
  }));
  const [st] = await conn.query('SHOW MASTER STATUS');
  const end = (st as { File: string; Position: number }[])[0];
  if (!end) throw new CliError('REFUSED', 'the source has no binary log (log_bin is off)');
  return { files, end: { file: end.File, pos: Number(end.Position) } };
}

/** Refuses a file:pos that is purged or beyond what the server has written. Pure. */
export function checkFilePosition(facts: BinlogFacts, file: string, pos: number): void {
  const names = facts.files.map((f) => f.name);
  if (!names.includes(file)) {
    if (names.length > 0 && file < names[0]!) {
      throw new CliError('REFUSED', `${file} has been purged from the server (oldest binlog: ${names[0]}); refusing`);
    }
    throw new CliError('REFUSED', `${file} is ahead of the server (newest binlog: ${facts.end.file}); refusing`);
  }
  const size = file === facts.end.file ? facts.end.pos : facts.files.find((f) => f.name === file)!.size;
  if (pos > size) {
    throw new CliError('REFUSED', `${file}:${pos} is ahead of the server (${file} ends at ${size}); refusing`);
  }
  if (pos < 4) throw new CliError('USAGE', `position ${pos} is before the first event of ${file} (4)`);
}

/**
 * Reads transaction boundaries from `file:4` on, calling `visit` for each until it returns true or the server's end
 * is reached. Returns whether `visit` stopped it.
 */
async function scanBoundaries(
  src: SourceConnection,
  from: { file: string; pos: number },
  end: { file: string; pos: number },
  visit: (b: Boundary) => boolean,
): Promise<boolean> {
  const source = new BinlogSource({
    ...src,
    serverId: 0x7f000000 + Math.floor(Math.random() * 0xffffff),
    captures: () => false,
  });
  try {
    return await new Promise<boolean>((resolve, reject) => {
      const atEnd = (b: { file: string; pos: number }) =>
        b.file > end.file || (b.file === end.file && b.pos >= end.pos);
      source.on('commit', (b) => {
        if (visit(b)) resolve(true);
        else if (atEnd(b)) resolve(false);
      });
      source.on('error', reject);
      source.on('ready', () => {
        if (atEnd(from)) resolve(false);
      });
      source.start({ kind: 'file', file: from.file, pos: from.pos });
    });
  } finally {
    source.stop();
  }
}

export interface ResolvedPosition {
  readonly file: string;
  readonly pos: number;
  readonly gtid: string | null;
  /** Commit time of the transaction right before the position (0: start of the oldest binlog). */
  readonly commitMs: number;
}

const gtidSeq = (state: string | null, domain: number): number | undefined => {
  for (const part of (state ?? '').split(',')) {
    const m = /^(\d+)-(\d+)-(\d+)$/.exec(part.trim());
    if (m && Number(m[1]) === domain) return Number(m[3]);
  }
  return undefined;
};

/** Resolves and checks a position against the server. @throws CliError REFUSED for purged or ahead positions */
export async function resolvePosition(
  src: SourceConnection,
  spec: PositionSpec,
  now = Date.now(),
): Promise<ResolvedPosition> {
  const conn = await mysql.createConnection({ ...src });
  try {
    const facts = await binlogFacts(conn);
    const oldest = { file: facts.files[0]!.name, pos: 4 };
    if (spec.kind === 'file') {
      checkFilePosition(facts, spec.file, spec.pos);
      await checkEventBoundary(conn, spec.file, spec.pos);
      return { file: spec.file, pos: spec.pos, gtid: await gtidStateAt(conn, spec.file, spec.pos), commitMs: 0 };
    }
    if (spec.kind === 'time' && spec.ms > now) {
      throw new CliError('REFUSED', `${new Date(spec.ms).toISOString()} is in the future; refusing`);
    }
    if (spec.kind === 'gtid') {
      const [[cur]] = (await conn.query('SELECT @@gtid_binlog_pos AS g')) as unknown as [[{ g: string }]];
      const current = gtidSeq(cur.g, spec.domain);
      if (current === undefined || spec.seq > current) {
        throw new CliError(
          'REFUSED',
          `GTID ${spec.domain}-${spec.server}-${spec.seq} is ahead of the server (its binlog is at ${cur.g || 'nothing'}); refusing`,
        );
      }
    }
    if (spec.kind === 'gtid') return await resolveGtid(conn, facts, spec);
    // Transactions before the oldest binlog on the server mean history was purged (else it starts at the beginning).
    const [[before]] = (await conn.query('SELECT BINLOG_GTID_POS(?, 4) AS g', [oldest.file])) as unknown as [
      [{ g: string | null }],
    ];
    const historyPurged = !!before?.g;
    // Walk the boundaries from the oldest binlog: the answer is the boundary after the last transaction before the
    // time.
    const ms = spec.ms;
    let prev: ResolvedPosition | undefined;
    let first = true;
    let purged = false;
    await scanBoundaries(src, oldest, facts.end, (b) => {
      if (b.commitMs >= ms) {
        purged = first && historyPurged;
        return true;
      }
      first = false;
      prev = { file: b.file, pos: b.pos, gtid: b.gtid, commitMs: b.commitMs };
      return false;
    });
    if (purged) {
      throw new CliError(
        'REFUSED',
        `${new Date(ms).toISOString()} is before the oldest binlog still on the server (${oldest.file}); refusing`,
      );
    }
    const at = prev ?? { file: oldest.file, pos: 4, gtid: before?.g || null, commitMs: 0 };
    return { ...at, gtid: await gtidStateAt(conn, at.file, at.pos) };
  } finally {
    await conn.end();
  }
}

/** The server's GTID state at a position (`BINLOG_GTID_POS`): what a MariaDB producer resumes from. */
async function gtidStateAt(conn: mysql.Connection, file: string, pos: number): Promise<string | null> {
  const [[row]] = (await conn.query('SELECT BINLOG_GTID_POS(?, ?) AS g', [file, pos])) as unknown as [
    [{ g: string | null }],
  ];
  return row?.g || null;
}

interface BinlogEvent {
  readonly Log_name: string;
  readonly Pos: number;
  readonly Event_type: string;
  readonly End_log_pos: number;
  readonly Info: string;
}

/** Events that only occur inside a transaction (event group): starting there would read half a transaction. */
const INSIDE_TRANSACTION =
  /^(Table_map|Write_rows|Update_rows|Delete_rows|Annotate_rows|Xid|Rows_query|Intvar|Rand|User_var)/;

/**
 * Refuses a position the server cannot start reading from: not the start of an event (the server errors, and a
 * producer started there crash-loops), or an event inside a transaction.
 */
export async function checkEventBoundary(conn: mysql.Connection, file: string, pos: number): Promise<void> {
  let events: BinlogEvent[];
  try {
    [events] = (await conn.query('SHOW BINLOG EVENTS IN ? FROM ? LIMIT 1', [file, pos])) as unknown as [BinlogEvent[]];
  } catch (err) {
    throw new CliError(
      'REFUSED',
      `${file}:${pos} is not the start of an event in ${file} (the server says: ${(err as Error).message}); give a Pos from SHOW BINLOG EVENTS, a GTID or a time; refusing`,
    );
  }
  const first = events[0];
  if (first && (INSIDE_TRANSACTION.test(first.Event_type) || /^(COMMIT|ROLLBACK)$/i.test(first.Info.trim()))) {
    throw new CliError(
      'REFUSED',
      `${file}:${pos} is inside a transaction (a ${first.Event_type} event); give the position of a transaction's first event (its Gtid event), a GTID or a time; refusing`,
    );
  }
}

/** `SHOW BINLOG EVENTS` page by page (a binlog file may hold millions of events). */
async function* binlogEvents(conn: mysql.Connection, file: string, pos = 4): AsyncGenerator<BinlogEvent> {
  const page = 5000;
  for (let from = pos; ; ) {
    const [rows] = (await conn.query('SHOW BINLOG EVENTS IN ? FROM ? LIMIT ?', [file, from, page])) as unknown as [
      BinlogEvent[],
    ];
    for (const r of rows) yield r;
    if (rows.length < page) return;
    from = Number(rows.at(-1)!.End_log_pos);
  }
}

/**
 * The position right after the transaction with that GTID (the transaction itself is not sent again, everything after
 * it is), with the server's GTID state there. The file is the newest whose starting state (`BINLOG_GTID_POS(file,
 * 4)`) is before the GTID in its domain; its Gtid event is found by `SHOW BINLOG EVENTS`.
 */
async function resolveGtid(
  conn: mysql.Connection,
  facts: BinlogFacts,
  spec: Extract<PositionSpec, { kind: 'gtid' }>,
): Promise<ResolvedPosition> {
  const gtid = `${spec.domain}-${spec.server}-${spec.seq}`;
  let file: string | undefined;
  for (const f of [...facts.files].reverse()) {
    if ((gtidSeq(await gtidStateAt(conn, f.name, 4), spec.domain) ?? 0) < spec.seq) {
      file = f.name;
      break;
    }
  }
  if (!file) {
    throw new CliError(
      'REFUSED',
      `GTID ${gtid} is before the oldest binlog still on the server (${facts.files[0]?.name ?? 'none'}); refusing`,
    );
  }
  let inGroup: 'transaction' | 'statement' | undefined;
  for await (const e of binlogEvents(conn, file)) {
    if (!inGroup) {
      const m = /^(BEGIN )?GTID (\d+-\d+-\d+)\b/.exec(e.Info ?? '');
      if (e.Event_type === 'Gtid' && m?.[2] === gtid) inGroup = m[1] ? 'transaction' : 'statement';
      continue;
    }
    const ends =
      inGroup === 'statement'
        ? e.Event_type === 'Query'
        : e.Event_type === 'Xid' || (e.Event_type === 'Query' && /^(COMMIT|ROLLBACK)\b/i.test(e.Info.trim()));
    if (!ends) continue;
    const pos = Number(e.End_log_pos);
    const state = await gtidStateAt(conn, file, pos);
    if (!(state ?? '').split(',').some((g) => g.trim() === gtid)) {
      throw new CliError(
        'FAILED',
        `GTID ${gtid}: its transaction ends at ${file}:${pos}, but the server's BINLOG_GTID_POS there is ${state ?? 'nothing'}; refusing to guess`,
      );
    }
    return { file, pos, gtid: state, commitMs: 0 };
  }
  throw new CliError('REFUSED', `GTID ${gtid} not found in the binlogs on the server (looked in ${file}); refusing`);
}
