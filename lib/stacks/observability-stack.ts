import { Duration, Stack, type StackProps } from 'aws-cdk-lib';
import { Topic } from 'aws-cdk-lib/aws-sns';
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
    const c = props.config;
    const a = c.alarms;
    this.monitoring = new Monitoring(this, 'Monitoring', {
      pipelineId: c.pipelineId,
      sourceHost: c.source.host,
      encryptionKey: props.stateful.key,
      ...(a.topicArn ? { topic: Topic.fromTopicArn(this, 'AlarmTopic', a.topicArn) } : {}),
      emails: a.emails,
      thresholds: {
        producerLag: Duration.seconds(a.producerLagSeconds),
        producerStartsPerHour: a.producerStartsPerHour,
        iteratorAge: Duration.seconds(a.iteratorAgeSeconds),
        lakeFreshness: Duration.seconds(a.firehoseFreshnessSeconds),
        replicaFreshness: Duration.seconds(a.replicaFreshnessSeconds),
        mergeErrorsPer5Minutes: a.mergeErrorsPer5Minutes,
        deadLetters: a.dlqMessages,
      },
      producer: props.capture.producer,
      changeStream: props.stateful.changeStream,
      delivery: props.delivery.delivery,
      lake: props.stateful.lake,
      merge: props.apply.merge,
      ...(props.apply.streamApply ? { streamApply: props.apply.streamApply } : {}),
    });
  }
}
