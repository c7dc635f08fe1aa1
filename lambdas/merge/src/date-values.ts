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

export type DateProblem = 'zero date' | 'invalid date';

export interface NulledValue {
  readonly where: string;
  readonly column: string;
  /** The original text (as in the event). */
  readonly value: string;
  readonly reason: DateProblem;
}

export interface DateValueOptions {
  /** Called for every value staged as NULL (the Lambda counts them as `ValuesNulled` and logs them). */
  readonly onNulled?: (v: NulledValue) => void;
}

const DATE_PREFIX = /^(\d{4})-(\d{2})-(\d{2})/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Why the date part of a DATE/DATETIME/TIMESTAMP event value has no warehouse equivalent, or undefined when it has
 * one. Text that does not start with `YYYY-MM-DD` is not judged here (it is not a date the event format produces).
 */
export function unrepresentableDate(text: string): DateProblem | undefined {
  const m = DATE_PREFIX.exec(text);
  if (!m) return undefined;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (month === 0 || day === 0) return 'zero date';
  if (year === 0 || month > 12 || day > daysInMonth(year, month)) return 'invalid date';
  return undefined;
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
