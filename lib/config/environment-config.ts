/**
 * One typed configuration per environment (stage). `bin/app.ts` validates it once with `validateEnvironmentConfig`;
 * everything below receives the parsed, typed value.
 */
import { z } from 'zod';

const sqlIdentifier = z.string().regex(/^[a-z_][a-z0-9_$]{0,126}$/, 'must be a lower-case SQL identifier');
const account = z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id');
const region = z.string().regex(/^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/, 'must be an AWS region such as eu-west-1');
const secretArn = z
  .string()
  .regex(/^arn:aws[\w-]*:secretsmanager:[\w-]+:\d{12}:secret:.+$/, 'must be a Secrets Manager secret ARN');
/** A customer managed KMS key that encrypts an imported secret (its readers need kms:Decrypt on it). */
const kmsKeyArn = z
  .string()
  .regex(
    /^arn:aws[\w-]*:kms:[\w-]+:\d{12}:key\/(mrk-)?[0-9a-f-]{32,36}$/,
    'must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)',
  );
/** `db.table` or `db.*` patterns, as the producer's CAPTURE_INCLUDE/EXCLUDE take them. */
const tablePattern = z.string().regex(/^[^.\s,]+\.[^.\s,]+$/, 'must be db.table (wildcards * allowed)');
const columnPattern = z.string().regex(/^[^.\s,]+\.[^.\s,]+\.[^.\s,]+$/, 'must be db.table.column');

/** The retention periods CloudWatch Logs accepts. */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];
const logRetentionDays = z
  .number()
  .refine((d) => LOG_RETENTION_DAYS.includes(d), `must be one of ${LOG_RETENTION_DAYS.join(', ')} (CloudWatch Logs)`)
  .default(30);

/** An availability zone name (eu-west-1a); that it lies in `region` is checked with the whole config. */
const availabilityZone = z
  .string()
  .regex(/^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d[a-z]$/, 'must be an availability zone such as eu-west-1a');

const vpcSchema = z.discriminatedUnion('mode', [
  z.object({
    mode: z.literal('create'),
    /**
     * The zones to spread the subnets over, named explicitly: `maxAzs` would make synth look the region's zones up
     * with AWS credentials (and cache them in an uncommitted cdk.context.json), so synth would not run offline.
     */
    availabilityZones: z
      .array(availabilityZone)
      .min(1)
      .max(6)
      .refine((a) => new Set(a).size === a.length, 'must not repeat a zone'),
    /** NAT gateways for the producer's egress to Kinesis/DynamoDB. @default 1 */
    natGateways: z.number().int().min(0).max(6).default(1),
    cidr: z
      .string()
      .regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, 'must be a CIDR block')
      .default('10.80.0.0/16'),
  }),
  z.object({
    mode: z.literal('import'),
    vpcId: z.string().regex(/^vpc-[0-9a-f]{8,17}$/, 'must be a VPC id (vpc-…)'),
    availabilityZones: z
      .array(availabilityZone)
      .min(1)
      .refine((a) => new Set(a).size === a.length, 'must not repeat a zone'),
    /**
     * Private subnets (with a route to the source database and to AWS APIs) the producer runs in, listed zone by zone
     * in the order of `availabilityZones` (CDK maps the i-th subnet to zone i modulo the number of zones).
     */
    privateSubnetIds: z
      .array(z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'must be a subnet id (subnet-…)'))
      .min(1)
      .refine((a) => new Set(a).size === a.length, 'must not repeat a subnet'),
  }),
]);

const sourceSchema = z.object({
  host: z.string().min(1, 'must name the MySQL/MariaDB host'),
  port: z.number().int().min(1).max(65535).default(3306),
  /** Secrets Manager secret with `username` and `password` (the RDS secret format). */
  secretArn,
  /** The customer managed KMS key of `secretArn`, if not the AWS managed one: ECS gets kms:Decrypt on it. @default none */
  secretKmsKeyArn: kmsKeyArn.optional(),
  /** Replication client id; unique among the source's replicas. @default 4242 */
  serverId: z.number().int().min(1).max(4294967295).default(4242),
  /** Security group of the database: the producer is allowed in on `port`. @default no rule is added */
  securityGroupId: z
    .string()
    .regex(/^sg-[0-9a-f]{8,17}$/, 'must be a security group id (sg-…)')
    .optional(),
  include: z.array(tablePattern).min(1, 'must capture at least one table pattern'),
  exclude: z.array(tablePattern).default([]),
  excludeColumns: z.array(columnPattern).default([]),
  hashColumns: z.array(columnPattern).default([]),
  maskColumns: z.array(columnPattern).default([]),
  /** `initial`: snapshot every captured table when no checkpoint exists, and tables added to `include` later. */
  snapshotMode: z.enum(['initial', 'never']).default('initial'),
  /** Rows per snapshot chunk (one low/high watermark pair each). */
  snapshotChunkRows: z.number().int().min(1).max(1_000_000).default(4096),
  /** Bytes of rows a snapshot chunk aims at (fewer rows than `snapshotChunkRows` where rows are large). */
  snapshotChunkBytes: z
    .number()
    .int()
    .min(1024 * 1024)
    .max(1024 * 1024 * 1024)
    .default(16 * 1024 * 1024),
  /** Most rows of a table without a primary key (read whole, in the producer's memory). */
  snapshotKeylessMaxRows: z.number().int().min(1).max(50_000_000).default(250_000),
  /** Signal table in the source (snapshot watermarks, backfill requests); the producer creates it when missing. */
  signalTable: z
    .string()
    .regex(/^[A-Za-z0-9_$]+\.[A-Za-z0-9_$]+$/, 'must be db.table')
    .default('cdc.cdc_signal'),
});

const streamSchema = z.object({
  mode: z.enum(['on-demand', 'provisioned']).default('on-demand'),
  /** Only for provisioned mode. */
  shards: z.number().int().min(1).max(500).optional(),
  /** At least 7 days: as long as the source keeps its binlog (RDS seed design), so any position can be replayed. */
  retentionHours: z
    .number()
    .int()
    .min(168, 'must be at least 168 (7 days, the binlog retention the pipeline can replay from)')
    .max(8760)
    .default(168),
  /**
   * `table-pk` (the default) spreads a table's rows over shards by key, order kept per row; `table` keeps a table on
   * one shard, at most 1,000 records/s and 1 MiB/s (docs/producer.md, "Writes to Kinesis").
   */
  partitionKeyMode: z.enum(['table', 'table-pk']).default('table-pk'),
});

const producerSchema = z.object({
  cpu: z.union([z.literal(256), z.literal(512), z.literal(1024), z.literal(2048), z.literal(4096)]).default(512),
  memoryMiB: z.number().int().min(512).max(30720).default(1024),
  /** Time ECS gives the producer after SIGTERM to drain and checkpoint (Fargate allows at most 120 s). */
  stopTimeoutSeconds: z.number().int().min(10).max(120).default(120),
  leaseSeconds: z.number().int().min(2).max(600).default(30),
  /** PutRecords calls in flight at once, for disjoint partition keys (never two for one key). */
  putRecordsInFlight: z.number().int().min(1).max(64).default(8),
  /**
   * Send PutRecords from a thread of its own (KINESIS_SINK_THREAD, docs/producer.md "The sink on its own thread"). It
   * pays only with a second vCPU. @default true when `cpu` is 2048 or more
   */
  kinesisSinkThread: z.boolean().optional(),
  /**
   * Reading pauses above this many bytes of unacknowledged records (MAX_IN_FLIGHT_BYTES, docs/producer.md "Memory"),
   * besides 20,000 events. At most half of `memoryMiB`. @default 64 MiB
   */
  maxInFlightBytes: z
    .number()
    .int()
    .min(1024 * 1024)
    .optional(),
  logRetentionDays,
});

const lakeSchema = z.object({
  /** Firehose buffering interval; with dynamic partitioning Firehose requires at least 60 s. */
  bufferingIntervalSeconds: z
    .number()
    .int()
    .min(60, 'must be at least 60 (Firehose dynamic partitioning buffers at least 60 s)')
    .max(900)
    .default(60),
  /** Dynamic partitioning needs at least 64 MiB. */
  bufferingSizeMiB: z
    .number()
    .int()
    .min(64, 'must be at least 64 (Firehose dynamic partitioning)')
    .max(128)
    .default(64),
  /** Move changelog objects to S3 Infrequent Access after this many days. @default 30 */
  infrequentAccessAfterDays: z.number().int().min(30).default(30),
  /** Delete changelog objects after this many days; 0 keeps them forever. @default 0 */
  expireAfterDays: z.number().int().min(0).default(0),
});

const redshiftCommon = {
  database: z.string().regex(/^[a-z_][a-z0-9_$]{0,63}$/, 'must be a Redshift database name'),
  /** Whether Firehose can reach the warehouse (publicly accessible): then it also loads the raw changelog table. */
  firehoseReachable: z.boolean().default(false),
  /** Schema of the replica tables; by default one schema per source database. */
  replicaSchema: sqlIdentifier.optional(),
  /** Schema of the raw changelog and the merge's bookkeeping. @default cdc */
  changelogSchema: sqlIdentifier.default('cdc'),
  /** Tables (db.table) that also keep every version (valid_from/valid_to). */
  historyTables: z.array(tablePattern).default([]),
  /**
   * What the replica of a dropped (or renamed-away) source table becomes: dropped like the source, or archived as
   * `<table>__dropped_<position>` (docs/merge.md). @default drop
   */
  droppedTablePolicy: z.enum(['drop', 'archive']).default('drop'),
  /**
   * The customer managed KMS key of the imported `secretArn`, if not the AWS managed one: every reader (merge,
   * Firehose, the changelog-table resource) gets kms:Decrypt on it. @default none
   */
  secretKmsKeyArn: kmsKeyArn.optional(),
};

const redshiftSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('serverless'),
    /** Create a namespace + workgroup (dev) instead of importing one. */
    create: z
      .object({
        baseCapacityRpu: z.number().int().min(8).max(512).default(8),
        publiclyAccessible: z.boolean().default(false),
      })
      .optional(),
    workgroupName: z.string().regex(/^[a-z0-9-]{3,64}$/, 'must be a Redshift Serverless workgroup name'),
    /** The imported workgroup's id (a UUID): IAM scopes Data API permissions by it. */
    workgroupId: z
      .string()
      .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a workgroup id (UUID)')
      .optional(),
    namespaceName: z
      .string()
      .regex(/^[a-z0-9-]{3,64}$/, 'must be a Redshift Serverless namespace name')
      .optional(),
    /** Admin/loader secret (username + password). Required when importing; a created namespace manages its own. */
    secretArn: secretArn.optional(),
    ...redshiftCommon,
  }),
  z.object({
    kind: z.literal('cluster'),
    clusterId: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be a Redshift cluster identifier'),
    /** host:port of the cluster endpoint; needed for Firehose. */
    endpoint: z
      .string()
      .regex(/^[a-z0-9.-]+:\d+$/, 'must be host:port')
      .optional(),
    secretArn: secretArn.optional(),
    /** With no secret, the merge uses temporary credentials for this database user. */
    dbUser: z.string().min(1).optional(),
    ...redshiftCommon,
  }),
]);

const mergeSchema = z.object({
  memoryMiB: z.number().int().min(256).max(10240).default(1024),
  timeoutSeconds: z.number().int().min(30).max(900).default(300),
  /** Concurrent merges (SQS event source maximum concurrency, at least 2). Merges of one table serialize on a table lock. */
  maxConcurrency: z.number().int().min(2).max(1000).default(4),
  batchSize: z.number().int().min(1).max(100).default(10),
  /** Deliveries of one message before it moves to the dead-letter queue. */
  maxReceiveCount: z.number().int().min(1).max(100).default(5),
  logRetentionDays,
});

/** A whole number within [min, max], with a message naming the limit and what sets it. */
const wholeNumber = (min: number, max: number, what: string) =>
  z
    .number()
    .int('must be a whole number')
    .min(min, `must be ${min} to ${max} (${what})`)
    .max(max, `must be ${min} to ${max} (${what})`);

/** The stream apply's defaults (docs/configuration.md, "Apply path"). */
export const APPLY_STREAM_DEFAULTS = {
  batchSize: 1000,
  batchingWindowSeconds: 1,
  parallelizationFactor: 1,
  maximumRetryAttempts: 1000,
  maximumRecordAgeSeconds: 86400,
  tablesPerTransaction: 4,
} as const;

/**
 * The Kinesis event source mapping of the stream apply. Limits are the Lambda API's for Kinesis
 * (https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html), checked here so a bad value fails
 * synth naming the field instead of failing the deployment.
 */
const applyStreamSchema = z.object({
  /** Records per invocation (each batch holds records of one shard). */
  batchSize: wholeNumber(1, 10000, 'Kinesis event source mapping BatchSize').default(APPLY_STREAM_DEFAULTS.batchSize),
  /**
   * Lambda gathers records this long before invoking (unless the batch fills first): each shard × parallelization
   * commits at most about once per window while changes trickle in. The commit pacing and cost knob.
   */
  batchingWindowSeconds: wholeNumber(0, 300, 'MaximumBatchingWindowInSeconds').default(
    APPLY_STREAM_DEFAULTS.batchingWindowSeconds,
  ),
  /** Batches of one shard processed at once (order is kept per partition key). */
  parallelizationFactor: wholeNumber(1, 10, 'ParallelizationFactor').default(
    APPLY_STREAM_DEFAULTS.parallelizationFactor,
  ),
  /** Retries of a failed batch (bisected on each failure) before it goes to the on-failure destination; -1: forever. */
  maximumRetryAttempts: z
    .number()
    .int('must be a whole number')
    .refine(
      (n) => n === -1 || (n >= 0 && n <= 10000),
      'must be -1 (retry until the record expires) or 0 to 10000 (MaximumRetryAttempts)',
    )
    .default(APPLY_STREAM_DEFAULTS.maximumRetryAttempts),
  /** Records older than this go to the on-failure destination instead of being retried; -1: no limit. */
  maximumRecordAgeSeconds: z
    .number()
    .int('must be a whole number')
    .refine(
      (n) => n === -1 || (n >= 60 && n <= 604800),
      'must be -1 (no limit) or 60 to 604800 (MaximumRecordAgeInSeconds)',
    )
    .default(APPLY_STREAM_DEFAULTS.maximumRecordAgeSeconds),
  /**
   * Tables whose row merges share one warehouse transaction (the merge's TABLES_PER_TRANSACTION, 1–8). A Data API
   * transaction holds at most 40 statements, so a group never exceeds what fits (about 4 tables): higher values are an
   * upper bound, not a promise.
   */
  tablesPerTransaction: wholeNumber(1, 8, 'TABLES_PER_TRANSACTION of the merge').default(
    APPLY_STREAM_DEFAULTS.tablesPerTransaction,
  ),
});

const applySchema = z.object({
  /**
   * `stream`: the stream apply consumes the Kinesis stream (seconds fresh). `lake`: the merge is fed by S3
   * notifications of Firehose's changelog objects (minutes fresh). Either way the lake is written and the merge queue
   * stays for handoffs, replays and rebuilds.
   */
  source: z
    .enum(['stream', 'lake'], {
      error: 'must be stream (apply from the Kinesis stream) or lake (apply from the S3 changelog objects)',
    })
    .default('stream'),
  stream: applyStreamSchema.default({ ...APPLY_STREAM_DEFAULTS }),
});

const alarmsSchema = z.object({
  emails: z.array(z.string().email('must be an e-mail address')).default([]),
  /** An existing SNS topic to notify instead of creating one. */
  topicArn: z
    .string()
    .regex(/^arn:aws[\w-]*:sns:[\w-]+:\d{12}:.+$/, 'must be an SNS topic ARN')
    .optional(),
  producerLagSeconds: z.number().positive().default(300),
  iteratorAgeSeconds: z.number().positive().default(300),
  firehoseFreshnessSeconds: z.number().positive().default(900),
  replicaFreshnessSeconds: z.number().positive().default(900),
  mergeErrorsPer5Minutes: z.number().int().min(0).default(0),
  /** Restarts of the producer within an hour before alarming. */
  producerStartsPerHour: z.number().int().min(1).default(3),
  dlqMessages: z.number().int().min(0).default(0),
});

export const environmentConfigSchema = z
  .object({
    stage: z.string().regex(/^[a-z][a-z0-9-]{1,15}$/, 'must be lower-case letters, digits and -'),
    account,
    region,
    /** Pipeline id: names resources, the checkpoint record and the metrics dimension. @default the stage */
    pipelineId: z
      .string()
      .regex(/^[a-z][a-z0-9-]{1,19}$/, 'must be 2-20 lower-case letters, digits and - (it is part of bucket names)')
      .optional(),
    vpc: vpcSchema,
    source: sourceSchema,
    stream: streamSchema.default({ mode: 'on-demand', retentionHours: 168, partitionKeyMode: 'table-pk' }),
    producer: producerSchema.default({
      cpu: 512,
      memoryMiB: 1024,
      stopTimeoutSeconds: 120,
      leaseSeconds: 30,
      putRecordsInFlight: 8,
      logRetentionDays: 30,
    }),
    lake: lakeSchema.default({
      bufferingIntervalSeconds: 60,
      bufferingSizeMiB: 64,
      infrequentAccessAfterDays: 30,
      expireAfterDays: 0,
    }),
    redshift: redshiftSchema,
    merge: mergeSchema.default({
      memoryMiB: 1024,
      timeoutSeconds: 300,
      maxConcurrency: 4,
      batchSize: 10,
      maxReceiveCount: 5,
      logRetentionDays: 30,
    }),
    apply: applySchema.default({ source: 'stream', stream: { ...APPLY_STREAM_DEFAULTS } }),
    alarms: alarmsSchema.default({
      emails: [],
      producerLagSeconds: 300,
      iteratorAgeSeconds: 300,
      firehoseFreshnessSeconds: 900,
      replicaFreshnessSeconds: 900,
      mergeErrorsPer5Minutes: 0,
      producerStartsPerHour: 3,
      dlqMessages: 0,
    }),
    /** What happens to stateful resources (stream, buckets, tables, keys) when the stack is deleted. */
    removalPolicy: z.enum(['retain', 'destroy']).default('retain'),
  })
  .superRefine((c, ctx) => {
    if (c.stream.mode === 'provisioned' && c.stream.shards === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['stream', 'shards'],
        message: 'is required when stream.mode is provisioned',
      });
    if (c.stream.mode === 'on-demand' && c.stream.shards !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['stream', 'shards'],
        message: 'applies only when stream.mode is provisioned',
      });
    const r = c.redshift;
    if (r.kind === 'serverless' && !r.create && !r.secretArn)
      ctx.addIssue({
        code: 'custom',
        path: ['redshift', 'secretArn'],
        message: 'is required when importing a workgroup (redshift.create is not set)',
      });
    if (r.kind === 'serverless' && !r.create && !r.workgroupId)
      ctx.addIssue({
        code: 'custom',
        path: ['redshift', 'workgroupId'],
        message: 'is required when importing a workgroup (redshift.create is not set)',
      });
    c.vpc.availabilityZones.forEach((az, i) => {
      if (!az.startsWith(c.region))
        ctx.addIssue({
          code: 'custom',
          path: ['vpc', 'availabilityZones', i],
          message: `must be a zone of region ${c.region}`,
        });
    });
    if (c.vpc.mode === 'import' && c.vpc.privateSubnetIds.length % c.vpc.availabilityZones.length !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['vpc', 'privateSubnetIds'],
        message: `must list the same number of subnets in each of the ${c.vpc.availabilityZones.length} vpc.availabilityZones (got ${c.vpc.privateSubnetIds.length})`,
      });
    if (r.kind === 'serverless' && r.create && c.vpc.availabilityZones.length < 3)
      ctx.addIssue({
        code: 'custom',
        path: ['vpc', 'availabilityZones'],
        message:
          'must name at least 3 zones when redshift.create is set (a Redshift Serverless workgroup needs subnets in 3 AZs)',
      });
    if (r.kind === 'serverless' && r.create?.publiclyAccessible && c.vpc.mode === 'import')
      ctx.addIssue({
        code: 'custom',
        path: ['redshift', 'create', 'publiclyAccessible'],
        message: 'needs vpc.mode create: an imported VPC lists private subnets only',
      });
    if (r.kind === 'serverless' && r.create && !r.namespaceName)
      ctx.addIssue({
        code: 'custom',
        path: ['redshift', 'namespaceName'],
        message: 'is required when redshift.create is set',
      });
    if (r.kind === 'serverless' && r.create && r.firehoseReachable && !r.create.publiclyAccessible)
      ctx.addIssue({
        code: 'custom',
        path: ['redshift', 'firehoseReachable'],
        message: 'needs redshift.create.publiclyAccessible: Firehose reaches Redshift only over a public endpoint',
      });
    if (r.kind === 'serverless' && r.create && r.secretKmsKeyArn)
      ctx.addIssue({
        code: 'custom',
        path: ['redshift', 'secretKmsKeyArn'],
        message: 'applies only to an imported secret (redshift.create makes its own, encrypted with the pipeline key)',
      });
    if (r.kind === 'cluster' && !r.secretArn && !r.dbUser)
      ctx.addIssue({ code: 'custom', path: ['redshift', 'secretArn'], message: 'set secretArn or dbUser' });
    if (r.kind === 'cluster' && r.firehoseReachable && (!r.endpoint || !r.secretArn))
      ctx.addIssue({
        code: 'custom',
        path: ['redshift', 'endpoint'],
        message: 'endpoint and secretArn are required when firehoseReachable is true',
      });
    if (c.removalPolicy === 'destroy' && c.stage === 'prod')
      ctx.addIssue({
        code: 'custom',
        path: ['removalPolicy'],
        message: 'must be retain for prod: deleting the stack must not delete the changelog',
      });
    if (c.lake.expireAfterDays > 0 && c.lake.expireAfterDays <= c.lake.infrequentAccessAfterDays)
      ctx.addIssue({
        code: 'custom',
        path: ['lake', 'expireAfterDays'],
        message: 'must be after lake.infrequentAccessAfterDays (or 0 to keep objects forever)',
      });
    if (c.apply.stream.batchSize > 10 && c.apply.stream.batchingWindowSeconds < 1)
      ctx.addIssue({
        code: 'custom',
        path: ['apply', 'stream', 'batchingWindowSeconds'],
        message: `must be at least 1 when apply.stream.batchSize is over 10 (got ${c.apply.stream.batchSize}; Lambda API, MaximumBatchingWindowInSeconds)`,
      });
    if (!c.alarms.topicArn && c.alarms.emails.length === 0 && c.stage === 'prod')
      ctx.addIssue({
        code: 'custom',
        path: ['alarms', 'emails'],
        message: 'prod needs alarms.emails or alarms.topicArn',
      });
  });

/** What an environment file holds (defaults not yet applied). */
export type EnvironmentConfigInput = z.input<typeof environmentConfigSchema>;
/** A validated environment with every default applied. */
export type EnvironmentConfig = z.output<typeof environmentConfigSchema> & { readonly pipelineId: string };
export type RedshiftConfig = EnvironmentConfig['redshift'];
