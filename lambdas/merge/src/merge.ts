/**
 * Orchestrates the merge of a batch: per source table, make the replica's schema follow the events (schema-evolution.ts:
 * DDL outside the data transaction, idempotent), then run the planned steps in one transaction, retrying
 * serialization conflicts.
 */
import { type ChangeEvent, isTableOp, keyValues } from '../../../shared/change-event';
import { groupByTable } from './batch';
import type { MergeConfig } from './config';
import { ident, literal } from './dialect';
import { MergeError, PoisonBatchError, RetriableMergeError } from './errors';
import { planBatchRecord, planBookkeeping, planMerge, planStateTable, type Step } from './merge-plan';
import { type NamingOptions, type TableNames, tableNames } from './naming';
import { planKeylessRange, planRangeDelete } from './range-plan';
import { META } from './replica-layout';
import { ColumnRegistry, evolveSchema, knownTable } from './schema-evolution';
import { buildStageCsv } from './stage-csv';
import {
  type DroppedTablePolicy,
  planTableChange,
  rewriteForHistory,
  type TableHistory,
  tableHistory,
} from './table-change-plan';
import { modelFromEvents, replicaColumn } from './table-model';
import type { WarehouseClient } from './warehouse-client';

export interface MergeContext {
  readonly warehouse: WarehouseClient;
  readonly naming: NamingOptions;
  /** `db.table` names kept in history mode. */
  readonly historyTables: ReadonlySet<string>;
  /** What the replica of a dropped or renamed-away table becomes. @default 'drop' */
  readonly droppedTablePolicy?: DroppedTablePolicy;
  /** Attempts for serialization conflicts. @default 5 */
  readonly maxAttempts?: number;
  readonly onRetry?: (table: string, attempt: number, err: Error) => void;
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * The context a merge configuration describes, around the warehouse client the caller built (it owns the pool or the
 * Data API client): one place for the Lambda handler and the local Firehose stand-in.
 */
export function mergeContextFromConfig(
  config: Pick<MergeConfig, 'CHANGELOG_SCHEMA' | 'REPLICA_SCHEMA' | 'historyTables' | 'DROPPED_TABLE_POLICY'>,
  warehouse: WarehouseClient,
  hooks: Pick<MergeContext, 'onRetry'> = {},
): MergeContext {
  return {
    warehouse,
    naming: {
      stateSchema: config.CHANGELOG_SCHEMA,
      ...(config.REPLICA_SCHEMA ? { replicaSchema: config.REPLICA_SCHEMA } : {}),
    },
    historyTables: config.historyTables,
    droppedTablePolicy: config.DROPPED_TABLE_POLICY,
    ...hooks,
  };
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
const registry = new ColumnRegistry();
const bookkeepingReady = new Set<string>();
const stateReady = new Set<string>();
/** Table-level history per `db.table` (floor, applied ALTERs), cached like the columns. */
const knownHistory = new Map<string, TableHistory>();

/** Forget cached schema knowledge (tests, or after an error that may mean another merge changed the schema). */
export function resetSchemaCache(): void {
  registry.clear();
  bookkeepingReady.clear();
  stateReady.clear();
  knownHistory.clear();
}

async function loadHistory(ctx: MergeContext, key: string, names: TableNames): Promise<TableHistory> {
  const cached = knownHistory.get(key);
  if (cached) return cached;
  const rows = await ctx.warehouse.query(
    `SELECT ${ident(META.position)}, op, detail FROM ${names.state} ORDER BY ${ident(META.position)}`,
  );
  const h = tableHistory(rows);
  knownHistory.set(key, h);
  return h;
}

async function runWithRetries(ctx: MergeContext, key: string, run: () => Promise<void>): Promise<void> {
  const attempts = ctx.maxAttempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    try {
      await run();
      return;
    } catch (err) {
      const retriable = err instanceof RetriableMergeError && err.code === 'SERIALIZATION_CONFLICT';
      if (!retriable || attempt >= attempts) throw err;
      ctx.onRetry?.(key, attempt, err as Error);
      await (ctx.sleep ?? defaultSleep)(Math.min(2000, 50 * 2 ** attempt) * (0.5 + Math.random()));
    }
  }
}

/** Makes the merge's bookkeeping and the table's state table exist (idempotent DDL, once per process). */
async function ensureTableState(ctx: MergeContext, names: TableNames): Promise<void> {
  const bkKey = `${ctx.naming.stateSchema}|${names.replicaSchema}`;
  if (!bookkeepingReady.has(bkKey)) {
    await ctx.warehouse.executeAll(planBookkeeping(names, ctx.naming.stateSchema));
    bookkeepingReady.add(bkKey);
  }
  if (!stateReady.has(names.state)) {
    await ctx.warehouse.executeAll([planStateTable(names, ctx.warehouse.dialect)]);
    stateReady.add(names.state);
  }
}

/**
 * Merges one table's events: row changes set-based, table-level events (truncate, drop, rename, alter, resync,
 * range) in position order between them, each run of rows with the schema in force at its place in the stream.
 */
export async function mergeTable(
  events: readonly ChangeEvent[],
  batchId: string,
  ctx: MergeContext,
): Promise<TableResult> {
  const sorted = [...events].sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
  const first = sorted[0]!;
  const names = tableNames(first.db, first.table, ctx.naming);
  await ensureTableState(ctx, names);
  let segment: ChangeEvent[] = [];
  let part = 0;
  const flush = async () => {
    if (segment.length === 0) return;
    await mergeRows(segment, part === 0 ? batchId : `${batchId}#${part}`, ctx);
    part++;
    segment = [];
  };
  for (const e of sorted) {
    if (!isTableOp(e.op)) {
      segment.push(e);
      continue;
    }
    await flush();
    await applyTableChange(e, ctx);
  }
  await flush();
  const { maxPosition, maxCommitMs } = extent(sorted);
  return {
    db: first.db,
    table: first.table,
    events: events.length,
    byOp: countLatestOps(sorted),
    maxCommitMs,
    maxPosition,
  };
}

/** One table-level event, in one transaction after the table's lock. */
async function applyTableChange(e: ChangeEvent, ctx: MergeContext): Promise<void> {
  const d = ctx.warehouse.dialect;
  const key = `${e.db}.${e.table}`;
  const names = tableNames(e.db, e.table, ctx.naming);
  const history = ctx.historyTables.has(key);
  try {
    const existing = await registry.read(ctx.warehouse, e.db, e.table, names);
    const known = knownTable(existing);
    let statements: string[];
    if (e.op === 'range' && (known ? known.pk.length === 0 : e.pk.length === 0)) {
      // A keyless table's whole-table read (the event's pk is empty only then: keyed ranges carry their key).
      statements = planKeylessRange(e, names, d, known !== undefined);
      if (statements.length === 0) return;
    } else if (e.op === 'range') {
      if (!known) return;
      const pkCols = known.pk.map((k) => {
        const c = existing.find((x) => x.name === k)!;
        return replicaColumn(c.name, c.mysqlType, d.warehouse, c.warehouseType);
      });
      statements = planRangeDelete(e, pkCols, names, d);
    } else {
      let newerRows = false;
      if (known && e.op !== 'truncate' && e.op !== 'alter') {
        const table = known.pk.length > 0 ? names.replica : names.deltas;
        const rows = await ctx.warehouse.query(
          `SELECT COUNT(*) AS n FROM ${table} WHERE ${ident(META.position)} > ${literal(e.position)}`,
        );
        newerRows = Number(rows[0]?.n ?? 0) > 0;
      }
      const plan = planTableChange(e, known, names, d, {
        history,
        droppedTablePolicy: ctx.droppedTablePolicy ?? 'drop',
        newerRows,
      });
      statements = plan.statements;
    }
    const steps = [sql(d.lock([names.state])), ...statements.map(sql)];
    await runWithRetries(ctx, key, () => ctx.warehouse.runTransaction(steps, ''));
  } finally {
    // The registry may have changed (or another merge changed it): read it again next time.
    registry.forget(e.db, e.table);
    knownHistory.delete(key);
  }
}

/** Merges one run of row changes of one table (no table-level event among them). */
async function mergeRows(raw: readonly ChangeEvent[], batchId: string, ctx: MergeContext): Promise<void> {
  const d = ctx.warehouse.dialect;
  const key = `${raw[0]!.db}.${raw[0]!.table}`;
  const names = tableNames(raw[0]!.db, raw[0]!.table, ctx.naming);
  const history = ctx.historyTables.has(key);
  try {
    const events = rewriteForHistory(raw, await loadHistory(ctx, key, names));
    if (events.length === 0) return;
    const batchModel = modelFromEvents(events, d.warehouse);
    await evolveSchema(batchModel, names, {
      warehouse: ctx.warehouse,
      registry,
      history,
      runInTransaction: (statements) => {
        const steps = [sql(d.lock([names.state])), ...statements.map(sql)];
        return runWithRetries(ctx, key, () => ctx.warehouse.runTransaction(steps, ''));
      },
    });
    // Staged under the batch's own column types: each holds its values, and the replica's type holds them too.
    const model = batchModel;
    const { maxPosition, maxCommitMs } = extent(events);
    const csv = buildStageCsv(events, model, d);
    const stageLocation = ctx.warehouse.stageLocation(`${batchId}/${model.db}.${model.table}`);
    const opts = {
      batchId,
      events: events.length,
      maxPosition,
      maxCommitMs,
      history,
      ...(stageLocation ? { stageLocation } : {}),
    };
    const steps = planMerge(model, names, d, opts);
    await runWithRetries(ctx, key, () => ctx.warehouse.runTransaction(steps, csv, stageLocation));
    // The record comes after the data is committed: if this fails, the batch is merged again (a no-op) and recorded.
    const record = [sql(planBatchRecord(model, names, d, opts))];
    await runWithRetries(ctx, key, () => ctx.warehouse.runTransaction(record, ''));
  } catch (err) {
    // Another merge may have changed the schema under us; re-read it next time.
    registry.forget(raw[0]!.db, raw[0]!.table);
    knownHistory.delete(key);
    throw err;
  }
}

const sql = (text: string): Step => ({ kind: 'sql', sql: text });

/** Newest position and newest commit time of some events. */
function extent(events: readonly ChangeEvent[]): { maxPosition: string; maxCommitMs: number } {
  let maxPosition = '';
  let maxCommitMs = 0;
  for (const e of events) {
    if (e.position > maxPosition) maxPosition = e.position;
    if (e.ts_ms > maxCommitMs) maxCommitMs = e.ts_ms;
  }
  return { maxPosition, maxCommitMs };
}

function countLatestOps(events: readonly ChangeEvent[]): Record<string, number> {
  const latest = new Map<string, ChangeEvent>();
  for (const e of events) {
    const k = e.pk.length > 0 ? JSON.stringify(keyValues(e)) : e.position;
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
