import { describe, expect, it } from 'vitest';
import { redshiftDialect } from '../../lambdas/merge/src/dialect-redshift';
import { planBookkeeping, planMerge } from '../../lambdas/merge/src/merge-plan';
import { tableNames } from '../../lambdas/merge/src/naming';
import { redshiftProblems, redshiftTransactionProblems } from '../../lambdas/merge/src/redshift-grammar';
import {
  decideSchemaChanges as decide,
  planCreate,
  planSchemaChangeDdl,
} from '../../lambdas/merge/src/schema-evolution';
import { modelFromEvents } from '../../lambdas/merge/src/table-model';
import type { RowImage } from '../../shared/change-event';
import { TableEvents } from './support/event-factory';

const d = redshiftDialect({ copyRoleArn: 'arn:aws:iam::123456789012:role/cdc-copy' });
const naming = { stateSchema: 'cdc' };

function orders() {
  return new TableEvents('shop', 'orders', {
    id: 'bigint(20) unsigned',
    status: "enum('new','paid')",
    total: 'decimal(12,2)',
    meta: 'json',
    photo: 'blob',
    created_at: 'datetime(6)',
  });
}

/** The plans as the merge makes them: without history, only each key's newest change is staged (`stagedLatest`). */
function plans(history: boolean, keyless = false, stagedLatest = !history, noDeletes = false) {
  const t = keyless ? new TableEvents('shop', 'audit', { who: 'varchar(20)', at: 'timestamp' }, []) : orders();
  const row: RowImage = keyless
    ? { who: 'a', at: '2026-01-01T00:00:00Z' }
    : { id: '1', status: 'new', total: '1.00', meta: {}, photo: '', created_at: '2026-01-01 00:00:00' };
  const model = modelFromEvents([t.insert(row)], 'redshift');
  const names = tableNames(model.db, model.table, naming);
  const steps = planMerge(model, names, d, {
    batchId: "s3://lake/changelog/source_db=shop/source_table=orders/dt=2026-11-23/hour=10/o'brien.gz",
    events: 1,
    maxPosition: '000001.000000001100.00000000',
    maxCommitMs: 1_700_000_000_000,
    history,
    stagedLatest,
    noDeletes,
    stageLocation: 's3://lake/staging/batch.csv.gz',
  });
  const txn = steps.map((s) => (s.kind === 'sql' ? s.sql : s.sql!));
  return { model, names, txn, ddl: [...planBookkeeping(names, 'cdc'), ...planCreate(model, names, d, history)] };
}

describe('Redshift plan', () => {
  it('matches the golden SQL of a keyed table merge', async () => {
    const { txn, ddl } = plans(false);
    await expect(`${[...ddl, '-- transaction', ...txn].join(';\n\n')};\n`).toMatchFileSnapshot(
      '__golden__/redshift-keyed.sql',
    );
  });

  it('matches the golden SQL of a history-mode merge and of a keyless table', async () => {
    await expect(`${[...plans(true).ddl, ...plans(true).txn].join(';\n\n')};\n`).toMatchFileSnapshot(
      '__golden__/redshift-history.sql',
    );
    await expect(`${[...plans(false, true).ddl, ...plans(false, true).txn].join(';\n\n')};\n`).toMatchFileSnapshot(
      '__golden__/redshift-keyless.sql',
    );
  });

  it('keeps every statement inside Redshift MERGE rules and Data API limits', () => {
    for (const [history, keyless, stagedLatest] of [
      [false, false, true],
      [false, false, false],
      [true, false, false],
      [false, true, true],
      [true, true, false],
    ] as const) {
      const { txn, ddl } = plans(history, keyless, stagedLatest);
      expect(redshiftTransactionProblems(txn)).toEqual([]);
      expect(ddl.flatMap(redshiftProblems)).toEqual([]);
      expect(txn.filter((s) => /^MERGE/.test(s)).length).toBe(keyless ? 0 : 1);
    }
  });

  it('plans schema changes as one column per ALTER TABLE', () => {
    const t = orders();
    const first = modelFromEvents([t.insert({ id: '1' })], 'redshift');
    t.addColumn('note', 'varchar(10)');
    t.columns = t.columns.map((c) =>
      c.name === 'status' ? { name: 'status', type: "enum('new','paid','refunded')" } : c,
    );
    const next = modelFromEvents([t.insert({ id: '2' })], 'redshift');
    const existing = first.columns.map((c) => ({
      name: c.name,
      mysqlType: c.mysqlType,
      warehouseType: c.warehouseType,
    }));
    const plan = planSchemaChangeDdl(next, decide(existing, next), tableNames('shop', 'orders', naming), false);
    // Widening VARCHAR runs outside a transaction (Redshift refuses ALTER COLUMN TYPE inside one); the rest inside.
    expect(plan.outside).toEqual(['ALTER TABLE "shop"."orders" ALTER COLUMN "status" TYPE VARCHAR(8)']);
    expect(plan.inTransaction.filter((s) => s.startsWith('ALTER'))).toEqual([
      'ALTER TABLE "shop"."orders" ADD COLUMN "note" VARCHAR(40)',
    ]);
    expect([...plan.outside, ...plan.inTransaction].flatMap(redshiftProblems)).toEqual([]);
  });

  it('loads a batch staged one row per key straight into the de-duplicated staging table, without a window', () => {
    const staged = plans(false, false, true).txn;
    expect(staged.some((s) => s.includes('ROW_NUMBER()'))).toBe(false);
    expect(staged.some((s) => s.includes('_cdc_stage_all'))).toBe(false);
    expect(staged.filter((s) => s.startsWith('COPY "_cdc_stage" '))).toHaveLength(1);
    // No statement filters by the floor: the changes below it are not staged (rewriteForHistory, from the history the
    // transaction checks after its lock).
    expect(staged.some((s) => s.includes('SELECT MAX'))).toBe(false);
    // History needs every change for its versions table: the window stays whatever the option says.
    expect(plans(true, false, true).txn.some((s) => s.includes('ROW_NUMBER()'))).toBe(true);
  });

  it('leaves out the statements of deletes for a batch without one, and still ends the tombstones of its keys', () => {
    const all = plans(false).txn;
    const none = plans(false, false, true, true).txn;
    const ofDeletes = (txn: string[]) => txn.filter((s) => s.includes(`"_cdc_op" = 'delete'`));
    expect(ofDeletes(all)).toHaveLength(3);
    expect(ofDeletes(none)).toEqual([]);
    expect(none).toEqual(all.filter((s) => !ofDeletes(all).includes(s)));
    // A key inserted again after its delete loses its tombstone whether or not the batch deletes anything.
    expect(none).toContain(
      'DELETE FROM "cdc"."shop__orders__keys" USING "_cdc_stage" WHERE "shop__orders__keys"."id" = "_cdc_stage"."id"',
    );
    expect(redshiftTransactionProblems(none)).toEqual([]);
  });

  it('flags what Redshift rejects (so the checker itself can fail)', () => {
    expect(
      redshiftProblems(
        'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x > 1 THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)',
      ),
    ).toContain('MERGE WHEN clause with an extra condition');
    expect(
      redshiftProblems(
        'MERGE INTO t USING (SELECT 1) s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1 WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (1)',
      ),
    ).toEqual(
      expect.arrayContaining([
        'MERGE has 2 WHEN MATCHED clauses (Redshift: exactly 1)',
        'MERGE source is a subquery (Redshift: a table)',
      ]),
    );
    expect(redshiftProblems('INSERT INTO t VALUES (1) ON CONFLICT (id) DO NOTHING')).toEqual([
      'uses INSERT … ON CONFLICT, which Redshift does not have',
    ]);
    expect(redshiftProblems(`SELECT '${'x'.repeat(110_000)}'`)[0]).toMatch(/bytes > 102400/);
    expect(redshiftTransactionProblems(Array(41).fill('SELECT 1'))[0]).toBe('41 statements > 40 per transaction');
  });

  it('uses the PostgreSQL-only forms only in the PostgreSQL dialect', async () => {
    const { postgresDialect } = await import('../../lambdas/merge/src/dialect-postgres');
    const t = orders();
    const model = modelFromEvents([t.insert({ id: '1' })], 'postgres');
    const steps = planMerge(model, tableNames('shop', 'orders', naming), postgresDialect, {
      batchId: 'b',
      events: 1,
      maxPosition: '000001.000000001100.00000000',
      maxCommitMs: 0,
      history: false,
    });
    const problems = redshiftTransactionProblems(
      steps.filter((s) => s.kind === 'sql').map((s) => (s as { sql: string }).sql),
    );
    expect(problems.join('\n')).toMatch(/ON COMMIT DROP/);
  });
});
