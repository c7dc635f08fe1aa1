import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { RedshiftDataClient } from '@aws-sdk/client-redshift-data';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PoisonBatchError, RetriableMergeError } from '../../lambdas/merge/src/errors';
import { mergeEvents, mergeTables, resetSchemaCache } from '../../lambdas/merge/src/merge';
import { classifyStatementError, RedshiftDataWarehouse } from '../../lambdas/merge/src/redshift-client';
import { redshiftProblems } from '../../lambdas/merge/src/redshift-grammar';
import { buildStageCsv } from '../../lambdas/merge/src/stage-csv';
import { modelFromEvents } from '../../lambdas/merge/src/table-model';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { type Script, startDataApiEndpoint } from './support/data-api-endpoint';
import { TableEvents } from './support/event-factory';

const dir = mkdtempSync(join(tmpdir(), 'cdc-dataapi-'));
let s3emu: Emulator;
let s3: S3Client;
beforeAll(async () => {
  s3emu = await startEmulator('s3', { dir });
  s3 = new S3Client(localAwsClientConfig(s3emu.endpoint));
  await s3.send(new CreateBucketCommand({ Bucket: 'lake' }));
});
afterAll(async () => {
  await s3emu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function withWarehouse<T>(
  script: Script,
  fn: (w: RedshiftDataWarehouse, calls: { action: string; body: Record<string, unknown> }[]) => Promise<T>,
  deadlineMs = 5000,
) {
  const ep = await startDataApiEndpoint(script);
  const client = new RedshiftDataClient({ ...localAwsClientConfig(ep.url), maxAttempts: 1 });
  const w = new RedshiftDataWarehouse({
    client,
    s3,
    target: { workgroupName: 'analytics' },
    database: 'dev',
    secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rs-abc',
    copyRoleArn: 'arn:aws:iam::123456789012:role/copy',
    stagingBucket: 'lake',
    deadlineMs,
    cancelGraceMs: 300,
    pollMs: 5,
  });
  try {
    return await fn(w, ep.calls);
  } finally {
    await ep.close();
  }
}

/** A warehouse where every statement finishes at once and queries return no rows (a new, empty database). */
const everyStatementFinishes: Script = (call) => {
  if (call.action === 'ExecuteStatement') return { Id: 'ddl' };
  if (call.action === 'BatchExecuteStatement') return { Id: 'txn' };
  if (call.action === 'DescribeStatement') return { Id: String(call.body.Id), Status: 'FINISHED', HasResultSet: false };
  return { Records: [] };
};

describe('Redshift Data API client (local endpoint speaking the Data API protocol)', () => {
  it('polls until a query finishes and returns its rows', async () => {
    const rows = await withWarehouse(
      (call, n) => {
        if (call.action === 'ExecuteStatement') return { Id: 'q1' };
        if (call.action === 'DescribeStatement')
          return n < 3 ? { Id: 'q1', Status: 'STARTED' } : { Id: 'q1', Status: 'FINISHED', HasResultSet: true };
        return {
          ColumnMetadata: [{ name: 'column_name' }, { name: 'n' }],
          Records: [
            [{ stringValue: 'id' }, { longValue: 3 }],
            [{ stringValue: 'total' }, { isNull: true }],
          ],
          TotalNumRows: 2,
        };
      },
      async (w, calls) => {
        const out = await w.query('SELECT column_name, n FROM x');
        expect(calls.find((c) => c.action === 'ExecuteStatement')!.body).toMatchObject({
          WorkgroupName: 'analytics',
          Database: 'dev',
          SecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rs-abc',
          Sql: 'SELECT column_name, n FROM x',
        });
        expect(calls.filter((c) => c.action === 'DescribeStatement').length).toBe(3);
        return out;
      },
    );
    expect(rows).toEqual([
      { column_name: 'id', n: 3 },
      { column_name: 'total', n: null },
    ]);
  });

  it('runs a merge as one BatchExecuteStatement with COPY from the staged CSV, then removes the staging object', async () => {
    resetSchemaCache();
    const t = new TableEvents('shop', 'orders', { id: 'int(11)', total: 'decimal(10,2)' });
    await withWarehouse(everyStatementFinishes, async (w, calls) => {
      await mergeEvents([t.insert({ id: 1, total: '9.99' })], 's3://lake/changelog/x.gz', {
        warehouse: w,
        naming: { stateSchema: 'cdc' },
        historyTables: new Set(),
      });
      // The replica's creation (after the table's lock and its checks), the merge's transaction, then the batch record
      // in a short one of its own.
      const batch = calls.filter((c) => c.action === 'BatchExecuteStatement');
      expect(batch).toHaveLength(3);
      expect((batch[0]!.body.Sqls as string[]).slice(0, 4)).toEqual([
        'LOCK "cdc"."shop__orders__state"',
        expect.stringMatching(/^SELECT CAST\(CASE WHEN COUNT\(\*\) <> 0 THEN 'table history changed/),
        expect.stringMatching(/^SELECT CAST\(CASE WHEN COUNT\(\*\) <> 0 THEN 'replica columns changed/),
        expect.stringMatching(/^CREATE TABLE IF NOT EXISTS "shop"\."orders"/),
      ]);
      expect(batch[2]!.body.Sqls).toEqual([expect.stringMatching(/^INSERT INTO "cdc"\."merge_batches"/)]);
      const sqls = batch[1]!.body.Sqls as string[];
      expect(sqls.some((s) => s.includes('merge_batches'))).toBe(false);
      expect(sqls.length).toBeLessThanOrEqual(40);
      expect(sqls.find((s) => s.startsWith('COPY'))).toMatch(
        /FROM 's3:\/\/lake\/staging\/[0-9a-f]{32}\.csv\.gz' IAM_ROLE 'arn:aws:iam::123456789012:role\/copy'/,
      );
      // The replica's MERGE only: the keys table holds tombstones, written by a DELETE and an INSERT of the deleted keys.
      expect(sqls.filter((s) => s.startsWith('MERGE'))).toHaveLength(1);
      const left = await s3.send(new ListObjectsV2Command({ Bucket: 'lake', Prefix: 'staging/' }));
      expect(left.KeyCount ?? 0).toBe(0);
    });
  });

  it('uploads the staging CSV gzip-compressed as it is built: the object COPY reads is the CSV, byte for byte', async () => {
    resetSchemaCache();
    const t = new TableEvents('shop', 'big', { id: 'int(11)', note: 'varchar(40)', at: 'datetime(6)' });
    // Over 1 MiB of CSV: several chunks, each compressed while the next is built.
    const events = Array.from({ length: 30_000 }, (_, i) =>
      t.insert({ id: i, note: `note "${i}", ünï`, at: '2026-12-01 10:11:12.123456' }),
    );
    let release = false;
    const script: Script = (call, n) => {
      if (call.action === 'ExecuteStatement') return { Id: 'ddl' };
      if (call.action === 'BatchExecuteStatement')
        return { Id: (call.body.Sqls as string[]).some((q) => q.startsWith('COPY')) ? 'copy' : `b${n}` };
      if (call.action === 'DescribeStatement')
        return call.body.Id === 'copy' && !release
          ? { Id: 'copy', Status: 'STARTED' }
          : { Id: String(call.body.Id), Status: 'FINISHED', HasResultSet: false };
      return { Records: [] };
    };
    await withWarehouse(
      script,
      async (w, calls) => {
        const merged = mergeEvents(events, 's3://lake/changelog/big.gz', {
          warehouse: w,
          naming: { stateSchema: 'cdc' },
          historyTables: new Set(),
        });
        let copy: string | undefined;
        for (let i = 0; i < 500 && !copy; i++) {
          copy = calls
            .filter((c) => c.action === 'BatchExecuteStatement')
            .flatMap((c) => c.body.Sqls as string[])
            .find((q) => q.startsWith('COPY'));
          if (!copy) await new Promise((r) => setTimeout(r, 10));
        }
        const key = /FROM 's3:\/\/lake\/([^']+)'/.exec(copy!)![1]!;
        const object = await s3.send(new GetObjectCommand({ Bucket: 'lake', Key: key }));
        const staged = gunzipSync(Buffer.from(await object.Body!.transformToByteArray())).toString('utf8');
        const model = modelFromEvents(events, 'redshift');
        expect(staged).toBe(buildStageCsv(events, model, w.dialect, { latestPerKey: true }));
        expect(staged.split('\n')).toHaveLength(30_001);
        release = true;
        await merged;
      },
      20_000,
    );
  });

  it('fails a batch whose value the CSV cannot hold as poison before sending its transaction, uploading nothing', async () => {
    resetSchemaCache();
    const t = new TableEvents('shop', 'bad', { id: 'int(11)', n: 'int(11)' });
    await withWarehouse(everyStatementFinishes, async (w, calls) => {
      const ctx = { warehouse: w, naming: { stateSchema: 'cdc' }, historyTables: new Set<string>() };
      const bad = t.insert({ id: 2, n: 'not a number' as unknown as number });
      const err = await mergeEvents([t.insert({ id: 1, n: 1 }), bad], 's3://lake/changelog/bad.gz', ctx).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(PoisonBatchError);
      expect((err as PoisonBatchError).code).toBe('SCHEMA_INCOMPATIBLE');
      const sent = calls.filter((c) => c.action === 'BatchExecuteStatement').flatMap((c) => c.body.Sqls as string[]);
      expect(sent.some((q) => q.startsWith('COPY'))).toBe(false);
      const left = await s3.send(new ListObjectsV2Command({ Bucket: 'lake', Prefix: 'staging/' }));
      expect(left.KeyCount ?? 0).toBe(0);
    });
  });

  it('merges several tables in one BatchExecuteStatement within 40 statements, each with its own staging table and CSV', async () => {
    resetSchemaCache();
    const tables = ['a', 'b', 'c', 'd', 'e'].map((n) => new TableEvents('shop', n, { id: 'int(11)', v: 'int(11)' }));
    await withWarehouse(everyStatementFinishes, async (w, calls) => {
      const ctx = { warehouse: w, naming: { stateSchema: 'cdc' }, historyTables: new Set<string>() };
      // The first batch creates the replicas, each in a transaction of its own (LOCK, the history and registry checks,
      // replica, keys table, registry), and its data transactions also record each table's column list.
      await mergeTables(
        tables.map((t) => t.insert({ id: 0, v: 0 })),
        'kinesis:shard-0:0',
        ctx,
        { tablesPerTransaction: 4 },
      );
      const creates = calls.filter((c) => c.action === 'BatchExecuteStatement').slice(0, 5);
      expect(creates.map((c) => (c.body.Sqls as string[]).length)).toEqual([7, 7, 7, 7, 7]);
      calls.length = 0;
      const events = tables.map((t, i) => t.insert({ id: 1, v: i }));
      const outcomes = await mergeTables(events, 'kinesis:shard-0:1-5', ctx, { tablesPerTransaction: 4 });
      expect(outcomes.map((o) => ('result' in o ? o.table : `failed ${o.table}`))).toEqual(
        ['a', 'b', 'c', 'd', 'e'].map((n) => `shop.${n}`),
      );
      // Four tables' merges in one transaction (1 LOCK, 1 check of the four histories, 6 merge steps each: the batch
      // holds no delete, so the three statements of deletes are left out), the fifth's in another, then all five batch
      // records in a short one.
      const batch = calls.filter((c) => c.action === 'BatchExecuteStatement').map((c) => c.body.Sqls as string[]);
      expect(batch.map((b) => b.length)).toEqual([26, 8, 5]);
      expect(batch.flat().some((s) => s.includes("= 'delete'"))).toBe(false);
      const shared = batch[0]!;
      expect(shared[0]).toBe(
        'LOCK "cdc"."shop__a__state", "cdc"."shop__b__state", "cdc"."shop__c__state", "cdc"."shop__d__state"',
      );
      expect(shared[1]!.split(' UNION ALL ')).toEqual(
        ['a', 'b', 'c', 'd'].map((n) => expect.stringContaining(`FROM "cdc"."shop__${n}__state"`)),
      );
      expect(shared.filter((s) => s.includes('table history changed'))).toHaveLength(1);
      for (const sql of shared) expect({ sql, problems: redshiftProblems(sql) }).toMatchObject({ problems: [] });
      const copies = shared.filter((s) => s.startsWith('COPY'));
      expect(copies).toHaveLength(4);
      expect(new Set(copies.map((c) => /FROM '([^']+)'/.exec(c)![1])).size).toBe(4);
      expect(new Set(copies.map((c) => /^COPY (\S+)/.exec(c)![1])).size).toBe(4);
      expect(batch[2]!.every((s) => s.startsWith('INSERT INTO "cdc"."merge_batches"'))).toBe(true);
      const left = await s3.send(new ListObjectsV2Command({ Bucket: 'lake', Prefix: 'staging/' }));
      expect(left.KeyCount ?? 0).toBe(0);
    });
  });

  it('reports the failing statement of a failed transaction as a retriable error', async () => {
    const copy = `COPY "x" FROM 's3://lake/staging/k.csv.gz' IAM_ROLE 'arn:aws:iam::123456789012:role/copy' FORMAT AS CSV`;
    const err = await withWarehouse(
      (call) => {
        if (call.action === 'BatchExecuteStatement') return { Id: 'txn' };
        return {
          Id: 'txn',
          Status: 'FAILED',
          Error: 'transaction failed',
          SubStatements: [
            { Id: 'txn:1', Status: 'FINISHED', QueryString: 'LOCK a' },
            {
              Id: 'txn:2',
              Status: 'FAILED',
              QueryString: copy,
              Error: 'Load into table x failed. Check stl_load_errors',
            },
          ],
        };
      },
      (w) =>
        w
          .runTransaction(
            [
              { kind: 'sql', sql: 'LOCK a' },
              { kind: 'sql', sql: copy },
            ],
            '',
          )
          .catch((e: Error) => e),
    );
    expect(err).toBeInstanceOf(RetriableMergeError);
    expect((err as RetriableMergeError).code).toBe('WAREHOUSE_STATEMENT_FAILED');
    expect((err as RetriableMergeError).statement).toBe(copy);
    expect((err as Error).message).toMatch(/Load into table x failed.*in statement: COPY "x" FROM 's3:/);
  });

  it('classifies a serializable isolation violation as a conflict to retry', async () => {
    const err = await withWarehouse(
      (call) =>
        call.action === 'BatchExecuteStatement'
          ? { Id: 't' }
          : { Id: 't', Status: 'FAILED', Error: 'ERROR: 1023 DETAIL: Serializable isolation violation on table - 123' },
      (w) => w.runTransaction([{ kind: 'sql', sql: 'LOCK a' }], '').catch((e: Error) => e),
    );
    expect((err as RetriableMergeError).code).toBe('SERIALIZATION_CONFLICT');
  });

  it('classifies a conflict reported only on the failed sub-statement, and nothing else, as a conflict', async () => {
    const err = await withWarehouse(
      (call) =>
        call.action === 'BatchExecuteStatement'
          ? { Id: 't' }
          : {
              Id: 't',
              Status: 'FAILED',
              Error: 'transaction aborted',
              SubStatements: [
                {
                  Id: 't:1',
                  Status: 'FAILED',
                  QueryString: 'LOCK a',
                  Error:
                    'ERROR: Serializable isolation violation on table - 156362, transactions forming the cycle are: 1, 2 (pid:3)',
                },
              ],
            },
      (w) => w.runTransaction([{ kind: 'sql', sql: 'LOCK a' }], '').catch((e: Error) => e),
    );
    expect((err as RetriableMergeError).code).toBe('SERIALIZATION_CONFLICT');
    expect(classifyStatementError('ERROR: 1023 DETAIL: Serializable isolation violation on table - 123')).toBe(
      'SERIALIZATION_CONFLICT',
    );
    expect(classifyStatementError('error:  1023')).toBe('SERIALIZATION_CONFLICT');
    // A number 1023 elsewhere in a message (a line, a table id, a byte count) is not error 1023.
    expect(classifyStatementError('Load into table x failed. Check stl_load_errors: line 1023')).toBe(
      'WAREHOUSE_STATEMENT_FAILED',
    );
    expect(classifyStatementError('value too long for type character varying(10230)')).toBe(
      'WAREHOUSE_STATEMENT_FAILED',
    );
  });

  it('cancels a statement that passes its deadline (CancelStatement) and waits until Redshift has stopped it', async () => {
    let cancelled = false;
    const err = await withWarehouse(
      (call) => {
        if (call.action === 'ExecuteStatement') return { Id: 'slow' };
        if (call.action === 'CancelStatement') {
          cancelled = true;
          return { Status: true };
        }
        return { Id: 'slow', Status: cancelled ? 'ABORTED' : 'STARTED' };
      },
      async (w, calls) => {
        const e = await w.query('SELECT pg_sleep(3600)').catch((x: Error) => x);
        expect(calls.filter((c) => c.action === 'CancelStatement').map((c) => c.body)).toEqual([{ Id: 'slow' }]);
        // Described again after the cancel, until it reported a terminal status.
        const last = calls.at(-1)!;
        expect(last.action).toBe('DescribeStatement');
        return e;
      },
      200,
    );
    expect((err as RetriableMergeError).code).toBe('WAREHOUSE_TIMEOUT');
    expect((err as Error).message).toMatch(/cancelled/);
  });

  it('cancels a statement early enough to stop it before the Lambda invocation ends', async () => {
    let cancelled = false;
    await withWarehouse(
      (call) => {
        if (call.action === 'ExecuteStatement') return { Id: 'long' };
        if (call.action === 'CancelStatement') {
          cancelled = true;
          return { Status: true };
        }
        return { Id: 'long', Status: cancelled ? 'ABORTED' : 'STARTED' };
      },
      async (w, calls) => {
        // The statement deadline is 5 s, but the invocation ends in 0.6 s: cancel leaves room for the cancel grace.
        w.setInvocationDeadline(Date.now() + 600);
        const started = Date.now();
        const e = await w.query('SELECT pg_sleep(3600)').catch((x: Error) => x);
        expect((e as RetriableMergeError).code).toBe('WAREHOUSE_TIMEOUT');
        expect(calls.some((c) => c.action === 'CancelStatement')).toBe(true);
        expect(Date.now() - started).toBeLessThan(600);
        w.setInvocationDeadline(undefined);
      },
      5000,
    );
  });

  it('keeps the staging object while a timed-out COPY may still run, and removes it once the statement stopped', async () => {
    const location = (w: RedshiftDataWarehouse, id: string) => w.stageLocation(id)!;
    const key = (loc: string) => loc.replace('s3://lake/', '');
    const exists = async (loc: string) =>
      ((await s3.send(new ListObjectsV2Command({ Bucket: 'lake', Prefix: key(loc) }))).KeyCount ?? 0) > 0;
    const copy = (loc: string) =>
      `COPY "_cdc_stage_all" FROM '${loc}' IAM_ROLE 'arn:aws:iam::123456789012:role/copy' FORMAT AS CSV GZIP`;

    // Redshift never confirms the cancel: the COPY may still be reading the object, which must stay (lifecycle rule).
    await withWarehouse(
      (call) => (call.action === 'BatchExecuteStatement' ? { Id: 'stuck' } : { Id: 'stuck', Status: 'STARTED' }),
      async (w, calls) => {
        const loc = location(w, 'stuck-batch');
        const e = await w.runTransaction([{ kind: 'sql', sql: copy(loc) }], 'a\n', loc).catch((x: Error) => x);
        expect((e as RetriableMergeError).code).toBe('WAREHOUSE_TIMEOUT');
        expect(calls.some((c) => c.action === 'CancelStatement')).toBe(true);
        expect(await exists(loc)).toBe(true);
      },
      100,
    );

    // The cancel takes effect: the statement is ABORTED, nothing reads the object any more, it is removed.
    let cancelled = false;
    await withWarehouse(
      (call) => {
        if (call.action === 'BatchExecuteStatement') return { Id: 'slow' };
        if (call.action === 'CancelStatement') {
          cancelled = true;
          return { Status: true };
        }
        return { Id: 'slow', Status: cancelled ? 'ABORTED' : 'STARTED' };
      },
      async (w) => {
        const loc = location(w, 'slow-batch');
        const e = await w.runTransaction([{ kind: 'sql', sql: copy(loc) }], 'a\n', loc).catch((x: Error) => x);
        expect((e as RetriableMergeError).code).toBe('WAREHOUSE_TIMEOUT');
        expect(await exists(loc)).toBe(false);
      },
      100,
    );
  });

  it('treats a statement that finished while being cancelled as done', async () => {
    let cancelled = false;
    await withWarehouse(
      (call) => {
        if (call.action === 'ExecuteStatement') return { Id: 'late' };
        if (call.action === 'CancelStatement') {
          cancelled = true;
          // Too late to cancel: the Data API refuses, the statement has finished.
          return {
            __status: 400,
            __type: 'ValidationException',
            message: 'Could not cancel a query that is already in FINISHED state',
          };
        }
        return { Id: 'late', Status: cancelled ? 'FINISHED' : 'STARTED', HasResultSet: false };
      },
      async (w) => {
        await expect(w.query('INSERT INTO "t" VALUES (1)')).resolves.toEqual([]);
      },
      100,
    );
  });

  it('gives up at the deadline with a timeout error naming the statement', async () => {
    const err = await withWarehouse(
      (call) => (call.action === 'ExecuteStatement' ? { Id: 'slow' } : { Id: 'slow', Status: 'STARTED' }),
      (w) => w.query('SELECT pg_sleep(3600)').catch((e: Error) => e),
      200,
    );
    expect((err as RetriableMergeError).code).toBe('WAREHOUSE_TIMEOUT');
    expect((err as Error).message).toMatch(/still STARTED after 200 ms: SELECT pg_sleep\(3600\)/);
  });

  it("refuses DDL outside Redshift's grammar before sending anything", async () => {
    await withWarehouse(
      () => ({ Id: 'never' }),
      async (w, calls) => {
        await expect(
          w.executeAll([
            'CREATE SCHEMA IF NOT EXISTS "cdc"',
            'ALTER TABLE "shop"."orders" ALTER COLUMN "total" TYPE DECIMAL(14,2)',
          ]),
        ).rejects.toThrow(/CONFIG_INVALID: .*ALTER COLUMN TYPE DECIMAL: Redshift changes only a VARCHAR's size/);
        expect(calls).toEqual([]);
      },
    );
  });

  it('surfaces Data API service errors (e.g. a throttled call) as errors', async () => {
    const err = await withWarehouse(
      () => ({ __status: 400, __type: 'ActiveStatementsExceededException', message: 'too many active statements' }),
      (w) => w.query('SELECT 1').catch((e: Error) => e),
    );
    expect((err as Error).name).toBe('ActiveStatementsExceededException');
  });
});
