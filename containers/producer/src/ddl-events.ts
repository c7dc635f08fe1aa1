/**
 * What a DDL statement read from the binlog means for the replicas (pure; docs/event-format.md, "Table-level
 * events"). The binlog carries DDL as statement text even in ROW format, and MySQL writes no row events for what a
 * DDL does to existing rows (TRUNCATE empties a table, ADD COLUMN … DEFAULT fills every row), so the producer turns
 * the statements that change a captured table's rows or identity into table-level events, and asks for a backfill
 * where the replica cannot follow exactly from the statement alone:
 * - TRUNCATE → `truncate`; DROP TABLE → `drop`;
 * - RENAME TABLE a TO b / ALTER TABLE a RENAME TO b → `rename` of a, and a `resync` of b (its replica is filled by
 *   a backfill: the binlog has no rows for what b already holds);
 * - ALTER TABLE: RENAME COLUMN / CHANGE old new → `rename_column`; ADD COLUMN → `add_column` with the value every
 *   existing row got (a constant default, or MySQL's implicit default of a NOT NULL column); DROP COLUMN →
 *   `drop_column`; a type change no warehouse column can follow in place (`planTypeChange`) → `resync`;
 *   a default that is not a constant (an expression, CURRENT_TIMESTAMP) → a backfill of the table;
 * - an ALTER TABLE of a captured table that cannot be parsed → a backfill (never a silent divergence).
 * Statements parse with node-sql-parser (MariaDB grammar, then MySQL's).
 */
import pkg from 'node-sql-parser';
import type { ColumnChange, JsonValue, TableChange, TableOp } from '../../../shared/change-event';
import {
  isKnownMysqlType,
  jsonKind,
  parseMysqlType,
  planTypeChange,
  warehouseType,
} from '../../../shared/type-mapping';
import type { TableShape } from './event-encoder';

const { Parser } = pkg;
const parser = new Parser();

export type DdlAction =
  | {
      readonly kind: 'event';
      readonly db: string;
      readonly table: string;
      readonly op: TableOp;
      readonly change: TableChange;
    }
  /** Emit a `resync` event for the table, then backfill it. */
  | { readonly kind: 'resync'; readonly db: string; readonly table: string; readonly reason: string }
  /** Backfill the table (its rows changed in a way no event describes). */
  | { readonly kind: 'backfill'; readonly db: string; readonly table: string; readonly reason: string };

export interface DdlContext {
  /** The statement's default database (the binlog's QUERY event carries it). */
  readonly defaultDb: string;
  readonly captures: (db: string, table: string) => boolean;
  /** The table's columns as the last row event showed them, when known. */
  readonly shape: (db: string, table: string) => TableShape | undefined;
}

interface TableRef {
  db: string | null;
  table: string;
}
type Ast = Record<string, unknown> & { type?: string };

function parse(statement: string): Ast[] | undefined {
  const text = statement.replace(/\/\*(?!!)[\s\S]*?\*\//g, ' ').trim();
  for (const database of ['MariaDB', 'MySQL']) {
    try {
      const ast = parser.astify(text, { database }) as unknown as Ast | Ast[];
      return Array.isArray(ast) ? ast : [ast];
    } catch {
      // try the next grammar
    }
  }
  return undefined;
}

/** The actions for one DDL statement (empty when it concerns no captured table's rows). */
export function ddlActions(statement: string, ctx: DdlContext): DdlAction[] {
  const head = statement
    .replace(/\/\*(?!!)[\s\S]*?\*\//g, ' ')
    .trim()
    .slice(0, 40)
    .toUpperCase();
  if (!/^(TRUNCATE|DROP\s+TABLE|DROP\s+TEMPORARY|RENAME\s+TABLE|ALTER\s+(ONLINE\s+|IGNORE\s+)*TABLE)/.test(head)) {
    return [];
  }
  if (/^DROP\s+TEMPORARY/.test(head)) return [];
  const asts = parse(statement);
  if (!asts) return unparsed(statement, ctx);
  const out: DdlAction[] = [];
  for (const ast of asts) out.push(...actionsOf(ast, statement, ctx));
  return out;
}

function name(ref: TableRef, ctx: DdlContext): { db: string; table: string } {
  return { db: ref.db ?? ctx.defaultDb, table: ref.table };
}

function actionsOf(ast: Ast, statement: string, ctx: DdlContext): DdlAction[] {
  const out: DdlAction[] = [];
  const ev = (t: { db: string; table: string }, op: TableOp, change: TableChange): void => {
    if (ctx.captures(t.db, t.table)) out.push({ kind: 'event', ...t, op, change });
  };
  const rename = (from: { db: string; table: string }, to: { db: string; table: string }): void => {
    ev(from, 'rename', { statement, rename_to: to });
    if (ctx.captures(to.db, to.table)) {
      out.push({ kind: 'resync', ...to, reason: `renamed from ${from.db}.${from.table}` });
    }
  };
  switch (ast.type) {
    case 'truncate':
      for (const ref of (ast.name as TableRef[]) ?? []) ev(name(ref, ctx), 'truncate', { statement });
      return out;
    case 'drop':
      if (ast.keyword !== 'table') return out;
      for (const ref of (ast.name as TableRef[]) ?? []) ev(name(ref, ctx), 'drop', { statement });
      return out;
    case 'rename':
      for (const [from, to] of (ast.table as [TableRef, TableRef][]) ?? []) rename(name(from, ctx), name(to, ctx));
      return out;
    case 'alter':
      return [...out, ...alterActions(ast, statement, ctx)];
    default:
      return out;
  }
}

interface ColumnDefinition {
  dataType?: string;
  length?: number;
  scale?: number;
  suffix?: string[] | null;
  expr?: { value?: { value?: unknown }[] };
}
interface AlterExpr {
  action?: string;
  resource?: string;
  keyword?: string;
  table?: string;
  column?: { column?: string };
  old_column?: { column?: string };
  definition?: ColumnDefinition;
  nullable?: { type?: string };
  default_val?: { value?: { type?: string; value?: unknown } };
}

function alterActions(ast: Ast, statement: string, ctx: DdlContext): DdlAction[] {
  const ref = ((ast.table as TableRef[]) ?? [])[0];
  if (!ref) return [];
  const t = name(ref, ctx);
  const out: DdlAction[] = [];
  const columns: ColumnChange[] = [];
  const shape = ctx.shape(t.db, t.table);
  const typeOf = (column: string) => shape?.columns.find((c) => c.name === column)?.type;
  let backfill: string | undefined;
  let resync: string | undefined;
  for (const x of (ast.expr as AlterExpr[]) ?? []) {
    if (x.resource === 'table' && x.action === 'rename' && typeof x.table === 'string') {
      const to = { db: t.db, table: x.table };
      if (ctx.captures(t.db, t.table))
        out.push({ kind: 'event', ...t, op: 'rename', change: { statement, rename_to: to } });
      if (ctx.captures(to.db, to.table)) out.push({ kind: 'resync', ...to, reason: `renamed from ${t.db}.${t.table}` });
      continue;
    }
    if (x.resource !== 'column') continue;
    const col = x.column?.column;
    if (typeof col !== 'string') continue;
    if (x.action === 'rename' || x.action === 'change') {
      const from = x.old_column?.column;
      if (typeof from === 'string' && from !== col) columns.push({ kind: 'rename_column', from, to: col });
    }
    if ((x.action === 'change' || x.action === 'modify') && x.definition) {
      const before = typeOf(x.old_column?.column ?? col);
      const after = mysqlTypeText(x.definition);
      if (before && after && incompatible(before, after)) {
        resync = `column ${col} changed from ${before} to ${after}`;
      }
    }
    if (x.action === 'add' && x.definition) {
      const type = mysqlTypeText(x.definition);
      if (!type) {
        backfill = `column ${col} added with a type the producer cannot read from the statement`;
        continue;
      }
      const notNull = x.nullable?.type === 'not null';
      const value = defaultOf(type, x.default_val?.value, notNull);
      if (value.kind === 'backfill') {
        columns.push({ kind: 'add_column', name: col, type, default: null });
        backfill = `column ${col} added with ${value.why}`;
      } else {
        columns.push({ kind: 'add_column', name: col, type, default: value.value });
      }
    }
    if (x.action === 'drop') columns.push({ kind: 'drop_column', name: col });
  }
  if (!ctx.captures(t.db, t.table)) return out;
  if (resync) return [...out, { kind: 'resync', ...t, reason: resync }];
  if (columns.length > 0) out.push({ kind: 'event', ...t, op: 'alter', change: { statement, columns } });
  if (backfill) out.push({ kind: 'backfill', ...t, reason: backfill });
  return out;
}

function incompatible(before: string, after: string): boolean {
  try {
    // A type the shared type table does not know: rebuild rather than guess.
    if (!isKnownMysqlType(parseMysqlType(before)) || !isKnownMysqlType(parseMysqlType(after))) return true;
    return (
      planTypeChange(warehouseType(before, 'redshift'), warehouseType(after, 'redshift'), 'redshift').kind ===
      'incompatible'
    );
  } catch {
    return true; // a type the mapping does not know: rebuild rather than guess
  }
}

const TYPE_ALIASES: Record<string, string> = {
  integer: 'int',
  bool: 'tinyint(1)',
  boolean: 'tinyint(1)',
  dec: 'decimal',
  numeric: 'decimal',
  fixed: 'decimal',
  real: 'double',
  'double precision': 'double',
  character: 'char',
};

/** `COLUMN_TYPE`-like text from a parsed column definition (`decimal(14,4) unsigned`, `enum('a','b')`). */
export function mysqlTypeText(def: ColumnDefinition): string | undefined {
  if (!def.dataType) return undefined;
  const base = def.dataType.toLowerCase();
  const alias = TYPE_ALIASES[base];
  if (alias?.includes('(')) return alias;
  const b = alias ?? base;
  let text = b;
  if (b === 'enum' || b === 'set') {
    const labels = (def.expr?.value ?? []).map((v) => `'${String(v.value).replace(/'/g, "''")}'`);
    text = `${b}(${labels.join(',')})`;
  } else if (def.length !== undefined && def.length !== null) {
    text = `${b}(${def.length}${def.scale !== undefined && def.scale !== null ? `,${def.scale}` : ''})`;
  }
  if ((def.suffix ?? []).some((s) => /unsigned/i.test(s))) text += ' unsigned';
  try {
    // A type the shared type table does not know is not followed from the statement: the table is backfilled.
    if (!isKnownMysqlType(parseMysqlType(text))) return undefined;
  } catch {
    return undefined;
  }
  return text;
}

type DefaultValue = { kind: 'value'; value: JsonValue } | { kind: 'backfill'; why: string };

/**
 * The value every existing row got for a column added with this default, encoded like an event value of `type`;
 * or a backfill where the statement alone does not say (expressions, time-zone dependent or binary values).
 */
export function defaultOf(
  type: string,
  dv: { type?: string; value?: unknown } | undefined,
  notNull: boolean,
): DefaultValue {
  const t = parseMysqlType(type);
  const kind = jsonKind(t);
  if (!dv) {
    if (!notNull) return { kind: 'value', value: null };
    return implicitDefault(kind, t.values);
  }
  if (dv.type === 'null') return { kind: 'value', value: null };
  let raw: string;
  if (dv.type === 'number') raw = String(dv.value);
  else if (dv.type === 'single_quote_string' || dv.type === 'double_quote_string' || dv.type === 'string')
    raw = String(dv.value).replace(/''/g, "'").replace(/\\'/g, "'");
  else if (dv.type === 'bool') raw = dv.value ? '1' : '0';
  else return { kind: 'backfill', why: 'a default that is not a constant' };
  switch (kind) {
    case 'number':
      return Number.isFinite(Number(raw)) && raw.trim() !== '' ? { kind: 'value', value: Number(raw) } : bad();
    case 'int-string':
      return /^-?\d+$/.test(raw) ? { kind: 'value', value: raw } : bad();
    case 'decimal-string':
      return /^-?\d+(\.\d+)?$/.test(raw) ? { kind: 'value', value: raw } : bad();
    case 'string':
      return { kind: 'value', value: raw };
    case 'date':
      return /^\d{4}-\d{2}-\d{2}$/.test(raw) ? { kind: 'value', value: raw } : bad();
    case 'datetime':
      return /^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2}(\.\d+)?)?$/.test(raw) ? { kind: 'value', value: raw } : bad();
    case 'time':
      return /^-?\d{1,3}:\d{2}:\d{2}(\.\d+)?$/.test(raw) ? { kind: 'value', value: raw } : bad();
    default:
      // TIMESTAMP literals are in the session's time zone; BIT, binary and JSON literals have encodings of their own.
      return { kind: 'backfill', why: `a ${kind} default` };
  }
}

function bad(): DefaultValue {
  return { kind: 'backfill', why: 'a default in a form the producer does not read' };
}

/** MySQL's implicit default of a NOT NULL column added without DEFAULT (what existing rows get). */
function implicitDefault(kind: ReturnType<typeof jsonKind>, labels: readonly string[] | undefined): DefaultValue {
  switch (kind) {
    case 'number':
      return { kind: 'value', value: 0 };
    case 'int-string':
    case 'decimal-string':
      return { kind: 'value', value: '0' };
    case 'string':
      return { kind: 'value', value: labels && labels.length > 0 ? (labels[0] ?? '') : '' };
    case 'date':
      return { kind: 'value', value: '0000-00-00' };
    case 'datetime':
      return { kind: 'value', value: '0000-00-00 00:00:00' };
    case 'time':
      return { kind: 'value', value: '00:00:00' };
    default:
      return { kind: 'backfill', why: `an implicit ${kind} default` };
  }
}

/** An ALTER TABLE of a captured table that does not parse: backfill it rather than risk a divergence. */
function unparsed(statement: string, ctx: DdlContext): DdlAction[] {
  const m = /^\s*ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\s+(?:`([^`]+)`|(\w+))(?:\.(?:`([^`]+)`|(\w+)))?/i.exec(
    statement.replace(/\/\*(?!!)[\s\S]*?\*\//g, ' '),
  );
  if (!m) return [];
  const first = m[1] ?? m[2]!;
  const second = m[3] ?? m[4];
  const t = second ? { db: first, table: second } : { db: ctx.defaultDb, table: first };
  if (!ctx.captures(t.db, t.table)) return [];
  return [{ kind: 'backfill', ...t, reason: `a statement the producer cannot parse: ${statement.slice(0, 200)}` }];
}
