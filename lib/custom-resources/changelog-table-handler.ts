/**
 * Lambda handlers of the changelog-table custom resource (lib/constructs/changelog-table-setup.ts), run by the CDK
 * Provider framework: `onEvent` submits the DDL batch through the Redshift Data API, `isComplete` is called every
 * query interval until the batch FINISHED, and fails the deployment with Redshift's error when it FAILED or ABORTED.
 */
import {
  BatchExecuteStatementCommand,
  DescribeStatementCommand,
  RedshiftDataClient,
} from '@aws-sdk/client-redshift-data';
import type {
  CdkCustomResourceEvent,
  CdkCustomResourceIsCompleteEvent,
  CdkCustomResourceIsCompleteResponse,
  CdkCustomResourceResponse,
} from 'aws-lambda';
import { statementCompleted } from './statement-completion';

/** What the construct passes as the resource's properties (CloudFormation turns every value into a string). */
export interface ChangelogTableProperties {
  readonly ServiceToken: string;
  readonly Sqls: string[];
  readonly Database: string;
  readonly StatementName: string;
  readonly WorkgroupName?: string;
  readonly ClusterIdentifier?: string;
  readonly SecretArn?: string;
  readonly DbUser?: string;
  /** Names the resource; a new value replaces it (another schema). */
  readonly PhysicalId: string;
}

export interface ChangelogTableData {
  /** The submitted batch; absent on Delete (nothing is dropped: the table holds data). */
  readonly StatementId?: string;
}

const client = new RedshiftDataClient({});

export async function onEvent(
  event: CdkCustomResourceEvent<ChangelogTableProperties>,
): Promise<CdkCustomResourceResponse<ChangelogTableData>> {
  const p = event.ResourceProperties;
  if (event.RequestType === 'Delete') return { PhysicalResourceId: event.PhysicalResourceId, Data: {} };
  const out = await client.send(
    new BatchExecuteStatementCommand({
      Sqls: p.Sqls,
      Database: p.Database,
      StatementName: p.StatementName,
      ...(p.WorkgroupName ? { WorkgroupName: p.WorkgroupName } : {}),
      ...(p.ClusterIdentifier ? { ClusterIdentifier: p.ClusterIdentifier } : {}),
      ...(p.SecretArn ? { SecretArn: p.SecretArn } : {}),
      ...(p.DbUser ? { DbUser: p.DbUser } : {}),
    }),
  );
  return { PhysicalResourceId: p.PhysicalId, Data: { StatementId: out.Id! } };
}

export async function isComplete(
  event: CdkCustomResourceIsCompleteEvent<ChangelogTableProperties>,
): Promise<CdkCustomResourceIsCompleteResponse<ChangelogTableData>> {
  // The Provider framework merges onEvent's answer (PhysicalResourceId, Data) into this event.
  const id = (event.Data as ChangelogTableData | undefined)?.StatementId;
  if (event.RequestType === 'Delete' || !id) return { IsComplete: true };
  const d = await client.send(new DescribeStatementCommand({ Id: id }));
  return statementCompleted(d) ? { IsComplete: true, Data: { StatementId: id } } : { IsComplete: false };
}
