import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config/environment-config';
import { MergeFunction } from '../constructs/merge-function';
import type { StatefulStack } from './stateful-stack';

export interface ApplyStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly stateful: StatefulStack;
}

/** The apply side: the merge function turning changelog objects into replica tables. */
export class ApplyStack extends Stack {
  readonly merge: MergeFunction;

  constructor(scope: Construct, id: string, props: ApplyStackProps) {
    super(scope, id, props);
    const c = props.config;
    const s = props.stateful;
    this.merge = new MergeFunction(this, 'Merge', {
      pipelineId: c.pipelineId,
      lake: s.lake,
      warehouse: s.warehouse,
      encryptionKey: s.key,
      memorySize: c.merge.memoryMiB,
      timeout: Duration.seconds(c.merge.timeoutSeconds),
      maxConcurrency: c.merge.maxConcurrency,
      batchSize: c.merge.batchSize,
      logRetention: c.merge.logRetentionDays as RetentionDays,
      removalPolicy: c.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    });
  }
}
