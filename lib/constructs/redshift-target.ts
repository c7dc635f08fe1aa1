import { Aws, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { type CfnSecurityGroup, type ISecurityGroup, type IVpc, SecurityGroup, SubnetType } from 'aws-cdk-lib/aws-ec2';
import { Grant, type IGrantable, type IRole, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { CfnNamespace, CfnWorkgroup } from 'aws-cdk-lib/aws-redshiftserverless';
import { type ISecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { AwsCustomResource, AwsCustomResourcePolicy, PhysicalResourceId } from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { RedshiftConfig } from '../config/environment-config';
import { grantSecretRead, importedSecret } from './grants';
import { acknowledgeWildcards } from './nag';

export interface RedshiftTargetProps {
  readonly config: RedshiftConfig;
  /** Needed only when the config creates a workgroup. */
  readonly vpc?: IVpc;
  readonly encryptionKey: IKey;
  readonly removalPolicy: RemovalPolicy;
}

/**
 * The warehouse the pipeline writes to: an imported Redshift Serverless workgroup or provisioned cluster (the normal
 * case), or a Serverless namespace + workgroup created here (dev). Owns the role Redshift assumes for the merge's
 * COPY, and grants Data API access scoped to this one workgroup/cluster and secret.
 */
export class RedshiftTarget extends Construct {
  readonly config: RedshiftConfig;
  readonly secret: ISecret | undefined;
  /** Role Redshift assumes to COPY staging files. Attached automatically to a created namespace. */
  readonly copyRole: IRole;
  /** ARN the Data API's ExecuteStatement is scoped to. */
  readonly dataApiResourceArn: string;
  readonly securityGroup: ISecurityGroup | undefined;
  /** jdbc:redshift://host:port/db, when Firehose can reach the warehouse. */
  readonly jdbcUrl: string | undefined;
  readonly workgroup: CfnWorkgroup | undefined;

  constructor(scope: Construct, id: string, props: RedshiftTargetProps) {
    super(scope, id);
    const c = props.config;
    this.config = c;
    this.copyRole = new Role(this, 'CopyRole', {
      assumedBy: new ServicePrincipal('redshift.amazonaws.com'),
      description: 'Assumed by Redshift to COPY the merge staging files from the changelog lake',
    });
    const { partition, region, account } = Stack.of(this);

    if (c.kind === 'serverless' && c.create) {
      if (!props.vpc) throw new Error('RedshiftTarget needs a vpc to create a workgroup');
      // Our own secret (CloudFormation does not expose the ARN of a Redshift-managed admin secret).
      const admin = new Secret(this, 'AdminSecret', {
        description: `Admin of the Redshift Serverless namespace ${c.namespaceName}`,
        encryptionKey: props.encryptionKey,
        generateSecretString: {
          secretStringTemplate: JSON.stringify({ username: 'cdc_admin' }),
          generateStringKey: 'password',
          passwordLength: 32,
          excludePunctuation: true,
          requireEachIncludedType: true,
        },
        removalPolicy: props.removalPolicy,
      });
      Validations.of(admin).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'Dev-only namespace admin; rotating it needs a Redshift rotation Lambda in the VPC, not worth it for dev',
      });
      const ns = new CfnNamespace(this, 'Namespace', {
        namespaceName: c.namespaceName!,
        dbName: c.database,
        adminUsername: admin.secretValueFromJson('username').unsafeUnwrap(),
        adminUserPassword: admin.secretValueFromJson('password').unsafeUnwrap(),
        kmsKeyId: props.encryptionKey.keyArn,
        iamRoles: [this.copyRole.roleArn],
        logExports: ['useractivitylog', 'userlog', 'connectionlog'],
      });
      ns.applyRemovalPolicy(props.removalPolicy);
      this.securityGroup = new SecurityGroup(this, 'SecurityGroup', {
        vpc: props.vpc,
        description: 'Redshift Serverless workgroup of the CDC pipeline',
        allowAllOutbound: false,
      });
      // Enhanced VPC routing sends COPY's S3 traffic through the VPC, so the group must let it out: to the S3 prefix
      // list the VPC's gateway endpoint routes (Amazon VPC User Guide, "Gateway endpoints for Amazon S3": security
      // groups must allow traffic to the prefix list). Its id differs per Region and CloudFormation cannot name it,
      // so it is read at deploy time instead of looked up (with credentials) at synth. The rule is written inline:
      // addEgressRule would make a token peer a separate SecurityGroupEgress resource, leaving the group with no inline
      // egress, which EC2 turns into its default allow-all rule.
      (this.securityGroup.node.defaultChild as CfnSecurityGroup).addPropertyOverride('SecurityGroupEgress', [
        {
          IpProtocol: 'tcp',
          FromPort: 443,
          ToPort: 443,
          DestinationPrefixListId: this.s3PrefixListId(region),
          Description: 'COPY reads staging files from S3 (gateway endpoint)',
        },
      ]);
      const subnets = props.vpc.selectSubnets({
        subnetType: c.create.publiclyAccessible ? SubnetType.PUBLIC : SubnetType.PRIVATE_WITH_EGRESS,
      });
      this.workgroup = new CfnWorkgroup(this, 'Workgroup', {
        workgroupName: c.workgroupName,
        namespaceName: c.namespaceName!,
        baseCapacity: c.create.baseCapacityRpu,
        publiclyAccessible: c.create.publiclyAccessible,
        enhancedVpcRouting: true,
        subnetIds: subnets.subnetIds,
        securityGroupIds: [this.securityGroup.securityGroupId],
        configParameters: [{ parameterKey: 'require_ssl', parameterValue: 'true' }],
      });
      this.workgroup.addResourceDependency(ns);
      this.workgroup.applyRemovalPolicy(props.removalPolicy);
      this.secret = admin;
      this.dataApiResourceArn = this.workgroup.attrWorkgroupWorkgroupArn;
      this.jdbcUrl = c.firehoseReachable
        ? `jdbc:redshift://${this.workgroup.attrWorkgroupEndpointAddress}:5439/${c.database}`
        : undefined;
    } else if (c.kind === 'serverless') {
      this.secret = importedSecret(this, 'Secret', c.secretArn!, c.secretKmsKeyArn);
      this.dataApiResourceArn = `arn:${partition}:redshift-serverless:${region}:${account}:workgroup/${c.workgroupId!}`;
      this.jdbcUrl = c.firehoseReachable
        ? `jdbc:redshift://${c.workgroupName}.${account}.${region}.redshift-serverless.${Aws.URL_SUFFIX}:5439/${c.database}`
        : undefined;
    } else {
      this.secret = c.secretArn ? importedSecret(this, 'Secret', c.secretArn, c.secretKmsKeyArn) : undefined;
      this.dataApiResourceArn = `arn:${partition}:redshift:${region}:${account}:cluster:${c.clusterId}`;
      this.jdbcUrl = c.firehoseReachable ? `jdbc:redshift://${c.endpoint!}/${c.database}` : undefined;
    }
  }

  /** The region's AWS-managed S3 prefix list (`com.amazonaws.<region>.s3`), found when the stack deploys. */
  private s3PrefixListId(region: string): string {
    const name = `com.amazonaws.${region}.s3`;
    // Own role and log group: the default role is the AWS-managed AWSLambdaBasicExecutionRole (every log group).
    const role = new Role(this, 'S3PrefixListRole', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: 'Reads the id of the Region S3 prefix list for the workgroup security group',
    });
    const logGroup = new LogGroup(this, 'S3PrefixListLogs', {
      retention: RetentionDays.ONE_WEEK,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    logGroup.grantWrite(role);
    const lookup = new AwsCustomResource(this, 'S3PrefixList', {
      role,
      logGroup,
      onUpdate: {
        service: 'EC2',
        action: 'describeManagedPrefixLists',
        parameters: { Filters: [{ Name: 'prefix-list-name', Values: [name] }] },
        physicalResourceId: PhysicalResourceId.of(name),
        outputPaths: ['PrefixLists.0.PrefixListId'],
      },
      // DescribeManagedPrefixLists has no resource-level permissions.
      policy: AwsCustomResourcePolicy.fromSdkCalls({ resources: AwsCustomResourcePolicy.ANY_RESOURCE }),
      installLatestAwsSdk: false,
    });
    acknowledgeWildcards(
      lookup,
      (f) => f === 'Resource::*',
      'ec2:DescribeManagedPrefixLists has no resource-level permissions (read-only)',
    );
    acknowledgeWildcards(
      role,
      (f) => f.startsWith('Resource::') && f.endsWith(':*') && f.includes('Logs'),
      'Log streams of its own log group',
    );
    return lookup.getResponseField('PrefixLists.0.PrefixListId');
  }

  /** Environment the merge Lambda reads (lambdas/merge/src/config.ts). */
  get mergeEnvironment(): Record<string, string> {
    const c = this.config;
    return {
      WAREHOUSE: 'redshift',
      ...(c.kind === 'serverless'
        ? { REDSHIFT_WORKGROUP_NAME: c.workgroupName }
        : { REDSHIFT_CLUSTER_ID: c.clusterId }),
      REDSHIFT_DATABASE: c.database,
      ...(this.secret ? { REDSHIFT_SECRET_ARN: this.secret.secretArn } : {}),
      ...(c.kind === 'cluster' && !this.secret && c.dbUser ? { REDSHIFT_DB_USER: c.dbUser } : {}),
      COPY_ROLE_ARN: this.copyRole.roleArn,
      CHANGELOG_SCHEMA: c.changelogSchema,
      ...(c.replicaSchema ? { REPLICA_SCHEMA: c.replicaSchema } : {}),
      HISTORY_TABLES: c.historyTables.join(','),
      DROPPED_TABLE_POLICY: c.droppedTablePolicy,
    };
  }

  /**
   * Data API access to this warehouse only: run statements against the one workgroup/cluster, read the one secret
   * (or get temporary credentials for the one database user), and see only the caller's own statements.
   */
  grantDataApi(grantee: IGrantable): Grant {
    const c = this.config;
    let grant = Grant.addToPrincipal({
      grantee,
      actions: ['redshift-data:ExecuteStatement', 'redshift-data:BatchExecuteStatement'],
      resourceArns: [this.dataApiResourceArn],
    }).combine(
      Grant.addToPrincipal({
        grantee,
        // These actions take no resource; the condition limits them to statements the caller itself submitted.
        actions: [
          'redshift-data:DescribeStatement',
          'redshift-data:GetStatementResult',
          'redshift-data:CancelStatement',
        ],
        resourceArns: ['*'],
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, not a template
        conditions: { StringEquals: { 'redshift-data:statement-owner-iam-userid': '${aws:userid}' } },
      }),
    );
    if (this.secret) grant = grant.combine(grantSecretRead(grantee, this.secret));
    else if (c.kind === 'cluster' && c.dbUser) {
      const { partition, region, account } = Stack.of(this);
      grant = grant.combine(
        Grant.addToPrincipal({
          grantee,
          actions: ['redshift:GetClusterCredentials'],
          resourceArns: [
            `arn:${partition}:redshift:${region}:${account}:dbuser:${c.clusterId}/${c.dbUser}`,
            `arn:${partition}:redshift:${region}:${account}:dbname:${c.clusterId}/${c.database}`,
          ],
        }),
      );
    }
    if (c.kind === 'serverless' && !this.secret) {
      grant = grant.combine(
        Grant.addToPrincipal({
          grantee,
          actions: ['redshift-serverless:GetCredentials'],
          resourceArns: [this.dataApiResourceArn],
        }),
      );
    }
    return grant;
  }
}
