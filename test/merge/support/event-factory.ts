import type { ChangeEvent, ChangeOp, ColumnMeta, RowImage } from '../../../shared/change-event';
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
