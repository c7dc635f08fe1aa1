import { z } from 'zod';
import { MergeError } from './errors';

/** The merge's configuration, parsed once from the environment (module scope in the Lambda). */
const schema = z
  .object({
    WAREHOUSE: z.enum(['redshift', 'postgres']).default('redshift'),
    POSTGRES_URL: z.string().optional(),
    REDSHIFT_WORKGROUP_NAME: z.string().min(1).optional(),
    REDSHIFT_CLUSTER_ID: z.string().min(1).optional(),
    REDSHIFT_DATABASE: z.string().min(1).optional(),
    REDSHIFT_SECRET_ARN: z
      .string()
      .regex(/^arn:aws[\w-]*:secretsmanager:/, 'must be a Secrets Manager ARN')
      .optional(),
    REDSHIFT_DB_USER: z.string().min(1).optional(),
    COPY_ROLE_ARN: z
      .string()
      .regex(/^arn:aws[\w-]*:iam::\d{12}:role\//, 'must be an IAM role ARN')
      .optional(),
    STAGING_BUCKET: z.string().min(3).optional(),
    REPLICA_SCHEMA: z
      .string()
      .regex(/^[a-z_][a-z0-9_$]*$/, 'must be a lower-case SQL identifier')
      .optional(),
    CHANGELOG_SCHEMA: z
      .string()
      .regex(/^[a-z_][a-z0-9_$]*$/, 'must be a lower-case SQL identifier')
      .default('cdc'),
    HISTORY_TABLES: z.string().default(''),
    DROPPED_TABLE_POLICY: z.enum(['drop', 'archive']).default('drop'),
    DEAD_LETTER_QUEUE_URL: z.string().url().optional(),
    PIPELINE_ID: z.string().min(1).default('default'),
    /** What to do with a text value longer than its Redshift column holds (value-limits.ts). */
    OVERSIZE_VALUES: z.enum(['truncate', 'poison']).default('truncate'),
    /** A record is not started with less time left in the invocation (it is left to SQS redelivery). */
    MIN_REMAINING_MS: z.coerce
      .number()
      .int('must be a whole number of milliseconds')
      .min(0, 'must be ≥ 0')
      .default(60_000),
    AWS_ENDPOINT_S3: z.string().url().optional(),
    /** The lake bucket: where the stream apply writes handed-off objects and undecodable records. */
    LAKE_BUCKET: z.string().min(3).optional(),
    /** The lake path's merge queue: the stream apply queues a handed-off table's object there. */
    HANDOFF_QUEUE_URL: z.string().url().optional(),
    /**
     * Tables merged in one warehouse transaction by the stream apply (Redshift serialises commits: fewer, larger
     * commits cost less than one per table). 1: one transaction per table. An upper bound: a transaction never holds
     * more statements than the Data API's 40 (4 tables with today's plan).
     */
    TABLES_PER_TRANSACTION: z.coerce
      .number()
      .int('must be a whole number')
      .min(1, 'must be ≥ 1')
      .max(8, 'must be ≤ 8')
      .default(4),
  })
  .superRefine((c, ctx) => {
    if (c.WAREHOUSE === 'postgres' && !c.POSTGRES_URL) {
      ctx.addIssue({ code: 'custom', path: ['POSTGRES_URL'], message: 'is required when WAREHOUSE=postgres' });
    }
    if (c.WAREHOUSE === 'redshift') {
      if (!!c.REDSHIFT_WORKGROUP_NAME === !!c.REDSHIFT_CLUSTER_ID) {
        ctx.addIssue({
          code: 'custom',
          path: ['REDSHIFT_WORKGROUP_NAME'],
          message: 'set exactly one of REDSHIFT_WORKGROUP_NAME and REDSHIFT_CLUSTER_ID',
        });
      }
      for (const f of ['REDSHIFT_DATABASE', 'COPY_ROLE_ARN', 'STAGING_BUCKET'] as const) {
        if (!c[f]) ctx.addIssue({ code: 'custom', path: [f], message: 'is required when WAREHOUSE=redshift' });
      }
    }
  });

export type MergeConfig = z.infer<typeof schema> & { readonly historyTables: ReadonlySet<string> };

/** @throws MergeError CONFIG_INVALID listing every bad variable with the value it had */
export function loadConfig(env: Record<string, string | undefined>): MergeConfig {
  const res = schema.safeParse(env);
  if (!res.success) {
    const problems = res.error.issues.map((i) => {
      const field = String(i.path[0] ?? '');
      return `${field}=${JSON.stringify(env[field] ?? null)}: ${i.message}`;
    });
    throw new MergeError('CONFIG_INVALID', `invalid merge configuration: ${problems.join('; ')}`);
  }
  const historyTables = new Set(
    res.data.HISTORY_TABLES.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const t of historyTables) {
    if (!/^[^.\s]+\.[^.\s]+$/.test(t)) {
      throw new MergeError(
        'CONFIG_INVALID',
        `invalid merge configuration: HISTORY_TABLES entry ${JSON.stringify(t)} is not db.table`,
      );
    }
  }
  return { ...res.data, historyTables };
}
