/**
 * One table whose rows the binlog library cannot decode never stops the others: the producer sets that table aside
 * (quarantine, kept with the checkpoint), never emits a row of it decoded wrongly, and goes on with every other table;
 * `npx cdc status` shows the quarantine with its reason, a restart keeps it, and `npx cdc resync` ends it (the table is
 * read again from the binlog and rebuilt by a backfill). A real MariaDB 10.11 writes no column zongji cannot decode, so
 * the fault is injected into the producer's process (support/zongji-undecodable-type.ts: YEAR columns get a binlog
 * type code zongji rejects with its own "Unsupported type" error); MariaDB, Kinesis and DynamoDB are real.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectStatus, renderStatus } from '../../cli/src/commands/status';
import { requestResync } from '../../containers/producer/src/signal-table';
import { waitFor } from '../../local/services/process';
import type { ChangeEvent } from '../../shared/change-event';
import {
  type ProducerHarness,
  type ProducerProcess,
  startProducerHarness,
  statusTarget,
  waitForLog,
} from './support/harness';

const FAULT = join(import.meta.dirname, 'support', 'zongji-undecodable-type.ts');
const faulty = { ZONGJI_FAULT_UNDECODABLE_TYPE: '^year' };

let h: ProducerHarness;

beforeAll(async () => {
  h = await startProducerHarness();
  await h.db.query(
    'CREATE DATABASE shop; ' +
      'CREATE TABLE shop.good (id INT PRIMARY KEY, v VARCHAR(20)); ' +
      // The undecodable column sits between two others: zongji's garbage row misreads the column after it.
      'CREATE TABLE shop.bad (id INT PRIMARY KEY, y YEAR, v VARCHAR(20)); ' +
      // Not captured (CAPTURE_INCLUDE is shop.*), but zongji decodes every table's rows: nothing to set aside.
      'CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY, y YEAR)',
  );
});

afterAll(async () => {
  await h?.close();
});

const rowsOf = (events: ChangeEvent[], table: string) => events.filter((e) => e.table === table);
/** Row events read from the binlog (the initial snapshot of the still empty tables only marks a `range`). */
const changesOf = (events: ChangeEvent[], table: string) =>
  rowsOf(events, table).filter((e) => e.op === 'insert' || e.op === 'update' || e.op === 'delete' || e.op === 'read');
const ids = (events: ChangeEvent[]) => events.map((e) => Number(e.after?.id)).sort((a, b) => a - b);

async function inserts(table: string, n: number): Promise<ChangeEvent[]> {
  return waitFor(`${n} inserts of shop.${table}`, async () => {
    const got = rowsOf(await h.readAll(), table).filter((e) => e.op === 'insert');
    return got.length >= n ? got : undefined;
  });
}

describe('a table the binlog library cannot decode', () => {
  let p1: ProducerProcess;

  it('is quarantined while every other table keeps flowing, and none of its rows is emitted', async () => {
    p1 = h.startProducer(faulty, { imports: [FAULT] });
    await waitForLog(p1, /reading the binlog/);
    for (const id of [1, 2, 3]) await h.db.query('INSERT INTO shop.good VALUES (?, ?)', [id, `g${id}`]);
    await h.db.query('INSERT INTO other.t VALUES (1, 2024)');
    await h.db.query("INSERT INTO shop.bad VALUES (1, 2024, 'b1'), (2, 2025, 'b2')");
    // One transaction with both tables: the good table's rows on either side of the bad one still arrive.
    await h.db.query(
      "BEGIN; INSERT INTO shop.good VALUES (4, 'g4'); INSERT INTO shop.bad VALUES (3, 2026, 'b3'); " +
        "INSERT INTO shop.good VALUES (5, 'g5'); COMMIT",
    );
    for (const id of [6, 7, 8, 9, 10]) await h.db.query('INSERT INTO shop.good VALUES (?, ?)', [id, `g${id}`]);

    const good = await inserts('good', 10);
    expect(ids(good)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(good.every((e) => e.after?.v === `g${e.after?.id}`)).toBe(true);
    expect(changesOf(await h.readAll(), 'bad')).toEqual([]);
    expect(p1.child.exitCode).toBeNull();
    expect(p1.output()).toMatch(/"level":"ERROR".*"message":"table quarantined[^"]*".*"table":"shop\.bad"/);
    expect(p1.output()).toMatch(/"reason":"Unsupported type \\"14\\" on column \\"y\\" of the table \\"bad\\"/);
    await waitForLog(p1, /"TablesQuarantined":1/); // a gauge: the tables set aside now
    expect(p1.output()).not.toMatch(/fatal error/);
    expect(p1.output()).not.toMatch(/"table":"other\.t"/);
  });

  it('shows in npx cdc status with its reason', async () => {
    const report = await waitFor('the quarantine in status', async () => {
      const r = await collectStatus(statusTarget(h));
      return r.producer.quarantined.length > 0 ? r : undefined;
    });
    expect(report.producer.quarantined).toEqual([
      expect.objectContaining({
        table: 'shop.bad',
        reason: expect.stringMatching(/Unsupported type "14" on column "y"/),
      }),
    ]);
    expect(report.producer.running).toBe(true);
    expect(renderStatus(report)).toMatch(/quarantined tables[^\n]*:\n {2}shop\.bad since .*Unsupported type/);
  });

  it('stays quarantined across a restart (kept with the checkpoint)', async () => {
    p1.child.kill('SIGTERM');
    expect(await p1.exited).toBe(0);
    // Written while no producer runs; the next one has no fault: only the kept quarantine keeps shop.bad out.
    await h.db.query("INSERT INTO shop.bad VALUES (4, 2027, 'b4')");
    await h.db.query("INSERT INTO shop.good VALUES (11, 'g11')");
    const p2 = h.startProducer();
    await waitForLog(p2, /reading the binlog/);
    await h.db.query("INSERT INTO shop.good VALUES (12, 'g12')");
    await waitFor('good 12', async () => ids(rowsOf(await h.readAll(), 'good')).includes(12));
    expect(changesOf(await h.readAll(), 'bad')).toEqual([]);
    expect(p2.output()).toMatch(/"quarantined":\[\{"table":"shop\.bad"/);
    expect((await collectStatus(statusTarget(h))).producer.quarantined.map((q) => q.table)).toEqual(['shop.bad']);

    // npx cdc resync (what its command writes to the signal table): the table is taken back and rebuilt.
    await requestResync(h.db, { db: 'cdc', table: 'cdc_signal' }, { table: 'shop.bad', pipeline: 'test' });
    const rebuilt = await waitFor('the resync of shop.bad', async () => {
      const ev = rowsOf(await h.readAll(), 'bad');
      return ev.filter((e) => e.op === 'read').length >= 4 ? ev : undefined;
    });
    const resyncAt = rebuilt.findIndex((e) => e.op === 'resync');
    expect(resyncAt).toBeGreaterThanOrEqual(0);
    expect(rebuilt.findIndex((e) => e.op === 'read')).toBeGreaterThan(resyncAt);
    expect(
      rebuilt
        .filter((e) => e.op === 'read')
        .map((e) => [Number(e.after?.id), Number(e.after?.y), e.after?.v])
        .sort((a, b) => Number(a[0]) - Number(b[0])),
    ).toEqual([
      [1, 2024, 'b1'],
      [2, 2025, 'b2'],
      [3, 2026, 'b3'],
      [4, 2027, 'b4'],
    ]);
    await h.db.query("INSERT INTO shop.bad VALUES (5, 2028, 'b5')");
    const streamed = await waitFor('bad 5 streamed', async () =>
      rowsOf(await h.readAll(), 'bad').find((e) => e.op === 'insert'),
    );
    expect(streamed.after).toMatchObject({ id: 5, v: 'b5' });
    expect(Number(streamed.after?.y)).toBe(2028);
    await waitFor('the lifted quarantine saved', async () => {
      return (await collectStatus(statusTarget(h))).producer.quarantined.length === 0;
    });
    expect(p2.output()).toMatch(/quarantine lifted/);
    p2.child.kill('SIGTERM');
    expect(await p2.exited).toBe(0);
  });
});
