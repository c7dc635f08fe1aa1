import * as path from 'node:path';
import { CustomResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, LoggingFormat, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Provider } from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { changelogTableDdl } from '../../shared/changelog-table';
import type { ChangelogTableProperties } from '../custom-resources/changelog-table-handler';
import { acknowledge, acknowledgeWildcards } from './nag';
import { REPO_ROOT } from './producer-service';
import type { RedshiftTarget } from './redshift-target';

export const CHANGELOG_TABLE_HANDLER = path.join(REPO_ROOT, 'lib/custom-resources/changelog-table-handler.ts');

export interface ChangelogTableSetupProps {
  readonly warehouse: RedshiftTarget;
  /** How often the deployment asks Redshift whether the DDL finished. @default 10 seconds */
  readonly queryInterval?: Duration;
  /** How long the deployment waits for the DDL before failing. @default 15 minutes */
  readonly totalTimeout?: Duration;
}

/**
 * Creates the changelog schema and the raw changelog table (shared/changelog-table.ts) in Redshift through the Data
 * API on deploy, before Firehose starts COPYing into it. The Data API only submits a statement, so this is a Provider
 * framework resource: `onEvent` submits the batch, `isComplete` polls DescribeStatement until it FINISHED and fails
 * the deployment with Redshift's error when it FAILED or ABORTED (lib/custom-resources/changelog-table-handler.ts).
 * Idempotent (IF NOT EXISTS); runs again when the DDL changes; a stack deletion leaves the table (it holds data).
 */
export class ChangelogTableSetup extends Construct {
  readonly resource: CustomResource;
  readonly provider: Provider;

  constructor(scope: Construct, id: string, props: ChangelogTableSetupProps) {
    super(scope, id);
    const w = props.warehouse;
    const c = w.config;
    const sqls = [`CREATE SCHEMA IF NOT EXISTS ${c.changelogSchema}`, changelogTableDdl(c.changelogSchema, 'redshift')];
    const role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: 'Creates the raw changelog table through the Redshift Data API and waits for it',
    });
    w.grantDataApi(role);
    // onEvent submits, isComplete describes: two functions, so two sessions of this role (aws:userid is
    // <role id>:<function name>), and grantDataApi's "owner = ${aws:userid}" would hide onEvent's statement from
    // isComplete. Any session of this one role may describe it (the role id alone, should the owner be recorded so).
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['redshift-data:DescribeStatement'],
        resources: ['*'],
        conditions: {
          StringLike: { 'redshift-data:statement-owner-iam-userid': [`${role.roleId}:*`, role.roleId] },
        },
      }),
    );
    const logGroup = new LogGroup(this, 'Logs', {
      retention: RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    logGroup.grantWrite(role);
    acknowledgeWildcards(
      role,
      (f) => f === 'Resource::*' || (f.startsWith('Resource::') && f.endsWith(':*') && f.includes('Logs')),
      'Data API DescribeStatement/GetStatementResult/CancelStatement take no resource (limited to its own statements by condition); log streams of its own log group',
    );

    const handler = (name: 'onEvent' | 'isComplete') =>
      new NodejsFunction(this, name === 'onEvent' ? 'OnEvent' : 'IsComplete', {
        role,
        entry: CHANGELOG_TABLE_HANDLER,
        handler: name,
        runtime: Runtime.NODEJS_24_X,
        architecture: Architecture.ARM_64,
        timeout: Duration.minutes(1),
        logGroup,
        loggingFormat: LoggingFormat.JSON,
        bundling: { format: OutputFormat.ESM, target: 'node24', minify: true, externalModules: ['@aws-sdk/*'] },
      });
    // The framework's functions get their own roles and log group too (the default is AWSLambdaBasicExecutionRole,
    // which may write every log group of the account).
    const frameworkRole = (roleId: string) => {
      const r = new Role(this, roleId, {
        assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
        description: 'CDK Provider framework function of the changelog-table resource',
      });
      logGroup.grantWrite(r);
      return r;
    };
    this.provider = new Provider(this, 'Provider', {
      onEventHandler: handler('onEvent'),
      isCompleteHandler: handler('isComplete'),
      queryInterval: props.queryInterval ?? Duration.seconds(10),
      totalTimeout: props.totalTimeout ?? Duration.minutes(15),
      logGroup,
      frameworkOnEventRole: frameworkRole('FrameworkOnEventRole'),
      frameworkCompleteAndTimeoutRole: frameworkRole('FrameworkCompleteRole'),
    });
    acknowledgeWildcards(
      this,
      (f) =>
        /^Resource::<[A-Za-z0-9]+\.Arn>:\*$/.test(f) ||
        (f.startsWith('Resource::') && f.endsWith(':*') && f.includes('Logs')),
      'Provider framework: invokes its own handler functions (any version) and writes its own log group',
    );
    acknowledge(
      this.provider,
      'AwsSolutions-SF1',
      'Provider framework waiter: each step is the isComplete or onTimeout function, which log to this construct log group',
    );
    acknowledge(this.provider, 'AwsSolutions-SF2', 'Provider framework waiter: a deploy-time poll, not traced');

    const properties: Omit<ChangelogTableProperties, 'ServiceToken'> = {
      Sqls: sqls,
      Database: c.database,
      StatementName: `cdc-changelog-table-${Stack.of(this).stackName}`.slice(0, 500),
      ...(c.kind === 'serverless' ? { WorkgroupName: c.workgroupName } : { ClusterIdentifier: c.clusterId }),
      ...(w.secret ? { SecretArn: w.secret.secretArn } : c.kind === 'cluster' && c.dbUser ? { DbUser: c.dbUser } : {}),
      PhysicalId: `changelog-table-${c.changelogSchema}`,
    };
    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: this.provider.serviceToken,
      resourceType: 'Custom::ChangelogTable',
      properties,
    });
  }
}
