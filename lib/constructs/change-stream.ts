import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import type { MetricOptions } from 'aws-cdk-lib/aws-cloudwatch';
import type { Grant, IGrantable } from 'aws-cdk-lib/aws-iam';
import { Stream, StreamEncryption, StreamMode } from 'aws-cdk-lib/aws-kinesis';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { grantStreamRead, grantStreamWrite } from './grants';
import { acknowledge } from './nag';

export interface ChangeStreamProps {
  readonly encryptionKey: IKey;
  /** @default on-demand */
  readonly mode?: 'on-demand' | 'provisioned';
  /** Only in provisioned mode. @default 1 */
  readonly shards?: number;
  /** At least 7 days, so any position the source still has in its binlog can be replayed. @default 168 hours */
  readonly retention?: Duration;
  readonly removalPolicy: RemovalPolicy;
}

/** The Kinesis stream of change events (one JSON event per changed row), KMS-encrypted. */
export class ChangeStream extends Construct {
  readonly stream: Stream;

  constructor(scope: Construct, id: string, props: ChangeStreamProps) {
    super(scope, id);
    const retention = props.retention ?? Duration.hours(168);
    if (!retention.isUnresolved() && retention.toHours() < 168)
      throw new Error(`ChangeStream retention must be at least 168 hours, got ${retention.toHours()}`);
    const provisioned = props.mode === 'provisioned';
    this.stream = new Stream(this, 'Stream', {
      streamMode: provisioned ? StreamMode.PROVISIONED : StreamMode.ON_DEMAND,
      ...(provisioned ? { shardCount: props.shards ?? 1 } : {}),
      retentionPeriod: retention,
      encryption: StreamEncryption.KMS,
      encryptionKey: props.encryptionKey,
      removalPolicy: props.removalPolicy,
    });
    acknowledge(
      this.stream,
      'AwsSolutions-KDS3',
      'A customer-managed key (not aws/kinesis) on purpose: key policy and grants control who can read change data',
    );
  }

  /**
   * Put records (what the producer calls), without `Stream.grantWrite`'s KMS wildcards: the writer's key grant is its
   * own (grantKey).
   */
  grantWrite(grantee: IGrantable): Grant {
    return grantStreamWrite(grantee, this.stream);
  }

  /** Read records through shard iterators (a consumer such as Firehose), without `Stream.grantRead`'s KMS grant. */
  grantRead(grantee: IGrantable): Grant {
    return grantStreamRead(grantee, this.stream);
  }

  /**
   * Age of the oldest record not yet read by a consumer (Firehose), in milliseconds (Kinesis's unit): delivery falling
   * behind. Maximum over 1 minute.
   */
  metricIteratorAgeMilliseconds(options?: MetricOptions) {
    return this.stream.metricGetRecordsIteratorAgeMilliseconds({
      statistic: 'Maximum',
      period: Duration.minutes(1),
      ...options,
    });
  }

  /** Records refused for exceeding shard write throughput (the producer retries them, in order): count, Sum. */
  metricWriteThrottles(options?: MetricOptions) {
    return this.stream.metricPutRecordsThrottledRecords({ statistic: 'Sum', period: Duration.minutes(5), ...options });
  }

  metricIncomingRecords(options?: MetricOptions) {
    return this.stream.metricIncomingRecords({ statistic: 'Sum', period: Duration.minutes(1), ...options });
  }
}
