import { Stack, type StackProps } from 'aws-cdk-lib';
import type { ContainerImage } from 'aws-cdk-lib/aws-ecs';
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
    const s = props.stateful;
    this.producer = new ProducerService(this, 'Producer', {
      vpc: s.vpc,
      config: props.config,
      sourceSecret: s.sourceSecret,
      changeStream: s.changeStream,
      checkpoints: s.checkpoints,
      lake: s.lake,
      encryptionKey: s.key,
      ...(props.producerImage ? { image: props.producerImage } : {}),
    });
  }
}
