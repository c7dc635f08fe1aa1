import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config/environment-config';
import { MergeFunction } from '../constructs/merge-function';
import { StreamApplyFunction } from '../constructs/stream-apply-function';
import type { StatefulStack } from './stateful-stack';

export interface ApplyStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly stateful: StatefulStack;
}

/**
 * The apply side. The merge function consumes the lake's merge queue: every changelog object in lake apply
 * (`apply.source: lake`), and in both modes the stream apply's handoffs, replays and redrives. With
 * `apply.source: stream` (the default) the stream apply also consumes the change stream itself.
 */
export class ApplyStack extends Stack {
  readonly merge: MergeFunction;
  /** The stream apply, when `apply.source` is `stream`. */
  readonly streamApply: StreamApplyFunction | undefined;

  constructor(scope: Construct, id: string, props: ApplyStackProps) {
    super(scope, id, props);
    const c = props.config;
    const s = props.stateful;
    const removalPolicy = c.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
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
      removalPolicy,
    });
    const st = c.apply.stream;
    this.streamApply =
      c.apply.source === 'stream'
        ? new StreamApplyFunction(this, 'StreamApply', {
            pipelineId: c.pipelineId,
            stream: s.changeStream.stream,
            lake: s.lake,
            warehouse: s.warehouse,
            encryptionKey: s.key,
            batchSize: st.batchSize,
            maxBatchingWindow: Duration.seconds(st.batchingWindowSeconds),
            parallelizationFactor: st.parallelizationFactor,
            retryAttempts: st.maximumRetryAttempts,
            maxRecordAge:
              st.maximumRecordAgeSeconds === -1 ? 'unlimited' : Duration.seconds(st.maximumRecordAgeSeconds),
            tablesPerTransaction: st.tablesPerTransaction,
            // The same Lambda size and log retention as the merge: both run the same merge.
            memorySize: c.merge.memoryMiB,
            timeout: Duration.seconds(c.merge.timeoutSeconds),
            logRetention: c.merge.logRetentionDays as RetentionDays,
            removalPolicy,
          })
        : undefined;
  }
}
