/**
 * Issue 10, observed item 3, end to end with the values coming from the server: a DATE MariaDB stores under sql_mode
 * ALLOW_INVALID_DATES (`2024-02-30`) goes through the real producer (binlog → kinesalite) and the Firehose stand-in
 * into the real merge on PostgreSQL. It must become NULL in the replica (counted), keep its text in the lake, and not
 * hold back a table written after it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureDateValues, type NulledValue } from '../../lambdas/merge/src/date-values';
import { PostgresWarehouse } from '../../lambdas/merge/src/postgres-client';
import { LocalFirehose } from '../../local/firehose';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { type PostgresServer, startPostgres } from '../../local/services/postgres';
import { waitFor } from '../../local/services/process';
import { type ProducerHarness, startProducerHarness, waitForLog } from '../producer/support/harness';

const dir = mkdtempSync(join(tmpdir(), 'cdc-dates-'));
let h: ProducerHarness;
let s3Emu: Emulator;
let postgres: PostgresServer;
let s3: S3Client;
let pool: pg.Pool;
const nulled: NulledValue[] = [];

beforeAll(async () => {
  [h, s3Emu, postgres] = await Promise.all([
    startProducerHarness(),
    startEmulator('s3', { dir: join(dir, 's3') }),
    startPostgres({ dir: join(dir, 'pg') }),
  ]);
  s3 = new S3Client(localAwsClientConfig(s3Emu.endpoint));
  await s3.send(new CreateBucketCommand({ Bucket: 'lake' }));
  pool = new pg.Pool({ connectionString: postgres.url, max: 4 });
  configureDateValues({ onNulled: (v) => nulled.push(v) });
  await h.db.query('CREATE DATABASE shop');
  await waitForLog(h.startProducer(), /reading the binlog/);
});
afterAll(async () => {
  configureDateValues({});
  await pool?.end();
  await Promise.all([h?.close(), s3Emu?.stop(), postgres?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('a date the warehouse cannot hold, from a real MariaDB', () => {
  it('replicates a DATE 2024-02-30 written under ALLOW_INVALID_DATES as NULL, counted, without stalling a later table', async () => {
    await h.db.query('CREATE TABLE shop.days (id INT PRIMARY KEY, d DATE NOT NULL, note VARCHAR(10))');
    await h.db.query("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'");
    await h.db.query("INSERT INTO shop.days VALUES (1, '2024-02-30', 'feb30'), (2, '2024-02-29', 'leap')");
    const [[stored]] = (await h.db.query("SELECT DATE_FORMAT(d, '%Y-%m-%d') AS d FROM shop.days WHERE id = 1")) as [
      [{ d: string }],
      unknown,
    ];
    expect(stored.d).toBe('2024-02-30'); // the server really holds it
    await h.db.query('CREATE TABLE shop.later (id INT PRIMARY KEY, v VARCHAR(10))');
    await h.db.query("INSERT INTO shop.later VALUES (1, 'after')");

    const fh = new LocalFirehose({
      kinesis: h.kinesis,
      s3,
      pool,
      streamName: 'changes',
      bucket: 'lake',
      changelogSchema: 'cdc',
      merge: { warehouse: new PostgresWarehouse(pool), naming: { stateSchema: 'cdc' }, historyTables: new Set() },
      stateFile: join(dir, 'firehose-state.json'),
      bufferMs: 200,
      maxDeliveryAttempts: 2,
      retryBackoffMs: 100,
    });
    await fh.start();
    try {
      await waitFor('the later table merged', async () => {
        const res = await pool.query('SELECT v FROM shop.later').catch(() => ({ rows: [] }));
        return res.rows.length === 1;
      });
      await waitFor('both days rows merged', async () => {
        const res = await pool.query('SELECT id FROM shop.days').catch(() => ({ rows: [] }));
        return res.rows.length === 2;
      });
    } finally {
      await fh.stop();
    }
    const days = await pool.query('SELECT id, d::text AS d, note FROM shop.days ORDER BY id');
    expect(days.rows).toEqual([
      { id: 1, d: null, note: 'feb30' },
      { id: 2, d: '2024-02-29', note: 'leap' },
    ]);
    expect(nulled).toHaveLength(1);
    expect(nulled[0]).toMatchObject({ column: 'd', value: '2024-02-30', reason: 'invalid date' });
    // Nothing set aside, and the lake keeps the original text.
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'lake' }));
    const keys = (listed.Contents ?? []).map((o) => o.Key!);
    expect(keys.filter((k) => k.startsWith('errors/'))).toEqual([]);
    const daysKey = keys.find((k) => k.includes('source_table=days'))!;
    const obj = await s3.send(new GetObjectCommand({ Bucket: 'lake', Key: daysKey }));
    const text = gunzipSync(await obj.Body!.transformToByteArray()).toString('utf8');
    expect(text).toContain('"d":"2024-02-30"');
  });
});
