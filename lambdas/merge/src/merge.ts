/**
 * Orchestrates the merge of a batch: per source table, make the replica's schema follow the events (DDL outside the
 * data transaction, idempotent), then run the planned steps in one transaction, retrying serialization conflicts.
 */
import type { ChangeEvent } from '../../../shared/change-event';
import { groupByTable } from './batch';
import { MergeError, PoisonBatchError, RetriableMergeError } from './errors';
import { planBookkeeping, planCreate, planMerge, planSchemaChanges } from './merge-plan';
import { type NamingOptions, tableNames } from './naming';
import { buildStageCsv } from './stage-csv';
import { planSchemaChanges as decideSchemaChanges, type ExistingColumn, modelFromEvents } from './table-model';
import type { WarehouseClient } from './warehouse-client';

export interface MergeContext {
  readonly warehouse: WarehouseClient;
  readonly naming: NamingOptions;
  /** `db.table` names kept in history mode. */
  readonly historyTables: ReadonlySet<string>;
  /** Attempts for serialization conflicts. @default 5 */
  readonly maxAttempts?: number;
  readonly onRetry?: (table: string, attempt: number, err: Error) => void;
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface TableResult {
  readonly db: string;
  readonly table: string;
  readonly events: number;
  /** Changes per operation in the batch (after de-duplication within the batch by key). */
  readonly byOp: Readonly<Record<string, number>>;
  readonly maxCommitMs: number;
  readonly maxPosition: string;
}

/** Columns the replica has, per `db.table`, as far as this process knows (a Lambda container lives long). */
const knownColumns = new Map<string, ExistingColumn[]>();
const bookkeepingReady = new Set<string>();

/** Forget cached schema knowledge (tests, or after an error that may mean another merge changed the schema). */
export function resetSchemaCache(): void {
  knownColumns.clear();
  bookkeepingReady.clear();
}

async function existingColumns(
  ctx: MergeContext,
  db: string,
  table: string,
  columnsTable: string,
): Promise<ExistingColumn[]> {
  const key = `${db}.${table}`;
  const cached = knownColumns.get(key);
  if (cached) return cached;
  const rows = await ctx.warehouse.query(
    `SELECT column_name, mysql_type, warehouse_type FROM ${columnsTable} WHERE source_db = '${db.replace(/'/g, "''")}' ` +
      `AND source_table = '${table.replace(/'/g, "''")}' ORDER BY ordinal`,
  );
  const cols = rows.map((r) => ({
    name: String(r.column_name),
    mysqlType: String(r.mysql_type),
    warehouseType: String(r.warehouse_type),
  }));
  if (cols.length > 0) knownColumns.set(key, cols);
  return cols;
}

/** Merges one table's events. */
export async function mergeTable(
  events: readonly ChangeEvent[],
  batchId: string,
  ctx: MergeContext,
): Promise<TableResult> {
  const d = ctx.warehouse.dialect;
  const model = modelFromEvents(events, d.warehouse);
  const key = `${model.db}.${model.table}`;
  const names = tableNames(model.db, model.table, ctx.naming);
  const history = ctx.historyTables.has(key);
  try {
    const bkKey = `${ctx.naming.stateSchema}|${names.replicaSchema}`;
    if (!bookkeepingReady.has(bkKey)) {
      await ctx.warehouse.executeAll(planBookkeeping(names, ctx.naming.stateSchema));
      bookkeepingReady.add(bkKey);
    }
    const existing = await existingColumns(ctx, model.db, model.table, names.columns);
    if (existing.length === 0) {
      await ctx.warehouse.executeAll(planCreate(model, names, d, history));
    } else {
      const changes = decideSchemaChanges(existing, model);
      await ctx.warehouse.executeAll(planSchemaChanges(model, changes, names, history));
    }
    knownColumns.set(key, mergeColumnLists(existing, model.columns));

    let maxPosition = '';
    let maxCommitMs = 0;
    for (const e of events) {
      if (e.position > maxPosition) maxPosition = e.position;
      if (e.ts_ms > maxCommitMs) maxCommitMs = e.ts_ms;
    }
    const csv = buildStageCsv(events, model, d);
    const stageLocation = ctx.warehouse.stageLocation(`${batchId}/${model.db}.${model.table}`);
    const steps = planMerge(model, names, d, {
      batchId,
      events: events.length,
      maxPosition,
      maxCommitMs,
      history,
      ...(stageLocation ? { stageLocation } : {}),
    });
    const attempts = ctx.maxAttempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        await ctx.warehouse.runTransaction(steps, csv, stageLocation);
        break;
      } catch (err) {
        const retriable = err instanceof RetriableMergeError && err.code === 'SERIALIZATION_CONFLICT';
        if (!retriable || attempt >= attempts) throw err;
        ctx.onRetry?.(key, attempt, err as Error);
        await (ctx.sleep ?? defaultSleep)(Math.min(2000, 50 * 2 ** attempt) * (0.5 + Math.random()));
      }
    }
    return {
      db: model.db,
      table: model.table,
      events: events.length,
      byOp: countLatestOps(events),
      maxCommitMs,
      maxPosition,
    };
  } catch (err) {
    // Another merge may have changed the schema under us; re-read it next time.
    knownColumns.delete(key);
    throw err;
  }
}

function mergeColumnLists(existing: readonly ExistingColumn[], cols: readonly ExistingColumn[]): ExistingColumn[] {
  const byName = new Map(existing.map((c) => [c.name, c]));
  for (const c of cols) {
    const old = byName.get(c.name);
    // Keep the wider of two VARCHARs (the replica was only ever widened).
    if (!old || old.warehouseType !== c.warehouseType) byName.set(c.name, widest(old, c));
  }
  return [...byName.values()];
}

function widest(a: ExistingColumn | undefined, b: ExistingColumn): ExistingColumn {
  if (!a) return b;
  const n = (t: string) => Number(/^VARCHAR\((\d+)\)$/i.exec(t)?.[1] ?? Number.NaN);
  return n(a.warehouseType) > n(b.warehouseType) ? a : b;
}

function countLatestOps(events: readonly ChangeEvent[]): Record<string, number> {
  const latest = new Map<string, ChangeEvent>();
  for (const e of events) {
    const image = (e.op === 'delete' ? e.before : e.after) ?? {};
    const k = e.pk.length > 0 ? JSON.stringify(e.pk.map((c) => image[c])) : e.position;
    const prev = latest.get(k);
    if (!prev || e.position > prev.position) latest.set(k, e);
  }
  const counts: Record<string, number> = {};
  for (const e of latest.values()) counts[e.op] = (counts[e.op] ?? 0) + 1;
  return counts;
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Merges a batch that may hold several tables. Every table is attempted; if some fail, the first poison error (or
 * else the first error) is thrown after the others were applied, so one bad table never holds up the rest.
 */
export async function mergeEvents(
  events: readonly ChangeEvent[],
  batchId: string,
  ctx: MergeContext,
): Promise<TableResult[]> {
  const results: TableResult[] = [];
  const errors: Error[] = [];
  for (const group of groupByTable(events).values()) {
    try {
      results.push(await mergeTable(group, batchId, ctx));
    } catch (err) {
      errors.push(err as Error);
    }
  }
  if (errors.length > 0) {
    throw (
      errors.find((e) => e instanceof PoisonBatchError) ?? errors.find((e) => e instanceof MergeError) ?? errors[0]!
    );
  }
  return results;
}
