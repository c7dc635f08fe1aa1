/**
 * Primary key values the warehouse cannot hold (issue 10): a DATE key `0000-00-00` or `2024-02-30`, a text key holding
 * U+0000, a text key longer than its Redshift column. Staged like other values they would become NULL (or be cut),
 * and two source rows would become one replica key, or one row many (NULL never matches in the MERGE): a wrong
 * replica. Instead such a row is skipped, reported with its key and reason (`RowsSkipped`), and kept in the changelog;
 * every other row of the batch is applied. Real PostgreSQL, the real merge.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configureDateValues, type SkippedRow } from '../../lambdas/merge/src/date-values';
import { redshiftDialect } from '../../lambdas/merge/src/dialect-redshift';
import { mergeEvents } from '../../lambdas/merge/src/merge';
import { buildStageCsv } from '../../lambdas/merge/src/stage-csv';
import { modelFromEvents } from '../../lambdas/merge/src/table-model';
import { TableEvents } from './support/event-factory';
import { type PgHarness, usePgHarness } from './support/postgres-merge';

const harness = usePgHarness();
let h: PgHarness;
const skipped: SkippedRow[] = [];
beforeEach(() => {
  h = harness();
  skipped.length = 0;
  configureDateValues({ onRowSkipped: (r) => skipped.push(r) });
});
afterEach(() => configureDateValues({}));

describe('a primary key the warehouse cannot hold', () => {
  it('skips the rows whose DATE key no calendar has, reports each, and applies the others', async () => {
    const t = new TableEvents('shop', 'kd', { d: 'date', v: 'varchar(10)' }, ['d']);
    const events = [
      t.insert({ d: '0000-00-00', v: 'zero' }),
      t.insert({ d: '2024-02-30', v: 'feb30' }),
      t.insert({ d: '2024-02-29', v: 'leap' }),
      t.update({ d: '0000-00-00', v: 'zero' }, { d: '0000-00-00', v: 'zero2' }),
      // A key moved from an impossible date to a real one: the real one is applied.
      t.update({ d: '2024-02-30', v: 'feb30' }, { d: '2024-03-01', v: 'moved' }),
    ];
    await mergeEvents(events, 'b1', h.ctx());
    await mergeEvents(events, 'b1-replay', h.ctx());
    expect(await h.rows('SELECT d::text, v FROM shop.kd ORDER BY d')).toEqual([
      { d: '2024-02-29', v: 'leap' },
      { d: '2024-03-01', v: 'moved' },
    ]);
    expect(skipped.slice(0, 5).map((s) => [s.key, s.reason])).toEqual([
      [['0000-00-00'], 'zero date in key column d'],
      [['2024-02-30'], 'invalid date in key column d'],
      [['0000-00-00'], 'zero date in key column d'],
      [['2024-02-30'], 'invalid date in key column d'],
      [['0000-00-00'], 'zero date in key column d'],
    ]);
    expect(skipped[0]!.where).toMatch(/^shop\.kd at \d{6}\.\d{12}\.\d{8}$/);
  });

  it('skips a row whose text key holds U+0000 instead of merging it under a NULL key', async () => {
    const t = new TableEvents('shop', 'kt', { k: 'varchar(10)', v: 'int(11)' }, ['k']);
    await mergeEvents(
      [t.insert({ k: 'a\u0000b', v: 1 }), t.insert({ k: 'a\u0000c', v: 2 }), t.insert({ k: 'ok', v: 3 })],
      'b2',
      h.ctx(),
    );
    expect(await h.rows('SELECT k, v FROM shop.kt ORDER BY k')).toEqual([{ k: 'ok', v: 3 }]);
    expect(skipped.map((s) => s.reason)).toEqual(['NUL character in key column k', 'NUL character in key column k']);
  });

  it('on Redshift, skips a row whose text key is longer than its column instead of cutting it (two keys would become one)', () => {
    const t = new TableEvents('shop', 'kl', { k: 'longtext', v: 'int(11)' }, ['k']);
    const long = 'x'.repeat(70_000);
    const events = [
      t.insert({ k: `${long}1`, v: 1 }),
      t.insert({ k: `${long}2`, v: 2 }),
      t.insert({ k: 'short', v: 3 }),
    ];
    const model = modelFromEvents(events, 'redshift');
    const csv = buildStageCsv(events, model, redshiftDialect({ copyRoleArn: 'arn:aws:iam::123456789012:role/r' }));
    expect(csv.split('\n').filter(Boolean)).toHaveLength(1);
    expect(csv).toContain('"short"');
    expect(skipped.map((s) => s.reason)).toEqual([
      'key column k: 70001 bytes > 65535 its Redshift VARCHAR(65535) holds',
      'key column k: 70001 bytes > 65535 its Redshift VARCHAR(65535) holds',
    ]);
  });
});
