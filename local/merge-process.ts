/**
 * What both local merging processes (the Firehose stand-in, local/firehose-main.ts, and the stream apply,
 * local/stream-apply-main.ts) set up alike: their JSON-lines voice on stdout, their environment checked with every
 * problem named, and the merge over a named PostgreSQL pool built from the merge's own configuration, as the Lambdas
 * build it (lambdas/merge/runtime.ts).
 */
import { S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import type { z } from 'zod';
import { loadConfig as loadMergeConfig, type MergeConfig } from '../lambdas/merge/src/config';
import { configureDateValues } from '../lambdas/merge/src/date-values';
import { type MergeContext, mergeContextFromConfig } from '../lambdas/merge/src/merge';
import { warehouseFromConfig } from '../lambdas/merge/src/warehouse';
import { localAwsClientConfig } from './services/aws-config';

/** One JSON line on stdout, read by local/pipeline.ts. */
export function say(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, at: Date.now(), ...fields })}\n`);
}

/** A process's environment checked against its schema; every problem named with the value it had. */
export function parseEnv<S extends z.ZodTypeAny>(
  schema: S,
  env: Record<string, string | undefined>,
  fail: (message: string) => Error,
): z.infer<S> {
  const res = schema.safeParse(env);
  if (!res.success) {
    const problems = res.error.issues.map(
      (i) => `${String(i.path[0])}=${JSON.stringify(env[String(i.path[0])] ?? null)}: ${i.message}`,
    );
    throw fail(problems.join('; '));
  }
  return res.data;
}

export interface MergeProcessProps {
  /** PostgreSQL application_name, so `pg_stat_activity` (and the e2e tests that interrupt it) can tell it apart. */
  readonly applicationName: string;
  readonly maxConnections: number;
  /** A merge statement running longer is cancelled (the Lambda's Data API deadline, locally). */
  readonly statementTimeoutMs: number;
  readonly s3Endpoint: string;
  /** Merge variables the process sets itself, over its environment's. */
  readonly mergeEnv?: Record<string, string>;
}

export interface MergeProcess {
  readonly merge: MergeConfig;
  readonly pool: pg.Pool;
  readonly s3: S3Client;
  /** The context the Lambda handlers build from the same configuration, over this process's pool. */
  readonly ctx: MergeContext;
  /** Ends the pool, not waiting more than 2 s for a connection a hung merge holds. */
  close(): Promise<void>;
}

export function mergeProcess(props: MergeProcessProps): MergeProcess {
  const merge = loadMergeConfig({ WAREHOUSE: 'postgres', ...process.env, ...props.mergeEnv });
  configureDateValues({
    onNulled: (v) => say('value-nulled', { ...v }),
    onRowSkipped: (r) => say('row-skipped', { ...r }),
  });
  const pool = new pg.Pool({
    connectionString: merge.POSTGRES_URL,
    max: props.maxConnections,
    application_name: props.applicationName,
    options: `-c statement_timeout=${props.statementTimeoutMs}`,
  });
  // A dropped idle connection must not kill the process; the next merge reconnects.
  pool.on('error', (err) => say('error', { error: err.message }));
  const s3 = new S3Client(localAwsClientConfig(props.s3Endpoint));
  return {
    merge,
    pool,
    s3,
    ctx: mergeContextFromConfig(merge, warehouseFromConfig(merge, { s3, pool })),
    close: async () => {
      await Promise.race([pool.end(), new Promise((r) => setTimeout(r, 2000))]);
    },
  };
}
