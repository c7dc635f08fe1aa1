/**
 * How many rows a snapshot chunk reads: at most `SNAPSHOT_CHUNK_ROWS`, and no more than fit `SNAPSHOT_CHUNK_BYTES`
 * by what the table's rows weigh. A chunk is read whole into memory (and the next one is read while the binlog reader
 * reaches the previous one's high watermark), so 4096 rows of 100 KB documents would hold 400 MB twice over. A table's
 * first chunk is sized by the most its columns can hold (from their types, so a table of numbers, dates and short
 * strings reads full chunks from the start); each next chunk by the rows the previous one read. Pure.
 */

import {
  isKnownMysqlType,
  jsonKind,
  MARIADB_BINARY_TEXT_TYPES,
  type MysqlType,
  parseMysqlType,
} from '../../../shared/type-mapping';
import type { TableShape } from './event-encoder';

/** A chunk reads at least this many rows, however large they are, so a snapshot of huge rows still moves. */
export const MIN_CHUNK_ROWS = 16;
/** 16 MiB: half of the producer's default bound on unacknowledged bytes (`MAX_IN_FLIGHT_BYTES`). */
export const DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024;

/** The most bytes of the text and binary types whose length prefix sets it. */
const LOB_BYTES: Readonly<Record<string, number>> = {
  tinytext: 255,
  tinyblob: 255,
  text: 65_535,
  blob: 65_535,
  mediumtext: 16_777_215,
  mediumblob: 16_777_215,
  longtext: 4_294_967_295,
  longblob: 4_294_967_295,
};

/**
 * The most bytes a value of this column type takes as read (UTF-8 text: 4 bytes a character), by the type table's
 * kinds (shared/type-mapping.ts); Infinity where it has no useful bound (JSON, spatial types, a type the table does
 * not know).
 */
export function maxValueBytes(columnType: string): number {
  let t: MysqlType;
  try {
    t = parseMysqlType(columnType);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
  if (!isKnownMysqlType(t)) return Number.POSITIVE_INFINITY;
  switch (jsonKind(t)) {
    case 'string':
      if (t.base === 'char' || t.base === 'varchar') return (t.length ?? 255) * 4;
      if (t.base === 'enum') return Math.max(1, ...(t.values ?? []).map((v) => v.length * 4));
      if (t.base === 'set')
        return Math.max(
          1,
          (t.values ?? []).reduce((n, v) => n + v.length * 4 + 1, 0),
        );
      if (Object.hasOwn(MARIADB_BINARY_TEXT_TYPES, t.base)) return MARIADB_BINARY_TEXT_TYPES[t.base]!.chars;
      return LOB_BYTES[t.base] ?? Number.POSITIVE_INFINITY;
    case 'base64':
      if (t.base === 'binary' || t.base === 'varbinary') return t.length ?? 255;
      return LOB_BYTES[t.base] ?? Number.POSITIVE_INFINITY; // spatial: unbounded
    case 'json':
      return Number.POSITIVE_INFINITY;
    default:
      // Numbers, dates, times, bits: a few dozen characters at most.
      return 48;
  }
}

/** The most bytes a row of this table takes as read (Infinity when a column is unbounded). */
export function maxRowBytes(shape: Pick<TableShape, 'columns'>): number {
  let n = 0;
  for (const c of shape.columns) n += maxValueBytes(c.type);
  return n;
}

/** Roughly the bytes of rows as read: text by its length, bytes by theirs, anything else 8. */
export function rowsBytes(rows: readonly Record<string, unknown>[]): number {
  let n = 0;
  for (const row of rows) {
    for (const k in row) {
      const v = row[k];
      if (typeof v === 'string') n += v.length;
      else if (v instanceof Uint8Array) n += v.byteLength;
      else n += 8;
    }
  }
  return n;
}

/** Rows of the next chunk: what fits `chunkBytes` at `bytesPerRow`, from MIN_CHUNK_ROWS (or fewer) to `chunkRows`. */
export function chunkLimit(chunkRows: number, chunkBytes: number, bytesPerRow: number): number {
  const fit = Math.floor(chunkBytes / Math.max(1, bytesPerRow));
  return Math.min(chunkRows, Math.max(MIN_CHUNK_ROWS, fit));
}
