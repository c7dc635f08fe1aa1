import {
  CreateStreamCommand,
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KinesisSink } from '../../containers/producer/src/kinesis-sink';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';

let emu: Emulator;
let real: KinesisClient;
beforeAll(async () => {
  emu = await startEmulator('kinesis');
  real = new KinesisClient(localAwsClientConfig(emu.endpoint));
});
afterAll(async () => {
  await emu?.stop();
});

/**
 * Fault injection the emulator cannot produce on demand: the wrapped client sends every PutRecords to kinesalite,
 * but first removes some entries and reports them as failed (throttled or internal error), exactly as Kinesis does
 * for a partial failure: the other entries of the same call are written.
 */
function faulty(
  failWhen: (call: number, index: number) => 'ProvisionedThroughputExceededException' | 'InternalFailure' | undefined,
) {
  let call = 0;
  return {
    send: async (cmd: PutRecordsCommand) => {
      call++;
      const entries = cmd.input.Records ?? [];
      const verdict = entries.map((_, i) => failWhen(call, i));
      const keep = entries.filter((_, i) => !verdict[i]);
      const res =
        keep.length > 0 ? await real.send(new PutRecordsCommand({ ...cmd.input, Records: keep })) : { Records: [] };
      let k = 0;
      return {
        FailedRecordCount: verdict.filter(Boolean).length,
        Records: verdict.map((v) => (v ? { ErrorCode: v, ErrorMessage: 'injected' } : res.Records![k++]!)),
      };
    },
  } as unknown as KinesisClient;
}

async function readStream(name: string): Promise<{ key: string; seq: number }[]> {
  const desc = await real.send(new DescribeStreamCommand({ StreamName: name }));
  const out: { key: string; seq: number }[] = [];
  for (const s of desc.StreamDescription!.Shards!) {
    let it = (
      await real.send(
        new GetShardIteratorCommand({ StreamName: name, ShardId: s.ShardId!, ShardIteratorType: 'TRIM_HORIZON' }),
      )
    ).ShardIterator;
    for (;;) {
      const r = await real.send(new GetRecordsCommand({ ShardIterator: it! }));
      for (const rec of r.Records ?? [])
        out.push(JSON.parse(Buffer.from(rec.Data!).toString()) as { key: string; seq: number });
      if (!r.Records?.length) break;
      it = r.NextShardIterator;
    }
  }
  return out;
}

async function waitActive(name: string): Promise<void> {
  for (;;) {
    const d = await real.send(new DescribeStreamCommand({ StreamName: name }));
    if (d.StreamDescription!.StreamStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('Kinesis sink', () => {
  it('keeps per-key order through partial failures and throttling, losing nothing', async () => {
    await real.send(new CreateStreamCommand({ StreamName: 'order', ShardCount: 3 }));
    const acks: number[] = [];
    const sink = new KinesisSink({
      client: faulty((call, i) =>
        call <= 6 && i % 7 === call % 7
          ? call % 2
            ? 'ProvisionedThroughputExceededException'
            : 'InternalFailure'
          : undefined,
      ),
      streamName: 'order',
      sleep: async () => undefined,
      onAcked: (low) => acks.push(low),
    });
    const keys = ['shop.orders', 'shop.items', 'shop.shipments', 'shop.couriers'];
    for (let seq = 0; seq < 2000; seq++) {
      const key = keys[seq % keys.length]!;
      sink.enqueue({ seq, partitionKey: key, data: Buffer.from(JSON.stringify({ key, seq })) });
    }
    await sink.drain();
    const got = await readStream('order');
    // Nothing lost.
    expect(new Set(got.map((r) => r.seq)).size).toBe(2000);
    // Per key, the last delivery of each record is in order (duplicates only repeat an already-sent suffix).
    for (const key of keys) {
      const seqs = got.filter((r) => r.key === key).map((r) => r.seq);
      const lastIndex = new Map<number, number>();
      for (const [i, s] of seqs.entries()) lastIndex.set(s, i);
      const byLast = [...lastIndex.entries()].sort((a, b) => a[1] - b[1]).map(([s]) => s);
      expect(byLast).toEqual([...byLast].sort((a, b) => a - b));
    }
    // Acknowledgements never go backwards and end past the last record.
    expect(acks).toEqual([...acks].sort((a, b) => a - b));
    expect(acks.at(-1)).toBe(2000);
  });

  it('fails instead of dropping when retries run out, and drain() reports it', async () => {
    await real.send(new CreateStreamCommand({ StreamName: 'down', ShardCount: 1 }));
    const sink = new KinesisSink({
      client: faulty(() => 'InternalFailure'),
      streamName: 'down',
      maxAttempts: 3,
      sleep: async () => undefined,
    });
    sink.enqueue({ seq: 0, partitionKey: 'k', data: Buffer.from('{}') });
    await expect(sink.drain()).rejects.toThrow(/KINESIS_RETRIES_EXHAUSTED: PutRecords to down failed 3 times in a row/);
    expect(sink.pending).toBe(1);
  });

  it('sends nothing at or after a record whose claim-check write is pending, and fails if that write fails', async () => {
    await real.send(new CreateStreamCommand({ StreamName: 'claims', ShardCount: 1 }));
    await waitActive('claims');
    let release!: () => void;
    const parked = new Promise<void>((r) => {
      release = r;
    });
    const sink = new KinesisSink({ client: real, streamName: 'claims' });
    sink.enqueue({ seq: 0, partitionKey: 'k', data: Buffer.from(JSON.stringify({ key: 'k', seq: 0 })) });
    sink.enqueue({ seq: 1, partitionKey: 'k', data: Buffer.from(JSON.stringify({ key: 'k', seq: 1 })), ready: parked });
    sink.enqueue({ seq: 2, partitionKey: 'k', data: Buffer.from(JSON.stringify({ key: 'k', seq: 2 })) });
    await new Promise((r) => setTimeout(r, 300));
    expect((await readStream('claims')).map((r) => r.seq)).toEqual([0]);
    release();
    await sink.drain();
    expect((await readStream('claims')).map((r) => r.seq)).toEqual([0, 1, 2]);

    const failing = new KinesisSink({ client: real, streamName: 'claims' });
    failing.enqueue({
      seq: 0,
      partitionKey: 'k',
      data: Buffer.from('{}'),
      ready: Promise.reject(new Error('s3 down')),
    });
    await expect(failing.drain()).rejects.toThrow(/CLAIM_CHECK_FAILED: .*s3 down/);
  });
});
