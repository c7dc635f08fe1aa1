/**
 * Explicit, wildcard-free grants. The L2 `grantXxx()` helpers grant action wildcards (`s3:GetObject*`,
 * `kms:GenerateDataKey*`) and, across stacks, can edit the other stack's resource policies; these add exactly the
 * actions the runtimes call to the grantee's own policy. Each returns the `iam.Grant` (as aws-cdk-lib's `grantXxx()`
 * do), so a caller can add a dependency on it or combine it.
 */
import { Resource, Stack } from 'aws-cdk-lib';
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import type { IStream } from 'aws-cdk-lib/aws-kinesis';
import { type IKey, Key } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { type ISecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';

export function grantKey(grantee: IGrantable, key: IKey, use: 'decrypt' | 'encrypt-decrypt'): Grant {
  return Grant.addToPrincipal({
    grantee,
    actions: use === 'decrypt' ? ['kms:Decrypt'] : ['kms:Decrypt', 'kms:GenerateDataKey'],
    resourceArns: [key.keyArn],
  });
}

/**
 * Read a secret through the grantee's own policy only: Secret.grantRead also adds the grantee to the KMS key policy
 * of a secret encrypted with the pipeline key, making the stateful stack depend on the grantee's stack (a cycle).
 * The grantee gets kms:Decrypt on that key from its own grants. An imported secret encrypted with a customer managed
 * key (`importedSecret` with a key) also needs kms:Decrypt on that key, and only through Secrets Manager.
 */
export function grantSecretRead(grantee: IGrantable, secret: ISecret): Grant {
  return Grant.addToPrincipal({
    grantee,
    actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
    resourceArns: [secret.secretArn],
  }).combine(grantSecretKeyDecrypt(grantee, secret));
}

/**
 * kms:Decrypt on an imported secret's customer managed key, only through Secrets Manager; nothing for the AWS managed
 * key or a secret this app creates. ECS's own secret grant to a task execution role leaves it out when the key and the
 * role are in different stacks, so the producer calls this for its execution role.
 */
export function grantSecretKeyDecrypt(grantee: IGrantable, secret: ISecret): Grant {
  if (!secret.encryptionKey || Resource.isOwnedResource(secret))
    return Grant.drop(grantee, 'kms:Decrypt on the AWS managed key or a key of this app');
  return Grant.addToPrincipal({
    grantee,
    actions: ['kms:Decrypt'],
    resourceArns: [secret.encryptionKey.keyArn],
    conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(secret).region}.amazonaws.com` } },
  });
}

/**
 * An existing secret by its complete ARN, with the customer managed KMS key that encrypts it when it is not the AWS
 * managed one: grantSecretRead and ECS's own secret grant then let the reader decrypt with it.
 */
export function importedSecret(scope: Construct, id: string, secretArn: string, kmsKeyArn?: string): ISecret {
  return Secret.fromSecretAttributes(scope, id, {
    secretCompleteArn: secretArn,
    ...(kmsKeyArn ? { encryptionKey: Key.fromKeyArn(scope, `${id}Key`, kmsKeyArn) } : {}),
  });
}

export function grantObjects(grantee: IGrantable, bucket: IBucket, actions: string[], prefixes: string[]): Grant {
  return Grant.addToPrincipal({ grantee, actions, resourceArns: prefixes.map((p) => bucket.arnForObjects(`${p}*`)) });
}

export function grantListPrefixes(grantee: IGrantable, bucket: IBucket, prefixes: string[]): Grant {
  return Grant.addToPrincipal({
    grantee,
    actions: ['s3:ListBucket'],
    resourceArns: [bucket.bucketArn],
    conditions: { StringLike: { 's3:prefix': prefixes.map((p) => `${p}*`) } },
  }).combine(Grant.addToPrincipal({ grantee, actions: ['s3:GetBucketLocation'], resourceArns: [bucket.bucketArn] }));
}

export function grantStreamWrite(grantee: IGrantable, stream: IStream): Grant {
  return Grant.addToPrincipal({
    grantee,
    actions: ['kinesis:PutRecords', 'kinesis:PutRecord', 'kinesis:ListShards', 'kinesis:DescribeStreamSummary'],
    resourceArns: [stream.streamArn],
  });
}

/** What a reader of the stream with shared-throughput iterators calls (Firehose, the stream apply's mapping). */
export const STREAM_READ_ACTIONS = [
  'kinesis:DescribeStream',
  'kinesis:DescribeStreamSummary',
  'kinesis:GetRecords',
  'kinesis:GetShardIterator',
  'kinesis:ListShards',
] as const;

export function grantStreamRead(grantee: IGrantable, stream: IStream): Grant {
  return Grant.addToPrincipal({ grantee, actions: [...STREAM_READ_ACTIONS], resourceArns: [stream.streamArn] });
}
