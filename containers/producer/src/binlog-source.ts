/**
 * The binlog reader: @vlasky/zongji on mysql2, configured for exact values (DECIMAL and big integers as strings,
 * dates as strings, TIMESTAMP rendered in UTC) and table metadata from the binlog itself (binlog_row_metadata=FULL,
 * so every TableMap describes the schema in force when the row was written, also on replay from before an ALTER).
 * Emits decoded rows and transaction boundaries; knows nothing about Kinesis.
 *
 * Two types the binlog metadata does not say exactly, so that rows read here equal the snapshot's (snapshot-reader.ts):
 * - spatial values are handed over as the server's bytes (4-byte SRID, then WKB): zongji would parse them into objects
 *   that lose the SRID and the geometry's type, so its column map reads them as BLOBs instead;
 * - MariaDB UUID/INET4/INET6 columns are `binary(16)`/`binary(4)` in the binlog metadata: their type is looked up in
 *   information_schema (once per table, again after any DDL) before the table's rows are decoded.
 *
 * A rows event zongji cannot decode (a column type it does not know: it reports `Unsupported type …` and goes on with
 * a garbage row) concerns one table: the source drops that event whole, excludes the table from decoding from then on
 * (zongji's excludeSchema, and its own check for the rest of the transaction) and reports it as `undecodable`, so the
 * producer can quarantine the table while every other one flows (table-quarantine.ts).
 */
import { EventEmitter } from 'node:events';
import ZongJi from '@vlasky/zongji';
import mysql from 'mysql2/promise';
import { useBackslashEscapes } from '../../../shared/mysql-session';
import { MARIADB_BINARY_TEXT_TYPES } from '../../../shared/type-mapping';
import type { StartFrom } from './config';
import { ProducerError } from './errors';
import type { TableShape } from './event-encoder';
import { dumpRefusalCode } from './start-position';
import { undecodableTable } from './table-quarantine';

export interface RowChange {
  readonly shape: TableShape;
  readonly op: 'insert' | 'update' | 'delete';
  readonly before: Record<string, unknown> | null;
  readonly after: Record<string, unknown> | null;
  readonly file: string;
  readonly pos: number;
  readonly row: number;
  readonly gtid: string | null;
  readonly commitMs: number;
}

export interface Boundary {
  /** Where to resume to re-read everything after this transaction. */
  readonly file: string;
  readonly pos: number;
  readonly gtid: string | null;
  readonly commitMs: number;
}

export interface BinlogSourceProps {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly serverId: number;
  readonly captures: (db: string, table: string) => boolean;
  /** The signal table: its rows are handed over as `signal` events and never as `row` events. */
  readonly isSignalTable?: (db: string, table: string) => boolean;
  /**
   * Ask the server for a heartbeat after this long without events (MASTER_HEARTBEAT_PERIOD), so an idle connection
   * still proves it is alive (`lastReadAt`). @default no heartbeats
   */
  readonly heartbeatMs?: number;
  /** Tables (`db.table`) not decoded at all: quarantined ones. @default none */
  readonly excluded?: Iterable<string>;
}

/** A captured table whose rows the binlog library cannot decode: none of that event's rows was emitted. */
export interface UndecodableTable {
  readonly db: string;
  readonly table: string;
  /** zongji's message, naming the column and its type code. */
  readonly reason: string;
  /** The last transaction boundary before the event (`file:pos`). */
  readonly position: string;
}

/** A DDL statement read from the binlog. */
export interface DdlStatement {
  readonly query: string;
  /** The statement's default database. */
  readonly schema: string;
  readonly file: string;
  /** End position of the QUERY event. */
  readonly pos: number;
  readonly gtid: string | null;
  readonly commitMs: number;
}

/** A row written to the signal table (insert or update; its after image), where the binlog has it. */
export interface SignalRow {
  readonly row: Record<string, unknown>;
  readonly file: string;
  /** End position of the rows event. */
  readonly pos: number;
  readonly gtid: string | null;
  readonly commitMs: number;
}

interface ZTableMap {
  parentSchema: string;
  tableName: string;
  columnSchemas: { COLUMN_NAME: string; COLUMN_TYPE: string }[];
  /** zongji's decoding plan (binlog type code per column), set before the table's rows are decoded. */
  columns?: { type: number; charset: string | null }[];
}

/** Binlog type codes (MySQL `enum_field_types`). */
const GEOMETRY = 255;
const BLOB = 252;
const BINARY_WIDTH = /^binary\((\d+)\)$/;
interface ZEvent {
  getEventName(): string;
  timestamp: number;
  nextPosition: number;
  gtid?: string;
  tableId?: number;
  tableMap?: Record<number, ZTableMap>;
  primaryKey?: number[];
  rows?: (Record<string, unknown> | { before: Record<string, unknown>; after: Record<string, unknown> })[];
  binlogName?: string;
  query?: string;
  schema?: string;
}
interface ZongJiLike extends EventEmitter {
  start(opts: Record<string, unknown>): void;
  stop(): void;
  options: { filename?: string; position?: number };
  gtidSet?: string;
  connection?: { pause(): void; resume(): void; query(sql: string, cb: (err: Error | null) => void): void };
}

interface SourceEvents {
  row: [RowChange];
  signal: [SignalRow];
  /** A statement that is not a transaction marker (DDL), with its text and where the binlog has it. */
  ddl: [DdlStatement];
  commit: [Boundary];
  error: [Error];
  /** A captured table set aside: excluded from decoding from now on (include() takes it back). */
  undecodable: [UndecodableTable];
  ready: [];
}

const EVENTS = [
  'rotate',
  'tablemap',
  'writerows',
  'updaterows',
  'deleterows',
  'xid',
  'query',
  'mariadbgtid',
  'gtid',
  'heartbeat',
];

export class BinlogSource extends EventEmitter<SourceEvents> {
  private z: ZongJiLike | undefined;
  private file = '';
  private readonly pkByTableId = new Map<number, number[]>();
  private paused = false;
  private readAt = 0;
  /** `db.table` → column → MariaDB UUID/INET4/INET6 type name, as information_schema had it. */
  private readonly binaryTextTypes = new Map<string, ReadonlyMap<string, string>>();
  private lookups = 0;
  private lookupConn: Promise<mysql.Connection> | undefined;
  /** `db.table` of tables not decoded (quarantined). */
  private readonly excluded: Set<string>;
  /**
   * Set by zongji's `Unsupported type` error while it decodes a rows event: the next thing it delivers (that event,
   * with garbage rows, or the parse error the garbage caused) belongs to the same packet and is dropped.
   */
  private undecoded: string | undefined;
  lastEventMs = 0;

  constructor(private readonly props: BinlogSourceProps) {
    super();
    this.excluded = new Set(props.excluded ?? []);
  }

  /** zongji's filters: the events we read, and the excluded tables left undecoded (their table maps are skipped). */
  private filters(): Record<string, unknown> {
    const excludeSchema: Record<string, string[]> = {};
    for (const name of this.excluded) {
      const dot = name.indexOf('.');
      const db = name.slice(0, dot);
      excludeSchema[db] = [...(excludeSchema[db] ?? []), name.slice(dot + 1)];
    }
    return { includeEvents: EVENTS, excludeSchema };
  }

  /** Stops decoding a table's rows (its rows events are skipped before decoding). */
  exclude(db: string, table: string): void {
    this.excluded.add(`${db}.${table}`);
    this.z?.start(this.filters()); // on a running zongji, start() only replaces the filters
  }

  /** Decodes a table's rows again, from its next table map on. */
  include(db: string, table: string): void {
    if (!this.excluded.delete(`${db}.${table}`)) return;
    this.z?.start(this.filters());
  }

  /** Whether the pipeline captures this table (the capture rules). */
  captures(db: string, table: string): boolean {
    return this.props.captures(db, table);
  }

  start(from: Exclude<StartFrom, { kind: 'checkpoint' }>): void {
    const z = new ZongJi({
      host: this.props.host,
      port: this.props.port,
      user: this.props.user,
      password: this.props.password,
      dateStrings: true,
      timezone: 'Z',
      supportBigNumbers: true,
      bigNumberStrings: true,
      charset: 'utf8mb4',
    } as never) as unknown as ZongJiLike;
    this.z = z;
    this.readAt = Date.now();
    z.on('error', (err: Error & { errno?: number; code?: string }) => {
      if (this.onDecodeError(err)) return;
      if (err.errno === 1236 || /purged|could not find first log|1236/i.test(err.message)) {
        const code = dumpRefusalCode(err.message);
        this.emit(
          'error',
          new ProducerError(
            code,
            code === 'BINLOG_PURGED'
              ? `the binlog needed to resume is no longer on the server (${err.message}); a new snapshot is required, refusing to skip ahead`
              : `the server cannot read the binlog from ${z.options.filename}:${z.options.position}, which is not the start of an event (${err.message}); nothing was purged: move to an event boundary with npx cdc set-position`,
          ),
        );
      } else {
        this.emit('error', err);
      }
    });
    z.on('ready', () => this.emit('ready'));
    z.on('binlog', (evt: ZEvent) => this.onEvent(evt));
    const opts: Record<string, unknown> = { serverId: this.props.serverId, ...this.filters() };
    if (from.kind === 'end') opts.startAtEnd = true;
    else if (from.kind === 'file') Object.assign(opts, { filename: from.file, position: from.pos });
    else opts.gtidSet = from.gtidSet;
    z.start(opts);
    if (this.props.heartbeatMs) {
      // A session variable of the binlog connection (created by start()), read by the server when the dump begins:
      // queued now, it runs before zongji's own preamble and the dump command.
      const ns = BigInt(this.props.heartbeatMs) * 1_000_000n;
      z.connection?.query(`SET @master_heartbeat_period = ${ns}`, (err) => {
        if (err) this.emit('error', err);
      });
    }
  }

  /**
   * Handles a decoding error that concerns one table (true: handled); false for any other error, which the caller
   * treats as fatal. An undecodable table the pipeline does not capture is excluded silently: its rows are never
   * needed. The signal table is never excluded: its watermarks and requests concern every table.
   */
  private onDecodeError(err: Error): boolean {
    const t = undecodableTable(err.message);
    if (!t) {
      if (this.undecoded === undefined) return false;
      // zongji's parse of the garbage row failed: the rest of the same undecodable event.
      this.undecoded = undefined;
      return true;
    }
    const name = `${t.db}.${t.table}`;
    if (this.props.isSignalTable?.(t.db, t.table)) return false;
    this.undecoded = name;
    if (this.excluded.has(name)) return true; // the same event's next row, or a later event of the same transaction
    this.exclude(t.db, t.table);
    if (!this.props.captures(t.db, t.table)) return true;
    const z = this.z;
    this.emit('undecodable', {
      db: t.db,
      table: t.table,
      reason: err.message,
      position: `${z?.options.filename ?? this.file}:${z?.options.position ?? ''}`,
    });
    return true;
  }

  private onEvent(evt: ZEvent): void {
    this.undecoded = undefined;
    const name = evt.getEventName();
    this.readAt = Date.now();
    if (name === 'heartbeat') return;
    this.lastEventMs = evt.timestamp;
    switch (name) {
      case 'rotate':
        if (evt.binlogName) this.file = evt.binlogName;
        return;
      case 'tablemap': {
        if (evt.tableId !== undefined) this.pkByTableId.set(evt.tableId, evt.primaryKey ?? []);
        const tm = evt.tableId !== undefined ? evt.tableMap?.[evt.tableId] : undefined;
        if (tm) {
          for (const c of tm.columns ?? []) {
            if (c.type === GEOMETRY) {
              c.type = BLOB;
              c.charset = null;
            }
          }
          this.lookUpBinaryTextTypes(tm);
        }
        return;
      }
      case 'writerows':
      case 'updaterows':
      case 'deleterows': {
        const tm = evt.tableMap![evt.tableId!]!;
        // A quarantined table's rows (zongji decoded them with a table map cached before the exclusion): dropped.
        if (this.excluded.has(`${tm.parentSchema}.${tm.tableName}`)) return;
        if (this.props.isSignalTable?.(tm.parentSchema, tm.tableName)) {
          if (name === 'deleterows') return;
          const file = this.file || this.z?.options.filename || '';
          for (const r of evt.rows!) {
            const row = name === 'updaterows' ? (r as { after: Record<string, unknown> }).after : r;
            this.emit('signal', {
              row: row as Record<string, unknown>,
              file,
              pos: evt.nextPosition,
              gtid: evt.gtid ?? null,
              commitMs: evt.timestamp,
            });
          }
          return;
        }
        if (!this.props.captures(tm.parentSchema, tm.tableName)) return;
        const logical = this.binaryTextTypes.get(`${tm.parentSchema}.${tm.tableName}`);
        const columns = tm.columnSchemas.map((c) => {
          const type = logical?.get(c.COLUMN_NAME);
          const width = Number(BINARY_WIDTH.exec(c.COLUMN_TYPE)?.[1]);
          return {
            name: c.COLUMN_NAME,
            type: type && MARIADB_BINARY_TEXT_TYPES[type]?.bytes === width ? type : c.COLUMN_TYPE,
          };
        });
        const pk = (this.pkByTableId.get(evt.tableId!) ?? []).map((i) => columns[i]!.name);
        const shape: TableShape = { db: tm.parentSchema, table: tm.tableName, columns, pk };
        const op = name === 'writerows' ? 'insert' : name === 'updaterows' ? 'update' : 'delete';
        const file = this.file || this.z?.options.filename || '';
        evt.rows!.forEach((r, i) => {
          const ud = r as { before: Record<string, unknown>; after: Record<string, unknown> };
          this.emit('row', {
            shape,
            op,
            before: op === 'insert' ? null : op === 'update' ? ud.before : (r as Record<string, unknown>),
            after: op === 'delete' ? null : op === 'update' ? ud.after : (r as Record<string, unknown>),
            file,
            pos: evt.nextPosition,
            row: i,
            gtid: evt.gtid ?? null,
            commitMs: evt.timestamp,
          } satisfies RowChange);
        });
        return;
      }
      case 'xid':
        this.boundary(evt);
        return;
      case 'query': {
        // DDL and other non-transactional statements end their own event group; BEGIN does not.
        const q = (evt.query ?? '').trim().toUpperCase();
        if (q !== 'BEGIN' && !q.startsWith('XA ')) {
          if (q !== 'COMMIT' && q !== 'ROLLBACK') {
            this.binaryTextTypes.clear(); // a DDL may have changed a column's type: look them up again
            this.emit('ddl', {
              query: evt.query ?? '',
              schema: evt.schema ?? '',
              file: this.file || this.z?.options.filename || '',
              pos: evt.nextPosition,
              gtid: evt.gtid ?? null,
              commitMs: evt.timestamp,
            });
          }
          this.boundary(evt);
        }
        return;
      }
      default:
        return;
    }
  }

  private boundary(evt: ZEvent): void {
    // zongji keeps options.filename/position at the last transaction boundary: exactly our resume point.
    const file = this.z?.options.filename ?? this.file;
    const pos = this.z?.options.position ?? evt.nextPosition;
    this.emit('commit', {
      file,
      pos,
      gtid: this.z?.gtidSet ?? evt.gtid ?? null,
      commitMs: evt.timestamp,
    } satisfies Boundary);
  }

  /**
   * For a captured table with `binary(4)`/`binary(16)` columns not looked up since the last DDL: pauses decoding
   * (mysql2 queues the packets) until information_schema says which of them are UUID/INET4/INET6.
   */
  private lookUpBinaryTextTypes(tm: ZTableMap): void {
    const key = `${tm.parentSchema}.${tm.tableName}`;
    if (this.binaryTextTypes.has(key) || !this.props.captures(tm.parentSchema, tm.tableName)) return;
    if (!tm.columnSchemas.some((c) => BINARY_WIDTH.test(c.COLUMN_TYPE))) return;
    this.lookups++;
    this.z?.connection?.pause();
    this.lookupConn ??= mysql
      .createConnection({
        host: this.props.host,
        port: this.props.port,
        user: this.props.user,
        password: this.props.password,
      })
      .then(async (conn) => {
        await useBackslashEscapes(conn); // the lookup sends the table's name escaped
        return conn;
      });
    this.lookupConn
      .then((conn) =>
        conn.query(
          'SELECT COLUMN_NAME AS name, DATA_TYPE AS type FROM information_schema.COLUMNS ' +
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND DATA_TYPE IN ('uuid', 'inet4', 'inet6')",
          [tm.parentSchema, tm.tableName],
        ),
      )
      .then(([rows]) => {
        const list = rows as { name: string; type: string }[];
        this.binaryTextTypes.set(key, new Map(list.map((r) => [r.name, r.type.toLowerCase()])));
        this.lookups--;
        if (this.lookups === 0 && !this.paused) this.z?.connection?.resume();
      })
      .catch((err: Error) => this.emit('error', err));
  }

  /** Backpressure: stop reading the socket (the server buffers) until resume(). */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.z?.connection?.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.lookups === 0) this.z?.connection?.resume();
  }

  /** When the replication connection last delivered an event or a heartbeat (the start time before the first). */
  get lastReadAt(): number {
    return this.readAt;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  stop(): void {
    this.z?.stop();
    void this.lookupConn?.then((c) => c.end()).catch(() => undefined);
  }
}
