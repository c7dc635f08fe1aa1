/**
 * Issue 9 end to end: the operations every production MySQL sees weekly, each on its own table, through the whole
 * local pipeline (real MariaDB, real producer, kinesalite, Firehose stand-in, real merge, PostgreSQL). Every replica
 * must equal its source row by row; then the producer is moved back (`npx cdc set-position`) to before all of it, the
 * same binlog is read and applied a second time, and every replica must still equal its source.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { type Pipeline, startPipeline } from '../../local/pipeline';
import { waitFor } from '../../local/services/process';
import { type CdcRun, runCdc } from '../cli/support/run-cdc';
import { keylessReplicaRows, replicaRows, sourceRows } from './support/compare';

const dir = mkdtempSync(join(tmpdir(), 'cdc-ddl-'));
let p: Pipeline;
let db: mysql.Connection;
let endpoints: string;
let start: string;

function cdc(...args: string[]): Promise<CdcRun> {
  return runCdc(endpoints, ...args);
}

beforeAll(async () => {
  p = await startPipeline({ dir, bufferMs: 300 });
  await p.startProducer();
  endpoints = join(dir, 'endpoints.json');
  writeFileSync(endpoints, JSON.stringify(p.endpoints));
  db = await mysql.createConnection({
    ...p.endpoints.mysql,
    dateStrings: true,
    multipleStatements: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
  await db.query("SET time_zone = '+00:00'");
  const [[end]] = (await db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string; Position: number }]];
  start = `${end.File}:${end.Position}`;
});
/** Set by a failed test: its processes' logs and the servers' data stay, for the failure to be read. */
let keep = false;
afterAll(async () => {
  await db?.end();
  await p?.stop();
  if (keep) process.stderr.write(`kept for the failure: ${dir} (producer.log, stream-apply.log, postgres/)\n`);
  else rmSync(dir, { recursive: true, force: true });
});

/** The source's statements, case by case (issue 9's numbering). */
const CASES: Record<string, string[]> = {
  '1 key-changing UPDATE': [
    'CREATE TABLE k1 (id INT PRIMARY KEY, v VARCHAR(10))',
    "INSERT INTO k1 VALUES (1,'a'),(2,'b'),(3,'c')",
    'UPDATE k1 SET id = id + 10 WHERE id < 3',
    'CREATE TABLE k2 (a INT, b INT, v VARCHAR(10), PRIMARY KEY (a, b))',
    "INSERT INTO k2 VALUES (1,1,'x'),(1,2,'y')",
    'UPDATE k2 SET b = b + 10',
  ],
  '2 TRUNCATE': [
    'CREATE TABLE t2 (id INT PRIMARY KEY, v VARCHAR(10))',
    "INSERT INTO t2 VALUES (1,'old'),(2,'old')",
    'TRUNCATE TABLE t2',
    "INSERT INTO t2 VALUES (2,'new'),(3,'new')",
    'CREATE TABLE l2 (v VARCHAR(10))',
    "INSERT INTO l2 VALUES ('old'),('old')",
    'TRUNCATE l2',
    "INSERT INTO l2 VALUES ('new')",
  ],
  '3 DROP + CREATE with another shape': [
    'CREATE TABLE t3 (id INT PRIMARY KEY, a VARCHAR(10))',
    "INSERT INTO t3 VALUES (1,'a1'),(2,'a2')",
    'DROP TABLE t3',
    'CREATE TABLE t3 (id INT PRIMARY KEY, b INT)',
    'INSERT INTO t3 VALUES (1, 10)',
  ],
  '4 RENAME TABLE': [
    'CREATE TABLE t4 (id INT PRIMARY KEY, v VARCHAR(10))',
    "INSERT INTO t4 VALUES (1,'x'),(2,'y'),(3,'z')",
    'RENAME TABLE t4 TO t4b',
    "UPDATE t4b SET v = 'y2' WHERE id = 2",
  ],
  '5 RENAME COLUMN / CHANGE COLUMN': [
    'CREATE TABLE t5 (id INT PRIMARY KEY, old_name VARCHAR(10), c2 INT)',
    "INSERT INTO t5 VALUES (1,'kept',1),(2,'x',2)",
    'ALTER TABLE t5 RENAME COLUMN old_name TO new_name',
    'ALTER TABLE t5 CHANGE COLUMN c2 c3 INT',
    "UPDATE t5 SET new_name = 'y' WHERE id = 2",
  ],
  '6 ADD COLUMN … DEFAULT': [
    'CREATE TABLE t6 (id INT PRIMARY KEY)',
    'INSERT INTO t6 VALUES (1),(2)',
    "ALTER TABLE t6 ADD COLUMN n INT NOT NULL DEFAULT 7, ADD COLUMN s VARCHAR(5) DEFAULT 'x', ADD COLUMN z INT NOT NULL",
    "INSERT INTO t6 VALUES (3, 1, 'own', 5)",
    'CREATE TABLE l6 (v INT)',
    'INSERT INTO l6 VALUES (1),(1)',
    'ALTER TABLE l6 ADD COLUMN w INT DEFAULT 9',
    'DELETE FROM l6 LIMIT 1',
  ],
  '7 DROP COLUMN': [
    'CREATE TABLE t7 (id INT PRIMARY KEY, gone VARCHAR(10), v INT)',
    "INSERT INTO t7 VALUES (1,'x',1),(2,'y',2)",
    'ALTER TABLE t7 DROP COLUMN gone',
    'UPDATE t7 SET v = 3 WHERE id = 1',
    'CREATE TABLE l7 (gone VARCHAR(10), v INT)',
    "INSERT INTO l7 VALUES ('x',1),('y',2)",
    'ALTER TABLE l7 DROP COLUMN gone',
    'DELETE FROM l7 WHERE v = 1',
  ],
  '8 widening type changes': [
    'CREATE TABLE t8 (id INT PRIMARY KEY, i INT, d DECIMAL(10,2), f FLOAT, u INT UNSIGNED)',
    "INSERT INTO t8 VALUES (1, 2147483647, '12345678.12', 1.5, 4294967295)",
    'ALTER TABLE t8 MODIFY i BIGINT, MODIFY d DECIMAL(14,4), MODIFY f DOUBLE, MODIFY u BIGINT UNSIGNED',
    "INSERT INTO t8 VALUES (2, 9223372036854775807, '1234567890.1234', 1e300, 18446744073709551615)",
  ],
  '9 incompatible type change': [
    'CREATE TABLE t9 (id INT PRIMARY KEY, v INT)',
    'INSERT INTO t9 VALUES (1, 1),(2, 2)',
    'ALTER TABLE t9 MODIFY v VARCHAR(20)',
    "UPDATE t9 SET v = 'two' WHERE id = 2",
  ],
};

/** Tables rebuilt by a resync (rename target, incompatible type change). */
const RESYNCED = new Set(['t4b', 't9']);

/** Table → key columns ([] = compare keyless tables as sorted multisets of all columns). */
const FINAL: Record<string, string[]> = {
  r1: ['id'],
  r2: [],
  k1: ['id'],
  k2: ['a', 'b'],
  t2: ['id'],
  l2: [],
  t3: ['id'],
  t4b: ['id'],
  t5: ['id'],
  t6: ['id'],
  l6: [],
  t7: ['id'],
  l7: [],
  t8: ['id'],
  t9: ['id'],
};

async function assertConverged(): Promise<void> {
  const lastDiff: Record<string, string> = {};
  await waitFor(
    'every replica to equal its source',
    async () => {
      const client = await p.pool.connect();
      try {
        await client.query("SET TIME ZONE 'UTC'");
        let ok = true;
        for (const [table, key] of Object.entries(FINAL)) {
          const [cols] = await db.query(
            'SELECT column_name AS c FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position',
            ['shop', table],
          );
          const columns = (cols as { c: string }[]).map((r) => r.c);
          const order = key.length > 0 ? key : columns;
          const src = await sourceRows(db, 'shop', table, columns, order);
          let rep: string[];
          if (key.length > 0) {
            rep = await replicaRows(client, 'shop', table, columns, order).catch((e: Error) => [e.message]);
          } else {
            rep = await keylessReplicaRows(client, 'shop', table, columns).catch((e: Error) => [e.message]);
          }
          if (key.length === 0) {
            // Multisets: compare sorted (MySQL and PostgreSQL order NULLs differently).
            src.sort();
            rep.sort();
          }
          if (JSON.stringify(src) !== JSON.stringify(rep)) {
            lastDiff[table] = `source ${JSON.stringify(src)} replica ${JSON.stringify(rep)}`;
            ok = false;
          } else delete lastDiff[table];
        }
        return ok;
      } finally {
        client.release();
      }
    },
    120_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; differences: ${JSON.stringify(lastDiff, null, 1)}`);
  });
}

/** Deterministic pseudo-random numbers, so a failure can be replayed with the same seed. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

/**
 * A seeded random workload on a keyed (r1) and a keyless (r2) table that mixes ordinary traffic with every change
 * kind above: key-changing updates, TRUNCATE, ADD COLUMN … DEFAULT, RENAME COLUMN, DROP COLUMN, widening, DROP and
 * re-CREATE with another shape.
 */
async function randomWorkload(seed: number, rounds: number): Promise<Record<string, number>> {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const q = (sql: string, args: unknown[] = []) => db.query(`USE shop; ${sql}`, args);
  await q('CREATE TABLE r1 (id INT PRIMARY KEY, v INT NOT NULL)');
  await q('CREATE TABLE r2 (v INT, s VARCHAR(10))');
  let ids: number[] = [];
  let next = 1;
  let extra: string[] = []; // extra columns of r1, each INT NOT NULL
  let col = 0;
  const done: Record<string, number> = {};
  const did = (k: string) => {
    done[k] = (done[k] ?? 0) + 1;
  };
  for (let round = 0; round < rounds; round++) {
    const r = rand();
    if (r < 0.4 || ids.length < 3) {
      await db.beginTransaction();
      for (let i = 0; i < 1 + Math.floor(rand() * 3); i++) {
        const id = next++;
        await q('INSERT INTO r1 (id, v) VALUES (?, ?)', [id, Math.floor(rand() * 100)]);
        ids.push(id);
      }
      await q('INSERT INTO r2 VALUES (?, ?)', [Math.floor(rand() * 5), pick(['a', 'b', null])]);
      await db.commit();
      did('insert');
    } else if (r < 0.6) {
      await q(`UPDATE r1 SET v = v + 1${extra.length > 0 ? `, \`${pick(extra)}\` = ${round}` : ''} WHERE id = ?`, [
        pick(ids),
      ]);
      await q('UPDATE r2 SET s = ? WHERE v = ? LIMIT 1', [pick(['x', 'y']), Math.floor(rand() * 5)]);
      did('update');
    } else if (r < 0.68) {
      const from = pick(ids);
      const to = next++;
      await q('UPDATE r1 SET id = ? WHERE id = ?', [to, from]);
      ids = ids.map((i) => (i === from ? to : i));
      did('key change');
    } else if (r < 0.78) {
      const id = pick(ids);
      await q('DELETE FROM r1 WHERE id = ?', [id]);
      ids = ids.filter((i) => i !== id);
      await q('DELETE FROM r2 WHERE v = ? LIMIT 1', [Math.floor(rand() * 5)]);
      did('delete');
    } else if (r < 0.81) {
      if (rand() < 0.5) {
        await q('TRUNCATE r1');
        ids = [];
      } else await q('TRUNCATE TABLE r2');
      did('truncate');
    } else if (r < 0.86) {
      const c = `c${col++}`;
      await q(`ALTER TABLE r1 ADD COLUMN ${c} INT NOT NULL DEFAULT ${round}`);
      extra.push(c);
      did('add column default');
    } else if (r < 0.89 && extra.length > 0) {
      const from = pick(extra);
      const to = `c${col++}`;
      await q(`ALTER TABLE r1 RENAME COLUMN ${from} TO ${to}`);
      extra = extra.map((x) => (x === from ? to : x));
      did('rename column');
    } else if (r < 0.92 && extra.length > 0) {
      const c = pick(extra);
      await q(`ALTER TABLE r1 DROP COLUMN ${c}`);
      extra = extra.filter((x) => x !== c);
      did('drop column');
    } else if (r < 0.94) {
      await q(pick(['ALTER TABLE r1 MODIFY v BIGINT NOT NULL', 'ALTER TABLE r2 MODIFY s VARCHAR(40)']));
      did('widen');
    } else if (r < 0.96) {
      await q('DROP TABLE r1');
      await q(`CREATE TABLE r1 (id INT PRIMARY KEY, v BIGINT NOT NULL, t${round} VARCHAR(10))`);
      ids = [];
      extra = [];
      did('drop + create');
    } else {
      await db.beginTransaction();
      await q('UPDATE r1 SET v = v + 1000');
      await db.rollback();
      did('rollback');
    }
  }
  return done;
}

describe('schema and key changes end to end', () => {
  it('every case leaves its replica equal to the source, and again after replaying the binlog from before them', async () => {
    onTestFailed(() => {
      keep = true;
    });
    for (const [name, statements] of Object.entries(CASES)) {
      for (const s of statements) {
        await db.query(`USE shop; ${s}`).catch((err: Error) => {
          throw new Error(`case ${name}: ${s}: ${err.message}`);
        });
      }
    }
    const done = await randomWorkload(21, 250);
    process.stderr.write(`random workload: ${JSON.stringify(done)}\n`);
    await assertConverged();
    // The renamed table's old name is gone from the warehouse (dropped-table policy: drop).
    const gone = await p.pool.query("SELECT to_regclass('shop.t4') AS t");
    expect(gone.rows[0].t).toBeNull();
    // The dropped incarnation's column is not in the new one.
    const cols = await p.pool.query(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 't3' AND column_name NOT LIKE '\\_cdc%' ORDER BY ordinal_position",
    );
    expect(cols.rows.map((r) => r.column_name)).toEqual(['id', 'b']);

    // Replay: the producer reads the same binlog again from before every case.
    const newest = await p.pool.query(
      'SELECT source_table, MAX(max_position) AS pos FROM cdc.merge_batches GROUP BY 1',
    );
    const replayFrom = new Date();
    const startsBefore = p.stats.producerStarts;
    const moved = await cdc('set-position', start, '--yes', '--json');
    expect(moved.code, moved.stderr).toBe(0);
    await waitFor('the producer to start again', async () => p.stats.producerStarts > startsBefore, 60_000);
    await db.query("UPDATE shop.t2 SET v = 'replayed' WHERE id = 3");
    // Every table's changes were merged a second time, up to the newest position it had (so the check below runs
    // after the replay, not before it reached the warehouse).
    let waiting = '';
    await waitFor(
      'the replay to be merged for every table',
      async () => {
        for (const r of newest.rows as { source_table: string; pos: string }[]) {
          if (!(r.source_table in FINAL)) continue;
          // A resynced table's newest rows came from its backfill, which a replay does not run again.
          const floor = RESYNCED.has(r.source_table) ? '' : r.pos;
          const again = await p.pool.query(
            'SELECT count(*)::int AS n FROM cdc.merge_batches WHERE source_table = $1 AND applied_at > $2 AND max_position >= $3',
            [r.source_table, replayFrom, floor],
          );
          if (again.rows[0].n === 0) {
            waiting = r.source_table;
            return false;
          }
        }
        return true;
      },
      120_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message} (still waiting for ${waiting})`);
    });
    await assertConverged();
  }, 400_000);
});
