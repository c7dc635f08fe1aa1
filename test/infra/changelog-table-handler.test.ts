import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementFailedError, statementCompleted } from '../../lib/custom-resources/statement-completion';

describe('statementCompleted (when the changelog-table custom resource may report success)', () => {
  it('waits while the statement is submitted, picked or started, and completes when it finished', () => {
    for (const Status of ['SUBMITTED', 'PICKED', 'STARTED'])
      expect(statementCompleted({ Id: 's', Status })).toBe(false);
    expect(statementCompleted({ Id: 's', Status: 'FINISHED' })).toBe(true);
  });

  it("fails with Redshift's error when the statement failed, naming the statement", () => {
    expect(() =>
      statementCompleted({ Id: 'b-1', Status: 'FAILED', Error: 'ERROR: permission denied for schema cdc' }),
    ).toThrow('Redshift statement b-1 FAILED: ERROR: permission denied for schema cdc');
  });

  it('fails with the failing sub-statement of a batch when the batch itself carries no error', () => {
    const call = () =>
      statementCompleted({
        Id: 'b-2',
        Status: 'FAILED',
        SubStatements: [
          { Id: 'b-2:1', Status: 'FINISHED' },
          { Id: 'b-2:2', Status: 'FAILED', Error: 'ERROR: syntax error at or near "SUPER"' },
        ],
      });
    expect(call).toThrow(StatementFailedError);
    expect(call).toThrow('sub-statement b-2:2: ERROR: syntax error at or near "SUPER"');
  });

  it('fails when the statement was aborted, and on a status it does not know instead of waiting forever', () => {
    expect(() => statementCompleted({ Id: 'b-3', Status: 'ABORTED' })).toThrow(
      'Redshift statement b-3 ABORTED: the statement was cancelled',
    );
    expect(() => statementCompleted({ Id: 'b-4', Status: 'LOST' })).toThrow('b-4 LOST: unexpected status');
  });
});

/**
 * The handlers as the Provider framework calls them, with the real AWS SDK client pointed at a local HTTP endpoint
 * that answers the Data API's JSON protocol (no Redshift Data API emulator exists): proves what is sent, that the
 * statement id flows from onEvent to isComplete, and that a failed statement fails the deployment with its error.
 */
describe('changelog-table custom resource handlers against a local Data API endpoint', () => {
  let server: Server;
  const requests: { target: string; body: Record<string, unknown> }[] = [];
  const describeAnswers: Record<string, unknown>[] = [];
  let handler: typeof import('../../lib/custom-resources/changelog-table-handler');

  const body = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let s = '';
      req.on('data', (c) => (s += c));
      req.on('end', () => resolve(s));
    });

  beforeAll(async () => {
    server = createServer(async (req, res) => {
      const target = String(req.headers['x-amz-target']);
      requests.push({ target, body: JSON.parse(await body(req)) as Record<string, unknown> });
      const answer = target.endsWith('.BatchExecuteStatement')
        ? { Id: 'batch-7', CreatedAt: 1_700_000_000 }
        : (describeAnswers.shift() ?? { Id: 'batch-7', Status: 'FINISHED' });
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify(answer));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_REDSHIFT_DATA: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    });
    handler = await import('../../lib/custom-resources/changelog-table-handler');
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const properties = {
    ServiceToken: 'arn:aws:lambda:eu-west-1:111111111111:function:provider',
    Sqls: ['CREATE SCHEMA IF NOT EXISTS cdc', 'CREATE TABLE IF NOT EXISTS cdc.changelog (x INT)'],
    Database: 'analytics',
    StatementName: 'cdc-changelog-table-Cdc-Staging-Delivery',
    WorkgroupName: 'analytics-staging',
    SecretArn: 'arn:aws:secretsmanager:eu-west-1:222222222222:secret:cdc/staging/redshift-AbCdEf',
    PhysicalId: 'changelog-table-cdc',
  };
  const base = {
    ServiceToken: properties.ServiceToken,
    ResponseURL: 'https://example.invalid/',
    StackId: 'stack',
    RequestId: 'req',
    LogicalResourceId: 'ChangelogTable',
    ResourceType: 'Custom::ChangelogTable',
    ResourceProperties: properties,
  };

  it('submits the DDL batch to the workgroup with its secret, then polls until FINISHED', async () => {
    const created = await handler.onEvent({ ...base, RequestType: 'Create' });
    expect(created).toEqual({ PhysicalResourceId: 'changelog-table-cdc', Data: { StatementId: 'batch-7' } });
    expect(requests.at(-1)).toEqual({
      target: 'RedshiftData.BatchExecuteStatement',
      body: {
        Sqls: properties.Sqls,
        Database: 'analytics',
        StatementName: properties.StatementName,
        WorkgroupName: 'analytics-staging',
        SecretArn: properties.SecretArn,
        ClientToken: expect.any(String),
      },
    });
    describeAnswers.push({ Id: 'batch-7', Status: 'STARTED' }, { Id: 'batch-7', Status: 'FINISHED' });
    const event = { ...base, RequestType: 'Create' as const, ...created, PhysicalResourceId: 'changelog-table-cdc' };
    expect(await handler.isComplete(event)).toEqual({ IsComplete: false });
    expect(await handler.isComplete(event)).toEqual({ IsComplete: true, Data: { StatementId: 'batch-7' } });
    expect(requests.at(-1)).toEqual({ target: 'RedshiftData.DescribeStatement', body: { Id: 'batch-7' } });
  });

  it('fails the deployment with the error of the failed statement', async () => {
    describeAnswers.push({ Id: 'batch-7', Status: 'FAILED', Error: 'ERROR: permission denied for database analytics' });
    const event = {
      ...base,
      RequestType: 'Update' as const,
      PhysicalResourceId: 'changelog-table-cdc',
      OldResourceProperties: properties,
      Data: { StatementId: 'batch-7' },
    };
    await expect(handler.isComplete(event)).rejects.toThrow(
      'Redshift statement batch-7 FAILED: ERROR: permission denied for database analytics',
    );
  });

  it('leaves the table in place on Delete (it holds the changelog) and sends nothing', async () => {
    const before = requests.length;
    const event = { ...base, RequestType: 'Delete' as const, PhysicalResourceId: 'changelog-table-cdc' };
    expect(await handler.onEvent(event)).toEqual({ PhysicalResourceId: 'changelog-table-cdc', Data: {} });
    expect(await handler.isComplete({ ...event, Data: {} })).toEqual({ IsComplete: true });
    expect(requests.length).toBe(before);
  });
});
