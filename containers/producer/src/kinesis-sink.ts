/**
 * Ordered, lossless delivery to Kinesis. PutRecords does not keep order when some entries fail, so after a partial
 * failure the sink resends, for every partition key that had a failure, all of that key's records from its first
 * failed one on (including later ones that succeeded): the last delivery of each key's records is in order, and
 * duplicates carry the same position, which the merge discards. One PutRecords is in flight at a time. Nothing is
 * ever dropped: when retries run out the sink fails, and the producer stops without checkpointing.
 */
import { type KinesisClient, PutRecordsCommand, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import { ProducerError } from './errors';

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
  /** Consecutive failed attempts before giving up. @default 12 */
  readonly maxAttempts?: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Called with the lowest sequence number not yet acknowledged (everything below is in Kinesis). */
  readonly onAcked?: (lowestUnacked: number) => void;
  readonly stats?: SinkStats;
  readonly sleep?: (ms: number) => Promise<void>;
}

export const MAX_RECORDS_PER_CALL = 500;
export const MAX_BYTES_PER_CALL = 5 * 1024 * 1024;
export const MAX_RECORD_BYTES = 1024 * 1024;

export class KinesisSink {
  private queue: SinkRecord[] = [];
  private queuedBytes = 0;
  private pumping = false;
  private sending = 0;
  private nextSeqHint = 0;
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  failure: Error | undefined;

  constructor(private readonly props: KinesisSinkProps) {}

  /** Records not yet acknowledged (queued or in the PutRecords call in flight). */
  get pending(): number {
    return this.queue.length + this.sending;
  }
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  enqueue(rec: SinkRecord): void {
    if (this.failure) throw this.failure;
    this.queue.push(rec);
    this.queuedBytes += rec.data.length;
    this.nextSeqHint = rec.seq + 1;
    if (!this.pumping) void this.pump();
  }

  /** Resolves once everything enqueued so far is in Kinesis; rejects if the sink failed. */
  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.queue.length === 0 && !this.pumping) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private settle(): void {
    if (this.queue.length > 0 && !this.failure) return;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) this.failure ? w.reject(this.failure) : w.resolve();
  }

  private takeBatch(): SinkRecord[] {
    const batch: SinkRecord[] = [];
    let bytes = 0;
    while (batch.length < MAX_RECORDS_PER_CALL && this.queue.length > 0) {
      const r = this.queue[0]!;
      const size = r.data.length + Buffer.byteLength(r.partitionKey);
      if (batch.length > 0 && (r.ready || bytes + size > MAX_BYTES_PER_CALL)) break;
      batch.push(this.queue.shift()!);
      bytes += size;
    }
    return batch;
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    let attempt = 0;
    const sleep = this.props.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    try {
      while (this.queue.length > 0 && !this.failure) {
        const head = this.queue[0]!;
        if (head.ready) {
          try {
            await head.ready;
          } catch (e) {
            this.failure = new ProducerError(
              'CLAIM_CHECK_FAILED',
              `could not park an oversized event in S3 before sending its pointer: ${(e as Error).message}; stopping without checkpointing`,
            );
            break;
          }
          head.ready = undefined;
        }
        const batch = this.takeBatch();
        this.sending = batch.length;
        const entries: PutRecordsRequestEntry[] = batch.map((r) => ({ PartitionKey: r.partitionKey, Data: r.data }));
        const started = Date.now();
        let failedIdx: number[];
        let throttled = 0;
        try {
          const res = await this.props.client.send(
            new PutRecordsCommand({ StreamName: this.props.streamName, Records: entries }),
          );
          failedIdx = [];
          (res.Records ?? []).forEach((r, i) => {
            if (r.ErrorCode) {
              failedIdx.push(i);
              if (r.ErrorCode === 'ProvisionedThroughputExceededException') throttled++;
            }
          });
          if ((res.Records ?? []).length !== batch.length) failedIdx = batch.map((_, i) => i);
        } catch {
          failedIdx = batch.map((_, i) => i);
        }
        this.sending = 0;
        const bytes = batch.reduce((n, r) => n + r.data.length, 0);
        this.props.stats?.onPut?.(Date.now() - started, batch.length - failedIdx.length, bytes);
        if (failedIdx.length === 0) {
          attempt = 0;
          for (const r of batch) this.queuedBytes -= r.data.length;
        } else {
          // Resend, per failed key, everything from its first failure on, ahead of the rest of the queue.
          const firstFail = new Map<string, number>();
          for (const i of failedIdx)
            if (!firstFail.has(batch[i]!.partitionKey)) firstFail.set(batch[i]!.partitionKey, i);
          const resend = batch.filter((r, i) => {
            const f = firstFail.get(r.partitionKey);
            return f !== undefined && i >= f;
          });
          for (const r of batch) if (!resend.includes(r)) this.queuedBytes -= r.data.length;
          this.queue = [...resend, ...this.queue];
          attempt++;
          this.props.stats?.onRetry?.(failedIdx.length, throttled);
          if (attempt >= (this.props.maxAttempts ?? 12)) {
            this.failure = new ProducerError(
              'KINESIS_RETRIES_EXHAUSTED',
              `PutRecords to ${this.props.streamName} failed ${attempt} times in a row (${failedIdx.length} of ${batch.length} records in the last attempt); stopping without checkpointing`,
            );
            break;
          }
          const cap = Math.min(this.props.maxDelayMs ?? 5000, (this.props.baseDelayMs ?? 100) * 2 ** attempt);
          await sleep(Math.random() * cap);
        }
        this.props.onAcked?.(
          this.queue.length > 0 ? Math.min(...this.queue.slice(0, 1).map((r) => r.seq)) : this.nextSeqHint,
        );
      }
    } finally {
      this.pumping = false;
      this.settle();
    }
  }
}
