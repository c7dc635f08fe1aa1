/**
 * The one type table both producer paths use (shared/type-mapping.ts, shared/value-encoding.ts), for the types whose
 * binlog and snapshot forms differ: MariaDB UUID/INET4/INET6 (stored bytes vs the server's text) and spatial values.
 */
import { describe, expect, it } from 'vitest';
import { binlogColumnType } from '../../containers/producer/src/snapshot-reader';
import { jsonKind, parseMysqlType, warehouseType } from '../../shared/type-mapping';
import { encodeValue } from '../../shared/value-encoding';

const hex = (h: string) => Buffer.from(h, 'hex');

describe('MariaDB UUID, INET4 and INET6', () => {
  it('are text columns on both warehouses, sized for their longest text on Redshift', () => {
    for (const t of ['uuid', 'inet4', 'inet6']) expect(jsonKind(parseMysqlType(t))).toBe('string');
    expect(warehouseType('uuid', 'redshift')).toBe('VARCHAR(36)');
    expect(warehouseType('inet4', 'redshift')).toBe('VARCHAR(15)');
    expect(warehouseType('inet6', 'redshift')).toBe('VARCHAR(45)');
    expect(warehouseType('inet6', 'postgres')).toBe('TEXT');
  });

  it('encode the stored bytes (binlog) as the text the server prints (snapshot)', () => {
    expect(encodeValue('uuid', hex('123e4567e89b12d3a456426614174000'))).toBe('123e4567-e89b-12d3-a456-426614174000');
    expect(encodeValue('uuid', '123e4567-e89b-12d3-a456-426614174000')).toBe('123e4567-e89b-12d3-a456-426614174000');
    expect(encodeValue('inet4', hex('0a000001'))).toBe('10.0.0.1');
    const inet6: [string, string][] = [
      ['20010db8000000000000ff0000428329', '2001:db8::ff00:42:8329'],
      ['00000000000000000000ffff01020304', '::ffff:1.2.3.4'],
      ['00000000000000000000000001020304', '::1.2.3.4'],
      ['00000000000000000000000000000001', '::1'],
      ['00000000000000000000000000000000', '::'],
      ['00010000000000010000000000000001', '1:0:0:1::1'],
      ['00010000000000010000000000010001', '1::1:0:0:1:1'], // a tie: the leftmost run
      ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
      ['fe800000000000000001000000000000', 'fe80::1:0:0:0'],
      ['20010db8000100010001000100010001', '2001:db8:1:1:1:1:1:1'],
    ];
    for (const [bytes, text] of inet6) expect(encodeValue('inet6', hex(bytes)), bytes).toBe(text);
  });
});

describe('spatial values', () => {
  it('are the stored bytes (SRID, then WKB) in base64, and never the text of a decoded object', () => {
    const point = hex('e6100000010100000000000000000000f03f0000000000000040');
    expect(encodeValue('point', point)).toBe(point.toString('base64'));
    expect(() => encodeValue('point', { x: 1, y: 2 })).toThrow(/point value arrived decoded/);
    expect(() => encodeValue('linestring', [{ x: 1, y: 2 }])).toThrow(/not as bytes/);
  });

  it('name GEOMETRYCOLLECTION the way the binlog does on the snapshot path', () => {
    expect(binlogColumnType('geometrycollection')).toBe('geomcollection');
    expect(binlogColumnType('int(11)')).toBe('int');
  });
});

describe('YEAR', () => {
  it('encodes the year 0000 as 0 on both paths (the binlog reader hands it over as 1900, a year YEAR cannot hold)', () => {
    expect(encodeValue('year', 1900)).toBe(0); // binlog: zongji reads 1900 + the stored byte, 0 for 0000
    expect(encodeValue('year', 0)).toBe(0); // snapshot: the server's 0000
    expect(encodeValue('year', 1901)).toBe(1901);
    expect(encodeValue('year', 2155)).toBe(2155);
  });
});
