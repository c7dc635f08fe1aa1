/**
 * Explicit, wildcard-free grants. The L2 `grantXxx()` helpers grant action wildcards (`s3:GetObject*`,
 * `kms:GenerateDataKey*`) and, across stacks, can edit the other stack's resource policies; these add exactly the
 * actions the runtimes call to the grantee's own policy.
 */
import { type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IStream } from 'aws-cdk-lib/aws-kinesis';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';

export function grantKey(grantee: IGrantable, key: IKey, use: 'decrypt' | 'encrypt-decrypt'): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new PolicyStatement({
      actions: use === 'decrypt' ? ['kms:Decrypt'] : ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: [key.keyArn],
    }),
  );
}

/**
 * Read a secret through the grantee's own policy only: Secret.grantRead also adds the grantee to the KMS key policy
 * of a secret encrypted with the pipeline key, making the stateful stack depend on the grantee's stack (a cycle).
 * The grantee gets kms:Decrypt on that key from its own grants.
 */
export function grantSecretRead(grantee: IGrantable, secret: ISecret): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new PolicyStatement({
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      resources: [secret.secretArn],
    }),
  );
}

export function grantObjects(grantee: IGrantable, bucket: IBucket, actions: string[], prefixes: string[]): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new PolicyStatement({ actions, resources: prefixes.map((p) => bucket.arnForObjects(`${p}*`)) }),
  );
}

export function grantListPrefixes(grantee: IGrantable, bucket: IBucket, prefixes: string[]): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new PolicyStatement({
      actions: ['s3:ListBucket'],
      resources: [bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': prefixes.map((p) => `${p}*`) } },
    }),
  );
  grantee.grantPrincipal.addToPrincipalPolicy(
    new PolicyStatement({ actions: ['s3:GetBucketLocation'], resources: [bucket.bucketArn] }),
  );
}

export function grantStreamWrite(grantee: IGrantable, stream: IStream): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new PolicyStatement({
      actions: ['kinesis:PutRecords', 'kinesis:PutRecord', 'kinesis:ListShards', 'kinesis:DescribeStreamSummary'],
      resources: [stream.streamArn],
    }),
  );
}

export function grantStreamRead(grantee: IGrantable, stream: IStream): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new PolicyStatement({
      actions: [
        'kinesis:DescribeStream',
        'kinesis:DescribeStreamSummary',
        'kinesis:GetRecords',
        'kinesis:GetShardIterator',
        'kinesis:ListShards',
      ],
      resources: [stream.streamArn],
    }),
  );
}
