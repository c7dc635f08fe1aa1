import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import type { ContainerImage } from 'aws-cdk-lib/aws-ecs';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config/environment-config';
import { ProducerService } from '../constructs/producer-service';
import type { StatefulStack } from './stateful-stack';

export interface CaptureStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly stateful: StatefulStack;
  /** @default the producer image built from containers/producer/Dockerfile */
  readonly producerImage?: ContainerImage;
}

/** The capture side: the producer service reading the source binlog into the change stream. */
export class CaptureStack extends Stack {
  readonly producer: ProducerService;

  constructor(scope: Construct, id: string, props: CaptureStackProps) {
    super(scope, id, props);
    const c = props.config;
    const s = props.stateful;
    const src = c.source;
    this.producer = new ProducerService(this, 'Producer', {
      vpc: s.vpc,
      pipelineId: c.pipelineId,
      source: {
        host: src.host,
        port: src.port,
        serverId: src.serverId,
        credentials: s.sourceSecret,
        ...(src.securityGroupId ? { securityGroupId: src.securityGroupId } : {}),
      },
      capture: {
        include: src.include,
        exclude: src.exclude,
        excludeColumns: src.excludeColumns,
        hashColumns: src.hashColumns,
        maskColumns: src.maskColumns,
        snapshotMode: src.snapshotMode,
        snapshotChunkRows: src.snapshotChunkRows,
        snapshotChunkBytes: src.snapshotChunkBytes,
        snapshotKeylessMaxRows: src.snapshotKeylessMaxRows,
        signalTable: src.signalTable,
        partitionKeyMode: c.stream.partitionKeyMode,
      },
      stream: s.changeStream.stream,
      checkpoints: s.checkpoints,
      lake: s.lake,
      encryptionKey: s.key,
      cpu: c.producer.cpu,
      memoryLimitMiB: c.producer.memoryMiB,
      stopTimeout: Duration.seconds(c.producer.stopTimeoutSeconds),
      leaseDuration: Duration.seconds(c.producer.leaseSeconds),
      putRecordsInFlight: c.producer.putRecordsInFlight,
      ...(c.producer.kinesisSinkThread !== undefined ? { kinesisSinkThread: c.producer.kinesisSinkThread } : {}),
      ...(c.producer.maxInFlightBytes !== undefined ? { maxInFlightBytes: c.producer.maxInFlightBytes } : {}),
      logRetention: c.producer.logRetentionDays as RetentionDays,
      removalPolicy: c.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
      ...(props.producerImage ? { image: props.producerImage } : {}),
    });
  }
}
