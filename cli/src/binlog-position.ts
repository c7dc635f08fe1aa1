/**
 * Resolving an operator's position (`file:pos`, a GTID, or a time) to a resume point the producer can start from,
 * and refusing what cannot be: a file already purged, a position beyond the server's end, a time before the oldest
 * binlog or in the future. GTIDs and times are resolved by reading the binlog's transaction boundaries (the same
 * reader the producer uses), so the result is always a boundary. MariaDB GTIDs (`domain-server-seq`).
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
      const [[row]] = (await conn.query('SELECT BINLOG_GTID_POS(?, ?) AS g', [spec.file, spec.pos])) as unknown as [
        [{ g: string | null }],
      ];
      return { file: spec.file, pos: spec.pos, gtid: row?.g || null, commitMs: 0 };
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
    // Transactions before the oldest binlog on the server mean history was purged (else it starts at the beginning).
    const [[before]] = (await conn.query('SELECT BINLOG_GTID_POS(?, 4) AS g', [oldest.file])) as unknown as [
      [{ g: string | null }],
    ];
    const historyPurged = !!before?.g;
    // Walk the boundaries from the oldest binlog: the answer is the boundary after the last transaction before the
    // time (or the one ending the GTID's transaction).
    let prev: ResolvedPosition | undefined;
    let first = true;
    let purged = false;
    const found = await scanBoundaries(src, oldest, facts.end, (b) => {
      const here = { file: b.file, pos: b.pos, gtid: b.gtid, commitMs: b.commitMs };
      if (spec.kind === 'time') {
        if (b.commitMs >= spec.ms) {
          purged = first && historyPurged;
          return true;
        }
      } else if (spec.kind === 'gtid') {
        const seq = gtidSeq(b.gtid, spec.domain) ?? 0;
        if (first && seq > spec.seq + 1) {
          purged = true;
          return true;
        }
        if (seq >= spec.seq) {
          prev = here;
          return true;
        }
      }
      first = false;
      prev = here;
      return false;
    });
    if (purged) {
      throw new CliError(
        'REFUSED',
        `${spec.kind === 'time' ? new Date((spec as { ms: number }).ms).toISOString() : 'that GTID'} is before the oldest binlog still on the server (${oldest.file}); refusing`,
      );
    }
    if (spec.kind === 'gtid' && !found) {
      throw new CliError(
        'REFUSED',
        `GTID ${spec.domain}-${spec.server}-${spec.seq} not found in the binlogs on the server`,
      );
    }
    return prev ?? { file: oldest.file, pos: 4, gtid: before?.g || null, commitMs: 0 };
  } finally {
    await conn.end();
  }
}
