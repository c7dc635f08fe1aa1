import { CreateStreamCommand, KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KinesisSink, sinkClient } from '../../containers/producer/src/kinesis-sink';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { readStream as readStreamOf, waitActive as waitActiveOf } from './support/kinesis-stream';

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

const readStream = (name: string) => readStreamOf(real, name);
const waitActive = (name: string) => waitActiveOf(real, name);

describe('Kinesis sink', () => {
  it("writes through the producer's client, which has no logger middleware (no masked copy of each call)", async () => {
    await real.send(new CreateStreamCommand({ StreamName: 'lean', ShardCount: 1 }));
    await waitActive('lean');
    const client = sinkClient(emu.endpoint);
    expect(client.middlewareStack.identify().filter((m) => /logger/i.test(m))).toEqual([]);
    expect(
      new KinesisClient(localAwsClientConfig(emu.endpoint)).middlewareStack.identify().some((m) => /logger/i.test(m)),
    ).toBe(true);
    const sink = new KinesisSink({ client, streamName: 'lean' });
    for (let seq = 0; seq < 10; seq++)
      sink.enqueue({ seq, partitionKey: 'k', data: Buffer.from(JSON.stringify({ key: 'k', seq })) });
    await sink.drain();
    expect((await readStream('lean')).map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

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

  it('keeps several calls in flight for disjoint keys, never two for the same key', async () => {
    await real.send(new CreateStreamCommand({ StreamName: 'parallel', ShardCount: 4 }));
    await waitActive('parallel');
    let inFlight = 0;
    let most = 0;
    const keysInFlight = new Map<string, number>();
    let overlap = 0;
    // Instrumentation around the emulator: each call is held 20 ms (a round trip in AWS) while in flight.
    const slow = {
      send: async (cmd: PutRecordsCommand) => {
        const keys = new Set((cmd.input.Records ?? []).map((r) => r.PartitionKey!));
        for (const k of keys) {
          if (keysInFlight.has(k)) overlap++;
          keysInFlight.set(k, 1);
        }
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 20));
        try {
          return await real.send(cmd);
        } finally {
          inFlight--;
          for (const k of keys) keysInFlight.delete(k);
        }
      },
    } as unknown as KinesisClient;
    const sink = new KinesisSink({ client: slow, streamName: 'parallel', maxCallsInFlight: 4 });
    // A hot table spread by key (100 rows, 3 changes each) and a second table keyed by its name.
    let seq = 0;
    for (let round = 0; round < 3; round++)
      for (let id = 0; id < 100; id++) {
        for (const key of [`shop.orders#[${id}]`, 'shop.items']) {
          sink.enqueue({ seq, partitionKey: key, data: Buffer.from(JSON.stringify({ key, seq })) });
          seq++;
        }
        // Small calls, so that there are many of them.
        if (id % 10 === 9) await new Promise((r) => setImmediate(r));
      }
    await sink.drain();
    expect(overlap).toBe(0);
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(4);
    const got = await readStream('parallel');
    expect(got).toHaveLength(seq);
    const byKey = new Map<string, number[]>();
    for (const r of got) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.seq]);
    for (const seqs of byKey.values()) expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });

  it('acknowledges only below the oldest record still in flight, however many later calls finish first', async () => {
    await real.send(new CreateStreamCommand({ StreamName: 'acks', ShardCount: 2 }));
    await waitActive('acks');
    let releaseSlow!: () => void;
    const slowDone = new Promise<void>((r) => {
      releaseSlow = r;
    });
    const held = {
      send: async (cmd: PutRecordsCommand) => {
        if (cmd.input.Records?.some((r) => r.PartitionKey === 'slow')) await slowDone;
        return real.send(cmd);
      },
    } as unknown as KinesisClient;
    const acks: number[] = [];
    const sink = new KinesisSink({ client: held, streamName: 'acks', onAcked: (low) => acks.push(low) });
    sink.enqueue({ seq: 0, partitionKey: 'slow', data: Buffer.from('{"key":"slow","seq":0}') });
    for (let seq = 1; seq <= 5; seq++) {
      sink.enqueue({ seq, partitionKey: `fast${seq}`, data: Buffer.from(JSON.stringify({ key: 'fast', seq })) });
      await new Promise((r) => setTimeout(r, 30));
    }
    // Every fast record is in the stream, yet nothing may be acknowledged past record 0.
    expect((await readStream('acks')).map((r) => r.seq).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(acks.length).toBeGreaterThan(0); // told after each answer (the producer re-checks its pause) …
    expect(acks.filter((low) => low > 0)).toEqual([]); // … but nothing acknowledged past record 0
    expect(sink.pending).toBe(1);
    releaseSlow();
    await sink.drain();
    expect(acks.at(-1)).toBe(6);
  });

  it('lets other keys through while one key waits for its claim-check write', async () => {
    await real.send(new CreateStreamCommand({ StreamName: 'claims2', ShardCount: 1 }));
    await waitActive('claims2');
    let release!: () => void;
    const parked = new Promise<void>((r) => {
      release = r;
    });
    const sink = new KinesisSink({ client: real, streamName: 'claims2' });
    const rec = (seq: number, key: string, ready?: Promise<void>) => ({
      seq,
      partitionKey: key,
      data: Buffer.from(JSON.stringify({ key, seq })),
      ready,
    });
    sink.enqueue(rec(0, 'a', parked));
    sink.enqueue(rec(1, 'a'));
    sink.enqueue(rec(2, 'b'));
    await new Promise((r) => setTimeout(r, 300));
    expect((await readStream('claims2')).map((r) => r.seq)).toEqual([2]);
    release();
    await sink.drain();
    expect((await readStream('claims2')).map((r) => r.seq)).toEqual([2, 0, 1]);
  });

  it('looks at each queued record a bounded number of times while one busy key holds the queue (partition key table)', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    // Instrumentation: the calls wait until released, so the one key stays busy while 20,000 records queue behind it.
    const waiting = {
      send: async (cmd: PutRecordsCommand) => {
        await held;
        return {
          FailedRecordCount: 0,
          Records: (cmd.input.Records ?? []).map(() => ({ SequenceNumber: '1', ShardId: 's' })),
        };
      },
    } as unknown as KinesisClient;
    const sink = new KinesisSink({ client: waiting, streamName: 'hot' });
    for (let seq = 0; seq < 20_000; seq++) sink.enqueue({ seq, partitionKey: 'shop.orders', data: Buffer.from('{}') });
    // Each enqueue looks only at what arrived since the last look, not at the whole queue again (that was 2 × 10^8).
    expect(sink.recordsScanned).toBeLessThan(40_000);
    // Draining: one look over the queue per call (40 calls of 500), not one per record.
    release();
    await sink.drain();
    expect(sink.recordsScanned).toBeLessThan(1_000_000);
  });

  it('backs off at most 250 ms after throttled entries, up to 5 s after failed calls', async () => {
    // Fault injection: the first entry of the first 16 calls is throttled; or, instead, the first 16 calls fail whole.
    const delays = async (wholeCallFails: boolean) => {
      let call = 0;
      const client = {
        send: async (cmd: PutRecordsCommand) => {
          const entries = cmd.input.Records ?? [];
          if (++call <= 16 && wholeCallFails) throw new Error('connection reset');
          return {
            FailedRecordCount: call <= 16 ? 1 : 0,
            Records: entries.map((_, i) =>
              call <= 16 && i === 0
                ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'x' }
                : { SequenceNumber: '1', ShardId: 's' },
            ),
          };
        },
      } as unknown as KinesisClient;
      const asked: number[] = [];
      const sink = new KinesisSink({
        client,
        streamName: 's',
        sleep: async (ms) => {
          asked.push(ms);
        },
      });
      // Math.random() is the jitter; the caps are what the test reads, so it is pinned just below 1.
      const random = Math.random;
      Math.random = () => 0.999_999;
      try {
        sink.enqueue({ seq: 0, partitionKey: 'a', data: Buffer.from('{}') });
        sink.enqueue({ seq: 1, partitionKey: 'b', data: Buffer.from('{}') });
        await sink.drain();
      } finally {
        Math.random = random;
      }
      return Math.round(Math.max(...asked));
    };
    expect(await delays(false)).toBe(250);
    expect(await delays(true)).toBe(5000);
  });

  it('gives up only on consecutive failures: a hot key resent many times under sustained throttling gets through', async () => {
    // One hot key (partition key `table`) with 30% of entries throttled in every call, for as long as it takes. Each
    // failure resends the key's rest of the call, so a record far down a call is resent dozens of times and fails in
    // about a third of them; only a record that fails `maxAttempts` times IN A ROW means Kinesis is not taking it.
    let state = 7; // mulberry32: each entry throttled independently with probability 0.3
    const draw = () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = Math.imul(state ^ (state >>> 15), state | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const client = {
      send: async (cmd: PutRecordsCommand) => {
        const entries = cmd.input.Records ?? [];
        const verdict = entries.map(() => draw() < 0.3);
        return {
          FailedRecordCount: verdict.filter(Boolean).length,
          Records: verdict.map((v) =>
            v
              ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded' }
              : { SequenceNumber: '1', ShardId: 's' },
          ),
        };
      },
    } as unknown as KinesisClient;
    const sink = new KinesisSink({ client, streamName: 's', sleep: async () => undefined });
    for (let seq = 0; seq < 2000; seq++) sink.enqueue({ seq, partitionKey: 'shop.orders', data: Buffer.from('{}') });
    await sink.drain();
    expect(sink.pending).toBe(0);
  });

  it('never gives up on a throttled record (the stream is too small, not broken), but does on repeated errors', async () => {
    // Fault injection: record 0's entry is throttled in its first 40 deliveries (a shard over its limit for a while),
    // then written; in the second sink every delivery fails with InternalFailure.
    const throttledFor = (times: number, code: string) => {
      let deliveries = 0;
      return {
        send: async (cmd: PutRecordsCommand) => {
          const entries = cmd.input.Records ?? [];
          const fail = (i: number) => entries[i]!.PartitionKey === 'hot' && ++deliveries <= times;
          const verdict = entries.map((_, i) => fail(i));
          return {
            FailedRecordCount: verdict.filter(Boolean).length,
            Records: verdict.map((v) =>
              v ? { ErrorCode: code, ErrorMessage: 'x' } : { SequenceNumber: '1', ShardId: 's' },
            ),
          };
        },
      } as unknown as KinesisClient;
    };
    const throttles: number[] = [];
    const patient = new KinesisSink({
      client: throttledFor(40, 'ProvisionedThroughputExceededException'),
      streamName: 's',
      sleep: async () => undefined,
      stats: { onRetry: (_, throttled) => throttles.push(throttled) },
    });
    patient.enqueue({ seq: 0, partitionKey: 'hot', data: Buffer.from('{}') });
    patient.enqueue({ seq: 1, partitionKey: 'cold', data: Buffer.from('{}') });
    await patient.drain();
    expect(throttles).toHaveLength(40);
    expect(patient.pending).toBe(0);

    const broken = new KinesisSink({
      client: throttledFor(40, 'InternalFailure'),
      streamName: 's',
      sleep: async () => undefined,
    });
    broken.enqueue({ seq: 0, partitionKey: 'hot', data: Buffer.from('{}') });
    await expect(broken.drain()).rejects.toThrow(/KINESIS_RETRIES_EXHAUSTED: PutRecords to s failed 12 times in a row/);
  });

  it('refuses a number of calls in flight outside 1 to 64, naming the value', () => {
    expect(() => new KinesisSink({ client: real, streamName: 'x', maxCallsInFlight: 0 })).toThrow(
      /CONFIG_INVALID: maxCallsInFlight=0: must be an integer from 1 to 64/,
    );
  });
});
