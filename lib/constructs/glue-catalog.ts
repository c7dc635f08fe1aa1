import { Aws, Token } from 'aws-cdk-lib';
import { CfnDatabase, CfnTable } from 'aws-cdk-lib/aws-glue';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { LAKE_CHANGELOG_PREFIX } from '../../shared/lake-layout';

export interface GlueCatalogProps {
  readonly bucket: IBucket;
  /** Glue database name (lower-case, `_` instead of `-`). */
  readonly databaseName: string;
  /** First day partition projection enumerates. @default 2024-01-01 */
  readonly projectionStartDate?: string;
}

/** Columns of one change event (shared/change-event.schema.json) as Hive types for the OpenX JSON SerDe. */
export const CHANGE_EVENT_GLUE_COLUMNS: readonly CfnTable.ColumnProperty[] = [
  { name: 'v', type: 'int', comment: 'event format version' },
  { name: 'op', type: 'string', comment: 'insert | update | delete | read (snapshot)' },
  { name: 'db', type: 'string' },
  { name: 'table', type: 'string' },
  { name: 'pk', type: 'array<string>', comment: 'primary key column names' },
  { name: 'columns', type: 'array<struct<name:string,type:string,nullable:boolean>>' },
  { name: 'before', type: 'map<string,string>', comment: 'row image before (updates, deletes)' },
  { name: 'after', type: 'map<string,string>', comment: 'row image after (inserts, updates, reads)' },
  {
    name: 'source',
    type: 'struct<server_id:bigint,file:string,pos:bigint,row:int,gtid:string>',
    comment: 'binlog coordinates',
  },
  { name: 'position', type: 'string', comment: 'total order of changes: FFFFFF.PPPPPPPPPPPP.RRRRRRRR' },
  { name: 'tx', type: 'string', comment: 'transaction id (GTID or file:pos of its BEGIN)' },
  { name: 'ts_ms', type: 'bigint', comment: 'commit time at the source (ms since epoch)' },
  { name: 'emitted_ms', type: 'bigint' },
  { name: 'claim_check', type: 'struct<bucket:string,key:string,bytes:bigint>' },
];

/**
 * A Glue database with one table over the whole changelog lake. Partitions use projection (no crawler):
 * `source_db`/`source_table` are injected (queries name them: `WHERE source_db = 'shop' AND source_table = 'orders'`),
 * `dt` is a date range from the start date to today, `hour` 00–23.
 */
export class GlueCatalog extends Construct {
  readonly database: CfnDatabase;
  readonly changelogTable: CfnTable;
  readonly databaseName: string;

  constructor(scope: Construct, id: string, props: GlueCatalogProps) {
    super(scope, id);
    if (!Token.isUnresolved(props.databaseName) && !/^[a-z0-9_]{1,255}$/.test(props.databaseName))
      throw new Error(`GlueCatalog databaseName must be lower-case letters, digits and _, got "${props.databaseName}"`);
    this.databaseName = props.databaseName;
    this.database = new CfnDatabase(this, 'Database', {
      catalogId: Aws.ACCOUNT_ID,
      databaseInput: { name: props.databaseName, description: 'mysql-redshift-cdc changelog lake' },
    });
    const location = `s3://${props.bucket.bucketName}/${LAKE_CHANGELOG_PREFIX}`;
    this.changelogTable = new CfnTable(this, 'ChangelogTable', {
      catalogId: Aws.ACCOUNT_ID,
      databaseName: props.databaseName,
      tableInput: {
        name: 'changelog',
        description: 'Every row change captured from the source, one JSON event per line (gzip).',
        tableType: 'EXTERNAL_TABLE',
        partitionKeys: [
          { name: 'source_db', type: 'string' },
          { name: 'source_table', type: 'string' },
          { name: 'dt', type: 'string' },
          { name: 'hour', type: 'string' },
        ],
        parameters: {
          classification: 'json',
          compressionType: 'gzip',
          'projection.enabled': 'true',
          'projection.source_db.type': 'injected',
          'projection.source_table.type': 'injected',
          'projection.dt.type': 'date',
          'projection.dt.format': 'yyyy-MM-dd',
          'projection.dt.range': `${props.projectionStartDate ?? '2024-01-01'},NOW`,
          'projection.dt.interval': '1',
          'projection.dt.interval.unit': 'DAYS',
          'projection.hour.type': 'integer',
          'projection.hour.range': '0,23',
          'projection.hour.digits': '2',
          'storage.location.template': `${location}source_db=\${source_db}/source_table=\${source_table}/dt=\${dt}/hour=\${hour}/`,
        },
        storageDescriptor: {
          location,
          columns: [...CHANGE_EVENT_GLUE_COLUMNS],
          inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
          compressed: true,
          serdeInfo: {
            serializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
            parameters: { 'ignore.malformed.json': 'true', 'case.insensitive': 'false' },
          },
        },
      },
    });
    this.changelogTable.addResourceDependency(this.database);
  }
}
