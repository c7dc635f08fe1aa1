import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Token, Tokenization } from 'aws-cdk-lib';
import type { MetricOptions } from 'aws-cdk-lib/aws-cloudwatch';
import { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import { type ISecurityGroup, type IVpc, Port, SecurityGroup, SubnetType } from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import {
  AwsLogDriver,
  Cluster,
  ContainerImage,
  ContainerInsights,
  CpuArchitecture,
  Secret as EcsSecret,
  FargateService,
  FargateTaskDefinition,
  OperatingSystemFamily,
} from 'aws-cdk-lib/aws-ecs';
import type { IStream } from 'aws-cdk-lib/aws-kinesis';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { LAKE_CLAIM_CHECK_PREFIX } from '../../shared/lake-layout';
import { METRICS_NAMESPACE, ProducerMetric } from '../../shared/metrics';
import type { ChangelogLake } from './changelog-lake';
import type { CheckpointTable } from './checkpoint-table';
import { grantKey, grantSecretKeyDecrypt, grantStreamWrite } from './grants';
import { acknowledge, acknowledgeWildcards, objectPrefixes } from './nag';
import { pipelineMetric } from './pipeline-metric';
import { PropsCheck } from './props-validation';

/** The repository root: the producer's Docker build context (its Dockerfile copies shared/ too). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PRODUCER_DOCKERFILE = 'containers/producer/Dockerfile';

/** The MySQL/MariaDB server the producer reads the binlog of. */
export interface ProducerSourceProps {
  readonly host: string;
  /** @default 3306 */
  readonly port?: number;
  /** The replica server id the producer registers with (unique among the source's replicas). @default 4242 */
  readonly serverId?: number;
  /** Secrets Manager secret with `username` and `password` (the RDS secret format). */
  readonly credentials: ISecret;
  /**
   * Security group of the database, given by id: the producer is allowed in on `port`. An id, not an ISecurityGroup,
   * so the ingress rule keeps its construct path (a moved rule would be created again before the old one is deleted,
   * and EC2 refuses a duplicate rule). @default no rule is added
   */
  readonly securityGroupId?: string;
}

/** What the producer captures and how (containers/producer reads these as environment variables). */
export interface ProducerCaptureProps {
  /** `db.table` patterns (wildcards *) of the tables captured. */
  readonly include: readonly string[];
  /** @default none */
  readonly exclude?: readonly string[];
  /** `db.table.column` patterns. @default none */
  readonly excludeColumns?: readonly string[];
  /** @default none */
  readonly hashColumns?: readonly string[];
  /** @default none */
  readonly maskColumns?: readonly string[];
  /** @default 'initial' */
  readonly snapshotMode?: 'initial' | 'never';
  /** Rows per snapshot chunk. @default 4096 */
  readonly snapshotChunkRows?: number;
  /** Bytes of rows a snapshot chunk aims at (fewer rows where rows are large). @default 16 MiB */
  readonly snapshotChunkBytes?: number;
  /** Most rows of a table without a primary key (read whole, in memory). @default 250000 */
  readonly snapshotKeylessMaxRows?: number;
  /** `db.table` of the signal table. @default 'cdc.cdc_signal' */
  readonly signalTable?: string;
  /** `table-pk` spreads a table's rows over shards by key (order kept per row; see docs/producer.md). @default 'table-pk' */
  readonly partitionKeyMode?: 'table' | 'table-pk';
}

export interface ProducerServiceProps {
  readonly vpc: IVpc;
  /** Names the checkpoint item, the metrics dimension and the security group description. */
  readonly pipelineId: string;
  readonly source: ProducerSourceProps;
  readonly capture: ProducerCaptureProps;
  /** The change stream the producer writes. */
  readonly stream: IStream;
  /** The producer may read and write only its pipeline's item. */
  readonly checkpoints: CheckpointTable;
  /** Where events over the Kinesis record size are parked (claim-check/). */
  readonly lake: ChangelogLake;
  /** Encrypts the log group; the task encrypts with it (stream, claim-check objects, checkpoint item). */
  readonly encryptionKey: IKey;
  /** Fargate CPU units. @default 512 */
  readonly cpu?: number;
  /** Fargate memory, valid for `cpu`. @default 1024 */
  readonly memoryLimitMiB?: number;
  /** Time ECS gives the producer after SIGTERM to drain and checkpoint (Fargate allows at most 120 s). @default 120 seconds */
  readonly stopTimeout?: Duration;
  /** The checkpoint lease: a second producer is fenced for this long after the last renewal. @default 30 seconds */
  readonly leaseDuration?: Duration;
  /** PutRecords calls in flight at once, for disjoint partition keys. @default 8 */
  readonly putRecordsInFlight?: number;
  /**
   * Send PutRecords from a thread of its own (KINESIS_SINK_THREAD): the AWS SDK's work per call runs beside the
   * binlog decoding instead of after it. It needs a second vCPU to pay. @default true when `cpu` is 2048 or more
   */
  readonly kinesisSinkThread?: boolean;
  /**
   * Reading pauses above this many bytes of unacknowledged records (MAX_IN_FLIGHT_BYTES), besides 20,000 events; at
   * most half the task's memory. @default 64 MiB
   */
  readonly maxInFlightBytes?: number;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** Of the log group. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /** @default the producer's Dockerfile in this repository */
  readonly image?: ContainerImage;
}

/** Memory (MiB) Fargate accepts for each CPU size (Amazon ECS developer guide, "Task CPU and memory"). */
const FARGATE_MEMORY: Record<number, readonly number[]> = {
  256: [512, 1024, 2048],
  512: [1024, 2048, 3072, 4096],
  1024: range(2048, 8192, 1024),
  2048: range(4096, 16384, 1024),
  4096: range(8192, 30720, 1024),
  8192: range(16384, 61440, 4096),
  16384: range(32768, 122880, 8192),
};

function range(from: number, to: number, step: number): number[] {
  const out: number[] = [];
  for (let v = from; v <= to; v += step) out.push(v);
  return out;
}

/** A number as an environment variable value; a token stays a token (String() would encode it as a number). */
function text(n: number): string {
  return Tokenization.stringifyNumber(n);
}

function validate(scope: Construct, props: ProducerServiceProps, cpu: number, memory: number): void {
  const check = new PropsCheck(scope);
  check.matches(
    'pipelineId',
    props.pipelineId,
    /^[a-z][a-z0-9-]{1,19}$/,
    'must be 2-20 lower-case letters, digits and -',
  );
  check.number('cpu', cpu, { oneOf: Object.keys(FARGATE_MEMORY).map(Number) });
  const allowed = FARGATE_MEMORY[cpu];
  if (allowed && !Token.isUnresolved(memory) && !Token.isUnresolved(cpu))
    check.require(
      allowed.includes(memory),
      'memoryLimitMiB',
      memory,
      `Fargate does not run cpu ${cpu} with this memory (from ${allowed[0]} to ${allowed[allowed.length - 1]} in steps of ${allowed[1]! - allowed[0]!})`,
    );
  check.duration('stopTimeout', props.stopTimeout, {
    minSeconds: 2,
    maxSeconds: 120,
    wholeSeconds: true,
    why: 'ECS container stopTimeout on Fargate',
  });
  check.duration('leaseDuration', props.leaseDuration, { minSeconds: 2, wholeSeconds: true });
  check.matches('source.host', props.source.host, /^\S+$/, 'must name the MySQL/MariaDB host');
  check.number('source.port', props.source.port, { min: 1, max: 65535, integer: true });
  check.number('source.serverId', props.source.serverId, { min: 1, max: 4294967295, integer: true });
  check.matches(
    'source.securityGroupId',
    props.source.securityGroupId,
    /^sg-[0-9a-f]{8,17}$/,
    'must be a security group id (sg-…)',
  );
  check.require(props.capture.include.length > 0, 'capture.include', '[]', 'must name at least one db.table pattern');
  check.number('putRecordsInFlight', props.putRecordsInFlight, { min: 1, max: 64, integer: true });
  if (!Token.isUnresolved(memory))
    check.number('maxInFlightBytes', props.maxInFlightBytes, {
      min: 1024 * 1024,
      max: (memory * 1024 * 1024) / 2,
      integer: true,
    });
  check.number('capture.snapshotChunkRows', props.capture.snapshotChunkRows, { min: 1, integer: true });
  check.number('capture.snapshotChunkBytes', props.capture.snapshotChunkBytes, {
    min: 1024 * 1024,
    max: 1024 * 1024 * 1024,
    integer: true,
  });
  check.number('capture.snapshotKeylessMaxRows', props.capture.snapshotKeylessMaxRows, { min: 1, integer: true });
  check.matches('capture.signalTable', props.capture.signalTable, /^[^.\s]+\.[^.\s]+$/, 'must be db.table');
  check.throwIfAny();
}

/**
 * The binlog producer on ECS Fargate: exactly one task, and a deployment that stops the old task (SIGTERM: drain,
 * checkpoint, release the lease) before starting the new one, so two producers never run at once; the DynamoDB lease
 * fences any that still would. Credentials come from Secrets Manager; the task may only write the stream, its own
 * checkpoint item and claim-check objects.
 */
export class ProducerService extends Construct {
  readonly cluster: Cluster;
  readonly service: FargateService;
  readonly securityGroup: ISecurityGroup;
  readonly logGroup: LogGroup;
  private readonly pipelineId: string;

  constructor(scope: Construct, id: string, props: ProducerServiceProps) {
    super(scope, id);
    const cpu = props.cpu ?? 512;
    const memoryLimitMiB = props.memoryLimitMiB ?? 1024;
    validate(this, props, cpu, memoryLimitMiB);
    const pipelineId = props.pipelineId;
    const s = props.source;
    const port = s.port ?? 3306;
    const cap = props.capture;
    this.pipelineId = pipelineId;
    this.cluster = new Cluster(this, 'Cluster', { vpc: props.vpc, containerInsightsV2: ContainerInsights.ENABLED });
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      encryptionKey: props.encryptionKey,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    const task = new FargateTaskDefinition(this, 'Task', {
      cpu,
      memoryLimitMiB,
      runtimePlatform: { cpuArchitecture: CpuArchitecture.X86_64, operatingSystemFamily: OperatingSystemFamily.LINUX },
    });
    task.addContainer('Producer', {
      image:
        props.image ??
        ContainerImage.fromAsset(REPO_ROOT, { file: PRODUCER_DOCKERFILE, platform: Platform.LINUX_AMD64 }),
      essential: true,
      stopTimeout: props.stopTimeout ?? Duration.seconds(120),
      logging: new AwsLogDriver({ logGroup: this.logGroup, streamPrefix: 'producer' }),
      environment: {
        PIPELINE_ID: pipelineId,
        SOURCE_HOST: s.host,
        SOURCE_PORT: text(port),
        SOURCE_SERVER_ID: text(s.serverId ?? 4242),
        CAPTURE_INCLUDE: cap.include.join(','),
        CAPTURE_EXCLUDE: (cap.exclude ?? []).join(','),
        CAPTURE_EXCLUDE_COLUMNS: (cap.excludeColumns ?? []).join(','),
        CAPTURE_HASH_COLUMNS: (cap.hashColumns ?? []).join(','),
        CAPTURE_MASK_COLUMNS: (cap.maskColumns ?? []).join(','),
        SNAPSHOT_MODE: cap.snapshotMode ?? 'initial',
        SNAPSHOT_CHUNK_ROWS: text(cap.snapshotChunkRows ?? 4096),
        SNAPSHOT_CHUNK_BYTES: text(cap.snapshotChunkBytes ?? 16 * 1024 * 1024),
        SNAPSHOT_KEYLESS_MAX_ROWS: text(cap.snapshotKeylessMaxRows ?? 250_000),
        SIGNAL_TABLE: cap.signalTable ?? 'cdc.cdc_signal',
        STREAM_NAME: props.stream.streamName,
        PARTITION_KEY_MODE: cap.partitionKeyMode ?? 'table-pk',
        PUT_RECORDS_IN_FLIGHT: text(props.putRecordsInFlight ?? 8),
        MAX_IN_FLIGHT_BYTES: text(props.maxInFlightBytes ?? 64 * 1024 * 1024),
        KINESIS_SINK_THREAD: (props.kinesisSinkThread ?? cpu >= 2048) ? 'on' : 'off',
        CHECKPOINT_TABLE: props.checkpoints.table.tableName,
        LEASE_SECONDS: text((props.leaseDuration ?? Duration.seconds(30)).toSeconds()),
        CLAIM_CHECK_BUCKET: props.lake.bucketName,
        METRICS_NAMESPACE,
        HEALTH_PORT: '8080',
      },
      secrets: {
        SOURCE_USER: EcsSecret.fromSecretsManager(s.credentials, 'username'),
        SOURCE_PASSWORD: EcsSecret.fromSecretsManager(s.credentials, 'password'),
      },
      healthCheck: {
        command: ['CMD', 'node', '/app/healthcheck.js'],
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(120),
      },
      readonlyRootFilesystem: true,
    });

    grantSecretKeyDecrypt(task.obtainExecutionRole(), s.credentials);
    grantStreamWrite(task.taskRole, props.stream);
    grantKey(task.taskRole, props.encryptionKey, 'encrypt-decrypt');
    props.checkpoints.grantPipelineItems(task.taskRole, pipelineId);
    props.lake.grantClaimCheckWrite(task.taskRole);

    acknowledge(
      task,
      'AwsSolutions-ECS2',
      'Only non-secret settings are plain environment variables; the database credentials come from Secrets Manager',
    );
    acknowledgeWildcards(
      task,
      (f) => f === 'Resource::*',
      'ecr:GetAuthorizationToken (execution role) has no resource-level permissions in IAM',
    );
    acknowledgeWildcards(
      task,
      objectPrefixes(LAKE_CLAIM_CHECK_PREFIX),
      `PutObject only under ${LAKE_CLAIM_CHECK_PREFIX}, where the producer parks events over the Kinesis record size`,
    );

    this.securityGroup = new SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: `CDC producer ${pipelineId}: egress to the source database and AWS APIs`,
      allowAllOutbound: true,
    });
    if (s.securityGroupId) {
      const db = SecurityGroup.fromSecurityGroupId(this, 'SourceSecurityGroup', s.securityGroupId, {
        mutable: true,
        allowAllOutbound: false,
      });
      db.addIngressRule(this.securityGroup, Port.tcp(port), `CDC producer ${pipelineId} reads the binlog`);
    }

    this.service = new FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: task,
      desiredCount: 1,
      // Never two producers at once: the old task is stopped (and drains) before the new one starts.
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
      circuitBreaker: { enable: true, rollback: true },
      vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [this.securityGroup],
      assignPublicIp: false,
      enableExecuteCommand: false,
    });
  }

  private metric(name: string, statistic: string, options?: MetricOptions): Metric {
    return pipelineMetric(this.pipelineId, name, statistic, options);
  }

  /** How far the producer is behind the source (commit time of the last event read). */
  metricSecondsBehindSource(options?: MetricOptions): Metric {
    return this.metric(ProducerMetric.SecondsBehindSource, 'Maximum', options);
  }
  metricErrors(options?: MetricOptions): Metric {
    return this.metric(ProducerMetric.Errors, 'Sum', { period: Duration.minutes(5), ...options });
  }
  metricStarts(options?: MetricOptions): Metric {
    return this.metric(ProducerMetric.Starts, 'Sum', { period: Duration.hours(1), ...options });
  }
  metricRowsCaptured(options?: MetricOptions): Metric {
    return this.metric(ProducerMetric.RowsCaptured, 'Sum', options);
  }
  metricBinlogPurged(options?: MetricOptions): Metric {
    return this.metric(ProducerMetric.BinlogPurged, 'Sum', { period: Duration.minutes(5), ...options });
  }
  /** Replicas rebuilt from a backfill (incompatible type change, RENAME TABLE, npx cdc resync). */
  metricTableResyncs(options?: MetricOptions): Metric {
    return this.metric(ProducerMetric.TableResyncs, 'Sum', { period: Duration.minutes(5), ...options });
  }
  /** Values of a column type the type table does not know, sent as lossless text (docs/event-format.md). */
  metricUnknownTypeValues(options?: MetricOptions): Metric {
    return this.metric(ProducerMetric.UnknownTypeValues, 'Sum', { period: Duration.minutes(5), ...options });
  }
  /** Tables set aside because their binlog rows cannot be decoded (a gauge, reported every second). */
  metricTablesQuarantined(options?: MetricOptions): Metric {
    return this.metric(ProducerMetric.TablesQuarantined, 'Maximum', options);
  }
  /** Running producer tasks (Container Insights): 0 means nothing is being captured. */
  metricRunningTasks(options?: MetricOptions): Metric {
    return new Metric({
      namespace: 'ECS/ContainerInsights',
      metricName: 'RunningTaskCount',
      dimensionsMap: { ClusterName: this.cluster.clusterName, ServiceName: this.service.serviceName },
      statistic: 'Minimum',
      period: Duration.minutes(1),
      ...options,
    });
  }
}
