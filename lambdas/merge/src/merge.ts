/**
 * Orchestrates the merge of a batch: per source table, make the replica's schema follow the events (schema-evolution.ts:
 * DDL outside the data transaction, idempotent), then run the planned steps in one transaction, retrying
 * serialization conflicts.
 */
import { type ChangeEvent, isTableOp, keyValues } from '../../../shared/change-event';
import { groupByTable } from './batch';
import type { MergeConfig } from './config';
import { failWhen, ident, literal } from './dialect';
import { MergeError, PoisonBatchError, RetriableMergeError, StalePlanError } from './errors';
import {
  type MergeOptions,
  planBatchRecord,
  planBookkeeping,
  planMerge,
  planStateTable,
  type Step,
} from './merge-plan';
import { type NamingOptions, type TableNames, tableNames } from './naming';
import { planKeylessRange, planRangeDelete } from './range-plan';
import { META } from './replica-layout';
import { ColumnRegistry, evolveSchema, knownTable, planRegistryCheck, registryEntry } from './schema-evolution';
import { stageCsvChunks, stagesDelete } from './stage-csv';
import {
  type DroppedTablePolicy,
  planShapeRecords,
  planTableChange,
  rewriteForHistory,
  type TableHistory,
  tableHistory,
} from './table-change-plan';
import { modelFromEvents, replicaColumn, type TableModel } from './table-model';
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
const knownHistory = new Map<string, KnownHistory>();

/** A table's history as read, and how many state records it was read from (state records are only ever added). */
interface KnownHistory {
  readonly history: TableHistory;
  readonly records: number;
}

/** Forget cached schema knowledge (tests, or after an error that may mean another merge changed the schema). */
export function resetSchemaCache(): void {
  registry.clear();
  bookkeepingReady.clear();
  stateReady.clear();
  knownHistory.clear();
}

async function loadHistory(ctx: MergeContext, key: string, names: TableNames): Promise<KnownHistory> {
  const cached = knownHistory.get(key);
  if (cached) return cached;
  const rows = await ctx.warehouse.query(
    `SELECT ${ident(META.position)}, op, detail FROM ${names.state} ORDER BY ${ident(META.position)}`,
  );
  const h = { history: tableHistory(rows), records: rows.length };
  knownHistory.set(key, h);
  return h;
}

/**
 * A row merge plans from the table's history read before its lock: which columns an ALTER renamed or dropped (a late
 * event is rewritten to them) and where the floor is. Another merge of the same table may record a table-level event
 * in between (another shard's batch, as the partition key table-pk spreads a table's rows over shards while its
 * table-level events go by its name); planned from the old history, a RENAME COLUMN would come back as a new, empty
 * column. So the transaction checks, after the lock, that the table still has the state records the plan was made
 * from; if not, it fails (`failWhen`), the table's cached knowledge is forgotten, and the merge is planned again.
 */
function historyUnchanged(names: TableNames, records: number): string {
  return failWhen(`COUNT(*) <> ${records}`, 'table history changed: plan again', names.state);
}

/**
 * `historyUnchanged` of several tables as one statement (a transaction shared by several tables' merges checks them all
 * at once: one statement instead of one per table, within the Data API's 40): the same checks joined by UNION ALL.
 */
function historiesUnchanged(tables: readonly { readonly names: TableNames; readonly records: number }[]): string {
  return tables.map((t) => historyUnchanged(t.names, t.records)).join(' UNION ALL ');
}

/**
 * What a plan was made from, read before the table's lock: the number of the table's state records (its history; they
 * are only ever added) and the registry's columns (`registryEntry`). A transaction whose checks found either changed
 * fails; so may a statement planned from them (an ADD COLUMN another merge added first).
 */
interface PlanBasis {
  readonly records?: number;
  readonly columns?: readonly string[];
}

/** Plans of one run of a table's changes, before its failure is reported (each lost race means another merge won). */
const MAX_PLANS = 5;

/**
 * The failure of a merge planned from `basis`, as a StalePlanError when the basis has changed since (another merge of
 * the table got there first: plan again at once), or as it was (a failure of its own, or the basis could not be read).
 */
async function staleOr(
  err: unknown,
  ctx: MergeContext,
  at: { readonly db: string; readonly table: string; readonly names: TableNames },
  basis: PlanBasis,
): Promise<unknown> {
  const { db, table, names } = at;
  if (err instanceof PoisonBatchError) return err;
  try {
    // Read afresh (and so cached afresh for the next plan).
    forgetTable(db, table);
    const changed: string[] = [];
    if (basis.records !== undefined) {
      const now = (await loadHistory(ctx, `${db}.${table}`, names)).records;
      if (now !== basis.records) changed.push(`history ${basis.records} → ${now} record(s)`);
    }
    if (basis.columns !== undefined) {
      const now = (await registry.read(ctx.warehouse, db, table, names)).map(registryEntry).sort();
      const then = [...basis.columns].sort();
      if (now.join('\u0000') !== then.join('\u0000')) changed.push('replica columns');
    }
    return changed.length > 0
      ? new StalePlanError(`${db}.${table}: planned from ${changed.join(', ')} changed since`, err)
      : err;
  } catch {
    return err;
  }
}

/**
 * Runs a merge step (a run of rows, or a table-level event), planning it again while another merge of the table keeps
 * changing what it was planned from (at most MAX_PLANS plans, a short random pause between them).
 */
async function planAgainWhenStale<T>(ctx: MergeContext, key: string, run: () => Promise<T>): Promise<T> {
  for (let plan = 1; ; plan++) {
    try {
      return await run();
    } catch (err) {
      if (!(err instanceof StalePlanError) || plan >= MAX_PLANS) throw err;
      ctx.onRetry?.(key, plan, err);
      await (ctx.sleep ?? defaultSleep)(20 * plan * (0.5 + Math.random()));
    }
  }
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
    await idempotentDdl(ctx, planBookkeeping(names, ctx.naming.stateSchema));
    bookkeepingReady.add(bkKey);
  }
  if (!stateReady.has(names.state)) {
    await idempotentDdl(ctx, [planStateTable(names, ctx.warehouse.dialect)]);
    stateReady.add(names.state);
  }
}

/**
 * Runs `CREATE … IF NOT EXISTS` statements, again after a failure (three attempts): two processes creating the same
 * schema or table at once can collide (PostgreSQL reports a duplicate catalog entry; a new pipeline's first batches
 * arrive on every shard at once), and once the other has created it, running the statement again is a no-op.
 */
async function idempotentDdl(ctx: MergeContext, statements: readonly string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await ctx.warehouse.executeAll(statements);
      return;
    } catch (err) {
      if (attempt >= 3) throw err;
      await (ctx.sleep ?? defaultSleep)(100 * attempt * (0.5 + Math.random()));
    }
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
  const sorted = inPositionOrder(events);
  const first = sorted[0]!;
  const names = tableNames(first.db, first.table, ctx.naming);
  await ensureTableState(ctx, names);
  let segment: ChangeEvent[] = [];
  let part = 0;
  const flush = async () => {
    if (segment.length === 0) return;
    const rows = segment;
    const id = part === 0 ? batchId : `${batchId}#${part}`;
    await planAgainWhenStale(ctx, `${first.db}.${first.table}`, () => mergeRows(rows, id, ctx));
    part++;
    segment = [];
  };
  for (const e of sorted) {
    if (!isTableOp(e.op)) {
      segment.push(e);
      continue;
    }
    await flush();
    await planAgainWhenStale(ctx, `${e.db}.${e.table}`, () => applyTableChange(e, ctx));
  }
  await flush();
  return tableResult(events);
}

/** One table-level event, in one transaction after the table's lock. */
async function applyTableChange(e: ChangeEvent, ctx: MergeContext): Promise<void> {
  const d = ctx.warehouse.dialect;
  const key = `${e.db}.${e.table}`;
  const names = tableNames(e.db, e.table, ctx.naming);
  const history = ctx.historyTables.has(key);
  let basis: PlanBasis | undefined;
  let records: number | undefined;
  try {
    const existing = await registry.read(ctx.warehouse, e.db, e.table, names);
    basis = { columns: existing.map(registryEntry) };
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
      let newerShapes: (readonly string[])[] | undefined;
      if (known && e.op !== 'truncate' && e.op !== 'alter') {
        // A keyed table's tombstones count as rows: a key of the next incarnation whose delete was merged first.
        for (const table of known.pk.length > 0 ? [names.replica, names.keys] : [names.deltas]) {
          const rows = await ctx.warehouse.query(
            `SELECT COUNT(*) AS n FROM ${table} WHERE ${ident(META.position)} > ${literal(e.position)}`,
          );
          newerRows ||= Number(rows[0]?.n ?? 0) > 0;
        }
        if (newerRows && known.pk.length > 0) {
          // The next incarnation's rows, merged first (table-pk): the column lists they carried say which columns it has.
          const h = await loadHistory(ctx, key, names);
          newerShapes = h.history.shapes.filter((x) => x.position > e.position).map((x) => x.columns);
          records = h.records;
          basis = { ...basis, records };
        }
      }
      const plan = planTableChange(e, known, names, d, {
        history,
        droppedTablePolicy: ctx.droppedTablePolicy ?? 'drop',
        newerRows,
        ...(newerShapes ? { newerShapes } : {}),
      });
      statements = plan.statements;
    }
    // Planned from the registry read before the lock: a row merge of the table from another shard may have created the
    // replica or added columns since (a RENAME planned as "no replica yet" would leave the rows it just wrote under the
    // old name). The registry only changes under this lock, so its columns, checked after it, say whether the plan
    // still holds; if not, the transaction fails and the event is planned again.
    const steps = [sql(d.lock([names.state])), sql(planRegistryCheck(names, e.db, e.table, existing))];
    if (records !== undefined) steps.push(sql(historyUnchanged(names, records)));
    steps.push(...statements.map(sql));
    await runWithRetries(ctx, key, () => ctx.warehouse.runTransaction(steps, ''));
  } catch (err) {
    throw basis ? await staleOr(err, ctx, { db: e.db, table: e.table, names }, basis) : err;
  } finally {
    // The registry may have changed (or another merge changed it): read it again next time.
    registry.forget(e.db, e.table);
    knownHistory.delete(key);
  }
}

/** One table's row merge, planned and staged, ready to run alone or in a transaction shared with other tables. */
interface PreparedRows {
  readonly key: string;
  readonly names: TableNames;
  readonly model: TableModel;
  readonly opts: MergeOptions;
  /**
   * The merge's steps after the table's lock and the check of its history (`runPrepared` adds both, for every table
   * of the transaction at once), each load carrying its own CSV and staging location.
   */
  readonly steps: readonly Step[];
  /** The history its data transaction checks (the registry is only added to before it). */
  readonly basis: PlanBasis & { readonly records: number };
  /** Its transaction records column lists in the table's state (the cached history is then out of date). */
  readonly addsRecords: boolean;
}

/**
 * Plans one run of row changes of one table (no table-level event among them): reads its history, makes the replica's
 * schema follow the events (DDL, committed on its own), stages the CSV. undefined when nothing is left to merge.
 */
async function prepareRows(
  raw: readonly ChangeEvent[],
  batchId: string,
  ctx: MergeContext,
  stageSuffix = '',
): Promise<PreparedRows | undefined> {
  const d = ctx.warehouse.dialect;
  const key = `${raw[0]!.db}.${raw[0]!.table}`;
  const names = tableNames(raw[0]!.db, raw[0]!.table, ctx.naming);
  const history = ctx.historyTables.has(key);
  let basis: PlanBasis | undefined;
  try {
    const known = await loadHistory(ctx, key, names);
    const guard = sql(historyUnchanged(names, known.records));
    const events = rewriteForHistory(raw, known.history);
    if (events.length === 0) return undefined;
    const batchModel = modelFromEvents(events, d.warehouse);
    const existing = await registry.read(ctx.warehouse, batchModel.db, batchModel.table, names);
    basis = { records: known.records, columns: existing.map(registryEntry) };
    await evolveSchema(batchModel, names, existing, {
      warehouse: ctx.warehouse,
      registry,
      history,
      runInTransaction: (statements) => {
        const steps = [sql(d.lock([names.state])), guard, ...statements.map(sql)];
        return runWithRetries(ctx, key, () => ctx.warehouse.runTransaction(steps, ''));
      },
    });
    // Staged under the batch's own column types: each holds its values, and the replica's type holds them too.
    const model = batchModel;
    const { maxPosition, maxCommitMs } = extent(events);
    const stageLocation = ctx.warehouse.stageLocation(`${batchId}/${model.db}.${model.table}`);
    // Without history, only each key's newest change is staged: the warehouse skips its de-duplication window.
    const csvOpts = { latestPerKey: !history };
    // The CSV as chunks, built when the load reads them: PostgreSQL's COPY parses one while the next is built; the
    // Redshift client compresses one while the next is built, then uploads the object its COPY reads.
    const csvChunks = replayable(() => stageCsvChunks(events, model, d, csvOpts));
    const load = stageLocation ? { csvChunks, stageLocation } : { csvChunks };
    const opts: MergeOptions = {
      batchId,
      events: events.length,
      maxPosition,
      maxCommitMs,
      history,
      stageSuffix,
      stagedLatest: !history,
      noDeletes: !events.some((e) => stagesDelete(e, model.pk)),
      ...(stageLocation ? { stageLocation } : {}),
    };
    const steps = planMerge(model, names, d, opts).map((st) => (st.kind === 'load' ? { ...st, ...load } : st));
    const shapes = planShapeRecords(
      events,
      existing.map((c) => c.name),
      names,
      d,
    ).map(sql);
    // planMerge's first step is the table's lock: a shared transaction takes every table's lock at once, first; then
    // checks that each table's history is still the one its plan was made from (runPrepared).
    return {
      key,
      names,
      model,
      opts,
      steps: [...shapes, ...steps.slice(1)],
      basis: { records: known.records },
      addsRecords: shapes.length > 0,
    };
  } catch (err) {
    forgetTable(raw[0]!.db, raw[0]!.table);
    throw basis ? await staleOr(err, ctx, { db: raw[0]!.db, table: raw[0]!.table, names }, basis) : err;
  }
}

/** Another merge may have changed the schema under us: re-read it next time. */
function forgetTable(db: string, table: string): void {
  registry.forget(db, table);
  knownHistory.delete(`${db}.${table}`);
}

/**
 * Runs prepared merges in one transaction: every table's lock first (one LOCK, in name order, so two such
 * transactions never wait for each other in a circle), then each table's steps; then the batch records in a second,
 * short transaction (planBatchRecord says why it is separate). Serialization conflicts retry the whole transaction.
 * Redshift: `LOCK [ TABLE ] table_name [, ...]` locks several tables in one statement
 * (https://docs.aws.amazon.com/redshift/latest/dg/r_LOCK.html); the Data API's BatchExecuteStatement runs its SQL
 * statements as one transaction, at most 40 of them
 * (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_BatchExecuteStatement.html).
 */
async function runPrepared(prepared: readonly PreparedRows[], ctx: MergeContext, record = true): Promise<void> {
  const d = ctx.warehouse.dialect;
  const locks = prepared.map((p) => p.names.state).sort();
  const guard = historiesUnchanged(prepared.map((p) => ({ names: p.names, records: p.basis.records })));
  const steps = [sql(d.lock(locks)), sql(guard), ...prepared.flatMap((p) => p.steps)];
  const key = prepared.map((p) => p.key).join(',');
  try {
    await runWithRetries(ctx, key, () => ctx.warehouse.runTransaction(steps, ''));
    for (const p of prepared) if (p.addsRecords) knownHistory.delete(p.key);
  } catch (err) {
    for (const p of prepared) forgetTable(p.model.db, p.model.table);
    // A shared transaction's tables are merged again one by one (mergeTables), each finding its own cause.
    const [one] = prepared;
    throw prepared.length === 1 ? await staleOr(err, ctx, { ...one!.model, names: one!.names }, one!.basis) : err;
  }
  if (record) await recordBatches(prepared, ctx);
}

/**
 * The batch records of merges whose data is committed, in short transactions of their own (at most 40 statements
 * each): if this fails, the batch is merged again (a no-op) and recorded.
 */
async function recordBatches(prepared: readonly PreparedRows[], ctx: MergeContext): Promise<void> {
  const d = ctx.warehouse.dialect;
  for (let i = 0; i < prepared.length; i += MAX_STATEMENTS) {
    const part = prepared.slice(i, i + MAX_STATEMENTS);
    const records = part.map((p) => sql(planBatchRecord(p.model, p.names, d, p.opts)));
    await runWithRetries(ctx, part.map((p) => p.key).join(','), () => ctx.warehouse.runTransaction(records, ''));
  }
}

/** Merges one run of row changes of one table (no table-level event among them), in its own transaction. */
async function mergeRows(raw: readonly ChangeEvent[], batchId: string, ctx: MergeContext): Promise<void> {
  const prepared = await prepareRows(raw, batchId, ctx);
  if (prepared) await runPrepared([prepared], ctx);
}

const sql = (text: string): Step => ({ kind: 'sql', sql: text });

/**
 * Chunks produced once, on first read, and read again as they were by a retry (a serialization conflict reruns the
 * transaction): values are converted, and nulled or truncated values reported, once per merge.
 */
function replayable(source: () => Iterator<Uint8Array>): () => Iterable<Uint8Array> {
  const seen: Uint8Array[] = [];
  let it: Iterator<Uint8Array> | undefined;
  let failed: { error: unknown } | undefined;
  let complete = false;
  return function* () {
    for (let i = 0; ; i++) {
      if (i < seen.length) {
        yield seen[i]!;
        continue;
      }
      if (failed) throw failed.error;
      if (complete) return;
      it ??= source();
      let r: IteratorResult<Uint8Array>;
      try {
        r = it.next();
      } catch (error) {
        failed = { error };
        throw error;
      }
      if (r.done) {
        complete = true;
        return;
      }
      seen.push(r.value);
      yield r.value;
    }
  };
}

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

/** The events by position: as they are when they already are (a stream batch of one shard nearly always is). */
function inPositionOrder(events: readonly ChangeEvent[]): readonly ChangeEvent[] {
  let sorted = true;
  for (let i = 1; i < events.length && sorted; i++) sorted = events[i - 1]!.position <= events[i]!.position;
  return sorted ? events : [...events].sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
}

/** A key's identity in a Map: its one value with its JSON type (as JSON.stringify tells "1" from 1), or the JSON. */
function keyIdentity(e: ChangeEvent): string {
  if (e.pk.length === 1) {
    // keyValues without the array: on the path of every event of the batch.
    const v = (e.op === 'delete' ? e.before : e.after)?.[e.pk[0]!];
    if (typeof v === 'string') return `s${v}`;
    if (typeof v === 'number') return `n${v}`;
  }
  return `j${JSON.stringify(keyValues(e))}`;
}

function countLatestOps(events: readonly ChangeEvent[]): Record<string, number> {
  const latest = new Map<string, ChangeEvent>();
  for (const e of events) {
    const k = e.pk.length > 0 ? keyIdentity(e) : e.position;
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

/** What became of one table's events in a batch of several tables. */
export type TableOutcome =
  | { readonly table: string; readonly events: readonly ChangeEvent[]; readonly result: TableResult }
  | { readonly table: string; readonly events: readonly ChangeEvent[]; readonly error: Error };

export interface MergeTablesOptions {
  /**
   * Tables whose merges share one warehouse transaction (as many as fit the Data API's 40 statements). Redshift
   * serialises commits, so a batch of many small tables commits once per group instead of once per table. A group
   * that fails is run again table by table, so one failing table never takes the others down with it. @default 1
   */
  readonly tablesPerTransaction?: number;
}

/** The Data API's statements per transaction (BatchExecuteStatement). */
const MAX_STATEMENTS = 40;

/**
 * Merges a batch that may hold several tables and says what became of each: every table is attempted, a failure is
 * that table's alone. Tables with only row changes are merged `tablesPerTransaction` to a transaction; a table with a
 * table-level event (truncate, rename, …) in the batch is merged on its own.
 */
export async function mergeTables(
  events: readonly ChangeEvent[],
  batchId: string,
  ctx: MergeContext,
  opts: MergeTablesOptions = {},
): Promise<TableOutcome[]> {
  const perTransaction = opts.tablesPerTransaction ?? 1;
  const outcomes: TableOutcome[] = [];
  const shared: { table: string; events: ChangeEvent[]; prepared?: PreparedRows }[] = [];
  const mergeAlone = async (table: string, group: readonly ChangeEvent[]): Promise<TableOutcome> => {
    try {
      return { table, events: group, result: await mergeTable(group, batchId, ctx) };
    } catch (err) {
      return { table, events: group, error: err as Error };
    }
  };
  for (const [table, group] of groupByTable(events)) {
    if (perTransaction === 1 || group.some((e) => isTableOp(e.op))) {
      outcomes.push(await mergeAlone(table, group));
      continue;
    }
    try {
      const names = tableNames(group[0]!.db, group[0]!.table, ctx.naming);
      await ensureTableState(ctx, names);
      const prepared = await prepareRows(group, batchId, ctx, `_${shared.length + 1}`);
      shared.push({ table, events: group, ...(prepared ? { prepared } : {}) });
    } catch (err) {
      outcomes.push(
        err instanceof StalePlanError ? await mergeAlone(table, group) : { table, events: group, error: err as Error },
      );
    }
  }
  // Pack the prepared merges: at most `perTransaction` tables and MAX_STATEMENTS statements (one LOCK and one check of
  // the histories for all).
  const packs: (typeof shared)[] = [];
  let pack: typeof shared = [];
  let statements = 2;
  for (const t of shared) {
    const n = t.prepared?.steps.length ?? 0;
    if (pack.length > 0 && (pack.length >= perTransaction || statements + n > MAX_STATEMENTS)) {
      packs.push(pack);
      pack = [];
      statements = 2;
    }
    pack.push(t);
    statements += n;
  }
  if (pack.length > 0) packs.push(pack);
  const committed: PreparedRows[] = [];
  const done: typeof shared = [];
  for (const p of packs) {
    const ready = p.flatMap((t) => (t.prepared ? [t.prepared] : []));
    let error: Error | undefined;
    try {
      if (ready.length > 0) await runPrepared(ready, ctx, false);
      committed.push(...ready);
    } catch (err) {
      error = err as Error;
    }
    for (const t of p) {
      if (!error || !t.prepared) done.push(t);
      else if (ready.length === 1 && !(error instanceof StalePlanError)) {
        outcomes.push({ table: t.table, events: t.events, error });
      } else {
        // The shared transaction failed (nothing of it committed), or its one table's plan went stale: each table
        // again on its own, planned afresh, to find the one that fails.
        outcomes.push(await mergeAlone(t.table, t.events));
      }
    }
  }
  // Every shared transaction's batch records together; a table counts as merged once its record is written too.
  try {
    await recordBatches(committed, ctx);
    for (const t of done) outcomes.push({ table: t.table, events: t.events, result: tableResult(t.events) });
  } catch (err) {
    for (const t of done) outcomes.push({ table: t.table, events: t.events, error: err as Error });
  }
  return outcomes;
}

/** The result of merging one table's events (what `mergeTable` reports). */
function tableResult(events: readonly ChangeEvent[]): TableResult {
  // Neither needs the events in order: both compare positions.
  const { maxPosition, maxCommitMs } = extent(events);
  return {
    db: events[0]!.db,
    table: events[0]!.table,
    events: events.length,
    byOp: countLatestOps(events),
    maxCommitMs,
    maxPosition,
  };
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
  const outcomes = await mergeTables(events, batchId, ctx);
  const errors = outcomes.flatMap((o) => ('error' in o ? [o.error] : []));
  if (errors.length > 0) {
    throw (
      errors.find((e) => e instanceof PoisonBatchError) ?? errors.find((e) => e instanceof MergeError) ?? errors[0]!
    );
  }
  return outcomes.flatMap((o) => ('result' in o ? [o.result] : []));
}
