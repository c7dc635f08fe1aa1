/**
 * The stream apply (lambdas/merge/src/apply-stream.ts) against a real PostgreSQL and a real S3 emulator: batches of
 * Kinesis records merged with the lake path's semantics, and its failure policy (hand off a failing table, keep
 * undecodable records, retry in place only when the warehouse does not answer).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { KinesisStreamEvent } from 'aws-lambda';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ObjectRef } from '../../lambdas/merge/src/apply-object';
import { processObject } from '../../lambdas/merge/src/apply-object';
import {
  applyStreamBatch,
  batchResponse,
  recordsFromKinesisEvent,
  type StreamApplyPolicy,
  type StreamRecord,
} from '../../lambdas/merge/src/apply-stream';
import { decodeBody } from '../../lambdas/merge/src/batch';
import { type MergeContext, resetSchemaCache } from '../../lambdas/merge/src/merge';
import type { Step } from '../../lambdas/merge/src/merge-plan';
import { tableNames } from '../../lambdas/merge/src/naming';
import { PostgresWarehouse } from '../../lambdas/merge/src/postgres-client';
import { planRegisterColumns, planRegistryCheck } from '../../lambdas/merge/src/schema-evolution';
import { replicaColumn } from '../../lambdas/merge/src/table-model';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import type { ChangeEvent } from '../../shared/change-event';
import { lakePartitionPrefix } from '../../shared/lake-layout';
import { ndjson, TableEvents } from './support/event-factory';
import { type PgHarness, startPgHarness } from './support/postgres-merge';

const dir = mkdtempSync(join(tmpdir(), 'cdc-stream-apply-'));
let h: PgHarness;
let s3emu: Emulator;
let s3: S3Client;

beforeAll(async () => {
  [h, s3emu] = await Promise.all([startPgHarness(), startEmulator('s3', { dir })]);
  s3 = new S3Client(localAwsClientConfig(s3emu.endpoint));
  await s3.send(new CreateBucketCommand({ Bucket: 'lake' }));
});
afterAll(async () => {
  await Promise.all([h?.close(), s3emu?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  await h.reset();
});

let seq = 0;
/** Kinesis records of some events, one shard, increasing sequence numbers. */
function records(events: readonly (ChangeEvent | string)[], shardId = 'shardId-000000000000'): StreamRecord[] {
  return events.map((e) => ({
    shardId,
    sequenceNumber: String(10_000_000 + ++seq).padStart(56, '0'),
    data: Buffer.from(typeof e === 'string' ? e : JSON.stringify(e)),
  }));
}

/** A policy that records what it is asked (its S3 side is the real emulator). */
function recordingPolicy() {
  const queued: { ref: ObjectRef; table: string; reason: string }[] = [];
  const setAside: { ref: ObjectRef; table: string | null; reason: string; code: string }[] = [];
  const policy: StreamApplyPolicy = {
    bucket: 'lake',
    enqueue: async (ref, table, reason) => {
      queued.push({ ref, table, reason });
    },
    setAside: async (ref, table, reason, code) => {
      setAside.push({ ref, table, reason, code });
    },
  };
  return { policy, queued, setAside };
}

/** The real PostgreSQL warehouse, counting its transactions (what goes to the server is untouched). */
function countingCtx(): { ctx: MergeContext; transactions: Step[][] } {
  const base = h.ctx();
  const transactions: Step[][] = [];
  const w = base.warehouse as PostgresWarehouse;
  const warehouse = Object.create(w) as PostgresWarehouse;
  warehouse.runTransaction = async (steps: readonly Step[], csv: string) => {
    transactions.push([...steps]);
    return w.runTransaction(steps, csv);
  };
  return { ctx: { ...base, warehouse }, transactions };
}

/**
 * Fault injection by timing: a context whose warehouse, right after answering the first query that `at` matches, runs
 * `between` (another shard's batch merging) before the merge goes on. Its `interleaved()` says whether that happened.
 */
function interleavedCtx(at: (sql: string) => boolean, between: () => Promise<unknown>) {
  const base = h.ctx();
  const w = base.warehouse as PostgresWarehouse;
  const warehouse = Object.create(w) as PostgresWarehouse;
  let done = false;
  warehouse.query = async (text: string) => {
    const res = await w.query(text);
    if (!done && at(text)) {
      done = true;
      await between();
    }
    return res;
  };
  return { ctx: { ...base, warehouse }, interleaved: () => done };
}

/** The columns the merge's registry holds for a replica of `shop`, sorted. */
async function registeredColumns(table: string): Promise<string[]> {
  const rows = await h.rows(
    `SELECT column_name FROM cdc.replica_columns WHERE source_db = 'shop' AND source_table = '${table}'`,
  );
  return rows.map((r) => (r as { column_name: string }).column_name).sort();
}

/** The source columns a replica in `shop` has (without the merge's own), sorted. */
async function replicaColumns(table: string): Promise<string[]> {
  const rows = await h.rows(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = '${table}' AND column_name NOT LIKE '\\_cdc%'`,
  );
  return rows.map((r) => (r as { column_name: string }).column_name).sort();
}

async function readObject(ref: ObjectRef): Promise<string> {
  const res = await s3.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
  return decodeBody(await res.Body!.transformToByteArray());
}

describe('stream apply', () => {
  it('merges a batch of several tables, four to a transaction, and each replica equals its changes', async () => {
    const tables = ['t1', 't2', 't3', 't4', 't5', 't6'].map(
      (n) => new TableEvents('shop', n, { id: 'int(11)', v: 'varchar(20)' }),
    );
    const { policy, queued } = recordingPolicy();
    // The tables exist already: a table's first batch also records the column list its rows carry (one statement more).
    await applyStreamBatch(records(tables.map((t) => t.insert({ id: 9, v: 'z' }))), s3, h.ctx(), policy);
    const events = tables.flatMap((t) => [
      t.insert({ id: 1, v: 'a' }),
      t.insert({ id: 2, v: 'b' }),
      t.update({ id: 1, v: 'a' }, { id: 1, v: 'a2' }),
      t.delete({ id: 2, v: 'b' }),
      t.delete({ id: 9, v: 'z' }),
    ]);
    const { ctx, transactions } = countingCtx();
    const out = await applyStreamBatch(records(events), s3, ctx, policy, { tablesPerTransaction: 4 });
    expect(out.retryFrom).toBeUndefined();
    expect(queued).toEqual([]);
    expect(out.results.map((r) => r.table)).toEqual(['t1', 't2', 't3', 't4', 't5', 't6']);
    for (const t of tables) expect(await h.rows(`SELECT id, v FROM shop.${t.table}`)).toEqual([{ id: 1, v: 'a2' }]);
    // Data transactions (those with a load): 4 tables, then 2; not one per table.
    const data = transactions.filter((steps) => steps.some((s) => s.kind === 'load'));
    expect(data.map((steps) => steps.filter((s) => s.kind === 'load').length)).toEqual([4, 2]);
    // Each table's batch record for each of the two batches, though the six share a batch id (npx cdc status reads
    // them per table).
    expect(
      await h.rows(
        "SELECT source_table, COUNT(*)::int AS n FROM cdc.merge_batches WHERE batch_id LIKE 'kinesis:%' GROUP BY 1 ORDER BY 1",
      ),
    ).toEqual(tables.map((t) => ({ source_table: t.table, n: 2 })));
  });

  it('converges to the same replica whether a batch is applied once, replayed, split, reversed or also by the lake path', async () => {
    const t = new TableEvents('shop', 'orders', { id: 'int(11)', total: 'int(11)' });
    const u = new TableEvents('shop', 'lines', { id: 'int(11)', qty: 'int(11)' });
    const events = [
      t.insert({ id: 1, total: 10 }),
      u.insert({ id: 7, qty: 1 }),
      t.update({ id: 1, total: 10 }, { id: 2, total: 10 }), // key-changing update
      t.insert({ id: 3, total: 30 }),
      u.update({ id: 7, qty: 1 }, { id: 7, qty: 5 }),
      t.delete({ id: 3, total: 30 }),
      u.insert({ id: 8, qty: 2 }),
    ];
    const snapshot = async () => ({
      orders: await h.rows('SELECT id, total FROM shop.orders ORDER BY id'),
      lines: await h.rows('SELECT id, qty FROM shop.lines ORDER BY id'),
    });
    const { policy } = recordingPolicy();
    const ctx = h.ctx();
    await applyStreamBatch(records(events), s3, ctx, policy);
    const once = await snapshot();
    expect(once).toEqual({
      orders: [{ id: 2, total: 10 }],
      lines: [
        { id: 7, qty: 5 },
        { id: 8, qty: 2 },
      ],
    });

    // Replayed as it was, then split in two and reversed, then the second half before the first.
    await applyStreamBatch(records(events), s3, ctx, policy);
    await applyStreamBatch(records(events.slice(4)), s3, ctx, policy);
    await applyStreamBatch(records([...events].reverse()), s3, ctx, policy);
    expect(await snapshot()).toEqual(once);

    // A fresh warehouse fed half by each path, out of order, converges to the same replica.
    await h.reset();
    await applyStreamBatch(records(events.slice(3)), s3, ctx, policy);
    for (const [i, table] of [
      [0, 'orders'],
      [1, 'lines'],
    ] as const) {
      const group = events.slice(0, 3).filter((e) => e.table === table);
      const key = `${lakePartitionPrefix('shop', table, new Date())}both-${i}.gz`;
      await s3.send(new PutObjectCommand({ Bucket: 'lake', Key: key, Body: gzipSync(ndjson(group)) }));
      expect((await processObject({ bucket: 'lake', key }, s3, ctx)).kind).toBe('merged');
    }
    // And the lake path replaying every event once more changes nothing.
    const all = `${lakePartitionPrefix('shop', 'orders', new Date())}replay.gz`;
    await s3.send(
      new PutObjectCommand({
        Bucket: 'lake',
        Key: all,
        Body: gzipSync(ndjson(events.filter((e) => e.table === 'orders'))),
      }),
    );
    expect((await processObject({ bucket: 'lake', key: all }, s3, ctx)).kind).toBe('merged');
    expect(await snapshot()).toEqual(once);
  });

  it('hands a table whose merge fails off to the lake path, and merges the other tables of the batch', async () => {
    const good = new TableEvents('shop', 'good', { id: 'int(11)', v: 'int(11)' });
    const bad = new TableEvents('shop', 'bad', { id: 'int(11)', v: 'int(11)' });
    const ctx = h.ctx();
    const { policy, queued } = recordingPolicy();
    // Create both replicas, then make the bad one refuse writes (a real PostgreSQL trigger: the table's problem).
    await applyStreamBatch(records([good.insert({ id: 1, v: 1 }), bad.insert({ id: 1, v: 1 })]), s3, ctx, policy);
    await h.pool.query(
      `CREATE FUNCTION shop.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'replica refuses writes'; END $$;
       CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON shop.bad FOR EACH ROW EXECUTE FUNCTION shop.refuse()`,
    );
    const batch = records([good.insert({ id: 2, v: 2 }), bad.insert({ id: 2, v: 2 }), good.insert({ id: 3, v: 3 })]);
    const out = await applyStreamBatch(batch, s3, ctx, policy);
    expect(out.retryFrom).toBeUndefined();
    expect(batchResponse(out)).toEqual({ batchItemFailures: [] });
    expect(await h.rows('SELECT id FROM shop.good ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
    expect(queued).toHaveLength(1);
    expect(queued[0]!.table).toBe('shop.bad');
    expect(queued[0]!.reason).toMatch(/^shop\.bad: .*replica refuses writes/);
    expect(queued[0]!.ref.key).toMatch(
      /^handoff\/source_db=shop\/source_table=bad\/dt=\d{4}-\d{2}-\d{2}\/hour=\d{2}\//,
    );
    const parked = (await readObject(queued[0]!.ref)).trim().split('\n');
    expect(parked.map((l) => (JSON.parse(l) as ChangeEvent).after)).toEqual([{ id: 2, v: 2 }]);

    // Once the cause is gone, the lake path merges the handed-off object and the replica catches up.
    await h.pool.query('DROP TRIGGER refuse ON shop.bad');
    expect((await processObject(queued[0]!.ref, s3, ctx)).kind).toBe('merged');
    expect(await h.rows('SELECT id FROM shop.bad ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('runs the bookkeeping DDL again when a concurrent creator collided with it, instead of handing the table off', async () => {
    const t = new TableEvents('shop', 'first', { id: 'int(11)' });
    const base = h.ctx();
    const w = base.warehouse as PostgresWarehouse;
    const warehouse = Object.create(w) as PostgresWarehouse;
    let collisions = 0;
    // The fault a second process creating the same schema at the same moment produces (injected: two real processes
    // collide only by chance).
    warehouse.executeAll = async (statements: readonly string[]) => {
      if (collisions === 0 && statements.some((st) => st.startsWith('CREATE SCHEMA IF NOT EXISTS'))) {
        collisions++;
        throw new Error('duplicate key value violates unique constraint "pg_namespace_nspname_index"');
      }
      return w.executeAll(statements);
    };
    const { policy, queued } = recordingPolicy();
    const out = await applyStreamBatch(records([t.insert({ id: 1 })]), s3, { ...base, warehouse }, policy);
    expect(collisions).toBe(1);
    expect([out.retryFrom, queued]).toEqual([undefined, []]);
    expect(await h.rows('SELECT id FROM shop.first')).toEqual([{ id: 1 }]);
  });

  it("applies two shards' batches of one table at once (table-pk), each bringing a new column, without handing off", async () => {
    // With the partition key table-pk a table's rows arrive on every shard, and their batches merge at the same time.
    const t = new TableEvents('shop', 'hot', { id: 'int(11)', v: 'int(11)' });
    const first = [t.insert({ id: 1, v: 1 }), t.insert({ id: 2, v: 2 })];
    const { policy, queued } = recordingPolicy();
    await applyStreamBatch(records(first), s3, h.ctx(), policy, { tablesPerTransaction: 4 });
    for (let round = 0; round < 3; round++) {
      // An ALTER TABLE … ADD COLUMN travels with the table's name; the rows after it carry the column on both shards.
      const alter = t.alter([{ kind: 'add_column', name: `c${round}`, type: 'int(11)', default: null }]);
      const a = [t.insert({ id: 10 + round * 10, v: 1, c0: 0, c1: 1, c2: 2 })];
      const b = [t.insert({ id: 11 + round * 10, v: 1, c0: 0, c1: 1, c2: 2 })];
      await Promise.all([
        applyStreamBatch(records([alter, ...a], 'shardId-000000000000'), s3, h.ctx(), policy, {
          tablesPerTransaction: 4,
        }),
        applyStreamBatch(records(b, 'shardId-000000000001'), s3, h.ctx(), policy, { tablesPerTransaction: 4 }),
        applyStreamBatch(
          records([t.insert({ id: 12 + round * 10, v: 1, c0: 0, c1: 1, c2: 2 })], 'shardId-000000000002'),
          s3,
          h.ctx(),
          policy,
          { tablesPerTransaction: 1 },
        ),
      ]);
    }
    expect(queued.map((q) => q.reason).join('\n')).toEqual('');
    expect((await h.rows('SELECT id FROM shop.hot ORDER BY id')).map((r) => r.id)).toEqual([
      1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32,
    ]);
    expect(await h.rows('SELECT c2 FROM shop.hot WHERE id = 32')).toEqual([{ c2: 2 }]);
  });

  it("keeps the next incarnation's rows merged from another shard while a DROP TABLE is being planned", async () => {
    const old = new TableEvents('shop', 'd', { id: 'int(11)', a: 'int(11)' });
    const { policy, queued } = recordingPolicy();
    await applyStreamBatch(records([old.insert({ id: 1, a: 1 })]), s3, h.ctx(), policy);
    const drop = old.drop();
    // DROP TABLE d; CREATE TABLE d …; INSERT …: the drop goes with the table's name to one shard, the new row by its
    // key to another, whose batch merges between the drop's check for newer rows and its transaction.
    const reborn = new TableEvents('shop', 'd', { id: 'int(11)', a: 'int(11)' });
    for (let i = 0; i < 5; i++) reborn.insert({ id: 0, a: 0 }); // positions keep growing across incarnations
    const newer = reborn.insert({ id: 2, a: 2 });
    const { ctx, interleaved } = interleavedCtx(
      (text) => text.includes('COUNT(*) AS n') && text.includes(drop.position),
      () => applyStreamBatch(records([newer], 'shardId-000000000001'), s3, h.ctx(), policy),
    );
    await applyStreamBatch(records([drop]), s3, ctx, policy);
    expect(interleaved()).toBe(true);
    expect(queued.map((q) => q.reason)).toEqual([]);
    expect(await h.rows('SELECT id, a FROM shop.d')).toEqual([{ id: 2, a: 2 }]);
  });

  it("leaves only the new table's columns when a DROP + CREATE with another shape is merged after the new rows", async () => {
    // The schema-changes e2e's t3 under table-pk, as the fresh-clone CI found it: DROP TABLE t3; CREATE TABLE t3 (id,
    // b); INSERT. The new row goes by its key to one shard and is merged before the DROP (on the table's shard): it
    // added b to the old replica, and the DROP, finding a newer row, rightly deleted only the older ones, but the old
    // column a stayed.
    const old = new TableEvents('shop', 'd3', { id: 'int(11)', a: 'varchar(10)' });
    const before = [old.insert({ id: 1, a: 'a1' }), old.insert({ id: 2, a: 'a2' })];
    const drop = old.drop();
    const reborn = new TableEvents('shop', 'd3', { id: 'int(11)', b: 'int(11)' });
    for (let i = 0; i < 5; i++) reborn.insert({ id: 0, b: 0 }); // positions keep growing across incarnations
    const newer = reborn.insert({ id: 1, b: 10 });
    const { policy, queued } = recordingPolicy();
    await applyStreamBatch(records(before), s3, h.ctx(), policy);
    await applyStreamBatch(records([newer], 'shardId-000000000001'), s3, h.ctx(), policy);
    resetSchemaCache(); // the DROP's invocation (another Lambda container)
    await applyStreamBatch(records([drop]), s3, h.ctx(), policy);
    expect(queued.map((q) => q.reason)).toEqual([]);
    expect(await h.rows('SELECT id, b FROM shop.d3 ORDER BY id')).toEqual([{ id: 1, b: 10 }]);
    expect(await replicaColumns('d3')).toEqual(['b', 'id']);
    expect(await registeredColumns('d3')).toEqual(['b', 'id']);
    // Replayed in the stream's order (a producer moved back): the same replica.
    await applyStreamBatch(records([...before, drop, newer]), s3, h.ctx(), policy);
    expect(await h.rows('SELECT id, b FROM shop.d3 ORDER BY id')).toEqual([{ id: 1, b: 10 }]);
    expect(await replicaColumns('d3')).toEqual(['b', 'id']);
    expect(queued.map((q) => q.reason)).toEqual([]);
  });

  it('retries, instead of setting aside, rows of an incompatible type change merged ahead of its resync, and keeps them', async () => {
    // ALTER … MODIFY v VARCHAR(20) of an INT column: the producer resyncs the table (a resync by the table's name, then
    // a backfill); a row changed after the ALTER goes by its key to another shard and is merged first. Set aside as
    // poison, its value was lost whenever the backfill had read that row before the change.
    const t = new TableEvents('shop', 'ti', { id: 'int(11)', v: 'int(11)' });
    const { policy, queued, setAside } = recordingPolicy();
    await applyStreamBatch(records([t.insert({ id: 1, v: 1 }), t.insert({ id: 2, v: 2 })]), s3, h.ctx(), policy);
    const resync = t.resync('incompatible type change');
    t.retype('v', 'varchar(20)');
    const backfilled = [t.read({ id: 1, v: '1' }), t.read({ id: 2, v: '2' })]; // the backfill read both rows …
    const changed = t.update({ id: 2, v: '2' }, { id: 2, v: 'two' }); // … before this change
    await applyStreamBatch(records([changed], 'shardId-000000000001'), s3, h.ctx(), policy);
    expect(setAside).toEqual([]);
    expect(queued.map((q) => q.reason)).toEqual([expect.stringContaining('SCHEMA_INCOMPATIBLE')]);
    await applyStreamBatch(records([resync, ...backfilled]), s3, h.ctx(), policy);
    // The queue's retry (the lake path's merge of the handed-off object) goes through now.
    expect((await processObject(queued[0]!.ref, s3, h.ctx())).kind).toBe('merged');
    expect(await h.rows('SELECT id, v FROM shop.ti ORDER BY id')).toEqual([
      { id: 1, v: '1' },
      { id: 2, v: 'two' },
    ]);
  });

  it('keeps the values of a renamed column when the RENAME is merged from another shard while rows are being planned', async () => {
    const t = new TableEvents('shop', 'r', { id: 'int(11)', old_name: 'varchar(10)', c2: 'int(11)' });
    const { policy, queued } = recordingPolicy();
    await applyStreamBatch(records([t.insert({ id: 9, old_name: 'a', c2: 9 })]), s3, h.ctx(), policy);
    const row = t.insert({ id: 1, old_name: 'kept', c2: 1 });
    const rename = t.alter([{ kind: 'rename_column', from: 'old_name', to: 'new_name' }]);
    // The row goes by its key to one shard, the ALTER by the table's name to another; the ALTER's batch merges
    // between the row batch's read of the table's history and its transaction.
    const { ctx, interleaved } = interleavedCtx(
      (text) => text.includes('op, detail FROM') && text.includes('shop__r__state'),
      () => applyStreamBatch(records([rename], 'shardId-000000000001'), s3, h.ctx(), policy),
    );
    resetSchemaCache(); // the row batch's invocation knows nothing of the table yet (another Lambda container)
    await applyStreamBatch(records([row]), s3, ctx, policy);
    expect(interleaved()).toBe(true);
    expect(queued.map((q) => q.reason)).toEqual([]);
    expect(await h.rows('SELECT id, new_name, c2 FROM shop.r ORDER BY id')).toEqual([
      { id: 1, new_name: 'kept', c2: 1 },
      { id: 9, new_name: 'a', c2: 9 },
    ]);
    const columns = await h.rows(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'r' AND column_name NOT LIKE '\\_cdc%' ORDER BY ordinal_position",
    );
    expect(columns.map((c) => (c as { column_name: string }).column_name)).toEqual(['id', 'new_name', 'c2']);
  });

  it('merges no row older than a TRUNCATE another shard merged while a shared transaction was being planned', async () => {
    const a = new TableEvents('shop', 'ta', { id: 'int(11)', v: 'int(11)' });
    const b = new TableEvents('shop', 'tb', { id: 'int(11)', v: 'int(11)' });
    const { policy, queued } = recordingPolicy();
    await applyStreamBatch(records([a.insert({ id: 1, v: 1 }), b.insert({ id: 1, v: 1 })]), s3, h.ctx(), policy);
    const late = [a.update({ id: 1, v: 1 }, { id: 1, v: 2 }), b.update({ id: 1, v: 1 }, { id: 1, v: 2 })];
    const truncate = b.truncate();
    // Both tables' rows share one transaction; the TRUNCATE of tb (newer than its row) merges from another shard after
    // tb's history was read for the plan, before the transaction: one check of both histories fails it, and each
    // table is planned again on its own, tb's row then below its floor.
    const { ctx, interleaved } = interleavedCtx(
      (text) => text.includes('op, detail FROM') && text.includes('shop__tb__state'),
      () => applyStreamBatch(records([truncate], 'shardId-000000000001'), s3, h.ctx(), policy),
    );
    resetSchemaCache();
    await applyStreamBatch(records(late), s3, ctx, policy);
    expect(interleaved()).toBe(true);
    expect(queued.map((q) => q.reason)).toEqual([]);
    expect(await h.rows('SELECT id, v FROM shop.ta')).toEqual([{ id: 1, v: 2 }]);
    expect(await h.rows('SELECT id, v FROM shop.tb')).toEqual([]);
  });

  it("renames the column of rows another shard's batch wrote while the RENAME was being planned for a table not yet created", async () => {
    const t = new TableEvents('shop', 'r2', { id: 'int(11)', old_name: 'varchar(10)' });
    const { policy, queued } = recordingPolicy();
    const row = t.insert({ id: 1, old_name: 'kept' });
    const rename = t.alter([{ kind: 'rename_column', from: 'old_name', to: 'new_name' }]);
    const later = t.insert({ id: 2, new_name: 'y' });
    // The ALTER's batch reads the registry (no replica yet); the row's batch, from another shard, creates the replica
    // and merges before the ALTER's transaction.
    const { ctx, interleaved } = interleavedCtx(
      (text) => text.includes('replica_columns') && text.includes("'r2'"),
      () => applyStreamBatch(records([row], 'shardId-000000000001'), s3, h.ctx(), policy),
    );
    resetSchemaCache();
    await applyStreamBatch(records([rename]), s3, ctx, policy);
    await applyStreamBatch(records([later], 'shardId-000000000001'), s3, h.ctx(), policy);
    expect(interleaved()).toBe(true);
    expect(queued.map((q) => q.reason)).toEqual([]);
    expect(await h.rows('SELECT id, new_name FROM shop.r2 ORDER BY id')).toEqual([
      { id: 1, new_name: 'kept' },
      { id: 2, new_name: 'y' },
    ]);
  });

  it("keeps the replica's registry whole when a batch that read it empty creates the table after another shard created and renamed it", async () => {
    // The schema-changes e2e's t5 under table-pk: INSERT rows 1 and 2, RENAME COLUMN, CHANGE COLUMN, UPDATE row 2.
    // Row 1's batch reads the registry (no replica yet); row 2's shard creates the replica, and the ALTERs rename its
    // columns, before row 1's batch creates "its" table. Its CREATE … IF NOT EXISTS is a no-op, but it registered the
    // old names over the renamed ones: every later batch then added back a column the replica had (stuck for good).
    const t = new TableEvents('shop', 'c5', { id: 'int(11)', old_name: 'varchar(10)', c2: 'int(11)' });
    const row1 = t.insert({ id: 1, old_name: 'kept', c2: 1 });
    const row2 = t.insert({ id: 2, old_name: 'x', c2: 2 });
    const rename = t.alter([{ kind: 'rename_column', from: 'old_name', to: 'new_name' }]);
    const change = t.alter([{ kind: 'rename_column', from: 'c2', to: 'c3' }]);
    const update = t.update({ id: 2, new_name: 'x', c3: 2 }, { id: 2, new_name: 'y', c3: 2 });
    const { policy, queued } = recordingPolicy();
    const { ctx, interleaved } = interleavedCtx(
      (text) => text.includes('replica_columns') && text.includes("'c5'"),
      async () => {
        await applyStreamBatch(records([row2], 'shardId-000000000001'), s3, h.ctx(), policy);
        await applyStreamBatch(records([rename, change], 'shardId-000000000002'), s3, h.ctx(), policy);
      },
    );
    resetSchemaCache();
    await applyStreamBatch(records([row1]), s3, ctx, policy);
    await applyStreamBatch(records([update], 'shardId-000000000001'), s3, h.ctx(), policy);
    expect(interleaved()).toBe(true);
    expect(queued.map((q) => q.reason)).toEqual([]);
    expect(await h.rows('SELECT id, new_name, c3 FROM shop.c5 ORDER BY id')).toEqual([
      { id: 1, new_name: 'kept', c3: 1 },
      { id: 2, new_name: 'y', c3: 2 },
    ]);
    expect(await registeredColumns('c5')).toEqual(await replicaColumns('c5'));
  });

  it('moves the older rows’ values to the new names when rows newer than a RENAME/CHANGE COLUMN were merged before it', async () => {
    // The schema-changes e2e's t5 under table-pk, as it failed in CI: row 2's UPDATE (after the ALTERs, carrying the
    // new names) goes by its key to one shard, the ALTERs by the table's name to another, and the UPDATE is merged
    // first: it adds new_name and c3 as new columns. The RENAME then found its new name taken and did nothing, so row
    // 1's values stayed under the old names, and the replica showed it as NULL, NULL.
    const t = new TableEvents('shop', 'c6', { id: 'int(11)', old_name: 'varchar(10)', c2: 'int(11)' });
    const inserts = [t.insert({ id: 1, old_name: 'kept', c2: 1 }), t.insert({ id: 2, old_name: 'x', c2: 2 })];
    const rename = t.alter([{ kind: 'rename_column', from: 'old_name', to: 'new_name' }]);
    t.retype('c2', 'bigint(20)');
    const change = t.alter([{ kind: 'rename_column', from: 'c2', to: 'c3' }]);
    const update = t.update({ id: 2, new_name: 'x', c3: 2 }, { id: 2, new_name: 'y', c3: 20 });
    const insert3 = t.insert({ id: 3, new_name: 'z', c3: 3 });
    const { policy, queued } = recordingPolicy();
    await applyStreamBatch(records(inserts), s3, h.ctx(), policy);
    await applyStreamBatch(records([update, insert3], 'shardId-000000000001'), s3, h.ctx(), policy);
    await applyStreamBatch(records([rename, change], 'shardId-000000000002'), s3, h.ctx(), policy);
    expect(queued.map((q) => q.reason)).toEqual([]);
    const expected = [
      { id: 1, new_name: 'kept', c3: '1' },
      { id: 2, new_name: 'y', c3: '20' },
      { id: 3, new_name: 'z', c3: '3' },
    ];
    expect(await h.rows('SELECT id, new_name, c3::text AS c3 FROM shop.c6 ORDER BY id')).toEqual(expected);
    expect(await replicaColumns('c6')).toEqual(['c3', 'id', 'new_name']);
    expect(await registeredColumns('c6')).toEqual(['c3', 'id', 'new_name']);
    // Replayed from the start (a producer moved back), in the stream's order: the same replica.
    await applyStreamBatch(records([...inserts, rename, change, update, insert3]), s3, h.ctx(), policy);
    expect(await h.rows('SELECT id, new_name, c3::text AS c3 FROM shop.c6 ORDER BY id')).toEqual(expected);
    expect(queued.map((q) => q.reason)).toEqual([]);
  });

  it('never narrows a VARCHAR another shard widened further after the registry was read, nor rounds a DECIMAL', async () => {
    // MODIFY v VARCHAR(20), then MODIFY v VARCHAR(40) (and d DECIMAL(10,2) → (12,2) → (14,4)): the later rows go by key
    // to one shard and are merged first; the earlier ones' batch read the registry before that. VARCHAR widening runs
    // outside a transaction, so it would have narrowed the column back to 20 characters, and a numeric rebuild planned from the old
    // type would have cast the 4-decimal values back to 2.
    const t = new TableEvents('shop', 'n', { id: 'int(11)', v: 'varchar(10)', d: 'decimal(10,2)' });
    const { policy, queued } = recordingPolicy();
    await applyStreamBatch(records([t.insert({ id: 1, v: 'a', d: '1.25' })]), s3, h.ctx(), policy);
    t.retype('v', 'varchar(20)');
    t.retype('d', 'decimal(12,2)');
    const earlier = t.insert({ id: 2, v: 'b'.repeat(20), d: '1234567890.12' });
    t.retype('v', 'varchar(40)');
    t.retype('d', 'decimal(14,4)');
    const later = t.insert({ id: 3, v: 'c', d: '1234567890.1234' }); // short: a narrower column would still hold it
    const { ctx, interleaved } = interleavedCtx(
      (text) => text.includes('replica_columns') && text.includes("'n'"),
      () => applyStreamBatch(records([later], 'shardId-000000000001'), s3, h.ctx(), policy),
    );
    resetSchemaCache();
    await applyStreamBatch(records([earlier]), s3, ctx, policy);
    expect(interleaved()).toBe(true);
    await applyStreamBatch(records([t.insert({ id: 4, v: 'e'.repeat(40), d: '1.0001' })]), s3, h.ctx(), policy);
    expect(queued.map((q) => q.reason)).toEqual([]);
    const size = await h.rows(
      "SELECT character_maximum_length AS n, numeric_scale AS s FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'n' AND column_name IN ('v', 'd') ORDER BY column_name",
    );
    expect(size).toEqual([
      { n: null, s: 4 },
      { n: 40, s: null },
    ]);
    expect(await h.rows('SELECT id, length(v) AS v, d::text AS d FROM shop.n ORDER BY id')).toEqual([
      { id: 1, v: 1, d: '1.2500' },
      { id: 2, v: 20, d: '1234567890.1200' },
      { id: 3, v: 1, d: '1234567890.1234' },
      { id: 4, v: 40, d: '1.0001' },
    ]);
    const registry = await h.rows(
      "SELECT column_name, warehouse_type FROM cdc.replica_columns WHERE source_db = 'shop' AND source_table = 'n' AND column_name IN ('v', 'd') ORDER BY column_name",
    );
    expect(registry).toEqual([
      { column_name: 'd', warehouse_type: 'DECIMAL(14,4)' },
      { column_name: 'v', warehouse_type: 'VARCHAR(40)' },
    ]);
  });

  it('keeps both columns in the registry when two shards add different columns from the same registry read', async () => {
    // Each batch read the registry before the other's ADD COLUMN committed, and registered "what it read plus its own
    // column": the later one dropped the other's column from the registry while the replica kept it, and every later
    // batch carrying it failed on "column already exists" (the schema-changes e2e's r1 was handed off for good).
    const t = new TableEvents('shop', 'w', { id: 'int(11)', v: 'int(11)' });
    const { policy, queued } = recordingPolicy();
    await applyStreamBatch(records([t.insert({ id: 1, v: 1 })]), s3, h.ctx(), policy);
    // ALTER … ADD a; INSERT; ALTER … DROP a, ADD b; INSERT; ALTER … ADD a; INSERT: the rows carry the columns the
    // binlog names, the ALTERs travel by the table's name to a shard not applied yet.
    t.addColumn('a', 'int(11)');
    const withA = t.insert({ id: 2, v: 2, a: 2 });
    t.columns = t.columns.filter((c) => c.name !== 'a');
    t.addColumn('b', 'int(11)');
    const withB = t.insert({ id: 3, v: 3, b: 3 });
    t.addColumn('a', 'int(11)');
    const { ctx, interleaved } = interleavedCtx(
      (text) => text.includes('replica_columns') && text.includes("'w'"),
      () => applyStreamBatch(records([withB], 'shardId-000000000001'), s3, h.ctx(), policy),
    );
    resetSchemaCache(); // the batch's invocation reads the registry (another Lambda container)
    await applyStreamBatch(records([withA]), s3, ctx, policy);
    await applyStreamBatch(
      records([t.insert({ id: 4, v: 4, a: 4, b: 4 })], 'shardId-000000000001'),
      s3,
      h.ctx(),
      policy,
    );
    expect(interleaved()).toBe(true);
    expect(queued.map((q) => q.reason)).toEqual([]);
    expect(await h.rows('SELECT id, v, a, b FROM shop.w ORDER BY id')).toEqual([
      { id: 1, v: 1, a: null, b: null },
      { id: 2, v: 2, a: 2, b: null },
      { id: 3, v: 3, a: null, b: 3 },
      { id: 4, v: 4, a: 4, b: 4 },
    ]);
    expect(await registeredColumns('w')).toEqual(await replicaColumns('w'));
  });

  it("registers a 1,600-column table and checks its registry in statements under the Data API's 100 KB, and still sees a change", async () => {
    const { policy } = recordingPolicy();
    const t = new TableEvents('shop', 'wide', { id: 'int(11)' });
    await applyStreamBatch(records([t.insert({ id: 1 })]), s3, h.ctx(), policy); // the registry table exists
    const names = tableNames('shop', 'wide', { stateSchema: 'cdc' });
    // Redshift's widest table, with long names, some of them not ASCII.
    const columns = Array.from({ length: 1600 }, (_, i) => ({
      name: `${'é'.repeat(30)}_${'c'.repeat(60)}_${i}`,
      warehouseType: i % 2 ? 'VARCHAR(65535)' : 'DECIMAL(38,10)',
    }));
    // Registered as the merge registers a table: each statement under 100 KB (long ENUM definitions included).
    const enumType = `enum(${Array.from({ length: 20 }, (_, i) => `'value number ${i}'`).join(',')})`;
    const register = planRegisterColumns(
      {
        db: 'shop',
        table: 'wide',
        pk: [],
        columns: columns.map((c, i) =>
          replicaColumn(c.name, i % 2 ? enumType : 'decimal(38,10)', 'postgres', c.warehouseType),
        ),
      },
      names,
    );
    expect(register.length).toBeGreaterThan(2);
    for (const statement of register) expect(Buffer.byteLength(statement)).toBeLessThan(100 * 1024);
    for (const statement of register) await h.rows(statement);
    expect(await h.rows("SELECT COUNT(*)::int AS n FROM cdc.replica_columns WHERE source_table = 'wide'")).toEqual([
      { n: 1600 },
    ]);
    const check = planRegistryCheck(names, 'shop', 'wide', columns);
    expect(Buffer.byteLength(check)).toBeLessThan(100 * 1024);
    expect(check).toContain('MD5(');
    await expect(h.rows(check)).resolves.toEqual([expect.anything()]);
    await h.rows(`UPDATE cdc.replica_columns SET warehouse_type = 'TEXT' WHERE source_table = 'wide' AND ordinal = 7`);
    await expect(h.rows(check)).rejects.toThrow(/replica columns changed: plan again/);
  });

  it('retries the batch in place, handing nothing off, when the warehouse does not answer', async () => {
    const t = new TableEvents('shop', 'orders', { id: 'int(11)' });
    const deadPool = new pg.Pool({ connectionString: 'postgres://nobody@127.0.0.1:1/none', max: 1 });
    deadPool.on('error', () => undefined);
    const ctx: MergeContext = { ...h.ctx(), warehouse: new PostgresWarehouse(deadPool) };
    const { policy, queued, setAside } = recordingPolicy();
    const batch = records([t.insert({ id: 1 }), t.insert({ id: 2 })]);
    const out = await applyStreamBatch(batch, s3, ctx, policy);
    await deadPool.end();
    expect(out.retryFrom?.sequenceNumber).toBe(batch[0]!.sequenceNumber);
    expect(out.retryFrom?.reason).toMatch(/warehouse does not answer/);
    expect(batchResponse(out)).toEqual({ batchItemFailures: [{ itemIdentifier: batch[0]!.sequenceNumber }] });
    expect([queued, setAside]).toEqual([[], []]);
  });

  it('keeps a record that is not a change event under errors/stream/ with its reason and merges the rest', async () => {
    const t = new TableEvents('shop', 'orders', { id: 'int(11)' });
    const { policy, setAside } = recordingPolicy();
    const batch = records([t.insert({ id: 1 }), '{"v":1,"op":"insert",truncated', t.insert({ id: 2 })]);
    const out = await applyStreamBatch(batch, s3, h.ctx(), policy);
    expect(out.retryFrom).toBeUndefined();
    expect(await h.rows('SELECT id FROM shop.orders ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);
    expect(out.undecodable).toEqual([{ sequenceNumber: batch[1]!.sequenceNumber, reason: expect.any(String) }]);
    expect(setAside).toHaveLength(1);
    expect(setAside[0]!.code).toBe('BATCH_UNDECODABLE');
    expect(setAside[0]!.ref.key).toMatch(/^errors\/stream\/shardId-000000000000\//);
    const kept = JSON.parse(await readObject(setAside[0]!.ref)) as { records: { data: string; reason: string }[] };
    expect(Buffer.from(kept.records[0]!.data, 'base64').toString()).toBe('{"v":1,"op":"insert",truncated');
    expect(kept.records[0]!.reason).toMatch(/not JSON/);
  });

  it('follows claim checks, and sets an event whose claim-check object is gone aside with its table', async () => {
    const t = new TableEvents('shop', 'items', { id: 'int(11)', name: 'varchar(50)' });
    const big = t.insert({ id: 2, name: 'parked in S3' });
    await s3.send(new PutObjectCommand({ Bucket: 'lake', Key: 'claim-check/big.json', Body: JSON.stringify(big) }));
    const pointer = { ...big, after: null, claim_check: { bucket: 'lake', key: 'claim-check/big.json', bytes: 1 } };
    const lost = t.insert({ id: 3, name: 'lost' });
    const lostPointer = {
      ...lost,
      after: null,
      claim_check: { bucket: 'lake', key: 'claim-check/gone.json', bytes: 1 },
    };
    const { policy, setAside } = recordingPolicy();
    const out = await applyStreamBatch(
      records([t.insert({ id: 1, name: 'a' }), pointer, lostPointer]),
      s3,
      h.ctx(),
      policy,
    );
    expect(out.retryFrom).toBeUndefined();
    expect(await h.rows('SELECT id, name FROM shop.items ORDER BY id')).toEqual([
      { id: 1, name: 'a' },
      { id: 2, name: 'parked in S3' },
    ]);
    expect(setAside.map((s) => [s.table, s.code])).toEqual([['shop.items', 'OBJECT_MISSING']]);
  });

  it("reads Lambda's Kinesis event (base64 data, shard from the event id) and answers with the record to retry from", () => {
    const event = {
      Records: [
        {
          eventID: 'shardId-000000000003:4961',
          kinesis: {
            sequenceNumber: '4961',
            data: Buffer.from('{"a":1}').toString('base64'),
            approximateArrivalTimestamp: 1764547200.5,
          },
        },
      ],
    } as unknown as KinesisStreamEvent;
    const [r] = recordsFromKinesisEvent(event);
    expect(r).toEqual({
      shardId: 'shardId-000000000003',
      sequenceNumber: '4961',
      data: Buffer.from('{"a":1}'),
      arrivalMs: 1764547200500,
    });
    expect(
      batchResponse({
        results: [],
        events: [],
        handedOff: [],
        undecodable: [],
        retryFrom: { sequenceNumber: '4961', reason: 'x' },
      }),
    ).toEqual({
      batchItemFailures: [{ itemIdentifier: '4961' }],
    });
  });
});
