import type { ChangeEvent } from '../../../shared/change-event';
import {
  type JsonKind,
  jsonKind,
  parseMysqlType,
  planTypeChange,
  type Warehouse,
  warehouseType,
} from '../../../shared/type-mapping';
import { PoisonBatchError } from './errors';

export interface ReplicaColumn {
  readonly name: string;
  readonly mysqlType: string;
  readonly kind: JsonKind;
  readonly warehouseType: string;
}

/** What a batch says a source table looks like (the union of its events' columns). */
export interface TableModel {
  readonly db: string;
  readonly table: string;
  /** Primary key columns; empty for a table without one (see docs/merge.md, "Tables without a primary key"). */
  readonly pk: readonly string[];
  readonly columns: readonly ReplicaColumn[];
}

/** A column as the replica has it (from the merge's own column registry). */
export interface ExistingColumn {
  readonly name: string;
  readonly mysqlType: string;
  readonly warehouseType: string;
  /** Position in the primary key; absent for other columns. */
  readonly keyOrdinal?: number;
}

/**
 * The columns of a batch: every column any event names, in order of first appearance, each with the type of the
 * newest event (by position) that carries it. A column an ALTER dropped stays (the replica keeps it, NULL for newer
 * rows): data is never dropped by the merge.
 */
export function modelFromEvents(events: readonly ChangeEvent[], warehouse: Warehouse): TableModel {
  if (events.length === 0) throw new Error('modelFromEvents: no events');
  const first = events[0]!;
  const byName = new Map<string, { type: string; position: string }>();
  const order: string[] = [];
  let pk = first.pk;
  let pkPosition = first.position;
  for (const e of events) {
    if (e.position > pkPosition) {
      pk = e.pk;
      pkPosition = e.position;
    }
    for (const c of e.columns) {
      const seen = byName.get(c.name);
      if (!seen) {
        order.push(c.name);
        byName.set(c.name, { type: c.type, position: e.position });
      } else if (e.position > seen.position) {
        byName.set(c.name, { type: c.type, position: e.position });
      }
    }
  }
  const columns = order.map((name) => {
    const type = byName.get(name)!.type;
    try {
      return {
        name,
        mysqlType: type,
        kind: jsonKind(parseMysqlType(type)),
        warehouseType: warehouseType(type, warehouse),
      };
    } catch (err) {
      throw new PoisonBatchError(
        'SCHEMA_INCOMPATIBLE',
        `${first.db}.${first.table} column ${JSON.stringify(name)}: ${(err as Error).message}`,
      );
    }
  });
  return { db: first.db, table: first.table, pk, columns };
}

export interface SchemaChanges {
  /** Columns to add to the replica (new in the source). */
  readonly add: readonly ReplicaColumn[];
  /** VARCHAR columns to widen in place. */
  readonly widen: readonly ReplicaColumn[];
  /** Columns to rebuild under a wider type (add, copy, drop, rename), with the type they get. */
  readonly rebuild: readonly ReplicaColumn[];
}

/**
 * The schema-change policy (docs/merge.md, "Schema changes"): new columns are added; a type change is followed in
 * place where a warehouse type holds both the old and the new values (`planTypeChange`: text widened, numbers
 * rebuilt under a wider type, a narrower source type kept in the existing column); anything else makes the batch
 * poison (SCHEMA_INCOMPATIBLE), so that no value is ever stored under a column of the wrong type. The producer
 * resyncs a table whose type change is incompatible, so that case only reaches here without its resync.
 */
export function planSchemaChanges(
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
    throw new PoisonBatchError(
      'SCHEMA_INCOMPATIBLE',
      `${model.db}.${model.table}: ${problems.join('; ')}; the replica cannot follow this change in place: resync it (npx cdc resync ${model.db}.${model.table}; docs/merge.md, "Schema changes")`,
    );
  }
  return { add, widen, rebuild };
}
