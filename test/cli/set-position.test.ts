/**
 * `npx cdc set-position` against a real local pipeline (local/pipeline.ts): positions are checked with the server's
 * own view of its binlog (SHOW BINLOG EVENTS, BINLOG_GTID_POS), and moving back by GTID really re-sends what followed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePositionSpec, resolvePosition } from '../../cli/src/binlog-position';
import { CheckpointStore } from '../../containers/producer/src/checkpoint-store';
import { CHECKPOINT_TABLE, type Pipeline, producerDown, startPipeline } from '../../local/pipeline';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { sleep, waitFor } from '../../local/services/process';
import { type CdcRun, runCdc } from './support/run-cdc';

const dir = mkdtempSync(join(tmpdir(), 'cdc-setpos-'));
let p: Pipeline;
let db: mysql.Connection;
let endpoints: string;
/** The GTIDs of the two inserts into shop.moves. */
const gtids: string[] = [];

function cdc(...args: string[]): Promise<CdcRun> {
  return runCdc(endpoints, ...args);
}

interface BinlogEvent {
  Log_name: string;
  Pos: number;
  Event_type: string;
  End_log_pos: number;
  Info: string;
}

/** The events of the transaction with that GTID (its Gtid event first), from the server. */
async function eventsOf(gtid: string): Promise<BinlogEvent[]> {
  const [[end]] = (await db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string }]];
  const [events] = (await db.query('SHOW BINLOG EVENTS IN ?', [end.File])) as unknown as [BinlogEvent[]];
  const start = events.findIndex((e) => e.Event_type === 'Gtid' && e.Info.startsWith(`BEGIN GTID ${gtid}`));
  const next = events.findIndex((e, i) => i > start && e.Event_type === 'Gtid');
  return events.slice(start, next < 0 ? undefined : next);
}

/**
 * The Gtid event of the transaction that follows the one with that GTID: where that transaction ends. Not always the
 * second insert's: the initial snapshot's watermark writes may commit between the two inserts.
 */
async function nextTransactionStart(gtid: string): Promise<BinlogEvent> {
  const [[end]] = (await db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string }]];
  const [events] = (await db.query('SHOW BINLOG EVENTS IN ?', [end.File])) as unknown as [BinlogEvent[]];
  const start = events.findIndex((e) => e.Event_type === 'Gtid' && e.Info.startsWith(`BEGIN GTID ${gtid}`));
  return events.find((e, i) => i > start && e.Event_type === 'Gtid')!;
}

/** Change events the merge applied to shop.moves, re-deliveries included. */
async function appliedEvents(): Promise<number> {
  const r = await p.pool
    .query("SELECT COALESCE(SUM(events), 0) AS n FROM cdc.merge_batches WHERE source_table = 'moves'")
    .catch(() => ({ rows: [{ n: 0 }] }));
  return Number(r.rows[0].n);
}

beforeAll(async () => {
  p = await startPipeline({ dir, bufferMs: 300 });
  await p.startProducer();
  endpoints = join(dir, 'endpoints.json');
  writeFileSync(endpoints, JSON.stringify(p.endpoints));
  db = await mysql.createConnection({ ...p.endpoints.mysql });
  await db.query('CREATE TABLE shop.moves (id INT PRIMARY KEY, v VARCHAR(10))');
  for (const [id, v] of [
    [1, 'a'],
    [2, 'b'],
  ] as const) {
    await db.query('INSERT INTO shop.moves VALUES (?, ?)', [id, v]);
    const [[row]] = (await db.query('SELECT @@last_gtid AS g')) as unknown as [[{ g: string }]];
    gtids.push(row.g);
  }
  await waitFor('both inserts applied', async () => (await appliedEvents()) === 2, 60_000);
});
afterAll(async () => {
  await db?.end();
  await p?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('cdc set-position', () => {
  it('resolves a GTID to the end of its transaction, where the server’s BINLOG_GTID_POS names that GTID', async () => {
    const [first, second] = gtids as [string, string];
    const resolved = await resolvePosition(p.endpoints.mysql, parsePositionSpec(first));
    const [[server]] = (await db.query('SELECT BINLOG_GTID_POS(?, ?) AS g', [
      resolved.file,
      resolved.pos,
    ])) as unknown as [[{ g: string }]];
    expect(resolved.gtid).toBe(server.g);
    expect(server.g.split(',')).toContain(first);
    // Exactly the end of the first transaction: where the next one's Gtid event starts (the second insert's, unless
    // a snapshot watermark committed in between).
    const next = await nextTransactionStart(first);
    expect({ file: resolved.file, pos: resolved.pos }).toEqual({ file: next.Log_name, pos: next.Pos });
    expect((await eventsOf(second))[0]!.Pos).toBeGreaterThanOrEqual(next.Pos);
  });

  it('refuses a file:pos inside an event, or inside a transaction, naming the value', async () => {
    const [gtidEvent, ...rest] = await eventsOf(gtids[1]!);
    const mid = `${gtidEvent!.Log_name}:${gtidEvent!.Pos + 1}`;
    const r = await cdc('set-position', mid, '--yes');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${mid} is not the start of an event`);
    const tableMap = rest.find((e) => e.Event_type === 'Table_map')!;
    const inside = `${tableMap.Log_name}:${tableMap.Pos}`;
    const t = await cdc('set-position', inside, '--yes');
    expect(t.code).toBe(1);
    expect(t.stderr).toContain(`${inside} is inside a transaction (a Table_map event)`);
    // A transaction's first event is accepted (resolved, then left unconfirmed): the one right after the first insert.
    const next = await nextTransactionStart(gtids[0]!);
    const ok = await resolvePosition(p.endpoints.mysql, parsePositionSpec(`${next.Log_name}:${next.Pos}`));
    expect(ok.gtid?.split(',')).toContain(gtids[0]);
  });

  it('moving back by GTID sends the transactions after it again, and not that one', async () => {
    const startsBefore = p.stats.producerStarts;
    const moved = await cdc('set-position', gtids[0]!, '--yes', '--json');
    expect(moved.code, moved.stderr).toBe(0);
    expect(JSON.parse(moved.stdout)).toMatchObject({ applied: true });
    await waitFor('the producer to start again', async () => p.stats.producerStarts > startsBefore, 30_000);
    await waitFor('the second insert sent again', async () => (await appliedEvents()) >= 3, 60_000);
    await sleep(2000);
    expect(await appliedEvents()).toBe(3);
    const rows = await p.pool.query('SELECT id, v FROM shop.moves ORDER BY id');
    expect(rows.rows).toEqual([
      { id: 1, v: 'a' },
      { id: 2, v: 'b' },
    ]);
  });

  it('status shows a crash-looping producer as down, with its last error (a mid-event position written past the CLI)', async () => {
    // What set-position accepted before it checked event boundaries: the producer then fails at every start.
    const [gtidEvent] = await eventsOf(gtids[1]!);
    const store = new CheckpointStore({
      client: new DynamoDBClient(localAwsClientConfig(p.endpoints.aws.dynamodb)),
      tableName: CHECKPOINT_TABLE,
      pipelineId: 'local',
      owner: 'test',
    });
    await store.requestPosition({
      file: gtidEvent!.Log_name,
      pos: gtidEvent!.Pos + 1,
      gtid: null,
      requestedAt: Date.now(),
      reason: 'test: a position inside an event',
    });
    const report = await waitFor(
      'status to call the producer down',
      async () => {
        const r = await cdc('status', '--json');
        const json = JSON.parse(r.stdout) as { producer: { running: boolean; recentFailures: number } };
        return !json.producer.running && json.producer.recentFailures >= 2 ? json : undefined;
      },
      90_000,
    );
    expect(report.producer).toMatchObject({ running: false, secondsBehind: null, lastFailure: expect.any(String) });
    const human = await cdc('status');
    expect(human.stdout).toMatch(/producer: +DOWN: crash-looping \(\d+ failures in the last 10 min; last: .+\)/);
    expect(human.stdout).toMatch(/last errors:\n.*producer: /);
    // The local pipeline's own status line (`npm run local -- status`) says so too, instead of "0 s behind".
    expect(producerDown(p.stats)).toMatch(/^crash-looping \(\d+ failures in 2 min\); last error: /);
  });
});
