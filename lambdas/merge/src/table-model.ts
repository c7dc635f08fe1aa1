import type { ChangeEvent } from '../../../shared/change-event';
import { type JsonKind, jsonKind, parseMysqlType, type Warehouse, warehouseType } from '../../../shared/type-mapping';
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
      return replicaColumn(name, type, warehouse);
    } catch (err) {
      throw new PoisonBatchError(
        'SCHEMA_INCOMPATIBLE',
        `${first.db}.${first.table} column ${JSON.stringify(name)}: ${(err as Error).message}`,
      );
    }
  });
  return { db: first.db, table: first.table, pk, columns };
}

/** A replica column of a MySQL type (its warehouse type derived, unless the registry says which it has). */
export function replicaColumn(name: string, mysqlType: string, warehouse: Warehouse, wType?: string): ReplicaColumn {
  return {
    name,
    mysqlType,
    kind: jsonKind(parseMysqlType(mysqlType)),
    warehouseType: wType ?? warehouseType(mysqlType, warehouse),
  };
}
