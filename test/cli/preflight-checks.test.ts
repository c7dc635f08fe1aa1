/** The pure checks of `npx cdc preflight`: facts in, one line per check out, with the exact fix. */
import { describe, expect, it } from 'vitest';
import {
  binlogChecks,
  type Check,
  capturedDatabases,
  formatCheck,
  type GrantFacts,
  grantChecks,
  preflightExitCode,
  retentionHours,
} from '../../cli/src/preflight-checks';

const GOOD_VARIABLES = {
  log_bin: 'ON',
  binlog_format: 'ROW',
  binlog_row_image: 'FULL',
  binlog_row_metadata: 'FULL',
  server_id: '1',
  expire_logs_days: '0',
  version: '10.11.6-MariaDB-log',
};
const byId = (checks: readonly Check[], id: string) => checks.find((c) => c.id === id);

describe('preflight: source binlog settings', () => {
  it('passes a server set up as the deploy guide says', () => {
    const checks = binlogChecks({ variables: GOOD_VARIABLES }, { producerServerId: 4242 });
    expect(checks.filter((c) => c.status !== 'ok')).toEqual([]);
    expect(preflightExitCode(checks)).toBe(0);
  });

  it('fails a wrong binlog_row_image with the producer’s own message and the exact statement to run', () => {
    const checks = binlogChecks(
      { variables: { ...GOOD_VARIABLES, binlog_row_image: 'MINIMAL' } },
      { producerServerId: 4242 },
    );
    const c = byId(checks, 'source.binlog_row_image')!;
    expect(formatCheck(c)).toBe(
      '✗ source.binlog_row_image      binlog_row_image is "MINIMAL", set binlog_row_image=FULL (full before and after images)  → fix: SET GLOBAL binlog_row_image = \'FULL\' and in the server configuration (my.cnf; RDS/Aurora: the DB parameter group)',
    );
    expect(checks.filter((x) => x.status === 'fail').map((x) => x.id)).toEqual(['source.binlog_row_image']);
    expect(preflightExitCode(checks)).toBe(1);
  });

  it('fails log_bin off, STATEMENT format, compressed transactions and a server id the producer also uses', () => {
    const checks = binlogChecks(
      {
        variables: {
          ...GOOD_VARIABLES,
          log_bin: 'OFF',
          binlog_format: 'STATEMENT',
          binlog_transaction_compression: 'ON',
          server_id: '4242',
        },
      },
      { producerServerId: 4242 },
    );
    expect(checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual([
      'source.log_bin',
      'source.binlog_format',
      'source.binlog_transaction_compression',
      'source.server_id',
    ]);
    expect(byId(checks, 'source.server_id')!.fix).toBe(
      'give the producer another SOURCE_SERVER_ID, unique in the replication topology',
    );
  });

  it('asks for 7 days of binlog: expire settings, and RDS binlog retention hours (unset means minutes)', () => {
    expect(retentionHours({ variables: { expire_logs_days: '0' } })).toBe(Number.POSITIVE_INFINITY);
    expect(retentionHours({ variables: { binlog_expire_logs_seconds: '86400', expire_logs_days: '30' } })).toBe(24);
    expect(retentionHours({ variables: { expire_logs_days: '3' } })).toBe(72);
    const short = binlogChecks({ variables: { ...GOOD_VARIABLES, expire_logs_days: '3' } }, { producerServerId: 4242 });
    expect(byId(short, 'source.binlog_retention')).toEqual({
      id: 'source.binlog_retention',
      status: 'fail',
      detail: 'binlogs kept 72 h, less than the 168 h an outage of the pipeline may last',
      fix: 'SET GLOBAL binlog_expire_logs_seconds = 604800 and in the server configuration (my.cnf; RDS/Aurora: the DB parameter group)',
    });
    const rds = binlogChecks({ variables: GOOD_VARIABLES, rdsRetentionHours: null }, { producerServerId: 4242 });
    expect(byId(rds, 'source.binlog_retention')).toMatchObject({
      status: 'fail',
      detail: 'RDS binlog retention hours is not set: RDS purges binlogs within minutes',
      fix: "CALL mysql.rds_set_configuration('binlog retention hours', 168)",
    });
    const rdsOk = binlogChecks({ variables: GOOD_VARIABLES, rdsRetentionHours: 168 }, { producerServerId: 4242 });
    expect(byId(rdsOk, 'source.binlog_retention')!.status).toBe('ok');
  });
});

describe('preflight: the replication user’s grants', () => {
  const signalTable = { db: 'cdc', table: 'cdc_signal' };
  const full: GrantFacts = {
    user: 'cdc@%',
    global: ['REPLICATION SLAVE', 'BINLOG MONITOR'],
    schemas: [
      { schema: 'shop', privilege: 'SELECT' },
      { schema: 'cdc', privilege: 'CREATE' },
    ],
    tables: [
      { schema: 'cdc', table: 'cdc_signal', privilege: 'INSERT' },
      { schema: 'cdc', table: 'cdc_signal', privilege: 'UPDATE' },
    ],
  };

  it('passes the grants of docs/deploy.md (MariaDB’s BINLOG MONITOR standing for REPLICATION CLIENT)', () => {
    const checks = grantChecks(full, { captureInclude: ['shop.*'], signalTable });
    expect(checks.map((c) => [c.id, c.status])).toEqual([
      ['grants.replication_slave', 'ok'],
      ['grants.replication_client', 'ok'],
      ['grants.select', 'ok'],
      ['grants.signal_table', 'ok'],
    ]);
  });

  it('names each missing grant with the GRANT statement that adds it', () => {
    const checks = grantChecks(
      { ...full, global: ['REPLICATION SLAVE'], schemas: [], tables: [full.tables[0]!] },
      { captureInclude: ['shop.*', 'billing.invoices'], signalTable },
    );
    expect(checks.filter((c) => c.status === 'fail').map((c) => [c.id, c.fix])).toEqual([
      ['grants.replication_client', "GRANT REPLICATION CLIENT ON *.* TO 'cdc'@'%'"],
      ['grants.select', "GRANT SELECT ON `shop`.* TO 'cdc'@'%'; GRANT SELECT ON `billing`.* TO 'cdc'@'%'"],
      ['grants.signal_table', "GRANT CREATE ON `cdc`.* TO 'cdc'@'%'; GRANT UPDATE ON `cdc`.`cdc_signal` TO 'cdc'@'%'"],
    ]);
  });

  it('reads database grants as LIKE patterns, and wants SELECT on *.* when a rule can match any database', () => {
    const eu: GrantFacts = { ...full, schemas: [...full.schemas, { schema: 'shop\\_%', privilege: 'SELECT' }] };
    expect(byId(grantChecks(eu, { captureInclude: ['shop_eu.*'], signalTable }), 'grants.select')!.status).toBe('ok');
    expect(byId(grantChecks(eu, { captureInclude: ['shopxeu.*'], signalTable }), 'grants.select')!.status).toBe('fail');
    expect(capturedDatabases([])).toBeUndefined();
    expect(capturedDatabases(['shop_*.orders'])).toBeUndefined();
    expect(capturedDatabases(['shop.*', 'shop.orders', 'billing.x'])).toEqual(['shop', 'billing']);
    expect(byId(grantChecks(full, { captureInclude: [], signalTable }), 'grants.select')!.fix).toBe(
      "GRANT SELECT ON *.* TO 'cdc'@'%', or narrow CAPTURE_INCLUDE to named databases",
    );
  });
});
