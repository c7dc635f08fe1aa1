/**
 * A start position inside an event is not a purged binlog: the producer refuses it with its own code,
 * POSITION_NOT_AN_EVENT_BOUNDARY, and says how to move to a boundary, instead of the misleading
 * `BINLOG_PURGED … truncated in the middle of event` (and a BinlogPurged alarm) it gave before. A binlog that is really
 * gone still gives BINLOG_PURGED. Real MariaDB, kinesalite and dynalite; the position arrives as an operator's
 * `npx cdc set-position` request (the checkpoint item), as in the report, and as START_FROM.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointStore } from '../../containers/producer/src/checkpoint-store';
import { waitFor } from '../../local/services/process';
import { type ProducerHarness, startProducerHarness } from './support/harness';

let h: ProducerHarness;
/** An event boundary of the current binlog, and a position 10 bytes inside the event that starts there. */
let file: string;
let boundary: number;

beforeAll(async () => {
  h = await startProducerHarness();
  await h.db.query(
    "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(200)); INSERT INTO shop.t VALUES (1, REPEAT('x', 150))",
  );
  const [status] = await h.db.query('SHOW MASTER STATUS');
  file = (status as { File: string }[])[0]!.File;
  const [events] = await h.db.query(`SHOW BINLOG EVENTS IN '${file}'`);
  // The last Write_rows event: more than 10 bytes long, so pos + 10 is inside it.
  const rows = (events as { Pos: number; End_log_pos: number; Event_type: string }[]).filter((e) =>
    /Write_rows/.test(e.Event_type),
  );
  boundary = rows.at(-1)!.Pos;
  expect(rows.at(-1)!.End_log_pos - boundary).toBeGreaterThan(20);
});

afterAll(async () => {
  await h?.close();
});

/** Each refused producer keeps its lease (LEASE_SECONDS=2) until it lapses: the next one waits for that. */
async function start(extra: Record<string, string> = {}) {
  await new Promise((r) => setTimeout(r, 2_500));
  return h.startProducer({ LEASE_SECONDS: '2', ...extra });
}

const store = () =>
  new CheckpointStore({ client: h.dynamo, tableName: 'cdc-checkpoints', pipelineId: 'test', owner: 'cli' });

describe('the producer started at a binlog position', () => {
  it('refuses a position inside an event as not an event boundary (not as a purged binlog), naming set-position', async () => {
    const pos = boundary + 10;
    await store().requestPosition({ file, pos, gtid: null, requestedAt: Date.now(), reason: 'test' });
    const p = await start();
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(
      new RegExp(`POSITION_NOT_AN_EVENT_BOUNDARY: ${file.replace('.', '\\.')}:${pos} is not the start of an event`),
    );
    expect(p.output()).toMatch(/npx cdc set-position/);
    expect(p.output()).not.toMatch(/BINLOG_PURGED/);
    expect(p.output()).not.toMatch(/"BinlogPurged":1/);
    expect(p.output()).toMatch(/"ProducerErrors":1/);

    const q = await start({ START_FROM: `file:${file}:${pos}` });
    expect(await q.exited).toBe(1);
    expect(q.output()).toMatch(/POSITION_NOT_AN_EVENT_BOUNDARY/);
    expect(q.output()).not.toMatch(/BINLOG_PURGED/);
  });

  it('starts at an event boundary of the same file', async () => {
    const p = await start({ START_FROM: `file:${file}:${boundary}` });
    await expect.poll(() => p.output(), { timeout: 30_000 }).toMatch(/reading the binlog/);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.output()).not.toMatch(/POSITION_NOT_AN_EVENT_BOUNDARY|BINLOG_PURGED/);
  });

  it('still reports a binlog that is really gone as BINLOG_PURGED', async () => {
    // The server keeps a binlog a replication connection still reads (the previous test's producer, until the server
    // notices it is gone): purge again until the file is really gone, so the producer below meets a purged binlog.
    await waitFor(
      `${file} to be purged`,
      async () => {
        await h.db.query('FLUSH BINARY LOGS');
        const [status] = await h.db.query('SHOW MASTER STATUS');
        await h.db.query(`PURGE BINARY LOGS TO '${(status as { File: string }[])[0]!.File}'`);
        const [logs] = await h.db.query('SHOW BINARY LOGS');
        return !(logs as { Log_name: string }[]).some((l) => l.Log_name === file);
      },
      30_000,
    );
    await store().requestPosition({ file, pos: boundary, gtid: null, requestedAt: Date.now(), reason: 'test' });
    const p = await start();
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(
      new RegExp(`BINLOG_PURGED: binlog ${file.replace('.', '\\.')} \\(position ${boundary}\\)`),
    );
    expect(p.output()).toMatch(/"BinlogPurged":1/);
    expect(p.output()).not.toMatch(/POSITION_NOT_AN_EVENT_BOUNDARY/);
  });
});
