/**
 * Errors of the merge, each with a stable code. A poison batch can never succeed as it is (retrying is useless: it
 * goes to the dead-letter queue with its reason); a retriable error may succeed later (the batch is retried).
 */
export type MergeErrorCode =
  | 'BATCH_UNDECODABLE' // a line is not JSON, or not a change event
  | 'BATCH_UNSUPPORTED_VERSION' // event version this code does not know
  | 'OBJECT_MISSING' // a changelog or claim-check object S3 says does not exist
  | 'OBJECT_UNREADABLE' // reading an object failed for a reason outside it (throttling, 5xx, network, access): retried
  | 'SCHEMA_INCOMPATIBLE' // a column changed type in a way the replica cannot follow
  | 'VALUE_TOO_LARGE' // a value the warehouse column cannot hold, under the deployment's policy (value-limits.ts)
  | 'CONFIG_INVALID'
  | 'WAREHOUSE_STATEMENT_FAILED'
  | 'WAREHOUSE_TIMEOUT'
  | 'SERIALIZATION_CONFLICT'
  | 'PLAN_STALE'; // another merge of the table changed what a plan was made from: planned again at once

export class MergeError extends Error {
  constructor(
    readonly code: MergeErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = new.target.name;
  }
}

/** The batch cannot be applied as it is: dead-letter it with this reason; other batches keep flowing. */
export class PoisonBatchError extends MergeError {}

/** The warehouse failed or was busy: retry the batch later. */
export class RetriableMergeError extends MergeError {
  constructor(
    code: MergeErrorCode,
    message: string,
    /** The statement that failed, when known. */
    readonly statement?: string,
  ) {
    super(code, message);
  }
}

/**
 * A merge's transaction failed and what its plan was made from (the table's history, the registry's columns) has
 * changed since: another merge of the table got there first. Planned again at once, not retried later.
 */
export class StalePlanError extends RetriableMergeError {
  constructor(
    message: string,
    /** The failure the stale plan ran into. */
    readonly failure: unknown,
  ) {
    super('PLAN_STALE', `${message}: ${(failure as Error)?.message ?? String(failure)}`);
  }
}
