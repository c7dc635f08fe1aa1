/**
 * `cdc preflight`: the deploy guide's prerequisites, checked against the target (docs/cli.md#preflight). Fetches the
 * facts (source variables and the replication user's privileges, one probe per service), then judges them with the
 * pure checks of cli/src/preflight-checks.ts: one line each, exit 1 when any failed.
 */
import { DescribeStreamSummaryCommand } from '@aws-sdk/client-kinesis';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import mysql from 'mysql2/promise';
import type { Output } from '../output';
import {
  type BinlogFacts,
  binlogChecks,
  type Check,
  formatCheck,
  type GrantFacts,
  grantChecks,
  type Probe,
  preflightExitCode,
  probeCheck,
  SOURCE_VARIABLES,
} from '../preflight-checks';
import type { Target } from '../target';

/** A probe that fails instead of hanging on an unreachable endpoint. */
async function probe(run: () => Promise<string>, timeoutMs = 10_000): Promise<Probe> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const detail = await Promise.race([
      run(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ]);
    return { ok: true, detail };
  } catch (err) {
    const e = err as Error & { name?: string };
    return { ok: false, error: e.message || e.name || String(err) };
  } finally {
    clearTimeout(timer);
  }
}

async function sourceFacts(conn: mysql.Connection): Promise<{ binlog: BinlogFacts; grants: GrantFacts }> {
  const [vars] = await conn.query(
    `SHOW GLOBAL VARIABLES WHERE Variable_name IN (${SOURCE_VARIABLES.map(() => '?').join(',')})`,
    [...SOURCE_VARIABLES],
  );
  const variables: Record<string, string> = {};
  for (const r of vars as { Variable_name: string; Value: string }[]) variables[r.Variable_name] = r.Value;
  // RDS and Aurora keep binlogs by their own setting, readable through this procedure (absent elsewhere).
  let rdsRetentionHours: number | null | undefined;
  try {
    const [sets] = await conn.query('CALL mysql.rds_show_configuration');
    const rows = (Array.isArray((sets as unknown[])[0]) ? (sets as unknown[][])[0] : sets) as {
      name: string;
      value: string | null;
    }[];
    const v = rows.find((r) => r.name === 'binlog retention hours')?.value;
    rdsRetentionHours = v === null || v === undefined || v === 'NULL' ? null : Number(v);
  } catch {
    rdsRetentionHours = undefined;
  }

  const [[me]] = (await conn.query('SELECT CURRENT_USER() AS u')) as unknown as [[{ u: string }]];
  const at = me.u.lastIndexOf('@');
  const grantee = `'${me.u.slice(0, at)}'@'${me.u.slice(at + 1)}'`;
  const [global] = await conn.query(
    'SELECT PRIVILEGE_TYPE AS p FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?',
    [grantee],
  );
  const [schemas] = await conn.query(
    'SELECT TABLE_SCHEMA AS s, PRIVILEGE_TYPE AS p FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ?',
    [grantee],
  );
  const [tables] = await conn.query(
    'SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, PRIVILEGE_TYPE AS p FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = ?',
    [grantee],
  );
  return {
    binlog: { variables, ...(rdsRetentionHours !== undefined ? { rdsRetentionHours } : {}) },
    grants: {
      user: me.u,
      global: (global as { p: string }[]).map((r) => r.p),
      schemas: (schemas as { s: string; p: string }[]).map((r) => ({ schema: r.s, privilege: r.p })),
      tables: (tables as { s: string; t: string; p: string }[]).map((r) => ({
        schema: r.s,
        table: r.t,
        privilege: r.p,
      })),
    },
  };
}

async function sourceChecks(t: Target): Promise<Check[]> {
  const where = `${t.source.user}@${t.source.host}:${t.source.port}`;
  let conn: mysql.Connection;
  try {
    conn = await mysql.createConnection({ ...t.source, connectTimeout: 10_000 });
  } catch (err) {
    return [
      {
        id: 'source.connect',
        status: 'fail',
        detail: `cannot connect as ${where}: ${(err as Error).message}`,
        fix: 'check SOURCE_HOST/SOURCE_PORT, the security group or firewall, and the user and password',
      },
    ];
  }
  try {
    const facts = await sourceFacts(conn);
    return [
      {
        id: 'source.connect',
        status: 'ok',
        detail: `connected as ${where} (${facts.binlog.variables.version ?? '?'})`,
      },
      ...binlogChecks(facts.binlog, { producerServerId: t.producerServerId }),
      ...grantChecks(facts.grants, { captureInclude: t.captureInclude, signalTable: t.signalTable }),
    ];
  } finally {
    await conn.end().catch(() => undefined);
  }
}

async function serviceChecks(t: Target): Promise<Check[]> {
  const local = t.kind === 'local';
  const warehouse = local ? 'PostgreSQL (the local stand-in for Redshift)' : 'Redshift through the Data API';
  const checks: Check[] = [];
  checks.push(
    probeCheck(
      'warehouse.reachable',
      warehouse,
      await probe(async () => {
        await t.warehouse.query('SELECT 1 AS ok');
        return 'answers SELECT 1';
      }),
      local
        ? 'start the local pipeline: npm run local -- up'
        : 'check REDSHIFT_WORKGROUP_NAME or REDSHIFT_CLUSTER_ID, REDSHIFT_DATABASE and REDSHIFT_SECRET_ARN, and that your credentials may call redshift-data:ExecuteStatement and read the secret',
    ),
  );
  // The merge's own load path, end to end: a one-row staging file loaded into a temporary table in one transaction.
  // In AWS that is the real thing: PutObject to the staging bucket, then COPY … IAM_ROLE through the Data API, which
  // fails when the role is not attached to the namespace or cluster, or the workgroup cannot reach S3.
  const role = t.copyRole;
  const copyFix = local
    ? 'start the local pipeline: npm run local -- up'
    : role
      ? `attach ${role.arn} to ${
          role.workgroupName
            ? `the namespace of workgroup ${role.workgroupName} (aws redshift-serverless update-namespace --iam-roles …)`
            : `cluster ${role.clusterId} (aws redshift modify-cluster-iam-roles --add-iam-roles …)`
        }; with enhanced VPC routing the workgroup needs a route to S3 (gateway endpoint); your credentials need s3:PutObject on STAGING_BUCKET`
      : 'check the warehouse variables';
  checks.push(
    probeCheck(
      'warehouse.copy',
      local ? 'staging load (COPY FROM STDIN)' : `COPY from the staging bucket${role ? ` with ${role.arn}` : ''}`,
      await probe(async () => {
        const table = '_cdc_preflight';
        const location = t.warehouse.stageLocation(`preflight:${process.pid}:${Date.now()}`);
        const d = t.warehouse.dialect;
        await t.warehouse.runTransaction(
          [
            { kind: 'sql', sql: d.createTemp(table, '"probe" VARCHAR(16)') },
            {
              kind: 'load',
              table,
              columns: ['probe'],
              ...(location ? { sql: d.copyFromStaging(table, ['probe'], location) } : {}),
            },
          ],
          'ok\n',
          location,
        );
        return location ? `${location} loaded` : 'one row loaded';
      }, 60_000),
      copyFix,
    ),
  );
  const streamName = t.streamName;
  checks.push(
    streamName
      ? probeCheck(
          'stream.present',
          `Kinesis stream ${streamName}`,
          await probe(async () => {
            const s = await t.kinesis.send(new DescribeStreamSummaryCommand({ StreamName: streamName }));
            const d = s.StreamDescriptionSummary;
            if (d?.StreamStatus !== 'ACTIVE' && d?.StreamStatus !== 'UPDATING') {
              throw new Error(`status ${d?.StreamStatus ?? 'unknown'}, not ACTIVE`);
            }
            return `${d.StreamStatus}, ${d.OpenShardCount ?? '?'} open shard(s)`;
          }),
          local
            ? 'start the local pipeline: npm run local -- up (it creates the stream)'
            : 'deploy the Stateful stack (npx cdk deploy -c stage=<stage> --all) or fix STREAM_NAME',
        )
      : {
          id: 'stream.present',
          status: 'fail',
          detail: 'STREAM_NAME is not set',
          fix: 'set STREAM_NAME to the stream the producer writes (the Stateful stack output)',
        },
  );
  checks.push(
    probeCheck(
      'bucket.present',
      `lake bucket ${t.bucket}`,
      await probe(async () => {
        await t.s3.send(new HeadBucketCommand({ Bucket: t.bucket }));
        return 'exists and is readable';
      }),
      local
        ? 'start the local pipeline: npm run local -- up (it creates the bucket)'
        : 'deploy the Stateful stack or fix LAKE_BUCKET; your credentials need s3:ListBucket on it',
    ),
  );
  return checks;
}

export async function collectPreflight(t: Target): Promise<Check[]> {
  const [source, services] = await Promise.all([sourceChecks(t), serviceChecks(t)]);
  return [...source, ...services];
}

export async function preflight(t: Target, out: Output): Promise<number> {
  const checks = await collectPreflight(t);
  const code = preflightExitCode(checks);
  out.result({ ok: code === 0, target: t.kind, checks });
  for (const c of checks) out.say(formatCheck(c));
  const failed = checks.filter((c) => c.status === 'fail').length;
  out.say(failed === 0 ? '\nall checks passed' : `\n${failed} check(s) failed`);
  return code;
}
