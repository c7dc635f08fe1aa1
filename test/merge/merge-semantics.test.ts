import { beforeEach, describe, expect, it } from 'vitest';
import { mergeEvents } from '../../lambdas/merge/src/merge';
import type { ChangeEvent } from '../../shared/change-event';
import { TableEvents } from './support/event-factory';
import { type PgHarness, usePgHarness } from './support/postgres-merge';

const harness = usePgHarness();
let h: PgHarness;
beforeEach(() => {
  h = harness();
});

const orders = () =>
  new TableEvents('shop', 'orders', { id: 'int(11)', status: "enum('new','paid','shipped')", total: 'decimal(12,2)' });

async function replica(table = 'shop.orders'): Promise<unknown[]> {
  const [db, t] = table.split('.');
  return h.rows(`SELECT id, status, total::text AS total FROM "${db}"."${t}" ORDER BY id`);
}

async function apply(events: ChangeEvent[], batchId: string): Promise<void> {
  await mergeEvents(events, batchId, h.ctx());
}

describe('merge semantics on PostgreSQL', () => {
  it('applies an insert/update/delete sequence and shows only live rows', async () => {
    const t = orders();
    await apply(
      [
        t.insert({ id: 1, status: 'new', total: '10.00' }),
        t.insert({ id: 2, status: 'new', total: '20.50' }),
        t.update({ id: 1, status: 'new', total: '10.00' }, { id: 1, status: 'paid', total: '10.00' }),
        t.delete({ id: 2, status: 'new', total: '20.50' }),
        t.insert({ id: 3, status: 'new', total: '0.01' }),
      ],
      'b1',
    );
    expect(await replica()).toEqual([
      { id: 1, status: 'paid', total: '10.00' },
      { id: 3, status: 'new', total: '0.01' },
    ]);
  });

  it('applies snapshot reads like inserts at their position: a read never overwrites a newer change', async () => {
    const t = orders();
    const read1 = t.read({ id: 1, status: 'new', total: '10.00' });
    const read2 = t.read({ id: 2, status: 'new', total: '20.00' });
    const paid = t.update({ id: 1, status: 'new', total: '10.00' }, { id: 1, status: 'paid', total: '10.00' });
    const gone = t.delete({ id: 2, status: 'new', total: '20.00' });
    const read3 = t.read({ id: 3, status: 'shipped', total: '30.00' });
    // The newer changes arrive first, the reads of an older chunk after them.
    await apply([paid, gone], 'b1');
    await apply([read1, read2, read3], 'b2');
    expect(await replica()).toEqual([
      { id: 1, status: 'paid', total: '10.00' },
      { id: 3, status: 'shipped', total: '30.00' },
    ]);
  });

  it('keeps the latest of many changes to one key inside a batch', async () => {
    const t = orders();
    const events = [t.insert({ id: 7, status: 'new', total: '1.00' })];
    for (let i = 2; i <= 50; i++) {
      events.push(t.update({ id: 7, status: 'new', total: `${i - 1}.00` }, { id: 7, status: 'new', total: `${i}.00` }));
    }
    await apply(events, 'b1');
    expect(await replica()).toEqual([{ id: 7, status: 'new', total: '50.00' }]);
  });

  it('replays a batch twice without changing the replica or its bookkeeping', async () => {
    const t = orders();
    const batch = [
      t.insert({ id: 1, status: 'new', total: '1.00' }),
      t.insert({ id: 2, status: 'new', total: '2.00' }),
    ];
    await apply(batch, 'b1');
    const before = await h.rows('SELECT id, _cdc_position, _cdc_loaded_at FROM shop.orders ORDER BY id');
    await apply(batch, 'b1');
    expect(await h.rows('SELECT id, _cdc_position, _cdc_loaded_at FROM shop.orders ORDER BY id')).toEqual(before);
    expect(await h.rows("SELECT count(*)::int AS n FROM cdc.merge_batches WHERE batch_id = 'b1'")).toEqual([{ n: 1 }]);
  });

  it('converges to the same replica whatever order the batches arrive in', async () => {
    const t = orders();
    const b1 = [t.insert({ id: 1, status: 'new', total: '1.00' }), t.insert({ id: 2, status: 'new', total: '2.00' })];
    const b2 = [
      t.update({ id: 1, status: 'new', total: '1.00' }, { id: 1, status: 'paid', total: '1.00' }),
      t.delete({ id: 2, status: 'new', total: '2.00' }),
    ];
    const b3 = [
      t.insert({ id: 2, status: 'new', total: '22.00' }),
      t.update({ id: 1, status: 'paid', total: '1.00' }, { id: 1, status: 'shipped', total: '1.00' }),
    ];
    const expected = [
      { id: 1, status: 'shipped', total: '1.00' },
      { id: 2, status: 'new', total: '22.00' },
    ];
    const orders_ = [
      [b1, b2, b3],
      [b3, b2, b1],
      [b2, b3, b1],
      [b3, b1, b2],
    ];
    for (const order of orders_) {
      await h.reset();
      for (const [i, b] of order.entries()) await apply(b, `batch-${i}`);
      expect(await replica()).toEqual(expected);
    }
  });

  it('never resurrects a deleted row when an older update arrives late', async () => {
    const t = orders();
    const ins = t.insert({ id: 5, status: 'new', total: '5.00' });
    const upd = t.update({ id: 5, status: 'new', total: '5.00' }, { id: 5, status: 'paid', total: '5.00' });
    const del = t.delete({ id: 5, status: 'paid', total: '5.00' });
    await apply([ins], 'b1');
    await apply([del], 'b3');
    await apply([upd], 'b2');
    expect(await replica()).toEqual([]);
    expect(await h.rows('SELECT _cdc_deleted FROM cdc.shop__orders__keys WHERE id = 5')).toEqual([
      { _cdc_deleted: true },
    ]);
  });

  it('keeps tombstones only: the keys table holds the deleted keys, and every batch order and replay converges', async () => {
    const t = orders();
    const row = (id: number, status: string, total: string) => ({ id, status, total });
    // Key 1 is deleted and inserted again (then updated), key 4 deleted and inserted again last, key 2 deleted for
    // good, key 3 only updated.
    const b1 = [
      t.insert(row(1, 'new', '1.00')),
      t.insert(row(2, 'new', '2.00')),
      t.insert(row(3, 'new', '3.00')),
      t.insert(row(4, 'new', '4.00')),
    ];
    const b2 = [t.update(row(1, 'new', '1.00'), row(1, 'paid', '1.00'))];
    const b3 = [
      t.delete(row(1, 'paid', '1.00')),
      t.update(row(3, 'new', '3.00'), row(3, 'paid', '3.00')),
      t.delete(row(4, 'new', '4.00')),
    ];
    // b4 has no delete (its plan leaves the statements of deletes out) and still ends keys 1 and 4's tombstones.
    const b4 = [t.insert(row(1, 'new', '11.00')), t.insert(row(4, 'paid', '44.00'))];
    const b5 = [t.update(row(1, 'new', '11.00'), row(1, 'shipped', '11.00')), t.delete(row(2, 'new', '2.00'))];
    const gone = b5[1]!.position;
    const batches = [b1, b2, b3, b4, b5];
    const expected = [row(1, 'shipped', '11.00'), row(3, 'paid', '3.00'), row(4, 'paid', '44.00')];
    // Every order of the five batches would be 120 merges of five: these 12 include in order, reversed, each delete
    // before and after the changes it ends, and the reinsertion before its delete.
    const orders_ = [
      [0, 1, 2, 3, 4],
      [4, 3, 2, 1, 0],
      [2, 0, 1, 4, 3],
      [3, 4, 0, 2, 1],
      [1, 3, 0, 2, 4],
      [4, 2, 0, 3, 1],
      [2, 3, 4, 1, 0],
      [0, 3, 2, 4, 1],
      [3, 2, 1, 0, 4],
      [1, 4, 2, 0, 3],
      [4, 0, 3, 1, 2],
      [2, 1, 3, 0, 4],
    ];
    for (const order of orders_) {
      await h.reset();
      for (const i of order) await apply(batches[i]!, `batch-${i}`);
      expect(await replica(), `order ${order}`).toEqual(expected);
      // Only key 2's tombstone, at its delete: keys 1 and 4's ended when they were inserted again; live keys have none.
      const keys = 'SELECT id, "_cdc_position" AS p, "_cdc_deleted" AS d FROM cdc.shop__orders__keys ORDER BY id';
      expect(await h.rows(keys), `order ${order}`).toEqual([{ id: 2, p: gone, d: true }]);
      // A replay of everything, oldest first, changes nothing.
      const before = await h.rows('SELECT id, _cdc_position, _cdc_loaded_at FROM shop.orders ORDER BY id');
      for (const [i, b] of batches.entries()) await apply(b, `replay-${i}`);
      expect(await h.rows('SELECT id, _cdc_position, _cdc_loaded_at FROM shop.orders ORDER BY id')).toEqual(before);
      expect(await h.rows(keys)).toEqual([{ id: 2, p: gone, d: true }]);
    }
  });

  it('keeps the tombstone of a key the next incarnation deleted when its DROP TABLE is merged after the delete', async () => {
    const t = orders();
    const old = t.insert({ id: 1, status: 'new', total: '1.00' });
    const drop = t.drop();
    // The table created again with the same columns: key 1 inserted, then deleted.
    const again = t.insert({ id: 1, status: 'paid', total: '2.00' });
    const gone = t.delete({ id: 1, status: 'paid', total: '2.00' });
    // table-pk sends the DROP by the table's name and the rows by their keys: the delete merges first, the insert late.
    await apply([old], 'b1');
    await apply([gone], 'b4');
    await apply([drop], 'b2');
    await apply([again], 'b3');
    expect(await replica()).toEqual([]);
    expect(await h.rows('SELECT id, "_cdc_position" AS p FROM cdc.shop__orders__keys')).toEqual([
      { id: 1, p: gone.position },
    ]);
  });

  it('merges into a keys table that still holds live keys (written before tombstones only) without losing order', async () => {
    const t = orders();
    const row = (id: number, status: string, total: string) => ({ id, status, total });
    const first = [t.insert(row(1, 'new', '1.00')), t.insert(row(2, 'new', '2.00')), t.insert(row(3, 'new', '3.00'))];
    const older = t.update(row(1, 'new', '1.00'), row(1, 'paid', '1.00'));
    const newer = t.update(row(2, 'new', '2.00'), row(2, 'paid', '2.00'));
    const del = t.delete(row(3, 'new', '3.00'));
    await apply(first, 'b1');
    // What the merge before tombstones only left: a row per live key, at the replica row's position.
    await h.rows(
      'INSERT INTO cdc.shop__orders__keys (id, "_cdc_position", "_cdc_deleted") SELECT id, "_cdc_position", FALSE FROM shop.orders',
    );
    // Key 1's row (and its live key row) at a newer position than the late change `older`, as a later change leaves it.
    await h.rows(`UPDATE shop.orders SET "_cdc_position" = '${newer.position}' WHERE id = 1`);
    await h.rows(`UPDATE cdc.shop__orders__keys SET "_cdc_position" = '${newer.position}' WHERE id = 1`);
    await apply([older, newer, del], 'b2');
    expect(await replica()).toEqual([row(1, 'new', '1.00'), row(2, 'paid', '2.00')]);
    // The keys a batch touched lost their live rows; key 3 has its tombstone; key 1 kept its (newer) live row.
    expect(
      await h.rows('SELECT id, "_cdc_position" AS p, "_cdc_deleted" AS d FROM cdc.shop__orders__keys ORDER BY id'),
    ).toEqual([
      { id: 1, p: newer.position, d: false },
      { id: 3, p: del.position, d: true },
    ]);
  });

  it('adds a column that appears mid-stream and keeps earlier rows under their columns', async () => {
    const t = orders();
    await apply([t.insert({ id: 1, status: 'new', total: '1.00' })], 'b1');
    t.addColumn('courier', 'varchar(40)');
    await apply(
      [
        t.insert({ id: 2, status: 'new', total: '2.00', courier: 'DHL' }),
        t.update(
          { id: 1, status: 'new', total: '1.00', courier: null },
          { id: 1, status: 'paid', total: '1.00', courier: 'UPS' },
        ),
      ],
      'b2',
    );
    expect(await h.rows('SELECT id, status, courier FROM shop.orders ORDER BY id')).toEqual([
      { id: 1, status: 'paid', courier: 'UPS' },
      { id: 2, status: 'new', courier: 'DHL' },
    ]);
  });

  it('refuses a type change it cannot follow, naming the column, and leaves the replica untouched', async () => {
    const t = orders();
    await apply([t.insert({ id: 1, status: 'new', total: '1.00' })], 'b1');
    t.columns = t.columns.map((c) => (c.name === 'total' ? { name: 'total', type: 'varchar(20)' } : c));
    await expect(apply([t.insert({ id: 2, status: 'new', total: 'n/a' })], 'b2')).rejects.toThrow(
      /SCHEMA_INCOMPATIBLE: shop.orders: column "total" changed from decimal\(12,2\) \(DECIMAL\(12,2\)\) to varchar\(20\)/,
    );
    expect(await replica()).toEqual([{ id: 1, status: 'new', total: '1.00' }]);
  });

  it('merges a table without a primary key as a multiset with counts, idempotently', async () => {
    const t = new TableEvents('shop', 'audit', { who: 'varchar(20)', what: 'varchar(20)' }, []);
    const a = { who: 'ann', what: 'login' };
    const batch1 = [t.insert(a), t.insert(a), t.insert({ who: 'bob', what: 'login' })];
    const batch2 = [t.delete(a), t.update({ who: 'bob', what: 'login' }, { who: 'bob', what: 'logout' })];
    await apply(batch1, 'k1');
    await apply(batch2, 'k2');
    await apply(batch1, 'k1'); // replay
    expect(await h.rows('SELECT who, what, _cdc_count::int AS n FROM shop.audit ORDER BY who')).toEqual([
      { who: 'ann', what: 'login', n: 1 },
      { who: 'bob', what: 'logout', n: 1 },
    ]);
  });

  it('keeps every version with validity intervals in history mode', async () => {
    const t = orders();
    const events = [
      t.insert({ id: 1, status: 'new', total: '1.00' }),
      t.update({ id: 1, status: 'new', total: '1.00' }, { id: 1, status: 'paid', total: '1.00' }),
      t.delete({ id: 1, status: 'paid', total: '1.00' }),
    ];
    await mergeEvents(events.slice(1), 'h2', h.ctx({ history: ['shop.orders'] }));
    await mergeEvents(events.slice(0, 1), 'h1', h.ctx({ history: ['shop.orders'] }));
    await mergeEvents(events.slice(0, 1), 'h1', h.ctx({ history: ['shop.orders'] }));
    const hist = await h.rows(
      'SELECT id, status, _cdc_op AS op, valid_from, valid_to, is_deleted FROM shop.orders__history ORDER BY _cdc_position',
    );
    expect(hist.map((r) => [r.status, r.op, r.is_deleted])).toEqual([
      ['new', 'insert', false],
      ['paid', 'update', false],
      ['paid', 'delete', true],
    ]);
    expect(hist[0]!.valid_to).toEqual(hist[1]!.valid_from);
    expect(hist[2]!.valid_to).toBeNull();
    expect(await replica()).toEqual([]);
  });
});
