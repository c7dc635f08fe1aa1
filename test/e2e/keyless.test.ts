/**
 * Tables without a primary key, end to end (issue 10): their existing rows reach the replica through the initial
 * snapshot while they are being written to, `npx cdc validate` compares them as multisets (and finds a lost
 * duplicate and a ghost row), `npx cdc backfill` and `npx cdc resync` repair and rebuild them, a backfill with
 * --where is refused, and a replay of the binlog from before all of it leaves every replica equal to its source.
 * Real MariaDB, the real producer, kinesalite, the Firehose stand-in, the real merge, PostgreSQL.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Pipeline, startPipeline } from '../../local/pipeline';
import { sleep, waitFor } from '../../local/services/process';
import { type CdcRun, runCdc } from '../cli/support/run-cdc';
import { keylessReplicaRows, sourceRows } from './support/compare';

const dir = mkdtempSync(join(tmpdir(), 'cdc-keyless-'));
let p: Pipeline;
let db: mysql.Connection;
let endpoints: string;
/** The binlog before the tables existed: the replay starts there. */
let start: string;
/** Rows written while the initial snapshot ran. */
let writtenDuringSnapshot = 0;

const TABLES: Record<string, string[]> = {
  kl_log: ['at', 'msg', 'n'],
  kl_tags: ['tag'],
};

function cdc(...args: string[]): Promise<CdcRun> {
  return runCdc(endpoints, ...args);
}

async function assertConverged(): Promise<void> {
  const last: Record<string, string> = {};
  await waitFor(
    'every keyless replica to equal its source as a multiset',
    async () => {
      const client = await p.pool.connect();
      try {
        await client.query("SET TIME ZONE 'UTC'");
        let ok = true;
        for (const [table, columns] of Object.entries(TABLES)) {
          const src = (await sourceRows(db, 'shop', table, columns, columns)).sort();
          const rep = await keylessReplicaRows(client, 'shop', table, columns).catch((e: Error) => [e.message]);
          if (JSON.stringify(src) !== JSON.stringify(rep)) {
            const only = (a: string[], b: string[]) => a.filter((x) => !b.includes(x)).slice(0, 3);
            last[table] =
              `source ${src.length} rows, replica ${rep.length}; only in the source: ${only(src, rep).join('; ')}; ` +
              `only in the replica: ${only(rep, src).join('; ')}`;
            ok = false;
          } else delete last[table];
        }
        return ok;
      } finally {
        client.release();
      }
    },
    60_000,
  ).catch(async (err: Error) => {
    const status = await cdc('status', '--json');
    throw new Error(`${err.message}; differences: ${JSON.stringify(last)}; status: ${status.stdout.slice(0, 3000)}`);
  });
}

beforeAll(async () => {
  p = await startPipeline({ dir, bufferMs: 300 });
  endpoints = join(dir, 'endpoints.json');
  writeFileSync(endpoints, JSON.stringify(p.endpoints));
  db = await mysql.createConnection({ ...p.endpoints.mysql, dateStrings: true, multipleStatements: true });
  await db.query("SET time_zone = '+00:00'");
  const [[end]] = (await db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string; Position: number }]];
  start = `${end.File}:${end.Position}`;
  // Written before the producer ever ran: only a snapshot can bring these rows (duplicates and NULLs included).
  await db.query(
    'CREATE TABLE shop.kl_log (at DATETIME(6), msg VARCHAR(50), n INT); ' +
      "INSERT INTO shop.kl_log SELECT '2026-11-30 10:00:00.000001' + INTERVAL (seq % 50) SECOND, " +
      "CONCAT('m', seq % 300), IF(seq % 7 = 0, NULL, seq % 11) FROM shop.seq_1_to_3000; " +
      "CREATE TABLE shop.kl_tags (tag VARCHAR(20)); INSERT INTO shop.kl_tags VALUES ('a'),('a'),('a'),('b'),(NULL),(NULL)",
  );
  // Writes while the snapshot runs: some inside its window make it read the table again.
  let writing = true;
  const writer = (async () => {
    const w = await mysql.createConnection({ ...p.endpoints.mysql, multipleStatements: true });
    try {
      for (let i = 0; writing; i++) {
        await w.query(
          `INSERT INTO shop.kl_log VALUES ('2026-11-30 12:00:00', 'during', ${i}); DELETE FROM shop.kl_log WHERE msg = 'm${i % 300}' LIMIT 1`,
        );
        writtenDuringSnapshot++;
        await sleep(15);
      }
    } finally {
      await w.end();
    }
  })();
  await p.startProducer();
  await sleep(1500);
  writing = false;
  await writer;
}, 240_000);
afterAll(async () => {
  await db?.end();
  await p?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('tables without a primary key', () => {
  it('reach the replica through the initial snapshot, duplicates and NULLs included, while they are written to', async () => {
    expect(writtenDuringSnapshot).toBeGreaterThan(10);
    await assertConverged();
    const status = await cdc('status', '--json');
    const dbg = await p.pool.query(
      `SELECT at::text, msg, n, "_cdc_position", "_cdc_op", "_cdc_delta" FROM cdc.shop__kl_log__deltas WHERE msg = 'm100' ORDER BY "_cdc_position"`,
    );
    const [srcDbg] = await db.query("SELECT * FROM shop.kl_log WHERE msg = 'm100'");
    console.log(JSON.stringify(dbg.rows), JSON.stringify(srcDbg));
    const jobs = JSON.parse(status.stdout).snapshots as { db: string; table: string; status: string }[];
    expect(jobs.filter((j) => j.db === 'shop' && j.table.startsWith('kl_')).map((j) => j.status)).toEqual([
      'done',
      'done',
    ]);
  });

  it('validate compares them as multisets: OK when equal, a lost duplicate and a ghost row when not', async () => {
    const ok = await cdc('validate', 'shop.kl_tags', '--lag-window', '0');
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(
      /6 source rows, 6 replica rows \(no primary key: compared as multisets, 3 distinct rows\)/,
    );
    // Damage as a broken replica would hold it: one of the three 'a' lost, a row the source never had.
    await p.pool.query(
      // Written by hand: no position (older than anything the merge wrote).
      "INSERT INTO cdc.shop__kl_tags__deltas (tag, \"_cdc_delta\") VALUES ('a', -1), ('ghost', 1)",
    );
    const bad = await cdc('validate', 'shop.kl_tags', '--lag-window', '0', '--json');
    expect(bad.code).toBe(1);
    const report = JSON.parse(bad.stdout);
    expect(report).toMatchObject({ ok: false, sourceRows: 6, replicaRows: 6 });
    expect(report.differences).toEqual([expect.objectContaining({ missing: ['a'], extra: ['ghost'], changed: [] })]);
    const human = await cdc('validate', 'shop.kl_tags', '--lag-window', '0');
    expect(human.stdout).toContain('missing in the replica: a');
    expect(human.stdout).toContain('only in the replica: ghost');
  });

  it('backfill repairs them whole; a backfill with --where is refused before anything is written', async () => {
    const refused = await cdc('backfill', 'shop.kl_tags', '--where', "tag = 'a'");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('shop.kl_tags has no primary key: it is backfilled whole, never with --where');
    const r = await cdc('backfill', 'shop.kl_tags', '--json', '--timeout', '60');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'done', kind: 'backfill', rowsEmitted: 6 });
    await assertConverged();
    expect((await cdc('validate', 'shop.kl_tags', '--lag-window', '0')).code).toBe(0);
  });

  it('resync rebuilds one from a fresh read, and changes after it still apply', async () => {
    await p.pool.query('DELETE FROM cdc.shop__kl_log__deltas WHERE n = 3');
    const r = await cdc('resync', 'shop.kl_log', '--json', '--timeout', '60');
    expect(r.code, r.stderr).toBe(0);
    const [[{ n }]] = (await db.query('SELECT COUNT(*) AS n FROM shop.kl_log')) as unknown as [[{ n: number }]];
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'done', kind: 'resync', rowsEmitted: Number(n) });
    await db.query("UPDATE shop.kl_log SET msg = 'after-resync' WHERE n = 5 LIMIT 3");
    await assertConverged();
    expect((await cdc('validate', 'shop.kl_log', '--lag-window', '0')).code).toBe(0);
  });

  it('stay equal to their source when the binlog is read again from before they existed', async () => {
    const replayFrom = new Date();
    const startsBefore = p.stats.producerStarts;
    const moved = await cdc('set-position', start, '--yes', '--json');
    expect(moved.code, moved.stderr).toBe(0);
    await waitFor('the producer to start again', async () => p.stats.producerStarts > startsBefore, 60_000);
    await db.query("INSERT INTO shop.kl_tags VALUES ('after-replay')");
    await waitFor(
      'the replayed changes of both tables to be merged',
      async () => {
        const again = await p.pool.query(
          "SELECT count(DISTINCT source_table)::int AS n FROM cdc.merge_batches WHERE source_table LIKE 'kl\\_%' AND applied_at > $1",
          [replayFrom],
        );
        return again.rows[0].n === 2;
      },
      120_000,
    );
    await assertConverged();
  });
});
