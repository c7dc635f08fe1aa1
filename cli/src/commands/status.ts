/**
 * `cdc status`: where the producer is (checkpoint vs the binlog's end, seconds behind, lease), snapshot/backfill
 * jobs, per-table rows captured (raw changelog) and applied (merge batches), and the last errors.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import mysql from 'mysql2/promise';
import { parseState, progressOf, type SnapshotJob } from '../../../containers/producer/src/snapshot-progress';
import {
  type FailingTable,
  FIREHOSE_STATE_FILE_NAME,
  failingTables,
  MERGE_DEAD_LETTER_PREFIX,
  retryQueueFile,
  type SetAsideReport,
  tableOfKey,
} from '../../../local/firehose-dead-letters';
import { LAKE_ERROR_PREFIX } from '../../../shared/lake-layout';
import { bar, count, duration, type Output, table } from '../output';
import type { Target } from '../target';

export interface StatusReport {
  readonly at: string;
  readonly source: { readonly binlogEnd: string };
  readonly producer: {
    readonly checkpoint: { file: string; pos: number; gtid: string | null; savedAt: string } | null;
    readonly running: boolean;
    /** Producers failed (exited non-zero) this often within CRASH_WINDOW_MS: two or more means a crash loop. */
    readonly recentFailures: number;
    /** The newest failure's message, when there are recent failures. */
    readonly lastFailure: string | null;
    readonly leaseOwner: string | null;
    readonly secondsBehind: number | null;
    readonly positionRequest: unknown;
    /** Tables the producer set aside (their rows cannot be decoded): they replicate nothing until `npx cdc resync`. */
    readonly quarantined: readonly { table: string; reason: string; since: string; position: string }[];
  };
  readonly snapshots: readonly (SnapshotJob & { fraction: number; rowsPerS: number; etaS: number | null })[];
  readonly tables: readonly {
    table: string;
    captured: number;
    applied: number;
    newestCommitApplied: string | null;
    /** Objects of this table the merge could not apply (local run: retrying, or set aside under errors/merge/). */
    failing: FailingTable | null;
  }[];
  readonly errors: readonly { at: string; where: string; message: string }[];
}

/** How far back producer failures count towards a crash loop. */
export const CRASH_WINDOW_MS = 120_000;

export interface ProducerFailure {
  readonly at: number;
  readonly message: string;
}

/**
 * The producer's fatal errors from its log (one JSON object per line: `fatal error, stopping …` and `producer failed
 * to start`), oldest first. Only the last 512 KiB are read.
 */
export function producerFailures(logText: string): ProducerFailure[] {
  const out: ProducerFailure[] = [];
  for (const line of logText.split('\n')) {
    if (!line.startsWith('{"level":"ERROR"')) continue;
    try {
      const e = JSON.parse(line) as { timestamp?: string; message?: string; error?: string; code?: string };
      if (!/^(fatal error|producer failed to start)/.test(e.message ?? '')) continue;
      out.push({ at: Date.parse(e.timestamp ?? ''), message: `${e.code ? `${e.code}: ` : ''}${e.error ?? e.message}` });
    } catch {
      // a partial line at the cut
    }
  }
  return out;
}

function readTail(file: string, bytes = 512 * 1024): string {
  if (!existsSync(file)) return '';
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - bytes);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Per table, the objects the merge could not apply: the local stand-in's retry queue (local runs) and the reports
 * under errors/merge/ (the newest report of each table is read for its reason).
 */
async function mergeFailures(t: Target): Promise<Map<string, FailingTable>> {
  const queueFile = t.localDir ? retryQueueFile(join(t.localDir, FIREHOSE_STATE_FILE_NAME)) : undefined;
  const retrying =
    queueFile && existsSync(queueFile)
      ? (JSON.parse(readFileSync(queueFile, 'utf8')) as { key: string; attempts: number; lastError: string }[])
      : [];
  const listed = await t.s3
    .send(new ListObjectsV2Command({ Bucket: t.bucket, Prefix: MERGE_DEAD_LETTER_PREFIX, MaxKeys: 1000 }))
    .catch(() => ({ Contents: [] }));
  const reports = (listed.Contents ?? []).map((o) => ({
    key: o.Key!,
    at: o.LastModified?.getTime() ?? 0,
    reason: undefined as string | undefined,
  }));
  const newest = new Map<string, (typeof reports)[number]>();
  for (const r of reports) {
    const table = tableOfKey(r.key) ?? '';
    if ((newest.get(table)?.at ?? -1) <= r.at) newest.set(table, r);
  }
  for (const r of newest.values()) {
    const res = await t.s3.send(new GetObjectCommand({ Bucket: t.bucket, Key: r.key })).catch(() => undefined);
    const body = await res?.Body?.transformToString().catch(() => undefined);
    if (body) r.reason = (JSON.parse(body) as SetAsideReport).reason;
  }
  return failingTables(retrying, reports);
}

export async function collectStatus(t: Target, now = Date.now()): Promise<StatusReport> {
  const conn = await mysql.createConnection({ ...t.source });
  let end: { File: string; Position: number } | undefined;
  try {
    const [rows] = await conn.query('SHOW MASTER STATUS');
    end = (rows as { File: string; Position: number }[])[0];
  } finally {
    await conn.end();
  }
  const item = await t.store.read();
  const request = item?.positionRequest ?? (await t.store.positionRequest());
  const quarantined = (item ? (item.quarantine ?? []) : await t.store.quarantined()).map((q) => ({
    table: q.table,
    reason: q.reason,
    since: new Date(q.since).toISOString(),
    position: q.position,
  }));
  // A crash-looping producer holds a live lease between its starts: its log (local runs) says it is down.
  const failures = t.localDir
    ? producerFailures(readTail(join(t.localDir, 'producer.log'))).filter((f) => now - f.at <= CRASH_WINDOW_MS)
    : [];
  const crashLooping = failures.length >= 2;
  const running = !!item?.leaseOwner && (item.leaseExpires ?? 0) > now && !crashLooping;
  const atEnd = !!item && !!end && item.file === end.File && item.pos >= end.Position;
  const secondsBehind =
    !item || crashLooping ? null : atEnd ? 0 : item.commitMs ? Math.max(0, (now - item.commitMs) / 1000) : null;

  const jobs = parseState(item?.snapshot).jobs.map((j) => {
    const p = progressOf(j, now);
    return { ...j, fraction: p.fraction, rowsPerS: p.rowsPerS, etaS: p.etaS ?? null };
  });

  const schema = `"${t.changelogSchema}"`;
  const captured = await t.warehouse
    .query(
      `SELECT source_db, source_table, COUNT(DISTINCT position) AS n FROM ${schema}.changelog GROUP BY 1, 2 ORDER BY 1, 2`,
    )
    .catch(() => []);
  const applied = await t.warehouse
    .query(
      `SELECT source_db, source_table, SUM(events) AS n, MAX(max_commit_ms) AS newest FROM ${schema}.merge_batches GROUP BY 1, 2`,
    )
    .catch(() => []);
  const failing = await mergeFailures(t);
  const names = new Set([...captured, ...applied].map((r) => `${r.source_db}.${r.source_table}`));
  for (const name of failing.keys()) names.add(name);
  const tables = [...names].sort().map((name) => {
    const c = captured.find((r) => `${r.source_db}.${r.source_table}` === name);
    const a = applied.find((r) => `${r.source_db}.${r.source_table}` === name);
    return {
      table: name,
      captured: Number(c?.n ?? 0),
      applied: Number(a?.n ?? 0),
      newestCommitApplied: a?.newest ? new Date(Number(a.newest)).toISOString() : null,
      failing: failing.get(name) ?? null,
    };
  });

  const errors: { at: string; where: string; message: string }[] = [];
  const lastFailure = failures.at(-1);
  if (lastFailure) {
    errors.push({ at: new Date(lastFailure.at).toISOString(), where: 'producer', message: lastFailure.message });
  }
  for (const j of jobs) {
    if (j.status === 'failed') {
      errors.push({ at: new Date(j.updatedAt).toISOString(), where: `snapshot ${j.id}`, message: j.error ?? '' });
    }
  }
  const listed = await t.s3
    .send(new ListObjectsV2Command({ Bucket: t.bucket, Prefix: LAKE_ERROR_PREFIX, MaxKeys: 1000 }))
    .catch(() => ({ Contents: [] }));
  for (const o of (listed.Contents ?? [])
    .sort((a, b) => (b.LastModified?.getTime() ?? 0) - (a.LastModified?.getTime() ?? 0))
    .slice(0, 5)) {
    errors.push({
      at: o.LastModified?.toISOString() ?? '',
      where: 'lake',
      message: `set aside: s3://${t.bucket}/${o.Key}`,
    });
  }
  if (t.localDir && existsSync(join(t.localDir, 'status.json'))) {
    const st = JSON.parse(readFileSync(join(t.localDir, 'status.json'), 'utf8')) as { lastError?: string | null };
    if (st.lastError) errors.push({ at: '', where: 'local pipeline', message: st.lastError });
  }
  return {
    at: new Date(now).toISOString(),
    source: { binlogEnd: end ? `${end.File}:${end.Position}` : 'binlog off' },
    producer: {
      checkpoint: item
        ? { file: item.file, pos: item.pos, gtid: item.gtid, savedAt: new Date(item.updatedAt).toISOString() }
        : null,
      running,
      recentFailures: failures.length,
      lastFailure: lastFailure?.message ?? null,
      leaseOwner: running ? (item?.leaseOwner ?? null) : null,
      secondsBehind,
      positionRequest: request ?? null,
      quarantined,
    },
    snapshots: jobs,
    tables,
    errors,
  };
}

export function renderStatus(r: StatusReport): string {
  const cp = r.producer.checkpoint;
  const lines = [
    `source binlog end:    ${r.source.binlogEnd}`,
    `producer checkpoint:  ${cp ? `${cp.file}:${cp.pos}${cp.gtid ? ` (GTID ${cp.gtid})` : ''}, saved ${cp.savedAt}` : 'none yet'}`,
    `producer:             ${
      r.producer.running
        ? `running (${r.producer.leaseOwner})`
        : r.producer.recentFailures >= 2
          ? `DOWN: crash-looping (${r.producer.recentFailures} failures in the last ${CRASH_WINDOW_MS / 60_000} min; last: ${r.producer.lastFailure})`
          : 'not running (no live lease)'
    }; ${
      r.producer.secondsBehind === null ? 'seconds behind unknown' : `${r.producer.secondsBehind.toFixed(1)} s behind`
    }`,
  ];
  if (r.producer.positionRequest) lines.push(`position request:     ${JSON.stringify(r.producer.positionRequest)}`);
  if (r.producer.quarantined.length > 0) {
    lines.push('', 'quarantined tables (not replicating; fix the cause, then npx cdc resync <db.table>):');
    for (const q of r.producer.quarantined) lines.push(`  ${q.table} since ${q.since} at ${q.position}: ${q.reason}`);
  }
  lines.push('', 'snapshots and backfills:');
  if (r.snapshots.length === 0) lines.push('  none');
  for (const j of r.snapshots) {
    lines.push(
      `  ${`${j.db}.${j.table}`.padEnd(28)} ${j.kind.padEnd(8)} ${j.status.padEnd(8)} ${bar(j.fraction, 20)} ${count(j.rowsRead)}/${count(
        Math.max(j.rowsEstimate, j.rowsRead),
      )} rows${j.status === 'running' ? `, ${count(j.rowsPerS)} rows/s, ETA ${duration(j.etaS ?? undefined)}` : ''}${
        j.where ? `  WHERE ${j.where}` : ''
      }${j.error ? `  (${j.error})` : ''}`,
    );
  }
  lines.push('', 'tables:');
  lines.push(
    r.tables.length === 0
      ? '  nothing captured yet'
      : table(
          ['table', 'captured', 'applied', 'newest commit applied', 'merge'],
          r.tables.map((x) => [
            x.table,
            x.captured,
            x.applied,
            x.newestCommitApplied ?? '-',
            x.failing ? `FAILING: ${x.failing.retrying} retrying, ${x.failing.setAside} set aside` : 'ok',
          ]),
        )
          .split('\n')
          .map((l) => `  ${l}`)
          .join('\n'),
  );
  const failing = r.tables.filter((x) => x.failing);
  if (failing.length > 0) {
    lines.push('', 'failing tables (fix the cause, then npx cdc redrive <db.table>; docs/operations.md):');
    for (const x of failing) lines.push(`  ${x.table}: ${x.failing!.lastError}`);
  }
  lines.push('', 'last errors:');
  if (r.errors.length === 0) lines.push('  none');
  for (const e of r.errors) lines.push(`  ${e.at ? `${e.at} ` : ''}${e.where}: ${e.message}`);
  return lines.join('\n');
}

export async function status(t: Target, out: Output): Promise<number> {
  const report = await collectStatus(t);
  out.say(renderStatus(report));
  out.result(report);
  return 0;
}
