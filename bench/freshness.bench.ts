/**
 * Commit-to-replica latency of the whole local pipeline (MariaDB → producer → kinesalite → Firehose stand-in → merge
 * → PostgreSQL) under a steady background load from the load generator. Probe rows are inserted at random intervals;
 * a probe's latency runs from the moment its INSERT (autocommit) returned to the first replica poll that sees it
 * (polled every 25 ms, so up to 25 ms of the figure is polling).
 *
 * Measured twice in the same run: with the Firehose stand-in buffering 1 s (the figure: what the targets are about),
 * and with no buffering (the reference: everything the pipeline adds besides the buffer). For the buffered run, the
 * raw changelog gives a per-stage breakdown: producer (commit → emitted_ms), Kinesis + buffer (emitted → loaded_at),
 * merge + poll (loaded_at → seen).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { startLoad } from '../local/load-generator';
import { startPipeline } from '../local/pipeline';
import { sleep, waitFor } from '../local/services/process';
import type { Figures } from './figures';

const LOAD_ROWS_PER_S = 200;

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));

interface Run {
  latencies: number[];
  /** Median seconds per stage (buffered run only). */
  stages: { producer: number; kinesisAndBuffer: number; mergeAndPoll: number };
}

async function measure(bufferMs: number, probes: number): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'cdc-bench-fresh-'));
  const p = await startPipeline({ dir, bufferMs });
  const pool = mysql.createPool({ ...p.endpoints.mysql, connectionLimit: 3 });
  try {
    await p.startProducer();
    const db = p.endpoints.mysql.database;
    await pool.query('CREATE TABLE probes (id INT PRIMARY KEY, note VARCHAR(20))');
    await pool.query("INSERT INTO probes VALUES (0, 'warm-up')");
    await waitFor(
      'the probes replica',
      async () =>
        (await p.pool.query(`SELECT 1 FROM "${db}".probes WHERE id = 0`).catch(() => ({ rowCount: 0 }))).rowCount,
      60_000,
    );
    const load = startLoad(pool, db, LOAD_ROWS_PER_S);
    await sleep(3000); // steady state before the first probe
    const committed = new Map<number, number>();
    const seen = new Map<number, number>();
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const res = await p.pool
          .query(`SELECT id FROM "${db}".probes WHERE id > 0`)
          .catch(() => ({ rows: [] as { id: number }[] }));
        const now = Date.now();
        for (const r of res.rows as { id: number }[]) if (!seen.has(r.id)) seen.set(r.id, now);
        await sleep(25);
      }
    })();
    for (let i = 1; i <= probes; i++) {
      await pool.query("INSERT INTO probes VALUES (?, 'probe')", [i]);
      committed.set(i, Date.now());
      await sleep(250 + Math.random() * 250);
    }
    await waitFor('every probe in the replica', async () => seen.size >= probes, 60_000);
    polling = false;
    await poller;
    await load.stop();
    const latencies = [...committed].map(([id, t]) => (seen.get(id)! - t) / 1000);
    const staged = await p.pool.query(
      `SELECT (after_image->>'id')::int AS id, emitted_ms::float8 AS emitted, (extract(epoch FROM loaded_at) * 1000)::float8 AS loaded
       FROM cdc.changelog WHERE source_table = 'probes' AND op = 'insert' AND (after_image->>'id')::int > 0`,
    );
    const first = new Map<number, { emitted: number; loaded: number }>();
    for (const r of staged.rows as { id: number; emitted: number; loaded: number }[]) {
      const cur = first.get(r.id);
      if (!cur || r.loaded < cur.loaded) first.set(r.id, r); // a re-delivery would load a probe twice
    }
    const stage = (f: (id: number, t: number) => number) =>
      round(
        percentile(
          [...committed].filter(([id]) => first.has(id)).map(([id, t]) => f(id, t)),
          50,
        ) / 1000,
        3,
      );
    return {
      latencies,
      stages: {
        producer: stage((id, t) => first.get(id)!.emitted - t),
        kinesisAndBuffer: stage((id) => first.get(id)!.loaded - first.get(id)!.emitted),
        mergeAndPoll: stage((id) => seen.get(id)! - first.get(id)!.loaded),
      },
    };
  } finally {
    await pool.end();
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run({ quick }: { quick: boolean }): Promise<Figures> {
  const probes = quick ? 20 : 100;
  const buffered = await measure(1000, probes);
  const unbuffered = await measure(0, probes);
  const b = { p50: percentile(buffered.latencies, 50), p99: percentile(buffered.latencies, 99) };
  const u = { p50: percentile(unbuffered.latencies, 50), p99: percentile(unbuffered.latencies, 99) };
  const s = buffered.stages;
  const notes =
    `${probes} probes at random 250–500 ms intervals beside a steady ${LOAD_ROWS_PER_S} rows/s load; ` +
    `medians per stage with 1 s buffering: producer ${s.producer} s, Kinesis + buffer ${s.kinesisAndBuffer} s, ` +
    `merge + poll ${s.mergeAndPoll} s`;
  const referenceName = 'the same pipeline with no Firehose buffering (same run)';
  return {
    freshness_p50_s: {
      value: round(b.p50),
      unit: 's',
      reference: round(u.p50),
      referenceName,
      ratio: round(b.p50 / u.p50),
      target: '≤ 1.5 s',
      notes,
    },
    freshness_p99_s: {
      value: round(b.p99),
      unit: 's',
      reference: round(u.p99),
      referenceName,
      ratio: round(b.p99 / u.p99),
      target: '≤ 3 s',
      notes,
    },
  };
}
