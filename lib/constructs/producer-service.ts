import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
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
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { LAKE_CLAIM_CHECK_PREFIX } from '../../shared/lake-layout';
import { METRICS_NAMESPACE, ProducerMetric } from '../../shared/metrics';
import type { EnvironmentConfig } from '../config/environment-config';
import type { ChangeStream } from './change-stream';
import type { ChangelogLake } from './changelog-lake';
import type { CheckpointTable } from './checkpoint-table';
import { grantKey, grantSecretKeyDecrypt, grantStreamWrite } from './grants';
import { acknowledge, acknowledgeWildcards, objectPrefixes } from './nag';
import { pipelineMetric } from './pipeline-metric';

/** The repository root: the producer's Docker build context (its Dockerfile copies shared/ too). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PRODUCER_DOCKERFILE = 'containers/producer/Dockerfile';

export interface ProducerServiceProps {
  readonly vpc: IVpc;
  readonly config: EnvironmentConfig;
  readonly sourceSecret: ISecret;
  readonly changeStream: ChangeStream;
  readonly checkpoints: CheckpointTable;
  readonly lake: ChangelogLake;
  readonly encryptionKey: IKey;
  /** @default the producer's Dockerfile in this repository */
  readonly image?: ContainerImage;
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
    const c = props.config;
    const p = c.producer;
    this.pipelineId = c.pipelineId;
    this.cluster = new Cluster(this, 'Cluster', { vpc: props.vpc, containerInsightsV2: ContainerInsights.ENABLED });
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: p.logRetentionDays as RetentionDays,
      encryptionKey: props.encryptionKey,
      removalPolicy: c.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    });

    const task = new FargateTaskDefinition(this, 'Task', {
      cpu: p.cpu,
      memoryLimitMiB: p.memoryMiB,
      runtimePlatform: { cpuArchitecture: CpuArchitecture.X86_64, operatingSystemFamily: OperatingSystemFamily.LINUX },
    });
    const s = c.source;
    task.addContainer('Producer', {
      image:
        props.image ??
        ContainerImage.fromAsset(REPO_ROOT, { file: PRODUCER_DOCKERFILE, platform: Platform.LINUX_AMD64 }),
      essential: true,
      stopTimeout: Duration.seconds(p.stopTimeoutSeconds),
      logging: new AwsLogDriver({ logGroup: this.logGroup, streamPrefix: 'producer' }),
      environment: {
        PIPELINE_ID: c.pipelineId,
        SOURCE_HOST: s.host,
        SOURCE_PORT: String(s.port),
        SOURCE_SERVER_ID: String(s.serverId),
        CAPTURE_INCLUDE: s.include.join(','),
        CAPTURE_EXCLUDE: s.exclude.join(','),
        CAPTURE_EXCLUDE_COLUMNS: s.excludeColumns.join(','),
        CAPTURE_HASH_COLUMNS: s.hashColumns.join(','),
        CAPTURE_MASK_COLUMNS: s.maskColumns.join(','),
        SNAPSHOT_MODE: s.snapshotMode,
        SNAPSHOT_CHUNK_ROWS: String(s.snapshotChunkRows),
        SNAPSHOT_KEYLESS_MAX_ROWS: String(s.snapshotKeylessMaxRows),
        SIGNAL_TABLE: s.signalTable,
        STREAM_NAME: props.changeStream.stream.streamName,
        PARTITION_KEY_MODE: c.stream.partitionKeyMode,
        CHECKPOINT_TABLE: props.checkpoints.table.tableName,
        LEASE_SECONDS: String(p.leaseSeconds),
        CLAIM_CHECK_BUCKET: props.lake.bucketName,
        METRICS_NAMESPACE,
        HEALTH_PORT: '8080',
      },
      secrets: {
        SOURCE_USER: EcsSecret.fromSecretsManager(props.sourceSecret, 'username'),
        SOURCE_PASSWORD: EcsSecret.fromSecretsManager(props.sourceSecret, 'password'),
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

    grantSecretKeyDecrypt(task.obtainExecutionRole(), props.sourceSecret);
    grantStreamWrite(task.taskRole, props.changeStream.stream);
    grantKey(task.taskRole, props.encryptionKey, 'encrypt-decrypt');
    props.checkpoints.grantPipelineItems(task.taskRole, c.pipelineId);
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
      description: `CDC producer ${c.pipelineId}: egress to the source database and AWS APIs`,
      allowAllOutbound: true,
    });
    if (s.securityGroupId) {
      const db = SecurityGroup.fromSecurityGroupId(this, 'SourceSecurityGroup', s.securityGroupId, {
        mutable: true,
        allowAllOutbound: false,
      });
      db.addIngressRule(this.securityGroup, Port.tcp(s.port), `CDC producer ${c.pipelineId} reads the binlog`);
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
