/**
 * One deployment of the pipeline (one environment): five stacks, named `Cdc-<Stage>-<Part>`, deployed together with
 * `cdk deploy -c stage=<stage> --all`.
 */
import { Tags } from 'aws-cdk-lib';
import type { ContainerImage } from 'aws-cdk-lib/aws-ecs';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from './config/environment-config';
import { ApplyStack } from './stacks/apply-stack';
import { CaptureStack } from './stacks/capture-stack';
import { DeliveryStack } from './stacks/delivery-stack';
import { ObservabilityStack } from './stacks/observability-stack';
import { StatefulStack } from './stacks/stateful-stack';

export interface PipelineStacks {
  readonly stateful: StatefulStack;
  readonly capture: CaptureStack;
  readonly delivery: DeliveryStack;
  readonly apply: ApplyStack;
  readonly observability: ObservabilityStack;
}

export interface PipelineOptions {
  /** Override the producer image (tests use a prebuilt one to skip the Docker asset). */
  readonly producerImage?: ContainerImage;
}

export function stackName(config: EnvironmentConfig, part: string): string {
  const stage = config.stage.charAt(0).toUpperCase() + config.stage.slice(1);
  return `Cdc-${stage}-${part}`;
}

export function createPipeline(
  scope: Construct,
  config: EnvironmentConfig,
  options: PipelineOptions = {},
): PipelineStacks {
  const env = { account: config.account, region: config.region };
  const common = { env, config, terminationProtection: config.removalPolicy === 'retain' };
  const stateful = new StatefulStack(scope, stackName(config, 'Stateful'), {
    ...common,
    description: `mysql-redshift-cdc ${config.pipelineId}: key, network, stream, lake, checkpoints, catalog, warehouse`,
  });
  const capture = new CaptureStack(scope, stackName(config, 'Capture'), {
    ...common,
    stateful,
    ...(options.producerImage ? { producerImage: options.producerImage } : {}),
    description: `mysql-redshift-cdc ${config.pipelineId}: binlog producer on ECS Fargate`,
  });
  const delivery = new DeliveryStack(scope, stackName(config, 'Delivery'), {
    ...common,
    stateful,
    description: `mysql-redshift-cdc ${config.pipelineId}: Firehose to the S3 lake and Redshift`,
  });
  const apply = new ApplyStack(scope, stackName(config, 'Apply'), {
    ...common,
    stateful,
    description: `mysql-redshift-cdc ${config.pipelineId}: merge into replica tables`,
  });
  const observability = new ObservabilityStack(scope, stackName(config, 'Observability'), {
    ...common,
    stateful,
    capture,
    delivery,
    apply,
    description: `mysql-redshift-cdc ${config.pipelineId}: alarms and dashboard`,
  });
  for (const s of [stateful, capture, delivery, apply, observability]) {
    Tags.of(s).add('project', 'mysql-redshift-cdc');
    Tags.of(s).add('pipeline', config.pipelineId);
    Tags.of(s).add('stage', config.stage);
  }
  return { stateful, capture, delivery, apply, observability };
}
