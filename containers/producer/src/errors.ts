/** Producer errors with stable codes. Fatal ones stop the process without checkpointing (ECS restarts it). */
import { ProducerMetric } from '../../../shared/metrics';

export type ProducerErrorCode =
  | 'CONFIG_INVALID'
  | 'SERVER_SETTINGS' // binlog settings the producer cannot work with
  | 'BINLOG_PURGED' // the position to resume from is gone: never skip ahead silently
  | 'POSITION_NOT_AN_EVENT_BOUNDARY' // a file:pos start inside an event (the binlog is there): pick a boundary
  | 'LEASE_HELD' // another producer owns this pipeline
  | 'LEASE_LOST' // our lease was taken over: stop writing at once
  | 'KINESIS_RETRIES_EXHAUSTED'
  | 'CLAIM_CHECK_FAILED' // an oversized event could not be parked in S3
  | 'SIGNAL_TABLE_UNAVAILABLE' // snapshots need to write watermarks to the signal table
  | 'UNSUPPORTED_EVENT'
  | 'ENCODE_FAILED' // a captured value could not be encoded (on the encode worker or the main thread)
  | 'ENCODE_WORKER_FAILED' // the encode worker thread died or answered out of order
  | 'KINESIS_SINK_THREAD_FAILED'; // the Kinesis sink's thread died

export class ProducerError extends Error {
  constructor(
    readonly code: ProducerErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'ProducerError';
  }
}

/**
 * The metrics a fatal failure counts (pure, so main.ts's streaming and startup paths cannot drift apart): every
 * failure is a `ProducerErrors`; a purged binlog is also a `BinlogPurged`, the one the binlog-purged alarm watches,
 * whether it was found before reading (the startup check) or reported by the server while reading (error 1236,
 * also on a GTID resume).
 */
export function failureMetrics(err: unknown): string[] {
  const names: string[] = [ProducerMetric.Errors];
  if (err instanceof ProducerError && err.code === 'BINLOG_PURGED') names.push(ProducerMetric.BinlogPurged);
  return names;
}
