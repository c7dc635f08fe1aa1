import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { postgresDialect } from '../../lambdas/merge/src/dialect-postgres';
import { redshiftDialect } from '../../lambdas/merge/src/dialect-redshift';
import { planBookkeeping, planMerge } from '../../lambdas/merge/src/merge-plan';
import { type NamingOptions, tableNames } from '../../lambdas/merge/src/naming';
import {
  checkRedshiftStatement,
  redshiftProblems,
  redshiftTransactionProblems,
} from '../../lambdas/merge/src/redshift-grammar';
import {
  decideSchemaChanges as decide,
  planCreate,
  planRegistryCheck,
  planSchemaChangeDdl,
} from '../../lambdas/merge/src/schema-evolution';
import { planShapeRecords, planTableChange } from '../../lambdas/merge/src/table-change-plan';
import { modelFromEvents } from '../../lambdas/merge/src/table-model';
import type { RowImage } from '../../shared/change-event';
import { TableEvents } from './support/event-factory';

const rs = redshiftDialect({ copyRoleArn: 'arn:aws:iam::123456789012:role/cdc-copy' });

/** Every MySQL type of the mapping table in docs/merge.md (shared/type-mapping.ts). */
const EVERY_TYPE: Record<string, string> = {
  c_tinyint: 'tinyint(4)',
  c_utinyint: 'tinyint(3) unsigned',
  c_smallint: 'smallint(6)',
  c_usmallint: 'smallint(5) unsigned',
  c_mediumint: 'mediumint(9)',
  c_int: 'int(11)',
  c_uint: 'int(10) unsigned',
  c_bigint: 'bigint(20)',
  c_ubigint: 'bigint(20) unsigned',
  c_decimal: 'decimal(12,2)',
  c_widedecimal: 'decimal(65,30)',
  c_float: 'float',
  c_double: 'double',
  c_bit: 'bit(10)',
  c_year: 'year(4)',
  c_date: 'date',
  c_datetime: 'datetime(6)',
  c_timestamp: 'timestamp(6)',
  c_time: 'time(6)',
  c_char: 'char(10)',
  c_varchar: 'varchar(255)',
  c_widevarchar: 'varchar(16383)',
  c_text: 'text',
  c_longtext: 'longtext',
  c_enum: "enum('new','paid')",
  c_set: "set('a','b')",
  c_binary: 'binary(16)',
  c_varbinary: 'varbinary(255)',
  c_blob: 'blob',
  c_json: 'json',
  c_geometry: 'geometry',
};

interface Shape {
  readonly name: string;
  readonly db: string;
  readonly table: string;
  readonly columns: Record<string, string>;
  readonly pk: string[];
  readonly history?: boolean;
  readonly naming?: NamingOptions;
}

const SHAPES: Shape[] = [
  { name: 'keyed', db: 'shop', table: 'orders', columns: { id: 'int(11)', total: 'decimal(10,2)' }, pk: ['id'] },
  {
    name: 'composite key',
    db: 'shop',
    table: 'order_lines',
    columns: { order_id: 'bigint(20)', line: 'smallint(6)', sku: 'varchar(32)' },
    pk: ['order_id', 'line'],
  },
  { name: 'keyless', db: 'shop', table: 'audit', columns: { who: 'varchar(20)', at: 'timestamp' }, pk: [] },
  {
    name: 'history',
    db: 'shop',
    table: 'prices',
    columns: { id: 'int(11)', price: 'decimal(10,2)' },
    pk: ['id'],
    history: true,
  },
  {
    name: 'keyless history',
    db: 'shop',
    table: 'log',
    columns: { line: 'text', at: 'datetime' },
    pk: [],
    history: true,
  },
  {
    name: 'every mapped type, keyed',
    db: 'types',
    table: 'all_types',
    columns: { id: 'int(11)', ...EVERY_TYPE },
    pk: ['id'],
  },
  {
    name: 'every mapped type, history',
    db: 'types',
    table: 'all_types_h',
    columns: { id: 'int(11)', ...EVERY_TYPE },
    pk: ['id'],
    history: true,
  },
  {
    name: 'reserved and mixed-case names',
    db: 'Select',
    table: 'Order',
    columns: { User: 'int(11)', From: 'varchar(10)', 'Mixed Case': 'int(11)', group: 'date', end: 'text' },
    pk: ['User', 'From'],
    history: true,
  },
  {
    name: 'quotes in names',
    db: "o'brien",
    table: 'we"ird',
    columns: { 'i"d': 'int(11)', "it's": 'varchar(5)', 'a""b': 'json' },
    pk: ['i"d'],
    history: true,
  },
  {
    name: 'keyless with quotes and reserved words',
    db: 'x',
    table: 'table',
    columns: { select: 'varchar(5)', 'o"k': 'int(11)' },
    pk: [],
  },
  {
    name: 'one replica schema',
    db: 'shop',
    table: 'orders',
    columns: { id: 'int(11)', note: 'varchar(5)' },
    pk: ['id'],
    naming: { stateSchema: 'cdc_state', replicaSchema: 'analytics' },
  },
];

function eventsFor(shape: Shape) {
  const t = new TableEvents(shape.db, shape.table, shape.columns, shape.pk);
  const row: RowImage = Object.fromEntries(Object.keys(shape.columns).map((c) => [c, null]));
  return { t, events: [t.insert(row), t.update(row, row), t.delete(row)] };
}

/** Every statement the Redshift dialect produces for a shape: bookkeeping, create, schema change, merge. */
function generated(shape: Shape) {
  const naming = shape.naming ?? { stateSchema: 'cdc' };
  const { t, events } = eventsFor(shape);
  const model = modelFromEvents(events, 'redshift');
  const names = tableNames(model.db, model.table, naming);
  const history = shape.history ?? false;
  const ddl = [...planBookkeeping(names, naming.stateSchema), ...planCreate(model, names, rs, history)];
  // New columns and a widened text column.
  const firstCol = Object.keys(shape.columns).find((c) => !shape.pk.includes(c))!;
  t.addColumn('added_note', 'varchar(10)');
  t.addColumn('Added "Quoted"', 'json');
  t.columns = t.columns.map((c) => (c.name === firstCol ? { name: c.name, type: 'varchar(16000)' } : c));
  const next = modelFromEvents([t.insert(Object.fromEntries(t.columns.map((c) => [c.name, null])))], 'redshift');
  const existing = model.columns.map((c) =>
    c.name === firstCol
      ? { name: c.name, mysqlType: 'varchar(10)', warehouseType: 'VARCHAR(40)' }
      : { name: c.name, mysqlType: c.mysqlType, warehouseType: c.warehouseType },
  );
  const changes = decide(
    existing,
    // The widened column must have been VARCHAR before: keep the test independent of the shape's first type.
    {
      ...next,
      columns: next.columns.map((c) => (c.name === firstCol ? { ...c, warehouseType: 'VARCHAR(64000)' } : c)),
    },
  );
  const schema = schemaStatements(planSchemaChangeDdl(next, changes, names, history));
  const txn = planMerge(next, names, rs, {
    batchId: 's3://lake/changelog/source_db=x/o\'brien--"q".gz',
    events: 4,
    maxPosition: '000001.000000001100.00000000',
    maxCommitMs: 1_700_000_000_000,
    history,
    stageLocation: 's3://lake/staging/0123456789abcdef.csv.gz',
  }).map((s) => (s.kind === 'sql' ? s.sql : s.sql!));
  return { ddl, schema, txn };
}

/**
 * Schema-change DDL: statements run one by one (`outside`) and those run as one transaction (`inTransaction`).
 * Accepts the planner's older shape (one list, each statement on its own) too.
 */
function schemaStatements(plan: unknown): { outside: string[]; inTransaction: string[] } {
  return Array.isArray(plan)
    ? { outside: plan as string[], inTransaction: [] }
    : (plan as { outside: string[]; inTransaction: string[] });
}

function goldenStatements(): { file: string; sql: string }[] {
  const dir = join(__dirname, '__golden__');
  return readdirSync(dir)
    .filter((f) => f.startsWith('redshift-'))
    .flatMap((file) =>
      readFileSync(join(dir, file), 'utf8')
        .split(/;\n\n/)
        .map((s) => s.replace(/;\n$/, '').trim())
        .filter((s) => s !== '' && !s.startsWith('--'))
        .map((sql) => ({ file, sql })),
    );
}

describe('Redshift allow-list grammar: everything the Redshift dialect produces parses', () => {
  it('accepts every statement of the golden files', () => {
    const statements = goldenStatements();
    expect(statements.length).toBeGreaterThan(40);
    for (const { file, sql } of statements)
      expect({ file, sql, problems: redshiftProblems(sql) }).toMatchObject({ problems: [] });
    // The forms are recognised as what they are, not just waved through.
    const kinds = new Set(statements.map((s) => checkRedshiftStatement(s.sql).kind));
    expect([...kinds]).toEqual(
      expect.arrayContaining(['COPY', 'CREATE SCHEMA', 'CREATE TABLE', 'CREATE TABLE AS', 'DELETE', 'INSERT', 'MERGE']),
    );
    expect(kinds.has(undefined)).toBe(false);
  });

  for (const shape of SHAPES) {
    it(`accepts the generated plan of a table: ${shape.name}`, () => {
      const { ddl, schema, txn } = generated(shape);
      for (const sql of [...ddl, ...schema.outside])
        expect({ sql, problems: redshiftProblems(sql) }).toMatchObject({ problems: [] });
      expect(redshiftTransactionProblems(schema.inTransaction)).toEqual([]);
      expect(redshiftTransactionProblems(txn)).toEqual([]);
      const all = [...schema.outside, ...schema.inTransaction];
      expect(all.some((s) => s.includes('ADD COLUMN'))).toBe(true);
      expect(all.some((s) => s.includes('ALTER COLUMN'))).toBe(true);
    });
  }

  it('accepts the statements the merge reads and controls transactions with', () => {
    for (const sql of [
      `SELECT column_name, mysql_type, warehouse_type FROM "cdc"."replica_columns" WHERE source_db = 'o''brien' AND source_table = 'x' ORDER BY ordinal`,
      "SELECT column_name, data_type, character_maximum_length FROM svv_columns WHERE table_schema = 'shop' AND table_name = 'n' AND column_name IN ('v', 'w')",
      'BEGIN',
      'BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE',
      'COMMIT',
      'END TRANSACTION',
      'ROLLBACK',
      'TRUNCATE "shop"."orders"',
      'TRUNCATE TABLE "cdc"."shop__orders__keys";',
      'DROP VIEW IF EXISTS "shop"."orders__history"',
      'DROP TABLE IF EXISTS "cdc"."shop__orders__keys" CASCADE',
      'ALTER TABLE "shop"."orders" ADD COLUMN "note" VARCHAR(40) DEFAULT \'n/a\' NOT NULL',
      'ALTER TABLE "shop"."orders" DROP COLUMN "note"',
      'ALTER TABLE "shop"."orders" RENAME COLUMN "note" TO "remark"',
      'ALTER TABLE "shop"."orders" RENAME TO "orders_old"',
      'CREATE VIEW "shop"."v" AS SELECT "id" FROM "shop"."orders" WITH NO SCHEMA BINDING',
      'UPDATE "cdc"."shop__orders__keys" SET "_cdc_deleted" = TRUE FROM "_cdc_stage" s WHERE "shop__orders__keys"."id" = s."id"',
      'MERGE INTO "shop"."orders" USING "_cdc_stage" s ON "shop"."orders"."id" = s."id" WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s."id")',
      'INSERT INTO "t" ("a", "b") VALUES (1, \'x\'), (2, NULL)',
      "SELECT CASE WHEN a = 1 THEN 'x' ELSE 'y' END AS \"c\", COALESCE(b, 0)::BIGINT FROM t /* comment */ -- trailing",
    ]) {
      expect({ sql, problems: redshiftProblems(sql) }).toMatchObject({ problems: [] });
    }
  });
});

describe('Redshift allow-list grammar: what the docs say Redshift refuses is refused, with its reason', () => {
  const refused: [string, string, RegExp][] = [
    [
      'r_MERGE: an alias on the target',
      'MERGE INTO "s"."t" AS t USING "_cdc_stage" AS s ON t."id" = s."id" WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s."id")',
      /MERGE target has an alias/,
    ],
    [
      'r_MERGE: an alias on the target, without AS',
      'MERGE INTO "s"."t" t USING "_cdc_stage" s ON t."id" = s."id" WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s."id")',
      /MERGE target has an alias/,
    ],
    [
      'r_MERGE: a subquery as source',
      'MERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)',
      /MERGE source is a subquery/,
    ],
    [
      'r_MERGE: two WHEN MATCHED clauses',
      'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1 WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (1)',
      /MERGE has 2 WHEN MATCHED clauses/,
    ],
    [
      'r_MERGE: WHEN … AND condition',
      'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x > 1 THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)',
      /MERGE WHEN clause with an extra condition/,
    ],
    [
      'r_MERGE: WHEN NOT MATCHED BY SOURCE',
      'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED BY SOURCE THEN DELETE',
      /WHEN NOT MATCHED BY SOURCE/,
    ],
    [
      'r_MERGE: no WHEN NOT MATCHED clause',
      'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE',
      /MERGE has 0 WHEN NOT MATCHED clauses/,
    ],
    [
      'r_MERGE: a qualified column in the INSERT list',
      'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT (t.id) VALUES (s.id)',
      /column names are not qualified/,
    ],
    ['r_INSERT_30: ON CONFLICT', 'INSERT INTO t VALUES (1) ON CONFLICT (id) DO NOTHING', /INSERT … ON CONFLICT/],
    ['r_INSERT_30: RETURNING', 'INSERT INTO t (a) VALUES (1) RETURNING a', /RETURNING/],
    ['r_CREATE_TABLE_NEW: ON COMMIT DROP', 'CREATE TEMP TABLE "s" ("a" INTEGER) ON COMMIT DROP', /ON COMMIT DROP/],
    ['c_Supported_data_types: JSONB', 'CREATE TABLE t ("a" JSONB)', /JSONB/],
    ['c_Supported_data_types: BYTEA', 'ALTER TABLE t ADD COLUMN "a" BYTEA', /BYTEA/],
    ['r_Datetime_types: TIMESTAMP(6)', 'CREATE TABLE t ("a" TIMESTAMP(6))', /TIMESTAMP takes no length or precision/],
    [
      'r_Character_types: VARCHAR over 65535',
      'CREATE TABLE t ("a" VARCHAR(65536))',
      /VARCHAR\(65536\): length must be 1…65535/,
    ],
    ['r_Numeric_types201: DECIMAL over 38 digits', 'CREATE TABLE t ("a" DECIMAL(39,2))', /precision must be 1…38/],
    ['r_VARBYTE_type: VARBYTE over 1024000', 'CREATE TABLE t ("a" VARBYTE(1024001))', /length must be 1…1024000/],
    [
      'c_Supported_data_types: an unknown type',
      'CREATE TABLE t ("a" MEDIUMTEXT)',
      /MEDIUMTEXT is not a Redshift data type/,
    ],
    ['r_COPY: FROM STDIN', 'COPY "s" ("a") FROM STDIN WITH (FORMAT csv)', /COPY FROM STDIN/],
    [
      'r_COPY: a source other than S3',
      "COPY t FROM 'dynamodb://orders' IAM_ROLE 'arn:aws:iam::123456789012:role/x' READRATIO 50",
      /not an s3:\/\/ location/,
    ],
    [
      'r_COPY: CREDENTIALS instead of IAM_ROLE',
      "COPY t FROM 's3://b/k' CREDENTIALS 'aws_access_key_id=x;aws_secret_access_key=y'",
      /expected IAM_ROLE/,
    ],
    ['r_LOCK: a lock mode', 'LOCK TABLE a, b IN SHARE ROW EXCLUSIVE MODE', /LOCK … IN … MODE/],
    [
      'r_ALTER_TABLE: ALTER COLUMN TYPE other than VARCHAR',
      'ALTER TABLE t ALTER COLUMN "a" TYPE BIGINT',
      /ALTER COLUMN TYPE BIGINT: Redshift changes only a VARCHAR's size/,
    ],
    [
      'r_ALTER_TABLE: SET DATA TYPE',
      'ALTER TABLE t ALTER COLUMN "a" SET DATA TYPE VARCHAR(10)',
      /SET DATA TYPE is PostgreSQL/,
    ],
    [
      'r_ALTER_TABLE: several columns in one ADD',
      'ALTER TABLE t ADD COLUMN "a" INTEGER, ADD COLUMN "b" INTEGER',
      /several columns in one ALTER TABLE ADD/,
    ],
    [
      'r_ALTER_TABLE: ADD COLUMN IF NOT EXISTS',
      'ALTER TABLE t ADD COLUMN IF NOT EXISTS "a" INTEGER',
      /no IF NOT EXISTS/,
    ],
    [
      'r_CREATE_TABLE_AS: IF NOT EXISTS',
      'CREATE TABLE IF NOT EXISTS "t" AS SELECT 1 AS "a"',
      /CREATE TABLE … AS has no IF NOT EXISTS/,
    ],
    [
      'r_CREATE_TABLE_NEW: a schema-qualified temp table',
      'CREATE TEMP TABLE "s"."t" ("a" INTEGER)',
      /temporary table name is not schema-qualified/,
    ],
    ['Redshift has no indexes', 'CREATE UNIQUE INDEX IF NOT EXISTS "i" ON "s"."t" ("id")', /Redshift has no indexes/],
    [
      'r_DELETE: an alias on the target',
      'DELETE FROM "s"."t" AS x USING "u" WHERE x."id" = "u"."id"',
      /DELETE target has no alias/,
    ],
    [
      'r_pg_keywords: a reserved word unquoted',
      'CREATE TABLE t (user INTEGER)',
      /USER is a Redshift reserved word|user is a Redshift reserved word/,
    ],
    ['r_names: an identifier over 127 bytes', `CREATE TABLE "${'x'.repeat(128)}" ("a" INTEGER)`, /128 bytes > 127/],
    ['one statement per Data API entry', 'SELECT 1; SELECT 2', /unexpected text after the end of the SELECT statement/],
    ['not a statement the merge sends', 'VACUUM "s"."t"', /VACUUM is not a statement the merge sends/],
    ['an unterminated literal', "SELECT 'abc", /unterminated string literal/],
  ];
  for (const [why, sql, reason] of refused) {
    it(`refuses ${why}`, () => {
      const problems = redshiftProblems(sql);
      expect(problems.length, sql).toBeGreaterThan(0);
      expect(problems.join('\n')).toMatch(reason);
    });
  }

  it('refuses TRUNCATE and ALTER COLUMN TYPE inside a multi-statement transaction (they commit / cannot run there)', () => {
    expect(redshiftTransactionProblems(['TRUNCATE "s"."t"'])).toEqual([]);
    expect(redshiftTransactionProblems(['LOCK "s"."t"', 'TRUNCATE "s"."t"', 'INSERT INTO "s"."t" VALUES (1)'])).toEqual(
      ['statement 2: TRUNCATE commits the transaction it runs in (r_TRUNCATE): run it alone'],
    );
    expect(
      redshiftTransactionProblems(['LOCK "s"."t"', 'ALTER TABLE "s"."t" ALTER COLUMN "a" TYPE VARCHAR(80)']),
    ).toEqual(['statement 2: ALTER COLUMN TYPE cannot run inside a transaction block (r_ALTER_TABLE): run it alone']);
  });

  it('keeps the Data API limits: 40 statements, 100 KB each', () => {
    expect(redshiftTransactionProblems(Array(41).fill('COMMIT'))).toEqual(['41 statements > 40 per transaction']);
    expect(redshiftTransactionProblems(Array(40).fill('COMMIT'))).toEqual([]);
    expect(redshiftProblems(`SELECT '${'x'.repeat(110_000)}'`)).toEqual(['110009 bytes > 102400']);
  });

  it('refuses the PostgreSQL plan of the same merge (so the grammar can tell the dialects apart)', () => {
    const shape = SHAPES[0]!;
    const { events } = eventsFor(shape);
    const model = modelFromEvents(events, 'postgres');
    const steps = planMerge(model, tableNames(shape.db, shape.table, { stateSchema: 'cdc' }), postgresDialect, {
      batchId: 'b',
      events: 3,
      maxPosition: '000001.000000001100.00000000',
      maxCommitMs: 0,
      history: false,
    });
    const problems = redshiftTransactionProblems(steps.flatMap((s) => (s.kind === 'sql' ? [s.sql] : [])));
    expect(problems.join('\n')).toMatch(/LOCK … IN … MODE/);
    expect(problems.join('\n')).toMatch(/ON COMMIT DROP/);
  });
});

describe('Redshift allow-list grammar: table-level events', () => {
  it('accepts every statement of a DROP, RENAME and resync plan, keyed and keyless, the newer-rows check included', () => {
    const names = tableNames('shop', 'd', { stateSchema: 'cdc' });
    for (const pk of [['id'], []]) {
      const known = {
        pk,
        columns: [
          { name: 'id', mysqlType: 'int(11)', warehouseType: 'INTEGER', ...(pk.length ? { keyOrdinal: 1 } : {}) },
          { name: 'a', mysqlType: 'varchar(10)', warehouseType: 'VARCHAR(40)' },
        ],
      };
      const t = new TableEvents('shop', 'd', { id: 'int(11)', a: 'varchar(10)' }, pk);
      for (const e of [t.drop(), t.tableEvent('rename', { rename_to: { db: 'shop', table: 'e' } }), t.resync()]) {
        const { statements } = planTableChange(e, known, names, rs, {
          history: false,
          droppedTablePolicy: 'drop',
          newerRows: false,
        });
        expect(statements.some((s) => s.includes("'newer rows arrived: plan again'"))).toBe(true);
        expect(redshiftTransactionProblems(statements)).toEqual([]);
      }
    }
  });

  it('accepts every statement of an ALTER plan, a RENAME onto a column newer rows brought included, and the registry check', () => {
    const names = tableNames('shop', 'r', { stateSchema: 'cdc' });
    const known = {
      pk: ['id'],
      columns: [
        { name: 'id', mysqlType: 'int(11)', warehouseType: 'INTEGER', keyOrdinal: 0 },
        { name: 'old_name', mysqlType: 'varchar(10)', warehouseType: 'VARCHAR(40)' },
        { name: 'new_name', mysqlType: 'varchar(10)', warehouseType: 'VARCHAR(40)' },
        { name: 'gone', mysqlType: 'int(11)', warehouseType: 'INTEGER' },
      ],
    };
    const t = new TableEvents('shop', 'r', { id: 'int(11)', old_name: 'varchar(10)', gone: 'int(11)' });
    for (const history of [false, true]) {
      const { statements } = planTableChange(
        t.alter([
          { kind: 'rename_column', from: 'old_name', to: 'new_name' },
          { kind: 'add_column', name: 'n', type: 'int(11)', default: '7' },
          { kind: 'drop_column', name: 'gone' },
        ]),
        known,
        names,
        rs,
        { history, droppedTablePolicy: 'drop', newerRows: false },
      );
      expect(
        statements.some((s) => /^UPDATE "shop"\."r" SET "new_name" = CAST\("old_name" AS VARCHAR\(40\)\)/.test(s)),
      ).toBe(true);
      const check = planRegistryCheck(names, 'shop', 'r', known.columns);
      expect(redshiftTransactionProblems([rs.lock([names.state]), check, ...statements])).toEqual([]);
    }
    expect(redshiftProblems(planRegistryCheck(names, 'shop', 'r', []))).toEqual([]);
  });

  it("accepts a DROP merged after the next incarnation's rows, dropping the old columns, and the column-list records", () => {
    const names = tableNames('shop', 'd', { stateSchema: 'cdc' });
    const known = {
      pk: ['id'],
      columns: [
        { name: 'id', mysqlType: 'int(11)', warehouseType: 'INTEGER', keyOrdinal: 0 },
        { name: 'a', mysqlType: 'varchar(10)', warehouseType: 'VARCHAR(40)' },
        { name: 'b', mysqlType: 'int(11)', warehouseType: 'INTEGER' },
      ],
    };
    const t = new TableEvents('shop', 'd', { id: 'int(11)', b: 'int(11)' });
    for (const history of [false, true]) {
      const { statements, after } = planTableChange(t.drop(), known, names, rs, {
        history,
        droppedTablePolicy: 'drop',
        newerRows: true,
        newerShapes: [['id', 'b']],
      });
      expect(statements).toContain('ALTER TABLE "shop"."d" DROP COLUMN "a"');
      expect(after?.columns.map((c) => c.name)).toEqual(['id', 'b']);
      expect(redshiftTransactionProblems([rs.lock([names.state]), ...statements])).toEqual([]);
    }
    const shapes = planShapeRecords([t.insert({ id: 1, b: 1 })], ['id', 'a'], names, rs);
    expect(shapes).toHaveLength(1);
    expect(redshiftTransactionProblems(shapes)).toEqual([]);
  });
});
