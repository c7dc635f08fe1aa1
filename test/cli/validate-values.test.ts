/**
 * `npx cdc validate` compares canonical values of every type (cli/src/row-text.ts), never a lossy text of them: a real
 * MariaDB source, a real PostgreSQL replica built by the real merge from the producer's own encoding of the source
 * rows (what a faithful pipeline delivers), then single values corrupted in the replica, one type at a time. Spatial
 * values used to be read as objects and compared as "[object Object]" on both sides: identical whatever the replica
 * held.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ValidateReport, validate } from '../../cli/src/commands/validate';
import type { Output } from '../../cli/src/output';
import type { Target } from '../../cli/src/target';
import { buildEvent, encodeImage } from '../../containers/producer/src/event-encoder';
import { SnapshotReader } from '../../containers/producer/src/snapshot-reader';
import { mergeEvents, resetSchemaCache } from '../../lambdas/merge/src/merge';
import { PostgresWarehouse } from '../../lambdas/merge/src/postgres-client';
import { type MariaDbServer, startMariaDb } from '../../local/services/mariadb';
import { type PostgresServer, startPostgres } from '../../local/services/postgres';

const dir = mkdtempSync(join(tmpdir(), 'cdc-validate-'));
let maria: MariaDbServer;
let postgres: PostgresServer;
let pool: pg.Pool;
let db: mysql.Connection;
let target: Target;

beforeAll(async () => {
  [maria, postgres] = await Promise.all([
    startMariaDb({ dir: join(dir, 'mariadb') }),
    startPostgres({ dir: join(dir, 'pg') }),
  ]);
  pool = new pg.Pool({ connectionString: postgres.url, max: 2 });
  db = await mysql.createConnection({ ...maria, multipleStatements: true });
  await db.query(`CREATE DATABASE shop; CREATE TABLE shop.vals (
    id INT PRIMARY KEY, g GEOMETRY NULL, p POINT NULL, j JSON NULL, b VARBINARY(16) NULL, d DECIMAL(12,2) NULL,
    ts TIMESTAMP(6) NULL, dt DATETIME(6) NULL, f FLOAT NULL, x DOUBLE NULL, bits BIT(5) NULL, tm TIME(6) NULL,
    s VARCHAR(20) NULL, dd DATE NULL)`);
  await db.query("SET time_zone = '+00:00'");
  for (let id = 1; id <= 8; id++) {
    await db.query(
      `INSERT INTO shop.vals VALUES (?, ST_GeomFromText(?, 4326), POINT(?, 2.5), ?, ?, ?, ?, ?, ?, ?, b'10101', ?, ?, ?)`,
      [
        id,
        `LINESTRING(${id} 0, ${id} 1.5, 0 0)`,
        id,
        `{"b": [1, 2.50, "x|y"], "a": {"n": ${id}.10}}`,
        Buffer.from([0, id, 255]),
        `${id}2.50`,
        `2026-11-23 10:00:0${id}.123456`,
        `2026-11-23 10:00:0${id}.000001`,
        0.1 * id,
        1 / 3 + id,
        `-${id}:00:00.5`,
        `a|b ${id}`,
        '2026-02-28',
      ],
    );
  }
  await db.query("INSERT INTO shop.vals (id, s) VALUES (9, NULL), (10, '∅')");
  // The replica, as a faithful pipeline leaves it: the producer's encoding of every row, merged by the real merge.
  const reader = await SnapshotReader.connect({ ...maria, rawSpatial: true });
  const shape = (await reader.describe('shop', 'vals'))!;
  const rows = await reader.readChunk(shape, undefined, undefined, 100);
  await reader.close();
  const src = { serverId: 1, file: 'mysql-bin.000001', pos: 1000, gtid: null, tx: 't', commitMs: Date.now() };
  const events = rows.map((r, i) => buildEvent(shape, 'read', null, encodeImage(shape, r), src, i, shape.columns));
  resetSchemaCache();
  const ctx = {
    warehouse: new PostgresWarehouse(pool),
    naming: { stateSchema: 'cdc' },
    historyTables: new Set<string>(),
    sleep: async () => undefined,
  };
  await mergeEvents(events, 'replica', ctx);
  // Only what validate uses of a target.
  target = {
    source: { host: maria.host, port: maria.port, user: maria.user, password: maria.password },
    warehouse: ctx.warehouse,
    changelogSchema: 'cdc',
    replicaSchema: (d: string) => d,
  } as unknown as Target;
});
afterAll(async () => {
  await db?.end();
  await pool?.end();
  await Promise.all([maria?.stop(), postgres?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function check(): Promise<{ code: number; report: ValidateReport }> {
  let report: ValidateReport | undefined;
  const out: Output = {
    json: true,
    say: () => undefined,
    result: (doc) => {
      report = doc as ValidateReport;
    },
    progress: () => undefined,
    done: () => undefined,
  };
  const code = await validate(target, { db: 'shop', table: 'vals', chunkRows: 4, lagWindowS: 0 }, out);
  return { code, report: report! };
}

const changed = (r: ValidateReport) =>
  r.differences.flatMap((d) => d.changed).sort((a, b) => Number(a.key) - Number(b.key));

describe('validate compares canonical values of every type', () => {
  it('finds a faithful replica identical, comparing every column', async () => {
    const { code, report } = await check();
    expect(report.differences).toEqual([]);
    expect(code).toBe(0);
    expect(report.skipped).toEqual([]);
    expect(report.compared).toEqual(['id', 'g', 'p', 'j', 'b', 'd', 'ts', 'dt', 'f', 'x', 'bits', 'tm', 's', 'dd']);
  });

  it('reports each corrupted value with its key and column: spatial, JSON, binary, decimal, timestamp and more', async () => {
    const corrupt = [
      // A geometry's last coordinate byte, and the text the old producer wrote for every geometry.
      `UPDATE shop.vals SET g = overlay(g placing '\\x40'::bytea from length(g)) WHERE id = 1`,
      `UPDATE shop.vals SET p = convert_to('[object Object]', 'UTF8') WHERE id = 2`,
      // A JSON number, equal as a double but not as a value: 3.10 → 3.1000000000000001.
      `UPDATE shop.vals SET j = '{"b": [1, 2.5, "x|y"], "a": {"n": 3.1000000000000001}}' WHERE id = 3`,
      `UPDATE shop.vals SET b = '\\x000400'::bytea WHERE id = 4`,
      `UPDATE shop.vals SET d = 52.51 WHERE id = 5`,
      `UPDATE shop.vals SET ts = ts + interval '2 hours' WHERE id = 6`,
      // A NULL where the source has '∅', and '∅' where it has NULL: never the same value.
      `UPDATE shop.vals SET s = NULL WHERE id = 10`,
      `UPDATE shop.vals SET s = '∅' WHERE id = 9`,
      `UPDATE shop.vals SET tm = '-7:00:00.500001' WHERE id = 7`,
    ];
    for (const sql of corrupt) await pool.query(sql);
    const { code, report } = await check();
    expect(code).toBe(1);
    expect(changed(report)).toEqual([
      { key: '1', columns: ['g'] },
      { key: '2', columns: ['p'] },
      { key: '3', columns: ['j'] },
      { key: '4', columns: ['b'] },
      { key: '5', columns: ['d'] },
      { key: '6', columns: ['ts'] },
      { key: '7', columns: ['tm'] },
      { key: '9', columns: ['s'] },
      { key: '10', columns: ['s'] },
    ]);
  });

  it('reads a replica key the source lacks and a missing one', async () => {
    await pool.query("INSERT INTO shop.vals (id, s) VALUES (11, 'extra')");
    await pool.query('DELETE FROM shop.vals WHERE id = 8');
    const { report } = await check();
    expect(report.differences.flatMap((d) => d.extra)).toEqual(['11']);
    expect(report.differences.flatMap((d) => d.missing)).toEqual(['8']);
  });
});
