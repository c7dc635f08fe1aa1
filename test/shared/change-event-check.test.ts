import Ajv2020 from 'ajv/dist/2020';
import { describe, expect, it } from 'vitest';
import {
  type ChangeEvent,
  claimCheckPointer,
  formatPosition,
  isClaimCheckPointer,
  keyImage,
  keyValues,
  POSITION_CHARS,
  POSITION_PATTERN,
  POSITION_SQL_TYPE,
  READABLE_EVENT_VERSIONS,
  TABLE_OPS,
} from '../../shared/change-event';
import schema from '../../shared/change-event.schema.json';
import { checkChangeEvent } from '../../shared/change-event-check';
import { changelogTableDdl } from '../../shared/changelog-table';
import { claimCheckKey, LAKE_CLAIM_CHECK_PREFIX } from '../../shared/lake-layout';

// The published schema compiled on its own, as any other consumer of the contract would.
const schemaAccepts = new Ajv2020({ strict: false }).compile(schema);

const columns = [
  { name: 'id', type: 'int(11)' },
  { name: 'label', type: 'varchar(20)', nullable: true },
];
const base = {
  db: 'shop',
  table: 'orders',
  pk: ['id'],
  columns,
  source: { server_id: 1, file: 'mysql-bin.000003', pos: 4711, row: 0, gtid: '0-1-812' },
  position: formatPosition('mysql-bin.000003', 4711, 0),
  tx: '0-1-812',
  ts_ms: 1795412345000,
  emitted_ms: 1795412345120,
};
const row = (op: string, before: unknown, after: unknown, more: Record<string, unknown> = {}) => ({
  v: 2,
  op,
  ...base,
  before,
  after,
  ...more,
});
const table = (op: string, change: unknown, more: Record<string, unknown> = {}) => ({
  v: 2,
  op,
  ...base,
  columns: [],
  before: null,
  after: null,
  change,
  ...more,
});
const without = (doc: Record<string, unknown>, field: string) => {
  const { [field]: _, ...rest } = doc;
  return rest;
};
const a = { id: 1, label: 'a' };
const b = { id: 1, label: 'b' };

const VALID: Record<string, unknown> = {
  'v1 insert': row('insert', null, a, { v: 1 }),
  'v1 update': row('update', a, b, { v: 1 }),
  'v1 delete': row('delete', a, null, { v: 1 }),
  'v2 read (snapshot row)': row('read', null, a),
  'v2 update without its before image': row('update', null, b),
  'row of a table without a primary key': row('update', { x: 1 }, { x: 2 }, { pk: [] }),
  'claim-check pointer (images in S3)': row('insert', null, null, {
    claim_check: { bucket: 'lake', key: 'claim-check/shop/orders/x.json', bytes: 2_000_000 },
  }),
  'delete pointer': row('delete', null, null, { claim_check: { bucket: 'lake', key: 'k', bytes: 1 } }),
  'GTIDs off (gtid null, tx file:pos)': row('insert', null, a, {
    source: { ...base.source, gtid: null },
    tx: 'mysql-bin.000003:4000',
  }),
  'v2 truncate': table('truncate', { statement: 'TRUNCATE TABLE orders' }),
  'v2 drop': table('drop', { statement: 'DROP TABLE orders' }),
  'v2 rename': table('rename', { statement: 'RENAME TABLE orders TO o2', rename_to: { db: 'shop', table: 'o2' } }),
  'v2 alter with every column change': table('alter', {
    statement: 'ALTER TABLE orders …',
    columns: [
      { kind: 'rename_column', from: 'label', to: 'name' },
      { kind: 'add_column', name: 'qty', type: 'int(11)', default: 0 },
      { kind: 'add_column', name: 'note', type: 'text', default: null },
      { kind: 'drop_column', name: 'old' },
    ],
  }),
  'v2 resync': table('resync', { reason: 'requested by npx cdc resync' }),
  'v2 range with bounds': table('range', {
    range: { after: { id: 10 }, upto: { id: 20 }, low_position: formatPosition('mysql-bin.000003', 4000, 0) },
  }),
  'v2 range of the whole table': table('range', {
    range: { after: null, upto: null, low_position: formatPosition('mysql-bin.000003', 4000, 0) },
  }),
};

const INVALID: Record<string, unknown> = {
  'not an object (array)': [row('insert', null, a)],
  'not an object (null)': null,
  'a version no reader knows': row('insert', null, a, { v: 3 }),
  'no version': without(row('insert', null, a), 'v'),
  'an unknown op': row('upsert', null, a),
  'an empty db': row('insert', null, a, { db: '' }),
  'no tx': without(row('insert', null, a), 'tx'),
  'no source': without(row('insert', null, a), 'source'),
  'no emitted_ms': without(row('insert', null, a), 'emitted_ms'),
  'a field the contract does not have': row('insert', null, a, { extra: 1 }),
  'a position one digit short': row('insert', null, a, { position: '00003.000000004711.00000000' }),
  'a position with letters': row('insert', null, a, { position: '000003.00000000471x.00000000' }),
  'pk that is not a list of names': row('insert', null, a, { pk: [1] }),
  'a row event without columns': row('insert', null, a, { columns: [] }),
  'a column without its type': row('insert', null, a, { columns: [{ name: 'id' }] }),
  'ts_ms not an integer': row('insert', null, a, { ts_ms: '1795412345000' }),
  'source file without a sequence number': row('insert', null, a, { source: { ...base.source, file: 'binlog' } }),
  'insert without its after image': row('insert', null, null),
  'update without its after image': row('update', a, null),
  'delete without its before image': row('delete', null, null),
  'insert with a before image': row('insert', a, a),
  'delete with an after image': row('delete', a, a),
  'a row event with a change': row('insert', null, a, { change: { statement: 'x' } }),
  'a claim check without its size': row('insert', null, null, { claim_check: { bucket: 'lake', key: 'k' } }),
  'v1 truncate (table events are version 2)': table('truncate', { statement: 'TRUNCATE TABLE orders' }, { v: 1 }),
  'a table event without its change': without(table('drop', {}), 'change'),
  'a table event with an image': table('truncate', {}, { after: a }),
  'rename without rename_to': table('rename', { statement: 'RENAME TABLE orders TO o2' }),
  'alter without columns': table('alter', { statement: 'ALTER TABLE orders' }),
  'an unknown column change': table('alter', { columns: [{ kind: 'modify_column', name: 'label' }] }),
  'range without range': table('range', {}),
  'range with a malformed low_position': table('range', { range: { after: null, upto: null, low_position: '1' } }),
};

describe('the runtime check and the published schema (change-event.schema.json)', () => {
  it.each(Object.entries(VALID))('both accept: %s', (_, doc) => {
    expect(schemaAccepts(doc)).toBe(true);
    expect(checkChangeEvent(doc)).toEqual({ ok: true, event: doc });
  });

  it.each(Object.entries(INVALID))('both reject: %s', (_, doc) => {
    expect(schemaAccepts(doc)).toBe(false);
    expect(checkChangeEvent(doc).ok).toBe(false);
  });

  it('adds only the rule JSON Schema cannot state: each key column is in the identifying image and not null', () => {
    const missing = row('insert', null, { label: 'a' });
    const nullKey = row('delete', { id: null, label: 'a' }, null);
    for (const doc of [missing, nullKey]) expect(schemaAccepts(doc)).toBe(true);
    expect(checkChangeEvent(missing)).toEqual({
      ok: false,
      problem: 'invalid',
      message: 'primary key column "id" missing or null',
    });
    expect(checkChangeEvent(nullKey)).toMatchObject({ ok: false, message: 'primary key column "id" missing or null' });
  });

  it('tells an unknown version from an invalid event, and names the field, its value and the rule', () => {
    expect(checkChangeEvent(INVALID['a version no reader knows'])).toEqual({
      ok: false,
      problem: 'version',
      message: 'event version 3',
    });
    expect(checkChangeEvent(INVALID['a position one digit short'])).toEqual({
      ok: false,
      problem: 'invalid',
      message: `insert event: position "00003.000000004711.00000000" must match pattern "${POSITION_PATTERN.source}"`,
    });
    expect(checkChangeEvent(INVALID['v1 truncate (table events are version 2)'])).toMatchObject({
      message: 'truncate event: v 1 must be equal to constant (2)',
    });
    expect(checkChangeEvent(INVALID['insert without its after image'])).toMatchObject({
      message: 'insert event: after null must be object',
    });
    expect(checkChangeEvent(INVALID['a field the contract does not have'])).toMatchObject({
      message: 'insert event: must NOT have additional properties ("extra")',
    });
    expect(checkChangeEvent(INVALID['an unknown op'])).toMatchObject({
      message: expect.stringMatching(
        /^upsert event: op "upsert" must be equal to one of the allowed values \("insert"/,
      ),
    });
    expect(checkChangeEvent(INVALID['an unknown column change'])).toMatchObject({
      message: expect.stringMatching(
        /^alter event: change\.columns\.0 \{"kind":"modify_column".* must match exactly one/,
      ),
    });
    expect(checkChangeEvent(INVALID['not an object (array)'])).toMatchObject({ message: 'not a JSON object' });
  });

  it('spells the versions, operations and position the code knows', () => {
    expect(schema.properties.v.enum).toEqual(READABLE_EVENT_VERSIONS);
    expect(schema.properties.op.enum).toEqual(['insert', 'update', 'delete', 'read', ...TABLE_OPS]);
    expect(schema.properties.position.pattern).toBe(POSITION_PATTERN.source);
    expect(schema.$defs.change.properties.range.properties.low_position.pattern).toBe(POSITION_PATTERN.source);
  });
});

describe('what the contract owns', () => {
  it('gives every position POSITION_CHARS characters, and each warehouse column holding one that width', () => {
    expect(POSITION_CHARS).toBe(28);
    expect(formatPosition('mysql-bin.999999', 999_999_999_999, 99_999_999)).toHaveLength(POSITION_CHARS);
    expect(formatPosition('mysql-bin.000001', 4, 0)).toHaveLength(POSITION_CHARS);
    expect(POSITION_SQL_TYPE).toBe('CHAR(28)');
    for (const warehouse of ['redshift', 'postgres'] as const)
      expect(changelogTableDdl('cdc', warehouse)).toContain(`position ${POSITION_SQL_TYPE}`);
  });

  it('reads the key from the image that identifies the row (before for a delete, none for a table event)', () => {
    const ins = row('insert', null, { id: 7, label: 'x' }, { pk: ['id', 'label'] }) as ChangeEvent;
    const del = row('delete', { id: 8, label: 'y' }, null) as ChangeEvent;
    expect(keyImage(ins)).toEqual({ id: 7, label: 'x' });
    expect(keyValues(ins)).toEqual([7, 'x']);
    expect(keyImage(del)).toEqual({ id: 8, label: 'y' });
    expect(keyValues(del)).toEqual([8]);
    const truncate = table('truncate', {}) as ChangeEvent;
    expect(keyImage(truncate)).toBeNull();
    expect(keyValues({ ...truncate, pk: ['id'] })).toEqual([null]);
  });

  it('parks an oversized event under the claim-check prefix and sends a pointer both checks accept', () => {
    const event = row('update', a, b) as ChangeEvent;
    const key = claimCheckKey(event);
    expect(key).toBe(`${LAKE_CLAIM_CHECK_PREFIX}shop/orders/${event.position}.json`);
    expect(claimCheckKey(event, 'parked/')).toBe(`parked/shop/orders/${event.position}.json`);
    const pointer = claimCheckPointer(event, { bucket: 'lake', key, bytes: 1_500_000 });
    expect(pointer).toMatchObject({ op: 'update', position: event.position, before: null, after: null });
    expect(isClaimCheckPointer(pointer)).toBe(true);
    expect(isClaimCheckPointer(event)).toBe(false);
    expect(schemaAccepts(pointer)).toBe(true);
    expect(checkChangeEvent(pointer).ok).toBe(true);
  });
});
