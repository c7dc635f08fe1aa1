import { describe, expect, it } from 'vitest';
import { failingTables, setAsideKey, setAsideReason, tableOfKey } from '../../local/firehose-dead-letters';

const object = (table: string, n: number) =>
  `changelog/source_db=shop/source_table=${table}/dt=2026-11-30/hour=17/local-firehose-${n}.gz`;

describe('local dead letters', () => {
  it('reads the table from a changelog key and from its set-aside report key, and nothing from other keys', () => {
    expect(tableOfKey(object('orders', 1))).toBe('shop.orders');
    expect(tableOfKey(setAsideKey(object('orders', 1)))).toBe('shop.orders');
    expect(setAsideKey(object('orders', 1))).toBe(`errors/merge/${object('orders', 1)}.json`);
    expect(tableOfKey('errors/unparseable/shardId-0/123')).toBeNull();
  });

  it('starts a reason with the table once', () => {
    expect(setAsideReason('shop.orders', 'WAREHOUSE_STATEMENT_FAILED: boom')).toBe(
      'shop.orders: WAREHOUSE_STATEMENT_FAILED: boom',
    );
    expect(setAsideReason('shop.orders', 'shop.orders: boom')).toBe('shop.orders: boom');
    expect(setAsideReason(null, 'boom')).toBe('boom');
  });

  it('counts per table the objects that failed and the set-aside ones, with the newest reason; not-yet-attempted objects are not failing', () => {
    const failing = failingTables(
      [
        { key: object('orders', 1), attempts: 2, lastError: 'shop.orders: older', lastFailedAt: 100 },
        { key: object('orders', 2), attempts: 1, lastError: 'shop.orders: newer', lastFailedAt: 300 },
        { key: object('items', 3), attempts: 0, lastError: '' },
      ],
      [
        { key: setAsideKey(object('orders', 0)), at: 200, reason: 'shop.orders: set aside' },
        { key: setAsideKey(object('lines', 4)), at: 50 },
      ],
    );
    expect(Object.fromEntries(failing)).toEqual({
      'shop.orders': { retrying: 2, setAside: 1, lastError: 'shop.orders: newer', lastFailedAt: 300 },
      'shop.lines': { retrying: 0, setAside: 1, lastError: '', lastFailedAt: 0 },
    });
  });
});
