import { RedshiftDataClient } from '@aws-sdk/client-redshift-data';
import type { S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import type { MergeConfig } from './config';
import type { Dialect } from './dialect';
import type { Step } from './merge-plan';
import { PostgresWarehouse } from './postgres-client';
import { RedshiftDataWarehouse } from './redshift-client';

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

/**
 * The warehouse a merge configuration names: PostgreSQL over `pool` (the caller owns it), or Redshift through the
 * Data API with staging in S3. One place for the Lambda handler and the operator CLI.
 */
export function warehouseFromConfig(config: MergeConfig, deps: { s3: S3Client; pool?: pg.Pool }): WarehouseClient {
  if (config.WAREHOUSE === 'postgres') {
    if (!deps.pool) throw new Error('warehouseFromConfig: WAREHOUSE=postgres needs a pool');
    return new PostgresWarehouse(deps.pool);
  }
  return new RedshiftDataWarehouse({
    client: new RedshiftDataClient({}),
    s3: deps.s3,
    target: config.REDSHIFT_WORKGROUP_NAME
      ? { workgroupName: config.REDSHIFT_WORKGROUP_NAME }
      : {
          clusterIdentifier: config.REDSHIFT_CLUSTER_ID!,
          ...(config.REDSHIFT_DB_USER ? { dbUser: config.REDSHIFT_DB_USER } : {}),
        },
    database: config.REDSHIFT_DATABASE!,
    ...(config.REDSHIFT_SECRET_ARN ? { secretArn: config.REDSHIFT_SECRET_ARN } : {}),
    copyRoleArn: config.COPY_ROLE_ARN!,
    stagingBucket: config.STAGING_BUCKET!,
  });
}
