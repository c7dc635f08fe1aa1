import { beforeEach, describe, expect, it } from 'vitest';
import { configureDateValues, type NulledValue } from '../../lambdas/merge/src/date-values';
import { PoisonBatchError, RetriableMergeError } from '../../lambdas/merge/src/errors';
import { type MergeContext, mergeEvents } from '../../lambdas/merge/src/merge';
import type { Step } from '../../lambdas/merge/src/merge-plan';
import type { WarehouseClient } from '../../lambdas/merge/src/warehouse-client';
import { TableEvents } from './support/event-factory';
import { type PgHarness, usePgHarness } from './support/postgres-merge';

/**
 * The staging CSV streamed into PostgreSQL's COPY while it is built (stage-csv.ts `stageCsvChunks`): what happens when
 * building it fails half-way, and when the transaction that read it is run again.
 */
const harness = usePgHarness();
let h: PgHarness;
beforeEach(async () => {
  h = harness();
  await h.reset();
});

const orders = () => new TableEvents('shop', 'orders', { id: 'int(11)', qty: 'int(11)', at: 'datetime' });

describe('the staging CSV streamed into COPY', () => {
  it('fails a batch with a value it cannot stage as a poison batch, naming it, and leaves the replica as it was', async () => {
    const t = orders();
    await mergeEvents([t.insert({ id: 1, qty: 1, at: '2026-01-01 00:00:00' })], 'b1', h.ctx());
    // Rows enough for several chunks before the bad value, so the COPY is already running when it is found.
    const many = Array.from({ length: 30_000 }, (_, i) => t.insert({ id: 10 + i, qty: i, at: '2026-01-02 00:00:00' }));
    const bad = t.update({ id: 1, qty: 1, at: '2026-01-01 00:00:00' }, { id: 1, qty: 'lots', at: null });
    const err = await mergeEvents([...many, bad], 'b2', h.ctx()).catch((e: Error) => e);
    expect(err).toBeInstanceOf(PoisonBatchError);
    expect((err as PoisonBatchError).code).toBe('SCHEMA_INCOMPATIBLE');
    expect((err as Error).message).toContain(`shop.orders at ${bad.position} column "qty" (int(11)): not a number`);
    expect(await h.rows('SELECT id, qty FROM shop.orders ORDER BY id')).toEqual([{ id: 1, qty: 1 }]);
  });

  it('streams the same rows again when a serialization conflict reruns the transaction, reporting a value once', async () => {
    const nulled: NulledValue[] = [];
    configureDateValues({ onNulled: (v) => nulled.push(v) });
    try {
      const base = h.ctx();
      let attempts = 0;
      // A conflict injected after the first attempt has read the whole CSV (PostgreSQL alone would not produce one).
      const conflicting: WarehouseClient = {
        dialect: base.warehouse.dialect,
        query: (s) => base.warehouse.query(s),
        executeAll: (s) => base.warehouse.executeAll(s),
        stageLocation: () => undefined,
        runTransaction: async (steps: readonly Step[], csv: string) => {
          const load = steps.find((s) => s.kind === 'load');
          if (load && attempts++ === 0) {
            for (const _ of load.kind === 'load' && load.csvChunks ? load.csvChunks() : []);
            throw new RetriableMergeError('SERIALIZATION_CONFLICT', 'injected');
          }
          return base.warehouse.runTransaction(steps, csv);
        },
      };
      const ctx: MergeContext = { ...base, warehouse: conflicting };
      const t = orders();
      await mergeEvents(
        [
          t.insert({ id: 1, qty: 1, at: '0000-00-00 00:00:00' }),
          t.insert({ id: 2, qty: 2, at: '2026-01-01 00:00:00' }),
          t.update({ id: 2, qty: 2, at: '2026-01-01 00:00:00' }, { id: 2, qty: 3, at: '2026-01-01 00:00:00' }),
        ],
        'b1',
        ctx,
      );
      expect(attempts).toBe(2);
      expect(await h.rows("SELECT id, qty, to_char(at, 'YYYY-MM-DD') AS at FROM shop.orders ORDER BY id")).toEqual([
        { id: 1, qty: 1, at: null },
        { id: 2, qty: 3, at: '2026-01-01' },
      ]);
      expect(nulled.map((v) => [v.column, v.value])).toEqual([['at', '0000-00-00 00:00:00']]);
    } finally {
      configureDateValues({});
    }
  });
});
