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

/** A column as the replica has it (from the merge's own column registry). */
export interface ExistingColumn {
  readonly name: string;
  readonly mysqlType: string;
  readonly warehouseType: string;
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
}

const VARCHAR = /^VARCHAR\((\d+)\)$/i;

/**
 * The schema-change policy (docs/merge.md): new columns are added; a text column whose size grows is widened; a
 * column whose warehouse type stays the same is fine (e.g. INT(11) → INT);
 * anything else (a type change the warehouse cannot follow in place) makes the batch poison, so that no value is
 * ever stored under a column of the wrong type. Columns dropped in the source stay in the replica.
 */
export function planSchemaChanges(existing: readonly ExistingColumn[], model: TableModel): SchemaChanges {
  const have = new Map(existing.map((c) => [c.name, c]));
  const add: ReplicaColumn[] = [];
  const widen: ReplicaColumn[] = [];
  const problems: string[] = [];
  for (const col of model.columns) {
    const old = have.get(col.name);
    if (!old) {
      add.push(col);
      continue;
    }
    if (old.warehouseType === col.warehouseType) continue;
    const a = VARCHAR.exec(old.warehouseType);
    const b = VARCHAR.exec(col.warehouseType);
    if (a && b) {
      if (Number(b[1]) > Number(a[1])) widen.push(col);
      continue; // narrower: the existing, wider column holds every value
    }
    if (old.warehouseType === 'TEXT' && b) continue;
    problems.push(
      `column ${JSON.stringify(col.name)} changed from ${old.mysqlType} (${old.warehouseType}) to ${col.mysqlType} (${col.warehouseType})`,
    );
  }
  if (problems.length > 0) {
    throw new PoisonBatchError(
      'SCHEMA_INCOMPATIBLE',
      `${model.db}.${model.table}: ${problems.join('; ')}; the replica cannot follow this change in place: rebuild it (docs/merge.md, "Schema changes")`,
    );
  }
  return { add, widen };
}
