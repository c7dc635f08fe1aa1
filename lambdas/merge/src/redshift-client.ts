import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import {
  BatchExecuteStatementCommand,
  CancelStatementCommand,
  DescribeStatementCommand,
  type DescribeStatementResponse,
  ExecuteStatementCommand,
  type Field,
  GetStatementResultCommand,
  type RedshiftDataClient,
} from '@aws-sdk/client-redshift-data';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { LAKE_STAGING_PREFIX } from '../../../shared/lake-layout';
import type { Dialect } from './dialect';
import { redshiftDialect } from './dialect-redshift';
import { MergeError, type MergeErrorCode, RetriableMergeError } from './errors';
import type { Step } from './merge-plan';
import {
  DATA_API_MAX_STATEMENT_BYTES,
  DATA_API_MAX_STATEMENTS,
  redshiftProblems,
  redshiftTransactionProblems,
} from './redshift-grammar';
import type { WarehouseClient } from './warehouse-client';

export type RedshiftTarget =
  | { readonly workgroupName: string; readonly clusterIdentifier?: undefined }
  | { readonly clusterIdentifier: string; readonly workgroupName?: undefined; readonly dbUser?: string };

export interface RedshiftWarehouseProps {
  readonly client: RedshiftDataClient;
  readonly s3: S3Client;
  readonly target: RedshiftTarget;
  readonly database: string;
  /** Secrets Manager secret with the database credentials; without it, IAM authentication. */
  readonly secretArn?: string;
  readonly copyRoleArn: string;
  /** Bucket and prefix for staging CSV objects (the lake bucket, `staging/`). */
  readonly stagingBucket: string;
  readonly stagingPrefix?: string;
  /** How long to wait for a statement before cancelling it. @default 240 s */
  readonly deadlineMs?: number;
  /** After CancelStatement, how long to wait for Redshift to report the statement stopped. @default 30 s */
  readonly cancelGraceMs?: number;
  /** First polling interval; doubles up to 2 s. @default 100 ms */
  readonly pollMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

const sleepDefault = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Redshift through the Data API: statements are submitted asynchronously and polled with backoff until a deadline.
 * A transaction is one BatchExecuteStatement (at most 40 statements of at most 100 KB each); the staging CSV is
 * written to S3 and loaded with COPY inside that transaction.
 */
export class RedshiftDataWarehouse implements WarehouseClient {
  readonly dialect: Dialect;

  constructor(private readonly props: RedshiftWarehouseProps) {
    this.dialect = redshiftDialect({ copyRoleArn: props.copyRoleArn });
  }

  /** Epoch ms by which every statement must have stopped (the Lambda invocation's end, less a margin). */
  private invocationDeadline: number | undefined;

  /**
   * Bounds statements by the caller's own end (the Lambda handler sets it per invocation): a statement is cancelled
   * a cancel grace before then, instead of being left running by a Lambda that times out. undefined: no bound.
   */
  setInvocationDeadline(at: number | undefined): void {
    this.invocationDeadline = at;
  }

  private target() {
    const { target, database, secretArn } = this.props;
    return {
      Database: database,
      ...(target.workgroupName
        ? { WorkgroupName: target.workgroupName }
        : { ClusterIdentifier: target.clusterIdentifier }),
      ...(secretArn ? { SecretArn: secretArn } : {}),
      ...(!secretArn && target.clusterIdentifier && 'dbUser' in target && target.dbUser
        ? { DbUser: target.dbUser }
        : {}),
    };
  }

  /**
   * Polls DescribeStatement until the statement finished or failed. At the deadline the statement is cancelled
   * (CancelStatement) rather than left running, and polled until Redshift reports it stopped (or the cancel grace
   * ends): the error then says whether the statement is known to have stopped, because until it has, a COPY in it
   * may still be reading its staging object.
   */
  async waitFor(id: string, statements: readonly string[]): Promise<DescribeStatementResponse> {
    const startedAt = Date.now();
    const cancelGraceMs = this.props.cancelGraceMs ?? 30_000;
    // The statement's own deadline, or earlier: cancelled in time to see it stop before the invocation ends.
    const deadline = Math.min(
      startedAt + (this.props.deadlineMs ?? 240_000),
      (this.invocationDeadline ?? Number.POSITIVE_INFINITY) - cancelGraceMs,
    );
    const sleep = this.props.sleep ?? sleepDefault;
    let delay = this.props.pollMs ?? 100;
    let cancelledAt: number | undefined;
    let status: string | undefined;
    let statusAtDeadline: string | undefined;
    for (;;) {
      const d = await this.props.client.send(new DescribeStatementCommand({ Id: id }));
      status = d.Status;
      if (d.Status === 'FINISHED') return d;
      if (d.Status === 'FAILED' || d.Status === 'ABORTED') {
        if (cancelledAt !== undefined) break;
        const failed = d.SubStatements?.find((s) => s.Status === 'FAILED' || s.Status === 'ABORTED');
        const statement = failed?.QueryString ?? (statements.length === 1 ? statements[0] : d.QueryString);
        const error = failed?.Error ?? d.Error ?? `statement ${d.Status}`;
        // A conflict may be reported on the transaction or on the sub-statement that hit it: look at both.
        const code = [failed?.Error, d.Error].some((e) => e && classifyStatementError(e) === 'SERIALIZATION_CONFLICT')
          ? 'SERIALIZATION_CONFLICT'
          : 'WAREHOUSE_STATEMENT_FAILED';
        throw new RetriableMergeError(
          code,
          `${error}${statement ? ` in statement: ${statement.slice(0, 500)}` : ''}`,
          statement,
        );
      }
      if (cancelledAt === undefined && Date.now() + delay > deadline) {
        cancelledAt = Date.now();
        statusAtDeadline = d.Status;
        // "To be canceled, a query must be running": a statement that just ended refuses; the next Describe tells.
        await this.props.client.send(new CancelStatementCommand({ Id: id })).catch(() => undefined);
        delay = this.props.pollMs ?? 100;
        continue;
      }
      if (cancelledAt !== undefined && Date.now() - cancelledAt > cancelGraceMs) break;
      await sleep(delay);
      delay = Math.min(delay * 2, 2000);
    }
    const stopped = status === 'ABORTED' || status === 'FAILED';
    throw new StatementTimeoutError(
      `statement ${id} still ${statusAtDeadline} after ${deadline - startedAt} ms: ${statements[0]?.slice(0, 200)}; ` +
        (stopped
          ? 'cancelled (CancelStatement)'
          : `cancel requested (CancelStatement) but Redshift still reports it ${status}`),
      statements[0],
      stopped,
    );
  }

  async query(sql: string): Promise<Record<string, unknown>[]> {
    const { Id } = await this.props.client.send(new ExecuteStatementCommand({ ...this.target(), Sql: sql }));
    const d = await this.waitFor(Id!, [sql]);
    if (!d.HasResultSet) return [];
    const rows: Record<string, unknown>[] = [];
    let token: string | undefined;
    do {
      const r = await this.props.client.send(new GetStatementResultCommand({ Id: Id!, NextToken: token }));
      const names = (r.ColumnMetadata ?? []).map((c) => c.name ?? c.label ?? '');
      for (const rec of r.Records ?? []) {
        const row: Record<string, unknown> = {};
        rec.forEach((f, i) => {
          row[names[i]!] = fieldValue(f);
        });
        rows.push(row);
      }
      token = r.NextToken;
    } while (token);
    return rows;
  }

  /** The merge's DDL, one statement at a time; all of it checked against Redshift's grammar before any is sent. */
  async executeAll(statements: readonly string[]): Promise<void> {
    const problems = statements.flatMap((s, i) => redshiftProblems(s).map((p) => `statement ${i + 1}: ${p}`));
    if (problems.length > 0)
      throw new MergeError('CONFIG_INVALID', `DDL outside Redshift's grammar: ${problems.join('; ')}`);
    for (const s of statements) await this.query(s);
  }

  stageLocation(batchId: string): string {
    // Deterministic per batch and table, so a retried merge overwrites its own staging object.
    const name = createHash('sha256').update(batchId).digest('hex').slice(0, 32);
    return `s3://${this.props.stagingBucket}/${this.props.stagingPrefix ?? LAKE_STAGING_PREFIX}${name}.csv.gz`;
  }

  private stagingKey(location: string): string {
    return location.replace(`s3://${this.props.stagingBucket}/`, '');
  }

  async runTransaction(steps: readonly Step[], csv: string, stageLocation?: string): Promise<void> {
    const sqls = steps.map((s) => {
      if (s.kind === 'sql') return s.sql;
      if (!s.sql) throw new MergeError('CONFIG_INVALID', 'load step without a COPY statement (no stage location)');
      return s.sql;
    });
    checkDataApiLimits(sqls);
    const problems = redshiftTransactionProblems(sqls);
    if (problems.length > 0)
      throw new MergeError('CONFIG_INVALID', `plan outside Redshift's grammar: ${problems.join('; ')}`);
    // Each load's own staging object (several tables in one transaction), or the transaction's one.
    const byKey = new Map<string, () => Iterable<Uint8Array | string>>();
    if (stageLocation) byKey.set(this.stagingKey(stageLocation), () => [csv]);
    for (const s of steps) {
      if (s.kind !== 'load' || !s.stageLocation) continue;
      const body = s.csvChunks ?? (() => [s.csv ?? csv]);
      byKey.set(this.stagingKey(s.stageLocation), body);
    }
    const stages = [...byKey].map(([key, body]) => ({ key, body }));
    // Each is compressed on libuv's threads while the merge's thread builds the CSVs, then uploaded.
    await Promise.all(
      stages.map(async (st) =>
        this.props.s3.send(
          new PutObjectCommand({
            Bucket: this.props.stagingBucket,
            Key: st.key,
            Body: await gzipChunks(st.body()),
            ContentType: 'text/csv',
          }),
        ),
      ),
    );
    // The staging objects are removed only once the transaction is known to have stopped (finished, failed, or
    // cancelled and confirmed): a COPY still running must not lose its input. Otherwise the lake's lifecycle rule
    // on staging/ (lib/constructs/changelog-lake.ts, one day) removes them.
    let stopped = false;
    try {
      const { Id } = await this.props.client.send(
        new BatchExecuteStatementCommand({ ...this.target(), Sqls: [...sqls] }),
      );
      try {
        await this.waitFor(Id!, sqls);
        stopped = true;
      } catch (err) {
        stopped = !(err instanceof StatementTimeoutError) || err.stopped;
        throw err;
      }
    } finally {
      if (stopped)
        await Promise.all(
          stages.map((st) =>
            this.props.s3
              .send(new DeleteObjectCommand({ Bucket: this.props.stagingBucket, Key: st.key }))
              .catch(() => undefined),
          ),
        );
    }
  }
}

/**
 * The staging CSV, gzip-compressed at level 1 while it is built: each chunk is compressed on one of libuv's threads
 * while the next is formatted on the merge's. Level 1 against zlib's default 6, measured on the merge benchmark's
 * 100k-row CSV (14.4 MB): 0.07–0.14 s against 0.29–0.46 s of compression, an object of 3.1 MB against 2.7 MB
 * (docs/benchmarks.md, Merge). The stream writes one ordinary gzip file, whatever its level, which COPY's `GZIP`
 * reads ("reads each compressed file and uncompresses the data as it loads":
 * https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-file-compression.html). A value the CSV cannot hold
 * fails here with the merge's own error (a poison batch), before anything is sent.
 */
async function gzipChunks(chunks: Iterable<Uint8Array | string>): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    createGzip({ level: 1 }),
    new Writable({
      write(chunk: Buffer, _enc, done) {
        out.push(chunk);
        done();
      },
    }),
  );
  return Buffer.concat(out);
}

/** A statement passed its deadline; `stopped` tells whether Redshift confirmed it no longer runs. */
export class StatementTimeoutError extends RetriableMergeError {
  constructor(
    message: string,
    statement: string | undefined,
    readonly stopped: boolean,
  ) {
    super('WAREHOUSE_TIMEOUT', message, statement);
  }
}

/**
 * The error code of a failed statement's error text. Redshift reports a serializable isolation violation as
 * `ERROR: 1023 DETAIL: Serializable isolation violation on table …` (c_serial_isolation): the transaction can be
 * retried as a whole. A 1023 elsewhere in a message (a line number, a size) is not that error.
 */
export function classifyStatementError(error: string): MergeErrorCode {
  return /serializable isolation violation|\berror:\s*1023\b/i.test(error)
    ? 'SERIALIZATION_CONFLICT'
    : 'WAREHOUSE_STATEMENT_FAILED';
}

/** Throws when a transaction would break the Data API's limits (checked before anything is sent). */
export function checkDataApiLimits(sqls: readonly string[]): void {
  if (sqls.length > DATA_API_MAX_STATEMENTS) {
    throw new MergeError(
      'CONFIG_INVALID',
      `${sqls.length} statements in one transaction; the Data API takes at most ${DATA_API_MAX_STATEMENTS}`,
    );
  }
  for (const s of sqls) {
    const bytes = Buffer.byteLength(s);
    if (bytes > DATA_API_MAX_STATEMENT_BYTES) {
      throw new MergeError(
        'CONFIG_INVALID',
        `statement of ${bytes} bytes exceeds the Data API's ${DATA_API_MAX_STATEMENT_BYTES}: ${s.slice(0, 200)}`,
      );
    }
  }
}

function fieldValue(f: Field): unknown {
  if (f.isNull) return null;
  return f.stringValue ?? f.longValue ?? f.doubleValue ?? f.booleanValue ?? f.blobValue ?? null;
}
