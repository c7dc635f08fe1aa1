/**
 * The replica follows what every production MySQL does weekly (issue 9): key-changing updates, TRUNCATE, DROP and
 * re-CREATE, column renames, ADD COLUMN … DEFAULT, DROP COLUMN, widening type changes, resync. Real PostgreSQL, the
 * real merge; every case is also applied again (replay) and, where order matters, out of order.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { mergeEvents } from '../../lambdas/merge/src/merge';
import type { Step } from '../../lambdas/merge/src/merge-plan';
import { PostgresWarehouse } from '../../lambdas/merge/src/postgres-client';
import type { ChangeEvent } from '../../shared/change-event';
import { TableEvents } from './support/event-factory';
import { type PgHarness, usePgHarness } from './support/postgres-merge';

const harness = usePgHarness();
let h: PgHarness;
beforeEach(() => {
  h = harness();
});

let batch = 0;
async function apply(events: ChangeEvent[], opts: { history?: string[]; archive?: boolean } = {}): Promise<void> {
  await mergeEvents(events, `b${batch++}`, {
    ...h.ctx(opts.history ? { history: opts.history } : {}),
    ...(opts.archive ? { droppedTablePolicy: 'archive' as const } : {}),
  });
}

/** Applies the batches in order, then all of them again (a replay from an older position). */
async function applyTwice(batches: ChangeEvent[][], opts: { history?: string[]; archive?: boolean } = {}) {
  for (const b of batches) await apply(b, opts);
  for (const b of batches) await apply(b, opts);
}

async function rows(sql: string): Promise<unknown[]> {
  return h.rows(sql);
}

describe('key-changing updates', () => {
  it('moves a row to its new key (single and composite keys), on replay too', async () => {
    const k = new TableEvents('shop', 'k', { id: 'int(11)', v: 'varchar(10)' });
    const c = new TableEvents('shop', 'c', { a: 'int(11)', b: 'int(11)', v: 'varchar(10)' }, ['a', 'b']);
    await applyTwice([
      [k.insert({ id: 1, v: 'x' }), k.insert({ id: 2, v: 'y' }), c.insert({ a: 1, b: 1, v: 'p' })],
      [
        k.update({ id: 1, v: 'x' }, { id: 11, v: 'x' }),
        k.update({ id: 2, v: 'y' }, { id: 12, v: 'y2' }),
        c.update({ a: 1, b: 1, v: 'p' }, { a: 1, b: 2, v: 'p' }),
      ],
    ]);
    expect(await rows('SELECT id, v FROM shop.k ORDER BY id')).toEqual([
      { id: 11, v: 'x' },
      { id: 12, v: 'y2' },
    ]);
    expect(await rows('SELECT a, b, v FROM shop.c')).toEqual([{ a: 1, b: 2, v: 'p' }]);
  });

  it('does not revive the old key when an older change to it arrives late', async () => {
    const k = new TableEvents('shop', 'k', { id: 'int(11)', v: 'varchar(10)' });
    const insert = k.insert({ id: 1, v: 'x' });
    const update = k.update({ id: 1, v: 'x' }, { id: 1, v: 'y' });
    const move = k.update({ id: 1, v: 'y' }, { id: 5, v: 'y' });
    await apply([move]);
    await apply([insert, update]);
    expect(await rows('SELECT id, v FROM shop.k')).toEqual([{ id: 5, v: 'y' }]);
  });
});

describe('TRUNCATE', () => {
  it('removes every older row, keeps newer ones, and a late older batch brings nothing back', async () => {
    const k = new TableEvents('shop', 'k', { id: 'int(11)', v: 'varchar(10)' });
    const old = [k.insert({ id: 1, v: 'a' }), k.insert({ id: 2, v: 'b' })];
    const truncate = k.truncate();
    const after = [k.insert({ id: 2, v: 'new' }), k.insert({ id: 3, v: 'c' })];
    // In order, then replayed, then the old batch once more after everything (a late redelivery).
    await applyTwice([old, [truncate], after]);
    await apply(old);
    expect(await rows('SELECT id, v FROM shop.k ORDER BY id')).toEqual([
      { id: 2, v: 'new' },
      { id: 3, v: 'c' },
    ]);
  });

  it('converges whatever order the batches arrive in, truncate in the same batch as rows', async () => {
    const k = new TableEvents('shop', 'k', { id: 'int(11)', v: 'varchar(10)' });
    const a = [k.insert({ id: 1, v: 'a' })];
    const b = [k.insert({ id: 2, v: 'b' }), k.truncate(), k.insert({ id: 3, v: 'c' })];
    const c = [k.update({ id: 3, v: 'c' }, { id: 3, v: 'c2' })];
    for (const order of [
      [c, b, a],
      [b, a, c],
    ]) {
      await h.reset();
      for (const x of order) await apply(x);
      expect(await rows('SELECT id, v FROM shop.k ORDER BY id')).toEqual([{ id: 3, v: 'c2' }]);
    }
  });

  it('empties a keyless table and ends every live version in history mode', async () => {
    const l = new TableEvents('shop', 'l', { v: 'varchar(10)' }, []);
    await applyTwice([[l.insert({ v: 'a' }), l.insert({ v: 'a' })], [l.truncate()], [l.insert({ v: 'b' })]]);
    expect(await rows('SELECT v, "_cdc_count"::int AS n FROM shop.l')).toEqual([{ v: 'b', n: 1 }]);

    const k = new TableEvents('shop', 'hk', { id: 'int(11)', v: 'varchar(10)' });
    const opts = { history: ['shop.hk'] };
    await applyTwice([[k.insert({ id: 1, v: 'a' })], [k.truncate()]], opts);
    expect(
      await rows(
        'SELECT id, v, is_deleted, valid_to IS NOT NULL AS ended FROM shop.hk__history ORDER BY "_cdc_position"',
      ),
    ).toEqual([
      { id: 1, v: 'a', is_deleted: false, ended: true },
      { id: 1, v: 'a', is_deleted: true, ended: false },
    ]);
  });
});

describe('a keyless table read whole by a snapshot or backfill (range without bounds, then the reads)', () => {
  /** The snapshot's events: the whole-table range, then one read per row, after the given changes. */
  const snapshot = (t: TableEvents, rowsRead: Record<string, string>[]) => {
    const range = t.tableEvent('range', { range: { after: null, upto: null, low_position: 'x' } });
    return [
      { ...range, change: { range: { after: null, upto: null, low_position: range.position } } },
      ...rowsRead.map((r) => t.read(r)),
    ];
  };
  const view = (table: string) => rows(`SELECT v, "_cdc_count"::int AS n FROM shop.${table} ORDER BY v`);

  it('replaces every older change with the rows read, keeps newer ones, on replay too', async () => {
    const t = new TableEvents('shop', 'kl1', { v: 'varchar(10)' }, []);
    const before = [t.insert({ v: 'a' }), t.insert({ v: 'a' }), t.insert({ v: 'b' }), t.insert({ v: 'stale' })];
    const snap = snapshot(t, [{ v: 'a' }, { v: 'a' }, { v: 'c' }]);
    const after = [t.insert({ v: 'd' }), t.delete({ v: 'c' })];
    await applyTwice([before, snap, after]);
    expect(await view('kl1')).toEqual([
      { v: 'a', n: 2 },
      { v: 'd', n: 1 },
    ]);
  });

  it('discards an older change that arrives after it (a late batch, a replay from an older position)', async () => {
    const t = new TableEvents('shop', 'kl2', { v: 'varchar(10)' }, []);
    const late = [t.insert({ v: 'gone' }), t.insert({ v: 'a' })];
    const snap = snapshot(t, [{ v: 'a' }]);
    // The snapshot of a table the merge has never seen: the range records its floor before the table exists.
    await apply(snap.slice(0, 1));
    await apply(snap.slice(1));
    await apply(late);
    expect(await view('kl2')).toEqual([{ v: 'a', n: 1 }]);
  });

  it('converges whatever order the range, its reads and the changes around them arrive in', async () => {
    const t = new TableEvents('shop', 'kl3', { v: 'varchar(10)' }, []);
    const before = [t.insert({ v: 'x' }), t.insert({ v: 'y' })];
    const snap = snapshot(t, [{ v: 'x' }, { v: 'y' }, { v: 'y' }]);
    const after = [t.update({ v: 'y' }, { v: 'z' })];
    await applyTwice([after, snap.slice(1), before, snap.slice(0, 1)]);
    expect(await view('kl3')).toEqual([
      { v: 'x', n: 1 },
      { v: 'y', n: 1 },
      { v: 'z', n: 1 },
    ]);
  });
});

describe('DROP TABLE, then CREATE TABLE of the same name with another shape', () => {
  it('starts the new incarnation clean, with only its own columns (policy drop)', async () => {
    const old = new TableEvents('shop', 'd', { id: 'int(11)', a: 'varchar(10)' });
    const batches = [[old.insert({ id: 1, a: 'x' }), old.insert({ id: 2, a: 'y' })], [old.drop()]];
    const neu = new TableEvents('shop', 'd', { id: 'int(11)', b: 'int(11)' });
    // positions keep growing across incarnations
    for (let i = 0; i < 5; i++) neu.insert({ id: 0, b: 0 });
    batches.push([neu.insert({ id: 1, b: 42 })]);
    await applyTwice(batches);
    expect(await rows('SELECT * FROM shop.d')).toEqual([expect.objectContaining({ id: 1, b: 42 })]);
    const cols = await rows(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'd' AND column_name NOT LIKE '\\_cdc%' ORDER BY ordinal_position",
    );
    expect(cols).toEqual([{ column_name: 'id' }, { column_name: 'b' }]);
  });

  it('archives the dropped replica under another name when configured', async () => {
    const old = new TableEvents('shop', 'd', { id: 'int(11)', a: 'varchar(10)' });
    const ins = old.insert({ id: 1, a: 'x' });
    const drop = old.drop();
    await applyTwice([[ins], [drop]], { archive: true });
    const archived = await rows(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'shop' AND table_name LIKE 'd\\_\\_dropped\\_%'",
    );
    expect(archived).toHaveLength(1);
    const name = (archived[0] as { table_name: string }).table_name;
    expect(name).toBe(`d__dropped_${drop.position.replace(/\./g, '_')}`);
    expect(await rows(`SELECT id, a FROM shop."${name}"`)).toEqual([{ id: 1, a: 'x' }]);
    expect(await rows("SELECT to_regclass('shop.d') AS t")).toEqual([{ t: null }]);
  });
});

describe('column changes', () => {
  it('renames the replica column, keeping every value', async () => {
    const k = new TableEvents('shop', 'k', { id: 'int(11)', old_name: 'varchar(10)' });
    const ins = [k.insert({ id: 1, old_name: 'kept' }), k.insert({ id: 2, old_name: 'x' })];
    const alter = k.alter([{ kind: 'rename_column', from: 'old_name', to: 'new_name' }]);
    const upd = [k.update({ id: 2, new_name: 'x' }, { id: 2, new_name: 'y' })];
    await applyTwice([ins, [alter], upd]);
    expect(await rows('SELECT id, new_name FROM shop.k ORDER BY id')).toEqual([
      { id: 1, new_name: 'kept' },
      { id: 2, new_name: 'y' },
    ]);
    expect(await rows("SELECT to_regclass('shop.k') IS NOT NULL AS ok")).toEqual([{ ok: true }]);
    const cols = await rows(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'k' AND column_name LIKE '%name'",
    );
    expect(cols).toEqual([{ column_name: 'new_name' }]);
  });

  it('gives existing rows the default of an added column, newer rows their own value, in any order', async () => {
    const k = new TableEvents('shop', 'k', { id: 'int(11)' });
    const before = [k.insert({ id: 1 }), k.insert({ id: 2 })];
    const alter = k.alter([
      { kind: 'add_column', name: 'n', type: 'int(11)', default: 7 },
      { kind: 'add_column', name: 's', type: 'varchar(5)', default: "it's" },
      { kind: 'add_column', name: 'd', type: 'date', default: '2024-02-29' },
    ]);
    const after = [
      k.insert({ id: 3, n: 1, s: 'own', d: '2020-01-01' }),
      k.update({ id: 2, n: 7, s: "it's", d: '2024-02-29' }, { id: 2, n: 9, s: "it's", d: '2024-02-29' }),
    ];
    const expected = [
      { id: 1, n: 7, s: "it's", d: '2024-02-29' },
      { id: 2, n: 9, s: "it's", d: '2024-02-29' },
      { id: 3, n: 1, s: 'own', d: '2020-01-01' },
    ];
    const q = "SELECT id, n, s, to_char(d, 'YYYY-MM-DD') AS d FROM shop.k ORDER BY id";
    await applyTwice([before, [alter], after]);
    expect(await rows(q)).toEqual(expected);
    // Out of order: the rows after the ALTER first, the ALTER last.
    await h.reset();
    await apply(before);
    await apply(after);
    await apply([alter]);
    expect(await rows(q)).toEqual(expected);
  });

  it('drops a dropped column from a keyed replica; a keyless replica stays consistent across the drop', async () => {
    const k = new TableEvents('shop', 'k', { id: 'int(11)', gone: 'varchar(10)', v: 'int(11)' });
    await applyTwice([
      [k.insert({ id: 1, gone: 'x', v: 1 })],
      [k.alter([{ kind: 'drop_column', name: 'gone' }])],
      [k.update({ id: 1, v: 1 }, { id: 1, v: 2 })],
    ]);
    expect(await rows('SELECT * FROM shop.k')).toEqual([expect.objectContaining({ id: 1, v: 2 })]);
    expect(Object.keys((await rows('SELECT * FROM shop.k'))[0] as object)).not.toContain('gone');

    const l = new TableEvents('shop', 'l', { gone: 'varchar(10)', v: 'int(11)' }, []);
    await applyTwice([
      [l.insert({ gone: 'x', v: 1 }), l.insert({ gone: 'y', v: 2 })],
      [l.alter([{ kind: 'drop_column', name: 'gone' }])],
      [l.delete({ v: 1 })],
    ]);
    expect(await rows('SELECT v, "_cdc_count"::int AS n FROM shop.l')).toEqual([{ v: 2, n: 1 }]);
  });

  it('widens INT → BIGINT, DECIMAL(10,2) → DECIMAL(14,4), FLOAT → DOUBLE (and unsigned) without losing a row', async () => {
    const k = new TableEvents('shop', 'w', {
      id: 'int(11)',
      i: 'int(11)',
      d: 'decimal(10,2)',
      f: 'float',
      u: 'int(10) unsigned',
    });
    const first = [k.insert({ id: 1, i: 2147483647, d: '12345678.12', f: 1.5, u: 4294967295 })];
    k.retype('i', 'bigint(20)');
    k.retype('d', 'decimal(14,4)');
    k.retype('f', 'double');
    k.retype('u', 'bigint(20) unsigned');
    const second = [
      k.insert({ id: 2, i: '9223372036854775807', d: '1234567890.1234', f: 1e300, u: '18446744073709551615' }),
    ];
    await applyTwice([first, second]);
    expect(await rows('SELECT id, i::text, d::text, f::text, u::text FROM shop.w ORDER BY id')).toEqual([
      { id: 1, i: '2147483647', d: '12345678.1200', f: '1.5', u: '4294967295' },
      { id: 2, i: '9223372036854775807', d: '1234567890.1234', f: '1e+300', u: '18446744073709551615' },
    ]);
    expect(
      await rows(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'w' AND column_name IN ('i','d','f','u') ORDER BY column_name",
      ),
    ).toEqual([
      { column_name: 'd', data_type: 'numeric' },
      { column_name: 'f', data_type: 'double precision' },
      { column_name: 'i', data_type: 'bigint' },
      { column_name: 'u', data_type: 'numeric' },
    ]);
  });
});

describe('history mode through column changes', () => {
  it('keeps the history view working across a rename, an added default, a drop and a widening', async () => {
    const k = new TableEvents('shop', 'hv', { id: 'int(11)', a: 'varchar(10)', gone: 'int(11)', n: 'int(11)' });
    const opts = { history: ['shop.hv'] };
    const first = [k.insert({ id: 1, a: 'x', gone: 1, n: 1 })];
    const alter = k.alter([
      { kind: 'rename_column', from: 'a', to: 'b' },
      { kind: 'add_column', name: 'd', type: 'int(11)', default: 5 },
      { kind: 'drop_column', name: 'gone' },
    ]);
    k.retype('n', 'bigint(20)');
    const second = [k.update({ id: 1, b: 'x', n: 1, d: 5 }, { id: 1, b: 'y', n: '9000000000', d: 6 })];
    await applyTwice([first, [alter], second], opts);
    expect(await rows('SELECT id, b, n::text, d FROM shop.hv')).toEqual([{ id: 1, b: 'y', n: '9000000000', d: 6 }]);
    expect(await rows('SELECT id, b, n::text, is_deleted FROM shop.hv__history ORDER BY "_cdc_position"')).toEqual([
      { id: 1, b: 'x', n: '1', is_deleted: false },
      { id: 1, b: 'y', n: '9000000000', is_deleted: false },
    ]);
  });
});

describe('widening under views', () => {
  it('widens a keyless table and a history-mode table (both have views over the widened column)', async () => {
    const l = new TableEvents('shop', 'lw', { v: 'int(11)', s: 'varchar(10)' }, []);
    const first = [l.insert({ v: 1, s: 'short' })];
    l.retype('s', 'varchar(40)');
    l.retype('v', 'bigint(20)');
    const second = [l.insert({ v: '9000000000', s: 'a much longer text than before' })];
    await applyTwice([first, second]);
    expect(await rows('SELECT v::text, s FROM shop.lw ORDER BY v')).toEqual([
      { v: '1', s: 'short' },
      { v: '9000000000', s: 'a much longer text than before' },
    ]);
    const k = new TableEvents('shop', 'hw', { id: 'int(11)', s: 'varchar(10)' });
    const opts = { history: ['shop.hw'] };
    const a = [k.insert({ id: 1, s: 'short' })];
    k.retype('s', 'varchar(40)');
    const b = [k.update({ id: 1, s: 'short' }, { id: 1, s: 'a much longer text than before' })];
    await applyTwice([a, b], opts);
    expect(await rows('SELECT s FROM shop.hw__history ORDER BY "_cdc_position"')).toEqual([
      { s: 'short' },
      { s: 'a much longer text than before' },
    ]);
  });
});

describe('resync', () => {
  it('rebuilds the replica from the events after it, with the new column types', async () => {
    const k = new TableEvents('shop', 'r', { id: 'int(11)', v: 'int(11)' });
    const old = [k.insert({ id: 1, v: 1 }), k.insert({ id: 2, v: 2 })];
    k.retype('v', 'varchar(20)');
    const resync = k.resync('column v changed from int(11) to varchar(20)');
    const backfill = [k.read({ id: 1, v: 'one' })];
    await applyTwice([old, [resync], backfill]);
    expect(await rows('SELECT id, v FROM shop.r ORDER BY id')).toEqual([{ id: 1, v: 'one' }]);
  });

  it('sets a batch aside with a resync hint when an incompatible type change comes without its resync', async () => {
    const k = new TableEvents('shop', 'r', { id: 'int(11)', v: 'int(11)' });
    await apply([k.insert({ id: 1, v: 1 })]);
    k.retype('v', 'varchar(20)');
    await expect(apply([k.insert({ id: 2, v: 'x' })])).rejects.toThrow(/npx cdc resync shop\.r/);
  });
});

describe('schema changes are all-or-nothing (issue 11)', () => {
  it('a schema change that fails half-way leaves nothing behind, and its retry succeeds (keyless and history tables)', async () => {
    // Fault injection: the first transaction that adds a column and recreates a view fails at its end (after the ALTERs
    // ran), as a Redshift statement refused after the ALTER would. Before, the ALTER had already committed on its own
    // and every retry failed with "column already exists".
    class FailingOnce extends PostgresWarehouse {
      failed = false;
      override async runTransaction(steps: readonly Step[], csv: string): Promise<void> {
        const has = (text: string) => steps.some((s) => s.kind === 'sql' && s.sql.includes(text));
        if (!this.failed && has('ADD COLUMN') && has('CREATE VIEW')) {
          this.failed = true;
          return super.runTransaction([...steps, { kind: 'sql', sql: 'SELECT 1 / 0' }], csv);
        }
        return super.runTransaction(steps, csv);
      }
    }
    const warehouse = new FailingOnce(h.pool);
    const ctx = { ...h.ctx({ history: ['shop.hh'] }), warehouse };
    const l = new TableEvents('shop', 'll', { v: 'int(11)' }, []);
    const k = new TableEvents('shop', 'hh', { id: 'int(11)' });
    await mergeEvents([l.insert({ v: 1 }), k.insert({ id: 1 })], 'first', ctx);
    l.addColumn('w', 'int(11)');
    k.addColumn('w', 'int(11)');
    const second = [l.insert({ v: 2, w: 20 }), k.insert({ id: 2, w: 20 })];
    await expect(mergeEvents(second, 'second', ctx)).rejects.toThrow(/division by zero/);
    expect(warehouse.failed).toBe(true);
    await mergeEvents(second, 'second', ctx);
    expect(await rows('SELECT v, w, "_cdc_count"::int AS n FROM shop.ll ORDER BY v')).toEqual([
      { v: 1, w: null, n: 1 },
      { v: 2, w: 20, n: 1 },
    ]);
    expect(await rows('SELECT id, w FROM shop.hh__history ORDER BY id')).toEqual([
      { id: 1, w: null },
      { id: 2, w: 20 },
    ]);
  });

  it('locks only the table state table, never a replica analysts read', async () => {
    const { planMerge } = await import('../../lambdas/merge/src/merge-plan');
    const { redshiftDialect } = await import('../../lambdas/merge/src/dialect-redshift');
    const { tableNames } = await import('../../lambdas/merge/src/naming');
    const { modelFromEvents } = await import('../../lambdas/merge/src/table-model');
    const d = redshiftDialect({ copyRoleArn: 'arn:aws:iam::123456789012:role/r' });
    for (const pk of [['id'], []]) {
      const t = new TableEvents('shop', 'o', { id: 'int(11)' }, pk);
      const steps = planMerge(
        modelFromEvents([t.insert({ id: 1 })], 'redshift'),
        tableNames('shop', 'o', { stateSchema: 'cdc' }),
        d,
        {
          batchId: 'b',
          events: 1,
          maxPosition: '000001.000000001100.00000000',
          maxCommitMs: 0,
          history: true,
          stageLocation: 's3://b/k',
        },
      );
      const locks = steps.flatMap((s) => (s.kind === 'sql' && /^LOCK\b/.test(s.sql) ? [s.sql] : []));
      expect(locks).toEqual(['LOCK "cdc"."shop__o__state"']);
    }
  });
});

describe('schema knowledge between batches', () => {
  it('reads the column registry once for a run of batches of one table, schema changes included', async () => {
    class Counting extends PostgresWarehouse {
      registryReads = 0;
      override async query(text: string): Promise<Record<string, unknown>[]> {
        if (/^SELECT .* FROM "cdc"\."replica_columns"/s.test(text)) this.registryReads++;
        return super.query(text);
      }
    }
    const warehouse = new Counting(h.pool);
    const ctx = { ...h.ctx(), warehouse };
    const k = new TableEvents('shop', 'rc', { id: 'int(11)', v: 'varchar(10)' });
    await mergeEvents([k.insert({ id: 1, v: 'a' })], 'rc1', ctx);
    k.addColumn('w', 'int(11)');
    await mergeEvents([k.insert({ id: 2, v: 'b', w: 2 })], 'rc2', ctx);
    k.retype('v', 'varchar(40)');
    await mergeEvents([k.insert({ id: 3, v: 'a longer value than before', w: 3 })], 'rc3', ctx);
    await mergeEvents([k.update({ id: 1, v: 'a' }, { id: 1, v: 'a2', w: 1 })], 'rc4', ctx);
    expect(warehouse.registryReads).toBe(1);
    expect(await rows('SELECT id, v, w FROM shop.rc ORDER BY id')).toEqual([
      { id: 1, v: 'a2', w: 1 },
      { id: 2, v: 'b', w: 2 },
      { id: 3, v: 'a longer value than before', w: 3 },
    ]);
  });
});
