/**
 * The merge Lambda's handler as Lambda runs it: a warm process invoked several times, SQS batches of S3
 * notifications, a Lambda context whose remaining time the test controls (the context is input, not a mock), real
 * PostgreSQL and an S3 emulator. What it proves: metrics keep their Pipeline dimension on every flush, records are
 * merged one after the other, records are not started when the invocation's time runs low, and dates no warehouse
 * holds are staged as NULL and counted (`ValuesNulled`) instead of failing the record.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { lakePartitionPrefix } from '../../shared/lake-layout';
import { MergeMetric, PIPELINE_DIMENSION } from '../../shared/metrics';
import { ndjson, TableEvents } from './support/event-factory';
import { type PgHarness, startPgHarness } from './support/postgres-merge';

const dir = mkdtempSync(join(tmpdir(), 'cdc-handler-'));
let h: PgHarness;
let s3emu: Emulator;
let s3: S3Client;
let handler: (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

/** Everything the process writes as JSON lines (EMF documents and structured logs). */
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
    PIPELINE_ID: 'handler-test',
    MIN_REMAINING_MS: '30000',
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
afterEach(() => {
  output.length = 0;
});
afterAll(async () => {
  vi.restoreAllMocks();
  await Promise.all([h?.close(), s3emu?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function object(t: TableEvents, name: string, rows: { id: number; name: string }[]): Promise<string> {
  const key = `${lakePartitionPrefix(t.db, t.table, new Date())}${name}.gz`;
  await s3.send(
    new PutObjectCommand({ Bucket: 'lake', Key: key, Body: gzipSync(ndjson(rows.map((r) => t.insert(r)))) }),
  );
  return key;
}

function sqsEvent(keys: readonly string[]): SQSEvent {
  return {
    Records: keys.map((key, i) => ({
      messageId: `m-${i + 1}`,
      body: JSON.stringify({
        Records: [
          {
            eventName: 'ObjectCreated:Put',
            s3: { bucket: { name: 'lake' }, object: { key: encodeURIComponent(key) } },
          },
        ],
      }),
    })),
  } as unknown as SQSEvent;
}

/** A Lambda context whose remaining time is whatever `remaining()` says when asked. */
function lambdaContext(remaining: () => number): Context {
  return {
    functionName: 'merge',
    awsRequestId: `r-${Math.random()}`,
    getRemainingTimeInMillis: remaining,
  } as unknown as Context;
}

const emf = () => output.filter((d) => '_aws' in d);
const mergedLogs = () => output.filter((d) => d.message === 'merged');

describe('merge Lambda handler', () => {
  it('keeps the Pipeline dimension on every metrics flush of a warm Lambda, per-table metrics included', async () => {
    await h.reset();
    const t = new TableEvents('shop', 'couriers', { id: 'int(11)', name: 'varchar(50)' });
    const ample = lambdaContext(() => 300_000);
    await handler(sqsEvent([await object(t, 'first', [{ id: 1, name: 'DHL' }])]), ample);
    const first = emf();
    output.length = 0;
    await handler(sqsEvent([await object(t, 'second', [{ id: 2, name: 'UPS' }])]), ample);
    const second = emf();
    expect(first.length).toBeGreaterThan(1);
    expect(second.length).toBeGreaterThan(1);
    for (const doc of [...first, ...second]) {
      expect(doc[PIPELINE_DIMENSION]).toBe('handler-test');
      const dims = (doc._aws as { CloudWatchMetrics: { Dimensions: string[][] }[] }).CloudWatchMetrics[0]!.Dimensions;
      expect(dims.flat()).toContain(PIPELINE_DIMENSION);
    }
    // Both kinds of document in the second flush: the batch totals and the per Table/Operation ones.
    expect(second.some((d) => d.Table === 'shop.couriers' && d.Operation === 'insert')).toBe(true);
    expect(second.some((d) => 'MergeBatchLatency' in d)).toBe(true);
  });

  it('merges the records of a batch one after the other and does not start one when the time left is too low', async () => {
    await h.reset();
    const t = new TableEvents('shop', 'items', { id: 'int(11)', name: 'varchar(50)' });
    const keys = [
      await object(t, 'a', [{ id: 1, name: 'a' }]),
      await object(t, 'b', [{ id: 2, name: 'b' }]),
      await object(t, 'c', [{ id: 3, name: 'c' }]),
    ];
    // The invocation's clock runs out as soon as one merge has completed: run in parallel, every record would have
    // started with time to spare; run one after the other, the second and third find too little time and are left
    // to SQS (reported as failures, redelivered after the visibility timeout).
    const ctx = lambdaContext(() => (mergedLogs().length === 0 ? 300_000 : 10_000));
    const res = await handler(sqsEvent(keys), ctx);
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: 'm-2' }, { itemIdentifier: 'm-3' }]);
    expect(await h.rows('SELECT id FROM shop.items ORDER BY id')).toEqual([{ id: 1 }]);
    expect(output.some((d) => d.message === 'not started: too little time left in this invocation')).toBe(true);
    // Deferred records are not merge errors (no alarm for a batch that simply did not fit in one invocation).
    expect(emf().some((d) => 'MergeErrors' in d)).toBe(false);

    // Redelivered with time to spare, they are merged.
    output.length = 0;
    const again = await handler(
      sqsEvent(keys.slice(1)),
      lambdaContext(() => 300_000),
    );
    expect(again.batchItemFailures).toEqual([]);
    expect(await h.rows('SELECT id FROM shop.items ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
  });

  it('reports every record as failed, without throwing, when the invocation starts with too little time', async () => {
    await h.reset();
    const t = new TableEvents('shop', 'late', { id: 'int(11)', name: 'varchar(50)' });
    const keys = [await object(t, 'x', [{ id: 1, name: 'x' }]), await object(t, 'y', [{ id: 2, name: 'y' }])];
    const res = await handler(
      sqsEvent(keys),
      lambdaContext(() => 5_000),
    );
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: 'm-1' }, { itemIdentifier: 'm-2' }]);
    expect(mergedLogs()).toEqual([]);
  });

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
    const res = await handler(
      sqsEvent([key]),
      lambdaContext(() => 300_000),
    );
    expect(res.batchItemFailures).toEqual([]);
    expect(await h.rows('SELECT id, d::text AS d, dt::text AS dt FROM shop.days ORDER BY id')).toEqual([
      { id: 1, d: null, dt: '2024-01-01 10:00:00' },
      { id: 2, d: '2024-02-29', dt: null },
    ]);
    const counted = emf()
      .filter((d) => MergeMetric.ValuesNulled in d)
      .map((d) => ({ n: d[MergeMetric.ValuesNulled], pipeline: d[PIPELINE_DIMENSION] }));
    // Two values in one flush: Powertools aggregates them into one document holding both.
    expect(counted.flatMap((c) => (Array.isArray(c.n) ? c.n : [c.n])).reduce((a, b) => Number(a) + Number(b), 0)).toBe(
      2,
    );
    expect(counted.every((c) => c.pipeline === 'handler-test')).toBe(true);
    const logged = output.filter((d) => d.message === 'date the warehouse cannot hold staged as NULL');
    expect(logged.map((d) => `${d.column} ${d.value} ${d.reason}`)).toEqual([
      'd 2024-02-30 invalid date',
      'dt 0001-00-00 00:00:00 zero date',
    ]);
  });
});
