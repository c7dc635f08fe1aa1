/**
 * What a fatal producer failure leaves in CloudWatch: the EMF documents on stdout (what the awslogs driver ships).
 * The binlog-purged alarm watches `BinlogPurged`; the crash-loop alarm watches `ProducerStarts`; both must be emitted
 * however the producer dies, also before it ever reads the binlog. Real MariaDB, binlogs really purged.
 */
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failureMetrics, ProducerError } from '../../containers/producer/src/errors';
import { waitFor } from '../../local/services/process';
import { type ProducerHarness, type ProducerProcess, startProducerHarness, waitForLog } from './support/harness';

let h: ProducerHarness;

beforeAll(async () => {
  h = await startProducerHarness();
  await h.db.query('CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY)');
});
afterAll(async () => {
  await h?.close();
});

/** The EMF documents a producer wrote (one JSON line each, recognised by their `_aws` envelope). */
function emfDocs(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{"_aws"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The sum of one metric over every EMF document, and the metric names each document declares. */
function total(output: string, name: string): number {
  let n = 0;
  for (const d of emfDocs(output)) {
    const declared = (d._aws as { CloudWatchMetrics: { Metrics: { Name: string }[] }[] }).CloudWatchMetrics[0]!.Metrics;
    if (declared.some((m) => m.Name === name)) n += Number(d[name]);
  }
  return n;
}

/** The exit code, or a failure carrying the producer's output when it is still running after `ms`. */
async function exitCode(p: ProducerProcess, ms = 30_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`producer still running after ${ms} ms:\n${p.output()}`)), ms);
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function checkpointGtid(pipeline: string): Promise<string | undefined> {
  const item = await h.dynamo.send(
    new GetItemCommand({ TableName: 'cdc-checkpoints', Key: { pk: { S: pipeline }, sk: { S: 'producer' } } }),
  );
  return item.Item?.gtid?.S;
}

describe('metrics of a failing producer', () => {
  it('a failure during startup still emits ProducerStarts and ProducerErrors, with the Pipeline dimension', async () => {
    await h.db.query('SET GLOBAL binlog_row_image = MINIMAL');
    try {
      const p = h.startProducer({ PIPELINE_ID: 'startup-failure' });
      expect(await exitCode(p)).toBe(1);
      expect(p.output()).toMatch(/SERVER_SETTINGS/);
      expect(total(p.output(), 'ProducerStarts')).toBe(1);
      expect(total(p.output(), 'ProducerErrors')).toBe(1);
      expect(total(p.output(), 'BinlogPurged')).toBe(0);
      expect(emfDocs(p.output()).every((d) => d.Pipeline === 'startup-failure')).toBe(true);
    } finally {
      await h.db.query('SET GLOBAL binlog_row_image = FULL');
    }
  });

  it('a file position purged before the start counts once as BinlogPurged and once as ProducerErrors', async () => {
    const p = h.startProducer({ PIPELINE_ID: 'file-purged', START_FROM: 'file:mysql-bin.000000:4' });
    expect(await exitCode(p)).toBe(1);
    expect(p.output()).toMatch(/BINLOG_PURGED: binlog mysql-bin.000000 \(position 4\) is no longer on the server/);
    expect(total(p.output(), 'BinlogPurged')).toBe(1);
    expect(total(p.output(), 'ProducerErrors')).toBe(1);
  });

  it('a GTID checkpoint whose binlogs were purged under the stopped producer is reported by the server (1236) and counted as BinlogPurged', async () => {
    const first = h.startProducer({ PIPELINE_ID: 'gtid-purged' });
    await waitForLog(first, /reading the binlog/);
    for (let i = 1; i <= 5; i++) await h.db.query('INSERT INTO shop.t VALUES (?)', [i]);
    await waitFor('a checkpoint with a GTID', () => checkpointGtid('gtid-purged'), 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${first.output()}`);
    });
    first.child.kill('SIGTERM');
    expect(await exitCode(first)).toBe(0);

    // Changes the stopped producer never read, then every binlog holding them purged.
    for (let i = 6; i <= 10; i++) await h.db.query('INSERT INTO shop.t VALUES (?)', [i]);
    await h.db.query('FLUSH BINARY LOGS');
    const [[end]] = (await h.db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string }]];
    // A file a dump thread still reads is never purged (the server skips it): wait for the old connection to go.
    await waitFor('no binlog dump thread', async () => {
      const [threads] = await h.db.query('SHOW PROCESSLIST');
      return !(threads as { Command: string }[]).some((t) => t.Command === 'Binlog Dump');
    });
    // MariaDB also keeps a file until InnoDB has made its transactions durable (its binlog checkpoint): retry.
    await waitFor('the old binlogs purged', async () => {
      await h.db.query(`PURGE BINARY LOGS TO '${end.File}'`);
      const [logs] = await h.db.query('SHOW BINARY LOGS');
      return (logs as { Log_name: string }[]).map((l) => l.Log_name).join() === end.File;
    });

    const resumed = h.startProducer({ PIPELINE_ID: 'gtid-purged' });
    expect(await exitCode(resumed)).toBe(1);
    expect(resumed.output()).toMatch(/resuming from checkpoint/);
    expect(resumed.output()).toMatch(/BINLOG_PURGED: the binlog needed to resume is no longer on the server/);
    expect(total(resumed.output(), 'BinlogPurged')).toBe(1);
    expect(total(resumed.output(), 'ProducerErrors')).toBe(1);
    expect(total(resumed.output(), 'ProducerStarts')).toBe(1);
  });
});

describe('failure metrics policy', () => {
  it('counts every failure as ProducerErrors and a purged binlog also as BinlogPurged', () => {
    expect(failureMetrics(new ProducerError('BINLOG_PURGED', 'gone'))).toEqual(['ProducerErrors', 'BinlogPurged']);
    expect(failureMetrics(new ProducerError('LEASE_LOST', 'taken'))).toEqual(['ProducerErrors']);
    expect(failureMetrics(new Error('ECONNRESET'))).toEqual(['ProducerErrors']);
  });
});
