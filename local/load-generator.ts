/**
 * Writes a realistic outbound workload at a target rate (rows/s): new orders with their lines, status changes,
 * shipments, the occasional cancellation (delete) and rolled-back transaction.
 */
import type mysql from 'mysql2/promise';

export interface LoadGenerator {
  stop(): Promise<void>;
  /** Rows written in committed transactions. */
  readonly rows: number;
  /** Transactions rolled back on purpose (never visible downstream). */
  readonly rolledBack: number;
  /** Transactions that failed (e.g. someone altered a table under it); the generator keeps going. */
  readonly errors: number;
  readonly lastError: string | undefined;
}

/** Orders kept as candidates for updates and deletes (the oldest are forgotten beyond this). */
const MAX_OPEN_ORDERS = 10_000;

export function startLoad(pool: mysql.Pool, database: string, rowsPerSecond: number): LoadGenerator {
  if (!Number.isFinite(rowsPerSecond) || rowsPerSecond <= 0)
    throw new RangeError(`rowsPerSecond must be a positive number, got ${JSON.stringify(rowsPerSecond)}`);
  let running = true;
  let nextOrder = Date.now() * 10;
  const open: number[] = [];
  const state = { rows: 0, rolledBack: 0, errors: 0, lastError: undefined as string | undefined };
  const tick = async () => {
    const conn = await pool.getConnection().catch((err: Error) => {
      state.errors++;
      state.lastError = err.message;
      return undefined;
    });
    if (!conn) {
      await new Promise((r) => setTimeout(r, 500));
      return;
    }
    try {
      await conn.query(`USE \`${database}\``);
      const r = Math.random();
      await conn.beginTransaction();
      if (r < 0.45 || open.length < 5) {
        const id = nextOrder++;
        const lines = 1 + Math.floor(Math.random() * 3);
        await conn.query(
          "INSERT INTO orders (id, customer_email, status, total, warehouse_id, created_at) VALUES (?, ?, 'new', ?, ?, NOW(6))",
          [id, `c${id % 5000}@example.com`, (Math.random() * 300).toFixed(2), 1 + Math.floor(Math.random() * 3)],
        );
        for (let l = 1; l <= lines; l++) {
          await conn.query('INSERT INTO order_items VALUES (?, ?, ?, ?)', [
            id,
            l,
            1 + Math.floor(Math.random() * 5),
            1 + Math.floor(Math.random() * 4),
          ]);
        }
        open.push(id);
        if (open.length > MAX_OPEN_ORDERS) open.shift();
        state.rows += 1 + lines;
      } else if (r < 0.8) {
        const id = open[Math.floor(Math.random() * open.length)]!;
        // Orders move forward through the outbound flow; the step to 'shipped' creates the shipment.
        const [res] = await conn.query(
          "UPDATE orders SET status = CASE status WHEN 'new' THEN 'paid' WHEN 'paid' THEN 'picked' WHEN 'picked' THEN 'shipped' WHEN 'shipped' THEN 'delivered' ELSE status END WHERE id = ?",
          [id],
        );
        const [shipped] = await conn.query(
          "INSERT INTO shipments SELECT id, id, ?, warehouse_id, NOW(6), ?, ? FROM orders WHERE id = ? AND status = 'shipped' ON DUPLICATE KEY UPDATE tracking_no = VALUES(tracking_no)",
          [1 + Math.floor(Math.random() * 4), `TRK${id}`, (Math.random() * 20).toFixed(3), id],
        );
        state.rows +=
          (res as { affectedRows: number }).affectedRows + (shipped as { affectedRows: number }).affectedRows;
      } else if (r < 0.92) {
        const id = open.splice(Math.floor(Math.random() * open.length), 1)[0]!;
        await conn.query('DELETE FROM shipments WHERE order_id = ?', [id]);
        await conn.query('DELETE FROM order_items WHERE order_id = ?', [id]);
        await conn.query('DELETE FROM orders WHERE id = ?', [id]);
        state.rows += 2;
      } else {
        await conn.query("UPDATE orders SET status = 'cancelled' ORDER BY id DESC LIMIT 1");
        await conn.rollback();
        state.rolledBack++;
        return;
      }
      await conn.commit();
    } catch (err) {
      // A failed transaction is rolled back and counted; the load goes on (a user may be altering tables).
      state.errors++;
      state.lastError = (err as Error).message;
      await conn.rollback().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      conn.release();
    }
  };
  const loop = (async () => {
    while (running) {
      const started = Date.now();
      const before = state.rows;
      while (running && state.rows - before < rowsPerSecond && Date.now() - started < 1000) await tick();
      const left = 1000 - (Date.now() - started);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    }
  })();
  return {
    get rows() {
      return state.rows;
    },
    get rolledBack() {
      return state.rolledBack;
    },
    get errors() {
      return state.errors;
    },
    get lastError() {
      return state.lastError;
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}
