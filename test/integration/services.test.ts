import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateStreamCommand, KinesisClient, ListStreamsCommand } from '@aws-sdk/client-kinesis';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { type MariaDbServer, startMariaDb } from '../../local/services/mariadb';
import { type PostgresServer, startPostgres } from '../../local/services/postgres';

describe('local services harness', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cdc-services-'));
  let maria: MariaDbServer;
  let postgres: PostgresServer;
  let kinesis: Emulator;
  let s3: Emulator;

  beforeAll(async () => {
    [maria, postgres, kinesis, s3] = await Promise.all([
      startMariaDb({ dir: join(dir, 'mariadb') }),
      startPostgres({ dir: join(dir, 'postgres') }),
      startEmulator('kinesis'),
      startEmulator('s3', { dir: join(dir, 's3') }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([maria?.stop(), postgres?.stop(), kinesis?.stop(), s3?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts MariaDB with ROW binlog, full row image and full row metadata', async () => {
    const conn = await mysql.createConnection({
      host: maria.host,
      port: maria.port,
      user: maria.user,
      password: maria.password,
    });
    const [rows] = await conn.query(
      'SELECT @@log_bin AS log_bin, @@binlog_format AS fmt, @@binlog_row_image AS image, @@binlog_row_metadata AS meta',
    );
    await conn.end();
    expect(rows).toEqual([{ log_bin: 1, fmt: 'ROW', image: 'FULL', meta: 'FULL' }]);
  });

  it('starts PostgreSQL with the warehouse database', async () => {
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    const res = await client.query('SELECT current_database() AS db');
    await client.end();
    expect(res.rows[0].db).toBe('warehouse');
  });

  it('serves Kinesis and S3 to the real AWS SDK clients', async () => {
    const k = new KinesisClient(localAwsClientConfig(kinesis.endpoint));
    await k.send(new CreateStreamCommand({ StreamName: 'changes', ShardCount: 1 }));
    expect((await k.send(new ListStreamsCommand({}))).StreamNames).toContain('changes');

    const s = new S3Client(localAwsClientConfig(s3.endpoint));
    await s.send(new CreateBucketCommand({ Bucket: 'lake' }));
    const body = '{"a":1}\n{"a":2}\n';
    await s.send(new PutObjectCommand({ Bucket: 'lake', Key: 'x/y.json', Body: body }));
    const got = await s.send(new GetObjectCommand({ Bucket: 'lake', Key: 'x/y.json' }));
    expect(await got.Body?.transformToString()).toBe(body);
  });
});
