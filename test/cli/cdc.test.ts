/**
 * `npx cdc` against a real local pipeline (local/pipeline.ts: MariaDB → producer → kinesalite → Firehose stand-in →
 * s3rver → merge → PostgreSQL), run as the operator runs it (cli/cdc.mjs, a child process, endpoints.json).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Pipeline, ROOT, startPipeline } from '../../local/pipeline';
import { sleep, waitFor } from '../../local/services/process';
import { replicaRows, sourceRows } from '../e2e/support/compare';
import { type CdcRun, runCdc } from './support/run-cdc';

const dir = mkdtempSync(join(tmpdir(), 'cdc-cli-'));
let p: Pipeline;
let db: mysql.Connection;
let endpoints: string;
/** A moment before the first backfill request: set-position moves back there. */
let beforeBackfills: string;

function cdc(...args: string[]): Promise<CdcRun> {
  return runCdc(endpoints, ...args);
}

async function converged(table: string, key = ['id']): Promise<void> {
  const [cols] = await db.query(
    'SELECT column_name AS c FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position',
    ['shop', table],
  );
  const columns = (cols as { c: string }[]).map((r) => r.c);
  let diff = '';
  await waitFor(
    `${table} replicated`,
    async () => {
      const client = await p.pool.connect();
      try {
        await client.query("SET TIME ZONE 'UTC'");
        const rep = await replicaRows(client, 'shop', table, columns, key).catch((e: Error) => [e.message]);
        const src = await sourceRows(db, 'shop', table, columns, key);
        diff = `source ${src.length} rows, replica ${rep.length}: ${JSON.stringify(src.find((r, i) => r !== rep[i]))} vs ${JSON.stringify(rep.find((r, i) => r !== src[i]))}`;
        return JSON.stringify(rep) === JSON.stringify(src);
      } finally {
        client.release();
      }
    },
    60_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last difference: ${diff}`);
  });
}

beforeAll(async () => {
  p = await startPipeline({ dir, bufferMs: 300 });
  await p.startProducer();
  endpoints = join(dir, 'endpoints.json');
  writeFileSync(endpoints, JSON.stringify(p.endpoints));
  db = await mysql.createConnection({ ...p.endpoints.mysql, dateStrings: true, multipleStatements: true });
  await db.query("SET time_zone = '+00:00'");
  // The sample schema ships no orders: ten, written while the initial snapshot runs.
  for (let id = 1; id <= 10; id++) {
    await db.query(
      "INSERT INTO shop.orders (id, customer_email, status, total, warehouse_id, created_at) VALUES (?, ?, 'new', ?, 1, '2026-11-23 10:00:00.000001')",
      [id, `c${id}@example.com`, (id * 12.5).toFixed(2)],
    );
  }
  await converged('orders');
});
afterAll(async () => {
  await db?.end();
  await p?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('npx cdc', () => {
  it('rejects bad arguments with exit 2, naming what it got', async () => {
    const r = await cdc('validate', 'orders');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('validate needs <db.table>, got "orders"');
    const s = await cdc('set-position', 'somewhere');
    expect(s.code).toBe(2);
    expect(s.stderr).toContain('set-position needs <file:pos>, <gtid> (domain-server-seq) or <time>');
    const w = await cdc('backfill', 'shop.orders', '--where', 'no_such_column = 1');
    expect(w.code).toBe(2);
    expect(w.stderr).toMatch(/--where "no_such_column = 1" is not valid for shop.orders: .*Unknown column/);
  });

  it('preflight passes against the local pipeline as `npm run local -- up` sets it up', async () => {
    const r = await cdc('preflight', '--json');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: { id: string; status: string }[] };
    expect(report.ok).toBe(true);
    expect(report.checks.filter((c) => c.status !== 'ok')).toEqual([]);
    expect(report.checks.map((c) => c.id)).toContain('grants.signal_table');
  });

  it('status shows the checkpoint, the finished initial snapshot and rows per table, human and --json', async () => {
    const human = await cdc('status');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/producer checkpoint: {2}mysql-bin\.\d{6}:\d+/);
    expect(human.stdout).toMatch(/shop\.orders\s+initial\s+done\s+\[#+\] 100%/);
    const json = JSON.parse((await cdc('status', '--json')).stdout);
    expect(json.producer.running).toBe(true);
    expect(json.snapshots.filter((j: { status: string }) => j.status === 'done').length).toBe(6);
    expect(json.tables.find((t: { table: string }) => t.table === 'shop.orders').applied).toBeGreaterThan(0);
  });

  it('validate passes on a healthy replica and finds a deliberately corrupted row and a lost one', async () => {
    const ok = await cdc('validate', 'shop.orders', '--chunk-rows', '3', '--lag-window', '1');
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/OK/);
    const [[ids]] = (await db.query('SELECT MIN(id) AS lo, MAX(id) AS hi FROM shop.orders')) as unknown as [
      [{ lo: number; hi: number }],
    ];
    await p.pool.query("UPDATE shop.orders SET status = 'corrupted' WHERE id = $1", [ids.hi]);
    await p.pool.query('DELETE FROM shop.orders WHERE id = $1', [ids.lo]);
    // A key the source never had, written into the replica by hand (as a damaged replica would hold it).
    await p.pool.query(
      "INSERT INTO shop.orders (id, customer_email, status, total, warehouse_id, created_at) VALUES ($1, 'ghost@example.com', 'new', 1, 1, now())",
      [ids.hi + 1000],
    );
    const bad = await cdc('validate', 'shop.orders', '--chunk-rows', '3', '--lag-window', '1', '--json');
    expect(bad.code).toBe(1);
    const report = JSON.parse(bad.stdout);
    expect(report.ok).toBe(false);
    expect(report.differences.flatMap((d: { missing: string[] }) => d.missing)).toEqual([String(ids.lo)]);
    expect(report.differences.flatMap((d: { extra: string[] }) => d.extra)).toEqual([String(ids.hi + 1000)]);
    expect(report.differences.flatMap((d: { changed: unknown[] }) => d.changed)).toEqual([
      { key: String(ids.hi), columns: ['status'] },
    ]);
    const human = await cdc('validate', 'shop.orders', '--lag-window', '0');
    expect(human.stdout).toMatch(/DIFFERENT: 1 key range\(s\) still differ/);
    expect(human.stdout).toContain(`missing in the replica: ${ids.lo}`);
  });

  it('backfill repairs the replica (lost, corrupted and extra rows), following progress to the end', async () => {
    await sleep(1000 - (Date.now() % 1000) + 50);
    beforeBackfills = new Date().toISOString();
    await sleep(1000);
    const r = await cdc('backfill', 'shop.orders', '--json', '--timeout', '60');
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout);
    const [[{ n }]] = (await db.query('SELECT COUNT(*) AS n FROM shop.orders')) as unknown as [[{ n: number }]];
    expect(job).toMatchObject({ status: 'done', kind: 'backfill', rowsEmitted: Number(n) });
    // Read events are newer than anything the replica holds for those keys: the lost and the corrupted row are back;
    // the chunk's range event removed the key the source does not have.
    await converged('orders');
    expect((await p.pool.query("SELECT id FROM shop.orders WHERE customer_email = 'ghost@example.com'")).rows).toEqual(
      [],
    );
    expect((await cdc('validate', 'shop.orders', '--lag-window', '0')).code).toBe(0);
    const range = await cdc('backfill', 'shop.orders', '--where', 'id <= 2', '--json');
    expect(JSON.parse(range.stdout)).toMatchObject({ status: 'done', where: 'id <= 2', rowsRead: 2 });
  });

  it('resync rebuilds a replica from a fresh read of the source, following progress to the end', async () => {
    await db.query("UPDATE shop.orders SET status = 'paid' WHERE id <= 3");
    await converged('orders');
    // Damage a resync repairs whatever it is: a row the source lacks, a wrong value.
    await p.pool.query('UPDATE shop.orders SET total = total + 1 WHERE id = 4');
    await p.pool.query(
      "INSERT INTO shop.orders (id, customer_email, status, total, warehouse_id, created_at) VALUES (77777, 'ghost@example.com', 'new', 1, 1, now())",
    );
    const r = await cdc('resync', 'shop.orders', '--json', '--timeout', '60');
    expect(r.code, r.stderr).toBe(0);
    const [[{ n }]] = (await db.query('SELECT COUNT(*) AS n FROM shop.orders')) as unknown as [[{ n: number }]];
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'done', kind: 'resync', rowsEmitted: Number(n) });
    await converged('orders');
    expect((await cdc('validate', 'shop.orders', '--lag-window', '0')).code).toBe(0);
    const human = await cdc('resync', 'shop.nope');
    expect(human.code).toBe(1);
    expect(human.stderr).toContain('shop.nope does not exist in the source');
  });

  it('rebuilds a table as of a past moment from the lake, equal to the source as it was then', async () => {
    await db.query(
      'CREATE TABLE shop.ledger (id INT PRIMARY KEY, amount DECIMAL(10,2), note VARCHAR(20), at DATETIME(6))',
    );
    for (let i = 1; i <= 20; i++)
      await db.query("INSERT INTO shop.ledger VALUES (?, ?, 'a', '2026-11-23 10:00:00.5')", [i, i * 1.5]);
    await db.query("UPDATE shop.ledger SET note = 'a2' WHERE id <= 5");
    await db.query('DELETE FROM shop.ledger WHERE id > 15');
    // Binlog time has second precision: the moment is taken past the second of the last phase-A commit.
    await sleep(1000 - (Date.now() % 1000) + 100);
    const asOf = new Date(Date.now()).toISOString();
    const columns = ['id', 'amount', 'note', 'at'];
    const then = await sourceRows(db, 'shop', 'ledger', columns, ['id']);
    await sleep(1100);
    await db.query("UPDATE shop.ledger SET note = 'b' WHERE id BETWEEN 3 AND 8");
    await db.query('DELETE FROM shop.ledger WHERE id = 1');
    await db.query("INSERT INTO shop.ledger VALUES (100, 9.99, 'b', NOW(6))");
    await converged('ledger');
    const r = await cdc('rebuild', 'shop.ledger', '--as-of', asOf, '--into', 'ledger_then', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ into: 'shop.ledger_then', rows: 15 });
    const client = await p.pool.connect();
    try {
      await client.query("SET TIME ZONE 'UTC'");
      expect(await replicaRows(client, 'shop', 'ledger_then', columns, ['id'])).toEqual(then);
    } finally {
      client.release();
    }
    const again = await cdc('rebuild', 'shop.ledger', '--as-of', asOf, '--into', 'ledger_then');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('shop.ledger_then exists already');
  });

  it('replay applies the lake of a window again: a lost change comes back, nothing else moves', async () => {
    const since = new Date(Date.now() - 1000).toISOString();
    await db.query('CREATE TABLE shop.replayed (id INT PRIMARY KEY, note VARCHAR(20))');
    for (let i = 1; i <= 8; i++) await db.query("INSERT INTO shop.replayed VALUES (?, 'a')", [i]);
    await db.query("UPDATE shop.replayed SET note = 'b' WHERE id = 3");
    await converged('replayed');
    // As if the batch holding row 3's changes had never been applied (an event source mapping that gave up on it):
    // gone from the replica, whose row held the key's last applied position (the keys table holds deleted keys only).
    await p.pool.query('DELETE FROM shop.replayed WHERE id = 3');
    const before = (await p.pool.query('SELECT id, note, _cdc_loaded_at FROM shop.replayed ORDER BY id')).rows;
    // The lake's objects of the window (Firehose's buffer has delivered them by the time the replica converged).
    let r = await cdc('replay', 'shop.replayed', '--since', since, '--json');
    for (let i = 0; i < 20 && r.code !== 0; i++) {
      await sleep(500);
      r = await cdc('replay', 'shop.replayed', '--since', since, '--json');
    }
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ table: 'shop.replayed', failed: [] });
    expect(JSON.parse(r.stdout).events).toBeGreaterThanOrEqual(9);
    await converged('replayed');
    // Rows that were applied are untouched by the replay (the same load time): only the lost one was written.
    const after = (await p.pool.query('SELECT id, note, _cdc_loaded_at FROM shop.replayed WHERE id <> 3 ORDER BY id'))
      .rows;
    expect(after).toEqual(before);
    const bad = await cdc('replay', 'shop.replayed', '--since', 'yesterday');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('replay needs --since <time>');
  });

  it('set-position refuses purged, future and unconfirmed positions, and moves the producer back on --yes without running old backfill requests again', async () => {
    const purged = await cdc('set-position', 'mysql-bin.000000:4', '--yes');
    expect(purged.code).toBe(1);
    expect(purged.stderr).toContain('has been purged from the server');
    const [[end]] = (await db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string; Position: number }]];
    const ahead = await cdc('set-position', `${end.File}:${end.Position + 100_000}`, '--yes');
    expect(ahead.code).toBe(1);
    expect(ahead.stderr).toContain('is ahead of the server');
    const future = await cdc('set-position', new Date(Date.now() + 3_600_000).toISOString(), '--yes');
    expect(future.stderr).toContain('is in the future');
    const since = beforeBackfills;
    const unconfirmed = spawnSync(
      process.execPath,
      [join(ROOT, 'cli/cdc.mjs'), 'set-position', since, '--endpoints', endpoints],
      { cwd: ROOT, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input: '' },
    );
    expect(unconfirmed.status).toBe(1);
    expect(unconfirmed.stderr).toContain('pass --yes');
    const startsBefore = p.stats.producerStarts;
    const moved = await cdc('set-position', since, '--yes', '--json');
    expect(moved.code, moved.stderr).toBe(0);
    expect(JSON.parse(moved.stdout)).toMatchObject({ applied: true });
    await waitFor('the producer to start again', async () => p.stats.producerStarts > startsBefore, 30_000);
    await db.query("UPDATE shop.ledger SET note = 'after' WHERE id = 2");
    await converged('ledger');
    expect((await cdc('validate', 'shop.ledger', '--lag-window', '2')).code).toBe(0);
    // The two backfill requests were read again from the binlog, and not run again.
    const log = readFileSync(join(dir, 'producer.log'), 'utf8');
    expect(log.match(/backfill request read again after the checkpoint moved back: not run twice/g)).toHaveLength(2);
    const jobs = JSON.parse((await cdc('status', '--json')).stdout).snapshots as { kind: string; chunks: number }[];
    expect(jobs.filter((j) => j.kind === 'backfill').map((j) => j.chunks)).toEqual([1, 1]);
  });
});
