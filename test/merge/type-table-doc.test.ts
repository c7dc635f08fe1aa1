/**
 * The documented type tables (docs/event-format.md "Values, per MySQL type", docs/merge.md "Type mapping") say the
 * same as the code: every replica type they list is the one `warehouseType` creates, for every type they name, and
 * every column type of MySQL 8 and MariaDB 10.11 is listed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isKnownMysqlType, parseMysqlType, type Warehouse, warehouseType } from '../../shared/type-mapping';

const DOCS = join(import.meta.dirname, '..', '..', 'docs');

/** The rows of the first markdown table after `heading`, as cells (header and separator dropped). */
function tableRows(file: string, heading: string): string[][] {
  const text = readFileSync(join(DOCS, file), 'utf8');
  const at = text.indexOf(heading);
  if (at < 0) throw new Error(`${file}: no heading ${JSON.stringify(heading)}`);
  const lines = text.slice(at).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

/** The `code` spans of a cell. */
const spans = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

/** A type pattern of the event-format table: `DECIMAL(p,s)`, `INT UNSIGNED`, `ENUM(…)`, `VECTOR(n)`. */
const PATTERN = /^([A-Z][A-Z0-9]*)( UNSIGNED)?(?:\(([^)]*)\))?$/;
/** A condition on a pattern's parameter: `p ≤ 38`, `n > 16383`. */
const CONDITION = /^([a-z]+) ([≤<>≥]) (\d+)$/;

/** Largest length MySQL allows per type (for the instances a pattern stands for). */
const MAX_LENGTH: Record<string, number> = { char: 255, binary: 255, bit: 64, varchar: 65535, varbinary: 65535 };
const LENGTHS = [1, 10, 64, 255, 16383, 16384, 65535];
const PRECISIONS = [1, 12, 38, 39, 65];
const SCALES = [0, 2, 30];
const LABELS: readonly (readonly string[])[] = [['a'], ['new', 'paid', 'Grüße 🚚'], ["it's", 'a,b', '']];

interface Instance {
  /** The column type as information_schema writes it, e.g. `decimal(12,2)`. */
  readonly columnType: string;
  /** Values of the placeholders the replica types use. */
  readonly vars: Readonly<Record<string, number>>;
}

function holds(vars: Record<string, number>, conditions: readonly string[]): boolean {
  return conditions.every((c) => {
    const [, name, op, bound] = CONDITION.exec(c)!;
    const v = vars[name!];
    if (v === undefined) throw new Error(`condition ${c} names no parameter of the pattern`);
    const b = Number(bound);
    return op === '≤' ? v <= b : op === '<' ? v < b : op === '>' ? v > b : v >= b;
  });
}

/** The concrete column types a pattern stands for, within the row's conditions. */
function instances(pattern: string, conditions: readonly string[]): Instance[] {
  const m = PATTERN.exec(pattern);
  if (!m) throw new Error(`not a type pattern: ${pattern}`);
  const base = m[1]!.toLowerCase();
  const unsigned = m[2] ? ' unsigned' : '';
  const args = m[3];
  const out: Instance[] = [];
  if (args === undefined) out.push({ columnType: `${base}${unsigned}`, vars: {} });
  else if (args === '…') {
    for (const labels of LABELS) {
      const bytes = labels.map((l) => Buffer.byteLength(l));
      out.push({
        columnType: `${base}(${labels.map((l) => `'${l.replace(/'/g, "''")}'`).join(',')})`,
        vars: {
          L: Math.max(1, ...bytes),
          S: Math.max(
            1,
            bytes.reduce((n, b) => n + b + 1, 0),
          ),
        },
      });
    }
  } else if (args === 'p,s') {
    for (const p of PRECISIONS)
      for (const s of SCALES) if (s <= p) out.push({ columnType: `${base}(${p},${s})`, vars: { p, s } });
  } else if (args === 'n') {
    for (const n of LENGTHS)
      if (n <= (MAX_LENGTH[base] ?? 65535)) out.push({ columnType: `${base}(${n})`, vars: { n } });
  } else if (args === 'fsp') {
    for (const fsp of [0, 3, 6]) out.push({ columnType: fsp ? `${base}(${fsp})` : base, vars: { fsp } });
  } else throw new Error(`unknown parameters in ${pattern}`);
  return out.filter((i) => holds(i.vars as Record<string, number>, conditions));
}

/** A documented replica type with its placeholders filled in: `VARCHAR(4n)` with n = 10 → `VARCHAR(40)`. */
function replicaType(documented: string, vars: Readonly<Record<string, number>>): string {
  return documented.replace(/\(([^)]*)\)/, (_, inner: string) => {
    const terms = inner.split(',').map((t) => {
      const term = /^(\d*)([a-zA-Z]+)$/.exec(t.trim());
      if (!term) return t.trim();
      const v = vars[term[2]!];
      if (v === undefined) throw new Error(`${documented}: no value for ${term[2]}`);
      return String((term[1] ? Number(term[1]) : 1) * v);
    });
    return `(${terms.join(',')})`;
  });
}

/** Every column type of MySQL 8 and MariaDB 10.11, by the base name the server reports. */
const EVERY_TYPE = [
  ...['tinyint', 'smallint', 'mediumint', 'int', 'bigint', 'decimal', 'float', 'double', 'bit', 'year'],
  ...['date', 'datetime', 'timestamp', 'time', 'char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext'],
  ...['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob', 'enum', 'set', 'json'],
  ...['geometry', 'point', 'linestring', 'polygon', 'multipoint', 'multilinestring', 'multipolygon'],
  ...['geometrycollection', 'geomcollection', 'uuid', 'inet4', 'inet6'],
];

describe('docs/event-format.md, values per MySQL type', () => {
  const rows = tableRows('event-format.md', '## Values, per MySQL type');
  /** Rows of a type (value rows such as NULL or zero dates have no replica type). */
  const typeRows = rows.filter((r) => /^`/.test(r[3] ?? ''));

  it('documents, for every type it names, the replica types warehouseType creates on Redshift and PostgreSQL', () => {
    const wrong: string[] = [];
    let checked = 0;
    for (const r of typeRows) {
      const unknown = r[0]!.startsWith('any type');
      const names = spans(r[0]!);
      const patterns = names.filter((s) => PATTERN.test(s));
      const conditions = names.filter((s) => CONDITION.test(s));
      expect(patterns.length, `row ${r[0]}`).toBeGreaterThan(0);
      const documented: Record<Warehouse, string> = { redshift: spans(r[3]!)[0]!, postgres: spans(r[4]!)[0]! };
      for (const pattern of patterns) {
        const list = instances(pattern, conditions);
        expect(list.length, `${pattern} with ${conditions.join(', ')}`).toBeGreaterThan(0);
        for (const i of list) {
          expect(isKnownMysqlType(parseMysqlType(i.columnType)), i.columnType).toBe(!unknown);
          for (const w of ['redshift', 'postgres'] as const) {
            const want = replicaType(documented[w], i.vars);
            const got = warehouseType(i.columnType, w);
            checked++;
            if (got !== want) wrong.push(`${i.columnType} on ${w}: documented ${want}, warehouseType ${got}`);
          }
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(checked).toBeGreaterThan(150);
  });

  it('lists every column type of MySQL 8 and MariaDB 10.11', () => {
    const listed = new Set(
      typeRows
        .filter((r) => !r[0]!.startsWith('any type'))
        .flatMap((r) => spans(r[0]!).map((s) => PATTERN.exec(s)?.[1]?.toLowerCase())),
    );
    expect(EVERY_TYPE.filter((t) => !listed.has(t))).toEqual([]);
  });

  it('fails on a replica type that is not the one created (the check is not vacuous)', () => {
    expect(replicaType('VARCHAR(4n)', { n: 10 })).toBe('VARCHAR(40)');
    expect(replicaType('DECIMAL(p,s)', { p: 12, s: 2 })).toBe('DECIMAL(12,2)');
    expect(warehouseType('char(10)', 'redshift')).not.toBe(replicaType('VARCHAR(n)', { n: 10 }));
  });
});

describe('docs/merge.md, type mapping', () => {
  it('documents for each example column type the replica types warehouseType creates', () => {
    const rows = tableRows('merge.md', '## Type mapping');
    const wrong: string[] = [];
    let checked = 0;
    for (const r of rows) {
      const redshift = spans(r[2]!)[0]!;
      const postgres = spans(r[3]!)[0]!;
      for (const t of spans(r[0]!)) {
        checked++;
        if (warehouseType(t, 'redshift') !== redshift) wrong.push(`${t} on redshift: documented ${redshift}`);
        if (warehouseType(t, 'postgres') !== postgres) wrong.push(`${t} on postgres: documented ${postgres}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(checked).toBeGreaterThan(30);
  });
});
