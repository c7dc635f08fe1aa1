/**
 * What both merge Lambdas build once per container from their environment: the configuration, the logger and metrics
 * (with the Pipeline default dimension), the value hooks that count what the warehouse cannot hold, the S3 client,
 * the warehouse and the merge context; and how a merged table is reported. The lake path's handler (handler.ts, SQS
 * of S3 notifications) and the stream path's (stream-handler.ts, Kinesis event source mapping) differ only in what
 * they receive and in their failure policy.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import pg from 'pg';
import { clientConfig } from '../../shared/aws-client-config';
import { METRICS_NAMESPACE, MergeMetric, PIPELINE_DIMENSION } from '../../shared/metrics';
import { loadConfig, type MergeConfig } from './src/config';
import { configureDateValues } from './src/date-values';
import { MergeError } from './src/errors';
import { type MergeContext, mergeContextFromConfig, type TableResult } from './src/merge';
import { RedshiftDataWarehouse } from './src/redshift-client';
import { configureValueLimits } from './src/value-limits';
import { warehouseFromConfig } from './src/warehouse';
import type { WarehouseClient } from './src/warehouse-client';

export interface MergeRuntime {
  readonly config: MergeConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly s3: S3Client;
  readonly warehouse: WarehouseClient;
  readonly ctx: MergeContext;
  /** Metrics and a log line for each merged table: rows per table and operation, totals, freshness. */
  reportMerged(results: readonly TableResult[], fields: Record<string, unknown>): void;
  /** Bounds the invocation's warehouse statements by its own end (Data API statements are cancelled in time). */
  startInvocation(context: Context): void;
}

/** Left at the end of an invocation to delete staging objects and flush metrics after statements were cancelled. */
const END_MARGIN_MS = 5_000;

/** Time left in the invocation; a context without the method (a local caller) has no limit. */
export function remainingMs(context: Context): number {
  return typeof context.getRemainingTimeInMillis === 'function'
    ? context.getRemainingTimeInMillis()
    : Number.POSITIVE_INFINITY;
}

export function createMergeRuntime(serviceName: string, env: Record<string, string | undefined>): MergeRuntime {
  const config = loadConfig(env);
  const logger = new Logger({ serviceName });
  // Default dimensions, not addDimension: publishStoredMetrics clears added dimensions after each flush, so a warm
  // Lambda's later flushes (and every singleMetric) would lose the Pipeline the alarms select on.
  const metrics = new Metrics({
    namespace: env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
    serviceName,
    defaultDimensions: { [PIPELINE_DIMENSION]: config.PIPELINE_ID },
  });
  configureValueLimits({
    policy: config.OVERSIZE_VALUES,
    onTruncated: (v) => {
      logger.warn('value truncated to fit its Redshift column', { ...v });
      metrics.addMetric(MergeMetric.ValuesTruncated, MetricUnit.Count, 1);
    },
  });
  configureDateValues({
    onNulled: (v) => {
      logger.warn('date the warehouse cannot hold staged as NULL', { ...v });
      metrics.addMetric(MergeMetric.ValuesNulled, MetricUnit.Count, 1);
    },
    onRowSkipped: (r) => {
      logger.error('row not merged: its primary key holds a value the warehouse cannot hold', { ...r });
      metrics.addMetric(MergeMetric.RowsSkipped, MetricUnit.Count, 1);
    },
  });
  const s3 = new S3Client(clientConfig(config.AWS_ENDPOINT_S3));
  let pool: pg.Pool | undefined;
  if (config.WAREHOUSE === 'postgres') {
    pool = new pg.Pool({ connectionString: config.POSTGRES_URL!, max: 2 });
    // An idle connection dropped by the server must not crash the process; the next merge reconnects.
    pool.on('error', (err) => logger.warn('idle PostgreSQL connection lost', { error: err.message }));
  }
  const warehouse = warehouseFromConfig(config, { s3, ...(pool ? { pool } : {}) });
  const ctx = mergeContextFromConfig(config, warehouse, {
    onRetry: (table, attempt, err) => {
      // SERIALIZATION_CONFLICT (retried as it is) or PLAN_STALE (another merge of the table got there first: planned again).
      const code = err instanceof MergeError ? err.code : undefined;
      logger.warn(code === 'PLAN_STALE' ? 'plan went stale, planning again' : 'serialization conflict, retrying', {
        table,
        attempt,
        code,
        error: err.message,
      });
      metrics.addMetric(MergeMetric.Retries, MetricUnit.Count, 1);
    },
  });
  return {
    config,
    logger,
    metrics,
    s3,
    warehouse,
    ctx,
    reportMerged(results, fields) {
      for (const r of results) {
        for (const [op, n] of Object.entries(r.byOp)) {
          // One EMF document per table and operation (singleMetric flushes on addMetric).
          const m = metrics.singleMetric();
          m.addDimension('Table', `${r.db}.${r.table}`);
          m.addDimension('Operation', op);
          m.addMetric(MergeMetric.RowsApplied, MetricUnit.Count, n);
        }
        metrics.addMetric(
          MergeMetric.RowsApplied,
          MetricUnit.Count,
          Object.values(r.byOp).reduce((a, b) => a + b, 0),
        );
        metrics.addMetric(
          MergeMetric.ReplicaFreshness,
          MetricUnit.Seconds,
          Math.max(0, (Date.now() - r.maxCommitMs) / 1000),
        );
        logger.info('merged', { ...fields, ...r });
      }
    },
    startInvocation(context) {
      // Data API statements are cancelled before this invocation ends rather than left running by a timed-out Lambda.
      const left = remainingMs(context);
      if (warehouse instanceof RedshiftDataWarehouse)
        warehouse.setInvocationDeadline(Number.isFinite(left) ? Date.now() + left - END_MARGIN_MS : undefined);
    },
  };
}
