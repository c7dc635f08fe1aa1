/** The pure parts of table quarantine: reading zongji's decoding error, the stored list, and what ends a quarantine. */
import { describe, expect, it } from 'vitest';
import {
  parseQuarantine,
  resyncedTable,
  TableQuarantine,
  undecodableTable,
} from '../../containers/producer/src/table-quarantine';

describe('table quarantine', () => {
  it("reads the table, column and type from zongji's Unsupported type error, and nothing from other errors", () => {
    expect(undecodableTable('Unsupported type "14" on column "y" of the table "bad.x" in the database "shop"')).toEqual(
      { db: 'shop', table: 'bad.x', column: 'y', type: '14' },
    );
    expect(undecodableTable('Connection lost: The server closed the connection.')).toBeUndefined();
  });

  it('keeps a table once, and round-trips the list through its stored text', () => {
    const q = new TableQuarantine();
    const entry = { table: 'shop.bad', reason: 'r', since: 1, position: 'mysql-bin.000001:4' };
    expect(q.add(entry)).toBe(true);
    expect(q.add({ ...entry, reason: 'again' })).toBe(false);
    expect(q.has('shop', 'bad')).toBe(true);
    expect(parseQuarantine(q.serialize())).toEqual([entry]);
    expect(q.remove('shop', 'bad')).toBe(true);
    expect(q.remove('shop', 'bad')).toBe(false);
    expect(q.has('shop', 'bad')).toBe(false);
    expect(parseQuarantine(undefined)).toEqual([]);
    expect(parseQuarantine('not json')).toEqual([]);
    expect(parseQuarantine('[{"table":1}]')).toEqual([]);
  });

  it('ends only on a resync of that table for this pipeline (or for every pipeline), not on a backfill', () => {
    const resync = { type: 'resync', id: 'r', table: 'shop.bad', pipeline: null } as const;
    expect(resyncedTable(resync, 'p1')).toEqual({ db: 'shop', table: 'bad' });
    expect(resyncedTable({ ...resync, pipeline: 'p1' }, 'p1')).toEqual({ db: 'shop', table: 'bad' });
    expect(resyncedTable({ ...resync, pipeline: 'p2' }, 'p1')).toBeUndefined();
    expect(resyncedTable({ ...resync, table: 'nodot' }, 'p1')).toBeUndefined();
    expect(
      resyncedTable({ type: 'backfill', id: 'b', table: 'shop.bad', where: null, pipeline: null }, 'p1'),
    ).toBeUndefined();
  });
});
