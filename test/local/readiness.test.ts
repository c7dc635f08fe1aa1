/**
 * Readiness of the local pipeline (local/pipeline.ts `startProducer`, behind `npm run local -- up`): once it resolves,
 * the producer streams from a position that covers every later write. A keyless table shows it: the initial snapshot
 * skips such tables, so a write the producer's stream does not cover never reaches the replica.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { comparePositions, type Pipeline, startPipeline } from '../../local/pipeline';
import { waitFor } from '../../local/services/process';

const dir = mkdtempSync(join(tmpdir(), 'cdc-ready-'));
let p: Pipeline;

beforeAll(async () => {
  p = await startPipeline({ dir, bufferMs: 300 });
});
afterAll(async () => {
  await p?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('startProducer readiness', () => {
  it('orders binlog positions by file, then by offset', () => {
    expect(comparePositions({ file: 'mysql-bin.000002', pos: 4 }, { file: 'mysql-bin.000001', pos: 900 })).toBe(1);
    expect(comparePositions({ file: 'mysql-bin.000001', pos: 4 }, { file: 'mysql-bin.000001', pos: 900 })).toBeLessThan(
      0,
    );
    expect(comparePositions({ file: 'mysql-bin.000001', pos: 900 }, { file: 'mysql-bin.000001', pos: 900 })).toBe(0);
  });

  it('a keyless table created and filled right after startProducer resolves reaches the replica, every row', async () => {
    await p.startProducer();
    const db = await mysql.createConnection({ ...p.endpoints.mysql, multipleStatements: true });
    try {
      await db.query(
        "CREATE TABLE shop.notes (body VARCHAR(20)); INSERT INTO shop.notes VALUES ('a'), ('b'), ('b'), ('c')",
      );
    } finally {
      await db.end();
    }
    const rows = await waitFor(
      'the keyless table in the replica',
      async () => {
        // A keyless replica is a view of each distinct row with its count.
        const res = await p.pool
          .query("SELECT body || '×' || _cdc_count AS r FROM shop.notes ORDER BY body")
          .catch(() => ({ rows: [] }));
        const got = res.rows.map((r: { r: string }) => r.r);
        return got.length === 3 ? got : undefined;
      },
      60_000,
    );
    expect(rows).toEqual(['a×1', 'b×2', 'c×1']);
  });
});
