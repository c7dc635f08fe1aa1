/**
 * The stream-apply Lambda's handler as Lambda runs it: a warm process, Kinesis events as the event source mapping
 * delivers them (base64 data, ReportBatchItemFailures answer), real PostgreSQL and an S3 emulator. What it proves:
 * a batch of several tables is merged and answered with no item failures, its metrics (rows per table, freshness)
 * carry the Pipeline dimension, and a handed-off object's message is one the lake path's handler reads.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MergeError } from '../../lambdas/merge/src/errors';
import { parseS3Notification, s3NotificationBody } from '../../lambdas/merge/src/s3-notification';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import type { ChangeEvent } from '../../shared/change-event';
import { MergeMetric, PIPELINE_DIMENSION } from '../../shared/metrics';
import { TableEvents } from './support/event-factory';
import { type PgHarness, startPgHarness } from './support/postgres-merge';

const dir = mkdtempSync(join(tmpdir(), 'cdc-stream-handler-'));
let h: PgHarness;
let s3emu: Emulator;
let handler: (event: KinesisStreamEvent, context: Context) => Promise<KinesisStreamBatchResponse>;
const output: Record<string, unknown>[] = [];
const env = () => ({
  WAREHOUSE: 'postgres',
  POSTGRES_URL: h.server.url,
  AWS_ENDPOINT_S3: s3emu.endpoint,
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
  AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
  AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
  PIPELINE_ID: 'stream-test',
  LAKE_BUCKET: 'lake',
  HANDOFF_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/merge',
  DEAD_LETTER_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/merge-dlq',
  TABLES_PER_TRANSACTION: '4',
});

beforeAll(async () => {
  [h, s3emu] = await Promise.all([startPgHarness(), startEmulator('s3', { dir })]);
  const s3 = new S3Client(localAwsClientConfig(s3emu.endpoint));
  await s3.send(new CreateBucketCommand({ Bucket: 'lake' }));
  const write = process.stdout.write.bind(process.stdout) as (c: string | Uint8Array, ...r: unknown[]) => boolean;
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
    for (const line of String(chunk).split('\n')) {
      if (line.startsWith('{')) output.push(JSON.parse(line) as Record<string, unknown>);
    }
    return write(chunk, ...rest);
  });
});
afterAll(async () => {
  vi.restoreAllMocks();
  await Promise.all([h?.close(), s3emu?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

function kinesisEvent(events: readonly ChangeEvent[]): KinesisStreamEvent {
  return {
    Records: events.map((e, i) => ({
      eventID: `shardId-000000000001:${1000 + i}`,
      eventSource: 'aws:kinesis',
      kinesis: {
        sequenceNumber: String(1000 + i),
        partitionKey: `${e.db}.${e.table}`,
        data: Buffer.from(JSON.stringify(e)).toString('base64'),
        approximateArrivalTimestamp: Date.now() / 1000,
        kinesisSchemaVersion: '1.0',
      },
    })),
  } as unknown as KinesisStreamEvent;
}

describe('stream-apply Lambda handler', () => {
  it('refuses to start without the lake bucket and the queues, naming the variable', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, env());
    delete process.env.HANDOFF_QUEUE_URL;
    vi.resetModules();
    await expect(import('../../lambdas/merge/stream-handler')).rejects.toThrow(
      new MergeError('CONFIG_INVALID', 'invalid stream-apply configuration: HANDOFF_QUEUE_URL=null: is required'),
    );
    process.env = saved;
  });

  it('merges a batch of several tables, answers without item failures, and reports rows and freshness per Pipeline', async () => {
    Object.assign(process.env, env());
    vi.resetModules();
    ({ handler } = await import('../../lambdas/merge/stream-handler'));
    const orders = new TableEvents('shop', 'orders', { id: 'int(11)', total: 'int(11)' });
    const lines = new TableEvents('shop', 'lines', { id: 'int(11)', qty: 'int(11)' });
    const res = await handler(
      kinesisEvent([
        orders.insert({ id: 1, total: 5 }),
        lines.insert({ id: 1, qty: 2 }),
        orders.update({ id: 1, total: 5 }, { id: 1, total: 7 }),
      ]),
      { functionName: 'stream-apply', getRemainingTimeInMillis: () => 60_000 } as unknown as Context,
    );
    expect(res).toEqual({ batchItemFailures: [] });
    expect(await h.rows('SELECT id, total FROM shop.orders')).toEqual([{ id: 1, total: 7 }]);
    expect(await h.rows('SELECT id, qty FROM shop.lines')).toEqual([{ id: 1, qty: 2 }]);
    const emf = output.filter((d) => '_aws' in d);
    expect(emf.length).toBeGreaterThan(0);
    for (const doc of emf) expect(doc[PIPELINE_DIMENSION]).toBe('stream-test');
    expect(emf.some((d) => d.Table === 'shop.orders' && d.Operation === 'update')).toBe(true);
    expect(emf.some((d) => MergeMetric.ReplicaFreshness in d)).toBe(true);
  });

  it("queues a handed-off object with a message the lake path's handler reads as an S3 notification", () => {
    const ref = { bucket: 'lake', key: 'handoff/source_db=shop/source_table=my table/dt=2026-11-30/hour=20/x.gz' };
    expect(parseS3Notification(s3NotificationBody(ref))).toEqual([ref]);
  });
});
