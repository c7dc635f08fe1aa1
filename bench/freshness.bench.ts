/**
 * Commit-to-replica latency of the whole local pipeline (MariaDB → producer → kinesalite → apply → PostgreSQL) under
 * a steady background load spread over many tables. Probe rows are inserted at random intervals into random tables of
 * the loaded set; a probe's latency runs from the moment its INSERT (autocommit) returned to the first replica poll
 * that sees it (polled every 25 ms, so up to 25 ms of the figure is polling).
 *
 * Measured three times in the same run, each on a fresh pipeline:
 * - the stream path (the default: the event source mapping stand-in applies from Kinesis) with the stand-in's default
 *   batching window: the `freshness_p50_s` / `freshness_p99_s` the targets are about;
 * - the stream path with the batching window and batch size prod sets (`apply.stream` of the prod stage);
 * - the lake path (the Firehose stand-in's 1 s buffer, then the merge of each delivered object): the reference.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { environments } from '../lib/config/environments';
import { validateEnvironmentConfig } from '../lib/config/validate';
import { type PipelineOptions, startPipeline } from '../local/pipeline';
import { sleep, waitFor } from '../local/services/process';
import type { Figure, Figures } from './figures';

const LOAD_ROWS_PER_S = 1000;
const TABLES = 20;
/** The lake path's Firehose stand-in buffer (its default; in AWS the lake buffers ≥ 60 s). */
const LAKE_BUFFER_MS = 1000;

export const tableName = (i: number) => `fresh_${String(i).padStart(2, '0')}`;

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));

/**
 * The prod stage's event source mapping pacing as the stand-in takes it: its batching window (ms) and batch size (the
 * window only holds while a batch does not fill first, so the two go together).
 */
export function prodStreamApply(): { batchingWindowMs: number; batchSize: number } {
  const { batchingWindowSeconds, batchSize } = validateEnvironmentConfig(environments.prod).apply.stream;
  return { batchingWindowMs: batchingWindowSeconds * 1000, batchSize };
}

interface TableLoad {
  stop(): Promise<void>;
  /** Rows changed in committed transactions since `markStart()`, and the seconds since. */
  rate(): { rows: number; seconds: number };
  markStart(): void;
  readonly errors: number;
  readonly lastError: string | undefined;
}

/**
 * A steady load spread evenly over `tables` tables: every 50 ms one transaction on the next table (round robin) that
 * inserts new rows, updates a range of its live rows and deletes its oldest ones (about 60/30/10 by rows), paced to
 * `rowsPerSecond` rows changed per second. Multi-row statements keep MariaDB's share of the 2 cores small.
 */
export function startTableLoad(pool: mysql.Pool, database: string, rowsPerSecond: number, tables: number): TableLoad {
  const ticksPerSecond = 20;
  const rowsPerTick = Math.max(1, Math.round(rowsPerSecond / ticksPerSecond));
  const inserts = Math.max(1, Math.round(rowsPerTick * 0.6));
  const updates = Math.round(rowsPerTick * 0.3);
  const deletes = Math.max(0, rowsPerTick - inserts - updates);
  const next = Array.from({ length: tables }, () => 1);
  const oldest = Array.from({ length: tables }, () => 1);
  const state = { rows: 0, errors: 0, lastError: undefined as string | undefined, since: Date.now(), sinceRows: 0 };
  let running = true;
  let tick = 0;
  const one = async () => {
    const t = tick++ % tables;
    const name = `\`${database}\`.\`${tableName(t + 1)}\``;
    const conn = await pool.getConnection();
    try {
      await conn.beginTransaction();
      const first = next[t]!;
      const values = Array.from({ length: inserts }, (_, k) => `(${first + k}, ${k}, 'load', NOW(6))`).join(', ');
      await conn.query(`INSERT INTO ${name} (id, v, note, at) VALUES ${values}`);
      let changed = inserts;
      if (updates > 0 && first - oldest[t]! >= updates) {
        const from = first - updates;
        const [res] = await conn.query(`UPDATE ${name} SET v = v + 1, at = NOW(6) WHERE id BETWEEN ? AND ?`, [
          from,
          first - 1,
        ]);
        changed += (res as { affectedRows: number }).affectedRows;
      }
      if (deletes > 0 && first - oldest[t]! >= deletes + updates) {
        const [res] = await conn.query(`DELETE FROM ${name} WHERE id BETWEEN ? AND ?`, [
          oldest[t]!,
          oldest[t]! + deletes - 1,
        ]);
        changed += (res as { affectedRows: number }).affectedRows;
      }
      await conn.commit();
      next[t] = first + inserts;
      if (deletes > 0 && first - oldest[t]! >= deletes + updates) oldest[t] = oldest[t]! + deletes;
      state.rows += changed;
    } catch (err) {
      state.errors++;
      state.lastError = (err as Error).message;
      await conn.rollback().catch(() => undefined);
    } finally {
      conn.release();
    }
  };
  const loop = (async () => {
    const started = Date.now();
    while (running) {
      await one();
      // Paced against the wall clock, so a slow transaction is caught up rather than lost.
      const due = started + (tick * 1000) / ticksPerSecond;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
    markStart() {
      state.since = Date.now();
      state.sinceRows = state.rows;
    },
    rate: () => ({ rows: state.rows - state.sinceRows, seconds: (Date.now() - state.since) / 1000 }),
    get errors() {
      return state.errors;
    },
    get lastError() {
      return state.lastError;
    },
  };
}

interface Run {
  readonly latencies: number[];
  /** Rows per second the load achieved while the probes ran. */
  readonly loadRowsPerS: number;
  /** Where the time goes, from the applying process's log over the probe period (medians). */
  readonly batches: BatchStats;
}

interface BatchStats {
  /** Batches (stream: invocations; lake: merged objects) applied while the probes ran. */
  readonly count: number;
  /** Records and tables per batch (the stream path's invocations). */
  readonly records: number;
  readonly tables: number;
  /** From the newest commit in a batch to the end of its apply: the apply's own time plus the batch's last wait. */
  readonly newestCommitToAppliedS: number;
}

/**
 * Reads the applying process's JSON lines (local/stream-apply-main.ts `applied`, local/firehose-main.ts `merged`, each
 * with `at` and `maxCommitMs`) between `from` and `to`.
 */
function batchStats(file: string, event: 'applied' | 'merged', from: number, to: number): BatchStats {
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
  const batches: { at: number; maxCommitMs: number; records?: number; rows?: number; tables?: number }[] = [];
  for (const line of lines) {
    if (!line.includes(`"event":"${event}"`)) continue;
    try {
      const b = JSON.parse(line);
      if (b.at >= from && b.at <= to && Number.isFinite(b.maxCommitMs)) batches.push(b);
    } catch {
      // a line cut by a kill
    }
  }
  const median = (xs: number[]) => (xs.length ? percentile(xs, 50) : Number.NaN);
  return {
    count: batches.length,
    records: median(batches.map((b) => b.records ?? b.rows ?? 0)),
    tables: median(batches.map((b) => b.tables ?? 1)),
    newestCommitToAppliedS: round(median(batches.map((b) => (b.at - b.maxCommitMs) / 1000)), 3),
  };
}

async function measure(options: Omit<PipelineOptions, 'dir'>, probes: number): Promise<Run> {
  const lake = options.applySource === 'lake';
  const dir = mkdtempSync(join(tmpdir(), 'cdc-bench-fresh-'));
  const p = await startPipeline({ dir, ...options });
  const pool = mysql.createPool({ ...p.endpoints.mysql, connectionLimit: 3 });
  try {
    await p.startProducer();
    const db = p.endpoints.mysql.database;
    const replica = p.endpoints.replicaSchema;
    for (let i = 1; i <= TABLES; i++) {
      await pool.query(
        `CREATE TABLE \`${tableName(i)}\` (id BIGINT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40), at DATETIME(6))`,
      );
      await pool.query(`INSERT INTO \`${tableName(i)}\` VALUES (0, 0, 'warm-up', NOW(6))`);
    }
    // Every replica exists before the first probe, so one UNION query can poll them all.
    await waitFor(
      `the ${TABLES} replicas`,
      async () => {
        const res = await p.pool
          .query(
            `SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE 'fresh\\_%'`,
            [replica],
          )
          .catch(() => ({ rows: [{ n: 0 }] }));
        return res.rows[0].n >= TABLES;
      },
      120_000,
    );
    const load = startTableLoad(pool, db, LOAD_ROWS_PER_S, TABLES);
    await sleep(5000); // steady state before the first probe
    load.markStart();
    const probesFrom = Date.now();
    const probeQuery = Array.from(
      { length: TABLES },
      (_, i) => `SELECT -id AS n FROM "${replica}"."${tableName(i + 1)}" WHERE id < 0`,
    ).join(' UNION ALL ');
    const committed = new Map<number, number>();
    const seen = new Map<number, number>();
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const res = await p.pool.query(probeQuery).catch(() => ({ rows: [] as { n: string }[] }));
        const now = Date.now();
        for (const r of res.rows as { n: string }[]) if (!seen.has(Number(r.n))) seen.set(Number(r.n), now);
        await sleep(25);
      }
    })();
    for (let i = 1; i <= probes; i++) {
      const table = tableName(1 + Math.floor(Math.random() * TABLES));
      await pool.query(`INSERT INTO \`${table}\` VALUES (?, 0, 'probe', NOW(6))`, [-i]);
      committed.set(i, Date.now());
      await sleep(250 + Math.random() * 250);
    }
    const achieved = load.rate();
    const probesTo = Date.now();
    await waitFor('every probe in a replica', async () => seen.size >= probes, 120_000).catch((err: Error) => {
      throw new Error(`${err.message} (${seen.size} of ${probes} seen; load errors ${load.errors}: ${load.lastError})`);
    });
    polling = false;
    await poller;
    await load.stop();
    return {
      latencies: [...committed].map(([id, t]) => (seen.get(id)! - t) / 1000),
      loadRowsPerS: achieved.rows / achieved.seconds,
      batches: lake
        ? batchStats(join(dir, 'firehose.log'), 'merged', probesFrom, probesTo)
        : batchStats(join(dir, 'stream-apply.log'), 'applied', probesFrom, probesTo),
    };
  } finally {
    await pool.end();
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run({ quick }: { quick: boolean }): Promise<Figures> {
  const probes = quick ? 20 : 100;
  const prod = prodStreamApply();
  const stream = await measure({ applySource: 'stream' }, probes);
  const prodWindow = await measure({ applySource: 'stream', streamApply: prod }, probes);
  const lake = await measure({ applySource: 'lake', bufferMs: LAKE_BUFFER_MS }, probes);
  const stats = (r: Run) => ({ p50: percentile(r.latencies, 50), p99: percentile(r.latencies, 99) });
  const s = stats(stream);
  const w = stats(prodWindow);
  const l = stats(lake);
  const loads = [stream, prodWindow, lake].map((r) => Math.round(r.loadRowsPerS));
  const notes =
    `${probes} probes at random 250–500 ms intervals into ${TABLES} tables under a steady ${LOAD_ROWS_PER_S} rows/s ` +
    `load over the same tables (achieved ${loads.join(' / ')} rows/s in the stream, stream prod-window and lake runs)`;
  const where = (r: Run, what: string) =>
    `; ${r.batches.count} ${what} while the probes ran, median ${r.batches.records} records` +
    `${what === 'invocations' ? ` over ${r.batches.tables} tables` : ''} each, newest commit → applied ` +
    `${r.batches.newestCommitToAppliedS} s`;
  const lakeReference = `the lake path in the same run (Firehose stand-in buffering ${LAKE_BUFFER_MS / 1000} s)`;
  const figure = (value: number, reference: number | undefined, target?: string, extra = ''): Figure => ({
    value: round(value),
    unit: 's',
    ...(reference !== undefined
      ? { reference: round(reference), referenceName: lakeReference, ratio: round(value / reference) }
      : {}),
    ...(target ? { target } : {}),
    notes: `${notes}${extra}`,
  });
  const defaultNote =
    '; stream path with the event source mapping stand-in’s defaults (local/pipeline.ts StreamApplyOptions)';
  const prodNote =
    `; stream path with prod's pacing: batching window ${prod.batchingWindowMs / 1000} s, batch size ` +
    `${prod.batchSize} (apply.stream of the prod stage)`;
  return {
    freshness_p50_s: figure(s.p50, l.p50, '≤ 1.5 s', `${defaultNote}${where(stream, 'invocations')}`),
    freshness_p99_s: figure(s.p99, l.p99, '≤ 3 s', `${defaultNote}${where(stream, 'invocations')}`),
    freshness_stream_prod_window_p50_s: figure(
      w.p50,
      l.p50,
      undefined,
      `${prodNote}${where(prodWindow, 'invocations')}`,
    ),
    freshness_stream_prod_window_p99_s: figure(
      w.p99,
      l.p99,
      undefined,
      `${prodNote}${where(prodWindow, 'invocations')}`,
    ),
    freshness_lake_p50_s: figure(l.p50, undefined, undefined, `; lake path${where(lake, 'objects merged')}`),
    freshness_lake_p99_s: figure(l.p99, undefined, undefined, `; lake path${where(lake, 'objects merged')}`),
  };
}
