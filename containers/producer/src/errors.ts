/** Producer errors with stable codes. Fatal ones stop the process without checkpointing (ECS restarts it). */
export type ProducerErrorCode =
  | 'CONFIG_INVALID'
  | 'SERVER_SETTINGS' // binlog settings the producer cannot work with
  | 'BINLOG_PURGED' // the position to resume from is gone: never skip ahead silently
  | 'LEASE_HELD' // another producer owns this pipeline
  | 'LEASE_LOST' // our lease was taken over: stop writing at once
  | 'KINESIS_RETRIES_EXHAUSTED'
  | 'CLAIM_CHECK_FAILED' // an oversized event could not be parked in S3
  | 'SIGNAL_TABLE_UNAVAILABLE' // snapshots need to write watermarks to the signal table
  | 'UNSUPPORTED_EVENT';

export class ProducerError extends Error {
  constructor(
    readonly code: ProducerErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'ProducerError';
  }
}
