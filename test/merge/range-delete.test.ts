/**
 * `range` events on a real PostgreSQL replica (planRangeDelete, lambdas/merge/src/range-plan.ts): after a backfill
 * chunk, keys of its range that the chunk did not carry and that did not change since its low watermark are deleted
 * from the replica and recorded as deleted in the keys table, so that neither a newer change is lost nor a late older
 * one brings them back. The replica is built by the real merge (mergeEvents); the range statements run in a
 * transaction after the merge's lock, as the merge runs them.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { postgresDialect } from '../../lambdas/merge/src/dialect-postgres';
import { redshiftDialect } from '../../lambdas/merge/src/dialect-redshift';
import { mergeEvents } from '../../lambdas/merge/src/merge';
import { tableNames } from '../../lambdas/merge/src/naming';
import { planKeylessRange, planRangeDelete } from '../../lambdas/merge/src/range-plan';
import { redshiftProblems } from '../../lambdas/merge/src/redshift-grammar';
import { modelFromEvents } from '../../lambdas/merge/src/table-model';
import type { ChangeEvent, RowImage } from '../../shared/change-event';
import type { Warehouse } from '../../shared/type-mapping';
import { TableEvents } from './support/event-factory';
import { type PgHarness, usePgHarness } from './support/postgres-merge';

const harness = usePgHarness();
let h: PgHarness;
beforeEach(() => {
  h = harness();
});

function rangeEvent(t: TableEvents, after: RowImage | null, upto: RowImage | null, low: string): ChangeEvent {
  return { ...t.read({}), v: 2, op: 'range', after: null, change: { range: { after, upto, low_position: low } } };
}

/** The position a low watermark written now would have (the factory's next position, used by nothing else). */
function lowWatermark(t: TableEvents): string {
  return t.read({}).position;
}

function pkOf(t: TableEvents, events: ChangeEvent[], warehouse: Warehouse = 'postgres') {
  const model = modelFromEvents(events, warehouse);
  return { model, pk: t.pk.map((k) => model.columns.find((c) => c.name === k)!) };
}

/** Runs the range's statements the way the merge does: one transaction, after the table's lock. */
async function applyRange(t: TableEvents, e: ChangeEvent, columns: ChangeEvent[]): Promise<string[]> {
  const { pk } = pkOf(t, columns);
  const names = tableNames(t.db, t.table, { stateSchema: 'cdc' });
  const statements = planRangeDelete(e, pk, names, postgresDialect);
  const client = await h.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(postgresDialect.lock([names.replica, names.keys]));
    for (const s of statements) await client.query(s);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
  return statements;
}

const merge = (events: ChangeEvent[], batch: string) => mergeEvents(events, batch, h.ctx());

async function ids(): Promise<number[]> {
  return (await h.rows('SELECT id FROM shop.items ORDER BY id')).map((r) => Number(r.id));
}

describe('range events (rows the source no longer has)', () => {
  it('deletes keys of the range that are older than the low watermark and absent from the chunk, and only those', async () => {
    const t = new TableEvents('shop', 'items', { id: 'int', name: 'varchar(20)' });
    const old = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((id) => t.insert({ id, name: `old ${id}` }));
    await merge(old, 'b1');
    const low = lowWatermark(t);
    // Inside the window: 7 changes (the binlog has it; the chunk drops it); the chunk reads 4 and 6 at the high mark.
    const changed = t.update({ id: 7, name: 'old 7' }, { id: 7, name: 'new 7' });
    const reads = [t.read({ id: 4, name: 'old 4' }), t.read({ id: 6, name: 'old 6' })];
    const range = rangeEvent(t, { id: 3 }, { id: 7 }, low);
    await merge([changed, ...reads], 'b2');
    await applyRange(t, range, old);
    // 5 was neither read nor changed since the low watermark: the source no longer has it. 1-3 and 8-9 are outside.
    expect(await ids()).toEqual([1, 2, 3, 4, 6, 7, 8, 9]);
    expect(await h.rows('SELECT name FROM shop.items WHERE id = 7')).toEqual([{ name: 'new 7' }]);
    expect(
      await h.rows('SELECT id, "_cdc_position" AS p, "_cdc_deleted" AS d FROM cdc.shop__items__keys WHERE id = 5'),
    ).toEqual([{ id: 5, p: low, d: true }]);
  });

  it('keeps a deleted key deleted when a late, older change of it arrives afterwards', async () => {
    const t = new TableEvents('shop', 'items', { id: 'int', name: 'varchar(20)' });
    const first = [t.insert({ id: 1, name: 'one' }), t.insert({ id: 2, name: 'two' })];
    // Written before the low watermark, delivered after the range (a retried batch, another shard).
    const lateOlder = t.update({ id: 2, name: 'two' }, { id: 2, name: 'two, later' });
    const low = lowWatermark(t);
    await merge(first, 'b1');
    await applyRange(t, rangeEvent(t, null, null, low), first);
    expect(await ids()).toEqual([]);
    await merge([lateOlder], 'b2');
    expect(await ids()).toEqual([]);
    // A change newer than the low watermark does come in.
    await merge([t.insert({ id: 2, name: 'again' })], 'b3');
    expect(await ids()).toEqual([2]);
  });

  it('gives way to the chunk reads whichever is merged first (reads are at the high watermark, after the low one)', async () => {
    const t = new TableEvents('shop', 'items', { id: 'int', name: 'varchar(20)' });
    const old = [1, 2, 3].map((id) => t.insert({ id, name: `old ${id}` }));
    await merge(old, 'b1');
    const low = lowWatermark(t);
    const reads = [t.read({ id: 1, name: 'old 1' }), t.read({ id: 3, name: 'old 3' })];
    const range = rangeEvent(t, null, null, low);
    await applyRange(t, range, old); // the range before its chunk's reads: everything older goes…
    await merge(reads, 'b2'); // …and the reads, newer than the low watermark, come back
    expect(await ids()).toEqual([1, 3]);
  });

  it('removes a row written into the replica by hand (unknown to the keys table) and remembers its deletion', async () => {
    const t = new TableEvents('shop', 'items', { id: 'int', name: 'varchar(20)' });
    const old = [1, 3].map((id) => t.insert({ id, name: `old ${id}` }));
    await merge(old, 'b1');
    await h.pool.query(`INSERT INTO shop.items (id, name) VALUES (2, 'corrupt')`);
    await h.pool.query(`INSERT INTO shop.items (id, name, "_cdc_position") VALUES (4, 'corrupt', NULL)`);
    const low = lowWatermark(t);
    const reads = [t.read({ id: 1, name: 'old 1' }), t.read({ id: 3, name: 'old 3' })];
    await merge(reads, 'b2');
    await applyRange(t, rangeEvent(t, null, { id: 3 }, low), old);
    // 2 (no position: not written by the merge) is gone; 4 is outside the range.
    expect(await ids()).toEqual([1, 3, 4]);
    expect(await h.rows('SELECT "_cdc_deleted" AS d FROM cdc.shop__items__keys WHERE id = 2')).toEqual([{ d: true }]);
  });

  it('orders composite keys lexicographically, with open-ended first and last chunks', async () => {
    const t = new TableEvents('shop', 'lines', { a: 'int', b: 'bigint', q: 'int' }, ['a', 'b']);
    const keys = [
      [1, 4],
      [1, 5],
      [1, 6],
      [2, 1],
      [2, 3],
      [2, 4],
      [3, 0],
      [9, 9],
    ];
    const old = keys.map(([a, b]) => t.insert({ a, b: String(b), q: 0 }));
    await merge(old, 'b1');
    const rows = async () =>
      (await h.rows('SELECT a, b FROM shop.lines ORDER BY a, b')).map((r) => [Number(r.a), Number(r.b)]);
    // Middle chunk ((1,5), (2,3)]: read nothing → (1,6), (2,1), (2,3) go; (1,5) (the bound, exclusive) and (2,4) stay.
    const range = rangeEvent(t, { a: 1, b: '5' }, { a: 2, b: '3' }, lowWatermark(t));
    const sql = await applyRange(t, range, old);
    expect(sql[2]).toContain(
      '("a" > CAST(\'1\' AS INTEGER) OR ("a" = CAST(\'1\' AS INTEGER) AND "b" > CAST(\'5\' AS BIGINT)))',
    );
    expect(await rows()).toEqual([
      [1, 4],
      [1, 5],
      [2, 4],
      [3, 0],
      [9, 9],
    ]);
    // First chunk (-∞, (1,4)] read (1,4); last chunk ((3,0), +∞) read nothing → (9,9) goes.
    const low = lowWatermark(t);
    const read = t.read({ a: 1, b: '4', q: 0 });
    await merge([read], 'b2');
    await applyRange(t, rangeEvent(t, null, { a: 1, b: '4' }, low), old);
    await applyRange(t, rangeEvent(t, { a: 3, b: '0' }, null, low), old);
    expect(await rows()).toEqual([
      [1, 4],
      [1, 5],
      [2, 4],
      [3, 0],
    ]);
  });

  it('applies a whole-table range on a string key, and ignores a bounded one (MySQL collation order ≠ byte order)', async () => {
    const t = new TableEvents('shop', 'codes', { code: 'varchar(10)', v: 'int' }, ['code']);
    const old = ['a', 'B', 'c'].map((code) => t.insert({ code, v: 1 }));
    await merge(old, 'b1');
    // MySQL (case-insensitive) orders a < B < c; the warehouse orders B < a < c: a bounded range cannot be trusted.
    const bounded = rangeEvent(t, { code: 'a' }, { code: 'c' }, lowWatermark(t));
    expect(await applyRange(t, bounded, old)).toEqual([]);
    const low = lowWatermark(t);
    await merge([t.read({ code: 'B', v: 1 })], 'b2');
    await applyRange(t, rangeEvent(t, null, null, low), old);
    expect((await h.rows('SELECT code FROM shop.codes ORDER BY code')).map((r) => r.code)).toEqual(['B']);
  });

  it('ranges over DATETIME and TIMESTAMP keys with typed literals', async () => {
    const t = new TableEvents('shop', 'ticks', { at: 'datetime(6)', ts: 'timestamp(6)', v: 'int' }, ['at', 'ts']);
    const old = [1, 2, 3].map((d) =>
      t.insert({ at: `2026-01-0${d} 00:00:00.000001`, ts: `2026-01-0${d}T10:00:00.000000Z`, v: d }),
    );
    await merge(old, 'b1');
    const range = rangeEvent(
      t,
      { at: '2026-01-01 00:00:00.000001', ts: '2026-01-01T10:00:00.000000Z' },
      null,
      lowWatermark(t),
    );
    await applyRange(t, range, old);
    expect((await h.rows('SELECT v FROM shop.ticks')).map((r) => r.v)).toEqual([1]);
  });

  it('plans statements inside Redshift grammar (no alias on a target, no row-value comparison)', () => {
    const t = new TableEvents('shop', 'lines', { a: 'int', b: 'decimal(12,2)', q: 'int' }, ['a', 'b']);
    const events = [t.insert({ a: 1, b: '1.50', q: 0 })];
    const { pk } = pkOf(t, events, 'redshift');
    const names = tableNames('shop', 'lines', { stateSchema: 'cdc' });
    const d = redshiftDialect({ copyRoleArn: 'arn:aws:iam::123456789012:role/copy' });
    const sql = planRangeDelete(
      rangeEvent(t, { a: 1, b: '1.50' }, { a: 7, b: '0.01' }, '000001.000000000100.00000000'),
      pk,
      names,
      d,
    );
    expect(sql).toHaveLength(3);
    for (const s of sql) expect(redshiftProblems(s), s).toEqual([]);
    expect(sql.join('\n')).not.toMatch(/\(\s*"a"\s*,\s*"b"\s*\)\s*[<>]/);
  });

  it('plans a keyless whole-table range inside Redshift grammar: the floor record, then the older deltas deleted', () => {
    const t = new TableEvents('shop', 'log', { v: 'varchar(10)' }, []);
    const names = tableNames('shop', 'log', { stateSchema: 'cdc' });
    const d = redshiftDialect({ copyRoleArn: 'arn:aws:iam::123456789012:role/copy' });
    const range = rangeEvent(t, null, null, '000001.000000000100.00000000');
    const sql = planKeylessRange(range, names, d, true);
    expect(sql).toHaveLength(2);
    expect(sql[0]).toMatch(/^INSERT INTO "cdc"\."shop__log__state" .* WHERE NOT EXISTS/);
    expect(sql[1]).toMatch(/^DELETE FROM "cdc"\."shop__log__deltas" WHERE "_cdc_position" IS NULL OR /);
    for (const s of sql) expect(redshiftProblems(s), s).toEqual([]);
    // A table the merge has not created yet: only the floor is recorded.
    expect(planKeylessRange(range, names, d, false)).toEqual([sql[0]]);
  });

  it('refuses a range event without a range or with a malformed low position', () => {
    const t = new TableEvents('shop', 'items', { id: 'int' });
    const { pk } = pkOf(t, [t.insert({ id: 1 })]);
    const names = tableNames('shop', 'items', { stateSchema: 'cdc' });
    expect(() =>
      planRangeDelete({ ...rangeEvent(t, null, null, 'x'), change: {} }, pk, names, postgresDialect),
    ).toThrow(/no change\.range/);
    expect(() => planRangeDelete(rangeEvent(t, null, null, 'yesterday'), pk, names, postgresDialect)).toThrow(
      /low_position "yesterday" is not a position/,
    );
  });
});
