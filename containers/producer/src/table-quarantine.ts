/**
 * Tables set aside (quarantined): a table whose binlog rows cannot be decoded stops replicating on its own while every
 * other table flows (docs/operations.md, "A table is quarantined"). The list is kept in the checkpoint item (attribute
 * `quarantine`), so a restarted producer leaves the table out from its first event; `npx cdc resync <db.table>` ends a
 * quarantine: the producer reads the table again from the resync signal's place in the binlog, and the backfill the
 * resync starts rebuilds its replica.
 */
import type { Signal } from './signal-table';

export interface QuarantinedTable {
  /** `db.table`, as the binlog names it. */
  readonly table: string;
  /** Why: the decoder's message, naming the column and its type. */
  readonly reason: string;
  /** When it was set aside (epoch ms). */
  readonly since: number;
  /** The binlog position (`file:pos`, the last transaction boundary) it was set aside at. */
  readonly position: string;
}

/**
 * Reads zongji's "cannot decode this column" error (`Unsupported type "<type>" on column "<column>" of the table
 * "<table>" in the database "<db>"`, @vlasky/zongji lib/common.js), the one decoding error that names its table.
 */
export function undecodableTable(
  message: string,
): { readonly db: string; readonly table: string; readonly column: string; readonly type: string } | undefined {
  const m = /Unsupported type "([^"]*)" on column "([^"]*)" of the table "([^"]*)" in the database "([^"]*)"/.exec(
    message,
  );
  if (!m) return undefined;
  return { type: m[1]!, column: m[2]!, table: m[3]!, db: m[4]! };
}

/** The table a resync signal for this pipeline names (what may end its quarantine), if any. */
export function resyncedTable(signal: Signal, pipelineId: string): { db: string; table: string } | undefined {
  if (signal.type !== 'resync' || (signal.pipeline !== null && signal.pipeline !== pipelineId)) return undefined;
  const [db, table] = signal.table.split('.');
  return db && table ? { db, table } : undefined;
}

/** Parses the stored list (attribute `quarantine`, JSON); anything unreadable is an empty list. */
export function parseQuarantine(text: string | undefined): QuarantinedTable[] {
  if (!text) return [];
  try {
    const list = JSON.parse(text) as unknown;
    if (!Array.isArray(list)) return [];
    return list.filter(
      (q): q is QuarantinedTable =>
        typeof q === 'object' && q !== null && typeof q.table === 'string' && typeof q.reason === 'string',
    );
  } catch {
    return [];
  }
}

/** The quarantined tables of a pipeline, held by the producer and saved with its checkpoint. */
export class TableQuarantine {
  private readonly byName = new Map<string, QuarantinedTable>();

  constructor(initial: readonly QuarantinedTable[] = []) {
    for (const q of initial) this.byName.set(q.table, q);
  }

  has(db: string, table: string): boolean {
    return this.byName.has(`${db}.${table}`);
  }

  /** Sets a table aside; false when it already was. */
  add(q: QuarantinedTable): boolean {
    if (this.byName.has(q.table)) return false;
    this.byName.set(q.table, q);
    return true;
  }

  /** Takes a table back; false when it was not quarantined. */
  remove(db: string, table: string): boolean {
    return this.byName.delete(`${db}.${table}`);
  }

  get list(): QuarantinedTable[] {
    return [...this.byName.values()];
  }

  get size(): number {
    return this.byName.size;
  }

  serialize(): string {
    return JSON.stringify(this.list);
  }
}
