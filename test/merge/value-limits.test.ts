import { describe, expect, it } from 'vitest';
import { postgresDialect } from '../../lambdas/merge/src/dialect-postgres';
import { redshiftDialect } from '../../lambdas/merge/src/dialect-redshift';
import { PoisonBatchError } from '../../lambdas/merge/src/errors';
import { buildStageCsv } from '../../lambdas/merge/src/stage-csv';
import { modelFromEvents } from '../../lambdas/merge/src/table-model';
import {
  byteLimit,
  configureValueLimits,
  limitValue,
  type TruncatedValue,
  truncateText,
  truncationMarker,
} from '../../lambdas/merge/src/value-limits';
import { TableEvents } from './support/event-factory';

const rs = redshiftDialect({ copyRoleArn: 'arn:aws:iam::123456789012:role/cdc-copy' });

function docs() {
  return new TableEvents('shop', 'docs', { id: 'int(11)', body: 'longtext', meta: 'json', scan: 'longblob' });
}

function column(name: string) {
  const t = docs();
  return modelFromEvents([t.insert({ id: 1 })], 'redshift').columns.find((c) => c.name === name)!;
}

const row = { where: 'shop.docs at 000001.000000001100.00000000', key: [7] };

describe('value limits (what a Redshift column holds)', () => {
  it('knows the byte limit of each staged column on Redshift, and none on PostgreSQL', () => {
    expect(byteLimit(column('body'), 'redshift')).toEqual({ limit: 65535, what: 'text', type: 'VARCHAR(65535)' });
    expect(byteLimit(column('meta'), 'redshift')).toEqual({ limit: 65535, what: 'json', type: 'VARCHAR(65535)' });
    expect(byteLimit(column('scan'), 'redshift')).toEqual({ limit: 1024000, what: 'binary', type: 'VARBYTE(1024000)' });
    expect(byteLimit(column('id'), 'redshift')).toBeUndefined();
    expect(byteLimit({ ...column('body'), warehouseType: 'TEXT' }, 'postgres')).toBeUndefined();
  });

  it('passes values that fit unchanged, up to the exact byte limit (bytes, not characters)', () => {
    const exact = 'é'.repeat(65535 / 5) + 'x'.repeat(65535 - (65535 / 5) * 2); // 2-byte characters count twice
    expect(Buffer.byteLength(exact)).toBe(65535);
    expect(limitValue(column('body'), exact, 'redshift', row, { policy: 'truncate' })).toBe(exact);
    expect(limitValue(column('body'), null, 'redshift', row, { policy: 'poison' })).toBeNull();
  });

  it('truncates text over the limit at a character boundary, ending with a marker, and reports it', () => {
    const long = `${'a'.repeat(65530)}€€€€€`; // 65530 + 5×3 bytes = 65545
    const seen: TruncatedValue[] = [];
    const out = limitValue(column('body'), long, 'redshift', row, {
      policy: 'truncate',
      onTruncated: (v) => seen.push(v),
    }) as string;
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(65535);
    expect(out.endsWith(truncationMarker(65545))).toBe(true);
    expect(out).not.toContain('\uFFFD');
    expect(seen).toEqual([{ where: `${row.where} key [7]`, column: 'body', bytes: 65545, limit: 65535 }]);
    // A multi-byte character is never split, whatever the cut.
    for (let limit = 40; limit < 60; limit++) {
      const cut = truncateText('€'.repeat(100), limit);
      expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(limit);
      expect(cut).not.toContain('\uFFFD');
    }
  });

  it('sets the batch aside, naming table, position, key, column and sizes, under OVERSIZE_VALUES=poison', () => {
    const err = (() => {
      try {
        limitValue(column('body'), 'x'.repeat(70_000), 'redshift', row, { policy: 'poison' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(PoisonBatchError);
    expect((err as PoisonBatchError).code).toBe('VALUE_TOO_LARGE');
    expect((err as Error).message).toBe(
      'VALUE_TOO_LARGE: shop.docs at 000001.000000001100.00000000 key [7] column "body" (longtext): 70000 bytes > 65535 ' +
        'that Redshift VARCHAR(65535) holds (OVERSIZE_VALUES=poison; docs/merge.md, "Values too large")',
    );
  });

  it('never truncates JSON or binary: an oversized document or blob sets the batch aside under either policy', () => {
    const bigJson = { text: 'x'.repeat(70_000) };
    const bigBlob = Buffer.alloc(1_024_001, 1).toString('base64');
    for (const policy of ['truncate', 'poison'] as const) {
      expect(() => limitValue(column('meta'), bigJson, 'redshift', row, { policy })).toThrow(
        /column "meta" \(json\): 70\d{3} bytes > 65535 .*a JSON document is never truncated/,
      );
      expect(() => limitValue(column('scan'), bigBlob, 'redshift', row, { policy })).toThrow(
        /column "scan" \(longblob\): 1024001 bytes > 1024000 that Redshift VARBYTE\(1024000\) holds \(a binary value is never truncated/,
      );
    }
    expect(limitValue(column('scan'), Buffer.alloc(1_024_000).toString('base64'), 'redshift', row)).toBeTypeOf(
      'string',
    );
  });

  it('applies the configured policy while the staging CSV is built (Redshift only)', () => {
    const t = docs();
    const events = [t.insert({ id: 7, body: 'y'.repeat(70_000), meta: { a: 1 }, scan: null })];
    const seen: TruncatedValue[] = [];
    try {
      configureValueLimits({ policy: 'truncate', onTruncated: (v) => seen.push(v) });
      const csv = buildStageCsv(events, modelFromEvents(events, 'redshift'), rs);
      expect(csv).toContain(truncationMarker(70_000));
      expect(csv.length).toBeLessThan(66_000);
      expect(seen.map((s) => [s.column, s.bytes])).toEqual([['body', 70_000]]);

      configureValueLimits({ policy: 'poison' });
      expect(() => buildStageCsv(events, modelFromEvents(events, 'redshift'), rs)).toThrow(
        /VALUE_TOO_LARGE: shop\.docs at \S+ key \[7\] column "body"/,
      );
      // PostgreSQL (TEXT) holds it: nothing is changed locally.
      expect(buildStageCsv(events, modelFromEvents(events, 'postgres'), postgresDialect)).toContain('y'.repeat(70_000));
    } finally {
      configureValueLimits({ policy: 'truncate' });
    }
  });
});
