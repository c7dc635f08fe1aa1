/**
 * Ordered, lossless delivery to Kinesis with several PutRecords calls in flight.
 *
 * Order is only owed per partition key (Kinesis orders per shard, and a key always maps to one shard), so the sink
 * keeps up to `maxCallsInFlight` calls going for disjoint sets of keys: a key with a record in flight, or waiting to be
 * resent, is skipped (with every later record of it) until that record is acknowledged. PutRecords does not keep order
 * when some entries fail, so after a partial failure the sink resends, for every partition key that had a failure, all
 * of that key's records of the call from its first failed one on (including later ones that succeeded): the last
 * delivery of each key's records is in order, and duplicates carry the same position, which the merge discards.
 * Nothing is ever dropped: a throttled record is resent until it is written (the stream's limit slows the producer
 * down); when a record fails otherwise `maxAttempts` times in a row the sink fails, and the producer stops without
 * checkpointing. The lowest sequence number not yet acknowledged (across the queue, the calls in flight and the
 * records waiting to be resent) is what the checkpoint may move past (`onAcked`).
 */
import { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { clientConfig } from '../../../shared/aws-client-config';
import { ProducerError } from './errors';

/**
 * The producer's Kinesis client: the SDK's defaults (AWS, the task role), or an endpoint override, without the SDK's
 * logger middleware. With no logger configured the SDK still runs it: after every call it builds a copy of the request
 * and of the answer with sensitive fields masked (500 records in, 500 entries out) and hands both to a logger that
 * does nothing, about a fifth of the sink's CPU in a profile of the benchmark. The producer reports its calls itself
 * (PutLatency, PutRetries, PutThrottles, its errors), so nothing it logged is lost.
 */
export function sinkClient(endpoint: string | undefined): KinesisClient {
  const client = new KinesisClient(clientConfig(endpoint));
  client.middlewareStack.remove('loggerMiddleware');
  return client;
}

export interface SinkRecord {
  readonly seq: number;
  readonly partitionKey: string;
  readonly data: Uint8Array;
  /** Must resolve before the record may be sent (a claim-check object being written); a rejection fails the sink. */
  ready?: Promise<void> | undefined;
}

export interface SinkStats {
  onPut?(latencyMs: number, records: number, bytes: number): void;
  onRetry?(failed: number, throttled: number): void;
}

export interface KinesisSinkProps {
  readonly client: KinesisClient;
  readonly streamName: string;
  /**
   * PutRecords calls in flight at once, for disjoint partition keys. One call takes a round trip (30–60 ms in AWS), so
   * one call at a time caps a producer near 500 records per round trip. @default 8
   */
  readonly maxCallsInFlight?: number;
  /**
   * Consecutive failures of one record before giving up: a failed call, or its entry failed otherwise than throttled
   * (`InternalFailure`). Throttling never gives up (below). @default 12
   */
  readonly maxAttempts?: number;
  /** Backoff before resending failed records: full jitter over `baseDelayMs × 2^attempts`, capped. @default 100 */
  readonly baseDelayMs?: number;
  /** Cap of the backoff after a failed call or entries failed otherwise than throttled. @default 5000 */
  readonly maxDelayMs?: number;
  /**
   * Backoff when every failed entry was throttled (`ProvisionedThroughputExceededException`): full jitter over
   * `baseThrottleDelayMs × 2^(throttles − 1)`, where throttles counts the record's consecutive throttled deliveries.
   * @default 50
   */
  readonly baseThrottleDelayMs?: number;
  /**
   * Cap of that backoff. A throttled shard is over its per-second limit (1,000 records/s and 1 MiB/s a shard: Kinesis
   * API reference, PutRecords, https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html), which
   * frees up within the second: waits spread over a quarter of it retry soon without all landing at once, where a
   * longer wait would only hold the keys (and the checkpoint) back. Throttled records are never given up: a stream too
   * small for the load slows the producer down (reading pauses, `SecondsBehindSource` and `PutThrottles` rise) instead
   * of stopping it, since a restart would meet the same limit. @default 250
   */
  readonly maxThrottleDelayMs?: number;
  /** Called with the lowest sequence number not yet acknowledged (everything below is in Kinesis). */
  readonly onAcked?: (lowestUnacked: number) => void;
  /** Called once, when the sink fails (it then takes nothing more; `failure` holds the error). */
  readonly onFailed?: (err: Error) => void;
  readonly stats?: SinkStats;
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * What the producer core needs of a sink: this file's KinesisSink on the caller's thread, or the same sink on a thread
 * of its own (threaded-kinesis-sink.ts).
 */
export interface Sink {
  /** Records not yet acknowledged. */
  readonly pending: number;
  /** Bytes of the records not yet acknowledged (their data). */
  readonly pendingBytes: number;
  /** PutRecords calls in flight right now. */
  readonly callsInFlight: number;
  /** Set once the sink has failed: nothing more is sent, and the producer must stop without checkpointing. */
  readonly failure: Error | undefined;
  /** Takes a record (in sequence order); throws once the sink has failed. */
  enqueue(rec: SinkRecord): void;
  /**
   * Takes a record given as UTF-8 bytes and the text that follows them, as `enqueue` does, and returns its size in
   * bytes; for a sink that writes them into a buffer of its own (threaded-kinesis-sink.ts) without a Buffer per record.
   * Optional: without it the caller builds the record's bytes and calls `enqueue`.
   */
  enqueueParts?(seq: number, partitionKey: string, head: Uint8Array, rest: string): number;
  /** Resolves once everything enqueued so far is in Kinesis; rejects if the sink failed. */
  drain(): Promise<void>;
}

export const MAX_RECORDS_PER_CALL = 500;
export const MAX_BYTES_PER_CALL = 5 * 1024 * 1024;
export const MAX_RECORD_BYTES = 1024 * 1024;
export const DEFAULT_CALLS_IN_FLIGHT = 8;
/** Queued records looked at per batch while skipping busy keys (bounds the work when one key holds the queue). */
const MAX_SCAN = 50_000;

interface Queued extends SinkRecord {
  /**
   * Consecutive failed deliveries of this record (set at its first failure: the common record is never copied); back
   * to 0 when a resend of it was written.
   */
  attempts?: number;
  /** Consecutive throttled deliveries of this record (the throttle backoff's exponent); back to 0 when written. */
  throttles?: number;
}

/** Records out of the queue: in a PutRecords call, or waiting out the backoff before their resend. */
interface Out {
  readonly records: Queued[];
}

export class KinesisSink implements Sink {
  /**
   * Records not yet handed to a call, in sequence order (resends are merged back in by sequence), from `head` on:
   * taking a call's records off the front moves `head` instead of copying the rest of the queue.
   */
  private queue: Queued[] = [];
  private head = 0;
  /** Records out (in calls, or waiting to be resent). */
  private outRecords = 0;
  /** Bytes of the records not yet acknowledged: queued, in a call, or waiting to be resent. */
  private queuedBytes = 0;
  /** Per partition key, how many of its records are out (in a call or waiting to be resent). */
  private readonly busy = new Map<string, number>();
  private readonly out = new Set<Out>();
  /**
   * `queue[0, blockedUpTo)` was found blocked by the keys in `blockedKeys`, and nothing has been released since: the
   * next batch looks from there on (otherwise every enqueue behind a busy hot key would scan the whole queue again).
   */
  private blockedUpTo = 0;
  private blockedKeys = new Set<string>();
  /** Queued records looked at while filling calls, in total (the scan's cost: it stays linear in the records sent). */
  recordsScanned = 0;
  private calls = 0;
  private nextSeqHint = 0;
  private lastAcked = 0;
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private readonly maxCalls: number;
  failure: Error | undefined;

  constructor(private readonly props: KinesisSinkProps) {
    this.maxCalls = props.maxCallsInFlight ?? DEFAULT_CALLS_IN_FLIGHT;
    if (!Number.isInteger(this.maxCalls) || this.maxCalls < 1 || this.maxCalls > 64)
      throw new ProducerError(
        'CONFIG_INVALID',
        `maxCallsInFlight=${JSON.stringify(props.maxCallsInFlight)}: must be an integer from 1 to 64`,
      );
  }

  /** Records not yet acknowledged (queued, in a call in flight, or waiting to be resent). */
  get pending(): number {
    return this.queue.length - this.head + this.outRecords;
  }
  get pendingBytes(): number {
    return this.queuedBytes;
  }
  /** PutRecords calls in flight right now. */
  get callsInFlight(): number {
    return this.calls;
  }

  enqueue(rec: SinkRecord): void {
    if (this.failure) throw this.failure;
    // Watched from the start: a rejected claim-check write fails the sink even while the record waits its turn.
    if (rec.ready) this.watch(rec);
    this.queue.push(rec);
    this.queuedBytes += rec.data.length;
    this.nextSeqHint = rec.seq + 1;
    this.pump();
  }

  /** Resolves once everything enqueued so far is in Kinesis; rejects if the sink failed. */
  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private idle(): boolean {
    return this.queue.length === this.head && this.out.size === 0;
  }

  private settle(): void {
    if (!this.failure && !this.idle()) return;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) this.failure ? w.reject(this.failure) : w.resolve();
  }

  private fail(err: Error): void {
    if (!this.failure) {
      this.failure = err;
      this.props.onFailed?.(err);
    }
    this.settle();
  }

  private hold(records: readonly Queued[]): Out {
    const o: Out = { records: records as Queued[] };
    this.out.add(o);
    this.outRecords += records.length;
    for (const r of records) this.busy.set(r.partitionKey, (this.busy.get(r.partitionKey) ?? 0) + 1);
    return o;
  }

  /** A key may have become free, or the queue was reordered: the next batch looks from the start again. */
  private unblock(): void {
    this.blockedUpTo = 0;
    this.blockedKeys = new Set();
  }

  private release(o: Out): void {
    this.unblock();
    this.out.delete(o);
    this.outRecords -= o.records.length;
    for (const r of o.records) {
      const n = this.busy.get(r.partitionKey)! - 1;
      if (n === 0) this.busy.delete(r.partitionKey);
      else this.busy.set(r.partitionKey, n);
    }
  }

  /**
   * The next call's records: queued records in sequence order, skipping every key that is busy or whose earlier
   * record is skipped (its claim-check object not written yet), up to the call's record and byte limits.
   */
  private takeBatch(): Queued[] {
    const batch: Queued[] = [];
    const skipped = this.blockedKeys;
    const q = this.queue;
    const start = this.head + this.blockedUpTo;
    let skips = 0;
    let bytes = 0;
    let i = start;
    for (const end = start + MAX_SCAN; i < q.length && batch.length < MAX_RECORDS_PER_CALL && i < end; i++) {
      const r = q[i]!;
      const key = r.partitionKey;
      if (this.busy.has(key) || skipped.has(key) || r.ready) {
        skipped.add(key);
        skips++;
        continue;
      }
      const size = r.data.length + Buffer.byteLength(key);
      if (batch.length > 0 && bytes + size > MAX_BYTES_PER_CALL) break;
      batch.push(r);
      bytes += size;
    }
    this.recordsScanned += i - start;
    if (batch.length > 0) {
      if (start === this.head && skips === 0) {
        // The call takes the front of the queue: move past it (and drop the consumed front now and then).
        this.head = i;
        if (this.head >= 4096 && this.head * 2 >= q.length) {
          this.queue = q.slice(this.head);
          this.head = 0;
        }
      } else {
        const taken = new Set(batch);
        const rest = q.slice(this.head, start);
        for (let j = start; j < i; j++) if (!taken.has(q[j]!)) rest.push(q[j]!);
        this.queue = i < q.length ? rest.concat(q.slice(i)) : rest;
        this.head = 0;
      }
    }
    // Whatever was skipped stays blocked (its key busy or its claim check pending) until something is released.
    this.blockedUpTo += skips;
    return batch;
  }

  /** Once a record's claim-check write is done it may be sent (the sink pumps again); if it fails, so does the sink. */
  private watch(r: SinkRecord): void {
    r.ready!.then(
      () => {
        r.ready = undefined;
        this.unblock();
        this.pump();
      },
      (e: Error) =>
        this.fail(
          new ProducerError(
            'CLAIM_CHECK_FAILED',
            `could not park an oversized event in S3 before sending its pointer: ${e.message}; stopping without checkpointing`,
          ),
        ),
    );
  }

  private pump(): void {
    while (!this.failure && this.calls < this.maxCalls && this.queue.length > this.head) {
      const batch = this.takeBatch();
      if (batch.length === 0) return;
      void this.send(this.hold(batch));
    }
  }

  private async send(o: Out): Promise<void> {
    const batch = o.records;
    this.calls++;
    const started = Date.now();
    let failedIdx: number[] = [];
    /** Entries answered ProvisionedThroughputExceededException: their shard is over its limit, not failing. */
    const throttledIdx = new Set<number>();
    try {
      const res = await this.props.client.send(
        new PutRecordsCommand({
          StreamName: this.props.streamName,
          Records: batch.map((r) => ({ PartitionKey: r.partitionKey, Data: r.data })),
        }),
      );
      const results = res.Records ?? [];
      if (results.length !== batch.length) failedIdx = batch.map((_, i) => i);
      else
        results.forEach((r, i) => {
          if (r.ErrorCode) {
            failedIdx.push(i);
            // An entry's ErrorCode is ProvisionedThroughputExceededException or InternalFailure (Kinesis API
            // reference, PutRecordsResultEntry: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsResultEntry.html).
            if (r.ErrorCode === 'ProvisionedThroughputExceededException') throttledIdx.add(i);
          }
        });
    } catch {
      failedIdx = batch.map((_, i) => i);
    }
    this.calls--;
    let bytes = 0;
    for (const r of batch) bytes += r.data.length;
    this.props.stats?.onPut?.(Date.now() - started, batch.length - failedIdx.length, bytes);
    if (failedIdx.length === 0) {
      this.queuedBytes -= bytes;
      this.release(o);
    } else {
      // Per failed key, everything from its first failure on is resent; the rest of the call is acknowledged.
      const failed = new Set(failedIdx);
      const firstFail = new Map<string, number>();
      for (const i of failedIdx) if (!firstFail.has(batch[i]!.partitionKey)) firstFail.set(batch[i]!.partitionKey, i);
      const resend: Queued[] = [];
      let attempts = 0;
      let throttles = 0;
      batch.forEach((r, i) => {
        const f = firstFail.get(r.partitionKey);
        if (f !== undefined && i >= f) {
          resend.push(r);
          // Consecutive failures: a record written this time (resent only to keep its key in order) starts over.
          if (throttledIdx.has(i)) r.throttles = (r.throttles ?? 0) + 1;
          else if (failed.has(i)) r.attempts = (r.attempts ?? 0) + 1;
          else {
            if (r.attempts) r.attempts = 0;
            if (r.throttles) r.throttles = 0;
          }
          attempts = Math.max(attempts, r.attempts ?? 0);
          throttles = Math.max(throttles, r.throttles ?? 0);
        } else this.queuedBytes -= r.data.length;
      });
      // The acknowledged records leave; the keys to resend stay busy through the backoff.
      this.release(o);
      const waiting = this.hold(resend);
      this.props.stats?.onRetry?.(failedIdx.length, throttledIdx.size);
      if (attempts >= (this.props.maxAttempts ?? 12)) {
        this.fail(
          new ProducerError(
            'KINESIS_RETRIES_EXHAUSTED',
            `PutRecords to ${this.props.streamName} failed ${attempts} times in a row (${failedIdx.length} of ${batch.length} records in the last attempt); stopping without checkpointing`,
          ),
        );
        return;
      }
      const sleep = this.props.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
      this.reportAcked(true);
      this.pump();
      const onlyThrottled = throttledIdx.size === failedIdx.length;
      const cap = onlyThrottled
        ? Math.min(this.props.maxThrottleDelayMs ?? 250, (this.props.baseThrottleDelayMs ?? 50) * 2 ** (throttles - 1))
        : Math.min(this.props.maxDelayMs ?? 5000, (this.props.baseDelayMs ?? 100) * 2 ** attempts);
      await sleep(Math.random() * cap);
      this.release(waiting);
      this.queue = mergeBySeq(resend, this.queue.slice(this.head));
      this.head = 0;
      this.unblock();
    }
    this.reportAcked(true);
    this.pump();
    this.settle();
  }

  /**
   * Tells `onAcked` the lowest sequence number not yet acknowledged: when it moved forward, and after every answer
   * (`answered`) even when it did not. The lowest record may be waiting out a backoff while everything after it is
   * acknowledged; the producer then learns that fewer events are pending and resumes reading (it paused at its limit).
   */
  private reportAcked(answered = false): void {
    if (this.failure) return;
    let low = this.queue.length > this.head ? this.queue[this.head]!.seq : this.nextSeqHint;
    for (const o of this.out) if (o.records[0]!.seq < low) low = o.records[0]!.seq;
    if (low < this.lastAcked || (low === this.lastAcked && !answered)) return;
    this.lastAcked = low;
    this.props.onAcked?.(low);
  }
}

/** Two lists sorted by `seq`, merged (the resent records go back where they were). */
function mergeBySeq(a: Queued[], b: Queued[]): Queued[] {
  if (a.length === 0) return b;
  if (b.length === 0 || a.at(-1)!.seq < b[0]!.seq) return a.concat(b);
  const out: Queued[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) out.push(a[i]!.seq < b[j]!.seq ? a[i++]! : b[j++]!);
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}
