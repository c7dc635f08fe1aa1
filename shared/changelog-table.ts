/**
 * The raw changelog table in the warehouse: every change event, as loaded by Firehose → Redshift (COPY with the
 * JSONPaths file generated from this list), by the merge's COPY, and by the local Firehose stand-in. One list, so
 * the three cannot drift apart.
 */
import { POSITION_SQL_TYPE } from './change-event';

export interface ChangelogColumn {
  readonly name: string;
  readonly redshiftType: string;
  readonly postgresType: string;
  /** JSONPath into the change event; undefined for columns the warehouse fills itself. */
  readonly jsonPath?: string;
}

export const CHANGELOG_TABLE = 'changelog';

export const CHANGELOG_COLUMNS: readonly ChangelogColumn[] = [
  { name: 'event_version', redshiftType: 'SMALLINT', postgresType: 'SMALLINT', jsonPath: '$.v' },
  { name: 'op', redshiftType: 'VARCHAR(8)', postgresType: 'VARCHAR(8)', jsonPath: '$.op' },
  { name: 'source_db', redshiftType: 'VARCHAR(256)', postgresType: 'VARCHAR(256)', jsonPath: '$.db' },
  { name: 'source_table', redshiftType: 'VARCHAR(256)', postgresType: 'VARCHAR(256)', jsonPath: '$.table' },
  { name: 'position', redshiftType: POSITION_SQL_TYPE, postgresType: POSITION_SQL_TYPE, jsonPath: '$.position' },
  { name: 'tx', redshiftType: 'VARCHAR(256)', postgresType: 'VARCHAR(256)', jsonPath: '$.tx' },
  { name: 'pk', redshiftType: 'SUPER', postgresType: 'JSONB', jsonPath: '$.pk' },
  { name: 'column_types', redshiftType: 'SUPER', postgresType: 'JSONB', jsonPath: '$.columns' },
  { name: 'before_image', redshiftType: 'SUPER', postgresType: 'JSONB', jsonPath: '$.before' },
  { name: 'after_image', redshiftType: 'SUPER', postgresType: 'JSONB', jsonPath: '$.after' },
  { name: 'source_position', redshiftType: 'SUPER', postgresType: 'JSONB', jsonPath: '$.source' },
  { name: 'commit_ms', redshiftType: 'BIGINT', postgresType: 'BIGINT', jsonPath: '$.ts_ms' },
  { name: 'emitted_ms', redshiftType: 'BIGINT', postgresType: 'BIGINT', jsonPath: '$.emitted_ms' },
  { name: 'claim_check', redshiftType: 'SUPER', postgresType: 'JSONB', jsonPath: '$.claim_check' },
  { name: 'loaded_at', redshiftType: 'TIMESTAMP DEFAULT SYSDATE', postgresType: 'TIMESTAMPTZ DEFAULT now()' },
];

/** Columns that come from the event, in JSONPaths order (for COPY column lists). */
export const CHANGELOG_LOADED_COLUMNS = CHANGELOG_COLUMNS.filter((c) => c.jsonPath !== undefined);

/** The JSONPaths document for Redshift `COPY … FORMAT AS JSON 's3://…/changelog-jsonpaths.json'`. */
export function changelogJsonPaths(): { jsonpaths: string[] } {
  return { jsonpaths: CHANGELOG_LOADED_COLUMNS.map((c) => c.jsonPath!) };
}

export function changelogTableDdl(schema: string, warehouse: 'redshift' | 'postgres'): string {
  const cols = CHANGELOG_COLUMNS.map(
    (c) => `  ${c.name} ${warehouse === 'redshift' ? c.redshiftType : c.postgresType}`,
  ).join(',\n');
  const tail = warehouse === 'redshift' ? '\nDISTSTYLE AUTO SORTKEY (source_db, source_table, position)' : '';
  return `CREATE TABLE IF NOT EXISTS ${schema}.${CHANGELOG_TABLE} (\n${cols}\n)${tail}`;
}
