/**
 * Values the warehouse cannot hold, caught while staging instead of by a failing COPY (which would be retried five
 * times, then dead-lettered, without saying which value). Redshift limits (docs/merge.md, "Values too large"):
 * - VARCHAR(n) holds n bytes of UTF-8 (at most 65,535; r_Character_types): MySQL MEDIUMTEXT/LONGTEXT can be longer;
 * - JSON is staged as VARCHAR(65535) text before JSON_PARSE into SUPER, and a SUPER string holds 65,535 bytes unless
 *   the cluster opted into large strings (limitations-super): a JSON document over 65,535 bytes does not load;
 * - VARBYTE(n) holds n bytes (at most 1,024,000; r_VARBYTE_type): a MySQL LONGBLOB can be larger.
 *
 * Policy (`OVERSIZE_VALUES`, per deployment):
 * - `truncate` (default): text is cut at a character boundary so that it ends with a visible marker
 *   (`…[cdc: truncated N bytes]`) and fits; each one is counted (metric `ValuesTruncated`) and logged.
 * - `poison`: the batch is set aside (dead-letter queue) naming table, position, key and column.
 * JSON and binary values are never truncated (a cut document is not JSON, a cut blob is silently corrupt): under
 * either policy they set the batch aside with their reason.
 *
 * Pure: no I/O. The merge calls `limitValue` for each value while it builds the staging CSV (stage-csv.ts).
 */
import type { JsonValue } from '../../../shared/change-event';
import { REDSHIFT_MAX_VARCHAR, type Warehouse } from '../../../shared/type-mapping';
import { PoisonBatchError } from './errors';
import type { ReplicaColumn } from './table-model';

export type OversizePolicy = 'truncate' | 'poison';
export const OVERSIZE_POLICIES: readonly OversizePolicy[] = ['truncate', 'poison'];

export interface TruncatedValue {
  readonly where: string;
  readonly column: string;
  readonly bytes: number;
  readonly limit: number;
}

export interface ValueLimitOptions {
  readonly policy: OversizePolicy;
  /** Called for every value truncated (the Lambda counts them as `ValuesTruncated` and logs them). */
  readonly onTruncated?: (v: TruncatedValue) => void;
}

/** What a value must fit into once staged for a warehouse; undefined when the warehouse takes any size. */
export interface ByteLimit {
  readonly limit: number;
  readonly what: 'text' | 'json' | 'binary';
  /** The staged type the limit comes from, for messages. */
  readonly type: string;
}

const VARCHAR = /^VARCHAR\((\d+)\)$/i;
const VARBYTE = /^VARBYTE\((\d+)\)$/i;

export function byteLimit(col: ReplicaColumn, warehouse: Warehouse): ByteLimit | undefined {
  if (warehouse !== 'redshift') return undefined; // PostgreSQL: TEXT/JSONB/BYTEA and MySQL-sized VARCHAR(n) chars
  if (col.kind === 'json')
    return { limit: REDSHIFT_MAX_VARCHAR, what: 'json', type: `VARCHAR(${REDSHIFT_MAX_VARCHAR})` };
  const bytes = VARBYTE.exec(col.warehouseType);
  if (col.kind === 'base64' && bytes) return { limit: Number(bytes[1]), what: 'binary', type: col.warehouseType };
  const text = VARCHAR.exec(col.warehouseType);
  if (text) return { limit: Number(text[1]), what: 'text', type: col.warehouseType };
  return undefined;
}

export function truncationMarker(originalBytes: number): string {
  return `…[cdc: truncated ${originalBytes} bytes]`;
}

/** The longest prefix of `text` ending with the marker that fits in `limit` bytes, cut at a character boundary. */
export function truncateText(text: string, limit: number): string {
  const buf = Buffer.from(text, 'utf8');
  // A column too narrow for the marker (none the type mapping creates) gets the bare prefix.
  const marker = Buffer.byteLength(truncationMarker(buf.length)) <= limit ? truncationMarker(buf.length) : '';
  let end = Math.max(0, limit - Buffer.byteLength(marker));
  // Never split a UTF-8 sequence: step back over continuation bytes (10xxxxxx) to the start of a character.
  while (end > 0 && end < buf.length && (buf[end]! & 0xc0) === 0x80) end--;
  return `${buf.subarray(0, end).toString('utf8')}${marker}`;
}

let current: ValueLimitOptions = { policy: 'truncate' };

/** Sets the deployment's policy (the Lambda does it once at cold start from its configuration). */
export function configureValueLimits(options: ValueLimitOptions): void {
  current = options;
}

/** Identifies the row for messages: table, position and primary key values. */
export interface RowRef {
  readonly where: string;
  readonly key?: readonly unknown[];
}

/**
 * The value to stage for one event value: unchanged when it fits; truncated text under `truncate`; otherwise a
 * PoisonBatchError (VALUE_TOO_LARGE) naming table, position, key, column, size and limit.
 */
export function limitValue(
  col: ReplicaColumn,
  value: JsonValue | undefined,
  warehouse: Warehouse,
  row: RowRef,
  options: ValueLimitOptions = current,
): JsonValue | undefined {
  if (value === null || value === undefined) return value;
  const limit = byteLimit(col, warehouse);
  if (!limit) return value;
  const bytes =
    limit.what === 'json'
      ? Buffer.byteLength(JSON.stringify(value))
      : limit.what === 'binary'
        ? typeof value === 'string'
          ? Buffer.byteLength(value, 'base64')
          : 0
        : typeof value === 'string'
          ? Buffer.byteLength(value)
          : 0;
  if (bytes <= limit.limit) return value;
  const at = `${row.where}${row.key && row.key.length > 0 ? ` key ${JSON.stringify(row.key)}` : ''}`;
  if (limit.what === 'text' && options.policy === 'truncate' && typeof value === 'string') {
    options.onTruncated?.({ where: at, column: col.name, bytes, limit: limit.limit });
    return truncateText(value, limit.limit);
  }
  const why =
    limit.what === 'text'
      ? 'OVERSIZE_VALUES=poison'
      : `${limit.what === 'json' ? 'a JSON document' : 'a binary value'} is never truncated`;
  throw new PoisonBatchError(
    'VALUE_TOO_LARGE',
    `${at} column ${JSON.stringify(col.name)} (${col.mysqlType}): ${bytes} bytes > ${limit.limit} that Redshift ` +
      `${limit.type} holds (${why}; docs/merge.md, "Values too large")`,
  );
}
