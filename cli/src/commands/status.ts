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
  failingTables,
  MERGE_DEAD_LETTER_PREFIX,
  MERGE_QUEUE_STATE_FILE_NAMES,
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
    /** How status calls the producer (producerState): running, crash-looping, failed or stopped. */
    readonly state: ProducerStateName;
    /** Producers failed (exited non-zero) this often within CRASH_WINDOW_MS: two or more means a crash loop. */
    readonly recentFailures: number;
    /** While running: the failures within CRASH_WINDOW_MS it was restarted after (0 otherwise). */
    readonly restarts: number;
    /** The newest failure (`CODE: message`), when there are recent failures. */
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

/** How far back producer failures count (towards a crash loop, and as restarts of a running producer). */
export const CRASH_WINDOW_MS = 10 * 60_000;
/** A producer holding its lease this long since the failures (none of them its own) counts as running again. */
export const STABLE_AFTER_MS = 2 * 60_000;
/** The same failure found in the checkpoint item and in the local log: same message, this close in time. */
const SAME_FAILURE_MS = 5_000;

/** A fatal failure of a producer: from the checkpoint item (with code and owner) or the local producer.log. */
export interface ProducerFailure {
  readonly at: number;
  readonly code?: string;
  readonly message: string;
  readonly owner?: string;
}

const failureText = (f: ProducerFailure) => `${f.code ? `${f.code}: ` : ''}${f.message}`;

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
      const text = e.error ?? e.message ?? '';
      // A ProducerError's message starts with its code (the startup line also has it as a field).
      const coded = /^([A-Z][A-Z0-9_]+): ([\s\S]*)$/.exec(text);
      const code = e.code ?? coded?.[1];
      const message = code && text.startsWith(`${code}: `) ? text.slice(code.length + 2) : text;
      out.push({ at: Date.parse(e.timestamp ?? ''), ...(code ? { code } : {}), message });
    } catch {
      // a partial line at the cut
    }
  }
  return out;
}

/**
 * The failures kept in the checkpoint item and those of the local log in one list, oldest first: a failure in both
 * (same code and message within SAME_FAILURE_MS) is kept once, as stored (it names the producer that failed).
 */
export function combineFailures(
  stored: readonly ProducerFailure[],
  logged: readonly ProducerFailure[],
): ProducerFailure[] {
  const extra = logged.filter(
    (l) => !stored.some((s) => failureText(s) === failureText(l) && Math.abs(s.at - l.at) <= SAME_FAILURE_MS),
  );
  return [...stored, ...extra].sort((a, b) => a.at - b.at);
}

export type ProducerStateName = 'running' | 'crash-looping' | 'failed' | 'stopped';

export interface ProducerState {
  readonly state: ProducerStateName;
  readonly running: boolean;
  /** The failures within CRASH_WINDOW_MS, oldest first. */
  readonly recent: readonly ProducerFailure[];
  /** While running: the recent failures it was restarted after; 0 otherwise. */
  readonly restarts: number;
  readonly last?: ProducerFailure;
}

/**
 * How status calls the producer, from the lease (holder, expiry, when it was taken) and the recorded failures (pure).
 * A crash-looping producer takes a fresh, live lease at each start, so the lease alone says "running": the holder is
 * trusted only when none of the recent failures is its own and it has held the lease for STABLE_AFTER_MS; otherwise
 * two recent failures are a crash loop, and a holder that failed itself (its lease still waiting to lapse) is down.
 */
export function producerState(input: {
  readonly now: number;
  readonly lease: { readonly owner?: string; readonly expires?: number; readonly since?: number };
  readonly failures: readonly ProducerFailure[];
}): ProducerState {
  const { now, lease } = input;
  const recent = input.failures.filter((f) => now - f.at <= CRASH_WINDOW_MS).sort((a, b) => a.at - b.at);
  const last = recent.at(-1);
  const live = !!lease.owner && (lease.expires ?? 0) > now;
  const of = (state: ProducerStateName, restarts = 0): ProducerState => ({
    state,
    running: state === 'running',
    recent,
    restarts,
    ...(last ? { last } : {}),
  });
  if (!last) return of(live ? 'running' : 'stopped');
  // A failure without an owner (the local log) is the holder's if it came after the holder took the lease.
  const holderFailed =
    live &&
    recent.some((f) =>
      f.owner !== undefined ? f.owner === lease.owner : lease.since !== undefined && f.at >= lease.since,
    );
  const stable = live && !holderFailed && lease.since !== undefined && now - lease.since >= STABLE_AFTER_MS;
  if (stable) return of('running', recent.length);
  if (recent.length >= 2) return of('crash-looping');
  if (holderFailed) return of('failed');
  return live ? of('running', recent.length) : of('stopped');
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
 * Per table, the objects the merge could not apply: the local merge queues (local runs) and the reports
 * under errors/merge/ (the newest report of each table is read for its reason).
 */
async function mergeFailures(t: Target): Promise<Map<string, FailingTable>> {
  // Both local merge queues: the Firehose stand-in's (lake apply) and the stream apply's (handed-off tables).
  const queueFiles = t.localDir
    ? MERGE_QUEUE_STATE_FILE_NAMES.map((name) => retryQueueFile(join(t.localDir!, name)))
    : [];
  const retrying = queueFiles.flatMap((f) =>
    existsSync(f)
      ? (JSON.parse(readFileSync(f, 'utf8')) as { key: string; attempts: number; lastError: string }[])
      : [],
  );
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
  // A crash-looping producer holds a live lease between its starts: the failures it kept in the checkpoint item (on
  // every platform), and its log on a local run, say it is down.
  const stored = await t.store.failures().catch(() => []);
  const logged = t.localDir ? producerFailures(readTail(join(t.localDir, 'producer.log'))) : [];
  const lease: { owner?: string; expires?: number; since?: number } = await t.store.lease().catch(() => ({}));
  const producer = producerState({ now, lease, failures: combineFailures(stored, logged) });
  const { running } = producer;
  const down = producer.state === 'crash-looping' || producer.state === 'failed';
  const atEnd = !!item && !!end && item.file === end.File && item.pos >= end.Position;
  const secondsBehind =
    !item || down ? null : atEnd ? 0 : item.commitMs ? Math.max(0, (now - item.commitMs) / 1000) : null;

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
  const lastFailure = producer.last ? failureText(producer.last) : null;
  if (producer.last && lastFailure) {
    errors.push({ at: new Date(producer.last.at).toISOString(), where: 'producer', message: lastFailure });
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
      state: producer.state,
      recentFailures: producer.recent.length,
      restarts: producer.restarts,
      lastFailure,
      leaseOwner: running ? (lease.owner ?? null) : null,
      secondsBehind,
      positionRequest: request ?? null,
      quarantined,
    },
    snapshots: jobs,
    tables,
    errors,
  };
}

/** The producer's status line (without the seconds behind). */
function producerLine(p: StatusReport['producer']): string {
  const window = `${CRASH_WINDOW_MS / 60_000} min`;
  switch (p.state) {
    case 'running':
      return p.restarts > 0
        ? `running (${p.leaseOwner}), restarted ${p.restarts}× in the last ${window}; last: ${p.lastFailure}`
        : `running (${p.leaseOwner})`;
    case 'crash-looping':
      return `DOWN: crash-looping (${p.recentFailures} failures in the last ${window}; last: ${p.lastFailure})`;
    case 'failed':
      return `DOWN: exited (last: ${p.lastFailure})`;
    default:
      return `not running (no live lease)${p.lastFailure ? `; last failure: ${p.lastFailure}` : ''}`;
  }
}

export function renderStatus(r: StatusReport): string {
  const cp = r.producer.checkpoint;
  const lines = [
    `source binlog end:    ${r.source.binlogEnd}`,
    `producer checkpoint:  ${cp ? `${cp.file}:${cp.pos}${cp.gtid ? ` (GTID ${cp.gtid})` : ''}, saved ${cp.savedAt}` : 'none yet'}`,
    `producer:             ${producerLine(r.producer)}; ${
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
