/**
 * A column type the type table does not know (a later server's, here MariaDB 11.7's `vector(3)` and an invented
 * `frobnicate`) never stops the producer: its values go through as lossless text (bytes as hex), with one warning per
 * column and the metric UnknownTypeValues, while every other table flows (docs/event-format.md, "Unknown column
 * types"). The MariaDB 10.11 of the test harness has no type the table does not know, so the producer core is driven
 * with rows as the snapshot reader hands them over (information_schema's type text, the driver's bytes), into a real
 * Kinesis emulator.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateStreamCommand,
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
} from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { TableShape } from '../../containers/producer/src/event-encoder';
import { KinesisSink } from '../../containers/producer/src/kinesis-sink';
import { EmfMetrics } from '../../containers/producer/src/metrics';
import { type CapturedRow, ProducerCore } from '../../containers/producer/src/producer';
import { TableFilter } from '../../containers/producer/src/table-filter';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { waitFor } from '../../local/services/process';
import type { ChangeEvent } from '../../shared/change-event';
import { ProducerMetric } from '../../shared/metrics';
import { isKnownMysqlType, jsonKind, parseMysqlType, warehouseType } from '../../shared/type-mapping';
import { encodeValue } from '../../shared/value-encoding';

describe('the unknown-type fallback in the type table', () => {
  it('maps a type it does not know to text: JSON kind string, VARCHAR(65535) on Redshift, TEXT on PostgreSQL', () => {
    for (const type of ['vector(3)', 'frobnicate', 'frobnicate(7,2) unsigned']) {
      expect(jsonKind(parseMysqlType(type)), type).toBe('string');
      expect(warehouseType(type, 'redshift'), type).toBe('VARCHAR(65535)');
      expect(warehouseType(type, 'postgres'), type).toBe('TEXT');
      expect(isKnownMysqlType(parseMysqlType(type)), type).toBe(false);
    }
  });

  it('knows every type the servers print, so none of them takes the fallback', () => {
    const types = [
      'tinyint(4)',
      'bigint(20) unsigned',
      'decimal(10,2)',
      'float',
      'double',
      'year(4)',
      'char(3)',
      'varchar(255)',
      'longtext',
      "enum('a')",
      "set('a')",
      'date',
      'datetime(6)',
      'timestamp',
      'time(3)',
      'bit(10)',
      'blob',
      'varbinary(16)',
      'json',
      'geometry',
      'point',
      'geomcollection',
      'uuid',
      'inet4',
      'inet6',
    ];
    for (const type of types) expect(isKnownMysqlType(parseMysqlType(type)), type).toBe(true);
  });

  it('encodes its values losslessly as text: bytes as lower-case hex, text as is, numbers as decimal text', () => {
    const bytes = Buffer.from('0000803f00000040cdcc4c40', 'hex'); // vector(3) [1, 2, 3.2] as float32 LE
    expect(encodeValue('vector(3)', bytes)).toBe('0000803f00000040cdcc4c40');
    expect(encodeValue('vector(3)', Buffer.alloc(0))).toBe('');
    expect(encodeValue('frobnicate', 'Grüße, "x"')).toBe('Grüße, "x"');
    expect(encodeValue('frobnicate', 0.1)).toBe('0.1');
    expect(encodeValue('frobnicate', 18446744073709551615n)).toBe('18446744073709551615');
    expect(encodeValue('frobnicate', null)).toBeNull();
  });
});

const dir = mkdtempSync(join(tmpdir(), 'cdc-unknown-'));
let kinesisEmu: Emulator;
let kinesis: KinesisClient;

beforeAll(async () => {
  kinesisEmu = await startEmulator('kinesis');
  kinesis = new KinesisClient(localAwsClientConfig(kinesisEmu.endpoint));
  await kinesis.send(new CreateStreamCommand({ StreamName: 'u', ShardCount: 1 }));
  await waitFor('the stream', async () => {
    const d = await kinesis.send(new DescribeStreamCommand({ StreamName: 'u' }));
    return d.StreamDescription?.StreamStatus === 'ACTIVE';
  });
});
afterAll(async () => {
  await kinesisEmu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function stream(): Promise<ChangeEvent[]> {
  const desc = await kinesis.send(new DescribeStreamCommand({ StreamName: 'u' }));
  const shardId = desc.StreamDescription!.Shards![0]!.ShardId!;
  const it = await kinesis.send(
    new GetShardIteratorCommand({ StreamName: 'u', ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }),
  );
  const res = await kinesis.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator!, Limit: 10_000 }));
  return (res.Records ?? []).map((r) => JSON.parse(Buffer.from(r.Data!).toString()) as ChangeEvent);
}

describe('the producer with a column type it does not know', () => {
  it('sends that table and every other table, counts UnknownTypeValues and warns once per column', async () => {
    const metricLines: string[] = [];
    const metrics = new EmfMetrics('test', 'test', (l) => metricLines.push(l));
    const filter = new TableFilter({
      include: ['shop.*'],
      exclude: [],
      excludeColumns: [],
      hashColumns: [],
      maskColumns: [],
    });
    let core: ProducerCore;
    const sink = new KinesisSink({ client: kinesis, streamName: 'u', onAcked: (low) => core.acked(low) });
    core = new ProducerCore({
      serverId: 1,
      filter,
      sink,
      partitionKeyMode: 'table',
      metrics,
      maxInFlight: 1000,
      pause: () => undefined,
      resume: () => undefined,
    });
    const vectors: TableShape = {
      db: 'shop',
      table: 'embeddings',
      columns: [
        { name: 'id', type: 'int' },
        { name: 'v', type: 'vector(3)' },
      ],
      pk: ['id'],
    };
    const orders: TableShape = {
      db: 'shop',
      table: 'orders',
      columns: [
        { name: 'id', type: 'int' },
        { name: 'note', type: 'varchar(20)' },
      ],
      pk: ['id'],
    };
    const row = (shape: TableShape, op: CapturedRow['op'], after: Record<string, unknown>, pos: number) =>
      core.onRow({ shape, op, before: null, after, file: 'mysql-bin.000001', pos, row: 0, gtid: null, commitMs: 1 });
    const logged: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      logged.push(String(chunk));
      return true;
    });
    try {
      row(vectors, 'read', { id: 1, v: Buffer.from('0000803f00000040cdcc4c40', 'hex') }, 100);
      row(orders, 'insert', { id: 1, note: 'flows' }, 200);
      row(vectors, 'insert', { id: 2, v: Buffer.from('000000000000803f00000000', 'hex') }, 300);
      row(vectors, 'insert', { id: 3, v: null }, 400);
    } finally {
      write.mockRestore();
    }
    await core.drain();
    metrics.flush();

    // Order is kept per partition key (the table), not across tables: several calls are in flight. Source order is position order.
    const events = (await stream()).sort((a, b) => (a.position < b.position ? -1 : 1));
    expect(events.map((e) => [e.table, e.after])).toEqual([
      ['embeddings', { id: 1, v: '0000803f00000040cdcc4c40' }],
      ['orders', { id: 1, note: 'flows' }],
      ['embeddings', { id: 2, v: '000000000000803f00000000' }],
      ['embeddings', { id: 3, v: null }],
    ]);
    // The event keeps the server's type text: a consumer sees what the column is.
    expect(events[0]!.columns).toEqual(vectors.columns);
    const warnings = logged.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 'WARN');
    expect(warnings).toEqual([
      expect.objectContaining({ db: 'shop', table: 'embeddings', column: 'v', type: 'vector(3)' }),
    ]);
    const counted = metricLines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(counted.map((m) => m[ProducerMetric.UnknownTypeValues])).toEqual([2]);
  });
});
