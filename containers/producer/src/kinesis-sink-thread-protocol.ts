/**
 * Messages between the producer's main thread (threaded-kinesis-sink.ts) and the Kinesis sink's thread
 * (kinesis-sink-thread.ts). Records travel in batches as one transferred buffer (no copy between the threads, no
 * object per record to clone); answers carry the sink's counts, so the main thread's backpressure and checkpoint see
 * what the sink sees.
 */
import type { ProducerErrorCode } from './errors';
import type { KinesisSinkProps } from './kinesis-sink';

/** The sink's settings (its callbacks and client stay behind), and the endpoint the thread builds its client for. */
export type SinkThreadInit = Pick<
  KinesisSinkProps,
  | 'streamName'
  | 'maxCallsInFlight'
  | 'maxAttempts'
  | 'baseDelayMs'
  | 'maxDelayMs'
  | 'baseThrottleDelayMs'
  | 'maxThrottleDelayMs'
> & {
  /** `AWS_ENDPOINT_KINESIS` (an emulator or another compatible endpoint); the SDK's defaults (AWS) without it. */
  readonly endpoint?: string;
};

/** Main thread → sink thread. */
export type ToSinkThread =
  | {
      readonly t: 'put';
      /** Sequence numbers, ascending. */
      readonly seqs: Float64Array;
      readonly keys: readonly string[];
      /** Every record's bytes, one after another; record i ends at `ends[i]`. */
      readonly data: Uint8Array;
      readonly ends: Uint32Array;
      /** Sequence numbers of records that must wait for a `ready` (a claim-check object being written). */
      readonly waiting: readonly number[];
    }
  | { readonly t: 'ready'; readonly seq: number }
  | { readonly t: 'not-ready'; readonly seq: number; readonly message: string }
  | { readonly t: 'drain'; readonly id: number };

/** The sink's counts, sent with every answer. */
export interface SinkCounts {
  /** Records the sink thread has received so far. */
  readonly received: number;
  /** Of those, not yet acknowledged. */
  readonly pending: number;
  /** Bytes of the records received so far. */
  readonly receivedBytes: number;
  /** Bytes of the records not yet acknowledged. */
  readonly pendingBytes: number;
  readonly calls: number;
}

/** Sink thread → main thread. */
export type FromSinkThread =
  | ({ readonly t: 'acked'; readonly low: number } & SinkCounts)
  | { readonly t: 'put'; readonly latencyMs: number; readonly records: number; readonly bytes: number }
  | { readonly t: 'retry'; readonly failed: number; readonly throttled: number }
  | { readonly t: 'drained'; readonly id: number }
  /** The sink failed: its ProducerError's code and message (without the code). */
  | { readonly t: 'failed'; readonly code: ProducerErrorCode; readonly message: string };
