import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Context, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyObject } from '../../lambdas/merge/src/apply-object';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { lakePartitionPrefix } from '../../shared/lake-layout';
import { ndjson, TableEvents } from './support/event-factory';
import { type PgHarness, startPgHarness } from './support/postgres-merge';

const dir = mkdtempSync(join(tmpdir(), 'cdc-apply-'));
let h: PgHarness;
let s3emu: Emulator;
let s3: S3Client;

beforeAll(async () => {
  [h, s3emu] = await Promise.all([startPgHarness(), startEmulator('s3', { dir })]);
  s3 = new S3Client(localAwsClientConfig(s3emu.endpoint));
  await s3.send(new CreateBucketCommand({ Bucket: 'lake' }));
});
afterAll(async () => {
  await Promise.all([h?.close(), s3emu?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function put(key: string, body: string | Buffer): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: 'lake', Key: key, Body: body }));
}

function notification(key: string): string {
  return JSON.stringify({
    Records: [
      { eventName: 'ObjectCreated:Put', s3: { bucket: { name: 'lake' }, object: { key: encodeURIComponent(key) } } },
    ],
  });
}

describe('applying changelog objects', () => {
  it('merges a gzip NDJSON object written with the lake layout, and resolves claim-checked events', async () => {
    await h.reset();
    const t = new TableEvents('shop', 'items', { id: 'int(11)', name: 'varchar(50)' });
    const big = t.insert({ id: 2, name: 'parked in S3' });
    await put('claim-check/big.json', JSON.stringify(big));
    const pointer = { ...big, after: null, claim_check: { bucket: 'lake', key: 'claim-check/big.json', bytes: 1 } };
    const key = `${lakePartitionPrefix('shop', 'items', new Date())}obj-1.gz`;
    await put(key, gzipSync(ndjson([t.insert({ id: 1, name: 'a' }), pointer])));
    const results = await applyObject({ bucket: 'lake', key }, s3, h.ctx());
    expect(results).toMatchObject([{ db: 'shop', table: 'items', events: 2, byOp: { insert: 2 } }]);
    expect(await h.rows('SELECT id, name FROM shop.items ORDER BY id')).toEqual([
      { id: 1, name: 'a' },
      { id: 2, name: 'parked in S3' },
    ]);
  });

  it('reports a poison object as a failed item with its reason while other objects are merged', async () => {
    await h.reset();
    const t = new TableEvents('shop', 'couriers', { id: 'int(11)', name: 'varchar(50)' });
    const good = `${lakePartitionPrefix('shop', 'couriers', new Date())}good.gz`;
    const bad = `${lakePartitionPrefix('shop', 'broken', new Date())}bad.gz`;
    await put(good, gzipSync(ndjson([t.insert({ id: 1, name: 'DHL' })])));
    await put(bad, gzipSync(`${JSON.stringify(t.insert({ id: 9, name: 'x' }))}\n{"v":1,"op":"insert",truncated`));

    process.env.WAREHOUSE = 'postgres';
    process.env.POSTGRES_URL = h.server.url;
    process.env.AWS_ENDPOINT_S3 = s3emu.endpoint;
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    process.env.AWS_REGION = 'us-east-1';
    process.env.AWS_REQUEST_CHECKSUM_CALCULATION = 'WHEN_REQUIRED';
    process.env.AWS_RESPONSE_CHECKSUM_VALIDATION = 'WHEN_REQUIRED';
    process.env.PIPELINE_ID = 'test';
    const { handler } = await import('../../lambdas/merge/handler');
    const event = {
      Records: [
        { messageId: 'm-bad', body: notification(bad) },
        { messageId: 'm-good', body: notification(good) },
        { messageId: 'm-test', body: JSON.stringify({ Event: 's3:TestEvent' }) },
      ],
    } as unknown as SQSEvent;
    const res = await handler(event, { functionName: 'merge', awsRequestId: 'r1' } as Context);
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: 'm-bad' }]);
    expect(await h.rows('SELECT id, name FROM shop.couriers')).toEqual([{ id: 1, name: 'DHL' }]);
    // The reason the dead-letter message carries names the object, the line and what is wrong.
    await expect(applyObject({ bucket: 'lake', key: bad }, s3, h.ctx())).rejects.toThrow(
      /BATCH_UNDECODABLE: s3:\/\/lake\/changelog\/source_db=shop\/source_table=broken\/.*bad.gz line 2: not JSON/,
    );
  });
});
