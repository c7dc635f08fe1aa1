/**
 * Where the merge keeps things (docs/merge.md, "Warehouse layout"):
 * - replica `<replicaSchema or source db>.<table>`: the source's live rows + _cdc_* metadata columns;
 * - `<stateSchema>."<db>__<table>__keys"`: tombstones, per deleted primary key the position of its delete (a live key's
 *   last applied position is its replica row's `_cdc_position`);
 * - `<stateSchema>."<db>__<table>__state"`: the table's table-level events (truncate, drop, rename, resync) and the lock
 *   that serialises its merges (never a table analysts read: Redshift's LOCK blocks readers);
 * - `<stateSchema>.merge_batches`, `<stateSchema>.replica_columns`: bookkeeping;
 * - history mode: `<replica schema>."<table>__versions"` (every version) and the view `"<table>__history"`.
 */
import { ident } from './dialect';

export interface NamingOptions {
  /** All replicas in this schema; undefined: one schema per source database, named like it. */
  readonly replicaSchema?: string;
  /** Schema of the merge's own tables (and of the raw changelog). */
  readonly stateSchema: string;
}

export interface TableNames {
  readonly replicaSchema: string;
  readonly replica: string;
  readonly keys: string;
  readonly versions: string;
  readonly history: string;
  /** Keyless tables: the changes (deltas) the replica view sums up. */
  readonly deltas: string;
  readonly batches: string;
  readonly columns: string;
  readonly state: string;
}

/** Where the replica of an ended incarnation is kept under the `archive` policy (position makes it unique). */
export function archiveName(table: string, position: string): string {
  return `${table}__dropped_${position.replace(/\./g, '_')}`;
}

export function tableNames(db: string, table: string, opts: NamingOptions): TableNames {
  const rs = opts.replicaSchema ?? db;
  const q = (schema: string, name: string) => `${ident(schema)}.${ident(name)}`;
  return {
    replicaSchema: rs,
    replica: q(rs, table),
    keys: q(opts.stateSchema, `${db}__${table}__keys`),
    versions: q(rs, `${table}__versions`),
    history: q(rs, `${table}__history`),
    deltas: q(opts.stateSchema, `${db}__${table}__deltas`),
    batches: q(opts.stateSchema, 'merge_batches'),
    columns: q(opts.stateSchema, 'replica_columns'),
    state: q(opts.stateSchema, `${db}__${table}__state`),
  };
}
