import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import Ajv2020 from 'ajv/dist/2020';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../local/services/process';
import type { ChangeEvent } from '../../shared/change-event';
import schema from '../../shared/change-event.schema.json';
import { type ProducerHarness, type ProducerProcess, startProducerHarness, waitForLog } from './support/harness';

let h: ProducerHarness;
let p1: ProducerProcess;
const validate = new Ajv2020({ strict: false }).compile(schema);

beforeAll(async () => {
  h = await startProducerHarness();
  await h.db.query('CREATE DATABASE shop');
  p1 = h.startProducer();
  await waitForLog(p1, /reading the binlog/);
});
afterAll(async () => {
  await h?.close();
});

async function eventsFor(table: string, n: number): Promise<ChangeEvent[]> {
  return waitFor(`${n} events of ${table}`, async () => {
    const all = (await h.readAll()).filter((e) => e.table === table);
    return all.length >= n ? all : undefined;
  });
}

describe('producer against a real MariaDB and Kinesis/DynamoDB emulators', () => {
  it('captures inserts, updates and deletes with full images, exact values and schema-valid events', async () => {
    await h.db.query(`CREATE TABLE shop.edge (
      id BIGINT UNSIGNED PRIMARY KEY, d DECIMAL(65,30), dt DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6), e ENUM('a','b'),
      s SET('x','y','z'), b BLOB, bi BIT(10), v VARCHAR(20), n INT NULL, f DOUBLE, j JSON)`);
    await h.db.query("SET time_zone = '+02:00'");
    await h.db.query(
      `INSERT INTO shop.edge VALUES (18446744073709551615, -12345678901234567890123456789012345.123456789012345678901234567890,
        '2026-11-23 23:59:59.123456', '2026-11-23 01:02:03.654321', '-838:59:59.5', 'b', 'x,z', x'00ff10', b'1000000001',
        'Grüße 🚚', NULL, 2.5, '{"a":[1,2.5]}')`,
    );
    await h.db.query("UPDATE shop.edge SET v = 'changed' WHERE id = 18446744073709551615");
    await h.db.query('DELETE FROM shop.edge');
    const events = await eventsFor('edge', 3);
    for (const e of events) expect(validate(e), JSON.stringify(validate.errors)).toBe(true);
    expect(events.map((e) => e.op)).toEqual(['insert', 'update', 'delete']);
    const [ins, upd, del] = events as [ChangeEvent, ChangeEvent, ChangeEvent];
    expect(ins.pk).toEqual(['id']);
    expect(ins.before).toBeNull();
    expect(ins.after).toEqual({
      id: '18446744073709551615',
      d: '-12345678901234567890123456789012345.123456789012345678901234567890',
      dt: '2026-11-23 23:59:59.123456',
      ts: '2026-11-22T23:02:03.654321Z',
      tm: '-838:59:59.500000',
      e: 'b',
      s: 'x,z',
      b: Buffer.from([0, 255, 16]).toString('base64'),
      bi: '1000000001',
      v: 'Grüße 🚚',
      n: null,
      f: 2.5,
      j: '{"a":[1,2.5]}',
    });
    expect(upd.before?.v).toBe('Grüße 🚚');
    expect(upd.after?.v).toBe('changed');
    expect(del.after).toBeNull();
    expect(del.before?.v).toBe('changed');
    expect(ins.position < upd.position && upd.position < del.position).toBe(true);
    expect(ins.columns.find((c) => c.name === 'd')?.type).toBe('decimal(65,30)');
  });

  it('keeps values under the right columns across ALTER TABLE ADD/DROP COLUMN mid-stream', async () => {
    await h.db.query('CREATE TABLE shop.alt (id INT PRIMARY KEY, a VARCHAR(10), b INT)');
    await h.db.query("INSERT INTO shop.alt VALUES (1, 'one', 10)");
    await h.db.query('ALTER TABLE shop.alt ADD COLUMN c VARCHAR(10) AFTER id, DROP COLUMN b');
    await h.db.query("INSERT INTO shop.alt VALUES (2, 'cee', 'two')");
    const events = await eventsFor('alt', 3);
    expect(events[0]!.after).toEqual({ id: 1, a: 'one', b: 10 });
    expect(events[1]).toMatchObject({
      op: 'alter',
      change: {
        columns: [
          { kind: 'add_column', name: 'c', type: 'varchar(10)', default: null },
          { kind: 'drop_column', name: 'b' },
        ],
      },
    });
    expect(events[2]!.after).toEqual({ id: 2, c: 'cee', a: 'two' });
  });

  it('types MariaDB UUID/INET6 columns from the binlog as text, also one added mid-stream, and leaves BINARY(16) bytes', async () => {
    await h.db.query('CREATE TABLE shop.ids (id INT PRIMARY KEY, raw BINARY(16), ip INET6)');
    await h.db.query("INSERT INTO shop.ids VALUES (1, x'00112233445566778899aabbccddeeff', '2001:db8::1')");
    // The table's types were looked up for the first row: the ALTER must make the producer look again.
    await eventsFor('ids', 1);
    await h.db.query('ALTER TABLE shop.ids ADD COLUMN u UUID');
    await h.db.query(
      "INSERT INTO shop.ids VALUES (2, x'00112233445566778899aabbccddeeff', '::ffff:10.0.0.1', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')",
    );
    const rows = (await eventsFor('ids', 3)).filter((e) => e.op === 'insert');
    const raw = Buffer.from('00112233445566778899aabbccddeeff', 'hex').toString('base64');
    expect(rows.map((e) => e.after)).toEqual([
      { id: 1, raw, ip: '2001:db8::1' },
      { id: 2, raw, ip: '::ffff:10.0.0.1', u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' },
    ]);
    expect(rows[1]!.columns.map((c) => c.type)).toEqual(['int', 'binary(16)', 'inet6', 'uuid']);
  });

  it('fences a second producer for the same pipeline with a clear message', async () => {
    const p2 = h.startProducer();
    expect(await p2.exited).toBe(1);
    expect(p2.output()).toMatch(/LEASE_HELD: another producer \(.+\) holds the lease for pipeline test/);
  });

  it('drains and checkpoints on SIGTERM, then resumes from the checkpoint with no gap', async () => {
    await h.db.query('CREATE TABLE shop.seq (id INT PRIMARY KEY)');
    for (let i = 1; i <= 50; i++) await h.db.query('INSERT INTO shop.seq VALUES (?)', [i]);
    await eventsFor('seq', 50);
    p1.child.kill('SIGTERM');
    expect(await p1.exited).toBe(0);
    expect(p1.output()).toMatch(/stopped cleanly/);
    const item = await h.dynamo.send(
      new GetItemCommand({ TableName: 'cdc-checkpoints', Key: { pk: { S: 'test' }, sk: { S: 'producer' } } }),
    );
    expect(item.Item?.file?.S).toMatch(/^mysql-bin\.\d{6}$/);
    expect(item.Item?.leaseOwner).toBeUndefined();

    // Written while no producer runs, across a binlog rotation.
    for (let i = 51; i <= 60; i++) await h.db.query('INSERT INTO shop.seq VALUES (?)', [i]);
    await h.db.query('FLUSH BINARY LOGS');
    for (let i = 61; i <= 70; i++) await h.db.query('INSERT INTO shop.seq VALUES (?)', [i]);
    p1 = h.startProducer();
    await waitForLog(p1, /resuming from checkpoint/);
    const events = await eventsFor('seq', 70);
    const ids = new Set(events.map((e) => e.after!.id));
    expect([...Array(70)].map((_, i) => i + 1).filter((i) => !ids.has(i))).toEqual([]);
    // Positions keep growing across the rotation.
    const last = events.filter((e) => e.after!.id === 70)[0]!;
    expect(last.source.file > events.filter((e) => e.after!.id === 51)[0]!.source.file).toBe(true);
  });

  it('refuses to start from a binlog that is no longer on the server', async () => {
    p1.child.kill('SIGTERM');
    await p1.exited;
    const p = h.startProducer({ START_FROM: 'file:mysql-bin.000000:4' });
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(/BINLOG_PURGED: binlog mysql-bin.000000 \(position 4\) is no longer on the server/);
    expect(p.output()).toMatch(/"BinlogPurged":1/);
  });

  it('refuses a server without binlog_row_metadata=FULL, saying what to set', async () => {
    await h.db.query('SET GLOBAL binlog_row_metadata = MINIMAL');
    try {
      const p = h.startProducer();
      expect(await p.exited).toBe(1);
      expect(p.output()).toMatch(
        /SERVER_SETTINGS: .*binlog_row_metadata is \\?"MINIMAL\\?", set binlog_row_metadata=FULL/,
      );
    } finally {
      await h.db.query('SET GLOBAL binlog_row_metadata = FULL');
    }
  });
});
