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
