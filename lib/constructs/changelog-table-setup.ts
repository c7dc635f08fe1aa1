import { Stack } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { AwsCustomResource, PhysicalResourceId } from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { changelogTableDdl } from '../../shared/changelog-table';
import { acknowledgeWildcards } from './nag';
import type { RedshiftTarget } from './redshift-target';

export interface ChangelogTableSetupProps {
  readonly warehouse: RedshiftTarget;
}

/**
 * Creates the changelog schema and the raw changelog table (shared/changelog-table.ts) in Redshift through the Data
 * API on deploy, before Firehose starts COPYing into it. Idempotent (IF NOT EXISTS); runs again when the DDL changes.
 */
export class ChangelogTableSetup extends Construct {
  readonly resource: AwsCustomResource;

  constructor(scope: Construct, id: string, props: ChangelogTableSetupProps) {
    super(scope, id);
    const w = props.warehouse;
    const c = w.config;
    const sqls = [`CREATE SCHEMA IF NOT EXISTS ${c.changelogSchema}`, changelogTableDdl(c.changelogSchema, 'redshift')];
    const role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: 'Creates the raw changelog table through the Redshift Data API',
    });
    w.grantDataApi(role);
    acknowledgeWildcards(
      role,
      (f) => f === 'Resource::*',
      'Data API DescribeStatement/GetStatementResult/CancelStatement take no resource; limited to its own statements by condition',
    );
    const call = {
      service: 'RedshiftData',
      action: 'batchExecuteStatement',
      parameters: {
        ...(c.kind === 'serverless' ? { WorkgroupName: c.workgroupName } : { ClusterIdentifier: c.clusterId }),
        Database: c.database,
        ...(w.secret
          ? { SecretArn: w.secret.secretArn }
          : c.kind === 'cluster' && c.dbUser
            ? { DbUser: c.dbUser }
            : {}),
        Sqls: sqls,
        StatementName: `cdc-changelog-table-${Stack.of(this).stackName}`.slice(0, 500),
      },
      physicalResourceId: PhysicalResourceId.of(`changelog-table-${c.changelogSchema}`),
    };
    this.resource = new AwsCustomResource(this, 'Resource', {
      onCreate: call,
      onUpdate: call,
      role,
      installLatestAwsSdk: false,
    });
  }
}
