/** The pure parts of snapshots: key-order chunk SQL, the watermark window rule, progress bookkeeping, signals. */

import { describe, expect, it, vi } from 'vitest';
import { buildChunkQuery, decodeKeyValue, encodeKeyValue, sqlLiteral } from '../../containers/producer/src/chunk-query';
import {
  chunkLimit,
  MIN_CHUNK_ROWS,
  maxRowBytes,
  maxValueBytes,
  rowsBytes,
} from '../../containers/producer/src/chunk-size';
import { buildEvent, serializeEvent } from '../../containers/producer/src/event-encoder';
import { EmfMetrics } from '../../containers/producer/src/metrics';
import type { CapturedTableChange } from '../../containers/producer/src/producer';
import { parseSignal } from '../../containers/producer/src/signal-table';
import {
  addJobs,
  EMPTY_STATE,
  finishChunk,
  isNewRequest,
  newJob,
  nextJob,
  parseState,
  progressOf,
  requestSeen,
  serializeState,
  startJob,
} from '../../containers/producer/src/snapshot-progress';
import type { SnapshotReader } from '../../containers/producer/src/snapshot-reader';
import { binlogColumnType, normaliseFraction } from '../../containers/producer/src/snapshot-reader';
import {
  keyText,
  keyTupleImage,
  RESYNC_REQUESTED,
  rowsToEmit,
  Snapshotter,
  type SnapshotterProps,
} from '../../containers/producer/src/snapshotter';
import { waitFor } from '../../local/services/process';

const shape = {
  db: 'shop',
  table: 'order_items',
  columns: [
    { name: 'order_id', type: 'bigint unsigned' },
    { name: 'line_no', type: 'int' },
    { name: 'qty', type: 'int' },
  ],
  pk: ['order_id', 'line_no'],
};

describe('snapshot logic', () => {
  it('reads the next chunk after the last key of a composite primary key, inside an operator WHERE', () => {
    const q = buildChunkQuery({
      db: 'shop',
      table: 'order_items',
      columns: ['order_id', 'line_no', 'qty'],
      pk: ['order_id', 'line_no'],
      after: ['42', 3],
      where: 'order_id < 100',
      limit: 500,
    });
    expect(q.sql).toBe(
      'SELECT `order_id`, `line_no`, `qty` FROM `shop`.`order_items` WHERE (order_id < 100) AND ' +
        '(`order_id` > ? OR (`order_id` = ? AND `line_no` > ?)) ORDER BY `order_id`, `line_no` LIMIT 500',
    );
    expect(q.params).toEqual(['42', '42', 3]);
  });

  it('writes key values into a text-protocol chunk query as literals no sql_mode reads differently', () => {
    const q = buildChunkQuery({
      db: 'shop',
      table: 'k',
      columns: ['s', 'b', 'n'],
      pk: ['s', 'b', 'n'],
      after: ["it's \\", { b64: Buffer.from([0x27, 0x5c]).toString('base64') }, 7],
      limit: 10,
      literals: true,
    });
    expect(q.sql).toBe(
      "SELECT `s`, `b`, `n` FROM `shop`.`k` WHERE (`s` > _utf8mb4 X'69742773205c'" +
        " OR (`s` = _utf8mb4 X'69742773205c' AND `b` > X'275c') OR (`s` = _utf8mb4 X'69742773205c' AND `b` = X'275c'" +
        ' AND `n` > 7)) ORDER BY `s`, `b`, `n` LIMIT 10',
    );
    expect(q.params).toEqual([]);
    expect(sqlLiteral('')).toBe("''");
    expect(sqlLiteral(Buffer.alloc(0))).toBe("X''");
    expect(() => sqlLiteral(1.5)).toThrow(/1\.5 \(number\) has no SQL literal form/);
  });

  it('keeps binary key values through the saved progress', () => {
    const key = encodeKeyValue(Buffer.from([0, 255]));
    expect(key).toEqual({ b64: 'AP8=' });
    expect(decodeKeyValue(JSON.parse(JSON.stringify(key)))).toEqual(Buffer.from([0, 255]));
  });

  it('drops exactly the chunk rows whose key changed between the watermarks', () => {
    const rows = [1, 2, 3].map((line) => ({ order_id: '7', line_no: line, qty: 1 }));
    // The binlog reader hands BIGINT UNSIGNED over as a string too: the same key text.
    const changed = new Set([keyText(shape, { order_id: '7', line_no: 2, qty: 9 })]);
    const { emit, dropped } = rowsToEmit(shape, rows, changed);
    expect(dropped).toBe(1);
    expect(emit.map((e) => [e.row.line_no, e.index])).toEqual([
      [1, 0],
      [3, 2],
    ]);
  });

  it('tracks jobs from pending to done, once per id, and reports rate and ETA', () => {
    let s = addJobs(EMPTY_STATE, [newJob('initial', 'initial:shop.a', 'shop', 'a', 0)]);
    s = addJobs(s, [newJob('initial', 'initial:shop.a', 'shop', 'a', 5)]);
    expect(s.jobs).toHaveLength(1);
    s = startJob(s, 'initial:shop.a', 1000, 0);
    s = finishChunk(s, 'initial:shop.a', { lastKey: [250], read: 250, emitted: 249, last: false }, 1000);
    expect(nextJob(s)).toMatchObject({ status: 'running', lastKey: [250], rowsRead: 250, rowsEmitted: 249 });
    expect(progressOf(nextJob(s)!, 1000)).toEqual({ fraction: 0.25, rowsPerS: 250, etaS: 3 });
    s = finishChunk(s, 'initial:shop.a', { lastKey: [300], read: 50, emitted: 50, last: true }, 2000);
    expect(nextJob(s)).toBeUndefined();
    expect(parseState(serializeState(s)).jobs[0]).toMatchObject({ status: 'done', rowsEstimate: 300, chunks: 2 });
  });

  it('acts on a backfill request once, also when the binlog is read again from before it', () => {
    const s = parseState(serializeState(requestSeen(EMPTY_STATE, '000001.000000004711.00000000')));
    expect(isNewRequest(s, '000001.000000004711.00000000')).toBe(false);
    expect(isNewRequest(s, '000001.000000000400.00000000')).toBe(false);
    expect(isNewRequest(s, '000002.000000000004.00000000')).toBe(true);
  });

  it('writes column types as the binlog metadata does, and fractional seconds to the column precision', () => {
    expect(binlogColumnType('bigint(20) unsigned')).toBe('bigint unsigned');
    expect(binlogColumnType('year(4)')).toBe('year');
    expect(binlogColumnType('decimal(12,2)')).toBe('decimal(12,2)');
    expect(normaliseFraction('-838:59:59.5', 6)).toBe('-838:59:59.500000');
    expect(normaliseFraction('2026-01-01 00:00:00', 3)).toBe('2026-01-01 00:00:00.000');
  });

  it('serialises events byte for byte as JSON.stringify does, with the shared column list cached', () => {
    const src = { serverId: 1, file: 'mysql-bin.000003', pos: 4711, gtid: '0-1-9', tx: '0-1-9', commitMs: 5 };
    for (const [op, before, after] of [
      ['read', null, { order_id: '7', line_no: 1, qty: 2 }],
      ['update', { order_id: '7', line_no: 1, qty: 2 }, { order_id: '7', line_no: 1, qty: 'é "x"\n' }],
      ['delete', { order_id: '7', line_no: 1, qty: null }, null],
    ] as const) {
      const e = buildEvent(shape, op, before, after, src, 3, shape.columns);
      expect(serializeEvent(e)).toBe(JSON.stringify(e));
      expect(serializeEvent(e)).toBe(JSON.stringify(e)); // second time from the cache
    }
    const pointer = {
      ...buildEvent(shape, 'insert', null, null, src, 0, shape.columns),
      claim_check: { bucket: 'b', key: 'k', bytes: 1 },
    };
    expect(serializeEvent(pointer)).toBe(JSON.stringify(pointer));
  });

  it('reads signals, and anything else as unknown', () => {
    expect(parseSignal({ id: 'w', type: 'watermark', data: '{"kind":"high","chunk":"c1"}' })).toEqual({
      type: 'watermark',
      id: 'w',
      kind: 'high',
      chunk: 'c1',
    });
    expect(
      parseSignal({ id: 'b', type: 'backfill', data: Buffer.from('{"table":"shop.orders","where":"id < 5"}') }),
    ).toEqual({ type: 'backfill', id: 'b', table: 'shop.orders', where: 'id < 5', pipeline: null });
    expect(parseSignal({ id: 'x', type: 'backfill', data: 'not json' })).toEqual({
      type: 'unknown',
      id: 'x',
      rawType: 'backfill',
    });
  });

  it('reads a resync request', () => {
    expect(parseSignal({ id: 'r', type: 'resync', data: '{"table":"shop.orders","pipeline":"p1"}' })).toEqual({
      type: 'resync',
      id: 'r',
      table: 'shop.orders',
      pipeline: 'p1',
    });
  });

  it('encodes range bounds like event images of the key columns', () => {
    expect(keyTupleImage(shape, ['18446744073709551615', 3])).toEqual({ order_id: '18446744073709551615', line_no: 3 });
  });
});

/** A snapshotter of pipeline `p1` (chunks of 100 rows, never congested, a fixed clock) with these props besides. */
function snapshotterWith(props: Partial<SnapshotterProps>): Snapshotter {
  return new Snapshotter({
    reader: {} as SnapshotReader,
    writeWatermark: async () => undefined,
    captures: () => true,
    pipelineId: 'p1',
    chunkRows: 100,
    emit: () => undefined,
    emitTableChange: () => undefined,
    congested: () => false,
    metrics: new EmfMetrics('p1', 'test', () => undefined),
    log: () => undefined,
    initialState: EMPTY_STATE,
    now: () => 1000,
    ...props,
  });
}

/** A reader of `shop.items` whose every chunk is keys 1 and 2. */
const itemsReader = {
  describe: async () => ({ db: 'shop', table: 'items', columns: [{ name: 'id', type: 'int' }], pk: ['id'] }),
  estimate: async () => 2,
  readChunk: async () => [{ id: 1 }, { id: 2 }],
} as unknown as SnapshotReader;

describe('resync requests in the snapshotter', () => {
  // The snapshot loop is not started: onSignal/resync act synchronously, and the reader is never called.
  const snapshotter = (captured: (db: string, t: string) => boolean) => {
    const emitted: CapturedTableChange[] = [];
    const logs: string[] = [];
    const s = snapshotterWith({
      captures: captured,
      emitTableChange: (c) => emitted.push(c),
      log: (_level, message) => logs.push(message),
    });
    return { s, emitted, logs };
  };
  const at = { row: {}, file: 'mysql-bin.000002', pos: 4711, gtid: '0-1-5', commitMs: 99 };

  it('emits one resync event at the signal position and queues a whole-table job, once per request', () => {
    const { s, emitted, logs } = snapshotter(() => true);
    const signal = { type: 'resync', id: 'resync-1', table: 'shop.orders', pipeline: null } as const;
    s.onSignal(signal, at);
    // The binlog read again from before the request (set-position back, or a restart from an older checkpoint).
    s.onSignal(signal, at);
    expect(emitted).toEqual([
      {
        db: 'shop',
        table: 'orders',
        op: 'resync',
        change: { reason: RESYNC_REQUESTED },
        file: 'mysql-bin.000002',
        pos: 4711,
        row: 0,
        gtid: '0-1-5',
        commitMs: 99,
      },
    ]);
    expect(s.state.jobs).toMatchObject([
      { id: 'resync-1', kind: 'resync', db: 'shop', table: 'orders', status: 'pending' },
    ]);
    expect(s.state.jobs[0]!.where).toBeUndefined();
    expect(logs).toContain('resync read again after the checkpoint moved back: not run twice');
  });

  it('lets the DDL path start a resync, also not twice for one position', () => {
    const { s, emitted } = snapshotter(() => true);
    const point = { file: 'mysql-bin.000003', pos: 100, gtid: null, commitMs: 5, rowIndex: 1 };
    expect(s.resync('shop', 'items', 'column id changed from int to varchar(10)', point)).toBe(true);
    expect(s.resync('shop', 'items', 'column id changed from int to varchar(10)', point)).toBe(false);
    expect(emitted.map((e) => [e.op, e.row, e.change.reason])).toEqual([
      ['resync', 1, 'column id changed from int to varchar(10)'],
    ]);
    expect(s.state.jobs.map((j) => j.id)).toEqual(['resync:shop.items@000003.000000000100.00000001']);
  });

  it('refuses a resync of a table the pipeline does not capture, as a failed job and without an event', () => {
    const { s, emitted } = snapshotter(() => false);
    s.onSignal({ type: 'resync', id: 'resync-2', table: 'other.t', pipeline: null }, at);
    s.onSignal({ type: 'resync', id: 'resync-3', table: 'shop.t', pipeline: 'another-pipeline' }, { ...at, pos: 5000 });
    expect(emitted).toEqual([]);
    expect(s.state.jobs).toMatchObject([
      { id: 'resync-2', status: 'failed', error: 'other.t is not captured by this pipeline' },
    ]);
  });

  it('emits none of a chunk whose table was quarantined inside its window, and stops the job with the reason', async () => {
    let captured = true;
    const marks: { kind: string; chunk: string }[] = [];
    const rows: unknown[] = [];
    const s = snapshotterWith({
      reader: itemsReader,
      writeWatermark: async (kind, chunk) => {
        marks.push({ kind, chunk });
      },
      captures: () => captured,
      emit: (r) => rows.push(r),
    });
    s.enqueue('initial', [{ db: 'shop', table: 'items' }]);
    s.start((err) => {
      throw err;
    });
    await waitFor('the high watermark', async () => marks.some((m) => m.kind === 'high'), 5000);
    const chunk = marks[0]!.chunk;
    s.onSignal({ type: 'watermark', id: 'w', kind: 'low', chunk }, at);
    captured = false; // the binlog reader set the table aside between the watermarks
    s.onSignal({ type: 'watermark', id: 'w', kind: 'high', chunk }, { ...at, pos: 4800 });
    await waitFor('the job to end', async () => s.state.jobs[0]?.status === 'failed', 5000);
    await s.stop();
    expect(rows).toEqual([]);
    expect(s.state.jobs[0]!.error).toBe(
      'shop.items is no longer captured (quarantined, or left out by the capture rules)',
    );
  });

  it('reads the next chunk when the core says it is no longer congested, without waiting for the next poll', async () => {
    // Only setTimeout is faked: the 20 ms poll never fires, so only `decongested` can let the loop on.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const marks: string[] = [];
    let congested = true;
    let release: (() => void) | undefined;
    const s = snapshotterWith({
      reader: itemsReader,
      writeWatermark: async (kind) => {
        marks.push(kind);
      },
      congested: () => congested,
      decongested: () =>
        new Promise<void>((r) => {
          release = () => {
            congested = false;
            r();
          };
        }),
    });
    const turns = async (until: () => boolean) => {
      for (let i = 0; i < 50 && !until(); i++) await new Promise((r) => setImmediate(r));
    };
    try {
      s.enqueue('initial', [{ db: 'shop', table: 'items' }]);
      s.start((err) => {
        throw err;
      });
      await turns(() => release !== undefined);
      expect(release).toBeDefined();
      expect(marks).toEqual([]); // waiting for the core, nothing read
      release!();
      await turns(() => marks.includes('high'));
      expect(marks).toEqual(['low', 'high']);
    } finally {
      // Lets a loop still in its poll go on (a failure above must not leave it waiting for a timer that never fires).
      congested = false;
      vi.runOnlyPendingTimers();
      vi.useRealTimers();
      await s.stop();
    }
  });

  it('stops a queued or running job of a table no longer captured (quarantined) before its next chunk, with the reason', async () => {
    let captured = true;
    const { s } = snapshotter(() => captured);
    s.enqueue('initial', [{ db: 'shop', table: 'items' }]);
    captured = false; // quarantined after the job was queued
    s.start((err) => {
      throw err;
    });
    await waitFor('the job to end', async () => s.state.jobs[0]?.status === 'failed', 5000);
    await s.stop();
    expect(s.state.jobs[0]!.error).toBe(
      'shop.items is no longer captured (quarantined, or left out by the capture rules)',
    );
  });
});

describe('snapshot chunk sizes', () => {
  it('bounds a row by its column types: short types, text by its length in UTF-8, large objects by their prefix', () => {
    expect(maxValueBytes('bigint(20) unsigned')).toBe(48);
    expect(maxValueBytes('datetime(6)')).toBe(48);
    expect(maxValueBytes('varchar(64)')).toBe(256);
    expect(maxValueBytes('varbinary(16)')).toBe(16);
    expect(maxValueBytes("enum('new','shipped')")).toBe(28);
    expect(maxValueBytes('text')).toBe(65_535);
    expect(maxValueBytes('longblob')).toBe(4_294_967_295);
    expect(maxValueBytes('geometry')).toBe(Number.POSITIVE_INFINITY);
    expect(maxRowBytes(shape)).toBe(3 * 48);
    // What fits, from MIN_CHUNK_ROWS to SNAPSHOT_CHUNK_ROWS.
    expect(chunkLimit(4096, 16 * 1024 * 1024, 340)).toBe(4096);
    expect(chunkLimit(4096, 16 * 1024 * 1024, 100_000)).toBe(167);
    expect(chunkLimit(4096, 16 * 1024 * 1024, Number.POSITIVE_INFINITY)).toBe(MIN_CHUNK_ROWS);
    expect(chunkLimit(8, 16 * 1024 * 1024, Number.POSITIVE_INFINITY)).toBe(8);
    expect(rowsBytes([{ id: 1, body: 'abc', raw: Buffer.alloc(5), none: null }])).toBe(8 + 3 + 5 + 8);
  });

  /** A snapshot of a keyed table of `count` rows made by `row`, with watermarks answered as the binlog reader would. */
  async function snapshotOf(
    columns: { name: string; type: string }[],
    count: number,
    row: (id: number) => Record<string, unknown>,
    chunkBytes: number,
  ) {
    const limits: number[] = [];
    const emitted: number[] = [];
    const ranges: { after: unknown; upto: unknown }[] = [];
    let pos = 1000;
    let s!: Snapshotter;
    s = snapshotterWith({
      reader: {
        describe: async () => ({ db: 'shop', table: 'docs', columns, pk: ['id'] }),
        estimate: async () => count,
        readChunk: async (_shape: unknown, after: unknown[] | undefined, _where: unknown, limit: number) => {
          limits.push(limit);
          const from = after ? Number(after[0]) + 1 : 1;
          const rows: Record<string, unknown>[] = [];
          for (let id = from; id <= count && rows.length < limit; id++) rows.push(row(id));
          return rows;
        },
      } as unknown as SnapshotReader,
      // The binlog reader reads each watermark after its commit, in the order they were written.
      writeWatermark: async (kind, chunk) => {
        const at = { row: {}, file: 'mysql-bin.000002', pos: pos++, gtid: null, commitMs: 99 };
        setImmediate(() => s.onSignal({ type: 'watermark', id: `w${at.pos}`, kind, chunk }, at));
      },
      chunkBytes,
      emit: (r) => emitted.push(Number(r.after!.id)),
      emitTableChange: (c) => {
        const { after, upto } = (c.change as { range: { after: unknown; upto: unknown } }).range;
        ranges.push({ after, upto });
      },
    });
    s.enqueue('initial', [{ db: 'shop', table: 'docs' }]);
    s.start((err) => {
      throw err;
    });
    await waitFor('the job to end', async () => s.state.jobs[0]?.status === 'done', 10_000);
    await s.stop();
    return { limits, emitted, ranges };
  }

  it('reads a table of large rows in chunks that fit the bytes, first by the types and then by the rows read, and misses none', async () => {
    const bytes = 1024 * 1024;
    const columns = [
      { name: 'id', type: 'int' },
      { name: 'body', type: 'longtext' },
    ];
    const { limits, emitted, ranges } = await snapshotOf(
      columns,
      200,
      (id) => ({ id, body: 'x'.repeat(20_000) }),
      bytes,
    );
    // LONGTEXT has no useful bound: the first chunk reads the fewest rows; then 20,008 bytes a row size the others.
    const fit = Math.floor(bytes / 20_008);
    expect(limits).toEqual([MIN_CHUNK_ROWS, fit, fit, fit, fit]);
    expect(emitted).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    // A chunk shorter than SNAPSHOT_CHUNK_ROWS (100) but as long as it asked for is not the table's end: only the
    // last chunk's range runs to the end (upto null), then the whole table once more.
    expect(ranges.map((r) => r.upto === null)).toEqual([false, false, false, false, true, true]);
    expect(ranges.at(-1)).toEqual({ after: null, upto: null });
  });

  it('reads a table of short columns in full chunks from the first', async () => {
    const columns = [
      { name: 'id', type: 'int' },
      { name: 'note', type: 'varchar(64)' },
    ];
    const { limits, emitted } = await snapshotOf(columns, 250, (id) => ({ id, note: `n${id}` }), 1024 * 1024);
    expect(limits).toEqual([100, 100, 100]);
    expect(emitted).toHaveLength(250);
  });
});
