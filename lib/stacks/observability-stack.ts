import { Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config/environment-config';
import { Monitoring } from '../constructs/monitoring';
import type { ApplyStack } from './apply-stack';
import type { CaptureStack } from './capture-stack';
import type { DeliveryStack } from './delivery-stack';
import type { StatefulStack } from './stateful-stack';

export interface ObservabilityStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly stateful: StatefulStack;
  readonly capture: CaptureStack;
  readonly delivery: DeliveryStack;
  readonly apply: ApplyStack;
}

/** Alarms, their SNS topic and the pipeline dashboard. */
export class ObservabilityStack extends Stack {
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: ObservabilityStackProps) {
    super(scope, id, props);
    this.monitoring = new Monitoring(this, 'Monitoring', {
      config: props.config,
      encryptionKey: props.stateful.key,
      producer: props.capture.producer,
      changeStream: props.stateful.changeStream,
      delivery: props.delivery.delivery,
      lake: props.stateful.lake,
      merge: props.apply.merge,
    });
  }
}
