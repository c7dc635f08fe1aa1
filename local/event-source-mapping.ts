/**
 * The local stand-in for Lambda's Kinesis event source mapping (standard iterator): reads every shard of a stream and
 * invokes a handler with Lambda's event shape, as the deployed mapping invokes the stream apply Lambda
 * (lambdas/merge/stream-handler.ts). Used by local/stream-apply-main.ts.
 *
 * What it reproduces, from the Lambda developer guide (with-kinesis, services-kinesis-parameters,
 * services-kinesis-batchfailurereporting, kinesis-on-failure-destination):
 * - each shard polled at a base rate of once per `pollMs` (Lambda: once per second), at once again while a poll fills
 *   a batch (more records are waiting);
 * - a batch is invoked when it holds `batchSize` records, when its payload nears Lambda's 6 MB invocation limit, or
 *   `batchingWindowMs` after its first record was read (MaximumBatchingWindowInSeconds; 0: with what one poll got);
 * - one batch in flight per shard, so a shard's records reach the handler in order (ParallelizationFactor 1: the
 *   deployed mapping may run up to 10 batches per shard at once, one per partition key range);
 * - ReportBatchItemFailures: the records before the lowest reported sequence number are done, the rest retried; an
 *   identifier that is empty or not in the batch counts as a failure of the whole batch;
 * - BisectBatchOnFunctionError: a batch whose invocation threw is split in two halves, retried one after the other;
 *   splitting does not consume the retry quota;
 * - MaximumRetryAttempts: after that many retries of a batch (bisect halves inherit their parent's count), the batch
 *   goes to the on-failure destination (an S3 bucket: the invocation record with the batch's payload, here also the
 *   last error as `reason`) and the shard moves on;
 * - the checkpoint (per shard, the last sequence number fully processed: succeeded or sent to the destination) is
 *   saved after each such batch (a temporary file renamed), so a kill re-delivers what was not finished:
 *   at-least-once, as in AWS.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import {
  type _Record,
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import { LAKE_ERROR_PREFIX } from '../shared/lake-layout';

/** PostgreSQL application_name of the process that runs this mapping with the merge (local/stream-apply-main.ts). */
export const STREAM_APPLY_APPLICATION_NAME = 'local-stream-apply';

/** Where batches out of retries are kept, under the lake bucket: `<prefix><shardId>/<firstSeq>-<lastSeq>.json`. */
export const STREAM_APPLY_FAILURE_PREFIX = `${LAKE_ERROR_PREFIX}stream-apply/`;

/**
 * What the handler may answer: Lambda's partial batch response. `reason` is this stand-in's addition (Lambda reads
 * only `batchItemFailures`): why the records were reported, kept with the batch if it ends at the on-failure
 * destination.
 */
export type LocalStreamHandlerResponse = KinesisStreamBatchResponse & { readonly reason?: string };

// Lambda's own handler type (KinesisStreamHandler) answers `KinesisStreamBatchResponse | void`.
// biome-ignore lint/suspicious/noConfusingVoidType: a handler that returns nothing is a complete success
export type LocalStreamHandler = (event: KinesisStreamEvent) => Promise<LocalStreamHandlerResponse | void>;

export interface LocalEventSourceMappingProps {
  readonly kinesis: KinesisClient;
  /** Client of the on-failure destination's bucket. */
  readonly s3: S3Client;
  readonly streamName: string;
  /** The on-failure destination: batches out of retries are written under `errors/stream-apply/` here. */
  readonly failureBucket: string;
  /** The per-shard checkpoints (`{ shardId: sequenceNumber }`). */
  readonly stateFile: string;
  readonly handler: LocalStreamHandler;
  /** BatchSize: records per invocation at most (1–10000). @default 100 */
  readonly batchSize?: number;
  /** MaximumBatchingWindowInSeconds, in ms (0–300000). @default 0 */
  readonly batchingWindowMs?: number;
  /** How often each shard is polled (10–60000). @default 1000 */
  readonly pollMs?: number;
  /** MaximumRetryAttempts (-1: until it succeeds; 0–10000). @default 3 */
  readonly maxRetryAttempts?: number;
  /** BisectBatchOnFunctionError. @default true */
  readonly bisectBatchOnFunctionError?: boolean;
  /** Where a shard without a checkpoint starts. @default 'TRIM_HORIZON' */
  readonly startingPosition?: 'TRIM_HORIZON' | 'LATEST';
  /** Region and account in the event's ARNs. @default 'us-east-1', '000000000000' */
  readonly region?: string;
  readonly account?: string;
  /** The function name in the on-failure record. @default 'local-stream-apply' */
  readonly functionName?: string;
  /** A batch sent to the on-failure destination (its key and reason). */
  readonly onFailedBatch?: (key: string, reason: string, records: number) => void;
  /** Failed invocations and failed reads (the mapping keeps going). */
  readonly onError?: (err: Error) => void;
}

export class EventSourceMappingConfigError extends Error {
  readonly code = 'LOCAL_ESM_CONFIG';
}

export interface EventSourceMappingCounters {
  /** Invocations of the handler, retries included. */
  batches: number;
  /** Records the handler processed (checkpointed after success, or before a reported failure). */
  records: number;
  /** Invocations that were retries of failed records (bisect halves included). */
  retries: number;
  /** Batches split in two after a thrown error. */
  bisects: number;
  /** Batches sent to the on-failure destination, and their records. */
  failures: number;
  failedRecords: number;
}

/** Lambda's synchronous invocation payload limit: a batch is cut before its event would exceed it. */
const PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024;
/** The event's JSON around each record's base64 data (ARNs, ids, names), generously. */
const RECORD_OVERHEAD_BYTES = 600;
/** How often the shard list is read again (new shards after a reshard). */
const SHARD_REFRESH_MS = 10_000;

interface Segment {
  readonly records: readonly _Record[];
  /** Failed invocations counted against MaximumRetryAttempts. */
  readonly attempts: number;
  /** Invocations of these records so far (the on-failure record's approximateInvokeCount). */
  readonly invocations: number;
  readonly lastError: string;
  readonly functionError: boolean;
}

interface ShardReader {
  readonly id: string;
  iterator: string | undefined;
  /** Last sequence number read from the stream (buffered or delivered): where a lost iterator resumes. */
  readAfter: string | undefined;
  buffer: _Record[];
  bufferBytes: number;
  /** When the oldest buffered record was read: the batching window runs from there. */
  windowStart: number;
  lastPollAt: number;
  /** The last poll filled what it asked for: poll again at once. */
  more: boolean;
  /** The shard is closed and read to its end. */
  ended: boolean;
}

/** Validates the settings with Lambda's ranges; every problem named with its field and value, in one error. */
export function checkMappingSettings(s: {
  batchSize: number;
  batchingWindowMs: number;
  pollMs: number;
  maxRetryAttempts: number;
}): void {
  const problems: string[] = [];
  const range = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max)
      problems.push(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  };
  range('batchSize', s.batchSize, 1, 10_000);
  range('batchingWindowMs', s.batchingWindowMs, 0, 300_000);
  range('pollMs', s.pollMs, 10, 60_000);
  range('maxRetryAttempts', s.maxRetryAttempts, -1, 10_000);
  if (problems.length)
    throw new EventSourceMappingConfigError(`invalid event source mapping settings: ${problems.join('; ')}`);
}

const recordBytes = (r: _Record): number => Math.ceil(((r.Data?.length ?? 0) * 4) / 3) + RECORD_OVERHEAD_BYTES;

export class LocalEventSourceMapping {
  readonly counters: EventSourceMappingCounters = {
    batches: 0,
    records: 0,
    retries: 0,
    bisects: 0,
    failures: 0,
    failedRecords: 0,
  };
  private readonly batchSize: number;
  private readonly windowMs: number;
  private readonly pollMs: number;
  private readonly maxRetries: number;
  private readonly bisect: boolean;
  private readonly streamArn: string;
  private readonly checkpoints: Record<string, string>;
  private readonly readers = new Map<string, Promise<void>>();
  private readonly finished = new Set<string>();
  private running = false;
  /** Set when `stop()` gave up waiting: a batch finishing afterwards must not move the checkpoint. */
  private abandoned = false;
  private wake: () => void = () => undefined;
  private stopped: Promise<void> = Promise.resolve();
  private discovery: Promise<void> | undefined;

  constructor(private readonly props: LocalEventSourceMappingProps) {
    this.batchSize = props.batchSize ?? 100;
    this.windowMs = props.batchingWindowMs ?? 0;
    this.pollMs = props.pollMs ?? 1000;
    this.maxRetries = props.maxRetryAttempts ?? 3;
    this.bisect = props.bisectBatchOnFunctionError ?? true;
    checkMappingSettings({
      batchSize: this.batchSize,
      batchingWindowMs: this.windowMs,
      pollMs: this.pollMs,
      maxRetryAttempts: this.maxRetries,
    });
    this.streamArn = `arn:aws:kinesis:${props.region ?? 'us-east-1'}:${props.account ?? '000000000000'}:stream/${props.streamName}`;
    this.checkpoints = existsSync(props.stateFile)
      ? (JSON.parse(readFileSync(props.stateFile, 'utf8')) as Record<string, string>)
      : {};
  }

  /** The last sequence number fully processed, per shard. */
  get checkpoint(): Readonly<Record<string, string>> {
    return this.checkpoints;
  }

  /** Starts reading every shard (and shards that appear later). Resolves once the shard list was read. */
  async start(): Promise<void> {
    this.running = true;
    this.abandoned = false;
    this.stopped = new Promise((r) => {
      this.wake = r;
    });
    await this.discover();
    this.discovery = this.rediscover();
  }

  /**
   * Stops polling and lets each shard finish the invocation in flight (no further retries), for at most `graceMs`;
   * what is not finished then is abandoned without a checkpoint, so the next start delivers it again (as after a kill).
   */
  async stop(graceMs = 30_000): Promise<void> {
    this.running = false;
    this.wake();
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      Promise.all([this.discovery, ...this.readers.values()]).then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (!done) this.abandoned = true;
  }

  /** Sleeps up to `ms`, or less if stopped. */
  private async pause(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.stopped, new Promise((r) => (timer = setTimeout(r, Math.max(0, ms))))]);
    clearTimeout(timer);
  }

  private async rediscover(): Promise<void> {
    while (this.running) {
      await this.pause(SHARD_REFRESH_MS);
      if (this.running) await this.discover().catch((err: Error) => this.props.onError?.(err));
    }
  }

  /**
   * Starts a reader for each shard not read yet. A child shard (after a split or merge) waits until its parents are
   * read to their end, as Lambda does, so a key's records stay in order across a reshard.
   */
  private async discover(): Promise<void> {
    const shards = [];
    let exclusiveStart: string | undefined;
    for (;;) {
      const res = await this.props.kinesis.send(
        new DescribeStreamCommand({
          StreamName: this.props.streamName,
          ...(exclusiveStart ? { ExclusiveStartShardId: exclusiveStart } : {}),
        }),
      );
      const page = res.StreamDescription?.Shards ?? [];
      shards.push(...page);
      if (!res.StreamDescription?.HasMoreShards || page.length === 0) break;
      exclusiveStart = page.at(-1)!.ShardId;
    }
    const known = new Set(shards.map((s) => s.ShardId!));
    for (const shard of shards) {
      const id = shard.ShardId!;
      if (this.readers.has(id)) continue;
      const parents = [shard.ParentShardId, shard.AdjacentParentShardId].filter(
        (p): p is string => !!p && known.has(p),
      );
      if (parents.some((p) => !this.finished.has(p))) continue;
      this.readers.set(
        id,
        this.readShard(id).then(
          (ended) => {
            if (ended) this.finished.add(id);
          },
          (err: Error) => {
            // Unexpected (the checkpoint could not be saved): the next discovery reads the shard again from its
            // checkpoint, rather than leaving it unread.
            this.props.onError?.(err);
            this.readers.delete(id);
          },
        ),
      );
    }
  }

  private async iterator(s: ShardReader): Promise<string> {
    if (s.iterator) return s.iterator;
    const after = s.readAfter ?? this.checkpoints[s.id];
    const res = await this.props.kinesis.send(
      new GetShardIteratorCommand({
        StreamName: this.props.streamName,
        ShardId: s.id,
        ...(after
          ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after }
          : { ShardIteratorType: this.props.startingPosition ?? 'TRIM_HORIZON' }),
      }),
    );
    s.iterator = res.ShardIterator!;
    return s.iterator;
  }

  /**
   * One shard: poll, gather, invoke, one batch at a time, until stopped (false) or the shard is closed and read to
   * its end (true).
   */
  private async readShard(id: string): Promise<boolean> {
    const s: ShardReader = {
      id,
      iterator: undefined,
      readAfter: undefined,
      buffer: [],
      bufferBytes: 0,
      windowStart: 0,
      lastPollAt: 0,
      more: false,
      ended: false,
    };
    while (this.running) {
      const now = Date.now();
      if (this.batchDue(s, now)) {
        await this.deliver(s, this.takeBatch(s));
        continue;
      }
      if (s.ended) return true;
      const nextPoll = s.more ? now : s.lastPollAt + this.pollMs;
      const deadline = s.buffer.length > 0 ? s.windowStart + this.windowMs : Number.POSITIVE_INFINITY;
      const wakeAt = Math.min(nextPoll, deadline);
      if (wakeAt > now) {
        await this.pause(wakeAt - now);
        continue;
      }
      await this.poll(s);
    }
    return false;
  }

  private batchDue(s: ShardReader, now: number): boolean {
    if (s.buffer.length === 0) return false;
    return (
      s.buffer.length >= this.batchSize ||
      s.bufferBytes >= PAYLOAD_LIMIT_BYTES ||
      now - s.windowStart >= this.windowMs ||
      s.ended
    );
  }

  private takeBatch(s: ShardReader): _Record[] {
    let bytes = 0;
    let n = 0;
    while (n < s.buffer.length && n < this.batchSize) {
      const b = recordBytes(s.buffer[n]!);
      if (n > 0 && bytes + b > PAYLOAD_LIMIT_BYTES) break;
      bytes += b;
      n++;
    }
    const batch = s.buffer.splice(0, n);
    s.bufferBytes -= bytes;
    // What stays behind starts its own window now (it was read, but is the first record of the next batch).
    s.windowStart = Date.now();
    return batch;
  }

  private async poll(s: ShardReader): Promise<void> {
    s.lastPollAt = Date.now();
    const limit = Math.max(1, this.batchSize - s.buffer.length);
    try {
      const res = await this.props.kinesis.send(
        new GetRecordsCommand({ ShardIterator: await this.iterator(s), Limit: limit }),
      );
      const records = res.Records ?? [];
      s.iterator = res.NextShardIterator;
      if (!res.NextShardIterator) s.ended = true;
      s.more = records.length >= limit;
      if (records.length > 0 && s.buffer.length === 0) s.windowStart = Date.now();
      for (const r of records) {
        s.buffer.push(r);
        s.bufferBytes += recordBytes(r);
        s.readAfter = r.SequenceNumber;
      }
    } catch (err) {
      // An expired iterator, or the stream not answering: read again after what was read (buffered records stay).
      s.iterator = undefined;
      s.more = false;
      this.props.onError?.(err as Error);
    }
  }

  private event(shardId: string, records: readonly _Record[]): KinesisStreamEvent {
    const region = this.props.region ?? 'us-east-1';
    const account = this.props.account ?? '000000000000';
    return {
      Records: records.map(
        (r): KinesisStreamRecord => ({
          kinesis: {
            kinesisSchemaVersion: '1.0',
            partitionKey: r.PartitionKey!,
            sequenceNumber: r.SequenceNumber!,
            data: Buffer.from(r.Data ?? new Uint8Array()).toString('base64'),
            approximateArrivalTimestamp: (r.ApproximateArrivalTimestamp?.getTime() ?? Date.now()) / 1000,
          },
          eventSource: 'aws:kinesis',
          eventVersion: '1.0',
          eventID: `${shardId}:${r.SequenceNumber}`,
          eventName: 'aws:kinesis:record',
          invokeIdentityArn: `arn:aws:iam::${account}:role/${this.props.functionName ?? 'local-stream-apply'}`,
          awsRegion: region,
          eventSourceARN: this.streamArn,
        }),
      ),
    };
  }

  /**
   * One batch, to its end: invoked, retried from a reported failure, bisected after a thrown error, sent to the
   * on-failure destination when out of retries. Segments are processed in stream order; each one's success or
   * failure record moves the checkpoint past it before the next one is invoked.
   */
  private async deliver(s: ShardReader, batch: readonly _Record[]): Promise<void> {
    const segments: Segment[] = [{ records: batch, attempts: 0, invocations: 0, lastError: '', functionError: false }];
    while (segments.length > 0) {
      if (!this.running && segments[0]!.invocations > 0) return; // stopping: no further retries
      const seg = segments[0]!;
      const result = await this.invoke(s.id, seg);
      if (this.abandoned) return;
      if (result.kind === 'ok') {
        this.done(s.id, seg.records, seg.records.length);
        segments.shift();
        continue;
      }
      let next: Segment[];
      if (result.kind === 'partial') {
        // Records before the first reported failure are done; the retry starts at it.
        if (result.index > 0) this.done(s.id, seg.records.slice(0, result.index), result.index);
        next = [
          {
            records: seg.records.slice(result.index),
            attempts: seg.attempts + 1,
            invocations: seg.invocations + 1,
            lastError: result.reason,
            functionError: false,
          },
        ];
      } else if (this.bisect && seg.records.length > 1) {
        // Splitting does not consume the retry quota: the halves keep the batch's count.
        const half = Math.ceil(seg.records.length / 2);
        this.counters.bisects++;
        next = [seg.records.slice(0, half), seg.records.slice(half)].map((records) => ({
          records,
          attempts: seg.attempts,
          invocations: seg.invocations + 1,
          lastError: result.reason,
          functionError: true,
        }));
      } else {
        next = [
          {
            records: seg.records,
            attempts: seg.attempts + 1,
            invocations: seg.invocations + 1,
            lastError: result.reason,
            functionError: true,
          },
        ];
      }
      segments.splice(0, 1, ...next);
      const head = segments[0]!;
      if (this.maxRetries >= 0 && head.attempts > this.maxRetries) {
        if (!(await this.sendToDestination(s.id, head))) return; // stopped while the destination was failing
        segments.shift();
        continue;
      }
      if (!this.running) return;
      await this.pause(this.pollMs);
    }
  }

  private async invoke(
    shardId: string,
    seg: Segment,
  ): Promise<{ kind: 'ok' } | { kind: 'partial'; index: number; reason: string } | { kind: 'error'; reason: string }> {
    this.counters.batches++;
    if (seg.invocations > 0) this.counters.retries++;
    let res: LocalStreamHandlerResponse | undefined;
    try {
      res = (await this.props.handler(this.event(shardId, seg.records))) ?? undefined;
    } catch (err) {
      this.props.onError?.(err as Error);
      return { kind: 'error', reason: (err as Error).message ?? String(err) };
    }
    const failures = res?.batchItemFailures ?? [];
    if (failures.length === 0) return { kind: 'ok' };
    const seqs = seg.records.map((r) => r.SequenceNumber!);
    const indexes = failures.map((f) => (f?.itemIdentifier ? seqs.indexOf(f.itemIdentifier) : -1));
    if (indexes.some((i) => i < 0)) {
      // Lambda: an empty identifier, or one not in the batch, fails the whole batch.
      const reason = `invalid batchItemFailures ${JSON.stringify(failures)}: not sequence numbers of this batch`;
      this.props.onError?.(new Error(reason));
      return { kind: 'error', reason };
    }
    const index = Math.min(...indexes);
    const reason = res?.reason ?? `the handler reported a failure at sequence number ${seqs[index]}`;
    this.props.onError?.(new Error(reason));
    return { kind: 'partial', index, reason };
  }

  /** Records processed (or set aside): the checkpoint moves past the last one and is saved. */
  private done(shardId: string, records: readonly _Record[], processed: number): void {
    this.counters.records += processed;
    this.checkpoints[shardId] = records.at(-1)!.SequenceNumber!;
    const tmp = `${this.props.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.checkpoints));
    renameSync(tmp, this.props.stateFile);
  }

  /**
   * The on-failure destination: Lambda's invocation record for an S3 destination (request and response context,
   * KinesisBatchInfo, the payload), plus the last error as `reason`. Retried each `pollMs` while S3 fails; false
   * when stopped before it succeeded (nothing checkpointed: the batch is delivered again after a restart).
   */
  private async sendToDestination(shardId: string, seg: Segment): Promise<boolean> {
    const first = seg.records[0]!;
    const last = seg.records.at(-1)!;
    const key = `${STREAM_APPLY_FAILURE_PREFIX}${shardId}/${first.SequenceNumber}-${last.SequenceNumber}.json`;
    const functionName = this.props.functionName ?? 'local-stream-apply';
    const record = {
      requestContext: {
        requestId: randomUUID(),
        functionArn: `arn:aws:lambda:${this.props.region ?? 'us-east-1'}:${this.props.account ?? '000000000000'}:function:${functionName}`,
        condition: 'RetryAttemptsExhausted',
        approximateInvokeCount: seg.invocations,
      },
      responseContext: {
        statusCode: 200,
        executedVersion: '$LATEST',
        ...(seg.functionError ? { functionError: 'Unhandled' } : {}),
      },
      version: '1.0',
      timestamp: new Date().toISOString(),
      KinesisBatchInfo: {
        shardId,
        startSequenceNumber: first.SequenceNumber,
        endSequenceNumber: last.SequenceNumber,
        approximateArrivalOfFirstRecord: first.ApproximateArrivalTimestamp?.toISOString(),
        approximateArrivalOfLastRecord: last.ApproximateArrivalTimestamp?.toISOString(),
        batchSize: seg.records.length,
        streamArn: this.streamArn,
      },
      reason: seg.lastError,
      payload: this.event(shardId, seg.records),
    };
    for (;;) {
      try {
        await this.props.s3.send(
          new PutObjectCommand({
            Bucket: this.props.failureBucket,
            Key: key,
            Body: JSON.stringify(record),
            ContentType: 'application/json',
          }),
        );
        break;
      } catch (err) {
        this.props.onError?.(err as Error);
        if (!this.running) return false;
        await this.pause(this.pollMs);
      }
    }
    if (this.abandoned) return false;
    this.counters.failures++;
    this.counters.failedRecords += seg.records.length;
    this.done(shardId, seg.records, 0);
    this.props.onFailedBatch?.(key, seg.lastError, seg.records.length);
    return true;
  }
}
