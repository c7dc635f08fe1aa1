/**
 * Picks the warehouse client a merge configuration names (the factory lives apart from the `WarehouseClient`
 * interface, which both implementations import: interface ← implementations ← factory, no circle).
 */
import { RedshiftDataClient } from '@aws-sdk/client-redshift-data';
import type { S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import type { MergeConfig } from './config';
import { PostgresWarehouse } from './postgres-client';
import { RedshiftDataWarehouse } from './redshift-client';
import type { WarehouseClient } from './warehouse-client';

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
