/**
 * The whole pipeline on one machine (local/pipeline.ts: MariaDB → real producer → kinesalite → Firehose stand-in →
 * s3rver + raw changelog → real merge → PostgreSQL), driven by a seeded random workload. Both tests share one
 * pipeline: the first runs it undisturbed, the second kills the producer and the Firehose stand-in + merge process.
 * Equality is checked row by row with the canonical value text of test/e2e/support/compare.ts.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIREHOSE_APPLICATION_NAME } from '../../local/firehose-batching';
import { type Pipeline, STREAM_APPLY_APPLICATION_NAME, startPipeline } from '../../local/pipeline';
import { sleep } from '../../local/services/process';
import { waitForReplicas } from './support/converge';

const dir = mkdtempSync(join(tmpdir(), 'cdc-e2e-'));
let p: Pipeline;
let db: mysql.Connection;
let database: string;

beforeAll(async () => {
  p = await startPipeline({ dir, bufferMs: 500 });
  await p.startProducer();
  database = p.endpoints.mysql.database;
  db = await mysql.createConnection({
    ...p.endpoints.mysql,
    dateStrings: true,
    timezone: 'Z',
    multipleStatements: true,
    charset: 'utf8mb4',
  });
  await db.query("SET time_zone = '+00:00'");
});
afterAll(async () => {
  await db?.end();
  await p?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Deterministic pseudo-random numbers, so a failure can be replayed with the same seed. */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

/** Every replica equals its source row by row (test/e2e/support/converge.ts), waiting up to `timeoutMs`. */
function assertConverges(tables: string[], timeoutMs = 120_000): Promise<void> {
  return waitForReplicas(p.pool, p.endpoints.replicaSchema, db, database, tables, timeoutMs);
}

interface Workload {
  readonly seed: number;
  readonly rounds: number;
  /** First order id (each workload its own range, so they never collide). */
  readonly firstId: number;
  /** Round at which `ALTER TABLE orders ADD COLUMN <addColumn>` runs. */
  readonly addColumnAt?: { round: number; column: string };
  /** Round at which the table `<name>` is created, and written to from then on. */
  readonly newTableAt?: { round: number; name: string };
  readonly beforeRound?: (round: number) => Promise<void>;
}

/**
 * Inserts (orders with a line each, 1–3 orders per transaction), updates (orders, with upserts into shipments and
 * the new table),
 * deletes (an order and its lines in one transaction) and rolled-back transactions that touch every order.
 */
async function runWorkload(w: Workload): Promise<void> {
  const rand = rng(w.seed);
  let nextId = w.firstId;
  const live: number[] = [];
  let added: string | undefined;
  let newTable: string | undefined;
  for (let round = 0; round < w.rounds; round++) {
    await w.beforeRound?.(round);
    if (w.addColumnAt?.round === round) {
      await db.query(`ALTER TABLE \`${database}\`.orders ADD COLUMN ${w.addColumnAt.column} VARCHAR(40) NULL`);
      added = w.addColumnAt.column;
    }
    if (w.newTableAt?.round === round) {
      newTable = w.newTableAt.name;
      await db.query(
        `CREATE TABLE \`${database}\`.${newTable} (id INT PRIMARY KEY, order_id BIGINT UNSIGNED, reason ENUM('damaged','late','other'), amount DECIMAL(10,2), at DATETIME(6))`,
      );
    }
    const r = rand();
    await db.beginTransaction();
    if (r < 0.4 || live.length < 3) {
      const n = 1 + Math.floor(rand() * 3); // multi-row transactions
      for (let i = 0; i < n; i++) {
        const id = nextId++;
        await db.query(
          `INSERT INTO \`${database}\`.orders (id, customer_email, status, total, warehouse_id, created_at) VALUES (?, ?, 'new', ?, ?, '2026-11-23 10:00:00.000001')`,
          [id, `c${id}@example.com`, (rand() * 500).toFixed(2), 1 + Math.floor(rand() * 3)],
        );
        await db.query(`INSERT INTO \`${database}\`.order_items VALUES (?, 1, ?, ?)`, [
          id,
          1 + Math.floor(rand() * 5),
          1 + Math.floor(rand() * 9),
        ]);
        live.push(id);
      }
    } else if (r < 0.75) {
      const id = live[Math.floor(rand() * live.length)]!;
      await db.query(
        `UPDATE \`${database}\`.orders SET status = 'paid', total = total + 1.25${added ? `, ${added} = ?` : ''} WHERE id = ?`,
        added ? [`note ${round}`, id] : [id],
      );
      await db.query(
        `INSERT INTO \`${database}\`.shipments VALUES (?, ?, ?, ?, '2026-11-23 11:30:00.250000', ?, ?) ON DUPLICATE KEY UPDATE weight_kg = weight_kg + 0.125, tracking_no = NULL`,
        [id, id, 1 + Math.floor(rand() * 4), 1 + Math.floor(rand() * 3), `TRK${id}`, (rand() * 20).toFixed(3)],
      );
      if (newTable)
        await db.query(
          `INSERT INTO \`${database}\`.${newTable} VALUES (?, ?, 'late', 3.10, NOW(6)) ON DUPLICATE KEY UPDATE amount = amount + 1`,
          [round % 17, id],
        );
    } else if (r < 0.9) {
      const id = live.splice(Math.floor(rand() * live.length), 1)[0]!;
      await db.query(`DELETE FROM \`${database}\`.order_items WHERE order_id = ?`, [id]);
      await db.query(`DELETE FROM \`${database}\`.orders WHERE id = ?`, [id]);
    } else {
      await db.query(`UPDATE \`${database}\`.orders SET status = 'cancelled'`);
      await db.rollback(); // never visible downstream
      continue;
    }
    await db.commit();
    await sleep(10);
  }
}

/**
 * Waits until a process (its PostgreSQL application_name) holds an open transaction (so the kill lands in the middle
 * of a merge, or of the Firehose stand-in's changelog load, not between batches), or with `waiting`, one that waits for
 * a lock the test holds; gives up after 10 s and reports whether it caught one.
 */
async function inTransaction(applicationName: string, waiting?: 'waiting'): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const res = await p.pool.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL${
        waiting ? " AND wait_event_type = 'Lock'" : ''
      }`,
      [applicationName],
    );
    if (res.rows[0].n > 0) return true;
    await sleep(2);
  }
  return false;
}

const SAMPLE_TABLES = ['warehouses', 'couriers', 'items', 'orders', 'order_items', 'shipments'];

describe('the whole pipeline on one machine', () => {
  it('runs the producer with its sink on a thread of its own where the machine has a second core, as the CDK does from 2 vCPU', () => {
    const expected = availableParallelism() >= 2 ? 'on' : 'off';
    expect(readFileSync(join(dir, 'producer.log'), 'utf8')).toMatch(
      new RegExp(`"reading the binlog".*"kinesisSink":"${expected}"`),
    );
  });

  it('makes every replica equal its source after a random workload with rollbacks, ADD COLUMN and a new table', async () => {
    await runWorkload({
      seed: 7,
      rounds: 150,
      firstId: 1,
      addColumnAt: { round: 50, column: 'gift_note' },
      newTableAt: { round: 90, name: 'returns' },
    });
    await assertConverges([...SAMPLE_TABLES, 'returns']);
  }, 240_000);

  it('still converges when the producer is SIGKILLed 5 times, the stream apply 3 times (mid-transaction at least once), the Firehose stand-in twice, and the merge connections are cut', async () => {
    const rand = rng(11);
    const rounds = 200;
    // Random, distinct moments for each fault.
    const pick = (n: number) => {
      const set = new Set<number>();
      while (set.size < n) set.add(5 + Math.floor(rand() * (rounds - 10)));
      return set;
    };
    const producerKills = pick(5);
    const applyKills = pick(3);
    const firehoseKills = pick(2);
    const connectionCuts = pick(2);
    const done = { producer: 0, apply: 0, firehose: 0, midTransaction: 0, cuts: 0 };
    const startsBefore = {
      producer: p.stats.producerStarts,
      apply: p.stats.applyStarts,
      firehose: p.stats.firehoseStarts,
    };
    // Kills of the merging process (the stream apply: the default path) run beside the workload (which must keep
    // writing for a merge to be in flight), one at a time.
    let merging: Promise<void> = Promise.resolve();
    const killApply = async () => {
      // The orders replica held, the next merge of it stops inside its transaction (after its lock and the keys
      // table's writes), and is killed there: catching a merge in flight by polling alone missed every one of three
      // on a loaded CI machine.
      const holder = await p.pool.connect();
      try {
        await holder.query('BEGIN');
        await holder.query(`LOCK TABLE "${p.endpoints.replicaSchema}".orders IN ACCESS EXCLUSIVE MODE`);
        if (await inTransaction(STREAM_APPLY_APPLICATION_NAME, 'waiting')) done.midTransaction++;
        await p.killApply('SIGKILL'); // as a Lambda timeout or crash would; the pipeline starts a new one
      } finally {
        await holder.query('ROLLBACK');
        holder.release();
      }
      done.apply++;
    };
    await runWorkload({
      seed: 13,
      rounds,
      firstId: 1_000_000,
      addColumnAt: { round: 60, column: 'coupon' },
      newTableAt: { round: 100, name: 'claims' },
      beforeRound: async (round) => {
        if (producerKills.has(round)) {
          await p.killProducer('SIGKILL'); // the pipeline starts a new one, as ECS would
          done.producer++;
        }
        if (applyKills.has(round)) merging = merging.then(killApply);
        if (firehoseKills.has(round)) {
          await p.killFirehose('SIGKILL'); // the lake's writer: what it had buffered is read again from the stream
          done.firehose++;
        }
        if (connectionCuts.has(round)) {
          // The merging process lives on but its warehouse connections are cut, in a transaction or not.
          const res = await p.pool.query(
            'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = ANY($1)',
            [[STREAM_APPLY_APPLICATION_NAME, FIREHOSE_APPLICATION_NAME]],
          );
          done.cuts += res.rows[0].n;
        }
      },
    });
    await merging;
    // In the CI log: how the faults landed this time (kills while a merge transaction was open, connections cut).
    process.stderr.write(`e2e faults injected: ${JSON.stringify(done)}\n`);
    expect(done, JSON.stringify(done)).toMatchObject({ producer: 5, apply: 3, firehose: 2 });
    expect(done.cuts, JSON.stringify(done)).toBeGreaterThanOrEqual(1);
    expect(done.midTransaction, JSON.stringify(done)).toBeGreaterThanOrEqual(1);
    await assertConverges([...SAMPLE_TABLES, 'returns', 'claims']);
    // The kills were real: each one was followed by a fresh process.
    expect(p.stats.producerStarts - startsBefore.producer).toBeGreaterThanOrEqual(5);
    expect(p.stats.applyStarts - startsBefore.apply).toBeGreaterThanOrEqual(3);
    expect(p.stats.firehoseStarts - startsBefore.firehose).toBeGreaterThanOrEqual(2);
  }, 420_000);
});
