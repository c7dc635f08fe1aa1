/**
 * Dates the warehouse cannot hold, caught while staging instead of by a failing COPY or INSERT (`date/time field value
 * out of range`), which is retriable to the merge and so would be retried forever. MySQL/MariaDB store dates no
 * warehouse calendar has:
 * - zero dates `0000-00-00` and partial zero dates `2024-00-15`, `0001-00-00` (unless NO_ZERO_DATE/NO_ZERO_IN_DATE);
 * - invalid calendar dates `2024-02-30`, `2023-02-29`, `2024-04-31` written under sql_mode ALLOW_INVALID_DATES;
 * - year 0000 (`0000-01-01`): MySQL accepts it, Redshift and PostgreSQL have no year zero.
 *
 * Policy (docs/merge.md, "Values the warehouse cannot hold"): such a DATE/DATETIME/TIMESTAMP value becomes NULL in
 * the replica, also in a NOT NULL column (replica columns carry no NOT NULL); the change event, and so the lake and the
 * raw changelog, keep the original text. Each one is counted (metric `ValuesNulled`) and logged.
 *
 * Pure: no I/O. stage-csv.ts calls `unrepresentableDate` for each date value it stages.
 */
import { type DateProblem, unrepresentableDate } from '../../../shared/type-mapping';

export { type DateProblem, unrepresentableDate };

export interface NulledValue {
  readonly where: string;
  readonly column: string;
  /** The original text (as in the event). */
  readonly value: string;
  /** Why; `NUL character`: a text holding U+0000, which no warehouse stores (stage-csv.ts). */
  readonly reason: DateProblem | 'NUL character';
}

/**
 * A row not staged because its primary key holds a value the warehouse cannot hold as it is (an impossible date, text
 * with U+0000, text longer than its Redshift column): as NULL or cut, two source rows would share one replica key, or
 * one row get many (docs/merge.md, "Values the warehouse cannot hold").
 */
export interface SkippedRow {
  readonly where: string;
  /** The key as in the event. */
  readonly key: readonly unknown[];
  readonly reason: string;
}

export interface DateValueOptions {
  /** Called for every value staged as NULL (the Lambda counts them as `ValuesNulled` and logs them). */
  readonly onNulled?: (v: NulledValue) => void;
  /** Called for every row image skipped for its key (the Lambda counts them as `RowsSkipped` and logs them). */
  readonly onRowSkipped?: (r: SkippedRow) => void;
}

let current: DateValueOptions = {};

/** Sets the callback for values staged as NULL (the Lambda does it once at cold start). */
export function configureDateValues(options: DateValueOptions): void {
  current = options;
}

/** The options set by `configureDateValues`, for stage-csv.ts. */
export function dateValueOptions(): DateValueOptions {
  return current;
}
