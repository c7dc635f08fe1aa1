/** The load generator against a real MariaDB with the sample schema. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLoad } from '../../local/load-generator';
import { ROOT } from '../../local/pipeline';
import { type MariaDbServer, startMariaDb } from '../../local/services/mariadb';
import { waitFor } from '../../local/services/process';

const dir = mkdtempSync(join(tmpdir(), 'cdc-load-'));
let maria: MariaDbServer;
let pool: mysql.Pool;

beforeAll(async () => {
  maria = await startMariaDb({ dir });
  maria.sql('CREATE DATABASE shop');
  const conn = await mysql.createConnection({
    host: maria.host,
    port: maria.port,
    user: maria.user,
    password: maria.password,
    database: 'shop',
    multipleStatements: true,
  });
  await conn.query(readFileSync(join(ROOT, 'local', 'sample-schema.sql'), 'utf8'));
  await conn.end();
  pool = mysql.createPool({ host: maria.host, port: maria.port, user: maria.user, password: maria.password });
});
afterAll(async () => {
  await pool?.end();
  await maria?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function one(sql: string): Promise<number> {
  const [rows] = await pool.query(sql);
  return Number(Object.values((rows as Record<string, unknown>[])[0]!)[0]);
}

describe('load generator', () => {
  it('writes orders with their lines, updates, shipments and deletes, never commits its rolled-back cancellations, and keeps the data consistent', async () => {
    const load = startLoad(pool, 'shop', 400);
    // Enough transactions for every kind to have happened (deletes are ~12% of them).
    await waitFor('shipments', async () => (await one('SELECT COUNT(*) FROM shop.shipments')) > 20, 60_000);
    await waitFor('a few hundred rows', async () => load.rows > 300 && load.rolledBack > 0, 60_000);
    await load.stop();
    expect(load.errors).toBe(0);
    const orders = await one('SELECT COUNT(*) FROM shop.orders');
    expect(orders).toBeGreaterThan(0);
    // Every order has its lines, and no line outlives its order (they are written and deleted in one transaction).
    expect(
      await one(
        'SELECT COUNT(*) FROM shop.orders o WHERE NOT EXISTS (SELECT 1 FROM shop.order_items i WHERE i.order_id = o.id)',
      ),
    ).toBe(0);
    expect(
      await one(
        'SELECT COUNT(*) FROM shop.order_items i WHERE NOT EXISTS (SELECT 1 FROM shop.orders o WHERE o.id = i.order_id)',
      ),
    ).toBe(0);
    expect(await one("SELECT COUNT(*) FROM shop.orders WHERE status = 'cancelled'")).toBe(0);
    expect(await one("SELECT COUNT(*) FROM shop.orders WHERE status <> 'new'")).toBeGreaterThan(0);
    // Shipments exist exactly for orders that reached shipped or delivered.
    expect(
      await one(
        "SELECT COUNT(*) FROM shop.shipments s JOIN shop.orders o ON o.id = s.order_id WHERE o.status NOT IN ('shipped', 'delivered')",
      ),
    ).toBe(0);
    const [binlog] = await pool.query('SHOW BINLOG EVENTS LIMIT 100000');
    const kinds = new Set((binlog as { Event_type: string }[]).map((e) => e.Event_type));
    expect([...kinds]).toEqual(expect.arrayContaining(['Write_rows_v1', 'Update_rows_v1', 'Delete_rows_v1']));
  }, 120_000);

  it('keeps going when a transaction fails, counting the failure', async () => {
    // Its positional shipment inserts now fail; new orders still go in.
    await pool.query('ALTER TABLE shop.shipments ADD COLUMN insured BOOLEAN NOT NULL');
    const load = startLoad(pool, 'shop', 200);
    await waitFor('failures', async () => load.errors >= 2, 30_000);
    await waitFor('other transactions still committed', async () => load.rows > 10, 30_000);
    await load.stop();
    expect(load.lastError).toMatch(/Column count doesn't match/);
    await pool.query('ALTER TABLE shop.shipments DROP COLUMN insured');
  }, 60_000);

  it('rejects a rate that is not a positive number, naming the value', () => {
    expect(() => startLoad(pool, 'shop', 0)).toThrow('rowsPerSecond must be a positive number, got 0');
  });
});
