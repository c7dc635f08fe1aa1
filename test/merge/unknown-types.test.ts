/**
 * The merge on a real PostgreSQL with a column type the type table does not know (a later server's `vector(3)`): it
 * creates a text column and stores the producer's fallback text exactly, and the other tables of the batch are
 * applied too (docs/merge.md, type mapping).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeEvents } from '../../lambdas/merge/src/merge';
import { TableEvents } from './support/event-factory';
import { type PgHarness, startPgHarness } from './support/postgres-merge';

let h: PgHarness;
beforeAll(async () => {
  h = await startPgHarness();
});
afterAll(async () => {
  await h?.close();
});

describe('the merge with a column type it does not know', () => {
  it('stores the fallback text in a TEXT column and applies the other tables of the batch', async () => {
    const vectors = new TableEvents('shop', 'embeddings', { id: 'int', v: 'vector(3)' });
    const orders = new TableEvents('shop', 'orders', { id: 'int', note: 'varchar(20)' });
    await mergeEvents(
      [
        vectors.insert({ id: 1, v: '0000803f00000040cdcc4c40' }),
        orders.insert({ id: 1, note: 'flows' }),
        vectors.insert({ id: 2, v: null }),
        vectors.update({ id: 1, v: '0000803f00000040cdcc4c40' }, { id: 1, v: '000000000000803f00000000' }),
      ],
      'unknown-1',
      h.ctx(),
    );
    expect(await h.rows('SELECT id, v FROM shop.embeddings ORDER BY id')).toEqual([
      { id: 1, v: '000000000000803f00000000' },
      { id: 2, v: null },
    ]);
    expect(await h.rows('SELECT id, note FROM shop.orders')).toEqual([{ id: 1, note: 'flows' }]);
    const [column] = await h.rows(
      "SELECT data_type FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'embeddings' AND column_name = 'v'",
    );
    expect(column).toEqual({ data_type: 'text' });
  });
});
