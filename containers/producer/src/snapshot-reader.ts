/**
 * Reads source tables for snapshots and backfills: table shapes from information_schema (written the way the binlog
 * metadata writes them, so snapshot events and binlog events of a table carry the same column types), and chunks of
 * rows in primary-key order, with values in the same form the binlog reader hands over (exact DECIMAL and BIGINT
 * strings, date-times as text with TIMESTAMP in UTC, FLOAT as float32, spatial values as the stored SRID + WKB bytes;
 * MariaDB UUID/INET4/INET6 typed and printed by the server as text): one encoder (event-encoder.ts) then serves both
 * paths. Plain consistent reads: no locks, no global read lock.
 *
 * Chunks are read through the text protocol (a plain query) unless the table has a FLOAT, DOUBLE or spatial column,
 * which take the binary protocol (a prepared statement): the server's text of a FLOAT or DOUBLE is rounded (a FLOAT's
 * to 6 significant digits; the exact-values snapshot test fails with it), and a spatial value needs a typeCast. Every
 * other type's text is the exact value, with the fractional seconds already at the column's precision, and text rows
 * cost a third of the CPU of binary ones (measured: mysql2 builds each binary DATETIME's text from its parts, and the
 * reader then padded its fraction, more than a third of a binary chunk read).
 */
import mysql from 'mysql2/promise';
import { useBackslashEscapes } from '../../../shared/mysql-session';
import { buildChunkQuery, type KeyValue } from './chunk-query';
import type { TableShape } from './event-encoder';

export interface SnapshotReaderProps {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /**
   * @deprecated spatial values are always read as the bytes the server stores (a 4-byte SRID, then WKB), the bytes the
   * binlog reader hands over too: mysql2's parsed objects lose the SRID and cannot be encoded. Ignored.
   */
  readonly rawSpatial?: boolean;
}

/**
 * `int(11)` → `int`, `bigint(20) unsigned` → `bigint unsigned`, `year(4)` → `year`, MariaDB's `geometrycollection` →
 * `geomcollection`: the binlog metadata's spelling.
 */
export function binlogColumnType(columnType: string): string {
  return columnType
    .replace(/^(tinyint|smallint|mediumint|int|integer|bigint|year)\(\d+\)/i, '$1')
    .replace(/^geometrycollection$/i, 'geomcollection');
}

/** Fractional-second digits of a temporal type (`datetime(6)` → 6), 0 without. */
function fsp(columnType: string): number {
  return Number(/\((\d)\)/.exec(columnType)?.[1] ?? 0);
}

/** Pads or trims the fraction of a date-time/time text to the column's precision (the binlog reader's form). */
export function normaliseFraction(value: string, digits: number): string {
  const m = /^(.*?\d{2}:\d{2}:\d{2})(?:\.(\d+))?$/.exec(value);
  if (!m) return value;
  return digits === 0 ? m[1]! : `${m[1]}.${(m[2] ?? '').padEnd(digits, '0').slice(0, digits)}`;
}

/**
 * Spatial values as the server's bytes (SRID + WKB), the form the binlog reader hands over (binlog-source.ts). Passed
 * only with chunk reads of tables that have a spatial column: with a typeCast function mysql2 builds a field wrapper
 * (an object and three closures) for every value of every row, which cost more than the rest of a chunk read
 * (profiled: 3 s of 7 s of CPU for 200k rows of the benchmark's 6 columns, most of the rest its garbage collection).
 */
function spatialAsBytes(field: { type: string; buffer(): Buffer | null }, next: () => unknown): unknown {
  return field.type === 'GEOMETRY' ? field.buffer() : next();
}

const SPATIAL =
  /^(geometry|point|linestring|polygon|multipoint|multilinestring|multipolygon|geomcollection|geometrycollection)\b/i;

/** Types whose text form is not their exact value (or, spatial, not the stored bytes): read through the binary protocol. */
const BINARY_ONLY = /^(float|double|real)\b/i;

/** How a table's chunks are read (module comment): `text` unless a column's text form is not exact. */
export function chunkProtocol(shape: Pick<TableShape, 'columns'>): 'text' | 'binary' {
  return shape.columns.some((c) => BINARY_ONLY.test(c.type) || SPATIAL.test(c.type)) ? 'binary' : 'text';
}

export class SnapshotReader {
  private constructor(private readonly conn: mysql.Connection) {}

  static async connect(props: SnapshotReaderProps): Promise<SnapshotReader> {
    const conn = await mysql.createConnection({
      host: props.host,
      port: props.port,
      user: props.user,
      password: props.password,
      charset: 'utf8mb4',
      dateStrings: true,
      timezone: 'Z',
      supportBigNumbers: true,
      bigNumberStrings: true,
      jsonStrings: true,
    });
    // TIMESTAMP values rendered in UTC, as the binlog reader renders them.
    await conn.query("SET time_zone = '+00:00'");
    // The watermarks and chunk lookups send escaped values (shared/mysql-session.ts).
    await useBackslashEscapes(conn);
    return new SnapshotReader(conn);
  }

  /** The connection (the watermark writes go through it too: one session for the whole snapshot). */
  get connection(): mysql.Connection {
    return this.conn;
  }

  /** Every base table of the server, minus system schemas (the caller filters by capture rules). */
  async listTables(): Promise<{ db: string; table: string }[]> {
    const [rows] = await this.conn.query(
      "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' " +
        "AND TABLE_SCHEMA NOT IN ('mysql', 'sys', 'information_schema', 'performance_schema') ORDER BY 1, 2",
    );
    return (rows as { db: string; t: string }[]).map((r) => ({ db: r.db, table: r.t }));
  }

  /** The table's columns and primary key as of now; undefined when the table does not exist. */
  async describe(db: string, table: string): Promise<TableShape | undefined> {
    const [cols] = await this.conn.query(
      'SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type FROM information_schema.COLUMNS ' +
        'WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
      [db, table],
    );
    const columns = (cols as { name: string; type: string }[]).map((c) => ({
      name: c.name,
      type: binlogColumnType(c.type),
    }));
    if (columns.length === 0) return undefined;
    const [keys] = await this.conn.query(
      'SELECT COLUMN_NAME AS name FROM information_schema.STATISTICS ' +
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
      [db, table],
    );
    return { db, table, columns, pk: (keys as { name: string }[]).map((k) => k.name) };
  }

  /**
   * Checks an operator's WHERE clause by planning it (nothing is read) and returns the optimizer's row estimate.
   * @throws the server's error for a clause that does not parse or names unknown columns
   */
  async estimate(db: string, table: string, where?: string): Promise<number> {
    if (!where) {
      const [rows] = await this.conn.query(
        'SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
        [db, table],
      );
      return Number((rows as { n: number | null }[])[0]?.n ?? 0);
    }
    const [plan] = await this.conn.query(
      `EXPLAIN SELECT 1 FROM \`${db.replace(/`/g, '``')}\`.\`${table.replace(/`/g, '``')}\` WHERE (${where})`,
    );
    return (plan as { rows: number | string | null }[]).reduce((n, r) => Math.max(n, Number(r.rows ?? 0)), 0);
  }

  /**
   * Reads up to `limit` rows after `after` in primary-key order.
   * @param protocol the text protocol where the table allows it @default `chunkProtocol(shape)`
   */
  async readChunk(
    shape: TableShape,
    after: readonly KeyValue[] | undefined,
    where: string | undefined,
    limit: number,
    protocol: 'text' | 'binary' = chunkProtocol(shape),
  ): Promise<Record<string, unknown>[]> {
    const text = protocol === 'text' && chunkProtocol(shape) === 'text';
    const { sql, params } = buildChunkQuery({
      db: shape.db,
      table: shape.table,
      columns: shape.columns.map((c) => c.name),
      pk: shape.pk,
      after,
      where,
      limit,
      literals: text,
    });
    // The server writes every value at its column's precision: nothing to adjust per row.
    if (text) return (await this.conn.query(sql))[0] as Record<string, unknown>[];
    const spatial = shape.columns.some((c) => SPATIAL.test(c.type));
    const [rows] = await this.conn.execute(
      spatial
        ? { sql, values: params as never[], typeCast: spatialAsBytes as never }
        : { sql, values: params as never[] },
    );
    const list = rows as Record<string, unknown>[];
    // The binary protocol drops trailing zeros of fractional seconds; the binlog reader pads to the precision.
    const temporal = shape.columns.filter((c) => /^(datetime|timestamp|time)\b/i.test(c.type) && fsp(c.type) > 0);
    const floats = shape.columns.filter((c) => /^float\b/i.test(c.type));
    if (temporal.length > 0 || floats.length > 0) {
      for (const r of list) {
        for (const c of temporal) {
          const v = r[c.name];
          if (typeof v === 'string') r[c.name] = normaliseFraction(v, fsp(c.type));
        }
        for (const c of floats) {
          const v = r[c.name];
          if (typeof v === 'number') r[c.name] = Math.fround(v);
        }
      }
    }
    return list;
  }

  async close(): Promise<void> {
    await this.conn.end().catch(() => undefined);
  }
}
