/**
 * `npx cdc preflight` run as an operator runs it (cli/cdc.mjs, a child process, an endpoints.json) against real
 * servers: MariaDB with a wrong binlog setting and a replication user missing a grant, PostgreSQL as the warehouse,
 * kinesalite without the stream, s3rver with the bucket. Then everything fixed: exit 0. No producer or merge needed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateStreamCommand, KinesisClient } from '@aws-sdk/client-kinesis';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Endpoints } from '../../local/pipeline';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { type MariaDbServer, startMariaDb } from '../../local/services/mariadb';
import { type PostgresServer, startPostgres } from '../../local/services/postgres';
import { type CdcRun, runCdc } from './support/run-cdc';

const dir = mkdtempSync(join(tmpdir(), 'cdc-preflight-'));
let maria: MariaDbServer;
let postgres: PostgresServer;
let kinesisEmu: Emulator;
let s3Emu: Emulator;
let endpoints: string;

beforeAll(async () => {
  [maria, postgres, kinesisEmu, s3Emu] = await Promise.all([
    startMariaDb({ dir: join(dir, 'mariadb') }),
    startPostgres({ dir: join(dir, 'postgres') }),
    startEmulator('kinesis'),
    startEmulator('s3', { dir: join(dir, 's3') }),
  ]);
  await new S3Client(localAwsClientConfig(s3Emu.endpoint)).send(new CreateBucketCommand({ Bucket: 'lake' }));
  // The replication user as a DBA might create it, forgetting UPDATE on the signal table.
  maria.sql(`CREATE DATABASE shop; CREATE DATABASE cdc;
    CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl-pw';
    GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl'@'127.0.0.1';
    GRANT SELECT ON shop.* TO 'repl'@'127.0.0.1';
    GRANT CREATE ON cdc.* TO 'repl'@'127.0.0.1';
    CREATE TABLE cdc.cdc_signal (id VARCHAR(64) PRIMARY KEY, type VARCHAR(32) NOT NULL, data TEXT NULL,
      created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6));
    GRANT INSERT ON cdc.cdc_signal TO 'repl'@'127.0.0.1';
    SET GLOBAL binlog_row_image = MINIMAL;`);
  const ep: Endpoints = {
    mysql: { host: maria.host, port: maria.port, user: 'repl', password: 'repl-pw', database: 'shop' },
    postgres: { url: postgres.url },
    replicaSchema: 'shop',
    aws: {
      kinesis: kinesisEmu.endpoint,
      dynamodb: 'http://127.0.0.1:9', // not used by preflight
      s3: s3Emu.endpoint,
      stream: 'cdc-changes',
      bucket: 'lake',
      checkpointTable: 'cdc-checkpoints',
    },
  };
  endpoints = join(dir, 'endpoints.json');
  writeFileSync(endpoints, JSON.stringify(ep));
});
afterAll(async () => {
  await Promise.all([maria?.stop(), postgres?.stop(), kinesisEmu?.stop(), s3Emu?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

function cdc(...args: string[]): Promise<CdcRun> {
  return runCdc(endpoints, ...args);
}

describe('npx cdc preflight', () => {
  it('fails with one line per check, naming the wrong setting, the missing grant and the missing stream', async () => {
    const r = await cdc('preflight');
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stdout.split('\n').filter((l) => /^[✓✗] /.test(l));
    expect(lines.map((l) => l.slice(0, 1) + l.slice(2).split(' ')[0])).toEqual([
      '✓source.connect',
      '✓source.log_bin',
      '✓source.binlog_format',
      '✗source.binlog_row_image',
      '✓source.binlog_row_metadata',
      '✓source.binlog_transaction_compression',
      '✓source.binlog_row_value_options',
      '✓source.server_id',
      '✓source.binlog_retention',
      '✓grants.replication_slave',
      '✓grants.replication_client',
      '✓grants.select',
      '✗grants.signal_table',
      '✓warehouse.reachable',
      '✓warehouse.copy',
      '✗stream.present',
      '✓bucket.present',
    ]);
    expect(r.stdout).toContain(
      'binlog_row_image is "MINIMAL", set binlog_row_image=FULL (full before and after images)  → fix: SET GLOBAL binlog_row_image = \'FULL\'',
    );
    expect(r.stdout).toContain("→ fix: GRANT UPDATE ON `cdc`.`cdc_signal` TO 'repl'@'127.0.0.1'");
    expect(r.stdout).toMatch(
      /✗ stream\.present +Kinesis stream cdc-changes: .*not found.*→ fix: start the local pipeline/i,
    );
    expect(r.stdout).toContain('3 check(s) failed');

    const json = JSON.parse((await cdc('preflight', '--json')).stdout);
    expect(json.ok).toBe(false);
    expect(json.checks.filter((c: { status: string }) => c.status === 'fail').map((c: { id: string }) => c.id)).toEqual(
      ['source.binlog_row_image', 'grants.signal_table', 'stream.present'],
    );
  });

  it('passes, exit 0, once the setting, the grant and the stream are there', async () => {
    maria.sql("SET GLOBAL binlog_row_image = FULL; GRANT UPDATE ON cdc.cdc_signal TO 'repl'@'127.0.0.1';");
    await new KinesisClient(localAwsClientConfig(kinesisEmu.endpoint)).send(
      new CreateStreamCommand({ StreamName: 'cdc-changes', ShardCount: 1 }),
    );
    let r = await cdc('preflight');
    // kinesalite makes a new stream ACTIVE after a short delay.
    for (let i = 0; i < 20 && r.stdout.includes('✗ stream.present'); i++) {
      await new Promise((ok) => setTimeout(ok, 250));
      r = await cdc('preflight');
    }
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('all checks passed');
    expect(r.stdout).not.toContain('✗');
  });
});
