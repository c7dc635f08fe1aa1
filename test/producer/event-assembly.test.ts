/**
 * The producer's event assembly and in-flight checkpoint list on their own (issue 12): one plan per table shape
 * (each outgoing column's encoder type with its capture rule), images encoded and filtered in one pass; the checkpoint
 * moves only past fully acknowledged transactions.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { assembleImage, compileShapePlan, EventAssembler } from '../../containers/producer/src/event-assembly';
import type { TableShape } from '../../containers/producer/src/event-encoder';
import { InFlightCheckpoints } from '../../containers/producer/src/in-flight-checkpoints';
import { TableFilter } from '../../containers/producer/src/table-filter';

const shape: TableShape = {
  db: 'shop',
  table: 'customers',
  pk: ['id'],
  columns: [
    { name: 'id', type: 'bigint unsigned' },
    { name: 'email', type: 'varchar(100)' },
    { name: 'phone', type: 'varchar(20)' },
    { name: 'secret', type: 'varchar(20)' },
    { name: 'score', type: 'decimal(10,2)' },
    { name: 'vec', type: 'vector(3)' },
  ],
};
const filter = new TableFilter({
  include: ['shop.*'],
  exclude: [],
  excludeColumns: ['shop.customers.secret'],
  hashColumns: ['shop.*.email'],
  maskColumns: ['shop.customers.phone'],
});

describe('event assembly', () => {
  it('compiles one plan per shape: dropped columns left out, hashed and masked ones typed as text, unknown types found', () => {
    const plan = compileShapePlan(shape, filter);
    expect(plan.columns.map((c) => [c.name, c.rule])).toEqual([
      ['id', 'keep'],
      ['email', 'hash'],
      ['phone', 'mask'],
      ['score', 'keep'],
      ['vec', 'keep'],
    ]);
    expect(plan.outgoing).toEqual([
      { name: 'id', type: 'bigint unsigned' },
      { name: 'email', type: 'char(64)' },
      { name: 'phone', type: 'varchar(4)' },
      { name: 'score', type: 'decimal(10,2)' },
      { name: 'vec', type: 'vector(3)' },
    ]);
    expect(plan.unknown.map((c) => c.name)).toEqual(['vec']);
  });

  it('encodes and filters an image in one pass: exact values, SHA-256 of the encoded value, ****, NULL kept as NULL', () => {
    const plan = compileShapePlan(shape, filter);
    const image = assembleImage(plan, {
      id: '18446744073709551615',
      email: 'a@example.com',
      phone: null,
      secret: 'never leaves',
      score: '12.50',
      vec: Buffer.from([1, 2]),
    });
    expect(image).toEqual({
      id: '18446744073709551615',
      email: createHash('sha256').update('a@example.com').digest('hex'),
      phone: null,
      score: '12.50',
      vec: '0102',
    });
    expect(Object.keys(image)).not.toContain('secret');
    expect(assembleImage(plan, { id: 1, email: null, phone: '555', secret: 'x', score: null, vec: null })).toEqual({
      id: '1',
      email: null,
      phone: '****',
      score: null,
      vec: null,
    });
  });

  it('compiles a shape once, and builds row and table events with the source position', () => {
    const a = new EventAssembler({ serverId: 7, filter });
    expect(a.plan(shape)).toBe(a.plan(shape));
    const at = { file: 'mysql-bin.000003', pos: 400, gtid: '0-1-9', commitMs: 1_700_000_000_000 };
    const e = a.rowEvent({ shape, op: 'insert', before: null, after: { id: 5, email: 'x' }, ...at, row: 2 });
    expect(e).toMatchObject({
      op: 'insert',
      position: '000003.000000000400.00000002',
      tx: '0-1-9',
      ts_ms: 1_700_000_000_000,
      source: { server_id: 7, file: 'mysql-bin.000003', pos: 400, row: 2, gtid: '0-1-9' },
      after: { id: '5' },
    });
    const t = a.tableEvent({
      db: 'shop',
      table: 'customers',
      op: 'truncate',
      change: { statement: 'TRUNCATE' },
      ...at,
      gtid: null,
      row: 0,
    });
    expect(t).toMatchObject({ op: 'truncate', pk: [], before: null, after: null, tx: 'mysql-bin.000003:400' });
  });
});

describe('the in-flight checkpoint list', () => {
  const b = (pos: number) => ({ file: 'f', pos, gtid: null, commitMs: pos });

  it('moves the checkpoint only to a boundary whose events are all acknowledged, newest first', () => {
    const list = new InFlightCheckpoints();
    list.push(2, b(100), undefined); // events 0..2
    list.push(5, b(200), undefined); // events 3..5
    list.acknowledgedBelow(2); // 0 and 1 only: the first transaction is not complete
    expect(list.safe).toBeUndefined();
    list.acknowledgedBelow(5); // 0..4: the first one is
    expect(list.safe).toEqual(b(100));
    expect(list.waiting).toBe(1);
    list.acknowledgedBelow(6);
    expect(list.safe).toEqual(b(200));
    expect(list.waiting).toBe(0);
  });

  it('keeps the snapshot progress of the boundary it moved to; an empty transaction is safe at once', () => {
    const list = new InFlightCheckpoints();
    const snap = { jobs: [], requests: [] } as never;
    list.push(-1, b(50), snap); // no event before it
    list.acknowledgedBelow(0);
    expect(list.safe).toEqual(b(50));
    expect(list.safeSnapshot).toBe(snap);
  });
});
