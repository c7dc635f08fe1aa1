import { describe, expect, it } from 'vitest';
import type { NulledValue } from '../../lambdas/merge/src/date-values';
import { postgresDialect } from '../../lambdas/merge/src/dialect-postgres';
import { redshiftDialect } from '../../lambdas/merge/src/dialect-redshift';
import { CSV_NULL, csvField } from '../../lambdas/merge/src/stage-csv';
import { modelFromEvents } from '../../lambdas/merge/src/table-model';
import { TableEvents } from './support/event-factory';

const rs = redshiftDialect({ copyRoleArn: 'arn:aws:iam::123456789012:role/cdc-copy' });

function column(name: string) {
  const t = new TableEvents('shop', 'notes', { id: 'int(11)', v: 'varchar(20)', t: 'longtext' });
  return modelFromEvents([t.insert({ id: 1 })], 'redshift').columns.find((c) => c.name === name)!;
}

describe('text the warehouse cannot hold', () => {
  it('stages text holding a NUL character (U+0000, which neither warehouse stores) as NULL and reports it', () => {
    const nulled: NulledValue[] = [];
    const opts = { onNulled: (v: NulledValue) => nulled.push(v) };
    const where = 'shop.notes at 000001.000000001100.00000000';
    for (const d of [rs, postgresDialect]) {
      expect(csvField(column('v'), 'a\u0000b', d, where, opts)).toBe(CSV_NULL);
      expect(csvField(column('t'), '\u0000', d, where, opts)).toBe(CSV_NULL);
      // Every other text, including the CSV's own NULL marker and control characters, stays as it is.
      expect(csvField(column('v'), '\\N', d, where, opts)).toBe('"\\N"');
      expect(csvField(column('v'), 'a\u0001"\n', d, where, opts)).toBe('"a\u0001""\n"');
    }
    expect(nulled).toHaveLength(4);
    expect(nulled[0]).toEqual({ where, column: 'v', value: 'a\u0000b', reason: 'NUL character' });
  });
});
