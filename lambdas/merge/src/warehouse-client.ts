import type { Dialect } from './dialect';
import type { Step } from './merge-plan';

/** The I/O edge of the merge: one implementation per warehouse (PostgreSQL locally, the Data API in AWS). */
export interface WarehouseClient {
  readonly dialect: Dialect;
  /** Runs one statement on its own (autocommit) and returns its rows. */
  query(sql: string): Promise<Record<string, unknown>[]>;
  /** Runs statements one after the other, each committed on its own (idempotent DDL). */
  executeAll(statements: readonly string[]): Promise<void>;
  /** Where the staging CSV of a batch goes, for warehouses that COPY from S3; undefined when streamed. */
  stageLocation(batchId: string): string | undefined;
  /** Runs the steps in one transaction; `csv` feeds the load step. Rolls back on any failure. */
  runTransaction(steps: readonly Step[], csv: string, stageLocation?: string): Promise<void>;
}
