/**
 * The pure part of the local Firehose stand-in: when a buffer is due, and the keys of the objects it writes (one
 * per source table, as Firehose's dynamic partitioning on db/table does; the grouping is the merge's groupByTable).
 */
import { randomUUID } from 'node:crypto';
import type { ChangeEvent } from '../shared/change-event';
import { lakePartitionPrefix } from '../shared/lake-layout';

/** PostgreSQL application_name of the Firehose stand-in's (and its merge's) connections. */
export const FIREHOSE_APPLICATION_NAME = 'local-firehose';

export interface BufferingHints {
  /** Deliver at the latest this long after the first buffered record. */
  readonly intervalMs: number;
  /** Deliver as soon as this many bytes (UTF-8 NDJSON) are buffered. */
  readonly sizeBytes: number;
}

/** Firehose delivers when either hint is reached, whichever comes first. */
export function flushDue(hints: BufferingHints, bufferedBytes: number, oldestMs: number, nowMs: number): boolean {
  return bufferedBytes > 0 && (bufferedBytes >= hints.sizeBytes || nowMs - oldestMs >= hints.intervalMs);
}

/**
 * The key Firehose would give this table's object delivered at `at`: the lake partition folder, then a unique name.
 * The name starts with the delivery time so a listing is in delivery order, as with Firehose's own names.
 */
export function lakeObjectKey(db: string, table: string, at: Date, uuid: string = randomUUID()): string {
  return `${lakePartitionPrefix(db, table, at)}local-firehose-${at.toISOString().replace(/[-:.]/g, '')}-${uuid}.gz`;
}

export function ndjson(events: readonly ChangeEvent[]): string {
  return events.map((e) => `${JSON.stringify(e)}\n`).join('');
}

export class FirehoseConfigError extends Error {
  readonly code = 'LOCAL_FIREHOSE_CONFIG';
}

/** Validates buffering hints the way Firehose does (interval 0–900 s, size 1–128 MiB; locally down to 1 byte). */
export function checkHints(hints: BufferingHints): BufferingHints {
  const problems: string[] = [];
  if (!Number.isInteger(hints.intervalMs) || hints.intervalMs < 0 || hints.intervalMs > 900_000)
    problems.push(`intervalMs must be an integer from 0 to 900000, got ${JSON.stringify(hints.intervalMs)}`);
  if (!Number.isInteger(hints.sizeBytes) || hints.sizeBytes < 1 || hints.sizeBytes > 128 * 1024 * 1024)
    problems.push(`sizeBytes must be an integer from 1 to 134217728, got ${JSON.stringify(hints.sizeBytes)}`);
  if (problems.length) throw new FirehoseConfigError(`invalid buffering hints: ${problems.join('; ')}`);
  return hints;
}
