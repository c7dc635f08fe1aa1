/**
 * Pure SQL planning of a merge: no I/O here. The same plan runs on Redshift and on PostgreSQL 15; only the hooks in
 * `Dialect` differ. Statements stay inside Redshift's grammar (checked by test/merge/redshift-grammar.test.ts).
The replica's schema (created, following each batch's columns, its registry) is planned in schema-evolution.ts; the
tables, metadata columns and views a replica is made of are in replica-layout.ts.
 *
 * Order-insensitivity (docs/merge.md): every key's last applied position is kept, in the replica's `_cdc_position`
 * for a live row and in the keys table for a deleted one (its tombstone). A staged change whose position is not newer
 * is discarded before anything is written, so replays change nothing and a late, older change neither overwrites a
 * newer row nor resurrects a deleted one. Live keys are not written twice (replica and keys table): the keys table
 * holds tombstones only, and a key's tombstone ends when a newer change of the key is merged.
 */
import { POSITION_SQL_TYPE } from '../../../shared/change-event';
import { type Dialect, ident, literal } from './dialect';
import type { TableNames } from './naming';
import { columnDefs, META } from './replica-layout';
import type { TableModel } from './table-model';

export type Step =
  | { readonly kind: 'sql'; readonly sql: string }
  /**
   * Load the staging CSV into `table`; `sql` is the COPY when the warehouse pulls it from S3 (Redshift). `csv` and
   * `stageLocation`, when set, are this load's own input (a transaction merging several tables has one load each);
   * otherwise the transaction's.
   */
  | {
      readonly kind: 'load';
      readonly table: string;
      readonly columns: readonly string[];
      readonly sql?: string;
      readonly csv?: string;
      /**
       * The CSV as UTF-8 chunks, for a client that streams its load (PostgreSQL's COPY FROM STDIN parses a chunk
       * while the next is built); each call iterates the same bytes (a retried transaction reads them again).
       */
      readonly csvChunks?: () => Iterable<Uint8Array>;
      readonly stageLocation?: string;
    };

const STAGE_ALL_NAME = '_cdc_stage_all';
const STAGE_NAME = '_cdc_stage';

const sql = (text: string): Step => ({ kind: 'sql', sql: text });

/** The staging columns, in CSV order. */
export function stageColumns(model: TableModel): string[] {
  const cols = [...model.columns.map((c) => c.name), META.position, META.op, META.commitTs];
  return model.pk.length === 0 ? [...cols, META.delta] : cols;
}

/** Idempotent DDL that makes the merge's own tables exist (run before the first merge of a table). */
export function planBookkeeping(names: TableNames, stateSchema: string): string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${ident(stateSchema)}`,
    `CREATE SCHEMA IF NOT EXISTS ${ident(names.replicaSchema)}`,
    `CREATE TABLE IF NOT EXISTS ${names.batches} (batch_id VARCHAR(1024), source_db VARCHAR(256), ` +
      `source_table VARCHAR(256), events INTEGER, max_position ${POSITION_SQL_TYPE}, max_commit_ms BIGINT, applied_at TIMESTAMP)`,
    `CREATE TABLE IF NOT EXISTS ${names.columns} (source_db VARCHAR(256), source_table VARCHAR(256), ` +
      'column_name VARCHAR(256), ordinal INTEGER, mysql_type VARCHAR(1024), warehouse_type VARCHAR(256), key_ordinal INTEGER)',
  ];
}

/** The table's own state table: its table-level events (the floor below which rows are gone) and its merge lock. */
export function planStateTable(names: TableNames, d: Dialect): string {
  return (
    `CREATE TABLE IF NOT EXISTS ${names.state} (${ident(META.position)} ${POSITION_SQL_TYPE}, op VARCHAR(16), ` +
    `detail VARCHAR(65535), applied_at ${d.timestampType})`
  );
}

/**
 * Table-level events that end every row older than them. Of `range` events, only a keyless table's whole-table read is
 * recorded in the state table (range-plan.ts, `planKeylessRange`): keyed ranges delete through the keys table.
 */
export const FLOOR_OPS = ['truncate', 'drop', 'rename', 'resync', 'range'] as const;

export interface MergeOptions {
  readonly batchId: string;
  readonly events: number;
  readonly maxPosition: string;
  readonly maxCommitMs: number;
  readonly history: boolean;
  /** Where the staging CSV is for warehouses that COPY it from S3 (s3://…). */
  readonly stageLocation?: string;
  /**
   * Appended to the temporary tables' names, so several tables' merges can share one transaction (each its own
   * staging tables). @default '' (one table per transaction)
   */
  readonly stageSuffix?: string;
  /**
   * The staging CSV holds at most one row per key, its newest change (stage-csv.ts, `latestPerKey`): the rows are
   * loaded straight into the de-duplicated staging table, without the window over every change. Not with `history`,
   * whose versions table takes every change. @default false
   */
  readonly stagedLatest?: boolean;
  /**
   * The batch holds no delete (nor an update that changes its row's key, staged as a delete of the old key): the
   * statements that only act on staged deletes are left out (three of a keyed table's; on Redshift each statement of a
   * transaction costs its own compilation and queueing). @default false
   */
  readonly noDeletes?: boolean;
}

/**
 * The batch's record in `merge_batches` (once per batch id and table: a stream batch holds several tables), run in its own short transaction after the merge's: a
 * table shared by every table's merges, it would otherwise put a read and a write of one table into every merge
 * transaction, where Redshift's serializable isolation turns concurrent merges of different tables into conflicts
 * (error 1023) and its write lock serialises them.
 */
export function planBatchRecord(model: TableModel, names: TableNames, d: Dialect, opts: MergeOptions): string {
  return (
    `INSERT INTO ${names.batches} (batch_id, source_db, source_table, events, max_position, max_commit_ms, applied_at) ` +
    `SELECT ${literal(opts.batchId)}, ${literal(model.db)}, ${literal(model.table)}, ${opts.events}, ` +
    `${literal(opts.maxPosition)}, ${opts.maxCommitMs}, ${d.now} ` +
    `WHERE NOT EXISTS (SELECT 1 FROM ${names.batches} WHERE batch_id = ${literal(opts.batchId)} ` +
    `AND source_db = ${literal(model.db)} AND source_table = ${literal(model.table)})`
  );
}

/**
 * The steps of one merge, all in one transaction. The events staged are past the table's floor (its newest truncate,
 * drop, rename, resync or keyless whole-table read): `rewriteForHistory` drops the older ones from the history the
 * transaction checks after its lock is still the table's (merge.ts), so no statement filters the staged rows by it.
 */
export function planMerge(model: TableModel, names: TableNames, d: Dialect, opts: MergeOptions): Step[] {
  const STAGE_ALL = `${STAGE_ALL_NAME}${opts.stageSuffix ?? ''}`;
  const STAGE = `${STAGE_NAME}${opts.stageSuffix ?? ''}`;
  const stageCols = stageColumns(model);
  const stageDefs = [
    ...columnDefs(model.columns, (c) => d.stageType(c)),
    `${ident(META.position)} ${POSITION_SQL_TYPE}`,
    `${ident(META.op)} VARCHAR(8)`,
    `${ident(META.commitTs)} ${d.timestampType}`,
    ...(model.pk.length === 0 ? [`${ident(META.delta)} SMALLINT`] : []),
  ];
  const loadInto = (table: string): Step => {
    const copy = opts.stageLocation ? d.copyFromStaging(table, stageCols, opts.stageLocation) : undefined;
    return { kind: 'load', table, columns: stageCols, ...(copy ? { sql: copy } : {}) };
  };
  const load = loadInto(STAGE_ALL);
  const replicaCols = model.columns.map((c) => ident(c.name));
  const fromStage = (alias: string) => model.columns.map((c) => d.fromStage(c, `${alias}.${ident(c.name)}`));
  const versions = opts.history
    ? [
        sql(
          `INSERT INTO ${names.versions} (${[...replicaCols, ...metaNames()].join(', ')}) ` +
            `SELECT ${[
              ...fromStage('a'),
              ...metaNames()
                .slice(0, 3)
                .map((m) => `a.${m}`),
              d.now,
            ].join(', ')} ` +
            `FROM ${ident(STAGE_ALL)} a WHERE NOT EXISTS (SELECT 1 FROM ${names.versions} v WHERE ` +
            `${[...model.pk, META.position].map((k) => `v.${ident(k)} = a.${ident(k)}`).join(' AND ')})`,
        ),
      ]
    : [];

  // Only the table's own state table is locked: Redshift's LOCK would block analysts reading the replica.
  const lock = sql(d.lock([names.state]));
  if (model.pk.length === 0) {
    return [
      lock,
      sql(d.createTemp(STAGE_ALL, stageDefs.join(', '))),
      load,
      sql(
        `INSERT INTO ${names.deltas} (${[...replicaCols, ...metaNames(), ident(META.delta)].join(', ')}) ` +
          `SELECT ${[
            ...fromStage('a'),
            ...metaNames()
              .slice(0, 3)
              .map((m) => `a.${m}`),
            d.now,
            `a.${ident(META.delta)}`,
          ].join(', ')} ` +
          `FROM ${ident(STAGE_ALL)} a WHERE NOT EXISTS (SELECT 1 FROM ${names.deltas} x WHERE ` +
          `x.${ident(META.position)} = a.${ident(META.position)} AND x.${ident(META.delta)} = a.${ident(META.delta)})`,
      ),
      ...versions,
    ];
  }

  const pk = model.pk.map(ident);
  const on = (t: string, s: string) => pk.map((k) => `${t}.${k} = ${s}.${k}`).join(' AND ');
  // Redshift's MERGE takes an alias on the source only (r_MERGE): the target is referred to by its name.
  const keysName = lastPart(names.keys);
  const replicaName = lastPart(names.replica);
  const latest = [...model.columns.map((c) => ident(c.name)), ...metaNames().slice(0, 3)].join(', ');
  // Key columns are equal on both sides of the join; they are left out of SET (Redshift's MERGE rejects updating them).
  const setCols = [
    ...model.columns.flatMap((c, i) => (model.pk.includes(c.name) ? [] : [`${ident(c.name)} = ${fromStage('s')[i]}`])),
    `${ident(META.position)} = s.${ident(META.position)}`,
    `${ident(META.op)} = s.${ident(META.op)}`,
    `${ident(META.commitTs)} = s.${ident(META.commitTs)}`,
    `${ident(META.loadedAt)} = ${d.now}`,
  ];
  // Latest change per key inside the batch, by position: staged so already, or picked by a window over every change.
  const dedupe: Step[] =
    opts.stagedLatest && !opts.history
      ? [sql(d.createTemp(STAGE, stageDefs.join(', '))), loadInto(STAGE)]
      : [
          sql(d.createTemp(STAGE_ALL, stageDefs.join(', '))),
          load,
          sql(
            d.createTempAs(
              STAGE,
              `SELECT ${latest} FROM (SELECT ${latest}, ROW_NUMBER() OVER (PARTITION BY ${pk.join(', ')} ` +
                `ORDER BY ${ident(META.position)} DESC) AS _cdc_rn FROM ${ident(STAGE_ALL)}) latest WHERE _cdc_rn = 1`,
            ),
          ),
        ];
  return [
    lock,
    ...dedupe,
    // Drop changes that are not newer than what the replica already reflects (replays, late arrivals): a live key's
    // last applied position is its replica row's, a deleted key's is its tombstone's in the keys table.
    sql(
      `DELETE FROM ${ident(STAGE)} USING ${names.replica} WHERE ${on(ident(STAGE), ident(replicaName))} ` +
        `AND ${ident(STAGE)}.${ident(META.position)} <= ${ident(replicaName)}.${ident(META.position)}`,
    ),
    sql(
      `DELETE FROM ${ident(STAGE)} USING ${names.keys} WHERE ${on(ident(STAGE), ident(keysName))} ` +
        `AND ${ident(STAGE)}.${ident(META.position)} <= ${ident(keysName)}.${ident(META.position)}`,
    ),
    // Deletes first, then only the other changes go through the MERGE (one WHEN MATCHED only, so a delete there
    // would be an upsert of its before image, written and then removed): a deleted row is touched once.
    ...(opts.noDeletes
      ? []
      : [
          sql(
            `DELETE FROM ${names.replica} USING ${ident(STAGE)} WHERE ${on(ident(replicaName), ident(STAGE))} ` +
              `AND ${ident(STAGE)}.${ident(META.op)} = 'delete'`,
          ),
        ]),
    // Tombstones: every staged key's is over (its change is newer), and each deleted key gets one at its delete.
    sql(`DELETE FROM ${names.keys} USING ${ident(STAGE)} WHERE ${on(ident(keysName), ident(STAGE))}`),
    ...(opts.noDeletes
      ? []
      : [
          sql(
            `INSERT INTO ${names.keys} (${[...pk, ident(META.position), ident(META.deleted)].join(', ')}) ` +
              `SELECT ${[...pk, ident(META.position)].join(', ')}, TRUE FROM ${ident(STAGE)} WHERE ${ident(META.op)} = 'delete'`,
          ),
          sql(`DELETE FROM ${ident(STAGE)} WHERE ${ident(META.op)} = 'delete'`),
        ]),
    sql(
      `MERGE INTO ${names.replica} USING ${ident(STAGE)} AS s ON ${on(names.replica, 's')} ` +
        `WHEN MATCHED THEN UPDATE SET ${setCols.join(', ')} ` +
        `WHEN NOT MATCHED THEN INSERT (${[...replicaCols, ...metaNames()].join(', ')}) ` +
        `VALUES (${[
          ...fromStage('s'),
          ...metaNames()
            .slice(0, 3)
            .map((m) => `s.${m}`),
          d.now,
        ].join(', ')})`,
    ),
    ...versions,
  ];
}

function metaNames(): string[] {
  return [ident(META.position), ident(META.op), ident(META.commitTs), ident(META.loadedAt)];
}

/** `"schema"."name"` → `name` (the unqualified name a DELETE … USING condition refers to). */
function lastPart(qualified: string): string {
  const m = /\."((?:[^"]|"")*)"$/.exec(qualified);
  return m ? m[1]!.replace(/""/g, '"') : qualified;
}
