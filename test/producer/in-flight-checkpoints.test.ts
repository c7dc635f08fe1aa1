/**
 * The in-flight checkpoint list (Maxwell's): the checkpoint the producer may save (`ProducerCore.safe`) only ever moves
 * to a transaction boundary whose events are all acknowledged by Kinesis, never into the middle of a transaction and
 * never past an event still in flight. Tested through ProducerCore and the real KinesisSink; only Kinesis itself is a
 * stand-in, whose PutRecords calls the test answers one at a time: acknowledgements arriving part-way through a
 * transaction, in a chosen order, are what a real stream cannot be made to produce on cue.
 */
import type { KinesisClient, PutRecordsCommand, PutRecordsCommandOutput } from '@aws-sdk/client-kinesis';
import { describe, expect, it } from 'vitest';
import type { Boundary } from '../../containers/producer/src/binlog-source';
import type { TableShape } from '../../containers/producer/src/event-encoder';
import { KinesisSink } from '../../containers/producer/src/kinesis-sink';
import { EmfMetrics } from '../../containers/producer/src/metrics';
import { ProducerCore } from '../../containers/producer/src/producer';
import { EMPTY_STATE, type SnapshotState } from '../../containers/producer/src/snapshot-progress';
import { TableFilter } from '../../containers/producer/src/table-filter';

/** A Kinesis whose PutRecords calls wait until the test answers them, oldest first. */
class HeldKinesis {
  readonly calls: { records: number; answer: (ok: boolean) => void }[] = [];

  readonly client = {
    send: (cmd: PutRecordsCommand): Promise<PutRecordsCommandOutput> => {
      const records = cmd.input.Records ?? [];
      return new Promise((resolve, reject) => {
        this.calls.push({
          records: records.length,
          answer: (ok) =>
            ok
              ? resolve({ FailedRecordCount: 0, Records: records.map(() => ({ SequenceNumber: '1' })), $metadata: {} })
              : reject(new Error('stand-in Kinesis refused the call')),
        });
      });
    },
  } as unknown as KinesisClient;

  /** Answers the oldest open call, then lets the sink act on the answer. */
  async answer(ok = true): Promise<number> {
    const call = this.calls.shift();
    if (!call) throw new Error('no PutRecords call is waiting');
    call.answer(ok);
    await settle();
    return call.records;
  }
}

/** Lets pending promise callbacks (the sink's pump) run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

const SHAPE: TableShape = { db: 'shop', table: 'orders', columns: [{ name: 'id', type: 'int(11)' }], pk: ['id'] };
const NOTES: TableShape = {
  db: 'shop',
  table: 'notes',
  columns: [
    { name: 'id', type: 'int(11)' },
    { name: 'note', type: 'longtext' },
  ],
  pk: ['id'],
};
const boundary = (pos: number): Boundary => ({
  file: 'mysql-bin.000001',
  pos,
  gtid: null,
  commitMs: 1_700_000_000_000,
});

function pipeline(
  opts: { maxInFlight?: number; maxInFlightBytes?: number; maxAttempts?: number; snapshot?: () => SnapshotState } = {},
) {
  const kinesis = new HeldKinesis();
  const flow: string[] = [];
  let core: ProducerCore | undefined;
  const sink = new KinesisSink({
    client: kinesis.client,
    streamName: 'changes',
    maxAttempts: opts.maxAttempts ?? 12,
    sleep: async () => undefined,
    onAcked: (low) => core?.acked(low),
  });
  core = new ProducerCore({
    serverId: 1,
    filter: new TableFilter({ include: [], exclude: [], excludeColumns: [], hashColumns: [], maskColumns: [] }),
    sink,
    partitionKeyMode: 'table',
    metrics: new EmfMetrics('test', 'Test', () => undefined),
    maxInFlight: opts.maxInFlight ?? 1000,
    ...(opts.maxInFlightBytes !== undefined ? { maxInFlightBytes: opts.maxInFlightBytes } : {}),
    pause: () => flow.push('pause'),
    resume: () => flow.push('resume'),
    ...(opts.snapshot ? { snapshotState: opts.snapshot } : {}),
    // Rows encoded on this thread (the default), so each call's records are known (the worker: encode-worker.test.ts).
    encodeWorker: false,
  });
  let pos = 100;
  /** An insert; with `note`, into a table of a text column too. */
  const row = (id: number, note?: string) =>
    core!.onRow({
      shape: note === undefined ? SHAPE : NOTES,
      op: 'insert',
      before: null,
      after: note === undefined ? { id } : { id, note },
      file: 'mysql-bin.000001',
      pos: pos++,
      row: 0,
      gtid: null,
      commitMs: 1_700_000_000_000,
    });
  return { core, sink, kinesis, flow, row };
}

describe('the in-flight checkpoint list', () => {
  it('does not move the checkpoint into a transaction whose events are only partly acknowledged', async () => {
    const { core, kinesis, row } = pipeline();
    row(1); // the sink sends this one at once, alone
    row(2);
    row(3);
    core.onCommit(boundary(200));
    expect(await kinesis.answer()).toBe(1);
    expect(core.safe).toBeUndefined();
    expect(await kinesis.answer()).toBe(2);
    expect(core.safe).toEqual(boundary(200));
  });

  it('moves the checkpoint to the newest boundary whose events are all acknowledged, and no further', async () => {
    const { core, kinesis, row } = pipeline();
    row(1);
    core.onCommit(boundary(200));
    row(2);
    core.onCommit(boundary(300));
    row(3);
    core.onCommit(boundary(400));
    row(4);
    await kinesis.answer(); // event 1
    expect(core.safe).toEqual(boundary(200));
    await kinesis.answer(); // events 2 to 4: transactions 300 and 400 complete, the fourth (no commit yet) is not
    expect(core.safe).toEqual(boundary(400));
    await core.drain();
    expect(core.safe).toEqual(boundary(400));
  });

  it('moves the checkpoint at once past a transaction with no captured event when nothing is in flight', () => {
    const { core } = pipeline();
    core.onCommit(boundary(200));
    expect(core.safe).toEqual(boundary(200));
  });

  it('holds a transaction with no captured event behind the events still in flight before it', async () => {
    const { core, kinesis, row } = pipeline();
    row(1);
    core.onCommit(boundary(200));
    core.onCommit(boundary(300)); // every row of it filtered out
    expect(core.safe).toBeUndefined();
    await kinesis.answer();
    expect(core.safe).toEqual(boundary(300));
  });

  it('saves with each boundary the snapshot progress current when it was reached', async () => {
    let state: SnapshotState = EMPTY_STATE;
    const { core, kinesis, row } = pipeline({ snapshot: () => state });
    row(1);
    const atFirst: SnapshotState = { jobs: [], requestsUpTo: 'mysql-bin.000001:00000000101' };
    state = atFirst;
    core.onCommit(boundary(200));
    row(2);
    state = { jobs: [], requestsUpTo: 'mysql-bin.000001:00000000102' };
    core.onCommit(boundary(300));
    await kinesis.answer(); // event 1 only
    expect(core.safe).toEqual(boundary(200));
    expect(core.safeSnapshot).toBe(atFirst);
  });

  it('never moves the checkpoint when Kinesis refuses the events (the sink fails instead)', async () => {
    const { core, sink, kinesis, row } = pipeline({ maxAttempts: 2 });
    row(1);
    core.onCommit(boundary(200));
    await kinesis.answer(false);
    await kinesis.answer(false);
    expect(sink.failure?.message).toMatch(/failed 2 times in a row/);
    expect(core.safe).toBeUndefined();
    await expect(core.drain()).rejects.toThrow(/stopping without checkpointing/);
    expect(core.safe).toBeUndefined();
  });

  it('pauses reading at maxInFlight events not yet acknowledged and resumes below half of it', async () => {
    const { core, kinesis, flow, row } = pipeline({ maxInFlight: 4 });
    for (let id = 1; id <= 4; id++) row(id);
    core.onCommit(boundary(200));
    expect(flow).toEqual(['pause']);
    await kinesis.answer(); // event 1: three still pending, not below 2
    expect(flow).toEqual(['pause']);
    await kinesis.answer(); // events 2 to 4
    expect(flow.at(-1)).toBe('resume');
    expect(core.safe).toEqual(boundary(200));
  });

  it('pauses reading at maxInFlightBytes of records not yet acknowledged, far below maxInFlight events, and resumes below half of both', async () => {
    const { core, sink, kinesis, flow, row } = pipeline({ maxInFlight: 1000, maxInFlightBytes: 1024 * 1024 });
    const note = 'n'.repeat(100 * 1024);
    let rows = 0;
    // The first goes out at once, alone; the others wait behind its key.
    while (flow.length === 0 && rows < 1000) row(++rows, note);
    core.onCommit(boundary(200));
    // 100 KiB rows: paused at the eleventh (1 MiB and a few hundred bytes of headers), 989 events short of maxInFlight.
    expect(rows).toBe(11);
    expect(flow).toEqual(['pause']);
    expect(sink.pendingBytes).toBeGreaterThanOrEqual(1024 * 1024);
    expect(core.halfFull).toBe(true);
    let belowHalf = false;
    void core.whenBelowHalf().then(() => {
      belowHalf = true;
    });
    expect(await kinesis.answer()).toBe(1); // ten rows, about 1 MB, still pending: above half
    expect(flow).toEqual(['pause']);
    expect(belowHalf).toBe(false);
    expect(await kinesis.answer()).toBe(10);
    expect(flow.at(-1)).toBe('resume');
    expect(sink.pendingBytes).toBe(0);
    expect(belowHalf).toBe(true);
    expect(core.halfFull).toBe(false);
    expect(core.safe).toEqual(boundary(200));
  });

  it('resumes reading once enough events are acknowledged, though the oldest one still waits out its backoff', async () => {
    // Kinesis throttles the first event's entry once (a partial failure); its resend waits for a backoff the test holds.
    let calls = 0;
    const client = {
      send: async (cmd: PutRecordsCommand) => {
        const records = cmd.input.Records ?? [];
        const first = calls++ === 0;
        return {
          FailedRecordCount: first ? 1 : 0,
          Records: records.map((_, i) =>
            first && i === 0
              ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'slow down' }
              : { SequenceNumber: '1', ShardId: 'shardId-000000000000' },
          ),
        };
      },
    } as unknown as KinesisClient;
    let endBackoff!: () => void;
    const backoff = new Promise<void>((r) => {
      endBackoff = r;
    });
    const flow: string[] = [];
    let core: ProducerCore | undefined;
    const sink = new KinesisSink({
      client,
      streamName: 'changes',
      sleep: () => backoff,
      onAcked: (low) => core?.acked(low),
    });
    core = new ProducerCore({
      serverId: 1,
      filter: new TableFilter({ include: [], exclude: [], excludeColumns: [], hashColumns: [], maskColumns: [] }),
      sink,
      partitionKeyMode: 'table-pk',
      metrics: new EmfMetrics('test', 'Test', () => undefined),
      maxInFlight: 4,
      pause: () => flow.push('pause'),
      resume: () => flow.push('resume'),
      encodeWorker: false,
    });
    for (let id = 1; id <= 4; id++)
      core.onRow({
        shape: SHAPE,
        op: 'insert',
        before: null,
        after: { id },
        file: 'mysql-bin.000001',
        pos: 100 + id,
        row: 0,
        gtid: null,
        commitMs: 1_700_000_000_000,
      });
    core.onCommit(boundary(200));
    expect(flow).toEqual(['pause']);
    await settle();
    // Events 2 to 4 are in Kinesis; event 1 waits for its resend: 1 pending, below half of 4.
    expect(sink.pending).toBe(1);
    expect(flow).toEqual(['pause', 'resume']);
    expect(core.safe).toBeUndefined();
    endBackoff();
    await core.drain();
    expect(core.safe).toEqual(boundary(200));
  });
});
