/**
 * Which pipeline the CLI talks to, resolved once at the edge:
 * - the local run (default when it is up): `.local/endpoints.json` (or `$LOCAL_STATE_DIR/endpoints.json`, or
 *   `--endpoints <file>`), written by `npm run local -- up`;
 * - a deployed pipeline: `CDC_TARGET=aws` plus the producer's and the merge's own environment variables
 *   (SOURCE_*, CHECKPOINT_TABLE, PIPELINE_ID, SIGNAL_TABLE; WAREHOUSE, REDSHIFT_*, REPLICA_SCHEMA, CHANGELOG_SCHEMA,
 *   STAGING_BUCKET, COPY_ROLE_ARN), LAKE_BUCKET, and for preflight STREAM_NAME, CAPTURE_INCLUDE, SOURCE_SERVER_ID;
 *   AWS credentials from the usual SDK chain.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { CheckpointStore } from '../../containers/producer/src/checkpoint-store';
import { parseSignalTableName, type SignalTableName } from '../../containers/producer/src/signal-table';
import { loadConfig as loadMergeConfig } from '../../lambdas/merge/src/config';
import { PostgresWarehouse } from '../../lambdas/merge/src/postgres-client';
import { warehouseFromConfig } from '../../lambdas/merge/src/warehouse';
import type { WarehouseClient } from '../../lambdas/merge/src/warehouse-client';
import type { Endpoints } from '../../local/pipeline';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { CliError } from './errors';

export interface SourceConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
}

export interface Target {
  readonly kind: 'local' | 'aws';
  readonly source: SourceConnection;
  readonly pipelineId: string;
  readonly signalTable: SignalTableName;
  readonly store: CheckpointStore;
  readonly dynamo: DynamoDBClient;
  readonly s3: S3Client;
  /** The S3 changelog lake. */
  readonly bucket: string;
  readonly warehouse: WarehouseClient;
  /** The merge's own schema (raw changelog, merge_batches, replica_columns). */
  readonly changelogSchema: string;
  /** Where the replica of a source database lives. */
  replicaSchema(db: string): string;
  readonly kinesis: KinesisClient;
  /** The change stream (STREAM_NAME), when known. */
  readonly streamName: string | undefined;
  /** The producer's capture rules (CAPTURE_INCLUDE): what its user must be able to read. Empty: every database. */
  readonly captureInclude: readonly string[];
  /** The server id the producer presents to the source (SOURCE_SERVER_ID). */
  readonly producerServerId: number;
  /** The role Redshift COPYs the staging files with, and where it must be attached (AWS with Redshift only). */
  readonly copyRole?: { readonly arn: string; readonly workgroupName?: string; readonly clusterId?: string };
  /** The local run's state folder (status.json), when local. */
  readonly localDir?: string;
  close(): Promise<void>;
}

const ROOT = join(import.meta.dirname, '..', '..');

function storeFor(dynamo: DynamoDBClient, tableName: string, pipelineId: string): CheckpointStore {
  // The CLI never takes the lease: it reads, and asks the producer (position requests) through the item.
  return new CheckpointStore({ client: dynamo, tableName, pipelineId, owner: `cdc-cli:${process.pid}` });
}

function localTarget(file: string): Target {
  const ep = JSON.parse(readFileSync(file, 'utf8')) as Endpoints;
  const dynamo = new DynamoDBClient(localAwsClientConfig(ep.aws.dynamodb));
  const pool = new pg.Pool({ connectionString: ep.postgres.url, max: 2 });
  pool.on('error', () => undefined);
  return {
    kind: 'local',
    source: { host: ep.mysql.host, port: ep.mysql.port, user: ep.mysql.user, password: ep.mysql.password },
    pipelineId: 'local',
    signalTable: parseSignalTableName('cdc.cdc_signal'),
    store: storeFor(dynamo, ep.aws.checkpointTable, 'local'),
    dynamo,
    s3: new S3Client(localAwsClientConfig(ep.aws.s3)),
    bucket: ep.aws.bucket,
    kinesis: new KinesisClient(localAwsClientConfig(ep.aws.kinesis)),
    streamName: ep.aws.stream,
    captureInclude: [`${ep.mysql.database}.*`],
    producerServerId: 4242,
    warehouse: new PostgresWarehouse(pool),
    changelogSchema: 'cdc',
    replicaSchema: () => ep.replicaSchema,
    localDir: join(file, '..'),
    close: () => pool.end(),
  };
}

function need(env: NodeJS.ProcessEnv, name: string): string {
  const v = env[name];
  if (!v) throw new CliError('TARGET', `CDC_TARGET=aws needs ${name} (see docs/cli.md)`);
  return v;
}

function awsTarget(env: NodeJS.ProcessEnv): Target {
  let merge: ReturnType<typeof loadMergeConfig>;
  try {
    merge = loadMergeConfig(env);
  } catch (err) {
    throw new CliError('TARGET', (err as Error).message);
  }
  const dynamo = new DynamoDBClient({});
  const s3 = new S3Client({});
  const pipelineId = need(env, 'PIPELINE_ID');
  const pool =
    merge.WAREHOUSE === 'postgres' ? new pg.Pool({ connectionString: merge.POSTGRES_URL!, max: 2 }) : undefined;
  const warehouse = warehouseFromConfig(merge, { s3, ...(pool ? { pool } : {}) });
  return {
    kind: 'aws',
    source: {
      host: need(env, 'SOURCE_HOST'),
      port: Number(env.SOURCE_PORT ?? 3306),
      user: need(env, 'SOURCE_USER'),
      password: env.SOURCE_PASSWORD ?? '',
    },
    pipelineId,
    signalTable: parseSignalTableName(env.SIGNAL_TABLE ?? 'cdc.cdc_signal'),
    store: storeFor(dynamo, need(env, 'CHECKPOINT_TABLE'), pipelineId),
    dynamo,
    s3,
    bucket: need(env, 'LAKE_BUCKET'),
    kinesis: new KinesisClient({}),
    streamName: env.STREAM_NAME,
    captureInclude: (env.CAPTURE_INCLUDE ?? '')
      .split(',')
      .map((r) => r.trim())
      .filter(Boolean),
    producerServerId: Number(env.SOURCE_SERVER_ID ?? 4242),
    ...(merge.WAREHOUSE === 'redshift' && merge.COPY_ROLE_ARN
      ? {
          copyRole: {
            arn: merge.COPY_ROLE_ARN,
            ...(merge.REDSHIFT_WORKGROUP_NAME ? { workgroupName: merge.REDSHIFT_WORKGROUP_NAME } : {}),
            ...(merge.REDSHIFT_CLUSTER_ID ? { clusterId: merge.REDSHIFT_CLUSTER_ID } : {}),
          },
        }
      : {}),
    warehouse,
    changelogSchema: merge.CHANGELOG_SCHEMA,
    replicaSchema: (db) => merge.REPLICA_SCHEMA ?? db,
    close: async () => {
      await pool?.end();
    },
  };
}

/** @throws CliError TARGET when neither a local run nor an AWS target is configured */
export function resolveTarget(opts: { endpoints?: string | undefined }, env = process.env): Target {
  if (env.CDC_TARGET === 'aws') return awsTarget(env);
  const file = opts.endpoints ?? join(env.LOCAL_STATE_DIR ?? join(ROOT, '.local'), 'endpoints.json');
  if (!existsSync(file)) {
    throw new CliError(
      'TARGET',
      `no local pipeline is running (${file} not found): start one with \`npm run local -- up\`, or set CDC_TARGET=aws and the variables docs/cli.md lists`,
    );
  }
  return localTarget(file);
}
