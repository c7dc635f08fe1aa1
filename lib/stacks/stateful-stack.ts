import { Annotations, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import {
  FlowLogDestination,
  FlowLogTrafficType,
  GatewayVpcEndpointAwsService,
  IpAddresses,
  type IVpc,
  SubnetType,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config/environment-config';
import { ChangeStream } from '../constructs/change-stream';
import { ChangelogLake } from '../constructs/changelog-lake';
import { CheckpointTable } from '../constructs/checkpoint-table';
import { GlueCatalog } from '../constructs/glue-catalog';
import { importedSecret } from '../constructs/grants';
import { acknowledgeWildcards, objectPrefixes } from '../constructs/nag';
import { RedshiftTarget } from '../constructs/redshift-target';

export interface StatefulStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/**
 * What holds data and outlives deployments: the KMS key, the network, the change stream, the changelog lake and its
 * notification queues, the checkpoint table, the Glue catalog, and the warehouse (imported, or created in dev).
 * Construct ids here are never renamed: renaming replaces the resource.
 */
export class StatefulStack extends Stack {
  readonly key: Key;
  readonly vpc: IVpc;
  readonly changeStream: ChangeStream;
  readonly lake: ChangelogLake;
  readonly checkpoints: CheckpointTable;
  readonly catalog: GlueCatalog;
  readonly warehouse: RedshiftTarget;
  readonly sourceSecret: ISecret;
  private zones: string[] | undefined;

  /**
   * The configured zones instead of the region's, which Stack would look up with AWS credentials at synth (the Vpc
   * construct reads them even when it is given its zones).
   */
  override get availabilityZones(): string[] {
    return this.zones ?? super.availabilityZones;
  }

  constructor(scope: Construct, id: string, props: StatefulStackProps) {
    super(scope, id, props);
    const c = props.config;
    this.zones = [...c.vpc.availabilityZones];
    const removalPolicy = c.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;

    this.key = new Key(this, 'DataKey', {
      alias: `alias/cdc-${c.pipelineId}`,
      description: `Encrypts everything of the CDC pipeline ${c.pipelineId}: stream, lake, queues, table, logs`,
      enableKeyRotation: true,
      removalPolicy,
      pendingWindow: Duration.days(removalPolicy === RemovalPolicy.DESTROY ? 7 : 30),
    });
    // Services that encrypt with the key on the pipeline's behalf.
    this.key.grantEncryptDecrypt(new ServicePrincipal(`logs.${this.region}.amazonaws.com`));
    this.key.grant(new ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');

    if (c.vpc.mode === 'create') {
      this.vpc = new Vpc(this, 'Vpc', {
        ipAddresses: IpAddresses.cidr(c.vpc.cidr),
        // Named zones, not maxAzs: no AZ lookup, so synth runs without AWS credentials.
        availabilityZones: c.vpc.availabilityZones,
        natGateways: c.vpc.natGateways,
        subnetConfiguration: [
          { name: 'public', subnetType: SubnetType.PUBLIC, cidrMask: 24 },
          { name: 'private', subnetType: SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        ],
        flowLogs: {
          all: { destination: FlowLogDestination.toCloudWatchLogs(), trafficType: FlowLogTrafficType.REJECT },
        },
        // With enhanced VPC routing a created workgroup reaches S3 (COPY) only through this VPC: AWS documents a
        // gateway endpoint for S3 in the same Region (Redshift Management Guide, "Enhanced VPC routing" and
        // "Turning on enhanced VPC routing"). The producer's claim-check writes use it too, without the NAT.
        gatewayEndpoints: { S3: { service: GatewayVpcEndpointAwsService.S3 } },
      });
    } else {
      this.vpc = Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId: c.vpc.vpcId,
        availabilityZones: c.vpc.availabilityZones,
        privateSubnetIds: c.vpc.privateSubnetIds,
      });
      // Nothing here reads the imported subnets' route tables (no gateway endpoint is added to a VPC we do not own).
      Annotations.of(this.vpc).acknowledgeWarning(
        '@aws-cdk/aws-ec2:noSubnetRouteTableId',
        'The route tables of imported subnets are never read',
      );
    }

    this.changeStream = new ChangeStream(this, 'ChangeStream', {
      encryptionKey: this.key,
      mode: c.stream.mode,
      ...(c.stream.shards ? { shards: c.stream.shards } : {}),
      retention: Duration.hours(c.stream.retentionHours),
      removalPolicy,
    });
    this.lake = new ChangelogLake(this, 'Lake', {
      bucketName: `cdc-${c.pipelineId}-lake-${c.account}-${c.region}`,
      encryptionKey: this.key,
      removalPolicy,
      infrequentAccessAfterDays: c.lake.infrequentAccessAfterDays,
      expireAfterDays: c.lake.expireAfterDays,
      maxReceiveCount: c.merge.maxReceiveCount,
      // AWS's advice for SQS event sources: at least 6× the function timeout.
      visibilityTimeout: Duration.seconds(c.merge.timeoutSeconds * 6),
      // The stream apply reads the stream itself; the queue then carries only its handoffs, replays and redrives.
      notifyChangelogObjects: c.apply.source === 'lake',
    });
    this.checkpoints = new CheckpointTable(this, 'Checkpoints', { encryptionKey: this.key, removalPolicy });
    this.catalog = new GlueCatalog(this, 'Catalog', {
      bucket: this.lake.bucket,
      databaseName: `cdc_${c.pipelineId.replace(/-/g, '_')}`,
    });
    this.warehouse = new RedshiftTarget(this, 'Warehouse', {
      config: c.redshift,
      vpc: this.vpc,
      encryptionKey: this.key,
      removalPolicy,
    });
    this.lake.grantCopyRead(this.warehouse.copyRole);
    acknowledgeWildcards(
      this.warehouse.copyRole,
      objectPrefixes('staging/', 'config/', 'firehose-redshift/'),
      'Redshift COPY reads objects only under staging/ (merge), config/ (JSONPaths) and firehose-redshift/',
    );
    this.sourceSecret = importedSecret(this, 'SourceSecret', c.source.secretArn, c.source.secretKmsKeyArn);
  }
}
