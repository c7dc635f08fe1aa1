import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateStreamCommand,
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
} from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import mysql from 'mysql2/promise';
import type { Target } from '../../../cli/src/target';
import { CheckpointStore } from '../../../containers/producer/src/checkpoint-store';
import { localAwsClientConfig } from '../../../local/services/aws-config';
import { createCheckpointTable } from '../../../local/services/checkpoint-table';
import { type Emulator, startEmulator } from '../../../local/services/emulators';
import { type MariaDbServer, startMariaDb } from '../../../local/services/mariadb';
import { waitFor } from '../../../local/services/process';
import type { ChangeEvent } from '../../../shared/change-event';

const ROOT = join(import.meta.dirname, '..', '..', '..');

export interface ProducerHarness {
  maria: MariaDbServer;
  kinesisEmu: Emulator;
  dynamoEmu: Emulator;
  kinesis: KinesisClient;
  dynamo: DynamoDBClient;
  db: mysql.Connection;
  env(extra?: Record<string, string>): Record<string, string>;
  /**
   * Starts the real producer (containers/producer/src/main.ts) as a child process; `imports` are preloaded into it
   * (fault injection, e.g. support/zongji-undecodable-type.ts).
   */
  startProducer(extra?: Record<string, string>, opts?: { imports?: readonly string[] }): ProducerProcess;
  /** Every event in the stream so far (all shards, from the start). */
  readAll(): Promise<ChangeEvent[]>;
  close(): Promise<void>;
}

export interface ProducerProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

export async function startProducerHarness(stream = 'changes'): Promise<ProducerHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'cdc-producer-'));
  const [maria, kinesisEmu, dynamoEmu] = await Promise.all([
    startMariaDb({ dir: join(dir, 'mariadb') }),
    startEmulator('kinesis'),
    startEmulator('dynamodb'),
  ]);
  const kinesis = new KinesisClient(localAwsClientConfig(kinesisEmu.endpoint));
  const dynamo = new DynamoDBClient(localAwsClientConfig(dynamoEmu.endpoint));
  await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 2 }));
  await createCheckpointTable(dynamo, 'cdc-checkpoints');
  const db = await mysql.createConnection({
    host: maria.host,
    port: maria.port,
    user: maria.user,
    password: maria.password,
    charset: 'utf8mb4',
    multipleStatements: true,
  });
  const children: ChildProcess[] = [];
  const env = (extra: Record<string, string> = {}) => ({
    SOURCE_HOST: maria.host,
    SOURCE_PORT: String(maria.port),
    SOURCE_USER: maria.user,
    SOURCE_PASSWORD: maria.password,
    CAPTURE_INCLUDE: 'shop.*',
    STREAM_NAME: stream,
    CHECKPOINT_TABLE: 'cdc-checkpoints',
    PIPELINE_ID: 'test',
    HEALTH_PORT: '0',
    AWS_ENDPOINT_KINESIS: kinesisEmu.endpoint,
    AWS_ENDPOINT_DYNAMODB: dynamoEmu.endpoint,
    ...extra,
  });
  return {
    maria,
    kinesisEmu,
    dynamoEmu,
    kinesis,
    dynamo,
    db,
    env,
    startProducer(extra = {}, opts = {}) {
      const preload = (opts.imports ?? []).flatMap((file) => ['--import', file]);
      const main = join(ROOT, 'containers/producer/src/main.ts');
      const child = spawn(process.execPath, ['--import', 'tsx', ...preload, main], {
        env: { ...process.env, ...env(extra) },
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: ROOT,
      });
      children.push(child);
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      return { child, output: () => out, exited };
    },
    async readAll() {
      const desc = await kinesis.send(new DescribeStreamCommand({ StreamName: stream }));
      const events: ChangeEvent[] = [];
      for (const shard of desc.StreamDescription?.Shards ?? []) {
        let it = (
          await kinesis.send(
            new GetShardIteratorCommand({
              StreamName: stream,
              ShardId: shard.ShardId!,
              ShardIteratorType: 'TRIM_HORIZON',
            }),
          )
        ).ShardIterator;
        for (;;) {
          const r = await kinesis.send(new GetRecordsCommand({ ShardIterator: it!, Limit: 10000 }));
          for (const rec of r.Records ?? []) events.push(JSON.parse(Buffer.from(rec.Data!).toString()) as ChangeEvent);
          if (!r.Records?.length) break;
          it = r.NextShardIterator;
        }
      }
      return events.sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
    },
    async close() {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      await db.end().catch(() => undefined);
      await Promise.all([maria.stop(), kinesisEmu.stop(), dynamoEmu.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until the producer logged a line matching `re`. */
export async function waitForLog(p: ProducerProcess, re: RegExp, timeoutMs = 30_000): Promise<void> {
  await waitFor(`producer log ${re}`, async () => re.test(p.output()), timeoutMs);
}

/**
 * What `npx cdc status` reads for this harness's pipeline (`test`), as on AWS: no localDir (no producer.log), and
 * neither warehouse nor lake (their parts of the report stay empty).
 */
export function statusTarget(h: ProducerHarness): Target {
  const m = h.maria;
  return {
    kind: 'aws',
    source: { host: m.host, port: m.port, user: m.user, password: m.password },
    pipelineId: 'test',
    store: new CheckpointStore({ client: h.dynamo, tableName: 'cdc-checkpoints', pipelineId: 'test', owner: 'cli' }),
    dynamo: h.dynamo,
    s3: new S3Client({ ...localAwsClientConfig('http://127.0.0.1:9'), maxAttempts: 1 }),
    bucket: 'none',
    warehouse: { query: () => Promise.reject(new Error('no warehouse in this test')) },
    changelogSchema: 'cdc',
  } as unknown as Target;
}
