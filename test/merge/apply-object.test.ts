import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CreateBucketCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import type { Context, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyObject, processObject } from '../../lambdas/merge/src/apply-object';
import { PoisonBatchError, RetriableMergeError } from '../../lambdas/merge/src/errors';
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

  describe('claim-check objects that cannot be read', () => {
    const t = new TableEvents('shop', 'parcels', { id: 'int(11)', label: 'varchar(50)' });

    /** A changelog object holding one pointer to `claimKey` (written or not, as the test arranges). */
    async function objectPointingTo(claimKey: string, name: string): Promise<string> {
      const pointer = {
        ...t.insert({ id: 1, label: 'big' }),
        after: null,
        claim_check: { bucket: 'lake', key: claimKey, bytes: 2_000_000 },
      };
      const key = `${lakePartitionPrefix('shop', 'parcels', new Date())}${name}.gz`;
      await put(key, gzipSync(ndjson([pointer])));
      return key;
    }

    /** The same emulator behind a client that fails the next `n` reads of `claimKey` with `fault`. */
    function faultyClient(claimKey: string, fault: () => Error, n: number): S3Client {
      const client = new S3Client(localAwsClientConfig(s3emu.endpoint));
      let left = n;
      client.middlewareStack.add(
        (next) => async (args) => {
          const input = args.input as { Key?: string };
          if (input.Key === claimKey && left > 0) {
            left--;
            throw fault();
          }
          return next(args);
        },
        { step: 'initialize', name: 'injectFault' },
      );
      return client;
    }

    it('sets aside a pointer whose object does not exist (S3 is read-after-write consistent: it will not appear)', async () => {
      await h.reset();
      const key = await objectPointingTo('claim-check/never-written.json', 'missing');
      const err = await applyObject({ bucket: 'lake', key }, s3, h.ctx()).catch((e: Error) => e);
      expect(err).toBeInstanceOf(PoisonBatchError);
      expect((err as Error).message).toMatch(
        /^OBJECT_MISSING: s3:\/\/lake\/changelog\/.*missing.gz event 1: claim-check object s3:\/\/lake\/claim-check\/never-written.json does not exist/,
      );
    });

    it('sets aside a claim-check object that is not a change event', async () => {
      await h.reset();
      await put('claim-check/corrupt.json', '{"v":1,"op":"insert","db":"shop",trunc');
      const key = await objectPointingTo('claim-check/corrupt.json', 'corrupt');
      const err = await applyObject({ bucket: 'lake', key }, s3, h.ctx()).catch((e: Error) => e);
      expect(err).toBeInstanceOf(PoisonBatchError);
      expect((err as Error).message).toMatch(
        /^BATCH_UNDECODABLE: s3:\/\/lake\/claim-check\/corrupt.json line 1: not JSON/,
      );
    });

    it('retries, and then applies, a claim check whose read failed for a transient reason (throttling, 5xx, network)', async () => {
      await h.reset();
      await put('claim-check/ok.json', JSON.stringify(t.insert({ id: 7, label: 'parked' })));
      const key = await objectPointingTo('claim-check/ok.json', 'transient');
      const faults: (() => Error)[] = [
        () =>
          new S3ServiceException({
            name: 'SlowDown',
            $fault: 'server',
            $metadata: { httpStatusCode: 503 },
            message: 'Please reduce your request rate.',
          }),
        () =>
          new S3ServiceException({
            name: 'InternalError',
            $fault: 'server',
            $metadata: { httpStatusCode: 500 },
            message: 'We encountered an internal error. Please try again.',
          }),
        () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      ];
      for (const fault of faults) {
        const err = await applyObject(
          { bucket: 'lake', key },
          faultyClient('claim-check/ok.json', fault, 1),
          h.ctx(),
        ).catch((e: Error) => e);
        expect(err).toBeInstanceOf(RetriableMergeError);
        expect((err as Error).message).toMatch(
          /^OBJECT_UNREADABLE: .*claim-check object s3:\/\/lake\/claim-check\/ok.json could not be read/,
        );
      }
      // Nothing was applied (the replica table is not even created before the whole object is read).
      expect(await h.rows("SELECT to_regclass('shop.parcels') AS t")).toEqual([{ t: null }]);
      // The retry SQS makes: the fault is gone, the object is applied.
      await applyObject({ bucket: 'lake', key }, s3, h.ctx());
      expect(await h.rows('SELECT id, label FROM shop.parcels')).toEqual([{ id: 7, label: 'parked' }]);
    });

    it('sets aside a changelog object whose gzip is corrupt, and retries one whose read failed', async () => {
      await h.reset();
      const key = `${lakePartitionPrefix('shop', 'parcels', new Date())}bad-gzip.gz`;
      await put(key, Buffer.concat([gzipSync(ndjson([t.insert({ id: 1, label: 'x' })])).subarray(0, 20)]));
      const bad = await applyObject({ bucket: 'lake', key }, s3, h.ctx()).catch((e: Error) => e);
      expect(bad).toBeInstanceOf(PoisonBatchError);
      expect((bad as Error).message).toMatch(/^BATCH_UNDECODABLE: s3:\/\/lake\/.*bad-gzip.gz: not a readable gzip/);
      const good = await objectPointingTo('claim-check/ok.json', 'read-fails');
      const flaky = faultyClient(good, () => Object.assign(new Error('read ETIMEDOUT'), { code: 'ETIMEDOUT' }), 1);
      const err = await applyObject({ bucket: 'lake', key: good }, flaky, h.ctx()).catch((e: Error) => e);
      expect(err).toBeInstanceOf(RetriableMergeError);
    });

    it('classifies an object once for every runtime: merged with its events, poison or retriable with the reason', async () => {
      await h.reset();
      // Poison: never retried by any runtime (the Lambda dead-letters it, the local stand-in sets it aside at once).
      const missing = await objectPointingTo('claim-check/absent.json', 'classify-missing');
      const poison = await processObject({ bucket: 'lake', key: missing }, s3, h.ctx());
      expect(poison).toMatchObject({ kind: 'poison', reason: expect.stringMatching(/^OBJECT_MISSING: /) });
      if (poison.kind === 'poison') expect(poison.error).toBeInstanceOf(PoisonBatchError);
      // Retriable: the read failed for a reason outside the object.
      await put('claim-check/classified.json', JSON.stringify(t.insert({ id: 3, label: 'parked' })));
      const key = await objectPointingTo('claim-check/classified.json', 'classify-flaky');
      const flaky = faultyClient('claim-check/classified.json', () => new Error('read ECONNRESET'), 1);
      const retriable = await processObject({ bucket: 'lake', key }, flaky, h.ctx());
      expect(retriable).toMatchObject({ kind: 'retriable', reason: expect.stringMatching(/^OBJECT_UNREADABLE: /) });
      // Merged: the results and the events applied (claim checks resolved), so no caller reads the object again.
      const merged = await processObject({ bucket: 'lake', key }, flaky, h.ctx());
      expect(merged).toMatchObject({
        kind: 'merged',
        results: [{ db: 'shop', table: 'parcels', events: 1 }],
        events: [{ op: 'insert', after: { id: 3, label: 'parked' } }],
      });
      expect(await h.rows('SELECT id, label FROM shop.parcels')).toEqual([{ id: 3, label: 'parked' }]);
    });
  });
});
