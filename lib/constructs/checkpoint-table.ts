import type { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, Billing, TableEncryptionV2, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Grant, type IGrantable } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { grantKey } from './grants';

export interface CheckpointTableProps {
  readonly encryptionKey: IKey;
  readonly removalPolicy: RemovalPolicy;
}

/**
 * The producer's checkpoint and lease: one item per pipeline (`pk` = pipeline id, `sk` = `producer`), written with
 * conditional updates so a second producer is fenced. Point-in-time recovery on.
 */
export class CheckpointTable extends Construct {
  readonly table: TableV2;

  constructor(scope: Construct, id: string, props: CheckpointTableProps) {
    super(scope, id);
    this.table = new TableV2(this, 'Table', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
      billing: Billing.onDemand(),
      encryption: TableEncryptionV2.customerManagedKey(props.encryptionKey),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.removalPolicy,
    });
  }

  /** Read and write only the items of one pipeline (IAM `dynamodb:LeadingKeys`). */
  grantPipelineItems(grantee: IGrantable, pipelineId: string): Grant {
    const items = Grant.addToPrincipal({
      grantee,
      actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:Query'],
      resourceArns: [this.table.tableArn],
      conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [pipelineId] } },
    });
    return this.table.encryptionKey
      ? items.combine(grantKey(grantee, this.table.encryptionKey, 'encrypt-decrypt'))
      : items;
  }
}
