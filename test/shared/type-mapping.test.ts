/**
 * The type mapping both runtimes agree on (shared/type-mapping.ts), tested directly at its edges: how a COLUMN_TYPE
 * text is read, which JSON kind a value takes, which warehouse type the merge creates, and how a replica column
 * follows a source type change. The documented type tables (docs/event-format.md, "Values, per MySQL type";
 * docs/merge.md, "Type mapping") are held to `warehouseType` by test/merge/type-table-doc.test.ts; this file covers
 * what a table of examples does not show.
 */
import { describe, expect, it } from 'vitest';
import { jsonKind, parseMysqlType, planTypeChange, warehouseType } from '../../shared/type-mapping';

describe('parseMysqlType', () => {
  it('reads base, length, scale and unsigned whatever the case and spacing of the text', () => {
    expect(parseMysqlType('  DECIMAL( 12 , 2 ) UNSIGNED ZEROFILL ')).toEqual({
      base: 'decimal',
      unsigned: true,
      length: 12,
      scale: 2,
    });
    expect(parseMysqlType('bigint(20) unsigned')).toEqual({ base: 'bigint', unsigned: true, length: 20 });
    expect(parseMysqlType('datetime(6)')).toEqual({ base: 'datetime', unsigned: false, length: 6 });
  });

  it('gives a type without arguments no length at all (not length 0 or NaN)', () => {
    expect(parseMysqlType('int')).toEqual({ base: 'int', unsigned: false });
    expect(parseMysqlType('varchar()')).toEqual({ base: 'varchar', unsigned: false });
  });

  it('reads base names with digits (MariaDB inet4, inet6)', () => {
    expect(parseMysqlType('inet6').base).toBe('inet6');
    expect(parseMysqlType('INET4').base).toBe('inet4');
  });

  it('keeps ENUM and SET labels as written: case, doubled quotes, commas and parentheses inside a label', () => {
    expect(parseMysqlType("ENUM('Paid','NEW','it''s','a,b','(x)')").values).toEqual([
      'Paid',
      'NEW',
      "it's",
      'a,b',
      '(x)',
    ]);
    expect(parseMysqlType("set('Red','green')")).toEqual({ base: 'set', unsigned: false, values: ['Red', 'green'] });
    expect(parseMysqlType('enum()').values).toEqual([]);
  });

  it('refuses text that is no column type, naming the text it received', () => {
    expect(() => parseMysqlType('(10)')).toThrow('unrecognised MySQL column type: "(10)"');
    expect(() => parseMysqlType('')).toThrow('unrecognised MySQL column type: ""');
  });
});

describe('jsonKind', () => {
  const kind = (t: string) => jsonKind(parseMysqlType(t));

  it('keeps integers that fit a double as numbers and BIGINT (signed or not) as digit strings', () => {
    for (const t of ['tinyint(1)', 'smallint unsigned', 'mediumint', 'int(10) unsigned', 'integer', 'year'])
      expect(kind(t), t).toBe('number');
    expect(kind('bigint')).toBe('int-string');
    expect(kind('bigint(20) unsigned')).toBe('int-string');
  });

  it('keeps every exact decimal spelling exact, and floating types as numbers', () => {
    for (const t of ['decimal(65,30)', 'numeric(5)', 'dec', 'fixed(8,2)']) expect(kind(t), t).toBe('decimal-string');
    for (const t of ['float', 'double', 'real']) expect(kind(t), t).toBe('number');
  });

  it('gives each temporal type its own kind, BIT its bit string, binary and spatial data base64, JSON itself', () => {
    expect(['date', 'datetime(3)', 'timestamp(6)', 'time(2)'].map(kind)).toEqual([
      'date',
      'datetime',
      'timestamp',
      'time',
    ]);
    expect(kind('bit(64)')).toBe('bits');
    for (const t of ['binary(16)', 'varbinary(8)', 'longblob', 'point', 'geomcollection'])
      expect(kind(t), t).toBe('base64');
    expect(kind('json')).toBe('json');
  });

  it('sends text, ENUM, SET, MariaDB UUID/INET and a type it does not know as strings', () => {
    for (const t of ['char(1)', 'longtext', "enum('a')", "set('a')", 'uuid', 'inet4', 'vector(3)'])
      expect(kind(t), t).toBe('string');
  });
});

describe('warehouseType', () => {
  it('widens unsigned integers to the next type that holds their whole range', () => {
    const types = ['tinyint unsigned', 'smallint unsigned', 'mediumint unsigned', 'int unsigned', 'bigint unsigned'];
    expect(types.map((t) => warehouseType(t, 'redshift'))).toEqual([
      'SMALLINT',
      'INTEGER',
      'INTEGER',
      'BIGINT',
      'DECIMAL(20,0)',
    ]);
    expect(types.map((t) => warehouseType(t, 'postgres'))).toEqual(types.map((t) => warehouseType(t, 'redshift')));
  });

  it('keeps DECIMAL up to 38 digits on Redshift and carries wider ones exactly as text; PostgreSQL keeps all', () => {
    expect(warehouseType('decimal(38,10)', 'redshift')).toBe('DECIMAL(38,10)');
    // 65 digits, a sign and a decimal point: the longest text of a DECIMAL(65,30).
    expect(warehouseType('decimal(39,0)', 'redshift')).toBe('VARCHAR(68)');
    expect(warehouseType('decimal(65,30)', 'postgres')).toBe('DECIMAL(65,30)');
    expect(warehouseType('decimal', 'redshift')).toBe('DECIMAL(10,0)'); // MySQL's default precision
  });

  it('sizes CHAR/VARCHAR in bytes on Redshift (4 per utf8mb4 character), capped at 65,535', () => {
    expect(warehouseType('varchar(16383)', 'redshift')).toBe('VARCHAR(65532)');
    expect(warehouseType('varchar(16384)', 'redshift')).toBe('VARCHAR(65535)');
    expect(warehouseType('char', 'redshift')).toBe('VARCHAR(4)');
    expect(warehouseType('varchar(16384)', 'postgres')).toBe('VARCHAR(16384)');
  });

  it('sizes ENUM for its longest label and SET for all its labels joined, in bytes, on Redshift', () => {
    expect(warehouseType("enum('é','ab')", 'redshift')).toBe('VARCHAR(2)'); // 'é' is two bytes
    expect(warehouseType("set('a','bb')", 'redshift')).toBe('VARCHAR(5)'); // 'a,bb' (4 bytes) with room to spare
    expect(warehouseType('enum()', 'redshift')).toBe('VARCHAR(1)');
    expect(warehouseType("enum('a')", 'postgres')).toBe('TEXT');
  });

  it('keeps fractional seconds and the zone where each warehouse can', () => {
    expect(warehouseType('datetime(6)', 'redshift')).toBe('TIMESTAMP');
    expect(warehouseType('datetime(6)', 'postgres')).toBe('TIMESTAMP(6)');
    expect(warehouseType('timestamp', 'redshift')).toBe('TIMESTAMPTZ');
    expect(warehouseType('timestamp', 'postgres')).toBe('TIMESTAMPTZ(6)');
    expect(warehouseType('time(6)', 'redshift')).toBe('VARCHAR(20)'); // beyond 24 hours: no warehouse TIME holds it
  });

  it('maps BIT(n) to n characters, binary to VARBYTE/BYTEA, JSON to SUPER/JSONB', () => {
    expect(warehouseType('bit(64)', 'redshift')).toBe('VARCHAR(64)');
    expect(warehouseType('bit', 'postgres')).toBe('VARCHAR(1)');
    expect(warehouseType('blob', 'redshift')).toBe('VARBYTE(1024000)');
    expect(warehouseType('blob', 'postgres')).toBe('BYTEA');
    expect(warehouseType('json', 'redshift')).toBe('SUPER');
    expect(warehouseType('json', 'postgres')).toBe('JSONB');
  });
});

describe('planTypeChange', () => {
  it('does nothing when the column already holds the new type (same type in any case, or a narrower one)', () => {
    expect(planTypeChange('varchar(10)', 'VARCHAR(10)', 'redshift')).toEqual({ kind: 'holds' });
    expect(planTypeChange('VARCHAR(20)', 'VARCHAR(10)', 'redshift')).toEqual({ kind: 'holds' });
    expect(planTypeChange('BIGINT', 'SMALLINT', 'redshift')).toEqual({ kind: 'holds' });
    expect(planTypeChange('DECIMAL(12,4)', 'DECIMAL(10,2)', 'redshift')).toEqual({ kind: 'holds' });
    expect(planTypeChange('DOUBLE PRECISION', 'REAL', 'redshift')).toEqual({ kind: 'holds' });
    expect(planTypeChange('TEXT', 'VARCHAR(100)', 'postgres')).toEqual({ kind: 'holds' });
  });

  it('widens VARCHAR in place, the one ALTER COLUMN TYPE Redshift has', () => {
    expect(planTypeChange('VARCHAR(10)', 'VARCHAR(40)', 'redshift')).toEqual({
      kind: 'widen-varchar',
      to: 'VARCHAR(40)',
    });
    expect(planTypeChange('VARCHAR(10)', 'TEXT', 'postgres')).toEqual({ kind: 'widen-varchar', to: 'TEXT' });
  });

  it('rebuilds a numeric column under a type that holds the integer digits and the scale of both', () => {
    expect(planTypeChange('SMALLINT', 'INTEGER', 'redshift')).toEqual({ kind: 'rebuild', to: 'INTEGER' });
    expect(planTypeChange('BIGINT', 'DECIMAL(20,0)', 'redshift')).toEqual({ kind: 'rebuild', to: 'DECIMAL(20,0)' });
    // 10 integer digits from DECIMAL(12,2), a scale of 4 from DECIMAL(10,4): neither of the two holds the other.
    expect(planTypeChange('DECIMAL(12,2)', 'DECIMAL(10,4)', 'redshift')).toEqual({
      kind: 'rebuild',
      to: 'DECIMAL(14,4)',
    });
    expect(planTypeChange('INTEGER', 'DECIMAL(5,2)', 'redshift')).toEqual({ kind: 'rebuild', to: 'DECIMAL(12,2)' });
    expect(planTypeChange('REAL', 'DOUBLE PRECISION', 'redshift')).toEqual({ kind: 'rebuild', to: 'DOUBLE PRECISION' });
  });

  it('calls a decimal that would need more than 38 digits incompatible on Redshift only', () => {
    expect(planTypeChange('DECIMAL(38,0)', 'DECIMAL(38,10)', 'redshift')).toEqual({ kind: 'incompatible' });
    expect(planTypeChange('DECIMAL(38,0)', 'DECIMAL(38,10)', 'postgres')).toEqual({
      kind: 'rebuild',
      to: 'DECIMAL(48,10)',
    });
  });

  it('calls a change across families incompatible (a resync), never a lossy conversion', () => {
    for (const [from, to] of [
      ['INTEGER', 'VARCHAR(10)'],
      ['VARCHAR(10)', 'INTEGER'],
      ['DOUBLE PRECISION', 'DECIMAL(10,2)'],
      ['DECIMAL(10,2)', 'DOUBLE PRECISION'],
      ['TIMESTAMP', 'TIMESTAMPTZ'],
      ['SUPER', 'VARCHAR(65535)'],
    ])
      expect(planTypeChange(from!, to!, 'redshift'), `${from} → ${to}`).toEqual({ kind: 'incompatible' });
  });
});
