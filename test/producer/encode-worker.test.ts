/**
 * The encode worker (containers/producer/src/encode-worker*.ts): rows encoded on a worker thread are byte for byte
 * the events the main thread's path writes, for every type family of the type table, capture rule and partition-key
 * mode; a row the worker cannot encode stops the producer with ENCODE_FAILED; and with the worker on, records still
 * reach the sink in sequence order and the checkpoint never passes an event still at the worker. The Kinesis client
 * is a stand-in that records calls and answers them when told (as in in-flight-checkpoints.test.ts).
 */
import type { KinesisClient, PutRecordsCommand, PutRecordsCommandOutput } from '@aws-sdk/client-kinesis';
import { describe, expect, it } from 'vitest';
import type { Boundary } from '../../containers/producer/src/binlog-source';
import { loadConfig, snapshotEncodeWorkerOn } from '../../containers/producer/src/config';
import {
  type EncodeBatch,
  type EncodedBatch,
  encodeBatch,
  HAS_AFTER,
  partitionKeyOf,
} from '../../containers/producer/src/encode-worker-protocol';
import { type CapturedRow, compileShapePlan, EventAssembler } from '../../containers/producer/src/event-assembly';
import { serializeEvent, type TableShape } from '../../containers/producer/src/event-encoder';
import { KinesisSink } from '../../containers/producer/src/kinesis-sink';
import { EmfMetrics } from '../../containers/producer/src/metrics';
import { ProducerCore } from '../../containers/producer/src/producer';
import { TableFilter } from '../../containers/producer/src/table-filter';
import type { ColumnMeta } from '../../shared/change-event';

class HeldKinesis {
  readonly calls: { records: { key: string; data: string }[]; answer: (ok: boolean) => void }[] = [];
  /** Answer every call at once. */
  auto = false;
  readonly client = {
    send: (cmd: PutRecordsCommand): Promise<PutRecordsCommandOutput> => {
      const records = (cmd.input.Records ?? []).map((r) => ({
        key: r.PartitionKey ?? '',
        data: Buffer.from(r.Data ?? new Uint8Array()).toString('utf8'),
      }));
      return new Promise((resolve) => {
        const answer = () =>
          resolve({ FailedRecordCount: 0, Records: records.map(() => ({ SequenceNumber: '1' })), $metadata: {} });
        this.calls.push({ records, answer });
        if (this.auto) answer();
      });
    },
  } as unknown as KinesisClient;
  get sent(): { key: string; data: string }[] {
    return this.calls.flatMap((c) => c.records);
  }
}

const NO_RULES = { include: [], exclude: [], excludeColumns: [], hashColumns: [], maskColumns: [] };
const hex = (h: string) => Buffer.from(h, 'hex');
const boundary = (pos: number): Boundary => ({
  file: 'mysql-bin.000007',
  pos,
  gtid: null,
  commitMs: 1_700_000_000_000,
});

/** A column of every type family of the type table, with a value as the binlog or snapshot reader hands it over. */
const TYPES: [ColumnMeta, unknown][] = [
  [{ name: 'id', type: 'bigint' }, '9007199254740993'],
  [{ name: 'i', type: 'int' }, -2147483648],
  [{ name: 'tiny', type: 'tinyint unsigned' }, 255],
  [{ name: 'f', type: 'float' }, Math.fround(2.5e-7)],
  [{ name: 'd', type: 'double' }, 1e308],
  [{ name: 'dec', type: 'decimal(38,10)' }, '-1234567890123456789012345678.0123456789'],
  [{ name: 'y', type: 'year' }, 1900],
  [{ name: 'c', type: 'char(10)' }, 'x'],
  [{ name: 'v', type: 'varchar(255)' }, 'He said "hi", it\'s a\\b\n\t 🚚 Grüße 𝄞 \u0000 \u2028'],
  [{ name: 't', type: 'longtext' }, 'ab🚚,"\n'.repeat(50)],
  [{ name: 'e', type: "enum('a','b')" }, 'b'],
  [{ name: 's', type: "set('a','b')" }, 'a,b'],
  [{ name: 'dt', type: 'date' }, '2024-02-29'],
  [{ name: 'dtm', type: 'datetime(6)' }, '2026-11-23 10:00:00.123456'],
  [{ name: 'ts', type: 'timestamp(3)' }, '2026-11-23 10:00:00.123'],
  [{ name: 'zero', type: 'timestamp' }, '0000-00-00 00:00:00'],
  [{ name: 'tm', type: 'time(6)' }, '-838:59:59.000000'],
  [{ name: 'b', type: 'bit(10)' }, hex('02ff')],
  [{ name: 'bin', type: 'binary(4)' }, hex('00ff10ab')],
  [{ name: 'blob', type: 'longblob' }, Buffer.from(Array.from({ length: 256 }, (_, i) => i))],
  [{ name: 'g', type: 'point' }, hex('e6100000010100000000000000000000f03f0000000000000040')],
  [{ name: 'u', type: 'uuid' }, hex('123e4567e89b12d3a456426614174000')],
  [{ name: 'ip4', type: 'inet4' }, hex('0a000001')],
  [{ name: 'ip6', type: 'inet6' }, hex('20010db8000000000000ff0000428329')],
  [
    { name: 'j', type: 'json' },
    { a: [1, 'two', null, { b: true }], 'k"ey': 1.5 },
  ],
  [{ name: 'js', type: 'json' }, '{"text":"stored as text"}'],
  [{ name: 'vec', type: 'vector(3)' }, hex('0000803f')], // not in the type table: sent as hex text
  [{ name: 'n', type: 'int' }, null],
];

const SHAPE: TableShape = { db: 'shop', table: 'every_type', columns: TYPES.map(([c]) => c), pk: ['id', 'i'] };
const VALUES = Object.fromEntries(TYPES.map(([c, v]) => [c.name, v]));
const OTHER = { ...VALUES, id: '2', v: 'changed', j: [1, 2, 3] };

function rowsOf(shape: TableShape, a: Record<string, unknown>, b: Record<string, unknown>): CapturedRow[] {
  const at = { file: 'mysql-bin.000007', commitMs: 1_700_000_000_000 };
  return [
    { shape, op: 'insert', before: null, after: a, pos: 100, row: 0, gtid: '0-1-5', ...at },
    { shape, op: 'update', before: a, after: b, pos: 200, row: 1, gtid: '0-1-6', ...at },
    { shape, op: 'delete', before: b, after: null, pos: 300, row: 2, gtid: null, ...at },
    { shape, op: 'read', before: null, after: b, pos: 400, row: 3, gtid: null, ...at },
  ];
}

const noEmitted = (text: string) => text.replace(/"emitted_ms":\d+/, '"emitted_ms":0');

/** What the main thread's path writes for these rows: records and partition keys. */
function inThread(filter: TableFilter, mode: 'table' | 'table-pk', rows: CapturedRow[]) {
  const assembler = new EventAssembler({ serverId: 42, filter });
  return rows.map((c) => {
    const e = assembler.rowEvent(c);
    return { key: partitionKeyOf(e, mode), data: noEmitted(`${serializeEvent(e)}\n`) };
  });
}

async function pipeline(
  opts: {
    worker?: boolean;
    /** `snapshotEncodeWorker`. @default false */
    snapshotWorker?: boolean;
    filter?: TableFilter;
    mode?: 'table' | 'table-pk';
    maxInFlight?: number;
    /** The sink's `maxCallsInFlight`: with 1, the calls carry the records in the order the sink got them. @default 8 */
    callsInFlight?: number;
    fail?: (e: Error) => void;
  } = {},
) {
  const kinesis = new HeldKinesis();
  const flow: string[] = [];
  let core: ProducerCore | undefined;
  const sink = new KinesisSink({
    client: kinesis.client,
    streamName: 'changes',
    sleep: async () => undefined,
    onAcked: (low) => core?.acked(low),
    ...(opts.callsInFlight !== undefined ? { maxCallsInFlight: opts.callsInFlight } : {}),
  });
  core = new ProducerCore({
    serverId: 42,
    filter: opts.filter ?? new TableFilter(NO_RULES),
    sink,
    partitionKeyMode: opts.mode ?? 'table',
    metrics: new EmfMetrics('test', 'Test', () => undefined),
    maxInFlight: opts.maxInFlight ?? 10_000,
    pause: () => flow.push('pause'),
    resume: () => flow.push('resume'),
    encodeWorker: opts.worker ?? true,
    snapshotEncodeWorker: opts.snapshotWorker ?? false,
    ...(opts.fail ? { fail: opts.fail } : {}),
  });
  // Loaded before the first row: rows before that would be encoded on this thread.
  await core.startEncodeWorker();
  return { core, kinesis, flow, sink };
}

describe('the encode worker', () => {
  for (const [mode, worker] of [
    ['table', true],
    ['table-pk', true],
    ['table', false],
    ['table-pk', false],
  ] as const) {
    const path = worker ? 'the worker' : "the main thread's template";
    it(`writes through ${path} byte for byte the events of the object path for every type family, ${mode} keys`, async () => {
      const filter = new TableFilter(NO_RULES);
      const rows = rowsOf(SHAPE, VALUES, OTHER);
      const { core, kinesis } = await pipeline({ filter, mode, worker });
      kinesis.auto = true;
      for (const c of rows) core.onRow(c);
      await core.drain();
      await core.close();
      const sent = kinesis.sent.map((r) => ({ key: r.key, data: noEmitted(r.data) }));
      expect(sent).toEqual(inThread(filter, mode, rows));
      expect(sent[1]!.key).toBe(mode === 'table' ? 'shop.every_type' : 'shop.every_type#["2",-2147483648]');
    });
  }

  it('applies hash, mask and drop rules as the main thread does, and keeps column names JSON orders differently', async () => {
    const filter = new TableFilter({
      ...NO_RULES,
      excludeColumns: ['shop.odd.secret'],
      hashColumns: ['shop.odd.email'],
      maskColumns: ['shop.odd.card'],
    });
    // `1` would be listed first by JSON.stringify of an object, `__proto__` left out: the worker must match.
    const shape: TableShape = {
      db: 'shop',
      table: 'odd',
      columns: ['id', 'email', 'card', 'secret', '1', '__proto__'].map((name) => ({ name, type: 'varchar(20)' })),
      pk: ['id'],
    };
    const row = { id: 'k', email: 'a@b.c', card: '4111', secret: 's', 1: 'one', ['__proto__']: 'p' };
    Object.defineProperty(row, '__proto__', { value: 'p', enumerable: true });
    const rows = rowsOf(shape, row, { ...row, email: null });
    const { core, kinesis } = await pipeline({ filter, mode: 'table-pk' });
    kinesis.auto = true;
    for (const c of rows) core.onRow(c);
    await core.drain();
    await core.close();
    expect(kinesis.sent.map((r) => ({ key: r.key, data: noEmitted(r.data) }))).toEqual(
      inThread(filter, 'table-pk', rows),
    );
    expect(kinesis.sent[0]!.data).not.toContain('"secret"');
  });

  it('stops the producer with ENCODE_FAILED naming the table and position when a row cannot be encoded', async () => {
    const failures: Error[] = [];
    const { core, kinesis } = await pipeline({ fail: (e) => failures.push(e) });
    kinesis.auto = true;
    const shape: TableShape = { db: 'geo', table: 'places', columns: [{ name: 'p', type: 'point' }], pk: [] };
    const at = { file: 'mysql-bin.000007', commitMs: 1, gtid: null, op: 'insert' as const, before: null };
    core.onRow({ shape, ...at, after: { p: hex('00') }, pos: 10, row: 0 });
    core.onRow({ shape, ...at, after: { p: { x: 1, y: 2 } }, pos: 10, row: 1 }); // a decoded object, no bytes left
    core.onCommit(boundary(20));
    await expect(core.drain()).rejects.toThrow(
      /^ENCODE_FAILED: geo\.places at mysql-bin\.000007:10 row 1: point value arrived decoded/,
    );
    expect(failures.map((e) => (e as { code?: string }).code)).toEqual(['ENCODE_FAILED']);
    expect(() => core.onRow({ shape, ...at, after: { p: hex('00') }, pos: 30, row: 0 })).toThrow(/ENCODE_FAILED/);
    expect(core.safe).toBeUndefined();
    expect(kinesis.sent).toEqual([]); // nothing of the failed batch went out, not even the row before the bad one
    await core.close();
  });

  it('sends rows and table-level events in sequence order and moves the checkpoint only past acknowledged events', async () => {
    const { core, kinesis } = await pipeline();
    const shape: TableShape = { db: 'shop', table: 'orders', columns: [{ name: 'id', type: 'int' }], pk: ['id'] };
    const at = { file: 'mysql-bin.000007', commitMs: 1, gtid: null, op: 'insert' as const, before: null, row: 0 };
    for (let id = 1; id <= 3; id++) core.onRow({ shape, ...at, after: { id }, pos: id });
    core.onTableChange({
      db: 'shop',
      table: 'orders',
      op: 'truncate',
      change: { kind: 'truncate' } as never,
      file: 'mysql-bin.000007',
      pos: 4,
      row: 0,
      gtid: null,
      commitMs: 1,
    });
    for (let id = 5; id <= 6; id++) core.onRow({ shape, ...at, after: { id }, pos: id });
    core.onCommit(boundary(100));
    // Every event is numbered and counted as unacknowledged while the worker still has it.
    expect(core.pending).toBe(6);
    expect(core.safe).toBeUndefined();
    const drained = core.drain();
    while (kinesis.calls.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(core.safe).toBeUndefined();
    kinesis.auto = true;
    for (const c of kinesis.calls) c.answer(true);
    await drained;
    const positions = kinesis.sent.map((r) => (JSON.parse(r.data) as { source: { pos: number } }).source.pos);
    expect(positions).toEqual([1, 2, 3, 4, 5, 6]);
    expect(core.safe).toEqual(boundary(100));
    await core.close();
  });

  it('pauses reading when rows waiting for the worker reach maxInFlight, and resumes once they are acknowledged', async () => {
    const { core, kinesis, flow } = await pipeline({ maxInFlight: 4 });
    kinesis.auto = true;
    const shape: TableShape = { db: 'shop', table: 'orders', columns: [{ name: 'id', type: 'int' }], pk: ['id'] };
    const at = { file: 'mysql-bin.000007', commitMs: 1, gtid: null, op: 'insert' as const, before: null, row: 0 };
    for (let id = 1; id <= 4; id++) core.onRow({ shape, ...at, after: { id }, pos: id });
    expect(flow).toEqual(['pause']); // before the worker has answered: they count
    core.onCommit(boundary(100));
    await core.drain();
    expect(flow.at(-1)).toBe('resume');
    expect(core.safe).toEqual(boundary(100));
    await core.close();
  });
});

describe('the encode worker for snapshot rows only (snapshotEncodeWorker)', () => {
  const shape: TableShape = { db: 'shop', table: 'orders', columns: [{ name: 'id', type: 'int' }], pk: ['id'] };
  const at = { file: 'mysql-bin.000007', commitMs: 1, gtid: null, before: null };
  const read = (id: number): CapturedRow => ({ shape, ...at, op: 'read', after: { id }, pos: 50, row: id });
  const insert = (id: number): CapturedRow => ({ shape, ...at, op: 'insert', after: { id }, pos: 100 + id, row: 0 });

  it('encodes snapshot rows on the worker and binlog rows on this thread', async () => {
    const { core, kinesis, sink } = await pipeline({ worker: false, snapshotWorker: true });
    kinesis.auto = true;
    // A binlog row with nothing at the worker goes to the sink at once: encoded here.
    core.onRow(insert(1));
    expect(sink.pending).toBe(1);
    // Snapshot rows are at the worker until its answer: pending for the core, not yet in the sink.
    for (let id = 1; id <= 3; id++) core.onRow(read(id));
    expect(sink.pending).toBe(1);
    expect(core.pending).toBe(4);
    await core.drain();
    expect(kinesis.sent).toHaveLength(4);
    await core.close();
  });

  it('keeps sequence order and the bytes of the main thread when binlog rows arrive behind snapshot rows at the worker', async () => {
    const filter = new TableFilter(NO_RULES);
    const rows = [read(1), read(2), insert(3), read(4), insert(5), ...rowsOf(SHAPE, VALUES, OTHER)];
    for (const mode of ['table', 'table-pk'] as const) {
      const { core, kinesis } = await pipeline({ filter, mode, worker: false, snapshotWorker: true, callsInFlight: 1 });
      kinesis.auto = true;
      for (const c of rows) core.onRow(c);
      core.onCommit(boundary(1000));
      await core.drain();
      await core.close();
      expect(kinesis.sent.map((r) => ({ key: r.key, data: noEmitted(r.data) }))).toEqual(inThread(filter, mode, rows));
      expect(core.safe).toEqual(boundary(1000));
    }
  });

  it('wakes whenBelowHalf at the acknowledgement that takes pending under half the limit, not before', async () => {
    // Half of maxInFlight: 2 events.
    const { core, kinesis } = await pipeline({ worker: false, callsInFlight: 1, maxInFlight: 4 });
    for (let id = 1; id <= 4; id++) core.onRow(insert(id)); // one key: a call of 1 record, then one of 3
    let woke = false;
    const below = core.whenBelowHalf().then(() => {
      woke = true;
    });
    const tick = () => new Promise((r) => setImmediate(r));
    await tick();
    expect(woke).toBe(false);
    kinesis.calls[0]!.answer(true);
    await tick();
    expect(core.pending).toBe(3);
    expect(woke).toBe(false);
    kinesis.calls[1]!.answer(true);
    await below;
    expect(core.pending).toBe(0);
    await core.whenBelowHalf(); // already below: at once
    await core.close();
  });

  it('leaves every row on this thread when off (the default)', async () => {
    const { core, kinesis, sink } = await pipeline({ worker: false });
    kinesis.auto = true;
    for (let id = 1; id <= 3; id++) core.onRow(read(id));
    expect(sink.pending).toBe(3);
    await core.drain();
    await core.close();
  });
});

describe('SNAPSHOT_ENCODE_WORKER', () => {
  const env = { SOURCE_HOST: 'h', SOURCE_USER: 'u', STREAM_NAME: 's', CHECKPOINT_TABLE: 'cps', PIPELINE_ID: 'p' };
  it('follows KINESIS_SINK_THREAD by default (auto), can be turned on or off, and refuses anything else naming the variable and the value', () => {
    expect(loadConfig(env).SNAPSHOT_ENCODE_WORKER).toBe('auto');
    expect(snapshotEncodeWorkerOn(loadConfig(env))).toBe(false);
    expect(snapshotEncodeWorkerOn(loadConfig({ ...env, KINESIS_SINK_THREAD: 'on' }))).toBe(true);
    expect(snapshotEncodeWorkerOn(loadConfig({ ...env, SNAPSHOT_ENCODE_WORKER: 'on' }))).toBe(true);
    expect(
      snapshotEncodeWorkerOn(loadConfig({ ...env, KINESIS_SINK_THREAD: 'on', SNAPSHOT_ENCODE_WORKER: 'off' })),
    ).toBe(false);
    expect(() => loadConfig({ ...env, SNAPSHOT_ENCODE_WORKER: 'yes' })).toThrow(/SNAPSHOT_ENCODE_WORKER="yes": /);
  });
});

describe('ENCODE_WORKER', () => {
  const env = { SOURCE_HOST: 'h', SOURCE_USER: 'u', STREAM_NAME: 's', CHECKPOINT_TABLE: 'cps', PIPELINE_ID: 'p' };
  it('is off by default, can be turned on, and refuses anything else naming the variable and the value', () => {
    expect(loadConfig(env).ENCODE_WORKER).toBe('off');
    expect(loadConfig({ ...env, ENCODE_WORKER: 'on' }).ENCODE_WORKER).toBe('on');
    expect(() => loadConfig({ ...env, ENCODE_WORKER: 'yes' })).toThrow(/ENCODE_WORKER="yes": /);
  });
});

describe('encodeBatch buffers', () => {
  const shape: TableShape = {
    db: 'shop',
    table: 'notes',
    columns: [
      { name: 'id', type: 'int' },
      { name: 'body', type: 'longtext' },
    ],
    pk: ['id'],
  };
  const plan = compileShapePlan(shape, new TableFilter(NO_RULES));
  const shapes = new Map([[1, { id: 1, shape, plan }]]);
  const init = { serverId: 42, partitionKeyMode: 'table' as const };
  const batch = (id: number, bodies: string[]): EncodeBatch => {
    const n = bodies.length;
    return {
      id,
      shapes: [],
      strings: ['insert', 'mysql-bin.000001'],
      op: new Uint32Array(n),
      shape: new Uint32Array(n).fill(1),
      flags: new Uint8Array(n).fill(HAS_AFTER),
      file: new Uint32Array(n).fill(1),
      pos: new Float64Array(n).fill(4),
      row: Float64Array.from(bodies, (_, i) => i),
      gtid: new Int32Array(n).fill(-1),
      commitMs: new Float64Array(n).fill(1_700_000_000_000),
      values: bodies.flatMap((body, i) => [i, body]),
    };
  };
  const records = (r: EncodedBatch) =>
    [...r.ends].map((end, i) => Buffer.from(r.data, i === 0 ? 0 : r.ends[i - 1], end - (i === 0 ? 0 : r.ends[i - 1]!)));

  it('holds every record end to end, and a batch after one of large rows is neither sized by them nor sent with their slack', () => {
    const big = encodeBatch(init, shapes, batch(1, ['x'.repeat(4 * 1024 * 1024)]));
    expect(big.ends.length).toBe(1);
    // 512 short rows after a 4 MiB one: sized by the previous batch's bytes per row, it would reserve 2.5 GiB.
    const bodies = Array.from({ length: 512 }, (_, i) => `note ${i}`);
    const small = encodeBatch(init, shapes, batch(2, bodies));
    const texts = records(small).map((b) => JSON.parse(b.toString('utf8')) as { after: { body: string } });
    expect(texts.map((e) => e.after.body)).toEqual(bodies);
    expect(small.data.byteLength).toBe(small.ends.at(-1));
    // A batch like the one before it is sent whole: its buffer was sized by the previous batch's bytes per row.
    const again = encodeBatch(init, shapes, batch(3, bodies));
    expect(again.data.byteLength).toBeGreaterThan(again.ends.at(-1)!);
    expect(records(again).map((b) => noEmitted(b.toString('utf8')))).toEqual(
      records(small).map((b) => noEmitted(b.toString('utf8'))),
    );
  });
});
