import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { MetricOptions } from 'aws-cdk-lib/aws-cloudwatch';
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  EventType,
  type IBucket,
  ObjectOwnership,
  StorageClass,
} from 'aws-cdk-lib/aws-s3';
import { BucketDeployment, Source } from 'aws-cdk-lib/aws-s3-deployment';
import { SqsDestination } from 'aws-cdk-lib/aws-s3-notifications';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import { changelogJsonPaths } from '../../shared/changelog-table';
import {
  LAKE_CHANGELOG_PREFIX,
  LAKE_CLAIM_CHECK_PREFIX,
  LAKE_ERROR_PREFIX,
  LAKE_HANDOFF_PREFIX,
  LAKE_STREAM_ERROR_PREFIX,
  LAKE_STAGING_PREFIX as STAGING_PREFIX,
} from '../../shared/lake-layout';
import { grantKey, grantListPrefixes, grantObjects } from './grants';
import { acknowledge, acknowledgeWildcards } from './nag';

/** Prefixes inside the lake bucket besides the changelog itself. */
export const CONFIG_PREFIX = 'config/';
export const FIREHOSE_REDSHIFT_PREFIX = 'firehose-redshift/';
export const JSONPATHS_KEY = `${CONFIG_PREFIX}changelog-jsonpaths.json`;
/**
 * Where Lambda writes the invocation records of stream batches it gave up on (the stream apply's on-failure
 * destination): `aws/lambda/<mapping id>/<shard id>/YYYY/MM/DD/…`, a key layout Lambda chooses
 * (https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html).
 */
export const STREAM_FAILURE_PREFIX = 'aws/lambda/';

export interface ChangelogLakeProps {
  /** Globally unique bucket name (explicit, so other stacks can address it without cross-stack exports). */
  readonly bucketName: string;
  readonly encryptionKey: IKey;
  readonly removalPolicy: RemovalPolicy;
  /** @default 30 */
  readonly infrequentAccessAfterDays?: number;
  /** 0 keeps changelog objects forever. @default 0 */
  readonly expireAfterDays?: number;
  /** Deliveries of a notification before it goes to the dead-letter queue. @default 5 */
  readonly maxReceiveCount?: number;
  /** Visibility timeout of the notification queue: at least 6× the merge function's timeout. @default 30 minutes */
  readonly visibilityTimeout?: Duration;
  /**
   * Announce every new `changelog/` object on the notification queue (lake apply). Off when the stream apply merges
   * the stream itself: the queue then carries only handoffs, replays and redrives. @default true
   */
  readonly notifyChangelogObjects?: boolean;
}

/**
 * The changelog lake: one S3 bucket (KMS, SSL only, no public access, versioned, access-logged) holding
 * `changelog/` (gzip NDJSON per table and hour), `errors/` (Firehose failures; `errors/stream/` undecodable stream
 * records), `claim-check/` (oversized events), `handoff/` (a table's events the stream apply handed to the merge),
 * `aws/lambda/` (stream batches the stream apply gave up on), `staging/` (merge COPY files, expired after a day) and
 * `config/` (the JSONPaths file Redshift COPY uses). The merge consumes an SQS queue (with a dead-letter queue) that
 * announces every new changelog object in lake apply, and the stream apply's handoffs.
 */
export class ChangelogLake extends Construct {
  readonly bucket: Bucket;
  readonly accessLogs: Bucket;
  /** S3 ObjectCreated notifications of `changelog/` objects. */
  readonly notifications: Queue;
  /** Notifications delivered `maxReceiveCount` times without success, and poison objects (with their reason). */
  readonly deadLetterQueue: Queue;
  private readonly key: IKey;
  readonly bucketName: string;

  constructor(scope: Construct, id: string, props: ChangelogLakeProps) {
    super(scope, id);
    this.key = props.encryptionKey;
    this.bucketName = props.bucketName;
    const destroy = props.removalPolicy === RemovalPolicy.DESTROY;
    const expire = props.expireAfterDays ?? 0;
    const ia = props.infrequentAccessAfterDays ?? 30;
    if (expire > 0 && expire <= ia)
      throw new Error(`ChangelogLake expireAfterDays (${expire}) must be after infrequentAccessAfterDays (${ia})`);

    this.accessLogs = new Bucket(this, 'AccessLogs', {
      // S3 server access logs cannot be delivered to a KMS-encrypted bucket: SSE-S3.
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_PREFERRED,
      lifecycleRules: [{ expiration: Duration.days(365) }],
      removalPolicy: props.removalPolicy,
      autoDeleteObjects: destroy,
    });

    this.bucket = new Bucket(this, 'Bucket', {
      bucketName: props.bucketName,
      encryption: BucketEncryption.KMS,
      encryptionKey: props.encryptionKey,
      bucketKeyEnabled: true,
      enforceSSL: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: 'lake/',
      removalPolicy: props.removalPolicy,
      autoDeleteObjects: destroy,
      lifecycleRules: [
        {
          id: 'changelog',
          prefix: LAKE_CHANGELOG_PREFIX,
          transitions: [{ storageClass: StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(ia) }],
          ...(expire > 0 ? { expiration: Duration.days(expire) } : {}),
          noncurrentVersionExpiration: Duration.days(30),
        },
        {
          id: 'claim-checks',
          prefix: LAKE_CLAIM_CHECK_PREFIX,
          ...(expire > 0 ? { expiration: Duration.days(expire) } : {}),
          noncurrentVersionExpiration: Duration.days(30),
        },
        {
          id: 'staging',
          prefix: STAGING_PREFIX,
          expiration: Duration.days(1),
          noncurrentVersionExpiration: Duration.days(1),
        },
        {
          id: 'firehose-redshift',
          prefix: FIREHOSE_REDSHIFT_PREFIX,
          expiration: Duration.days(7),
          noncurrentVersionExpiration: Duration.days(1),
        },
        {
          // A handoff is merged within minutes; kept past the dead-letter queue's 14 days so a redrive still finds it.
          id: 'handoffs',
          prefix: LAKE_HANDOFF_PREFIX,
          expiration: Duration.days(30),
          noncurrentVersionExpiration: Duration.days(1),
        },
        {
          id: 'stream-failures',
          prefix: STREAM_FAILURE_PREFIX,
          expiration: Duration.days(90),
          noncurrentVersionExpiration: Duration.days(30),
        },
        {
          id: 'errors',
          prefix: LAKE_ERROR_PREFIX,
          expiration: Duration.days(90),
          noncurrentVersionExpiration: Duration.days(30),
        },
        { id: 'incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
    });

    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      // SSE-SQS: the messages hold object keys only, and a KMS key here would need a key policy naming the bucket,
      // which the bucket's own encryption already references (a dependency cycle).
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: props.removalPolicy,
    });
    this.notifications = new Queue(this, 'Notifications', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      visibilityTimeout: props.visibilityTimeout ?? Duration.minutes(30),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
      removalPolicy: props.removalPolicy,
    });
    if (props.notifyChangelogObjects ?? true)
      this.bucket.addEventNotification(EventType.OBJECT_CREATED, new SqsDestination(this.notifications), {
        prefix: LAKE_CHANGELOG_PREFIX,
      });

    const jsonPaths = new BucketDeployment(this, 'JsonPaths', {
      destinationBucket: this.bucket,
      destinationKeyPrefix: CONFIG_PREFIX,
      sources: [Source.jsonData('changelog-jsonpaths.json', changelogJsonPaths())],
      prune: false,
      retainOnDelete: !destroy,
    });
    // CDK's own singleton functions behind S3 notifications and the deployment of the JSONPaths file.
    const stack = Stack.of(this);
    for (const helper of [
      stack.node.tryFindChild('BucketNotificationsHandler050a0587b7544547bf325f094a3db834'),
      stack.node.tryFindChild('Custom::CDKBucketDeployment8693BB64968944B69AAFB0CC9EB8756C'),
      jsonPaths,
    ]) {
      if (!helper) continue;
      acknowledge(
        helper,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        'CDK-provided deploy-time helper function; it only writes its own logs',
      );
      acknowledge(helper, 'AwsSolutions-L1', 'CDK-provided deploy-time helper; its runtime is chosen by aws-cdk-lib');
      acknowledgeWildcards(
        helper,
        () => true,
        'CDK-provided deploy-time helper (S3 notification configuration, or the copy of the JSONPaths file into config/); its grants are generated by aws-cdk-lib and scoped to the lake bucket and the CDK asset bucket',
      );
    }
  }

  /** s3:// URL of the JSONPaths document for `COPY … FORMAT AS JSON`. */
  get jsonPathsUrl(): string {
    return `s3://${this.bucketName}/${JSONPATHS_KEY}`;
  }

  /**
   * The bucket as seen from `scope`'s stack: the bucket itself in this stack, elsewhere a reference by name, so
   * policies in other stacks name `arn:<partition>:s3:::<name>` instead of importing an export of the bucket ARN.
   */
  bucketIn(scope: IConstruct): IBucket {
    const stack = Stack.of(scope);
    if (stack === Stack.of(this)) return this.bucket;
    const id = 'ChangelogLakeBucketRef';
    return (stack.node.tryFindChild(id) as IBucket | undefined) ?? Bucket.fromBucketName(stack, id, this.bucketName);
  }

  /** The producer parks oversized events under `claim-check/`. */
  grantClaimCheckWrite(grantee: IGrantable): Grant {
    return grantObjects(
      grantee,
      this.bucketIn(grantee as unknown as IConstruct),
      ['s3:PutObject'],
      [LAKE_CLAIM_CHECK_PREFIX],
    ).combine(grantKey(grantee, this.key, 'encrypt-decrypt'));
  }

  /**
   * The merge reads changelog, handed-off and claim-check objects and writes/deletes its staging files.
   */
  grantMerge(grantee: IGrantable): Grant {
    const bucket = this.bucketIn(grantee as unknown as IConstruct);
    return grantObjects(
      grantee,
      bucket,
      ['s3:GetObject'],
      [LAKE_CHANGELOG_PREFIX, LAKE_HANDOFF_PREFIX, LAKE_CLAIM_CHECK_PREFIX],
    )
      .combine(grantObjects(grantee, bucket, ['s3:PutObject', 's3:DeleteObject'], [STAGING_PREFIX]))
      .combine(grantKey(grantee, this.key, 'encrypt-decrypt'));
  }

  /**
   * The stream apply follows claim checks, writes/deletes its staging files, writes a failing table's events under
   * `handoff/` and undecodable records under `errors/stream/`. It reads no changelog object.
   */
  grantStreamApply(grantee: IGrantable): Grant {
    const bucket = this.bucketIn(grantee as unknown as IConstruct);
    return grantObjects(grantee, bucket, ['s3:GetObject'], [LAKE_CLAIM_CHECK_PREFIX])
      .combine(grantObjects(grantee, bucket, ['s3:PutObject', 's3:DeleteObject'], [STAGING_PREFIX]))
      .combine(grantObjects(grantee, bucket, ['s3:PutObject'], [LAKE_HANDOFF_PREFIX, LAKE_STREAM_ERROR_PREFIX]))
      .combine(grantKey(grantee, this.key, 'encrypt-decrypt'));
  }

  /**
   * What Lambda needs, in the function's role, to write a stream event source mapping's failed batches to this bucket
   * (its on-failure destination): s3:PutObject under `aws/lambda/` and s3:ListBucket, both only in the bucket owner's
   * account, as AWS advises against a re-created bucket of the same name elsewhere
   * (https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html), and the key to encrypt.
   */
  grantStreamFailureWrite(grantee: IGrantable): Grant {
    const bucket = this.bucketIn(grantee as unknown as IConstruct);
    const inAccount = { StringEquals: { 's3:ResourceAccount': Stack.of(this).account } };
    return Grant.addToPrincipal({
      grantee,
      actions: ['s3:PutObject'],
      resourceArns: [bucket.arnForObjects(`${STREAM_FAILURE_PREFIX}*`)],
      conditions: inAccount,
    })
      .combine(
        Grant.addToPrincipal({
          grantee,
          actions: ['s3:ListBucket'],
          resourceArns: [bucket.bucketArn],
          conditions: inAccount,
        }),
      )
      .combine(grantKey(grantee, this.key, 'encrypt-decrypt'));
  }

  /** Redshift's COPY role reads staging files (listing the prefix, as COPY does) and the JSONPaths document. */
  grantCopyRead(grantee: IGrantable): Grant {
    return grantObjects(
      grantee,
      this.bucket,
      ['s3:GetObject'],
      [STAGING_PREFIX, CONFIG_PREFIX, FIREHOSE_REDSHIFT_PREFIX],
    )
      .combine(grantListPrefixes(grantee, this.bucket, [STAGING_PREFIX, FIREHOSE_REDSHIFT_PREFIX]))
      .combine(grantKey(grantee, this.key, 'decrypt'));
  }

  metricNotificationBacklogAgeSeconds(options?: MetricOptions) {
    return this.notifications.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), ...options });
  }

  metricDeadLetters(options?: MetricOptions) {
    return this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
      statistic: 'Maximum',
      period: Duration.minutes(1),
      ...options,
    });
  }
}
