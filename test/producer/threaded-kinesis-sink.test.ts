/**
 * The Kinesis sink on its own thread (KINESIS_SINK_THREAD=on): the same delivery as the in-thread sink, seen through
 * the main thread's side. Real components: kinesalite for what lands in the stream, the latency Kinesis stand-in
 * (bench/support/latency-kinesis.ts, through the real SDK) for throttled entries and failed calls on demand.
 */

import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkPerKeyOrder, type LatencyKinesis, startLatencyKinesis } from '../../bench/support/latency-kinesis';
import { loadConfig } from '../../containers/producer/src/config';
import { partitionKeyOf } from '../../containers/producer/src/encode-worker-protocol';
import { ProducerError } from '../../containers/producer/src/errors';
import { type CapturedRow, EventAssembler } from '../../containers/producer/src/event-assembly';
import { serializeEvent, type TableShape } from '../../containers/producer/src/event-encoder';
import { EmfMetrics } from '../../containers/producer/src/metrics';
import { ProducerCore } from '../../containers/producer/src/producer';
import { TableFilter } from '../../containers/producer/src/table-filter';
import { ThreadedKinesisSink } from '../../containers/producer/src/threaded-kinesis-sink';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { waitFor } from '../../local/services/process';
import { startProducerHarness, waitForLog } from './support/harness';
import { createActiveStream, readStream as readStreamOf, readStreamRaw } from './support/kinesis-stream';

let emu: Emulator;
let real: KinesisClient;
let sinks: ThreadedKinesisSink[] = [];
let standIns: LatencyKinesis[] = [];
beforeAll(async () => {
  emu = await startEmulator('kinesis');
  real = new KinesisClient(localAwsClientConfig(emu.endpoint));
});
afterEach(async () => {
  await Promise.all(sinks.map((s) => s.close()));
  await Promise.all(standIns.map((s) => s.close()));
  sinks = [];
  standIns = [];
});
afterAll(async () => {
  await emu?.stop();
});

function sinkFor(props: ConstructorParameters<typeof ThreadedKinesisSink>[0]): ThreadedKinesisSink {
  const s = new ThreadedKinesisSink(props);
  sinks.push(s);
  return s;
}

async function standIn(options: Parameters<typeof startLatencyKinesis>[0]): Promise<LatencyKinesis> {
  const k = await startLatencyKinesis(options);
  standIns.push(k);
  return k;
}

const createStream = (name: string, shards: number) => createActiveStream(real, name, shards);
const readStream = (name: string) => readStreamOf(real, name);

const noEmitted = (text: string) => text.replace(/"emitted_ms":\d+/, '"emitted_ms":0');

/** A record as the producer writes it: the latency stand-in reads `position` out of it. */
function event(key: string, seq: number): Buffer {
  return Buffer.from(`{"key":"${key}","seq":${seq},"position":"000001.${String(seq).padStart(12, '0')}.00000000"}\n`);
}

describe('Kinesis sink on its own thread', () => {
  it('writes every record to the stream with its partition key, acknowledging up to the last', async () => {
    await createStream('thread-all', 2);
    const acks: number[] = [];
    const sink = sinkFor({ endpoint: emu.endpoint, streamName: 'thread-all', onAcked: (low) => acks.push(low) });
    for (let seq = 0; seq < 3000; seq++) {
      const key = `shop.orders.${seq % 40}`;
      sink.enqueue({ seq, partitionKey: key, data: Buffer.from(JSON.stringify({ key, seq })) });
    }
    expect(sink.pending).toBe(3000);
    await sink.drain();
    expect(sink.pending).toBe(0);
    const got = await readStream('thread-all');
    expect(got).toHaveLength(3000);
    expect(new Set(got.map((r) => r.seq)).size).toBe(3000);
    // kinesalite keeps each shard's order: within a key, records arrive in sequence order.
    for (let k = 0; k < 40; k++) {
      const seqs = got.filter((r) => r.key === `shop.orders.${k}`).map((r) => r.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
    expect(acks).toEqual([...acks].sort((a, b) => a - b));
    expect(acks.at(-1)).toBe(3000);
  });

  it('takes records as bytes and the text after them (enqueueParts) byte for byte, in order with whole records', async () => {
    await createStream('thread-parts', 1);
    const sink = sinkFor({ endpoint: emu.endpoint, streamName: 'thread-parts' });
    const head = Buffer.from('{"key":"k","seq":');
    const expected: { key: string; seq: number; text: string }[] = [];
    for (let seq = 0; seq < 1200; seq++) {
      // Multi-byte text, and now and then a record far larger than the batch buffer's first 64 KiB.
      const text = `é€${seq}`.repeat(seq % 400 === 7 ? 60_000 : 3);
      expected.push({ key: 'k', seq, text });
      if (seq % 3 === 0) {
        sink.enqueue({ seq, partitionKey: 'k', data: Buffer.from(JSON.stringify({ key: 'k', seq, text })) });
        continue;
      }
      const rest = `${seq},"text":${JSON.stringify(text)}}`;
      expect(sink.enqueueParts(seq, 'k', head, rest)).toBe(head.length + Buffer.byteLength(rest));
    }
    const bytes = expected.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0);
    expect(sink.pendingBytes).toBe(bytes);
    await sink.drain();
    expect(sink.pendingBytes).toBe(0);
    // One key, one shard: the stream holds them in sequence order.
    expect(await readStream('thread-parts')).toEqual(expected);
  });

  it('keeps each key in order through throttled entries, with never two calls in flight for one key', async () => {
    const k = await standIn({ delayMs: 5, throttleShare: 0.3, seed: 3 });
    const retries: number[] = [];
    const sink = sinkFor({
      endpoint: k.endpoint,
      streamName: 'hot',
      maxThrottleDelayMs: 20,
      stats: { onRetry: (failed) => retries.push(failed) },
    });
    for (let seq = 0; seq < 5000; seq++)
      sink.enqueue({ seq, partitionKey: `k${seq % 25}`, data: event(`k${seq % 25}`, seq) });
    await sink.drain();
    const report = checkPerKeyOrder(await k.deliveries());
    expect(report).toMatchObject({ records: 5000, violations: 0 });
    expect(report.repeats).toBeGreaterThan(0); // resends happened, and repeated a suffix of their key
    expect(retries.length).toBeGreaterThan(0);
    const stats = await k.stats();
    expect(stats.sameKeyOverlaps).toBe(0);
    expect(stats.maxCallsInFlight).toBeGreaterThan(1);
  });

  it('fails drain, later enqueues and onFailed with the sink error when retries run out', async () => {
    const k = await standIn({ delayMs: 0, failCallShare: 1 });
    const failures: Error[] = [];
    const sink = sinkFor({
      endpoint: k.endpoint,
      streamName: 'down',
      maxAttempts: 2,
      maxDelayMs: 1,
      onFailed: (e) => failures.push(e),
    });
    sink.enqueue({ seq: 0, partitionKey: 'k', data: event('k', 0) });
    const err = await sink.drain().catch((e: Error) => e);
    expect(err).toBeInstanceOf(ProducerError);
    expect((err as ProducerError).code).toBe('KINESIS_RETRIES_EXHAUSTED');
    expect((err as Error).message).toMatch(/^KINESIS_RETRIES_EXHAUSTED: PutRecords to down failed 2 times in a row/);
    expect(failures).toEqual([err]);
    expect(sink.failure).toBe(err);
    expect(sink.pending).toBe(1); // never acknowledged: the checkpoint cannot move past it
    expect(() => sink.enqueue({ seq: 1, partitionKey: 'k', data: event('k', 1) })).toThrow(err as Error);
  });

  it('holds a key behind its pending claim-check write while other keys go, and fails when the write fails', async () => {
    const k = await standIn({ delayMs: 0 });
    const sink = sinkFor({ endpoint: k.endpoint, streamName: 'claims' });
    let release!: () => void;
    const parked = new Promise<void>((r) => {
      release = r;
    });
    sink.enqueue({ seq: 0, partitionKey: 'a', data: event('a', 0), ready: parked });
    sink.enqueue({ seq: 1, partitionKey: 'a', data: event('a', 1) });
    sink.enqueue({ seq: 2, partitionKey: 'b', data: event('b', 2) });
    // Key b goes as soon as the thread is up (its start takes longer on a loaded machine); key a stays held.
    await waitFor('key b delivered', async () => (await k.deliveries()).length > 0);
    expect((await k.deliveries()).map((d) => d.partitionKey)).toEqual(['b']);
    await waitFor('the thread to report b acknowledged', async () => sink.pending === 2);
    await new Promise((r) => setTimeout(r, 200));
    expect((await k.deliveries()).map((d) => d.partitionKey)).toEqual(['b']);
    release();
    await sink.drain();
    expect((await k.deliveries()).map((d) => d.partitionKey)).toEqual(['b', 'a', 'a']);
    expect(checkPerKeyOrder(await k.deliveries()).violations).toBe(0);

    const failing = sinkFor({ endpoint: k.endpoint, streamName: 'claims' });
    failing.enqueue({ seq: 0, partitionKey: 'c', data: event('c', 0), ready: Promise.reject(new Error('S3 said no')) });
    await expect(failing.drain()).rejects.toThrow(
      /^CLAIM_CHECK_FAILED: could not park an oversized event in S3 .*S3 said no/,
    );
  });

  it('fails with KINESIS_SINK_THREAD_FAILED when the thread dies, never reporting its records as sent', async () => {
    const k = await standIn({ delayMs: 200 });
    const failures: Error[] = [];
    const sink = sinkFor({ endpoint: k.endpoint, streamName: 's', onFailed: (e) => failures.push(e) });
    sink.enqueue({ seq: 0, partitionKey: 'k', data: event('k', 0) });
    const drained = sink.drain().catch((e: Error) => e);
    // A fault the thread cannot produce on demand: its death, by a message it cannot read.
    (sink as unknown as { worker: { postMessage(m: unknown): void } }).worker.postMessage({ t: 'put' });
    const err = await drained;
    expect(err).toBeInstanceOf(ProducerError);
    expect((err as ProducerError).code).toBe('KINESIS_SINK_THREAD_FAILED');
    expect(failures).toEqual([err]);
    expect(sink.pending).toBe(1);
  });
});

describe('the producer with KINESIS_SINK_THREAD=on', () => {
  it('captures every row in order, drains on SIGTERM and checkpoints, its sink on a thread of its own', async () => {
    const h = await startProducerHarness();
    try {
      await h.db.query('CREATE DATABASE shop; CREATE TABLE shop.seq (id INT PRIMARY KEY, n INT)');
      const p = h.startProducer({ KINESIS_SINK_THREAD: 'on', PARTITION_KEY_MODE: 'table' });
      await waitForLog(p, /reading the binlog.*"kinesisSink":"on"/);
      for (let i = 1; i <= 300; i++) await h.db.query('INSERT INTO shop.seq VALUES (?, 0)', [i]);
      await h.db.query('UPDATE shop.seq SET n = n + 1 WHERE id <= 100');
      const events = await waitFor('400 events of shop.seq', async () => {
        const all = (await h.readAll()).filter((e) => e.table === 'seq');
        return all.length >= 400 ? all : undefined;
      });
      // One key (the table), one shard: the stream holds the binlog's order.
      const positions = events.map((e) => e.position);
      expect(positions).toEqual([...positions].sort());
      expect(new Set(events.filter((e) => e.op === 'insert').map((e) => e.after!.id)).size).toBe(300);
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
      expect(p.output()).toMatch(/stopped cleanly/);
      const item = await h.dynamo.send(
        new GetItemCommand({ TableName: 'cdc-checkpoints', Key: { pk: { S: 'test' }, sk: { S: 'producer' } } }),
      );
      expect(item.Item?.file?.S).toMatch(/^mysql-bin\.\d{6}$/);
    } finally {
      await h.close();
    }
  });
});

describe('the producer core into the sink thread', () => {
  it("writes each row's template (the shape's head as bytes, the rest as text) byte for byte the object path's event", async () => {
    await createStream('thread-template', 2);
    const filter = new TableFilter({ include: [], exclude: [], excludeColumns: [], hashColumns: [], maskColumns: [] });
    const shape: TableShape = {
      db: 'shop',
      table: 'orders',
      columns: [
        { name: 'id', type: 'bigint' },
        { name: 'total', type: 'decimal(12,2)' },
        { name: 'at', type: 'datetime(6)' },
        { name: 'note', type: 'varchar(64)' },
        { name: 'doc', type: 'json' },
      ],
      pk: ['id'],
    };
    const at = { file: 'mysql-bin.000003', commitMs: 1_700_000_000_000, gtid: null };
    const rows: CapturedRow[] = [];
    for (let i = 1; i <= 700; i++) {
      const after = {
        id: String(i),
        total: `${i}.25`,
        at: '2026-12-01 08:00:00.123456',
        note: `ünïcødé €${i}`,
        doc: { i },
      };
      rows.push({ shape, op: 'insert', before: null, after, pos: 100 + i, row: 0, ...at });
      if (i % 7 === 0) rows.push({ shape, op: 'delete', before: after, after: null, pos: 100_000 + i, row: 0, ...at });
    }
    const sink = sinkFor({ endpoint: emu.endpoint, streamName: 'thread-template' });
    const core = new ProducerCore({
      serverId: 42,
      filter,
      sink,
      partitionKeyMode: 'table-pk',
      metrics: new EmfMetrics('test', 'Test', () => undefined),
      maxInFlight: 10_000,
      pause: () => undefined,
      resume: () => undefined,
    });
    for (const c of rows) core.onRow(c);
    core.onCommit({ ...at, pos: 200_000 });
    await core.drain();
    const assembler = new EventAssembler({ serverId: 42, filter });
    const expected = rows.map((c) => {
      const e = assembler.rowEvent(c);
      return { partitionKey: partitionKeyOf(e, 'table-pk'), data: noEmitted(`${serializeEvent(e)}\n`) };
    });
    const got = (await readStreamRaw(real, 'thread-template')).map((r) => ({ ...r, data: noEmitted(r.data) }));
    const byPosition = (r: { data: string }) => (JSON.parse(r.data) as { position: string }).position;
    const sorted = <T extends { data: string }>(a: T[]) =>
      [...a].sort((x, y) => byPosition(x).localeCompare(byPosition(y)));
    expect(sorted(got)).toEqual(sorted(expected));
  });
});

describe('KINESIS_SINK_THREAD', () => {
  const env = { SOURCE_HOST: 'h', SOURCE_USER: 'u', STREAM_NAME: 's', CHECKPOINT_TABLE: 'cps', PIPELINE_ID: 'p' };
  it('is off unless turned on, and refuses anything but on and off, naming the value', () => {
    expect(loadConfig(env).KINESIS_SINK_THREAD).toBe('off');
    expect(loadConfig({ ...env, KINESIS_SINK_THREAD: 'on' }).KINESIS_SINK_THREAD).toBe('on');
    expect(() => loadConfig({ ...env, KINESIS_SINK_THREAD: 'yes' })).toThrow(/KINESIS_SINK_THREAD="yes": /);
  });
});
