/**
 * The local stand-in for Kinesis Data Firehose: reads every shard of the stream, buffers by time and size, writes
 * each table's events as one gz NDJSON object under the same keys the deployed Firehose uses
 * (shared/lake-layout.ts), loads them into the raw changelog table, and hands each object to the merge, as
 * S3 → SQS → Lambda does in AWS. Shard positions are persisted only after the objects were written and merged (or
 * queued for a retry), so a restart re-delivers (at-least-once; the merge is idempotent).
 *
 * Like SQS redrive: an object whose merge fails is retried on its own, with backoff, at most `maxDeliveryAttempts`
 * times, then set aside under `errors/merge/` with its reason; meanwhile every other object (other tables, and later
 * objects of the same table: the merge applies batches in any order) goes on. The retry queue is saved beside the
 * shard positions (`<stateFile>.retrying`), before them, so an object queued for a retry survives a restart.
 * A redrive request (`npx cdc redrive`, local/firehose-dead-letters.ts) queues set-aside objects again with fresh
 * attempts, as SQS's DLQ redrive does.
 *
 * The loop is sequential, so isolation rests on each failing attempt being short and on nothing ever waiting for a
 * retry: a queued object is attempted only when its time has come, between deliveries (test/e2e/isolation.test.ts).
 */

import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type pg from 'pg';
import { applyObject } from '../lambdas/merge/src/apply-object';
import { groupByTable } from '../lambdas/merge/src/batch';
import { PoisonBatchError } from '../lambdas/merge/src/errors';
import type { MergeContext, TableResult } from '../lambdas/merge/src/merge';
import type { ChangeEvent } from '../shared/change-event';
import { CHANGELOG_LOADED_COLUMNS, CHANGELOG_TABLE, changelogTableDdl } from '../shared/changelog-table';
import { LAKE_ERROR_PREFIX } from '../shared/lake-layout';
import { checkHints, flushDue, lakeObjectKey, ndjson } from './firehose-batching';
import {
  MERGE_DEAD_LETTER_PREFIX,
  type RedriveRequest,
  type RedriveResult,
  redriveRequestFile,
  redriveResultFile,
  retryQueueFile,
  type SetAsideReport,
  setAsideKey,
  setAsideReason,
  tableOfKey,
} from './firehose-dead-letters';

export interface LocalFirehoseProps {
  readonly kinesis: KinesisClient;
  readonly s3: S3Client;
  readonly pool: pg.Pool;
  readonly streamName: string;
  readonly bucket: string;
  readonly changelogSchema: string;
  readonly merge: MergeContext;
  readonly stateFile: string;
  /** @default 1000 */
  readonly bufferMs?: number;
  /** @default 1 MiB */
  readonly bufferBytes?: number;
  /** Merge attempts per object before it is set aside (SQS maxReceiveCount). @default 5 */
  readonly maxDeliveryAttempts?: number;
  /** Wait before the first retry of an object; doubled for each further one. @default 1000 */
  readonly retryBackoffMs?: number;
  readonly onMerged?: (results: TableResult[], events: ChangeEvent[], key: string) => void;
  readonly onError?: (err: Error) => void;
}

/** An object whose merge failed, waiting for its next attempt (what SQS holds for an undeleted message). */
export interface PendingRetry {
  readonly key: string;
  readonly attempts: number;
  readonly nextAt: number;
  readonly lastError: string;
  /** Epoch ms of the object's first failed attempt and of its last (absent in queues saved by older versions). */
  readonly firstFailedAt?: number;
  readonly lastFailedAt?: number;
}

export class LocalFirehose {
  private readonly iterators = new Map<string, string>();
  private readonly seqs: Record<string, string>;
  private readonly hints;
  private buffer: ChangeEvent[] = [];
  private retrying: PendingRetry[];
  private readonly maxAttempts: number;
  private readonly backoffMs: number;
  /**
   * Positions loaded into the raw changelog since the shard positions were last saved: a delivery retried by this
   * process (a merge that failed) does not load them twice. Only a kill between loading and saving can.
   */
  private readonly loadedSinceSave = new Set<string>();
  private bufferBytes = 0;
  private bufferSince = Date.now();
  private running = false;
  private loop: Promise<void> | undefined;
  delivered = 0;

  constructor(private readonly props: LocalFirehoseProps) {
    this.hints = checkHints({ intervalMs: props.bufferMs ?? 1000, sizeBytes: props.bufferBytes ?? 1024 * 1024 });
    this.seqs = existsSync(props.stateFile)
      ? (JSON.parse(readFileSync(props.stateFile, 'utf8')) as Record<string, string>)
      : {};
    this.retrying = existsSync(this.retryFile)
      ? (JSON.parse(readFileSync(this.retryFile, 'utf8')) as PendingRetry[])
      : [];
    this.maxAttempts = props.maxDeliveryAttempts ?? 5;
    this.backoffMs = props.retryBackoffMs ?? 1000;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1)
      throw new RangeError(`maxDeliveryAttempts must be an integer ≥ 1, got ${this.maxAttempts}`);
    if (!Number.isFinite(this.backoffMs) || this.backoffMs < 0)
      throw new RangeError(`retryBackoffMs must be ≥ 0, got ${this.backoffMs}`);
  }

  private get retryFile(): string {
    return retryQueueFile(this.props.stateFile);
  }

  /** Objects waiting for another merge attempt. */
  get pendingRetries(): readonly PendingRetry[] {
    return this.retrying;
  }

  async start(): Promise<void> {
    await this.props.pool.query(`CREATE SCHEMA IF NOT EXISTS "${this.props.changelogSchema}"`);
    await this.props.pool.query(changelogTableDdl(`"${this.props.changelogSchema}"`, 'postgres'));
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async iterator(shardId: string): Promise<string> {
    const cached = this.iterators.get(shardId);
    if (cached) return cached;
    const after = this.seqs[shardId];
    const res = await this.props.kinesis.send(
      new GetShardIteratorCommand({
        StreamName: this.props.streamName,
        ShardId: shardId,
        ...(after
          ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after }
          : { ShardIteratorType: 'TRIM_HORIZON' }),
      }),
    );
    return res.ShardIterator!;
  }

  private async run(): Promise<void> {
    // Positions of records buffered but not yet delivered: saved only once their objects are written and merged.
    let pendingSeqs: Record<string, string> = {};
    while (this.running) {
      try {
        const desc = await this.props.kinesis.send(new DescribeStreamCommand({ StreamName: this.props.streamName }));
        let got = 0;
        for (const shard of desc.StreamDescription?.Shards ?? []) {
          const id = shard.ShardId!;
          const res = await this.props.kinesis.send(
            new GetRecordsCommand({ ShardIterator: await this.iterator(id), Limit: 5000 }),
          );
          if (res.NextShardIterator) this.iterators.set(id, res.NextShardIterator);
          for (const r of res.Records ?? []) {
            const data = Buffer.from(r.Data!);
            const event = parseRecord(data);
            if (!event) {
              // Like Firehose's processing-failed output: set aside, the stream keeps flowing.
              await this.setAside(`unparseable/${id}/${r.SequenceNumber}`, data);
              pendingSeqs[id] = r.SequenceNumber!;
              continue;
            }
            if (this.buffer.length === 0) this.bufferSince = Date.now();
            this.buffer.push(event);
            this.bufferBytes += data.length + 1;
            pendingSeqs[id] = r.SequenceNumber!;
            got++;
          }
        }
        if (flushDue(this.hints, this.bufferBytes, this.bufferSince, Date.now())) {
          await this.flush();
          Object.assign(this.seqs, pendingSeqs);
          pendingSeqs = {};
          this.saveState();
        }
        if (await this.retryDue()) this.saveRetries();
        await this.redriveRequested();
        if (got === 0) await new Promise((r) => setTimeout(r, 100));
      } catch (err) {
        this.props.onError?.(err as Error);
        // Start over from the saved positions: everything not yet delivered is read again (at-least-once).
        this.iterators.clear();
        this.buffer = [];
        this.bufferBytes = 0;
        pendingSeqs = {};
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Written to a temporary file and renamed, so a kill in the middle never leaves a truncated state file. */
  private saveState(): void {
    // The retry queue first: once the shard positions move past an object's records, only the queue knows it.
    this.saveRetries();
    const tmp = `${this.props.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.seqs));
    renameSync(tmp, this.props.stateFile);
    this.loadedSinceSave.clear();
  }

  private saveRetries(): void {
    const tmp = `${this.retryFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.retrying));
    renameSync(tmp, this.retryFile);
  }

  /**
   * One object per table, like Firehose's dynamic partitioning; then the raw changelog (first: in AWS it is loaded by
   * its own Firehose path, whether or not the merge keeps up) and the merge.
   */
  private async flush(): Promise<void> {
    const events = this.buffer;
    this.buffer = [];
    this.bufferBytes = 0;
    for (const group of groupByTable(events).values()) {
      const first = group[0]!;
      const key = lakeObjectKey(first.db, first.table, new Date());
      await this.props.s3.send(
        new PutObjectCommand({ Bucket: this.props.bucket, Key: key, Body: gzipSync(ndjson(group)) }),
      );
      const id = (e: ChangeEvent) => `${e.db}.${e.table} ${e.position}`;
      await this.loadChangelog(group.filter((e) => !this.loadedSinceSave.has(id(e))));
      for (const e of group) this.loadedSinceSave.add(id(e));
      if (await this.attempt(key, group, 1)) this.delivered += group.length;
    }
  }

  /**
   * One merge attempt of one object. True when its fate is settled (merged, or set aside: poison, or out of attempts);
   * false when it was queued for another attempt. A failure never propagates: it must not hold other objects back.
   */
  private async attempt(
    key: string,
    events: readonly ChangeEvent[] | undefined,
    attempt: number,
    firstFailedAt?: number,
  ): Promise<boolean> {
    try {
      const results = await applyObject({ bucket: this.props.bucket, key }, this.props.s3, this.props.merge);
      this.props.onMerged?.(results, [...(events ?? (await this.readObject(key)))], key);
      return true;
    } catch (err) {
      const error = err as Error;
      this.props.onError?.(error);
      const now = Date.now();
      const table = tableOfKey(key);
      if (!(err instanceof PoisonBatchError) && attempt < this.maxAttempts) {
        this.retrying.push({
          key,
          attempts: attempt,
          nextAt: now + this.backoffMs * 2 ** (attempt - 1),
          lastError: setAsideReason(table, error.message),
          firstFailedAt: firstFailedAt ?? now,
          lastFailedAt: now,
        });
        return false;
      }
      // The local dead-letter place: the reason next to the object, the pipeline keeps going.
      const report: SetAsideReport = {
        object: key,
        table,
        reason: setAsideReason(table, error.message),
        attempts: attempt,
        firstFailedAt: firstFailedAt ?? now,
        failedAt: now,
      };
      await this.props.s3.send(
        new PutObjectCommand({ Bucket: this.props.bucket, Key: setAsideKey(key), Body: JSON.stringify(report) }),
      );
      return true;
    }
  }

  /** Makes the attempts that are due; true when the retry queue changed. */
  private async retryDue(): Promise<boolean> {
    const now = Date.now();
    const due = this.retrying.filter((r) => r.nextAt <= now);
    if (due.length === 0) return false;
    for (const r of due) {
      this.retrying = this.retrying.filter((x) => x !== r);
      try {
        await this.attempt(r.key, undefined, r.attempts + 1, r.firstFailedAt);
      } catch (err) {
        this.retrying.push(r); // setting it aside failed: it stays queued, as it is in the saved file
        throw err;
      }
    }
    return true;
  }

  /**
   * Serves a redrive request, if one is waiting: every set-aside merge object (of the requested tables) is queued again
   * with fresh attempts, the queue saved, then the reports removed (a crash in between redrives an object twice,
   * which the idempotent merge absorbs), and the answer written for the CLI.
   */
  private async redriveRequested(): Promise<void> {
    const requestFile = redriveRequestFile(this.props.stateFile);
    if (!existsSync(requestFile)) return;
    const request = JSON.parse(readFileSync(requestFile, 'utf8')) as RedriveRequest;
    const reports: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.props.s3.send(
        new ListObjectsV2Command({
          Bucket: this.props.bucket,
          Prefix: MERGE_DEAD_LETTER_PREFIX,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const o of page.Contents ?? []) {
        const table = tableOfKey(o.Key!);
        if (request.tables.length === 0 || (table && request.tables.includes(table))) reports.push(o.Key!);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const objects = reports.map((k) => k.slice(MERGE_DEAD_LETTER_PREFIX.length).replace(/\.json$/, ''));
    const queued = new Set(this.retrying.map((r) => r.key));
    const now = Date.now();
    for (const key of objects) {
      if (!queued.has(key))
        this.retrying.push({ key, attempts: 0, nextAt: now, lastError: 'redriven, waiting for its first attempt' });
    }
    this.saveRetries();
    for (const k of reports) await this.props.s3.send(new DeleteObjectCommand({ Bucket: this.props.bucket, Key: k }));
    const result: RedriveResult = { id: request.id, objects };
    const tmp = `${redriveResultFile(this.props.stateFile)}.tmp`;
    writeFileSync(tmp, JSON.stringify(result));
    renameSync(tmp, redriveResultFile(this.props.stateFile));
    rmSync(requestFile, { force: true });
  }

  private async readObject(key: string): Promise<ChangeEvent[]> {
    const res = await this.props.s3.send(new GetObjectCommand({ Bucket: this.props.bucket, Key: key }));
    return gunzipSync(await res.Body!.transformToByteArray())
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as ChangeEvent);
  }

  private async setAside(name: string, body: Buffer | string): Promise<void> {
    await this.props.s3.send(
      new PutObjectCommand({ Bucket: this.props.bucket, Key: `${LAKE_ERROR_PREFIX}${name}`, Body: body }),
    );
  }

  /**
   * Loads events into the raw changelog as Redshift's COPY with the JSONPaths of shared/changelog-table.ts does: each
   * column from its path, JSON null as SQL NULL, objects as JSON. One transaction, so a failure loads nothing.
   */
  private async loadChangelog(events: readonly ChangeEvent[]): Promise<void> {
    if (events.length === 0) return;
    const cols = CHANGELOG_LOADED_COLUMNS;
    const client = await this.props.pool.connect();
    try {
      await client.query('BEGIN');
      for (let i = 0; i < events.length; i += 1000) {
        const chunk = events.slice(i, i + 1000);
        const values = chunk.flatMap((e) =>
          cols.map((c) => {
            const v = (e as unknown as Record<string, unknown>)[c.jsonPath!.slice(2)];
            if (v === undefined || v === null) return null;
            // PostgreSQL's JSONB cannot hold U+0000 (MySQL text can): U+FFFD in this local copy, the lake keeps it.
            return c.postgresType === 'JSONB' ? JSON.stringify(v, withoutNul) : v;
          }),
        );
        const tuples = chunk.map((_, r) => `(${cols.map((__, j) => `$${r * cols.length + j + 1}`).join(', ')})`);
        await client.query(
          `INSERT INTO "${this.props.changelogSchema}".${CHANGELOG_TABLE} (${cols.map((c) => c.name).join(', ')}) VALUES ${tuples.join(', ')}`,
          values,
        );
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release(err as Error); // a broken connection must not go back to the pool
      throw err;
    }
    client.release();
  }
}

/** JSON.stringify replacer: U+0000 in a string as U+FFFD (PostgreSQL JSONB refuses `\u0000`). */
function withoutNul(_key: string, value: unknown): unknown {
  return typeof value === 'string' && value.includes('\u0000') ? value.replaceAll('\u0000', '\ufffd') : value;
}

function parseRecord(data: Buffer): ChangeEvent | undefined {
  try {
    const doc = JSON.parse(data.toString('utf8')) as ChangeEvent;
    return typeof doc === 'object' && doc && typeof doc.db === 'string' && typeof doc.table === 'string'
      ? doc
      : undefined;
  } catch {
    return undefined;
  }
}
