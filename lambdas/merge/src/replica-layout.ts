/**
 * What a replica looks like in the warehouse (pure; docs/merge.md, "Warehouse layout"): the metadata columns every
 * replica row carries, the tables that hold the source's columns (replica or keyless deltas, and history versions),
 * and the views over them. Shared by the row merge (merge-plan.ts), schema evolution (schema-evolution.ts) and
 * table-level events (table-change-plan.ts), which is why it is a module of its own: each of them imports it, it
 * imports none of them.
 */
import { POSITION_SQL_TYPE } from '../../../shared/change-event';
import { type Dialect, ident } from './dialect';
import type { TableNames } from './naming';
import type { ReplicaColumn, TableModel } from './table-model';

/** Metadata columns of every replica (documented in docs/merge.md). */
export const META = {
  position: '_cdc_position',
  op: '_cdc_op',
  commitTs: '_cdc_commit_ts',
  loadedAt: '_cdc_loaded_at',
  deleted: '_cdc_deleted',
  delta: '_cdc_delta',
  count: '_cdc_count',
} as const;

/** `"name" type` for each column. */
export function columnDefs(cols: readonly ReplicaColumn[], type: (c: ReplicaColumn) => string): string[] {
  return cols.map((c) => `${ident(c.name)} ${type(c)}`);
}

/** The metadata columns of a replica, deltas or versions table. */
export function metaDefs(d: Dialect): string[] {
  return [
    `${ident(META.position)} ${POSITION_SQL_TYPE}`,
    `${ident(META.op)} VARCHAR(8)`,
    `${ident(META.commitTs)} ${d.timestampType}`,
    `${ident(META.loadedAt)} ${d.timestampType}`,
  ];
}

/** Tables holding the source's columns: the replica (or a keyless table's deltas) and, in history mode, versions. */
export function dataTables(model: Pick<TableModel, 'pk'>, names: TableNames, history: boolean): string[] {
  const out = model.pk.length === 0 ? [names.deltas] : [names.replica];
  if (history) out.push(names.versions);
  return out;
}

/** Views over the table's data (dropped before a change and created again after: a view keeps its columns). */
export function dropViews(model: Pick<TableModel, 'pk'>, names: TableNames, history: boolean): string[] {
  const out: string[] = [];
  if (history) out.push(`DROP VIEW IF EXISTS ${names.history}`);
  if (model.pk.length === 0) out.push(`DROP VIEW IF EXISTS ${names.replica}`);
  return out;
}

export function createViews(model: TableModel, names: TableNames, history: boolean): string[] {
  const out: string[] = [];
  if (model.pk.length === 0) out.push(keylessView(model, names));
  if (history) out.push(historyView(model, names));
  return out;
}

/** The history view: every version with its validity (docs/merge.md, "History mode"). */
export function historyView(model: TableModel, names: TableNames): string {
  const part = model.pk.length > 0 ? `PARTITION BY ${model.pk.map(ident).join(', ')} ` : '';
  const cols = model.columns.map((c) => ident(c.name)).join(', ');
  return (
    `CREATE VIEW ${names.history} AS SELECT ${cols}, ${ident(META.op)}, ${ident(META.position)}, ` +
    `${ident(META.commitTs)} AS valid_from, LEAD(${ident(META.commitTs)}) OVER (${part}ORDER BY ${ident(META.position)}) AS valid_to, ` +
    `${ident(META.op)} = 'delete' AS is_deleted FROM ${names.versions}`
  );
}

/** A keyless table's replica: the multiset its deltas sum up to (docs/merge.md, "Tables without a primary key"). */
export function keylessView(model: TableModel, names: TableNames): string {
  const cols = model.columns.map((c) => ident(c.name)).join(', ');
  return (
    `CREATE VIEW ${names.replica} AS SELECT ${cols}, SUM(${ident(META.delta)}) AS ${ident(META.count)} ` +
    `FROM ${names.deltas} GROUP BY ${cols} HAVING SUM(${ident(META.delta)}) > 0`
  );
}
