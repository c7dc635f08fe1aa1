/**
 * Schema evolution of a replica, in one place (docs/merge.md, "Schema changes (data path)"): how the replica's
 * columns follow the columns each batch carries.
 *
 * - decide (pure): `decideSchemaChanges` compares the registry's columns with a batch's and says what to add, widen
 *   or rebuild, or refuses the batch (SCHEMA_INCOMPATIBLE);
 * - plan the DDL (pure): `planCreate` for a table seen for the first time, `planSchemaChangeDdl` for the changes
 *   (split by where they can run), `planRegisterColumns` / `planForgetColumns` for the registry;
 * - the registry (I/O): `ColumnRegistry` reads `replica_columns` once per table and keeps what this process knows
 *   (a Lambda container lives long), and is told what a plan it ran left there;
 * - `evolveSchema` (I/O edge): decide, plan, run, record, for one batch of row changes, from the registry's columns
 *   as the caller read them; its transaction checks, after the table's lock, that the registry still holds them
 *   (`planRegistryCheck`).
 *
 * Table-level ALTER events (table-change-plan.ts) rename, add and drop columns in place and record the result with
 * `planRegisterColumns` from here.
 */
import { createHash } from 'node:crypto';
import { POSITION_SQL_TYPE } from '../../../shared/change-event';
import { planTypeChange, type Warehouse } from '../../../shared/type-mapping';
import { type Dialect, failWhen, ident, literal } from './dialect';
import { RetriableMergeError, StalePlanError } from './errors';
import type { TableNames } from './naming';
import {
  columnDefs,
  createViews,
  dataTables,
  dropViews,
  historyView,
  keylessView,
  META,
  metaDefs,
} from './replica-layout';
import { type ReplicaColumn, replicaColumn, type TableModel } from './table-model';
import type { WarehouseClient } from './warehouse-client';

/** A column as the replica has it (from the merge's own column registry). */
export interface ExistingColumn {
  readonly name: string;
  readonly mysqlType: string;
  readonly warehouseType: string;
  /** Position in the primary key; absent for other columns. */
  readonly keyOrdinal?: number;
}

/** The replica as the registry knows it; undefined for a table the merge has not created yet. */
export interface KnownTable {
  readonly columns: readonly ExistingColumn[];
  readonly pk: readonly string[];
}

export interface SchemaChanges {
  /** Columns to add to the replica (new in the source). */
  readonly add: readonly ReplicaColumn[];
  /** VARCHAR columns to widen in place. */
  readonly widen: readonly ReplicaColumn[];
  /** Columns to rebuild under a wider type (add, copy, drop, rename), with the type they get. */
  readonly rebuild: readonly ReplicaColumn[];
}

// ---------------------------------------------------------------------------------------------------------------
// Decide (pure)

/**
 * The schema-change policy (docs/merge.md, "Schema changes"): new columns are added; a type change is followed in
 * place where a warehouse type holds both the old and the new values (`planTypeChange`: text widened, numbers
 * rebuilt under a wider type, a narrower source type kept in the existing column); anything else refuses the batch
 * (SCHEMA_INCOMPATIBLE), so that no value is ever stored under a column of the wrong type. The producer resyncs a
 * table whose type change is incompatible, so that case reaches here only ahead of its resync (the partition key
 * table-pk sends the rows after the ALTER by key, the resync by the table's name, to another shard) or without one.
 * So it is retriable, not poison: retried (handed off, then from the queue with backoff), the batch goes through once
 * the resync is merged, and a row written after the backfill read its key keeps its value; without a resync it ends
 * in the dead-letter queue after its retries, with this reason.
 */
export function decideSchemaChanges(
  existing: readonly ExistingColumn[],
  model: TableModel,
  warehouse: Warehouse = 'redshift',
): SchemaChanges {
  const have = new Map(existing.map((c) => [c.name, c]));
  const add: ReplicaColumn[] = [];
  const widen: ReplicaColumn[] = [];
  const rebuild: ReplicaColumn[] = [];
  const problems: string[] = [];
  for (const col of model.columns) {
    const old = have.get(col.name);
    if (!old) {
      add.push(col);
      continue;
    }
    const plan = planTypeChange(old.warehouseType, col.warehouseType, warehouse);
    if (plan.kind === 'widen-varchar') widen.push({ ...col, warehouseType: plan.to });
    else if (plan.kind === 'rebuild') rebuild.push({ ...col, warehouseType: plan.to });
    else if (plan.kind === 'incompatible') {
      problems.push(
        `column ${JSON.stringify(col.name)} changed from ${old.mysqlType} (${old.warehouseType}) to ${col.mysqlType} (${col.warehouseType})`,
      );
    }
  }
  if (problems.length > 0) {
    throw new RetriableMergeError(
      'SCHEMA_INCOMPATIBLE',
      `${model.db}.${model.table}: ${problems.join('; ')}; the replica cannot follow this change in place: resync it (npx cdc resync ${model.db}.${model.table}; docs/merge.md, "Schema changes")`,
    );
  }
  return { add, widen, rebuild };
}

/** The registry after a batch's schema changes: existing columns (retyped where changed), then added ones. */
export function columnsAfter(existing: readonly ExistingColumn[], changes: SchemaChanges): ExistingColumn[] {
  const retyped = new Map([...changes.widen, ...changes.rebuild].map((c) => [c.name, c]));
  const out: ExistingColumn[] = existing.map((c) => {
    const r = retyped.get(c.name);
    return r ? { ...c, mysqlType: r.mysqlType, warehouseType: r.warehouseType } : c;
  });
  for (const c of changes.add) out.push({ name: c.name, mysqlType: c.mysqlType, warehouseType: c.warehouseType });
  return out;
}

/** The registry's view of a table model (what `ColumnRegistry.read` would read back after `planRegisterColumns`). */
export function registryOf(model: TableModel): ExistingColumn[] {
  return model.columns.map((c) => {
    const k = model.pk.indexOf(c.name);
    return {
      name: c.name,
      mysqlType: c.mysqlType,
      warehouseType: c.warehouseType,
      ...(k < 0 ? {} : { keyOrdinal: k }),
    };
  });
}

/** The table the registry's columns describe (key columns in key order); undefined when it has none. */
export function knownTable(existing: readonly ExistingColumn[]): KnownTable | undefined {
  if (existing.length === 0) return undefined;
  return {
    columns: existing,
    pk: existing
      .filter((c) => c.keyOrdinal !== undefined)
      .sort((a, b) => a.keyOrdinal! - b.keyOrdinal!)
      .map((c) => c.name),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Plan the DDL (pure)

/** DDL for a table seen for the first time: replica (or keyless deltas + view), keys table, history, registry. */
export function planCreate(model: TableModel, names: TableNames, d: Dialect, history: boolean): string[] {
  const cols = columnDefs(model.columns, (c) => c.warehouseType);
  const out: string[] = [];
  if (model.pk.length === 0) {
    out.push(
      `CREATE TABLE IF NOT EXISTS ${names.deltas} (${[...cols, ...metaDefs(d), `${ident(META.delta)} SMALLINT`].join(', ')})`,
    );
    out.push(`DROP VIEW IF EXISTS ${names.replica}`, keylessView(model, names));
  } else {
    out.push(`CREATE TABLE IF NOT EXISTS ${names.replica} (${[...cols, ...metaDefs(d)].join(', ')})`);
    const pkCols = model.pk.map((k) => model.columns.find((c) => c.name === k)!);
    out.push(
      `CREATE TABLE IF NOT EXISTS ${names.keys} (${[
        ...columnDefs(pkCols, (c) => c.warehouseType),
        `${ident(META.position)} ${POSITION_SQL_TYPE}`,
        `${ident(META.deleted)} BOOLEAN`,
      ].join(', ')})`,
    );
    const base = `${model.db}__${model.table}`.slice(0, 50);
    for (const [table, name] of [
      [names.replica, `${base}__replica_pk`],
      [names.keys, `${base}__keys_pk`],
    ] as const) {
      const idx = d.keyIndex(table, name, model.pk);
      if (idx) out.push(idx);
    }
  }
  if (history) {
    out.push(`CREATE TABLE IF NOT EXISTS ${names.versions} (${[...cols, ...metaDefs(d)].join(', ')})`);
    out.push(`DROP VIEW IF EXISTS ${names.history}`, historyView(model, names));
  }
  out.push(...planRegisterColumns(model, names));
  return out;
}

/** Records the replica's columns (the merge's registry, compared with each batch's columns). */
export function planRegisterColumns(model: TableModel, names: TableNames): string[] {
  const rows = model.columns.map((c, i) => {
    const k = model.pk.indexOf(c.name);
    return `(${literal(model.db)}, ${literal(model.table)}, ${literal(c.name)}, ${i}, ${literal(c.mysqlType)}, ${literal(c.warehouseType)}, ${k < 0 ? 'NULL' : k})`;
  });
  const insert = `INSERT INTO ${names.columns} (source_db, source_table, column_name, ordinal, mysql_type, warehouse_type, key_ordinal) VALUES `;
  // One INSERT per 60,000 characters of rows: the Data API takes statements up to 100 KB, and a wide table's rows
  // (long ENUM definitions, up to 1,600 columns) pass that in one.
  const out = [planForgetColumns(model.db, model.table, names)];
  let chunk: string[] = [];
  let size = 0;
  for (const row of rows) {
    if (chunk.length > 0 && size + row.length > STATEMENT_LIST_MAX_CHARS) {
      out.push(insert + chunk.join(', '));
      chunk = [];
      size = 0;
    }
    chunk.push(row);
    size += row.length + 2;
  }
  if (chunk.length > 0) out.push(insert + chunk.join(', '));
  return out;
}

/**
 * A check, run after the table's lock, that the registry still holds exactly the columns a plan was made from, by name
 * and warehouse type; if not, the transaction fails and the plan is made again (merge.ts). Plans are made from the
 * registry read before the lock, and another merge of the table (another shard's batch, or the lake path's) may have
 * changed it since: planned from the old columns, a CREATE would register the old names over a rename, and an ADD
 * COLUMN would register "what it read plus its own column" over another merge's added column (the replica keeps that
 * column, every later batch carrying it tries to add it again and fails: stuck for good); and a numeric rebuild planned
 * from an old type would cast the other merge's wider values back into it (DECIMAL(14,4) values rounded to
 * DECIMAL(12,2)). A column is compared as its `registryEntry`. The check fails its transaction with `failWhen`.
 */
export function planRegistryCheck(
  names: TableNames,
  db: string,
  table: string,
  columns: readonly Pick<ExistingColumn, 'name' | 'warehouseType'>[],
): string {
  const n = columns.length;
  const column = "column_name || '|' || warehouse_type"; // registryEntry, in SQL
  let listed = columns.map((c) => literal(registryEntry(c))).join(', ');
  let compared = column;
  if (listed.length > STATEMENT_LIST_MAX_CHARS) {
    // The Data API takes statements up to 100 KB: a very wide table's list (Redshift allows 1,600 columns, of names up
    // to 127 bytes) is compared by MD5 instead, 35 bytes a column. Redshift's MD5 and PostgreSQL's md5 both hash the
    // text's UTF-8 bytes to lowercase hex (https://docs.aws.amazon.com/redshift/latest/dg/r_MD5.html).
    listed = columns.map((c) => literal(md5(registryEntry(c)))).join(', ');
    compared = `MD5(${column})`;
  }
  const named = n === 0 ? '' : ` OR SUM(CASE WHEN ${compared} IN (${listed}) THEN 1 ELSE 0 END) <> ${n}`;
  return failWhen(
    `COUNT(*) <> ${n}${named}`,
    'replica columns changed: plan again',
    `${names.columns} WHERE source_db = ${literal(db)} AND source_table = ${literal(table)}`,
  );
}

/** A registered column as plans compare it: `name|warehouse type` (a name holding `|` only matches another such). */
export function registryEntry(c: Pick<ExistingColumn, 'name' | 'warehouseType'>): string {
  return `${c.name}|${c.warehouseType}`;
}

/**
 * The most characters of a column list in one statement (the Data API takes statements up to 100 KB): above it the
 * registry check compares MD5s and the registry's INSERT is split.
 */
export const STATEMENT_LIST_MAX_CHARS = 60_000;

const md5 = (text: string): string => createHash('md5').update(text, 'utf8').digest('hex');

/** Forgets a table's columns (its incarnation ended: a table created again under the name starts clean). */
export function planForgetColumns(db: string, table: string, names: TableNames): string {
  return `DELETE FROM ${names.columns} WHERE source_db = ${literal(db)} AND source_table = ${literal(table)}`;
}

/**
 * The DDL of schema changes the data path follows, split by where it can run: `outside` a transaction (Redshift runs
 * ALTER COLUMN TYPE only outside one; widening VARCHAR is idempotent) and `inTransaction` (added columns, rebuilt
 * columns, views and the registry: all or nothing, so a failed attempt leaves nothing half-done to trip a retry).
 * `model` is the table as it is after the change (every live column, not only the batch's).
 */
export function planSchemaChangeDdl(
  model: TableModel,
  changes: SchemaChanges,
  names: TableNames,
  history: boolean,
): { outside: string[]; inTransaction: string[] } {
  if (changes.add.length === 0 && changes.widen.length === 0 && changes.rebuild.length === 0) {
    return { outside: [], inTransaction: [] };
  }
  const targets = dataTables(model, names, history);
  const outside: string[] = [];
  // Redshift (r_ALTER_TABLE, ALTER COLUMN … TYPE): only a VARCHAR's size, and "You can't alter columns within a
  // transaction block", hence outside. A view over the column blocks the change (PostgreSQL refuses it too): the views
  // go first (the transaction below creates them again; if it fails, its retry does).
  if (changes.widen.length > 0) outside.push(...dropViews(model, names, history));
  for (const t of targets)
    for (const c of changes.widen)
      outside.push(`ALTER TABLE ${t} ALTER COLUMN ${ident(c.name)} TYPE ${c.warehouseType}`);
  const inTransaction = [...dropViews(model, names, history)];
  for (const t of targets) {
    // Redshift takes one column per ALTER TABLE ADD COLUMN.
    for (const c of changes.add) inTransaction.push(`ALTER TABLE ${t} ADD COLUMN ${ident(c.name)} ${c.warehouseType}`);
    for (const c of changes.rebuild) inTransaction.push(...rebuildColumn(t, c.name, c.warehouseType));
  }
  if (model.pk.length > 0) {
    for (const c of changes.rebuild.filter((c) => model.pk.includes(c.name)))
      inTransaction.push(...rebuildColumn(names.keys, c.name, c.warehouseType));
  }
  inTransaction.push(...createViews(model, names, history), ...planRegisterColumns(model, names));
  return { outside, inTransaction };
}

/**
 * A column under a wider type, without losing a value: add, copy, drop, rename, in the caller's transaction
 * (r_ALTER_TABLE: ALTER COLUMN TYPE changes only a VARCHAR's size; ADD/DROP/RENAME COLUMN have no transaction-block
 * restriction, only external tables do; one column per ADD). The column moves to the end of the table.
 */
function rebuildColumn(table: string, column: string, type: string): string[] {
  const tmp = `${column}__cdc_widen`;
  return [
    `ALTER TABLE ${table} ADD COLUMN ${ident(tmp)} ${type}`,
    `UPDATE ${table} SET ${ident(tmp)} = CAST(${ident(column)} AS ${type})`,
    `ALTER TABLE ${table} DROP COLUMN ${ident(column)}`,
    `ALTER TABLE ${table} RENAME COLUMN ${ident(tmp)} TO ${ident(column)}`,
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// The registry (I/O)

/**
 * The replica's columns per `db.table`, as `replica_columns` holds them: read once, then kept, and told what the
 * plans this process ran left there, so that a table's next batch needs no read. Forget a table whenever its registry
 * may have changed under this process (a failed merge, a table-level event).
 */
export class ColumnRegistry {
  private readonly known = new Map<string, ExistingColumn[]>();

  /** The replica's columns, in registry order; empty for a table the merge has not created yet (not kept). */
  async read(warehouse: WarehouseClient, db: string, table: string, names: TableNames): Promise<ExistingColumn[]> {
    const key = `${db}.${table}`;
    const cached = this.known.get(key);
    if (cached) return cached;
    const rows = await warehouse.query(
      `SELECT column_name, mysql_type, warehouse_type, key_ordinal FROM ${names.columns} WHERE source_db = ${literal(db)} ` +
        `AND source_table = ${literal(table)} ORDER BY ordinal`,
    );
    const cols = rows.map((r) => ({
      name: String(r.column_name),
      mysqlType: String(r.mysql_type),
      warehouseType: String(r.warehouse_type),
      ...(r.key_ordinal === null || r.key_ordinal === undefined ? {} : { keyOrdinal: Number(r.key_ordinal) }),
    }));
    if (cols.length > 0) this.known.set(key, cols);
    return cols;
  }

  /** What the registry holds once `planRegisterColumns(model)` committed. */
  recorded(model: TableModel): void {
    this.known.set(`${model.db}.${model.table}`, registryOf(model));
  }

  forget(db: string, table: string): void {
    this.known.delete(`${db}.${table}`);
  }

  clear(): void {
    this.known.clear();
  }
}

/**
 * Makes the replica hold a batch's columns before its rows are staged (the I/O edge of this module), planned from
 * `existing`, the registry's columns as the caller read them: creates the table the first time, else runs the changes
 * `decideSchemaChanges` asks for (widening outside a transaction, the rest in one through `runInTransaction`, which
 * takes the table's lock and retries conflicts), and records the registry as the plan left it. Both transactions first
 * check that the registry still holds `existing` (`planRegistryCheck`): if another merge changed it, they fail and the
 * caller plans again. Throws SCHEMA_INCOMPATIBLE (retriable: see `decideSchemaChanges`) for a change the replica
 * cannot follow.
 */
export async function evolveSchema(
  batch: TableModel,
  names: TableNames,
  existing: readonly ExistingColumn[],
  deps: {
    readonly warehouse: WarehouseClient;
    readonly registry: ColumnRegistry;
    readonly history: boolean;
    readonly runInTransaction: (statements: readonly string[]) => Promise<void>;
  },
): Promise<void> {
  const { warehouse, registry, history } = deps;
  const d = warehouse.dialect;
  const check = planRegistryCheck(names, batch.db, batch.table, existing);
  if (existing.length === 0) {
    // In the table's transaction, like any change: CREATE … IF NOT EXISTS alone would be a no-op on a replica another
    // merge created (and maybe renamed columns of) meanwhile, while the registry was overwritten with this batch's names.
    await deps.runInTransaction([check, ...planCreate(batch, names, d, history)]);
    registry.recorded(batch);
    return;
  }
  const changes = decideSchemaChanges(existing, batch, d.warehouse);
  const full: TableModel = {
    ...batch,
    columns: columnsAfter(existing, changes).map((c) =>
      replicaColumn(c.name, c.mysqlType, d.warehouse, c.warehouseType),
    ),
  };
  const ddl = planSchemaChangeDdl(full, changes, names, history);
  if (changes.widen.length > 0 && batch.pk.length > 0) await refuseToNarrow(warehouse, names, batch, changes.widen);
  if (ddl.outside.length > 0) await warehouse.executeAll(ddl.outside);
  if (ddl.inTransaction.length > 0) await deps.runInTransaction([check, ...ddl.inTransaction]);
  registry.recorded(full);
}

/**
 * VARCHAR widening runs outside a transaction (Redshift runs ALTER COLUMN TYPE only there), so the table's lock does not
 * guard it. Planned from a registry read before another merge widened the column further, it would narrow the column
 * again (both warehouses accept a narrower VARCHAR while the values fit), and the registry would then promise more room
 * than the column has: every later longer value would fail for good. So the replica's own column sizes are read first
 * (SVV_COLUMNS on Redshift, `information_schema.columns` on PostgreSQL; keyed replicas: a keyless table's events all
 * travel on one shard): a column already at least as wide means the registry read is stale, and the plan is made again.
 */
async function refuseToNarrow(
  warehouse: WarehouseClient,
  names: TableNames,
  batch: TableModel,
  widen: readonly ReplicaColumn[],
): Promise<void> {
  const d = warehouse.dialect;
  // Redshift: SVV_COLUMNS (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_COLUMNS.html: table_schema,
  // table_name, column_name, data_type, character_maximum_length); PostgreSQL: information_schema.columns, same names.
  const catalog = d.warehouse === 'redshift' ? 'svv_columns' : 'information_schema.columns';
  const rows = await warehouse.query(
    `SELECT column_name, data_type, character_maximum_length FROM ${catalog} WHERE table_schema = ${literal(names.replicaSchema)} ` +
      `AND table_name = ${literal(batch.table)} AND column_name IN (${widen.map((c) => literal(c.name)).join(', ')})`,
  );
  for (const c of widen) {
    const r = rows.find((x) => String(x.column_name) === c.name);
    if (!r) continue;
    const has = /^text$/i.test(String(r.data_type)) ? 'TEXT' : `VARCHAR(${Number(r.character_maximum_length)})`;
    // The same rule as the plan's: anything but "widen" means the column already holds the batch's values.
    if (planTypeChange(has, c.warehouseType, d.warehouse).kind !== 'widen-varchar') {
      throw new StalePlanError(
        `${batch.db}.${batch.table}: column ${JSON.stringify(c.name)} is ${has} in the replica, not narrower than ${c.warehouseType}`,
        new Error('the registry read is older than the replica'),
      );
    }
  }
}
