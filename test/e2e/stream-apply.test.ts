/**
 * Issue 13 end to end: the stream path (the event source mapping stand-in applying straight from kinesalite) and both
 * paths feeding one warehouse, on the whole local pipeline (real MariaDB, real producer, kinesalite, the real merge,
 * PostgreSQL), driven by a seeded random workload over four tables: inserts, updates, key-changing updates, deletes,
 * multi-table and rolled-back transactions, a TRUNCATE and an ADD COLUMN … DEFAULT. Every replica must equal its
 * source row by row (test/e2e/support/compare.ts).
 *
 * Two pipelines, one after the other: one applying only from the stream (its Firehose stand-in still writes the lake,
 * which its last test replays through the lake path), then one with both paths applying.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processObject } from '../../lambdas/merge/src/apply-object';
import { loadConfig } from '../../lambdas/merge/src/config';
import { mergeContextFromConfig } from '../../lambdas/merge/src/merge';
import { warehouseFromConfig } from '../../lambdas/merge/src/warehouse';
import { STREAM_APPLY_APPLICATION_NAME } from '../../local/event-source-mapping';
import { type Pipeline, startPipeline } from '../../local/pipeline';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { sleep, waitFor } from '../../local/services/process';
import { LAKE_CHANGELOG_PREFIX } from '../../shared/lake-layout';
import { replicaSnapshot, tableShape, waitForReplicas } from './support/converge';

const TABLES = ['sa_orders', 'sa_lines', 'sa_notes', 'sa_events'] as const;
const SCHEMA = [
  'CREATE TABLE sa_orders (id INT PRIMARY KEY, customer VARCHAR(40) NOT NULL, qty INT NOT NULL, price DECIMAL(10,2), updated DATETIME(6))',
  'CREATE TABLE sa_lines (order_id INT, line INT, sku VARCHAR(20) NOT NULL, PRIMARY KEY (order_id, line))',
  'CREATE TABLE sa_notes (id BIGINT PRIMARY KEY, body TEXT, flag TINYINT(1))',
  "CREATE TABLE sa_events (id INT PRIMARY KEY, kind ENUM('a','b','c') NOT NULL, at DATETIME(6))",
];

interface Running {
  readonly p: Pipeline;
  readonly db: mysql.Connection;
  readonly database: string;
  readonly dir: string;
}

/**
 * A pipeline on an empty database with the four tables. The lake's buffer: 1 s on the stream path (it only writes
 * the lake there; fewer objects to replay), 300 ms with both paths (the lake path applies close behind the stream).
 */
async function open(applySource: 'stream' | 'both'): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), `cdc-e2e-${applySource}-`));
  const bufferMs = applySource === 'stream' ? 1000 : 300;
  const p = await startPipeline({ dir, applySource, bufferMs, loadSampleSchema: false });
  await p.startProducer();
  const database = p.endpoints.mysql.database;
  const db = await mysql.createConnection({
    ...p.endpoints.mysql,
    dateStrings: true,
    timezone: 'Z',
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
  await db.query("SET time_zone = '+00:00'");
  for (const ddl of SCHEMA) await db.query(ddl);
  return { p, db, database, dir };
}

async function close(r: Running | undefined): Promise<void> {
  if (!r) return;
  await r.db.end().catch(() => undefined);
  await r.p.stop();
  rmSync(r.dir, { recursive: true, force: true });
}

let stream: Running;
let both: Running;

afterAll(async () => {
  await Promise.all([close(stream), close(both)]);
}, 120_000);

/** Deterministic pseudo-random numbers, so a failure can be replayed with the same seed. */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

interface Workload {
  readonly seed: number;
  readonly rounds: number;
  /** Keys of this workload start here (each workload its own range, so they never collide). */
  readonly firstId: number;
  /** Round at which `TRUNCATE sa_events` runs. */
  readonly truncateAt?: number;
  /** Round at which `ALTER TABLE sa_orders ADD COLUMN <name> … DEFAULT` runs (existing rows get the default). */
  readonly addColumnAt?: { round: number; column: string };
  readonly beforeRound?: (round: number) => Promise<void>;
}

/**
 * The random workload: each round one transaction of a kind drawn from the seed — 1–3 inserts into random tables,
 * an update of non-key columns, a key-changing update (orders and notes move to a new id, a line to a new line
 * number), a delete, an order with two lines, or a transaction that touches rows and is rolled back.
 */
async function runWorkload(r: Running, w: Workload): Promise<void> {
  const { db } = r;
  const rand = rng(w.seed);
  const pick = <T>(xs: T[]): T | undefined => (xs.length ? xs[Math.floor(rand() * xs.length)] : undefined);
  const drop = <T>(xs: T[], x: T) => xs.splice(xs.indexOf(x), 1);
  let nextId = w.firstId;
  const orders: number[] = [];
  const lines: [number, number][] = [];
  const notes: number[] = [];
  let events: number[] = [];
  let added: string | undefined;
  const insertOne = async (table: (typeof TABLES)[number]) => {
    const id = nextId++;
    if (table === 'sa_orders') {
      await db.query('INSERT INTO sa_orders (id, customer, qty, price, updated) VALUES (?, ?, ?, ?, NOW(6))', [
        id,
        `c${id}@example.com`,
        1 + Math.floor(rand() * 9),
        (rand() * 500).toFixed(2),
      ]);
      orders.push(id);
    } else if (table === 'sa_lines') {
      const order = pick(orders) ?? id;
      const line = 1 + Math.floor(rand() * 1000);
      if (lines.some(([o, l]) => o === order && l === line)) return;
      await db.query('INSERT INTO sa_lines VALUES (?, ?, ?)', [order, line, `SKU-${Math.floor(rand() * 99)}`]);
      lines.push([order, line]);
    } else if (table === 'sa_notes') {
      await db.query('INSERT INTO sa_notes VALUES (?, ?, ?)', [
        id,
        rand() < 0.2 ? null : `note ${id}: it's "quoted", naïve, ünïcode ✓, a,b;c`,
        rand() < 0.5 ? 1 : 0,
      ]);
      notes.push(id);
    } else {
      await db.query('INSERT INTO sa_events VALUES (?, ?, NOW(6))', [id, pick(['a', 'b', 'c'])]);
      events.push(id);
    }
  };
  for (let round = 0; round < w.rounds; round++) {
    await w.beforeRound?.(round);
    if (w.truncateAt === round) {
      await db.query('TRUNCATE TABLE sa_events');
      events = [];
    }
    if (w.addColumnAt?.round === round) {
      await db.query(`ALTER TABLE sa_orders ADD COLUMN ${w.addColumnAt.column} VARCHAR(10) NOT NULL DEFAULT 'std'`);
      added = w.addColumnAt.column;
    }
    const k = rand();
    await db.beginTransaction();
    if (k < 0.35 || orders.length < 3) {
      const n = 1 + Math.floor(rand() * 3);
      for (let i = 0; i < n; i++) await insertOne(pick([...TABLES])!);
    } else if (k < 0.5) {
      const id = pick(orders)!;
      await db.query(
        `UPDATE sa_orders SET qty = qty + 1, price = price + 0.25, updated = NOW(6)${added ? `, ${added} = ?` : ''} WHERE id = ?`,
        added ? [pick(['gold', 'silver']), id] : [id],
      );
      const note = pick(notes);
      if (note !== undefined) await db.query('UPDATE sa_notes SET flag = 1 - flag WHERE id = ?', [note]);
    } else if (k < 0.65) {
      // Key-changing updates: the old key must disappear from the replica, the new one appear.
      const id = pick(orders)!;
      const moved = nextId++;
      await db.query('UPDATE sa_orders SET id = ? WHERE id = ?', [moved, id]);
      orders[orders.indexOf(id)] = moved;
      const line = pick(lines);
      if (line && !lines.some(([o, l]) => o === line[0] && l === line[1] + 1000)) {
        await db.query('UPDATE sa_lines SET line = line + 1000 WHERE order_id = ? AND line = ?', line);
        line[1] += 1000;
      }
      const note = pick(notes);
      if (note !== undefined) {
        const to = nextId++;
        await db.query('UPDATE sa_notes SET id = ? WHERE id = ?', [to, note]);
        notes[notes.indexOf(note)] = to;
      }
    } else if (k < 0.8) {
      const id = pick(orders)!;
      await db.query('DELETE FROM sa_orders WHERE id = ?', [id]);
      drop(orders, id);
      const line = pick(lines);
      if (line) {
        await db.query('DELETE FROM sa_lines WHERE order_id = ? AND line = ?', line);
        drop(lines, line);
      }
      const ev = pick(events);
      if (ev !== undefined) {
        await db.query('DELETE FROM sa_events WHERE id = ?', [ev]);
        drop(events, ev);
      }
    } else if (k < 0.93) {
      const id = nextId++;
      await db.query('INSERT INTO sa_orders (id, customer, qty, price, updated) VALUES (?, ?, 1, 9.99, NOW(6))', [
        id,
        `m${id}@example.com`,
      ]);
      await db.query("INSERT INTO sa_lines VALUES (?, 1, 'SKU-A'), (?, 2, 'SKU-B')", [id, id]);
      orders.push(id);
      lines.push([id, 1], [id, 2]);
    } else {
      await db.query("UPDATE sa_orders SET customer = 'rolled back'");
      await db.query('DELETE FROM sa_lines');
      await db.rollback(); // never visible downstream
      continue;
    }
    await db.commit();
    await sleep(5);
  }
}

const converged = (r: Running, timeoutMs?: number) =>
  waitForReplicas(r.p.pool, r.p.endpoints.replicaSchema, r.db, r.database, TABLES, timeoutMs);

/**
 * Which path applied the workload's batches, from the warehouse's own batch records: the stream apply names a batch
 * `kinesis:<shard>:<first>-<last>` (apply-stream.ts `streamBatchId`), the lake path by its object's `s3://` URI.
 */
async function appliedBy(r: Running): Promise<{ stream: number; lake: number }> {
  const res = await r.p.pool.query(
    `SELECT count(*) FILTER (WHERE batch_id LIKE 'kinesis:%')::int AS stream,
            count(*) FILTER (WHERE batch_id LIKE 's3://%')::int AS lake
     FROM cdc.merge_batches WHERE source_table = ANY($1)`,
    [[...TABLES]],
  );
  return res.rows[0];
}

/**
 * Waits until the stream apply holds an open transaction in PostgreSQL (so a kill lands in the middle of a merge);
 * gives up after `ms` and reports whether it caught one.
 */
async function applyInTransaction(r: Running, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const res = await r.p.pool.query(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL',
      [STREAM_APPLY_APPLICATION_NAME],
    );
    if (res.rows[0].n > 0) return true;
    await sleep(2);
  }
  return false;
}

describe('the stream path', () => {
  beforeAll(async () => {
    stream = await open('stream');
  }, 120_000);
  // Stopped before the next pipeline starts: two at once on CI's 2 cores slow both down.
  afterAll(async () => {
    await close(stream);
    stream = undefined as unknown as Running;
  }, 60_000);

  it('makes every replica equal its source after a random workload with key-changing updates, deletes, a TRUNCATE and an ADD COLUMN … DEFAULT', async () => {
    await runWorkload(stream, {
      seed: 21,
      rounds: 160,
      firstId: 1,
      truncateAt: 90,
      addColumnAt: { round: 60, column: 'tier' },
    });
    await converged(stream);
    // Applied from the stream, not by the lake path behind it (which only writes the lake in this mode).
    const by = await appliedBy(stream);
    expect(by.stream, JSON.stringify(by)).toBeGreaterThan(0);
    expect(by.lake, JSON.stringify(by)).toBe(0);
  }, 90_000);

  it('still converges when the stream-apply process is SIGKILLed 3 times during the load, mid-transaction at least once', async () => {
    const kills = new Set([10, 45, 80]);
    const done = { kills: 0, midTransaction: 0 };
    const startsBefore = stream.p.stats.applyStarts;
    // Kills run beside the workload (which must keep writing for a merge to be in flight), one at a time.
    let killing: Promise<void> = Promise.resolve();
    const kill = async () => {
      if (await applyInTransaction(stream)) done.midTransaction++;
      await stream.p.killApply('SIGKILL'); // as a Lambda crash or timeout would; the pipeline starts a new one
      done.kills++;
    };
    await runWorkload(stream, {
      seed: 34,
      rounds: 110,
      firstId: 1_000_000,
      beforeRound: async (round) => {
        if (kills.has(round)) killing = killing.then(kill);
      },
    });
    await killing;
    process.stderr.write(`stream-apply kills: ${JSON.stringify(done)}\n`);
    expect(done.kills).toBe(3);
    expect(done.midTransaction, JSON.stringify(done)).toBeGreaterThanOrEqual(1);
    await converged(stream);
    // The kills were real: each one was followed by a fresh process (started again half a second after the kill).
    expect(stream.p.stats.applyStarts - startsBefore).toBeGreaterThanOrEqual(3);
  }, 90_000);

  it('changes no replica row when every lake object is replayed through the lake path (processObject) after the stream path applied it', async () => {
    await converged(stream);
    const { p, db, database } = stream;
    // The Firehose stand-in still writes the lake in stream mode; let its last buffer go out.
    const s3 = new S3Client(localAwsClientConfig(p.endpoints.aws.s3));
    const listKeys = async () => {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3.send(
          new ListObjectsV2Command({
            Bucket: p.endpoints.aws.bucket,
            Prefix: LAKE_CHANGELOG_PREFIX,
            ContinuationToken: token,
          }),
        );
        for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
        token = page.NextContinuationToken;
      } while (token);
      return keys.sort();
    };
    let keys = await listKeys();
    for (let stable = 0; stable < 3; ) {
      await sleep(700);
      const again = await listKeys();
      stable = again.length === keys.length ? stable + 1 : 0;
      keys = again;
    }
    const ours = keys.filter((k) => TABLES.some((t) => k.includes(`source_table=${t}/`)));
    expect(ours.length).toBeGreaterThan(0);

    const client = await p.pool.connect();
    const snapshot = async () => {
      const all: Record<string, string[]> = {};
      for (const t of TABLES)
        all[t] = await replicaSnapshot(client, p.endpoints.replicaSchema, t, (await tableShape(db, database, t)).key);
      return all;
    };
    const pool = new pg.Pool({ connectionString: p.endpoints.postgres.url, max: 2 });
    try {
      const before = await snapshot();
      const config = loadConfig({
        WAREHOUSE: 'postgres',
        POSTGRES_URL: p.endpoints.postgres.url,
        CHANGELOG_SCHEMA: 'cdc',
        REPLICA_SCHEMA: p.endpoints.replicaSchema,
        HISTORY_TABLES: '',
        PIPELINE_ID: 'local',
        AWS_ENDPOINT_S3: p.endpoints.aws.s3,
      });
      const ctx = mergeContextFromConfig(config, warehouseFromConfig(config, { s3, pool }));
      const outcomes: string[] = [];
      for (const key of ours) {
        const outcome = await processObject({ bucket: p.endpoints.aws.bucket, key }, s3, ctx);
        outcomes.push(outcome.kind === 'merged' ? 'merged' : `${outcome.kind}: ${key}: ${outcome.reason}`);
      }
      expect(outcomes.filter((o) => o !== 'merged')).toEqual([]);
      const after = await snapshot();
      for (const t of TABLES) expect(after[t], t).toEqual(before[t]);
    } finally {
      client.release();
      await pool.end();
    }
    await converged(stream, 10_000);
  }, 60_000);
});

describe('both paths feeding one warehouse', () => {
  beforeAll(async () => {
    both = await open('both');
  }, 120_000);

  it('makes every replica equal its source when the stream path and the lake path both apply the same random workload', async () => {
    await runWorkload(both, {
      seed: 55,
      rounds: 160,
      firstId: 1,
      truncateAt: 70,
      addColumnAt: { round: 100, column: 'tier' },
    });
    await converged(both);
    // Both paths really applied batches of the workload to the one warehouse (the lake path a buffer behind).
    let by = await appliedBy(both);
    await waitFor(
      'batches applied by both paths',
      async () => {
        by = await appliedBy(both);
        return by.stream > 0 && by.lake > 0;
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(by)}`);
    });
    // The lake path's later, older batches change nothing the stream path already applied.
    await sleep(2000);
    await converged(both, 30_000);
  }, 90_000);
});
