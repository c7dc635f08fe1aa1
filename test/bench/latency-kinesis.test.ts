import { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkPerKeyOrder,
  type LatencyKinesis,
  startLatencyKinesis,
  startLatencyKinesisInWorker,
} from '../../bench/support/latency-kinesis';
import { localAwsClientConfig } from '../../local/services/aws-config';

let open: LatencyKinesis[] = [];
afterEach(async () => {
  await Promise.all(open.map((k) => k.close()));
  open = [];
});

async function start(options: Parameters<typeof startLatencyKinesis>[0]) {
  const k = await startLatencyKinesis(options);
  open.push(k);
  return { k, client: new KinesisClient(localAwsClientConfig(k.endpoint)) };
}

/** A change event's encoding as the producer writes it (only `position` matters to the stand-in). */
function event(n: number): Uint8Array {
  const position = `000001.${String(100 + n).padStart(12, '0')}.00000000`;
  return Buffer.from(
    `{"v":1,"op":"insert","db":"d","table":"t","after":{"id":${n}},"position":"${position}","ts_ms":1}\n`,
  );
}

describe('the latency Kinesis stand-in', () => {
  it('answers a PutRecords through the real SDK with throttled entries shaped as AWS shapes them', async () => {
    const { k, client } = await start({ delayMs: 0, throttleShare: 0.3, seed: 7 });
    const res = await client.send(
      new PutRecordsCommand({
        StreamName: 's',
        Records: Array.from({ length: 200 }, (_, i) => ({ PartitionKey: `k${i % 10}`, Data: event(i) })),
      }),
    );
    const failed = res.Records!.filter((r) => r.ErrorCode);
    expect(res.Records).toHaveLength(200);
    expect(failed.length).toBeGreaterThan(30);
    expect(failed.length).toBeLessThan(90);
    expect(res.FailedRecordCount).toBe(failed.length);
    for (const r of failed) {
      expect(r.ErrorCode).toBe('ProvisionedThroughputExceededException');
      expect(r.ErrorMessage).toMatch(/stream s /);
      expect(r.SequenceNumber).toBeUndefined();
    }
    const written = res.Records!.filter((r) => !r.ErrorCode);
    expect(written.every((r) => /^[1-9]\d*$/.test(r.SequenceNumber!) && r.ShardId === 'shardId-000000000000')).toBe(
      true,
    );
    // It keeps exactly the written entries, with the position read from their data.
    const ds = await k.deliveries();
    expect(ds).toHaveLength(written.length);
    const firstWritten = res.Records!.findIndex((r) => !r.ErrorCode);
    expect(ds[0]).toEqual({
      partitionKey: `k${firstWritten % 10}`,
      position: `000001.${String(100 + firstWritten).padStart(12, '0')}.00000000`,
    });
    expect(await k.stats()).toMatchObject({
      calls: 1,
      entries: 200,
      written: written.length,
      throttled: failed.length,
    });
  });

  it('waits at least the configured delay before answering each call', async () => {
    const { client } = await start({ delayMs: 120 });
    const t0 = performance.now();
    await client.send(new PutRecordsCommand({ StreamName: 's', Records: [{ PartitionKey: 'a', Data: event(1) }] }));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(115);
  });

  it('counts calls in flight at once and calls that overlap on a partition key', async () => {
    const { k, client } = await start({ delayMs: 100 });
    const put = (key: string, n: number) =>
      client.send(new PutRecordsCommand({ StreamName: 's', Records: [{ PartitionKey: key, Data: event(n) }] }));
    await Promise.all([put('a', 1), put('b', 2), put('c', 3)]);
    expect(await k.stats()).toMatchObject({ maxCallsInFlight: 3, sameKeyOverlaps: 0 });
    await Promise.all([put('a', 4), put('a', 5)]);
    expect((await k.stats()).sameKeyOverlaps).toBe(1);
  });

  it('fails whole calls with InternalFailure, which the SDK reports after its own retries', async () => {
    const { k, client } = await start({ delayMs: 0, failCallShare: 1 });
    await expect(
      client.send(new PutRecordsCommand({ StreamName: 's', Records: [{ PartitionKey: 'a', Data: event(1) }] })),
    ).rejects.toMatchObject({ name: 'InternalFailure', $metadata: { httpStatusCode: 500 } });
    expect(await k.stats()).toMatchObject({ calls: 3, failedCalls: 3, written: 0 });
    expect(await k.deliveries()).toEqual([]);
  });

  it('forgets every call on reset (after a warm-up) and counts from there', async () => {
    const k = await startLatencyKinesisInWorker({ delayMs: 0 });
    open.push(k);
    const client = new KinesisClient(localAwsClientConfig(k.endpoint));
    const put = (from: number) =>
      client.send(
        new PutRecordsCommand({
          StreamName: 's',
          Records: [0, 1, 2].map((i) => ({ PartitionKey: `k${from + i}`, Data: event(from + i) })),
        }),
      );
    await put(0);
    await k.reset();
    expect(await k.deliveries()).toEqual([]);
    expect(await k.stats()).toMatchObject({ calls: 0, entries: 0, written: 0 });
    await put(10);
    expect((await k.deliveries()).map((d) => d.partitionKey)).toEqual(['k10', 'k11', 'k12']);
    expect(await k.stats()).toMatchObject({ calls: 1, entries: 3, written: 3 });
  });

  it('refuses a setting out of range, naming the field and the value', async () => {
    await expect(startLatencyKinesis({ throttleShare: 1.5 })).rejects.toThrow(
      'throttleShare must be between 0 and 1, got 1.5',
    );
    await expect(startLatencyKinesis({ delayMs: -1 })).rejects.toThrow('delayMs must be a finite number ≥ 0, got -1');
  });

  it('serves the same protocol from a worker thread and hands its deliveries back', async () => {
    const k = await startLatencyKinesisInWorker({ delayMs: 10, throttleShare: 0 });
    open.push(k);
    const client = new KinesisClient(localAwsClientConfig(k.endpoint));
    const res = await client.send(
      new PutRecordsCommand({ StreamName: 's', Records: [1, 2].map((n) => ({ PartitionKey: 'a', Data: event(n) })) }),
    );
    expect(res.FailedRecordCount).toBe(0);
    expect((await k.deliveries()).map((d) => d.position)).toEqual([
      '000001.000000000101.00000000',
      '000001.000000000102.00000000',
    ]);
  });
});

describe('the per-key order check', () => {
  const d = (partitionKey: string, position: string) => ({ partitionKey, position });

  it('accepts a resend from the first failure on that repeats records of the key', () => {
    // a2 throttled: a1 and a3 written, then a2 and a3 sent again; b is interleaved and in order.
    const report = checkPerKeyOrder([d('a', '1'), d('b', '1'), d('a', '3'), d('a', '2'), d('b', '2'), d('a', '3')]);
    expect(report).toMatchObject({ partitionKeys: 2, records: 5, deliveries: 6, repeats: 1, violations: 0 });
  });

  it('catches a record last delivered after a later one of its key (resending only the failed entry)', () => {
    const report = checkPerKeyOrder([d('a', '1'), d('a', '3'), d('a', '2'), d('b', '1')]);
    expect(report.violations).toBe(1);
    expect(report.examples).toEqual([{ partitionKey: 'a', position: '3', before: '2' }]);
  });

  it('catches an out-of-order delivery received by the stand-in through the SDK', async () => {
    const { k, client } = await start({ delayMs: 0 });
    const send = (ns: number[]) =>
      client.send(
        new PutRecordsCommand({ StreamName: 's', Records: ns.map((n) => ({ PartitionKey: 'a', Data: event(n) })) }),
      );
    await send([1, 2]);
    await send([4, 3]);
    const report = checkPerKeyOrder(await k.deliveries());
    expect(report).toMatchObject({ records: 4, violations: 1 });
  });
});
