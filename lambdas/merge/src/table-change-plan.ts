/**
 * Pure SQL planning of table-level events (contract v2: truncate, drop, rename, alter, resync; docs/merge.md,
 * "Source operation → what the replica does"). Every plan runs in one transaction after the table's lock, and is
 * order-insensitive the same way row changes are:
 * - truncate / drop / rename / resync record their position in the table's state table; every replica row older
 *   than it is removed now, and every change older than it that arrives later is discarded by the row merge
 *   (`rewriteForHistory`, before staging), so a replayed or late batch cannot bring rows back;
 * - drop / rename / resync also end the table's incarnation: the replica is dropped (or archived, by policy) and
 *   the registry forgotten, so a table created again under the name starts clean with its own columns. If rows
 *   newer than the event are already in the replica (batches merged out of order), only the older rows go;
 * - alter renames, adds (with the default every existing row received) and drops columns in place.
 */
import type { ChangeEvent, ColumnChange } from '../../../shared/change-event';
import type { Warehouse } from '../../../shared/type-mapping';
import { type Dialect, failWhen, ident, literal } from './dialect';
import { PoisonBatchError } from './errors';
import { FLOOR_OPS } from './merge-plan';
import { archiveName, type TableNames } from './naming';
import { createViews, dataTables, dropViews, META } from './replica-layout';
import { type KnownTable, planForgetColumns, planRegisterColumns } from './schema-evolution';
import { CSV_NULL, csvField } from './stage-csv';
import { type ReplicaColumn, replicaColumn, type TableModel } from './table-model';

/** What happens to the replica of a dropped (or renamed-away) table. */
export type DroppedTablePolicy = 'drop' | 'archive';

export interface TableChangeOptions {
  readonly history: boolean;
  readonly droppedTablePolicy: DroppedTablePolicy;
  /** True when the replica already holds rows newer than the event (batches merged out of order). */
  readonly newerRows: boolean;
  /**
   * The column lists the row changes newer than the event carried, where they differed from the registry's
   * (`TableHistory.shapes` after the event's position): with newer rows of a table dropped and created again, its
   * new columns. @default none
   */
  readonly newerShapes?: readonly (readonly string[])[];
}

export interface TableChangePlan {
  readonly statements: string[];
  /** The registry after the plan: undefined when the incarnation ended (the next row change creates it anew). */
  readonly after: KnownTable | undefined;
}

function modelOf(db: string, table: string, known: KnownTable, warehouse: Warehouse): TableModel {
  return {
    db,
    table,
    pk: known.pk,
    columns: known.columns.map((c) => replicaColumn(c.name, c.mysqlType, warehouse, c.warehouseType)),
  };
}

/** The statements for one table-level event (not `range`, planned by range-plan.ts). */
export function planTableChange(
  e: ChangeEvent,
  known: KnownTable | undefined,
  names: TableNames,
  d: Dialect,
  opts: TableChangeOptions,
): TableChangePlan {
  const record = planStateRecord(e, names, d);
  if (e.op === 'alter') {
    if (!known) return { statements: [record], after: undefined };
    return planAlter(e, known, names, d, opts.history, [record]);
  }
  if (!known) return { statements: [record], after: undefined };
  const model = modelOf(e.db, e.table, known, d.warehouse);
  const keyed = known.pk.length > 0;
  const older = `${ident(META.position)} < ${literal(e.position)}`;
  const out = [record];
  if (keyed && opts.history) {
    // History keeps the end of every live row's last version: a delete version at the event's position (once: the
    // single-level correlated NOT EXISTS is a pattern Redshift decorrelates, r_correlated_subqueries).
    const cols = known.columns.map((c) => ident(c.name));
    out.push(
      `INSERT INTO ${names.versions} (${[...cols, ident(META.position), ident(META.op), ident(META.commitTs), ident(META.loadedAt)].join(', ')}) ` +
        `SELECT ${[...cols, literal(e.position), "'delete'", commitTsLiteral(e.ts_ms, d), d.now].join(', ')} FROM ${names.replica} WHERE ${older} ` +
        `AND NOT EXISTS (SELECT 1 FROM ${names.versions} v WHERE ${[...known.pk.map((k) => `v.${ident(k)} = ${names.replica}.${ident(k)}`), `v.${ident(META.position)} = ${literal(e.position)}`].join(' AND ')})`,
    );
  }
  if (e.op === 'truncate' || opts.newerRows) {
    if (keyed) out.push(`DELETE FROM ${names.replica} WHERE ${older}`, `DELETE FROM ${names.keys} WHERE ${older}`);
    else out.push(`DELETE FROM ${names.deltas} WHERE ${older}`);
    if (e.op === 'truncate' || !keyed) return { statements: out, after: known };
    return dropOldColumns(e, known, names, d, opts, out);
  }

  // drop, rename (the old name ends), resync (rebuilt from the events after it and a backfill).
  // `newerRows` was read before the table's lock. Meanwhile another batch of the table may have merged rows of its next
  // incarnation (another shard's: the partition key table-pk spreads a table's rows over shards, while this event goes
  // with the table's name). Checked again under the lock: any such row fails this transaction (`failWhen`), nothing is
  // dropped, and the merge plans the event again, then seeing the newer rows.
  // A keyed table's tombstones count as its rows: a key of the next incarnation deleted (its delete merged first)
  // keeps its tombstone, or a late insert of it would come back.
  for (const table of keyed ? [names.replica, names.keys] : [names.deltas]) {
    out.push(
      failWhen(
        'COUNT(*) > 0',
        'newer rows arrived: plan again',
        `${table} WHERE ${ident(META.position)} > ${literal(e.position)}`,
      ),
    );
  }
  const policy: DroppedTablePolicy = e.op === 'resync' ? 'drop' : opts.droppedTablePolicy;
  out.push(...dropViews(model, names, opts.history));
  if (keyed) {
    if (policy === 'archive') {
      // RENAME TO keeps the table in its schema; names up to 127 bytes (r_ALTER_TABLE, RENAME TO).
      out.push(`ALTER TABLE ${names.replica} RENAME TO ${ident(archiveName(e.table, e.position))}`);
    } else {
      out.push(`DROP TABLE IF EXISTS ${names.replica}`);
    }
    out.push(`DROP TABLE IF EXISTS ${names.keys}`);
  } else {
    if (policy === 'archive') {
      // The keyless replica is a view over deltas: archive what it shows as a table.
      const archived = `${ident(names.replicaSchema)}.${ident(archiveName(e.table, e.position))}`;
      const cols = known.columns.map((c) => ident(c.name)).join(', ');
      out.push(
        `CREATE TABLE ${archived} AS SELECT ${cols}, SUM(${ident(META.delta)}) AS ${ident(META.count)} FROM ${names.deltas} ` +
          `GROUP BY ${cols} HAVING SUM(${ident(META.delta)}) > 0`,
      );
    }
    out.push(`DROP TABLE IF EXISTS ${names.deltas}`);
  }
  if (opts.history) {
    if (policy === 'archive')
      out.push(`ALTER TABLE ${names.versions} RENAME TO ${ident(`${archiveName(e.table, e.position)}__versions`)}`);
    else out.push(`DROP TABLE IF EXISTS ${names.versions}`);
  }
  out.push(planForgetColumns(e.db, e.table, names));
  return { statements: out, after: undefined };
}

/**
 * A DROP (RENAME, resync) merged after rows of the table's next incarnation (another shard's, under the partition key
 * table-pk): those rows are kept and the older ones deleted, but the new rows also added their columns to the old
 * replica, so the old incarnation's columns the new one lacks would stay (NULL, or an old row's value). The column
 * lists the newer rows carried (`newerShapes`, recorded by their merges) say which columns the new incarnation has:
 * the others go, as a DROP COLUMN would. With no such list, the newer rows carried exactly the registered columns.
 */
function dropOldColumns(
  e: ChangeEvent,
  known: KnownTable,
  names: TableNames,
  d: Dialect,
  opts: TableChangeOptions,
  out: string[],
): TableChangePlan {
  const shapes = opts.newerShapes ?? [];
  if (shapes.length === 0) return { statements: out, after: known };
  const kept = new Set(shapes.flat());
  const gone: ColumnChange[] = known.columns
    .filter((c) => !kept.has(c.name))
    .map((c) => ({ kind: 'drop_column', name: c.name }));
  return planAlter({ ...e, change: { columns: gone } }, known, names, d, opts.history, out);
}

/**
 * A run of row changes' column lists that differ from the registry's (a table created, changed, or dropped and created
 * again with another shape), each recorded in the table's state at the newest position carrying it (`op` 'shape'),
 * so that a DROP merged after rows of the next incarnation knows that incarnation's columns (`dropOldColumns`).
 * Keyed tables only: a keyless table's events all travel by its name, on one shard, in order.
 */
export function planShapeRecords(
  events: readonly ChangeEvent[],
  registered: readonly string[],
  names: TableNames,
  d: Dialect,
): string[] {
  if (events.length === 0 || events[0]!.pk.length === 0) return [];
  // On the merge's path for every event: the usual event (the registry's columns) costs a length and a set lookup per
  // column, nothing allocated.
  const known = new Set(registered);
  const shapes = new Map<string, { position: string; columns: string[] }>();
  for (const e of events) {
    if (e.columns.length === known.size && e.columns.every((c) => known.has(c.name))) continue;
    const columns = e.columns.map((c) => c.name);
    const key = [...columns].sort().join('\u0000');
    const seen = shapes.get(key);
    if (!seen || e.position > seen.position) shapes.set(key, { position: e.position, columns });
  }
  return [...shapes.values()].map((s) => stateRecord(names, d, s.position, 'shape', JSON.stringify(s.columns)));
}

/** The event's record in the table's state table (once per position): the floor and the ALTER history read it. */
export function planStateRecord(e: ChangeEvent, names: TableNames, d: Dialect): string {
  return stateRecord(names, d, e.position, e.op, detail(e).slice(0, 60000));
}

/** A record in the table's state table, written once per position (a replayed event finds it there). */
function stateRecord(names: TableNames, d: Dialect, position: string, op: string, text: string): string {
  return `INSERT INTO ${names.state} (${ident(META.position)}, op, detail, applied_at) SELECT ${literal(position)}, ${literal(op)}, ${literal(text)}, ${d.now} WHERE NOT EXISTS (SELECT 1 FROM ${names.state} WHERE ${ident(META.position)} = ${literal(position)})`;
}

function detail(e: ChangeEvent): string {
  const c = e.change ?? {};
  // The column changes are read back by `rewriteForHistory` (late and replayed events).
  if (e.op === 'alter') return JSON.stringify(c.columns ?? []);
  if (e.op === 'rename' && c.rename_to) return `renamed to ${c.rename_to.db}.${c.rename_to.table}`;
  if (e.op === 'range') return `whole-table read of a keyless table (low watermark ${c.range?.low_position ?? '?'})`;
  return c.reason ?? c.statement ?? '';
}

function commitTsLiteral(ms: number, d: Dialect): string {
  return `CAST(${literal(new Date(ms).toISOString().replace('T', ' ').replace('Z', '+00'))} AS ${d.timestampType})`;
}

/** Column changes in place; views are dropped first and created again from the columns after the change. */
function planAlter(
  e: ChangeEvent,
  known: KnownTable,
  names: TableNames,
  d: Dialect,
  history: boolean,
  /** What goes first: the event's state record (and, for a DROP's old columns, its deletes). */
  before: readonly string[],
): TableChangePlan {
  let columns = [...known.columns];
  let pk = [...known.pk];
  let changed = false;
  const keyed = pk.length > 0;
  const tables = dataTables({ pk }, names, history);
  const ddl: string[] = [];
  const backfillDefaults: string[] = [];
  for (const change of e.change?.columns ?? []) {
    switch (change.kind) {
      case 'rename_column': {
        const at = columns.findIndex((c) => c.name === change.from);
        if (at < 0) break; // applied already, or unknown here
        const target = columns.find((c) => c.name === change.to);
        if (target) {
          // Both names: rows newer than this RENAME were merged before it and brought the new name as a new column
          // (another shard's batch, as the partition key table-pk spreads a table's rows over shards while this event
          // goes by the table's name). A row whose last change is older than the RENAME holds its values under the
          // old name (full row images: a newer change carries every column under the new one): they move over, then
          // the old name goes as a DROP COLUMN would. Key columns are not merged so (the keys table is keyed on one
          // name): left as they are, as before. Redshift: `UPDATE table SET column = expression WHERE condition`
          // (https://docs.aws.amazon.com/redshift/latest/dg/r_UPDATE.html), no alias and no qualified target column.
          if (pk.includes(change.from) || pk.includes(change.to)) break;
          for (const t of tables) {
            ddl.push(
              `UPDATE ${t} SET ${ident(change.to)} = CAST(${ident(change.from)} AS ${target.warehouseType}) ` +
                `WHERE ${ident(META.position)} < ${literal(e.position)}`,
            );
          }
          if (keyed) ddl.push(`ALTER TABLE ${names.replica} DROP COLUMN ${ident(change.from)}`);
          columns = columns.filter((c) => c.name !== change.from);
          changed = true;
          break;
        }
        const targets = [...tables, ...(keyed && pk.includes(change.from) ? [names.keys] : [])];
        for (const t of targets)
          ddl.push(`ALTER TABLE ${t} RENAME COLUMN ${ident(change.from)} TO ${ident(change.to)}`);
        columns[at] = { ...columns[at]!, name: change.to };
        changed = true;
        pk = pk.map((k) => (k === change.from ? change.to : k));
        break;
      }
      case 'add_column': {
        let col = columns.find((c) => c.name === change.name);
        if (!col) {
          const rc = replicaColumn(change.name, change.type, d.warehouse);
          for (const t of tables) ddl.push(`ALTER TABLE ${t} ADD COLUMN ${ident(rc.name)} ${rc.warehouseType}`);
          col = { name: rc.name, mysqlType: rc.mysqlType, warehouseType: rc.warehouseType };
          columns.push(col);
          changed = true;
        }
        if (change.default !== null) {
          // Every row that existed when the column was added got the default in the source (MySQL writes no row
          // events for them): rows older than the ALTER get it here; newer ones carry their own value.
          const value = defaultValue(
            e,
            change,
            replicaColumn(col.name, change.type, d.warehouse, col.warehouseType),
            d,
          );
          backfillDefaults.push(
            `UPDATE ${keyed ? names.replica : names.deltas} SET ${ident(col.name)} = ${value} ` +
              `WHERE ${ident(META.position)} < ${literal(e.position)}`,
          );
        }
        break;
      }
      case 'drop_column': {
        if (!columns.some((c) => c.name === change.name) || pk.includes(change.name)) break;
        // Keyed replicas lose the column, as the source did; keyless deltas and history versions keep it (their
        // views stop showing it), so that a row written before the drop still cancels against its deletion. A keyed
        // replica has no view over it: DROP COLUMN defaults to RESTRICT, refused when a view references the column
        // (r_ALTER_TABLE, DROP COLUMN / RESTRICT).
        if (keyed) ddl.push(`ALTER TABLE ${names.replica} DROP COLUMN ${ident(change.name)}`);
        columns = columns.filter((c) => c.name !== change.name);
        changed = true;
        break;
      }
    }
  }
  if (!changed && backfillDefaults.length === 0) return { statements: [...before], after: known };
  const after: KnownTable = { columns, pk };
  const model = modelOf(e.db, e.table, after, d.warehouse);
  return {
    statements: [
      ...before,
      ...dropViews(model, names, history),
      ...ddl,
      ...backfillDefaults,
      ...createViews(model, names, history),
      ...planRegisterColumns(model, names),
    ],
    after,
  };
}

function defaultValue(
  e: ChangeEvent,
  change: Extract<ColumnChange, { kind: 'add_column' }>,
  col: ReplicaColumn,
  d: Dialect,
): string {
  if (col.kind === 'json' || col.kind === 'base64') {
    throw new PoisonBatchError(
      'SCHEMA_INCOMPATIBLE',
      `${e.db}.${e.table} at ${e.position}: column ${JSON.stringify(change.name)} added with a ${col.kind} default; the producer backfills such columns instead`,
    );
  }
  const text = csvField(col, change.default, d, `${e.db}.${e.table} at ${e.position}`);
  if (text === CSV_NULL) return 'NULL';
  const raw = text.startsWith('"') ? text.slice(1, -1).replace(/""/g, '"') : text;
  return `CAST(${literal(raw)} AS ${col.warehouseType})`;
}

/** The table-level events the state table remembers, oldest first (`SELECT position, op, detail`). */
export interface TableHistory {
  /** Newest truncate/drop/rename/resync (or whole-table read of a keyless table): every change older than it is gone. */
  readonly floor: string | undefined;
  readonly alters: readonly { readonly position: string; readonly columns: readonly ColumnChange[] }[];
  /** Column lists row changes carried that differed from the registry's (`planShapeRecords`), oldest first. */
  readonly shapes: readonly { readonly position: string; readonly columns: readonly string[] }[];
}

export function tableHistory(rows: readonly Record<string, unknown>[]): TableHistory {
  let floor: string | undefined;
  const alters: { position: string; columns: ColumnChange[] }[] = [];
  const shapes: { position: string; columns: string[] }[] = [];
  for (const r of rows) {
    const position = String(r[META.position]).trim();
    const op = String(r.op);
    if (op === 'shape') {
      try {
        shapes.push({ position, columns: JSON.parse(String(r.detail)) as string[] });
      } catch {
        // unreadable: a DROP merged after newer rows keeps every column, as before
      }
    } else if (op === 'alter') {
      try {
        alters.push({ position, columns: JSON.parse(String(r.detail)) as ColumnChange[] });
      } catch {
        // an unreadable record (truncated detail): the replica still follows the events
      }
    } else if ((FLOOR_OPS as readonly string[]).includes(op) && (floor === undefined || position > floor)) {
      floor = position;
    }
  }
  alters.sort((a, b) => (a.position < b.position ? -1 : 1));
  shapes.sort((a, b) => (a.position < b.position ? -1 : 1));
  return { floor, alters, shapes };
}

/**
 * Row changes as the replica's current schema reads them (pure): changes older than the floor are dropped; a change
 * older than an ALTER the merge applied already (a replay, a late batch) gets that ALTER's column renames, loses
 * its dropped columns, and gains an added column's default. Without this, an old event would add back a renamed or
 * dropped column.
 */
export function rewriteForHistory(events: readonly ChangeEvent[], history: TableHistory): ChangeEvent[] {
  const out: ChangeEvent[] = [];
  // Events after the newest ALTER (nearly all) are taken as they are, without looking for the ALTERs after them.
  let newestAlter = '';
  for (const a of history.alters) if (a.position > newestAlter) newestAlter = a.position;
  for (const e of events) {
    if (history.floor !== undefined && e.position < history.floor) continue;
    if (e.position >= newestAlter) {
      out.push(e);
      continue;
    }
    const later = history.alters.filter((a) => a.position > e.position);
    if (later.length === 0) {
      out.push(e);
      continue;
    }
    let columns = [...e.columns];
    const images = [e.before ? { ...e.before } : null, e.after ? { ...e.after } : null];
    let pk = [...e.pk];
    for (const a of later) {
      for (const c of a.columns) {
        if (c.kind === 'rename_column' && columns.some((x) => x.name === c.from)) {
          columns = columns.map((x) => (x.name === c.from ? { ...x, name: c.to } : x));
          pk = pk.map((k) => (k === c.from ? c.to : k));
          for (const img of images) {
            if (img && c.from in img) {
              img[c.to] = img[c.from]!;
              delete img[c.from];
            }
          }
        } else if (c.kind === 'drop_column') {
          columns = columns.filter((x) => x.name !== c.name);
          for (const img of images) if (img) delete img[c.name];
        } else if (c.kind === 'add_column' && !columns.some((x) => x.name === c.name)) {
          columns.push({ name: c.name, type: c.type });
          for (const img of images) if (img) img[c.name] = c.default;
        }
      }
    }
    out.push({ ...e, pk, columns, before: images[0] ?? null, after: images[1] ?? null });
  }
  return out;
}
