/**
 * Snapshots and backfills in the real producer (child process) against a real MariaDB, kinesalite and dynalite:
 * values identical to the binlog's, convergence under concurrent writes (low/high watermarks), resume after SIGKILL
 * from the last finished chunk, and tables added to the capture rules.
 */
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import Ajv2020 from 'ajv/dist/2020';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeImage } from '../../containers/producer/src/event-encoder';
import { requestBackfill, requestResync } from '../../containers/producer/src/signal-table';
import { parseState, type SnapshotJob } from '../../containers/producer/src/snapshot-progress';
import { chunkProtocol, SnapshotReader } from '../../containers/producer/src/snapshot-reader';
import { sleep, waitFor } from '../../local/services/process';
import { type ChangeEvent, isTableOp, type RowImage } from '../../shared/change-event';
import schema from '../../shared/change-event.schema.json';
import { type ProducerHarness, type ProducerProcess, startProducerHarness, waitForLog } from './support/harness';

let h: ProducerHarness;
const validate = new Ajv2020({ strict: false }).compile(schema);
const SIGNALS = { db: 'cdc', table: 'cdc_signal' };

beforeAll(async () => {
  h = await startProducerHarness();
  await h.db.query('CREATE DATABASE shop');
});
afterAll(async () => {
  await h?.close();
});

async function events(table: string, op: string, n: number, timeoutMs = 60_000): Promise<ChangeEvent[]> {
  return waitFor(
    `${n} ${op} events of ${table}`,
    async () => {
      const all = (await h.readAll()).filter((e) => e.table === table && e.op === op);
      return all.length >= n ? all : undefined;
    },
    timeoutMs,
  );
}

async function jobs(pipeline: string): Promise<SnapshotJob[]> {
  const item = await h.dynamo.send(
    new GetItemCommand({ TableName: 'cdc-checkpoints', Key: { pk: { S: pipeline }, sk: { S: 'producer' } } }),
  );
  return [...parseState(item.Item?.snapshotProgress?.S).jobs];
}

async function stopped(p: ProducerProcess): Promise<void> {
  p.child.kill('SIGTERM');
  expect(await p.exited, p.output().slice(-2000)).toBe(0);
}

/** Replays events in position order into the rows they leave (key → after image). */
function replay(list: readonly ChangeEvent[], key: (img: RowImage) => string): Map<string, RowImage> {
  const rows = new Map<string, RowImage>();
  for (const e of [...list].sort((a, b) => (a.position < b.position ? -1 : 1))) {
    if (isTableOp(e.op)) continue; // this table's source rows are all known: its range events delete nothing here
    if (e.op === 'delete') rows.delete(key(e.before!));
    else rows.set(key(e.after!), e.after!);
  }
  return rows;
}

describe('snapshots and backfills in the producer', () => {
  it('emits read events with exactly the values and column types the binlog gives the same rows', async () => {
    await h.db.query(`CREATE TABLE shop.edge (
      id BIGINT UNSIGNED PRIMARY KEY, d DECIMAL(65,30), d2 DECIMAL(12,2), dt DATETIME(6), dt0 DATETIME, ts TIMESTAMP(6) NULL,
      tm TIME(6), tm3 TIME(3), e ENUM('a','b'), s SET('x','y','z'), b BLOB, bi BIT(10), v VARCHAR(20), c CHAR(5), n INT NULL,
      f DOUBLE, fl FLOAT, j JSON, y YEAR, dd DATE, vb VARBINARY(10), bn BINARY(4), ti TINYINT UNSIGNED, bg BIGINT, mi MEDIUMINT)`);
    const [[m]] = (await h.db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string; Position: number }]];
    await h.db.query("SET time_zone = '+02:00'");
    await h.db.query(
      `INSERT INTO shop.edge VALUES (18446744073709551615, -12345678901234567890123456789012345.123456789012345678901234567890,
        12.5, '2026-11-23 23:59:59.123456', '2026-11-23 23:59:59', '2026-11-23 01:02:03.654321', '-838:59:59.5', '12:00:00',
        'b', 'x,z', x'00ff10', b'1000000001', 'Grüße 🚚', 'ab', NULL, 0.1, 0.1, '{"a":[1,2.5]}', 2024, '2026-02-28', x'0102',
        x'01', 255, -9007199254740993, -5)`,
    );
    await h.db.query(
      `INSERT INTO shop.edge (id, dt, ts, tm, f, fl, dd) VALUES
        (2, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00', '00:00:00', 1.0000000000000002, 3.4028234e38, '0000-00-00'),
        (3, '2026-01-01 00:00:00.100000', NULL, '-00:00:01.000001', 123456789.123456789, 1.17549435e-38, NULL)`,
    );
    await h.db.query("SET time_zone = '+00:00'");
    const p = h.startProducer({ START_FROM: `file:${m.File}:${m.Position}`, SNAPSHOT_CHUNK_ROWS: '2' });
    await waitForLog(p, /reading the binlog/);
    const inserts = await events('edge', 'insert', 3);
    await requestBackfill(h.db, SIGNALS, { table: 'shop.edge' });
    const reads = await events('edge', 'read', 3);
    for (const e of reads) expect(validate(e), JSON.stringify(validate.errors)).toBe(true);
    for (const ins of inserts) {
      const read = reads.find((r) => r.after!.id === ins.after!.id)!;
      expect(read.after).toEqual(ins.after);
      expect(read.columns).toEqual(ins.columns);
      expect(read.pk).toEqual(['id']);
      expect(read.before).toBeNull();
      expect(read.position > ins.position).toBe(true);
    }
    // Two chunks of two rows at most: two high watermarks, so two distinct positions.
    expect(new Set(reads.map((r) => r.position.slice(0, 19))).size).toBe(2);
    // The signal table itself never appears in the stream.
    expect((await h.readAll()).some((e) => e.table === 'cdc_signal')).toBe(false);
    await stopped(p);
  });

  it('reads a table without FLOAT, DOUBLE or spatial columns through the text protocol, with the binlog events exactly', async () => {
    await h.db.query(`CREATE TABLE shop.edge_text (
      id BIGINT UNSIGNED PRIMARY KEY, d DECIMAL(65,30), d2 DECIMAL(12,2), dt DATETIME(6), dt0 DATETIME, ts TIMESTAMP(6) NULL,
      tm TIME(6), tm3 TIME(3), e ENUM('a','b'), s SET('x','y','z'), b BLOB, bi BIT(10), v VARCHAR(20), c CHAR(5), n INT NULL,
      j JSON, y YEAR, dd DATE, vb VARBINARY(10), bn BINARY(4), ti TINYINT UNSIGNED, bg BIGINT, mi MEDIUMINT, u UUID,
      i4 INET4, i6 INET6, t TEXT, bo BOOLEAN, si SMALLINT, dt3 DATETIME(3))`);
    const described = await SnapshotReader.connect(h.maria);
    const shape = (await described.describe('shop', 'edge_text'))!;
    await described.close();
    expect(chunkProtocol(shape)).toBe('text');
    expect(chunkProtocol({ columns: [...shape.columns, { name: 'f', type: 'float' }] })).toBe('binary');
    const [[m]] = (await h.db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string; Position: number }]];
    await h.db.query("SET time_zone = '+02:00'");
    await h.db.query(
      `INSERT INTO shop.edge_text VALUES (18446744073709551615, -12345678901234567890123456789012345.123456789012345678901234567890,
        12.5, '2026-11-23 23:59:59.123456', '2026-11-23 23:59:59', '2026-11-23 01:02:03.654321', '-838:59:59.5', '12:00:00',
        'b', 'x,z', x'00ff10', b'1000000001', 'Grüße 🚚', 'ab', NULL, '{"a":[1,2.5]}', 2024, '2026-02-28', x'0102',
        x'01', 255, -9007199254740993, -5, '123e4567-e89b-12d3-a456-426614174000', '10.0.0.1', '2001:db8::ff00:42:8329',
        'it''s a \\\\ back', TRUE, -32768, '2026-01-01 00:00:00.100')`,
    );
    await h.db.query(
      `INSERT INTO shop.edge_text (id, dt, ts, tm, dd, y, bg, dt3, bi) VALUES
        (9007199254740992, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00', '00:00:00', '0000-00-00', 0, 9007199254740993, '2026-01-01 00:00:00', b'0'),
        (9007199254740993, '2026-01-01 00:00:00.100000', NULL, '-00:00:01.000001', NULL, 1901, NULL, NULL, NULL),
        (2, '0000-00-00 00:00:00.000000', '1970-01-01 02:00:01', '838:59:59', '9999-12-31', 2155, 0, '9999-12-31 23:59:59.999', b'1111111111')`,
    );
    await h.db.query("SET time_zone = '+00:00'");
    const p = h.startProducer({ START_FROM: `file:${m.File}:${m.Position}`, SNAPSHOT_CHUNK_ROWS: '2' });
    await waitForLog(p, /reading the binlog/);
    const inserts = await events('edge_text', 'insert', 4);
    await requestBackfill(h.db, SIGNALS, { table: 'shop.edge_text' });
    const reads = await events('edge_text', 'read', 4);
    for (const e of reads) expect(validate(e), JSON.stringify(validate.errors)).toBe(true);
    for (const ins of inserts) {
      const read = reads.find((r) => r.after!.id === ins.after!.id)!;
      expect(read.after, `row ${String(ins.after!.id)}`).toEqual(ins.after);
      expect(read.columns).toEqual(ins.columns);
    }
    // Two chunks of two rows: the second one is read after the key 2^53 (a BIGINT travels as text, and a literal
    // compared as a double would skip 2^53 + 1).
    expect(new Set(reads.map((r) => r.position.slice(0, 19))).size).toBe(2);
    await stopped(p);
  });

  it('sends the binlog events exactly when snapshot rows are encoded on the encode worker (SNAPSHOT_ENCODE_WORKER=on)', async () => {
    await h.db.query(`CREATE TABLE shop.edge_worker (
      id BIGINT UNSIGNED PRIMARY KEY, d DECIMAL(65,30), dt DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6),
      e ENUM('a','b'), b BLOB, bi BIT(10), v VARCHAR(20), j JSON, y YEAR, u UUID, f FLOAT)`);
    const [[m]] = (await h.db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string; Position: number }]];
    await h.db.query(
      `INSERT INTO shop.edge_worker VALUES
        (18446744073709551615, -1234567890.123456789, '2026-11-23 23:59:59.123456', '2026-11-23 01:02:03.654321',
         '-838:59:59.5', 'b', x'00ff10', b'1000000001', 'Grüße 🚚 "q"', '{"a":[1,2.5]}', 2024,
         '123e4567-e89b-12d3-a456-426614174000', 0.1),
        (9007199254740993, NULL, '0000-00-00 00:00:00.000000', NULL, '00:00:00', NULL, NULL, b'0', 'it''s \\\\', NULL, 0, NULL,
         3.4028234e38),
        (2, 0, '2026-01-01 00:00:00.100000', '1970-01-01 00:00:01', '838:59:59', 'a', x'', NULL, '', '[]', 1901, NULL, NULL)`,
    );
    const p = h.startProducer({
      PIPELINE_ID: 'worker',
      CAPTURE_INCLUDE: 'shop.edge_worker',
      START_FROM: `file:${m.File}:${m.Position}`,
      SNAPSHOT_MODE: 'never',
      SNAPSHOT_CHUNK_ROWS: '2',
      SNAPSHOT_ENCODE_WORKER: 'on',
    });
    await waitForLog(p, /reading the binlog.*"snapshotEncode":"on"/);
    const inserts = await events('edge_worker', 'insert', 3);
    await requestBackfill(h.db, SIGNALS, { table: 'shop.edge_worker' });
    const reads = await events('edge_worker', 'read', 3);
    for (const e of reads) expect(validate(e), JSON.stringify(validate.errors)).toBe(true);
    for (const ins of inserts) {
      const read = reads.find((r) => r.after!.id === ins.after!.id)!;
      expect(read.after, `row ${String(ins.after!.id)}`).toEqual(ins.after);
      expect(read.columns).toEqual(ins.columns);
      expect(read.before).toBeNull();
      expect(read.position > ins.position).toBe(true);
    }
    await stopped(p);
  });

  it('reads every row once in chunks after text and binary keys with quotes, backslashes, newlines and emoji', async () => {
    await h.db.query(
      'SET SESSION sql_log_bin = 0; CREATE TABLE shop.tkeys (k VARCHAR(20), b VARBINARY(4), n INT, PRIMARY KEY (k, b)); ' +
        'SET SESSION sql_log_bin = 1',
    );
    const keys = ['', "'", "a'b", 'a\\b', '\\', '"', 'Grüße', '🚚', 'x\n', '%_'];
    let n = 0;
    await h.db.query('SET SESSION sql_log_bin = 0');
    for (const k of keys) {
      for (const b of [Buffer.from([]), Buffer.from([0x27]), Buffer.from([0x5c, 0x00])]) {
        await h.db.query('INSERT INTO shop.tkeys VALUES (?, ?, ?)', [k, b, n++]);
      }
    }
    await h.db.query('SET SESSION sql_log_bin = 1');
    const p = h.startProducer({ SNAPSHOT_CHUNK_ROWS: '2' });
    await waitForLog(p, /reading the binlog/);
    await requestBackfill(h.db, SIGNALS, { table: 'shop.tkeys' });
    const reads = await events('tkeys', 'read', n);
    await sleep(500);
    const all = (await h.readAll()).filter((e) => e.table === 'tkeys' && e.op === 'read');
    // Every row once: a key literal that read differently would skip rows or read some twice.
    expect(all.map((e) => e.after!.n).sort((a, b) => (a as number) - (b as number))).toEqual(
      Array.from({ length: n }, (_, i) => i),
    );
    expect(reads.find((e) => e.after!.n === 4)!.after).toMatchObject({
      k: "'",
      b: Buffer.from([0x27]).toString('base64'),
    });
    await stopped(p);
  });

  it('snapshots and backfills when the server reads backslashes literally (sql_mode NO_BACKSLASH_ESCAPES)', async () => {
    // Watermarks and requests are JSON sent escaped (`{\"kind\":…}`): read literally they would not parse, and the
    // snapshot would wait for its high watermark forever.
    await h.db.query(
      "SET SESSION sql_log_bin = 0; CREATE TABLE shop.nbe (id INT PRIMARY KEY, s VARCHAR(20)); INSERT INTO shop.nbe VALUES (1, 'it''s'), (2, 'a\\\\b'), (3, 'c'); SET SESSION sql_log_bin = 1",
    );
    await h.db.query("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')");
    try {
      const p = h.startProducer({ PIPELINE_ID: 'nbe', CAPTURE_INCLUDE: 'shop.nbe', SNAPSHOT_CHUNK_ROWS: '2' });
      const reads = await events('nbe', 'read', 3, 30_000);
      expect(reads.map((e) => e.after).sort((a, b) => (a!.id as number) - (b!.id as number))).toEqual([
        { id: 1, s: "it's" },
        { id: 2, s: 'a\\b' },
        { id: 3, s: 'c' },
      ]);
      // A backfill request from the CLI's function, through a session that has the mode too.
      const cli = await mysql.createConnection({ ...h.maria });
      try {
        expect((await cli.query('SELECT @@SESSION.sql_mode AS m'))[0]).toMatchObject([
          { m: expect.stringContaining('NO_BACKSLASH_ESCAPES') },
        ]);
        await requestBackfill(cli, SIGNALS, { table: 'shop.nbe', pipeline: 'nbe' });
      } finally {
        await cli.end();
      }
      await events('nbe', 'read', 6, 30_000);
      await stopped(p);
    } finally {
      await h.db.query("SET GLOBAL sql_mode = REPLACE(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES', '')");
    }
  });

  it('snapshots and streams UUID, INET4, INET6 and every spatial type as identical events: the server text and bytes', async () => {
    const [[version]] = (await h.db.query('SELECT VERSION() AS v')) as unknown as [[{ v: string }]];
    expect(version.v).toMatch(/^10\.(1[1-9])|^1[1-9]\./); // UUID 10.7+, INET4 10.10+: the harness has all three
    await h.db.query(`CREATE DATABASE geo; CREATE TABLE geo.typed (id INT PRIMARY KEY, u UUID, i4 INET4, i6 INET6,
      g GEOMETRY, pt POINT, ls LINESTRING, pg POLYGON, mpt MULTIPOINT, mls MULTILINESTRING, mpg MULTIPOLYGON,
      gc GEOMETRYCOLLECTION)`);
    await h.db.query(`INSERT INTO geo.typed VALUES
      (1, UUID(), '10.0.0.1', '2001:db8::ff00:42:8329', ST_GeomFromText('POINT(13.4 52.5)', 4326),
        ST_GeomFromText('POINT(-1.5 1e300)'), ST_GeomFromText('LINESTRING(0 0, 1 1, 2 3)', 3857),
        ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 1))'),
        ST_GeomFromText('MULTIPOINT(1 1, 2 2)'), ST_GeomFromText('MULTILINESTRING((0 0, 1 1), (2 2, 3 3))'),
        ST_GeomFromText('MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))'),
        ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1), POLYGON((0 0, 1 0, 1 1, 0 0)))')),
      (2, '123e4567-e89b-12d3-a456-426614174000', '255.255.255.255', '::ffff:1.2.3.4',
        ST_GeomFromText('GEOMETRYCOLLECTION(MULTIPOINT(1 1), GEOMETRYCOLLECTION(POINT(2 2)))'), NULL, NULL, NULL,
        NULL, NULL, NULL, ST_GeomFromText('GEOMETRYCOLLECTION EMPTY')),
      (3, '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (4, 'ffffffff-ffff-4fff-bfff-ffffffffffff', '1.2.3.4', '::1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (5, UUID(), '127.0.0.1', '::1.2.3.4', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (6, UUID(), '192.168.1.255', '1:0:0:1:0:0:0:1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (7, NULL, NULL, 'fe80::1:0:0:0', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (8, NULL, NULL, '2001:db8:0:0:1:0:0:1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (9, NULL, NULL, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (10, NULL, NULL, '1:0:0:1:0:0:1:1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`);
    // A UUID key read in chunks: the keyset pagination compares UUIDs in the server's order, with the server's text.
    await h.db.query(
      'CREATE TABLE geo.ukeys (u UUID PRIMARY KEY, n INT); INSERT INTO geo.ukeys SELECT UUID(), seq FROM geo.seq_1_to_9',
    );
    const [ukeys] = (await h.db.query('SELECT CAST(u AS CHAR) AS u, n FROM geo.ukeys')) as unknown as [
      { u: string; n: number }[],
    ];
    const spatial = ['g', 'pt', 'ls', 'pg', 'mpt', 'mls', 'mpg', 'gc'];
    const [truth] = (await h.db.query(
      `SELECT id, CAST(u AS CHAR) AS u, CAST(i4 AS CHAR) AS i4, CAST(i6 AS CHAR) AS i6, ${spatial
        .map((c) => `HEX(${c}) AS ${c}, HEX(ST_AsWKB(${c})) AS ${c}_wkb, ST_SRID(${c}) AS ${c}_srid`)
        .join(', ')} FROM geo.typed ORDER BY id`,
    )) as unknown as [Record<string, string | number | null>[]];

    // Initial snapshot (the path that failed with "unsupported MySQL column type"), then the same rows from the binlog.
    const p = h.startProducer({ PIPELINE_ID: 'types', CAPTURE_INCLUDE: 'geo.*', SNAPSHOT_CHUNK_ROWS: '4' });
    const withLog = <T>(wait: Promise<T>) =>
      wait.catch((err: Error) => {
        throw new Error(`${err.message}; producer output: ${p.output().slice(-3000)}`);
      });
    const reads = await withLog(events('typed', 'read', 10, 30_000));
    const keyed = await withLog(events('ukeys', 'read', 9, 30_000));
    expect(keyed.map((e) => e.after).sort((a, b) => (a!.n as number) - (b!.n as number))).toEqual(
      [...ukeys].sort((a, b) => a.n - b.n),
    );
    expect(keyed).toHaveLength(9);
    await h.db.query('DELETE FROM geo.typed');
    const deletes = await withLog(events('typed', 'delete', 10, 30_000));
    await stopped(p);

    const byId = (list: ChangeEvent[], img: 'after' | 'before') =>
      new Map(list.map((e) => [e[img]!.id as number, e[img]!]));
    const read = byId(reads, 'after');
    const streamed = byId(deletes, 'before');
    for (const e of [...reads, ...deletes]) expect(validate(e), JSON.stringify(validate.errors)).toBe(true);
    expect(deletes[0]!.columns).toEqual(reads[0]!.columns);
    expect(reads[0]!.columns.filter((c) => c.name !== 'id').map((c) => c.type)).toEqual([
      'uuid',
      'inet4',
      'inet6',
      'geometry',
      'point',
      'linestring',
      'polygon',
      'multipoint',
      'multilinestring',
      'multipolygon',
      'geomcollection', // the binlog's spelling; MariaDB's information_schema says geometrycollection
    ]);
    for (const row of truth) {
      const id = row.id as number;
      expect(streamed.get(id), `row ${id}`).toEqual(read.get(id));
      const img = read.get(id)!;
      expect({ u: img.u, i4: img.i4, i6: img.i6 }, `row ${id}`).toEqual({ u: row.u, i4: row.i4, i6: row.i6 });
      for (const c of spatial) {
        const v = img[c] as string | null;
        const hex = v === null ? null : Buffer.from(v, 'base64').toString('hex').toUpperCase();
        // The stored value: SRID (4 bytes, little-endian), then the WKB.
        expect(hex, `${c} of row ${id}`).toBe(row[c]);
        if (hex !== null) {
          expect(hex.slice(8), `${c} of row ${id}`).toBe(row[`${c}_wkb`]);
          expect(Buffer.from(v!, 'base64').readUInt32LE(0)).toBe(row[`${c}_srid`]);
        }
      }
    }
    expect(read.get(1)!.g).not.toBeNull();
    expect(read.get(1)!.ls).not.toBeNull();
  });

  it('follows each backfill chunk with its key range and low watermark, and ends the job with the whole table', async () => {
    await h.db.query(
      'SET SESSION sql_log_bin = 0; CREATE TABLE shop.ranged (a INT, b BIGINT UNSIGNED, v INT, PRIMARY KEY (a, b)); ' +
        'INSERT INTO shop.ranged VALUES (1, 1, 0), (1, 2, 0), (2, 1, 0), (2, 18446744073709551615, 0), (3, 0, 0); ' +
        'SET SESSION sql_log_bin = 1',
    );
    const p = h.startProducer({ SNAPSHOT_CHUNK_ROWS: '2' });
    await waitForLog(p, /reading the binlog/);
    await requestBackfill(h.db, SIGNALS, { table: 'shop.ranged' });
    const ranges = await events('ranged', 'range', 4);
    const reads = await events('ranged', 'read', 5);
    for (const e of ranges) expect(validate(e), JSON.stringify(validate.errors)).toBe(true);
    // Chunks of two keys: (-∞, (1,2)], ((1,2), (2,max)], ((2,max), +∞); then the whole table from the first low mark.
    expect(ranges.map((e) => [e.change!.range!.after, e.change!.range!.upto])).toEqual([
      [null, { a: 1, b: '2' }],
      [
        { a: 1, b: '2' },
        { a: 2, b: '18446744073709551615' },
      ],
      [{ a: 2, b: '18446744073709551615' }, null],
      [null, null],
    ]);
    expect(ranges.every((e) => e.pk.join() === 'a,b' && e.before === null && e.after === null)).toBe(true);
    for (const [i, r] of ranges.slice(0, 3).entries()) {
      // At its chunk's high watermark, after the chunk's reads; its low watermark before them.
      const chunkReads = reads.slice(i * 2, i * 2 + 2);
      for (const read of chunkReads) {
        expect(read.position.slice(0, 19)).toBe(r.position.slice(0, 19));
        expect(read.position < r.position).toBe(true);
        expect(r.change!.range!.low_position < read.position).toBe(true);
      }
    }
    expect(ranges[3]!.change!.range!.low_position).toBe(ranges[0]!.change!.range!.low_position);
    expect(ranges[3]!.position > ranges[2]!.position).toBe(true);
    await stopped(p);
  });

  it('reads a table of large rows in chunks of SNAPSHOT_CHUNK_BYTES rather than SNAPSHOT_CHUNK_ROWS, every row once', async () => {
    await h.db.query(
      'SET SESSION sql_log_bin = 0; CREATE TABLE shop.docs (id INT PRIMARY KEY, body LONGTEXT); ' +
        "INSERT INTO shop.docs SELECT seq, REPEAT(CONCAT('doc ', seq, ' '), 10000) FROM shop.seq_1_to_40; " +
        'SET SESSION sql_log_bin = 1',
    );
    // 4096 rows a chunk by count; 60-70 KB a row, so 1 MiB of rows is 16: the first chunk reads 16 (LONGTEXT has no
    // useful bound), and so do the next ones (by the rows read).
    // A pipeline of its own, with no checkpoint: its initial snapshot reads the table.
    const p = h.startProducer({
      PIPELINE_ID: 'docs',
      CAPTURE_INCLUDE: 'shop.docs',
      SNAPSHOT_CHUNK_BYTES: String(1024 * 1024),
    });
    const reads = await events('docs', 'read', 40);
    const ranges = await events('docs', 'range', 4);
    expect(reads.map((e) => Number(e.after!.id))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(reads.every((e) => e.after!.body === `doc ${e.after!.id} `.repeat(10_000))).toBe(true);
    expect(ranges.map((e) => [e.change!.range!.after, e.change!.range!.upto])).toEqual([
      [null, { id: 16 }],
      [{ id: 16 }, { id: 32 }],
      [{ id: 32 }, null],
      [null, null],
    ]);
    await stopped(p);
  });

  it('acts on a resync request once: a resync event at the request, then the whole table read after it', async () => {
    await h.db.query(
      'SET SESSION sql_log_bin = 0; CREATE TABLE shop.resynced (a INT, b BIGINT UNSIGNED, v INT, PRIMARY KEY (a, b)); ' +
        'INSERT INTO shop.resynced VALUES (1, 1, 0), (1, 2, 0), (2, 1, 0), (2, 18446744073709551615, 0), (3, 0, 0); ' +
        'SET SESSION sql_log_bin = 1',
    );
    const p = h.startProducer({ PIPELINE_ID: 'resync', SNAPSHOT_MODE: 'never', SNAPSHOT_CHUNK_ROWS: '2' });
    await waitForLog(p, /reading the binlog/);
    const id = await requestResync(h.db, SIGNALS, { table: 'shop.resynced' });
    const [resync] = await events('resynced', 'resync', 1);
    expect(validate(resync), JSON.stringify(validate.errors)).toBe(true);
    expect(resync!.change).toEqual({ reason: 'requested by npx cdc resync' });
    const done = await waitFor('the resync job', async () =>
      (await jobs('resync')).find((j) => j.id === id && j.status === 'done'),
    );
    expect(done).toMatchObject({ kind: 'resync', rowsRead: 5 });
    const after = (await h.readAll()).filter(
      (e) => e.table === 'resynced' && e.op === 'read' && e.position > resync!.position,
    );
    expect(after.map((e) => [e.after!.a, e.after!.b])).toEqual([
      [1, '1'],
      [1, '2'],
      [2, '1'],
      [2, '18446744073709551615'],
      [3, '0'],
    ]);
    const refused = await requestResync(h.db, SIGNALS, { table: 'elsewhere.t' });
    await waitFor('the refusal', async () =>
      (await jobs('resync')).find((j) => j.id === refused && j.status === 'failed'),
    );
    await stopped(p);
    expect((await h.readAll()).filter((e) => e.op === 'resync')).toHaveLength(1);
  });

  it('converges to the source row by row when the initial snapshot runs under concurrent writes', async () => {
    await h.db.query(
      'CREATE TABLE shop.busy (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40), at DATETIME(6) NOT NULL)',
    );
    await h.db.query(
      "INSERT INTO shop.busy SELECT seq, 0, CONCAT('row ', seq), '2026-11-23 10:00:00.000001' FROM shop.seq_1_to_20000",
    );
    // A pipeline without a checkpoint: snapshot of every captured table, streaming from the binlog's end.
    const p = h.startProducer({ PIPELINE_ID: 'snap', SNAPSHOT_CHUNK_ROWS: '500', LEASE_SECONDS: '3' });
    await waitForLog(p, /snapshot of every captured table/);
    let writes = 0;
    let nextId = 20_001;
    let seed = 42;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const finished = () => /"snapshot of a table finished".*shop\.busy/.test(p.output());
    // Writes spread over the whole key range until the snapshot is done, and a little after.
    let after = 0;
    const started = Date.now();
    while (!finished() || after++ < 20) {
      const r = rand();
      const id = 1 + Math.floor(rand() * 20_000);
      if (r < 0.5)
        await h.db.query('UPDATE shop.busy SET v = v + 1, at = NOW(6) WHERE id BETWEEN ? AND ?', [id, id + 50]);
      else if (r < 0.7) await h.db.query('DELETE FROM shop.busy WHERE id = ?', [id]);
      else if (r < 0.85) await h.db.query("INSERT INTO shop.busy VALUES (?, 1, 'new', NOW(6))", [nextId++]);
      else await h.db.query("REPLACE INTO shop.busy VALUES (?, 7, 'replaced', NOW(6))", [id]);
      writes++;
      // A few hundred statements a second: the stream keeps up, so the snapshot moves on (each chunk waits for
      // the binlog reader to reach its high watermark).
      await sleep(4);
      if (Date.now() - started > 60_000) throw new Error(`the snapshot did not finish: ${p.output().slice(-3000)}`);
    }
    await h.db.query('CREATE TABLE shop.sentinel (id INT PRIMARY KEY)');
    await h.db.query('INSERT INTO shop.sentinel VALUES (1)');
    await events('sentinel', 'insert', 1);

    const all = (await h.readAll()).filter((e) => e.table === 'busy');
    const state = replay(all, (img) => String(img.id));
    const reader = await SnapshotReader.connect(h.maria);
    const shape = (await reader.describe('shop', 'busy'))!;
    const source = (await reader.readChunk(shape, undefined, undefined, 1_000_000)).map((r) => encodeImage(shape, r));
    await reader.close();
    expect(source.length).toBeGreaterThan(15_000);
    const mismatches = source.filter((row) => JSON.stringify(state.get(String(row.id))) !== JSON.stringify(row));
    expect(mismatches.slice(0, 3)).toEqual([]);
    expect(state.size).toBe(source.length);
    const skipped = [...p.output().matchAll(/"SnapshotRowsSkipped":(\d+)/g)].reduce((n, x) => n + Number(x[1]), 0);
    process.stderr.write(
      `snapshot under load: ${writes} concurrent writes, ${all.filter((e) => e.op === 'read').length} read events, ${skipped} chunk rows dropped (changed inside their window)\n`,
    );
    const done = (await jobs('snap')).find((j) => j.id === 'initial:shop.busy')!;
    expect(done).toMatchObject({ status: 'done', kind: 'initial', chunks: expect.any(Number) });
    expect(done.chunks).toBeGreaterThanOrEqual(40);
    await stopped(p);
  });

  it('resumes an interrupted backfill after SIGKILL from the last finished chunk', async () => {
    // Rows the binlog never saw: only a backfill brings them.
    await h.db.query(
      'SET SESSION sql_log_bin = 0; CREATE TABLE shop.big (id INT PRIMARY KEY, payload VARCHAR(64)); ' +
        "INSERT INTO shop.big SELECT seq, CONCAT('payload ', seq) FROM shop.seq_1_to_20000; SET SESSION sql_log_bin = 1",
    );
    let p = h.startProducer({
      PIPELINE_ID: 'snap',
      SNAPSHOT_CHUNK_ROWS: '250',
      LEASE_SECONDS: '3',
      MAX_IN_FLIGHT_EVENTS: '500',
    });
    await waitForLog(p, /reading the binlog/);
    const id = await requestBackfill(h.db, SIGNALS, { table: 'shop.big' });
    const before = await waitFor(
      'the backfill to be checkpointed part-way',
      async () => {
        const job = (await jobs('snap')).find((j) => j.id === id);
        return job?.status === 'running' && job.rowsRead >= 2000 ? job : undefined;
      },
      60_000,
    );
    p.child.kill('SIGKILL');
    await p.exited;
    const lastKey = Number(before.lastKey![0]);
    expect(lastKey).toBeLessThan(20_000);

    await sleep(3500); // the killed producer's lease runs out
    p = h.startProducer({ PIPELINE_ID: 'snap', SNAPSHOT_CHUNK_ROWS: '250', LEASE_SECONDS: '3' });
    await waitFor(
      'the backfill to finish',
      async () => (await jobs('snap')).find((j) => j.id === id && j.status === 'done'),
      90_000,
    );
    expect(p.output()).toMatch(/"snapshot resumed"/);
    const reads = (await events('big', 'read', 20_000)).map((e) => Number(e.after!.id));
    const count = new Map<number, number>();
    for (const k of reads) count.set(k, (count.get(k) ?? 0) + 1);
    // Every row arrived; rows of chunks finished before the kill were not read again.
    expect([...Array(20_000)].map((_, i) => i + 1).filter((k) => !count.has(k))).toEqual([]);
    expect([...count].filter(([k, n]) => k <= lastKey && n !== 1)).toEqual([]);
    expect(reads.length).toBeLessThan(40_000 - lastKey);
    await stopped(p);
  });

  it('snapshots a table that the capture rules take in after a restart, and only that one', async () => {
    await h.db.query('CREATE DATABASE extra');
    await h.db.query(
      "SET SESSION sql_log_bin = 0; CREATE TABLE extra.t (id INT PRIMARY KEY, name VARCHAR(10)); INSERT INTO extra.t VALUES (1, 'one'), (2, 'two'); SET SESSION sql_log_bin = 1",
    );
    const readsBefore = (await h.readAll()).filter((e) => e.op === 'read').length;
    const p = h.startProducer({ PIPELINE_ID: 'snap', CAPTURE_INCLUDE: 'shop.*,extra.*', LEASE_SECONDS: '3' });
    await waitForLog(p, /tables added to the capture rules/);
    const reads = await events('t', 'read', 2);
    expect(reads.map((e) => e.after)).toEqual([
      { id: 1, name: 'one' },
      { id: 2, name: 'two' },
    ]);
    await waitFor('the job to be saved as done', async () =>
      (await jobs('snap')).some((j) => j.kind === 'added' && j.table === 't' && j.status === 'done'),
    );
    await stopped(p);
    expect((await h.readAll()).filter((e) => e.op === 'read').length).toBe(readsBefore + 2);
  });
});
