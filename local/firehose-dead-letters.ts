/**
 * The local merge's dead-letter place and its redrive, shared by the merge queues (local/merge-queue.ts: the Firehose
 * stand-in's and the stream apply's), `npx cdc status` and `npx cdc redrive`. Pure: names, shapes and the per-table summary; the I/O stays with its callers.
 *
 * An object whose merge ran out of attempts (or was poison) is set aside as `errors/merge/<object key>.json` holding a
 * {@link SetAsideReport}. A redrive (SQS "Start DLQ redrive" in AWS) is asked for by writing a {@link RedriveRequest}
 * to `<firehose state file>.redrive`; the merge queue of the running pipeline that serves redrives (the stand-in's in
 * lake apply, the stream apply's otherwise) queues the set-aside objects again with fresh attempts, removes their
 * reports, and answers in `<firehose state file>.redrive.done` ({@link RedriveResult}). Through files, because only
 * the process that owns a queue may write it.
 */
import { LAKE_ERROR_PREFIX, parseLakeKey } from '../shared/lake-layout';

/** Where merge objects are set aside, under the lake bucket. */
export const MERGE_DEAD_LETTER_PREFIX = `${LAKE_ERROR_PREFIX}merge/`;

/** The stand-in's state file in the local run's folder (local/pipeline.ts sets FIREHOSE_STATE_FILE to it). */
export const FIREHOSE_STATE_FILE_NAME = 'firehose-state.json';
/**
 * The stream apply's state file (its per-shard checkpoints; local/pipeline.ts sets STREAM_APPLY_STATE_FILE to it);
 * its merge queue of handed-off objects is `<it>.retrying`, beside the stand-in's.
 */
export const STREAM_APPLY_STATE_FILE_NAME = 'stream-apply-state.json';
/** Every merge queue of a local run, by state file name: `npx cdc status` reads each one's `.retrying`. */
export const MERGE_QUEUE_STATE_FILE_NAMES = [FIREHOSE_STATE_FILE_NAME, STREAM_APPLY_STATE_FILE_NAME] as const;

export interface SetAsideReport {
  /** The changelog object's key in the lake bucket (still there: setting aside copies nothing). */
  readonly object: string;
  /** `db.table` of the object's events, or null when its key is not a changelog key. */
  readonly table: string | null;
  /** The last error, prefixed with the table. */
  readonly reason: string;
  readonly attempts: number;
  /** Epoch ms of the first failed attempt and of the last one. */
  readonly firstFailedAt: number;
  readonly failedAt: number;
}

export function setAsideKey(objectKey: string): string {
  return `${MERGE_DEAD_LETTER_PREFIX}${objectKey}.json`;
}

/** `db.table` of a changelog object key, or of its set-aside report's key; null for anything else. */
export function tableOfKey(key: string): string | null {
  const objectKey = key.startsWith(MERGE_DEAD_LETTER_PREFIX)
    ? key.slice(MERGE_DEAD_LETTER_PREFIX.length).replace(/\.json$/, '')
    : key;
  const ref = parseLakeKey(objectKey);
  return ref ? `${ref.db}.${ref.table}` : null;
}

/** The reason kept with a set-aside object: the table first, so a listing of reasons says what is failing. */
export function setAsideReason(table: string | null, message: string): string {
  return table && !message.startsWith(`${table}: `) ? `${table}: ${message}` : message;
}

export interface RedriveRequest {
  readonly id: string;
  /** `db.table` names to redrive; empty: every set-aside merge object. */
  readonly tables: readonly string[];
}

export interface RedriveResult {
  readonly id: string;
  /** Set-aside objects queued again, each with fresh attempts. */
  readonly objects: readonly string[];
}

export const redriveRequestFile = (stateFile: string): string => `${stateFile}.redrive`;
export const redriveResultFile = (stateFile: string): string => `${stateFile}.redrive.done`;
export const retryQueueFile = (stateFile: string): string => `${stateFile}.retrying`;

/** A table whose objects the merge cannot apply: queued for another attempt, set aside, and the newest reason. */
export interface FailingTable {
  readonly retrying: number;
  readonly setAside: number;
  readonly lastError: string;
  /** Epoch ms of that newest failure. */
  readonly lastFailedAt: number;
}

/**
 * Per table, what is failing: objects in the queue that failed at least once (with their last error; objects not yet
 * attempted are not failing) and set-aside reports (their keys, and the newest report's reason when read). Tables
 * with neither are absent.
 */
export function failingTables(
  queue: readonly { key: string; attempts: number; lastError: string; lastFailedAt?: number }[],
  setAside: readonly { key: string; at: number; reason?: string }[],
): Map<string, FailingTable> {
  const out = new Map<string, FailingTable>();
  const add = (table: string | null, kind: 'retrying' | 'setAside', error: string | undefined, at: number) => {
    const name = table ?? '(not a changelog object)';
    const was = out.get(name) ?? { retrying: 0, setAside: 0, lastError: '', lastFailedAt: 0 };
    const newer = error !== undefined && at >= was.lastFailedAt;
    out.set(name, {
      ...was,
      [kind]: was[kind] + 1,
      ...(newer ? { lastError: error, lastFailedAt: at } : {}),
    });
  };
  for (const r of queue) if (r.attempts > 0) add(tableOfKey(r.key), 'retrying', r.lastError, r.lastFailedAt ?? 0);
  for (const s of setAside) add(tableOfKey(s.key), 'setAside', s.reason, s.at);
  return out;
}
