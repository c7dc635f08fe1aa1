/**
 * The merge Lambda's handler (real PostgreSQL, S3 emulator) given a changelog object holding dates no warehouse
 * holds: the replica gets NULL, and the handler counts each value as `ValuesNulled` (EMF, with the Pipeline
 * dimension) and logs it, instead of failing the record (which SQS would redeliver until the dead-letter queue).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { lakePartitionPrefix } from '../../shared/lake-layout';
import { MergeMetric, PIPELINE_DIMENSION } from '../../shared/metrics';
import { ndjson, TableEvents } from './support/event-factory';
import { type PgHarness, startPgHarness } from './support/postgres-merge';

const dir = mkdtempSync(join(tmpdir(), 'cdc-nulled-'));
let h: PgHarness;
let s3emu: Emulator;
let s3: S3Client;
let handler: (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;
const output: Record<string, unknown>[] = [];

beforeAll(async () => {
  [h, s3emu] = await Promise.all([startPgHarness(), startEmulator('s3', { dir })]);
  s3 = new S3Client(localAwsClientConfig(s3emu.endpoint));
  await s3.send(new CreateBucketCommand({ Bucket: 'lake' }));
  Object.assign(process.env, {
    WAREHOUSE: 'postgres',
    POSTGRES_URL: h.server.url,
    AWS_ENDPOINT_S3: s3emu.endpoint,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
    AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
    PIPELINE_ID: 'nulled-test',
  });
  // Powertools writes EMF and info logs to stdout, warnings and errors to stderr.
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (c: string | Uint8Array, ...r: unknown[]) => boolean;
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
      for (const line of String(chunk).split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          output.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a JSON line
        }
      }
      return write(chunk, ...rest);
    });
  }
  ({ handler } = await import('../../lambdas/merge/handler'));
});
afterAll(async () => {
  vi.restoreAllMocks();
  await Promise.all([h?.close(), s3emu?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('merge Lambda handler and dates the warehouse cannot hold', () => {
  it('stages an invalid and a partial zero date as NULL and counts each one as ValuesNulled, the record succeeding', async () => {
    await h.reset();
    const t = new TableEvents('shop', 'days', { id: 'int(11)', d: 'date', dt: 'datetime' });
    const key = `${lakePartitionPrefix(t.db, t.table, new Date())}days.gz`;
    const rows = [
      { id: 1, d: '2024-02-30', dt: '2024-01-01 10:00:00' },
      { id: 2, d: '2024-02-29', dt: '0001-00-00 00:00:00' },
    ];
    await s3.send(
      new PutObjectCommand({ Bucket: 'lake', Key: key, Body: gzipSync(ndjson(rows.map((r) => t.insert(r)))) }),
    );
    const event = {
      Records: [
        {
          messageId: 'm-1',
          body: JSON.stringify({
            Records: [
              {
                eventName: 'ObjectCreated:Put',
                s3: { bucket: { name: 'lake' }, object: { key: encodeURIComponent(key) } },
              },
            ],
          }),
        },
      ],
    } as unknown as SQSEvent;
    const context = { functionName: 'merge', awsRequestId: 'r-1', getRemainingTimeInMillis: () => 300_000 };
    const res = await handler(event, context as unknown as Context);
    expect(res.batchItemFailures).toEqual([]);
    expect(await h.rows('SELECT id, d::text AS d, dt::text AS dt FROM shop.days ORDER BY id')).toEqual([
      { id: 1, d: null, dt: '2024-01-01 10:00:00' },
      { id: 2, d: '2024-02-29', dt: null },
    ]);
    const counted = output
      .filter((d) => '_aws' in d && MergeMetric.ValuesNulled in d)
      .map((d) => ({ n: d[MergeMetric.ValuesNulled], pipeline: d[PIPELINE_DIMENSION] }));
    // Two values in one flush: Powertools aggregates them into one document holding both.
    expect(counted.flatMap((c) => (Array.isArray(c.n) ? c.n : [c.n])).reduce((a, b) => Number(a) + Number(b), 0)).toBe(
      2,
    );
    expect(counted.every((c) => c.pipeline === 'nulled-test')).toBe(true);
    const logged = output.filter((d) => d.message === 'date the warehouse cannot hold staged as NULL');
    expect(logged.map((d) => `${d.column} ${d.value} ${d.reason}`)).toEqual([
      'd 2024-02-30 invalid date',
      'dt 0001-00-00 00:00:00 zero date',
    ]);
  });
});
