/**
 * Where change events live in the S3 changelog lake. Firehose (in AWS) and the local Firehose stand-in write the same
 * keys; the Glue tables project the same partitions; the merge reads db/table from them.
 *
 *   <prefix>source_db=<db>/source_table=<table>/dt=<yyyy-MM-dd>/hour=<HH>/<object>.gz
 *
 * Objects are GZIP-compressed newline-delimited JSON (one change event per line, change-event.schema.json), and hold
 * the events of exactly one table, so one object is one merge batch.
 */
import type { ChangeEvent } from './change-event';

export const LAKE_CHANGELOG_PREFIX = 'changelog/';
export const LAKE_ERROR_PREFIX = 'errors/';
/** Events too large for a Kinesis record, one object each (`claimCheckKey`); the record carries a pointer to it. */
export const LAKE_CLAIM_CHECK_PREFIX = 'claim-check/';
/** The merge's staging CSV files for Redshift COPY (expired after a day). */
export const LAKE_STAGING_PREFIX = 'staging/';
/**
 * Events of one table that the stream apply could not merge while the other tables of its batch merged (or the
 * warehouse answered): written here with the lake's partition layout, one object per table and batch, and queued for
 * the lake path's merge, which retries them with backoff and sets them aside with their reason.
 */
export const LAKE_HANDOFF_PREFIX = 'handoff/';
/** Stream records the stream apply could not decode, kept with their reason (never retried by themselves). */
export const LAKE_STREAM_ERROR_PREFIX = `${LAKE_ERROR_PREFIX}stream/`;

/** The S3 key of one claim-checked event: `<prefix><db>/<table>/<position>.json` (unique per event, stable on replay). */
export function claimCheckKey(
  event: Pick<ChangeEvent, 'db' | 'table' | 'position'>,
  prefix: string = LAKE_CLAIM_CHECK_PREFIX,
): string {
  return `${prefix}${event.db}/${event.table}/${event.position}.json`;
}

/** Firehose S3 prefix with dynamic partitioning (partition keys extracted with JQ from the event's `db` and `table`). */
export const FIREHOSE_PREFIX =
  `${LAKE_CHANGELOG_PREFIX}source_db=!{partitionKeyFromQuery:db}/source_table=!{partitionKeyFromQuery:table}` +
  '/dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/';
export const FIREHOSE_ERROR_PREFIX = `${LAKE_ERROR_PREFIX}!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/`;
/** JQ for Firehose's MetadataExtraction processor. */
export const FIREHOSE_PARTITION_JQ = '{db: .db, table: .table}';

/** The partition folder of one table at one moment (UTC), with the trailing slash. */
export function lakePartitionPrefix(db: string, table: string, at: Date, prefix = LAKE_CHANGELOG_PREFIX): string {
  const iso = at.toISOString();
  return `${prefix}source_db=${db}/source_table=${table}/dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}/`;
}

export interface LakeObjectRef {
  readonly db: string;
  readonly table: string;
  readonly dt: string;
  readonly hour: string;
}

/** Reads db/table/dt/hour back from an object key; undefined when the key is not a changelog object. */
export function parseLakeKey(key: string): LakeObjectRef | undefined {
  const m = /(?:^|\/)source_db=([^/]+)\/source_table=([^/]+)\/dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\/[^/]+$/.exec(
    decodeURIComponent(key.replace(/\+/g, ' ')),
  );
  if (!m) return undefined;
  return { db: m[1]!, table: m[2]!, dt: m[3]!, hour: m[4]! };
}
