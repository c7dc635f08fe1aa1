/**
 * CLI errors with a stable code; each maps to an exit code: bad arguments 2, everything else 1 (so scripts can tell
 * "you called it wrong" from "the pipeline is not in the state you asked about").
 */
export type CliErrorCode =
  | 'USAGE' // bad arguments: exit 2
  | 'TARGET' // no pipeline to talk to
  | 'NOT_FOUND' // table, replica or job missing
  | 'REFUSED' // a position that is purged/ahead, an unconfirmed change, a table that exists
  | 'FAILED'; // the operation ran and failed (a backfill job failed, a validation found differences)

export class CliError extends Error {
  constructor(
    readonly code: CliErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }

  get exitCode(): number {
    return this.code === 'USAGE' ? 2 : 1;
  }
}

/** `db.table` → parts. @throws CliError USAGE naming what it got */
export function parseTableName(text: string | undefined, verb: string): { db: string; table: string } {
  const m = /^([A-Za-z0-9_$]+)\.([A-Za-z0-9_$]+)$/.exec(text ?? '');
  if (!m) throw new CliError('USAGE', `${verb} needs <db.table>, got ${JSON.stringify(text ?? null)}`);
  return { db: m[1]!, table: m[2]! };
}
