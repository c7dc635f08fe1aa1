/**
 * The Kinesis sink on a thread of its own (kinesis-sink-thread.ts), seen from the main thread: the same ordered,
 * lossless delivery as KinesisSink (kinesis-sink.ts, which runs there unchanged), so the AWS SDK's work per call
 * (base64 of every record, signing, the socket: most of the sink's CPU) leaves the thread that decodes and encodes
 * the binlog. Records are handed over in batches at the end of each turn of the event loop (or every 500 records):
 * each record is written into the batch's buffer as it comes (a row of the producer's template straight from its text,
 * `enqueueParts`, with no Buffer of its own), and the buffer is transferred, not cloned.
 *
 * What the main thread sees stays exact: `pending` counts every record not yet acknowledged (still here, in transit,
 * or in the sink), acknowledgements arrive as the sink's lowest unacknowledged sequence number, and a failure of the
 * sink or of its thread fails `drain`, every later `enqueue`, and `onFailed`, with a ProducerError.
 */
import type { Worker } from 'node:worker_threads';
import { ProducerError } from './errors';
import type { Sink, SinkRecord, SinkStats } from './kinesis-sink';
import type { FromSinkThread, SinkThreadInit, ToSinkThread } from './kinesis-sink-thread-protocol';
import { RecordBuffer } from './record-buffer';
import { startWorker } from './worker-thread';

export interface ThreadedKinesisSinkProps extends SinkThreadInit {
  readonly onAcked?: (lowestUnacked: number) => void;
  readonly onFailed?: (err: Error) => void;
  readonly stats?: SinkStats;
}

/** Records handed over per message at most: a PutRecords call's worth. */
const BATCH_RECORDS = 500;

export class ThreadedKinesisSink implements Sink {
  private readonly worker: Worker;
  /** The batch being filled: its records' bytes end to end, and per record its fields. */
  private out = new RecordBuffer(0);
  private seqs: number[] = [];
  private keys: string[] = [];
  private ends: number[] = [];
  private waiting: number[] = [];
  private flushScheduled = false;
  /** Records handed to this object so far. */
  private enqueued = 0;
  /** Bytes of the records handed to this object so far. */
  private enqueuedBytes = 0;
  /** The sink thread's counts at its last answer. */
  private received = 0;
  private threadPending = 0;
  private receivedBytes = 0;
  private threadPendingBytes = 0;
  private calls = 0;
  private nextDrain = 0;
  private readonly drains = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private closing = false;
  failure: Error | undefined;

  constructor(private readonly props: ThreadedKinesisSinkProps) {
    // Everything but the callbacks goes to the thread, which builds the sink from it.
    const { onAcked: _acked, onFailed: _failed, stats: _stats, ...init } = props;
    this.worker = startWorker('kinesis-sink-thread', init satisfies SinkThreadInit);
    // The thread keeps the process alive only while it holds records (a producer that stops reading exits).
    this.worker.unref();
    this.worker.on('message', (m: FromSinkThread) => this.answer(m));
    this.worker.on('error', (e) =>
      this.fail(new ProducerError('KINESIS_SINK_THREAD_FAILED', `the Kinesis sink's thread failed: ${e.message}`)),
    );
    this.worker.on('exit', (code) => {
      if (!this.closing)
        this.fail(
          new ProducerError(
            'KINESIS_SINK_THREAD_FAILED',
            `the Kinesis sink's thread exited (code ${code}) unexpectedly`,
          ),
        );
    });
  }

  get pending(): number {
    return this.enqueued - this.received + this.threadPending;
  }

  get pendingBytes(): number {
    return this.enqueuedBytes - this.receivedBytes + this.threadPendingBytes;
  }

  get callsInFlight(): number {
    return this.calls;
  }

  enqueue(rec: SinkRecord): void {
    if (this.failure) throw this.failure;
    const bytes = this.out.write(rec.data);
    if (rec.ready) {
      this.waiting.push(rec.seq);
      this.watch(rec);
    }
    this.added(rec.seq, rec.partitionKey, bytes);
  }

  /**
   * A record given as UTF-8 bytes and the text that follows them (the producer's template: the shape's head, then the
   * row), written straight into the batch's buffer: no Buffer per record, no copy at the hand-over, and the head is
   * copied rather than transcoded. Returns the record's size in bytes. The caller keeps records under Kinesis' 1 MiB.
   */
  enqueueParts(seq: number, partitionKey: string, head: Uint8Array, rest: string): number {
    if (this.failure) throw this.failure;
    const bytes = this.out.write(head, rest);
    this.added(seq, partitionKey, bytes);
    return bytes;
  }

  private added(seq: number, partitionKey: string, bytes: number): void {
    if (this.pending === 0) this.worker.ref();
    this.enqueued++;
    this.enqueuedBytes += bytes;
    this.seqs.push(seq);
    this.keys.push(partitionKey);
    this.ends.push(this.out.used);
    if (this.seqs.length >= BATCH_RECORDS) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending === 0) return Promise.resolve();
    this.flush();
    const id = this.nextDrain++;
    const done = new Promise<void>((resolve, reject) => this.drains.set(id, { resolve, reject }));
    this.post({ t: 'drain', id });
    return done;
  }

  /** Stops the thread (after `drain`, or to give up). */
  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }

  private post(m: ToSinkThread, transfer?: ArrayBuffer[]): void {
    this.worker.postMessage(m, transfer);
  }

  private flush(): void {
    this.flushScheduled = false;
    const n = this.seqs.length;
    if (n === 0 || this.failure) return;
    const { used } = this.out;
    const own = this.out.transferable();
    const data = new Uint8Array(own, 0, used);
    const seqs = Float64Array.from(this.seqs);
    const ends = Uint32Array.from(this.ends);
    const m: ToSinkThread = { t: 'put', seqs, keys: this.keys, data, ends, waiting: this.waiting };
    // The next batch's buffer, sized by this one.
    this.out = new RecordBuffer(used);
    this.seqs = [];
    this.keys = [];
    this.ends = [];
    this.waiting = [];
    this.post(m, [seqs.buffer as ArrayBuffer, ends.buffer as ArrayBuffer, own]);
  }

  /** A claim-check record: the thread holds it (and its key) until its object is written, or fails with it. */
  private watch(rec: SinkRecord): void {
    rec.ready!.then(
      () => {
        this.flush(); // the record itself must reach the thread first
        this.post({ t: 'ready', seq: rec.seq });
      },
      (e: Error) => {
        this.flush();
        this.post({ t: 'not-ready', seq: rec.seq, message: e.message });
      },
    );
  }

  private answer(m: FromSinkThread): void {
    switch (m.t) {
      case 'acked':
        this.received = m.received;
        this.threadPending = m.pending;
        this.receivedBytes = m.receivedBytes;
        this.threadPendingBytes = m.pendingBytes;
        this.calls = m.calls;
        if (this.pending === 0) this.worker.unref();
        this.props.onAcked?.(m.low);
        return;
      case 'put':
        this.props.stats?.onPut?.(m.latencyMs, m.records, m.bytes);
        return;
      case 'retry':
        this.props.stats?.onRetry?.(m.failed, m.throttled);
        return;
      case 'drained': {
        const d = this.drains.get(m.id);
        this.drains.delete(m.id);
        d?.resolve();
        return;
      }
      case 'failed':
        this.fail(new ProducerError(m.code, m.message));
        return;
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const d of this.drains.values()) d.reject(err);
    this.drains.clear();
    this.worker.unref();
    this.props.onFailed?.(err);
  }
}
