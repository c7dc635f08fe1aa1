/**
 * Issue 10, "Isolation", end to end: one table the warehouse refuses (a real fault: a trigger on its PostgreSQL
 * replica that raises) while 20 other tables are written at the same time, through the whole local pipeline (real
 * MariaDB, real producer, kinesalite, the Firehose stand-in, the real merge, PostgreSQL). The 20 must reach their
 * sources row by row while the refused table's objects are still being retried (an ordering, not a speed, assertion:
 * head-of-line blocking never lets them converge, and retries served in front of fresh objects converge them only
 * after the refused objects ran out of attempts). Then every refused object is set aside with its table and reason,
 * `npx cdc status` shows the table failing, and once the fault is removed `npx cdc redrive` replays the set-aside
 * objects and the table equals its source.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PendingRetry } from '../../local/firehose';
import { BUCKET, type Pipeline, startPipeline } from '../../local/pipeline';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { waitFor } from '../../local/services/process';
import { runCdc } from '../cli/support/run-cdc';
import { replicaRows, sourceRows } from './support/compare';

const dir = mkdtempSync(join(tmpdir(), 'cdc-isolation-'));
const GOOD = Array.from({ length: 20 }, (_, i) => `good_${String(i).padStart(2, '0')}`);
const BAD = 'refused';
const LOCKED = 'locked';
const COLUMNS = ['id', 'v', 'note'];
/** The stand-in's default (DELIVERY_MAX_ATTEMPTS). */
const MAX_ATTEMPTS = 5;
const FAULT = 'refused by the isolation fault';
/** Rounds of writes without the fault (the freshness baseline), and in all. */
const BASELINE = 10;
const ROUNDS = 40;

interface StatusJson {
  tables: { table: string; failing: { setAside: number; retrying: number; lastError: string } | null }[];
}

let p: Pipeline;
let db: mysql.Connection;
let s3: S3Client;
let endpoints: string;

/** The stand-in's merge statement timeout here (60 s by default), so that the lock case sees a hang become a reason. */
const STATEMENT_TIMEOUT_MS = 5000;

beforeAll(async () => {
  process.env.MERGE_STATEMENT_TIMEOUT_MS = String(STATEMENT_TIMEOUT_MS); // read by the stand-in startPipeline spawns
  // The lake path's isolation (the Firehose stand-in's merge queue and its state files): since issue 13 the local
  // pipeline applies from the stream by default.
  p = await startPipeline({ dir, bufferMs: 300, loadSampleSchema: false, applySource: 'lake' });
  s3 = new S3Client(localAwsClientConfig(p.endpoints.aws.s3));
  endpoints = join(dir, 'endpoints.json');
  writeFileSync(endpoints, JSON.stringify(p.endpoints));
  db = await mysql.createConnection({ ...p.endpoints.mysql, multipleStatements: true });
  for (const t of [...GOOD, BAD]) {
    await db.query(`CREATE TABLE shop.${t} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40))`);
    await db.query(`INSERT INTO shop.${t} VALUES (0, 0, 'before the fault')`);
  }
  await p.startProducer();
});
afterAll(async () => {
  await db?.end();
  await p?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Tables whose replica differs from their source, with the first difference. */
async function differing(tables: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const client = await p.pool.connect();
  try {
    for (const t of tables) {
      const src = await sourceRows(db, 'shop', t, COLUMNS, ['id']);
      const rep = await replicaRows(client, 'shop', t, COLUMNS, ['id']).catch((e: Error) => [e.message]);
      if (JSON.stringify(src) !== JSON.stringify(rep)) out[t] = `${src.length} source rows, ${rep.length} replica rows`;
    }
  } finally {
    client.release();
  }
  return out;
}

async function waitConverged(tables: readonly string[], what: string, timeoutMs: number): Promise<number> {
  let last: Record<string, string> = {};
  await waitFor(
    what,
    async () => {
      last = await differing(tables);
      return Object.keys(last).length === 0;
    },
    timeoutMs,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; still different: ${JSON.stringify(last)}`);
  });
  return Date.now();
}

function retrying(): PendingRetry[] {
  try {
    return JSON.parse(readFileSync(join(dir, 'firehose-state.json.retrying'), 'utf8')) as PendingRetry[];
  } catch {
    return [];
  }
}

const ofBad = (key: string) => key.includes(`/source_table=${BAD}/`);

async function setAside(): Promise<{ key: string; report: Record<string, unknown> }[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'errors/merge/' }));
  return Promise.all(
    (listed.Contents ?? []).map(async (o) => {
      const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: o.Key! }));
      return { key: o.Key!, report: JSON.parse(await res.Body!.transformToString()) as Record<string, unknown> };
    }),
  );
}

/**
 * The 20 tables' merge lag (applied − source commit, per merged object; commit times have second resolution) for
 * commits from `from` to `to`.
 */
async function freshness(from: number, to: number): Promise<{ n: number; p50: number; max: number }> {
  const res = await p.pool.query(
    `SELECT count(*)::int AS n,
            round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag))::int AS p50, round(max(lag))::int AS max
       FROM (SELECT extract(epoch FROM applied_at::timestamptz) * 1000 - max_commit_ms AS lag
               FROM cdc.merge_batches
              WHERE source_table LIKE 'good\\_%' AND max_commit_ms >= $1 AND max_commit_ms <= $2) x`,
    [Math.floor(from / 1000) * 1000, to],
  );
  return res.rows[0] as { n: number; p50: number; max: number };
}

/** One round of writes: a new row and an update of the previous one in every table, each table its own transaction. */
async function writeRound(round: number, tables: readonly string[]): Promise<void> {
  for (const t of tables) {
    await db.query(`INSERT INTO shop.${t} VALUES (?, ?, ?); UPDATE shop.${t} SET v = v + 1, note = ? WHERE id = ?`, [
      round,
      round,
      `round ${round}`,
      `updated in ${round}`,
      round - 1,
    ]);
  }
}

describe('one table the warehouse refuses, 20 others written meanwhile', () => {
  it('keeps the 20 other tables converging while the refused table retries, sets its objects aside with the reason, and replays them once fixed', async () => {
    await waitConverged([...GOOD, BAD], 'every table to be replicated', 60_000);

    // Baseline: the same writes without a fault, to compare the 20 tables' freshness with.
    const baselineFrom = Date.now();
    for (let round = 1; round <= BASELINE; round++) {
      await writeRound(round, [BAD, ...GOOD]);
      await new Promise((r) => setTimeout(r, 100));
    }
    const baselineConvergedAt = await waitConverged([...GOOD, BAD], 'every table to converge without a fault', 60_000);

    // The fault: the refused table's replica raises on every row change the merge makes.
    await p.pool.query(`
      CREATE FUNCTION shop.isolation_fault() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION '${FAULT}'; END $$;
      CREATE TRIGGER isolation_fault BEFORE INSERT OR UPDATE OR DELETE ON shop.${BAD}
        FOR EACH ROW EXECUTE FUNCTION shop.isolation_fault()`);

    const faultFrom = Date.now();
    for (let round = BASELINE + 1; round <= ROUNDS; round++) {
      // The refused table first: its object comes first in each delivery, in front of the 20.
      await writeRound(round, [BAD, ...GOOD]);
      await new Promise((r) => setTimeout(r, 100));
    }
    const writesEnd = Date.now();

    // Ordering: the 20 equal their sources while the refused table's newest objects are still being retried.
    const convergedAt = await waitConverged(GOOD, 'the 20 other tables to equal their sources', 60_000);
    // Entries with 0 attempts are objects not attempted yet (just delivered).
    const queued = retrying().filter((r) => ofBad(r.key) && r.attempts > 0);
    const asideEarly = (await setAside()).filter((a) => ofBad(a.key));
    expect(queued.length, 'refused objects waiting for another attempt').toBeGreaterThan(0);
    expect(Math.min(...queued.map((r) => r.attempts))).toBeLessThan(MAX_ATTEMPTS);
    expect(
      queued.every((r) => r.lastError.includes(FAULT)),
      JSON.stringify(queued[0]),
    ).toBe(true);
    const [[badSource]] = (await db.query(`SELECT count(*) AS n FROM shop.${BAD}`)) as unknown as [[{ n: number }]];
    const badReplica = await p.pool.query(`SELECT count(*)::int AS n FROM shop.${BAD}`);
    expect(badReplica.rows[0].n).toBe(BASELINE + 1); // only the rows from before the fault
    expect(Number(badSource.n)).toBe(ROUNDS + 1);

    // Status shows the table failing while its objects are retried.
    const during = await runCdc(endpoints, 'status', '--json');
    expect(during.code, during.stderr).toBe(0);
    const retryingStatus = (JSON.parse(during.stdout) as StatusJson).tables.find((t) => t.table === `shop.${BAD}`);
    expect(retryingStatus?.failing?.retrying, during.stdout).toBeGreaterThan(0);
    expect(retryingStatus?.failing?.lastError).toContain(FAULT);

    // Every refused object runs out of its own attempts and is set aside with its table and reason.
    let aside: { key: string; report: Record<string, unknown> }[] = [];
    await waitFor(
      'every refused object to be set aside',
      async () => {
        // The queue first: an object leaves it only after its report was written.
        if (retrying().some((r) => ofBad(r.key))) return false;
        aside = (await setAside()).filter((a) => ofBad(a.key));
        return aside.length > 0;
      },
      60_000,
    );
    const setAsideAt = Date.now();
    const firstFailure = Math.min(...aside.map((a) => Number(a.report.firstFailedAt)));
    const baseline = await freshness(baselineFrom, faultFrom);
    const faulty = await freshness(faultFrom, writesEnd);
    process.stderr.write(
      `isolation: baseline ${BASELINE} rounds, 21 tables converged ${baselineConvergedAt - baselineFrom} ms after the first write, ` +
        `20 tables' merge lag p50 ${baseline.p50} ms max ${baseline.max} ms (${baseline.n} batches); ` +
        `with the fault ${ROUNDS - BASELINE} rounds in ${writesEnd - faultFrom} ms, the 20 converged ${convergedAt - writesEnd} ms after the last write, ` +
        `${convergedAt - firstFailure} ms after the first refused attempt, merge lag p50 ${faulty.p50} ms max ${faulty.max} ms (${faulty.n} batches); ` +
        `then ${queued.length} refused objects queued (attempts ${queued.map((r) => r.attempts).join(',')}), ${asideEarly.length} set aside; ` +
        `first refused object set aside ${Math.min(...aside.map((a) => Number(a.report.failedAt))) - firstFailure} ms after its first attempt; ` +
        `all ${aside.length} set aside ${setAsideAt - writesEnd} ms after the last write\n`,
    );
    expect(asideEarly.length, 'refused objects set aside before the 20 converged').toBeLessThan(aside.length);
    for (const { report } of aside) {
      expect(report.table).toBe(`shop.${BAD}`);
      expect(report.attempts).toBe(MAX_ATTEMPTS);
      expect(String(report.reason)).toContain(FAULT);
      expect(String(report.reason)).toContain(`shop.${BAD}`);
    }
    // Nothing of the 20 was set aside.
    expect((await setAside()).filter((a) => !ofBad(a.key))).toEqual([]);

    // Status names the failing table, its set-aside objects and the reason.
    const status = await runCdc(endpoints, 'status', '--json');
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout) as StatusJson;
    const bad = report.tables.find((t) => t.table === `shop.${BAD}`);
    expect(bad?.failing?.setAside).toBe(aside.length);
    expect(bad?.failing?.lastError).toContain(FAULT);
    expect(report.tables.filter((t) => t.failing && t.table !== `shop.${BAD}`)).toEqual([]);
    const text = await runCdc(endpoints, 'status');
    expect(text.stdout).toMatch(new RegExp(`shop\\.${BAD} .*FAILING`));

    // Fix the cause, replay the set-aside objects: the refused table converges too, the 20 stay equal.
    await p.pool.query(`DROP TRIGGER isolation_fault ON shop.${BAD}`);
    const redrive = await runCdc(endpoints, 'redrive', '--json');
    expect(redrive.code, redrive.stderr).toBe(0);
    expect((JSON.parse(redrive.stdout) as { redriven: number }).redriven).toBe(aside.length);
    await waitConverged([...GOOD, BAD], 'every table, the refused one included, to equal its source', 60_000);
    expect((await setAside()).filter((a) => ofBad(a.key))).toEqual([]);
    const after = JSON.parse((await runCdc(endpoints, 'status', '--json')).stdout) as typeof report;
    expect(after.tables.find((t) => t.table === `shop.${BAD}`)?.failing ?? null).toBeNull();
  }, 170_000);

  it('keeps the 20 other tables converging while a merge hangs on a lock held on one replica, turns the hang into a failed attempt with its reason, and catches up once released', async () => {
    await db.query(`CREATE TABLE shop.${LOCKED} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40))`);
    await db.query(`INSERT INTO shop.${LOCKED} VALUES (0, 0, 'before the lock')`);
    await waitConverged([...GOOD, LOCKED], 'the new table to be replicated', 60_000);
    // The fault: another session holds the replica's strongest lock, so the merge's statements on it wait.
    const locker = await p.pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE shop.${LOCKED} IN ACCESS EXCLUSIVE MODE`);
      const from = Date.now();
      for (let round = ROUNDS + 1; round <= ROUNDS + 10; round++) {
        await writeRound(round, [LOCKED, ...GOOD]);
        await new Promise((r) => setTimeout(r, 100));
      }
      const writesEnd = Date.now();
      const convergedAt = await waitConverged(GOOD, 'the 20 other tables to equal their sources', 60_000);
      // Read through the lock holder (anyone else would wait): nothing written under the lock has been applied.
      const held = await locker.query(`SELECT count(*)::int AS n FROM shop.${LOCKED}`);
      expect(held.rows[0].n).toBe(1);
      // A merge of it is waiting for the lock (between two attempts it may not be: poll).
      await waitFor('a merge waiting for the lock', async () => {
        const waiting = await locker.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'local-firehose' AND wait_event_type = 'Lock'",
        );
        return waiting.rows[0].n > 0;
      });
      // The statement timeout turns the hang into a failed attempt with PostgreSQL's reason, shown as failing.
      const timedOut = await waitFor(
        'the hung merge to fail on the statement timeout',
        async () =>
          retrying().find(
            (r) =>
              r.key.includes(`/source_table=${LOCKED}/`) && r.attempts > 0 && /statement timeout/.test(r.lastError),
          ),
        STATEMENT_TIMEOUT_MS * 4,
      );
      expect(timedOut.lastError).toContain(`shop.${LOCKED}: `);
      process.stderr.write(
        `isolation (lock): 10 rounds in ${writesEnd - from} ms; the 20 converged ${convergedAt - writesEnd} ms after the last write while a merge waited for the lock; ` +
          `first attempt failed on the statement timeout ${Number(timedOut.lastFailedAt) - from} ms after the first write: ${timedOut.lastError.slice(0, 120)}\n`,
      );
      await locker.query('COMMIT');
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined); // after a failure: release the lock, then the client
      locker.release();
    }
    await waitConverged([...GOOD, LOCKED], 'the locked table to catch up once the lock is released', 60_000);
  }, 120_000);
});
