/**
 * The main thread's side of the encode worker (encode-worker.ts): starts the thread, sends it batches and hands back
 * their answers. Batches are answered in the order they were sent (one thread, one queue). A batch that fails, and a
 * worker that dies, fail every batch still waiting with a ProducerError: nothing is dropped silently.
 */
import type { Worker } from 'node:worker_threads';
import type { EncodeBatch, EncodedBatch, WorkerAnswer, WorkerInit } from './encode-worker-protocol';
import { ProducerError } from './errors';
import { startWorker } from './worker-thread';

/**
 * A small young generation: the worker's garbage (a batch's strings) dies young, and V8's default (up to 48 MB of
 * semi-spaces) showed as resident memory. The old generation keeps V8's default, so one huge row cannot run it out.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 8 };

interface Waiting {
  readonly id: number;
  readonly resolve: (b: EncodedBatch) => void;
  readonly reject: (e: Error) => void;
}

/** A row of a batch could not be encoded: `index` is the row in the batch (the caller names its table and position). */
export class EncodeFailed extends ProducerError {
  constructor(
    readonly index: number,
    readonly reason: string,
  ) {
    super('ENCODE_FAILED', `row ${index} of an encode batch: ${reason}`);
  }
}

export class EncodeWorkerClient {
  private readonly worker: Worker;
  private readonly waiting: Waiting[] = [];
  private nextId = 0;
  private failure: Error | undefined;
  private closing = false;
  /** The worker has loaded and takes batches (until then the caller encodes on its own thread). */
  ready = false;
  private readonly loaded: Promise<void>;
  private onLoaded: () => void = () => undefined;

  constructor(init: WorkerInit) {
    this.loaded = new Promise((resolve) => {
      this.onLoaded = resolve;
    });
    this.worker = startWorker('encode-worker', init, WORKER_LIMITS);
    // An idle worker must not keep the process alive (a producer that stops reading exits). Once more when it is
    // online and when it has loaded: an unref() before the thread runs did not hold (a process whose rows were all
    // encoded on its own thread before the worker loaded never exited).
    this.worker.unref();
    this.worker.on('online', () => this.idle());
    this.worker.on('message', (a: WorkerAnswer) => this.answer(a));
    this.worker.on('error', (e) =>
      this.fail(new ProducerError('ENCODE_WORKER_FAILED', `the encode worker failed: ${e.message}`)),
    );
    this.worker.on('exit', (code) => {
      if (!this.closing)
        this.fail(new ProducerError('ENCODE_WORKER_FAILED', `the encode worker exited (code ${code}) unexpectedly`));
    });
  }

  private idle(): void {
    if (this.waiting.length === 0) this.worker.unref();
  }

  /** Resolves once the worker has loaded; rejects if it failed first. */
  whenReady(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return this.loaded;
  }

  /** Batches sent and not answered yet. */
  get busy(): number {
    return this.waiting.length;
  }

  /** Encodes a batch (its `id` is set here); batches resolve in the order they were sent. */
  encode(batch: Omit<EncodeBatch, 'id'>): Promise<EncodedBatch> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const done = new Promise<EncodedBatch>((resolve, reject) => this.waiting.push({ id, resolve, reject }));
    if (this.waiting.length === 1) this.worker.ref();
    this.worker.postMessage({ ...batch, id } satisfies EncodeBatch);
    return done;
  }

  private answer(a: WorkerAnswer): void {
    if ('ready' in a) {
      this.ready = true;
      this.onLoaded();
      this.idle();
      return;
    }
    const w = this.waiting.shift();
    if (!w || w.id !== a.id) {
      this.fail(
        new ProducerError('ENCODE_WORKER_FAILED', `the encode worker answered batch ${a.id}, expected ${w?.id}`),
      );
      return;
    }
    if (this.waiting.length === 0) this.worker.unref();
    if ('data' in a) w.resolve(a);
    else {
      const err = new EncodeFailed(a.index, a.message);
      w.reject(err);
      this.fail(err);
    }
  }

  private fail(err: Error): void {
    if (!this.failure) this.failure = err;
    this.onLoaded = () => undefined;
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
    this.worker.unref();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }
}
