/**
 * How the binlog source feeds the snapshotter and the producer core: the one wiring main.ts, the snapshot benchmark
 * and the snapshot-window test all run. Every row is first shown to the snapshotter (a key changed inside an open
 * chunk window is dropped from that chunk), then emitted; signal-table rows carry watermarks and backfill requests.
 */
import type { BinlogSource, DdlStatement } from './binlog-source';
import { ddlActions } from './ddl-events';
import type { TableShape } from './event-encoder';
import type { ProducerCore } from './producer';
import { parseSignal, type Signal } from './signal-table';
import type { Snapshotter } from './snapshotter';

export function connectCapture(
  source: BinlogSource,
  snapshotter: Snapshotter,
  core: ProducerCore,
  fail: (err: Error) => void,
  /** Sees each signal before the snapshotter acts on it (a resync ends a table's quarantine first). */
  beforeSignal?: (signal: Signal) => void,
): void {
  const guarded =
    <T>(handle: (value: T) => void) =>
    (value: T) => {
      try {
        handle(value);
      } catch (err) {
        fail(err as Error);
      }
    };
  // The columns each table had at its last row event: what a later CHANGE/MODIFY COLUMN is compared with.
  const shapes = new Map<string, TableShape>();
  let lastShape: TableShape | undefined;
  source.on(
    'row',
    guarded((c) => {
      if (c.shape !== lastShape) {
        lastShape = c.shape;
        shapes.set(`${c.shape.db}.${c.shape.table}`, c.shape);
      }
      snapshotter.observe(c);
      core.onRow(c);
    }),
  );
  source.on(
    'signal',
    guarded((s) => {
      const signal = parseSignal(s.row);
      beforeSignal?.(signal);
      snapshotter.onSignal(signal, s);
    }),
  );
  source.on(
    'ddl',
    guarded((d: DdlStatement) => {
      snapshotter.onDdl(d.query);
      onDdl(d, source, snapshotter, core, shapes);
    }),
  );
  source.on('commit', (b) => core.onCommit(b));
  source.on('error', (err) => fail(err));
}

/**
 * Turns a DDL statement into table-level events, resyncs and backfills (ddl-events.ts), at the statement's place in
 * the stream: its events are emitted before any row the binlog has after it.
 */
function onDdl(
  d: DdlStatement,
  source: BinlogSource,
  snapshotter: Snapshotter,
  core: ProducerCore,
  shapes: Map<string, TableShape>,
): void {
  const actions = ddlActions(d.query, {
    defaultDb: d.schema,
    captures: (db, table) => source.captures(db, table),
    shape: (db, table) => shapes.get(`${db}.${table}`),
  });
  let row = 0;
  for (const a of actions) {
    const at = { file: d.file, pos: d.pos, gtid: d.gtid, commitMs: d.commitMs };
    if (a.kind === 'event') {
      const shape = shapes.get(`${a.db}.${a.table}`);
      core.onTableChange({
        db: a.db,
        table: a.table,
        op: a.op,
        change: a.change,
        ...(shape ? { pk: shape.pk, columns: shape.columns } : {}),
        ...at,
        row: row++,
      });
      if (a.op === 'drop' || a.op === 'rename') shapes.delete(`${a.db}.${a.table}`);
    } else if (a.kind === 'resync') {
      snapshotter.resync(a.db, a.table, a.reason, { ...at, rowIndex: row++ });
    } else {
      snapshotter.enqueue('added', [{ db: a.db, table: a.table }]);
    }
  }
}
