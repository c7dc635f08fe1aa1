import type { Warehouse } from '../../../shared/type-mapping';
import type { ReplicaColumn } from './table-model';

/**
 * What differs between the warehouses the merge plans for. Everything else in the plan is shared SQL that both
 * PostgreSQL 15 and Redshift accept (MERGE with one WHEN MATCHED and one WHEN NOT MATCHED, DELETE … USING, CTAS).
 */
export interface Dialect {
  readonly warehouse: Warehouse;
  /** Type of a column in the staging table (JSON is staged as text and parsed when applied). */
  stageType(col: ReplicaColumn): string;
  /** Expression turning a staged value into the replica column's value. */
  fromStage(col: ReplicaColumn, expr: string): string;
  /** CSV text of a binary value for this warehouse's COPY. */
  bytesCsv(bytes: Buffer): string;
  /** Creates a temporary table dropped at the end of the transaction (Redshift: end of the session). */
  createTemp(name: string, columnsSql: string): string;
  /** CREATE TEMP TABLE … AS SELECT. */
  createTempAs(name: string, select: string): string;
  /** Serializes merges of one table: taken first in the transaction. */
  lock(tables: readonly string[]): string;
  /** Current timestamp expression. */
  readonly now: string;
  /** Type of the replica's metadata timestamps. */
  readonly timestampType: string;
  /** Index DDL on the key columns of a replica or keys table, where the warehouse has indexes (PostgreSQL). */
  keyIndex(table: string, indexName: string, columns: readonly string[]): string | undefined;
  /** COPY into a staging table: the statement (Redshift) or undefined when the client streams it (PostgreSQL). */
  copyFromStaging(table: string, columns: readonly string[], location: string): string | undefined;
}

/** Double-quoted identifier (both warehouses). Redshift folds it to lower case unless case sensitivity is enabled. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * A statement that fails its transaction when `condition` (over the rows of `from`) holds, and does nothing else: the
 * checks a merge runs after a table's lock, that what it planned from still holds. It casts `reason` to a number,
 * which fails on Redshift and PostgreSQL alike; the CASE is evaluated per result row, after the aggregates, so no
 * constant is folded early. Redshift: CAST returns an error on a problematic conversion
 * (https://docs.aws.amazon.com/redshift/latest/dg/r_CAST_function.html, "Return type"); a text that is no number is
 * reported as "Invalid digit, Value '…', Pos 0, Type: Integer" (error 1207; from public reports, not run here).
 */
export function failWhen(condition: string, reason: string, from: string): string {
  return `SELECT CAST(CASE WHEN ${condition} THEN ${literal(reason)} ELSE '0' END AS INTEGER) FROM ${from}`;
}
