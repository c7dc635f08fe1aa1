import type {
  ChangeEvent,
  ChangeOp,
  ColumnChange,
  ColumnMeta,
  RowImage,
  TableChange,
  TableOp,
} from '../../../shared/change-event';
import { formatPosition } from '../../../shared/change-event';

/**
 * Builds change events for one source table with increasing, realistic positions (binlog file 1, growing offsets),
 * so tests read as sequences of source changes instead of JSON blobs.
 */
export class TableEvents {
  private pos = 1000;
  private file = 'mysql-bin.000001';
  private commitMs = Date.parse('2026-11-23T10:00:00Z');
  columns: ColumnMeta[];

  constructor(
    readonly db: string,
    readonly table: string,
    columns: Record<string, string>,
    readonly pk: string[] = ['id'],
  ) {
    this.columns = Object.entries(columns).map(([name, type]) => ({ name, type }));
  }

  /** Simulates ALTER TABLE ADD COLUMN: later events carry the new column. */
  addColumn(name: string, type: string): void {
    this.columns = [...this.columns, { name, type }];
  }

  /** Moves to the next binlog file (rotation): positions keep growing. */
  rotate(): void {
    const n = Number(this.file.slice(-6)) + 1;
    this.file = `mysql-bin.${String(n).padStart(6, '0')}`;
    this.pos = 4;
  }

  /** A table-level event (contract v2) at the next position. */
  tableEvent(op: TableOp, change: TableChange = {}): ChangeEvent {
    return { ...this.event(op, null, null), v: 2, change };
  }
  truncate(): ChangeEvent {
    return this.tableEvent('truncate', { statement: `TRUNCATE ${this.table}` });
  }
  drop(): ChangeEvent {
    return this.tableEvent('drop', { statement: `DROP TABLE ${this.table}` });
  }
  resync(reason = 'test'): ChangeEvent {
    return this.tableEvent('resync', { reason });
  }
  /** ALTER TABLE: the column changes, and the columns later events carry. */
  alter(columns: ColumnChange[]): ChangeEvent {
    for (const c of columns) {
      if (c.kind === 'rename_column')
        this.columns = this.columns.map((x) => (x.name === c.from ? { ...x, name: c.to } : x));
      if (c.kind === 'add_column') this.columns = [...this.columns, { name: c.name, type: c.type }];
      if (c.kind === 'drop_column') this.columns = this.columns.filter((x) => x.name !== c.name);
    }
    return this.tableEvent('alter', { statement: 'ALTER TABLE', columns });
  }
  /** ALTER TABLE … MODIFY: later events carry the column with its new type. */
  retype(name: string, type: string): void {
    this.columns = this.columns.map((x) => (x.name === name ? { name, type } : x));
  }

  private event(op: ChangeOp, before: RowImage | null, after: RowImage | null): ChangeEvent {
    this.pos += 100;
    this.commitMs += 1000;
    return {
      v: 1,
      op,
      db: this.db,
      table: this.table,
      pk: this.pk,
      columns: this.columns,
      before,
      after,
      source: { server_id: 1, file: this.file, pos: this.pos, row: 0, gtid: `0-1-${this.pos}` },
      position: formatPosition(this.file, this.pos, 0),
      tx: `0-1-${this.pos}`,
      ts_ms: this.commitMs,
      emitted_ms: this.commitMs + 5,
    };
  }

  insert(after: RowImage): ChangeEvent {
    return this.event('insert', null, after);
  }
  read(after: RowImage): ChangeEvent {
    return this.event('read', null, after);
  }
  update(before: RowImage, after: RowImage): ChangeEvent {
    return this.event('update', before, after);
  }
  delete(before: RowImage): ChangeEvent {
    return this.event('delete', before, null);
  }
}

/** Newline-delimited JSON, as Firehose writes it. */
export function ndjson(events: readonly ChangeEvent[]): string {
  return events.map((e) => `${JSON.stringify(e)}\n`).join('');
}
