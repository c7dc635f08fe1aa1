import type { Dialect } from './dialect';
import { ident } from './dialect';

/** PostgreSQL 15+, the local stand-in for Redshift. */
export const postgresDialect: Dialect = {
  warehouse: 'postgres',
  stageType: (col) => (col.kind === 'json' ? 'TEXT' : col.warehouseType),
  fromStage: (col, expr) => (col.kind === 'json' ? `(${expr})::jsonb` : expr),
  bytesCsv: (bytes) => `\\x${bytes.toString('hex')}`,
  createTemp: (name, columnsSql) => `CREATE TEMP TABLE ${ident(name)} (${columnsSql}) ON COMMIT DROP`,
  createTempAs: (name, select) => `CREATE TEMP TABLE ${ident(name)} ON COMMIT DROP AS ${select}`,
  // SHARE ROW EXCLUSIVE conflicts with itself (one merge per table at a time) but lets analysts keep reading.
  lock: (tables) => `LOCK TABLE ${tables.join(', ')} IN SHARE ROW EXCLUSIVE MODE`,
  now: 'now()',
  timestampType: 'TIMESTAMPTZ',
  // Redshift has no indexes (it scans by zone maps); PostgreSQL needs them to merge small batches into large tables.
  keyIndex: (table, indexName, columns) =>
    `CREATE UNIQUE INDEX IF NOT EXISTS ${ident(indexName)} ON ${table} (${columns.map(ident).join(', ')})`,
  copyFromStaging: () => undefined,
};
