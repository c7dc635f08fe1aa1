/**
 * When a Redshift Data API statement (or batch) is done, from its DescribeStatement answer. The Data API is
 * asynchronous: ExecuteStatement/BatchExecuteStatement only submit, so a deployment step that needs the statement's
 * effect polls DescribeStatement until it reaches a final status and fails with the statement's own error.
 */

/** The part of a DescribeStatement response this decision reads. */
export interface StatementDescription {
  readonly Id?: string;
  readonly Status?: string;
  readonly Error?: string;
  readonly SubStatements?: readonly { readonly Id?: string; readonly Status?: string; readonly Error?: string }[];
}

/** A statement that ended FAILED or ABORTED; the message carries Redshift's error text. */
export class StatementFailedError extends Error {
  readonly code = 'REDSHIFT_STATEMENT_FAILED';
  constructor(
    readonly statementId: string,
    readonly status: string,
    readonly detail: string,
  ) {
    super(`Redshift statement ${statementId} ${status}: ${detail}`);
    this.name = 'StatementFailedError';
  }
}

/** Statuses after which a statement no longer changes (DescribeStatement, Redshift Data API reference). */
const RUNNING = new Set(['SUBMITTED', 'PICKED', 'STARTED']);

/**
 * `true` once the statement FINISHED, `false` while it is SUBMITTED, PICKED or STARTED; throws StatementFailedError
 * when it FAILED or was ABORTED, and for any status it does not know (fail loudly rather than wait forever).
 */
export function statementCompleted(d: StatementDescription): boolean {
  const id = d.Id ?? '(unknown id)';
  const status = d.Status ?? '(no status)';
  if (status === 'FINISHED') return true;
  if (RUNNING.has(status)) return false;
  if (status === 'FAILED' || status === 'ABORTED') {
    const failedSub = d.SubStatements?.find((s) => s.Error);
    const detail =
      d.Error ??
      (failedSub ? `sub-statement ${failedSub.Id ?? '?'}: ${failedSub.Error}` : undefined) ??
      (status === 'ABORTED' ? 'the statement was cancelled' : 'no error text');
    throw new StatementFailedError(id, status, detail);
  }
  throw new StatementFailedError(id, status, 'unexpected status');
}
