import { REDSHIFT_MAX_VARCHAR } from '../../../shared/type-mapping';
import type { Dialect } from './dialect';
import { ident, literal } from './dialect';

export interface RedshiftCopyOptions {
  /** IAM role Redshift assumes to read the staging object. */
  readonly copyRoleArn: string;
}

/**
 * Amazon Redshift (provisioned or serverless). The plan stays inside Redshift's grammar: MERGE with exactly one WHEN
 * MATCHED and one WHEN NOT MATCHED without extra conditions and a table as source; staging is loaded with COPY from
 * a CSV object in S3 (VARBYTE as hex, per Redshift's COPY rules); JSON is staged as text and parsed into SUPER.
 */
export function redshiftDialect(opts: RedshiftCopyOptions): Dialect {
  return {
    warehouse: 'redshift',
    stageType: (col) => (col.kind === 'json' ? `VARCHAR(${REDSHIFT_MAX_VARCHAR})` : col.warehouseType),
    fromStage: (col, expr) => (col.kind === 'json' ? `JSON_PARSE(${expr})` : expr),
    bytesCsv: (bytes) => bytes.toString('hex'),
    createTemp: (name, columnsSql) => `CREATE TEMP TABLE ${ident(name)} (${columnsSql})`,
    createTempAs: (name, select) => `CREATE TEMP TABLE ${ident(name)} AS ${select}`,
    lock: (tables) => `LOCK ${tables.join(', ')}`,
    now: 'SYSDATE',
    timestampType: 'TIMESTAMP',
    keyIndex: () => undefined,
    copyFromStaging: (table, columns, location) =>
      `COPY ${ident(table)} (${columns.map(ident).join(', ')}) FROM ${literal(location)} ` +
      `IAM_ROLE ${literal(opts.copyRoleArn)} FORMAT AS CSV GZIP NULL AS '\\\\N' TIMEFORMAT 'auto' DATEFORMAT 'auto' ` +
      'COMPUPDATE OFF STATUPDATE OFF',
  };
}
