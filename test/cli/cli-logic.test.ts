/** The pure parts of `npx cdc`: positions, the purged/ahead rule, canonical value text, progress bars, times. */
import { describe, expect, it } from 'vitest';
import { checkFilePosition, parsePositionSpec } from '../../cli/src/binlog-position';
import { defaultRebuildName, parseAsOf } from '../../cli/src/commands/rebuild';
import { sameColumnType } from '../../cli/src/commands/validate';
import { bar, duration, table } from '../../cli/src/output';
import {
  canonicalJson,
  compareColumn,
  replicaExpression,
  replicaText,
  sourceText,
  wkbHex,
} from '../../cli/src/row-text';

const facts = {
  files: [
    { name: 'mysql-bin.000007', size: 1000 },
    { name: 'mysql-bin.000008', size: 2000 },
  ],
  end: { file: 'mysql-bin.000008', pos: 1500 },
};

describe('cdc logic', () => {
  it('reads the three kinds of position and names a bad one', () => {
    expect(parsePositionSpec('mysql-bin.000042:4711')).toEqual({ kind: 'file', file: 'mysql-bin.000042', pos: 4711 });
    expect(parsePositionSpec('gtid:0-1-812')).toEqual({ kind: 'gtid', domain: 0, server: 1, seq: 812 });
    expect(parsePositionSpec('2026-11-23 10:00:00')).toEqual({ kind: 'time', ms: Date.UTC(2026, 10, 23, 10) });
    expect(parsePositionSpec('2026-11-23T11:00:00+01:00')).toEqual({ kind: 'time', ms: Date.UTC(2026, 10, 23, 10) });
    expect(() => parsePositionSpec('yesterday')).toThrow(/got "yesterday"/);
  });

  it('refuses purged files and positions beyond what the server has written', () => {
    expect(() => checkFilePosition(facts, 'mysql-bin.000006', 4)).toThrow(
      'mysql-bin.000006 has been purged from the server (oldest binlog: mysql-bin.000007); refusing',
    );
    expect(() => checkFilePosition(facts, 'mysql-bin.000009', 4)).toThrow(/ahead of the server/);
    expect(() => checkFilePosition(facts, 'mysql-bin.000008', 1501)).toThrow(
      'mysql-bin.000008:1501 is ahead of the server (mysql-bin.000008 ends at 1500); refusing',
    );
    expect(() => checkFilePosition(facts, 'mysql-bin.000007', 1001)).toThrow(/ends at 1000/);
    expect(() => checkFilePosition(facts, 'mysql-bin.000007', 1000)).not.toThrow();
  });

  it('brings source and replica values to one text per type', () => {
    const same = (type: string, source: unknown, replica: string | null) =>
      expect(replicaText(compareColumn('c', type), replica)).toBe(sourceText(compareColumn('c', type), source));
    same('decimal(12,2)', '12.50', '12.50');
    same('decimal(65,30)', '-1.500000000000000000000000000000', '-1.500000000000000000000000000000');
    same('datetime(6)', '2026-11-23 10:00:00.000000', '2026-11-23 10:00:00');
    same('timestamp(6)', '2026-11-23 10:00:00.100000', '2026-11-23 10:00:00.1');
    same('float', 0.1, '0.1');
    same('bigint unsigned', '18446744073709551615', '18446744073709551615');
    same('blob', Buffer.from([0, 255]), '\\x00ff');
    same('bit(3)', Buffer.from([5]), '101');
    same('json', '{"b":1,"a":[1,2]}', '{"a": [1, 2], "b": 1}');
    expect(sourceText(compareColumn('c', 'date'), '0000-00-00')).toBeNull();
    // Text holding U+0000 is NULL in the replica (docs/merge.md), so validate compares it as NULL.
    expect(sourceText(compareColumn('c', 'varchar(5)'), 'a\u0000b')).toBeNull();
    expect(replicaText(compareColumn('c', 'varchar(5)'), 'x')).not.toBe(
      sourceText(compareColumn('c', 'varchar(5)'), 'y'),
    );
  });

  it('keeps every value exact: JSON numbers, spatial WKB with or without the SRID, TIME, NULL apart from text', () => {
    const differ = (type: string, source: unknown, replica: string | null) =>
      expect(replicaText(compareColumn('c', type), replica)).not.toBe(sourceText(compareColumn('c', type), source));
    const same = (type: string, source: unknown, replica: string | null) =>
      expect(replicaText(compareColumn('c', type), replica)).toBe(sourceText(compareColumn('c', type), source));
    expect(canonicalJson('{"b": 1.10, "a": [1e2, -0.5, "x"]}')).toBe(canonicalJson('{"a":[100,-0.50,"x"],"b":1.1}'));
    expect(canonicalJson('[12345678901234567891]')).not.toBe(canonicalJson('[12345678901234567890]'));
    expect(canonicalJson('[3.10]')).not.toBe(canonicalJson('[3.1000000000000001]'));
    differ('json', '{"n": 12345678901234567891}', '{"n": 12345678901234567890}');
    // POINT(1 2) as WKB, and as MySQL stores it (SRID 4326 first): the same geometry.
    const wkb = Buffer.from('0101000000000000000000f03f0000000000000040', 'hex');
    const stored = Buffer.concat([Buffer.from([0xe6, 0x10, 0, 0]), wkb]);
    expect(wkbHex(stored)).toBe(wkbHex(wkb));
    same('point', stored, `\\x${wkb.toString('hex')}`);
    differ('point', stored, `\\x${Buffer.from('[object Object]').toString('hex')}`);
    expect(() => sourceText(compareColumn('c', 'point'), { x: 1, y: 2 })).toThrow(/not as bytes/);
    same('time(6)', '-05:00:00.500000', '-5:00:00.5');
    differ('time(6)', '-05:00:00.500000', '5:00:00.5');
    expect(sourceText(compareColumn('c', 'varchar(5)'), null)).toBeNull();
    expect(replicaText(compareColumn('c', 'varchar(5)'), '∅')).toBe('∅');
    differ('decimal(12,2)', '12.50', '12.51');
    differ('bigint', '9007199254740993', '9007199254740992');
  });

  it('reads each replica column with an exact expression for its warehouse type', () => {
    const expr = (type: string, replicaType: string | undefined, w: 'redshift' | 'postgres') =>
      replicaExpression(compareColumn('c', type, replicaType), w);
    expect(expr('point', 'geometry', 'redshift')).toBe(`FROM_VARBYTE(ST_AsBinary("c"), 'hex')`);
    expect(expr('point', 'binary varying', 'redshift')).toBe(`FROM_VARBYTE("c", 'hex')`);
    expect(expr('blob', 'bytea', 'postgres')).toBe(`encode("c", 'hex')`);
    expect(expr('json', 'super', 'redshift')).toBe('JSON_SERIALIZE("c")');
    // PostgreSQL text as a whole: CAST AS VARCHAR(65535) there cuts longer text (LONGTEXT, JSONB) without a word.
    expect(expr('json', 'jsonb', 'postgres')).toBe('CAST("c" AS TEXT)');
    expect(expr('longtext', 'text', 'postgres')).toBe('CAST("c" AS TEXT)');
    expect(expr('longtext', 'character varying', 'redshift')).toBe('CAST("c" AS VARCHAR(65535))');
    expect(expr('timestamp(6)', 'timestamp with time zone', 'postgres')).toBe(
      `CAST(("c" AT TIME ZONE 'UTC') AS VARCHAR(64))`,
    );
    // A column holding text where the merge would create bytes: compared as the text it holds.
    expect(expr('blob', 'character varying', 'redshift')).toBe('CAST("c" AS VARCHAR(65535))');
  });

  it('draws progress and durations for humans', () => {
    expect(bar(0.5, 10)).toBe('[#####.....]  50%');
    expect(bar(Number.NaN, 4)).toBe('[....]   0%');
    expect(duration(59)).toBe('59s');
    expect(duration(3725)).toBe('1h02m');
    expect(duration(undefined)).toBe('?');
    expect(table(['table', 'rows'], [['shop.orders', 1234]])).toBe('table         rows\nshop.orders  1,234');
  });

  it('reads --as-of as UTC unless a zone is given, and names the rebuilt table after it', () => {
    expect(parseAsOf('2026-11-23T10:00:00Z')).toBe(Date.UTC(2026, 10, 23, 10));
    expect(parseAsOf('2026-11-23 10:00')).toBe(Date.UTC(2026, 10, 23, 10));
    expect(() => parseAsOf('noon')).toThrow(/got "noon"/);
    expect(defaultRebuildName('orders', Date.UTC(2026, 10, 23, 10, 5, 9))).toBe('orders__as_of_20261123t100509');
  });
});

describe('validate: the replica type against the source type', () => {
  it("takes MariaDB metadata's '?' for a 4-byte character of an ENUM or SET as that character, and nothing else", () => {
    expect(sameColumnType("enum('a','Grüße 🚚')", "enum('a','Grüße ?')")).toBe(true);
    expect(sameColumnType("set('🚚','b')", "set('?','b')")).toBe(true);
    expect(sameColumnType("enum('a','b')", "enum('a','c')")).toBe(false);
    expect(sameColumnType("enum('a','ü')", "enum('a','?')")).toBe(false); // 2-byte characters are kept whole
    expect(sameColumnType('varchar(10)', 'varchar(20)')).toBe(false);
  });
});
