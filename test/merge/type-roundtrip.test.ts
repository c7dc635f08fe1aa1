import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeEvents } from '../../lambdas/merge/src/merge';
import { TableEvents } from './support/event-factory';
import { type PgHarness, startPgHarness } from './support/postgres-merge';

let h: PgHarness;
beforeAll(async () => {
  h = await startPgHarness();
});
afterAll(async () => {
  await h?.close();
});

/** One column per MySQL type family, with a value at the edge of its range, as the producer encodes it. */
const COLUMNS: Record<string, [type: string, value: unknown, expectedText: string | null]> = {
  c_tinyint: ['tinyint(4)', -128, '-128'],
  c_tinyint_u: ['tinyint(3) unsigned', 255, '255'],
  c_smallint_u: ['smallint(5) unsigned', 65535, '65535'],
  c_mediumint: ['mediumint(9)', -8388608, '-8388608'],
  c_int_u: ['int(10) unsigned', 4294967295, '4294967295'],
  c_bigint: ['bigint(20)', '-9223372036854775808', '-9223372036854775808'],
  c_bigint_u: ['bigint(20) unsigned', '18446744073709551615', '18446744073709551615'],
  c_decimal: ['decimal(38,10)', '-1234567890123456789012345678.0123456789', '-1234567890123456789012345678.0123456789'],
  c_decimal_wide: [
    'decimal(65,30)',
    '12345678901234567890123456789012345.123456789012345678901234567890',
    '12345678901234567890123456789012345.123456789012345678901234567890',
  ],
  c_float: ['float', 1.5, '1.5'],
  c_double: ['double', 2.5e-300, '2.5e-300'],
  c_year: ['year(4)', 2026, '2026'],
  c_date: ['date', '2026-02-28', '2026-02-28'],
  c_zero_date: ['date', '0000-00-00', null],
  c_datetime: ['datetime(6)', '2026-11-23 23:59:59.999999', '2026-11-23 23:59:59.999999'],
  c_timestamp: ['timestamp(6)', '2026-11-23T01:02:03.123456Z', '2026-11-23 01:02:03.123456+00'],
  c_time: ['time(6)', '-838:59:59.000000', '-838:59:59.000000'],
  c_char: ['char(3)', 'abc', 'abc'],
  c_varchar: ['varchar(255)', 'Grüße 🚚 "quoted", comma\nnewline', 'Grüße 🚚 "quoted", comma\nnewline'],
  c_empty: ['varchar(10)', '', ''],
  c_text: ['longtext', 'x'.repeat(5000), 'x'.repeat(5000)],
  c_enum: ["enum('small','large')", 'large', 'large'],
  c_set: ["set('a','b','c')", 'a,c', 'a,c'],
  c_bit: ['bit(10)', '1000000001', '1000000001'],
  c_blob: ['blob', Buffer.from([0, 1, 2, 255]).toString('base64'), '\\x000102ff'],
  c_binary: ['varbinary(16)', Buffer.from('hi').toString('base64'), '\\x6869'],
  c_uuid: ['uuid', '123e4567-e89b-12d3-a456-426614174000', '123e4567-e89b-12d3-a456-426614174000'],
  c_inet4: ['inet4', '255.255.255.255', '255.255.255.255'],
  c_inet6: ['inet6', '2001:db8::ff00:42:8329', '2001:db8::ff00:42:8329'],
  // As the producer sends spatial values: the stored SRID (4326, little-endian), then WKB of POINT(1 2).
  c_point: [
    'point',
    Buffer.from('e6100000010100000000000000000000f03f0000000000000040', 'hex').toString('base64'),
    '\\xe6100000010100000000000000000000f03f0000000000000040',
  ],
  c_json: ['json', { a: [1, 2.5, 'x'], b: null, c: { d: true } }, '{"a": [1, 2.5, "x"], "b": null, "c": {"d": true}}'],
  c_null: ['varchar(10)', null, null],
};

describe('type mapping round trip on PostgreSQL', () => {
  it('stores every MySQL type exactly, in its mapped column type', async () => {
    const cols = Object.fromEntries([['id', 'int(11)'], ...Object.entries(COLUMNS).map(([k, v]) => [k, v[0]])]);
    const t = new TableEvents('types', 'edge', cols);
    const row = Object.fromEntries([['id', 1], ...Object.entries(COLUMNS).map(([k, v]) => [k, v[1]])]);
    await mergeEvents([t.insert(row as never)], 'types-1', h.ctx());
    const select = Object.keys(COLUMNS)
      .map((c) => `"${c}"::text AS "${c}"`)
      .join(', ');
    const client = await h.pool.connect();
    await client.query("SET TIME ZONE 'UTC'");
    const got = (await client.query(`SELECT ${select} FROM types.edge`)).rows[0];
    client.release();
    const expected = Object.fromEntries(Object.entries(COLUMNS).map(([k, v]) => [k, v[2]]));
    expect(got).toEqual(expected);
  });

  it('creates the replica with the documented warehouse types', async () => {
    const rows = await h.rows(
      "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns WHERE table_schema = 'types' AND table_name = 'edge' ORDER BY ordinal_position",
    );
    const types = Object.fromEntries(rows.map((r) => [r.column_name, r.data_type]));
    expect(types).toMatchObject({
      c_bigint_u: 'numeric',
      c_decimal: 'numeric',
      c_datetime: 'timestamp without time zone',
      c_timestamp: 'timestamp with time zone',
      c_json: 'jsonb',
      c_blob: 'bytea',
      c_uuid: 'text',
      c_inet6: 'text',
      c_point: 'bytea',
      c_int_u: 'bigint',
      _cdc_position: 'character',
    });
    expect(rows.find((r) => r.column_name === 'c_bigint_u')).toMatchObject({ numeric_precision: 20, numeric_scale: 0 });
  });
});
