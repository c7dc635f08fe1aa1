import { describe, expect, it } from 'vitest';
import { type NulledValue, unrepresentableDate } from '../../lambdas/merge/src/date-values';
import { postgresDialect } from '../../lambdas/merge/src/dialect-postgres';
import { redshiftDialect } from '../../lambdas/merge/src/dialect-redshift';
import { CSV_NULL, csvField } from '../../lambdas/merge/src/stage-csv';
import { modelFromEvents } from '../../lambdas/merge/src/table-model';
import { TableEvents } from './support/event-factory';

const rs = redshiftDialect({ copyRoleArn: 'arn:aws:iam::123456789012:role/cdc-copy' });

function column(name: string) {
  const t = new TableEvents('shop', 'days', { id: 'int(11)', d: 'date', dt: 'datetime(6)', ts: 'timestamp' });
  return modelFromEvents([t.insert({ id: 1 })], 'redshift').columns.find((c) => c.name === name)!;
}

describe('dates the warehouse cannot hold', () => {
  it('finds zero, partial zero, invalid calendar and year-zero dates, and passes every real date', () => {
    for (const zero of ['0000-00-00', '0001-00-00', '2024-00-15', '2024-01-00', '0000-00-00 00:00:00'])
      expect(unrepresentableDate(zero), zero).toBe('zero date');
    for (const bad of ['2024-02-30', '2023-02-29', '2100-02-29', '2024-04-31', '2024-13-01', '0000-01-01'])
      expect(unrepresentableDate(bad), bad).toBe('invalid date');
    for (const ok of ['2024-02-29', '2000-02-29', '2024-12-31', '0001-01-01', '9999-12-31 23:59:59.999999'])
      expect(unrepresentableDate(ok), ok).toBeUndefined();
    expect(unrepresentableDate('2024-02-30T10:00:00Z')).toBe('invalid date');
  });

  it('stages an unrepresentable DATE, DATETIME or TIMESTAMP as NULL and reports each one with its original text', () => {
    const nulled: NulledValue[] = [];
    const opts = { onNulled: (v: NulledValue) => nulled.push(v) };
    const where = 'shop.days at 000001.000000001100.00000000';
    for (const d of [rs, postgresDialect]) {
      expect(csvField(column('d'), '2024-02-30', d, where, opts)).toBe(CSV_NULL);
      expect(csvField(column('dt'), '0001-00-00 10:00:00', d, where, opts)).toBe(CSV_NULL);
      expect(csvField(column('ts'), '2024-13-01T00:00:00Z', d, where, opts)).toBe(CSV_NULL);
      expect(csvField(column('d'), '2024-02-29', d, where, opts)).toBe('"2024-02-29"');
    }
    expect(nulled).toHaveLength(6);
    expect(nulled[0]).toEqual({ where, column: 'd', value: '2024-02-30', reason: 'invalid date' });
    expect(nulled[1]).toEqual({ where, column: 'dt', value: '0001-00-00 10:00:00', reason: 'zero date' });
  });
});
