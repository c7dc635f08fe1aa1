/**
 * The local stand-in for Kinesis Data Firehose: reads every shard of the stream, buffers by time and size, writes
 * each table's events as one gz NDJSON object under the same keys the deployed Firehose uses
 * (shared/lake-layout.ts), loads them into the raw changelog table, and hands each object to the merge, as
 * S3 → SQS → Lambda does in AWS: through the Lambda's own entry (`processObject`, lambdas/merge/src/apply-object.ts),
 * which merges it and says whether a failure is poison or retriable; the delivery policy below is this file's. Shard positions are persisted only after the objects were written and queued for
 * the merge, so a restart re-delivers (at-least-once; the merge is idempotent).
 *
 * Like S3 → SQS → Lambda: each written object joins a queue (saved beside the shard positions as
 * `<stateFile>.retrying`, before them, so it survives a restart) and is merged from there by up to `mergeConcurrency`
 * merges at once, never two of one table (as Lambda invocations run beside each other). So a table whose merge fails
 * or hangs (a lock held on its replica) occupies at most its own lane: the reading loop and every other table go on.
 * A failed object is retried on its own, with backoff, at most `maxDeliveryAttempts` times, then set aside under
 * `errors/merge/` with its reason (SQS redrive to a dead-letter queue); later objects of the same table are attempted
 * too (the merge applies batches in any order). A redrive request (`npx cdc redrive`,
 * local/firehose-dead-letters.ts) queues set-aside objects again with fresh attempts. Proven by
 * test/e2e/isolation.test.ts.
 */

import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import {
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { processObject } from '../lambdas/merge/src/apply-object';
import { groupByTable } from '../lambdas/merge/src/batch';
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
  /** Merges running at once, each of another table (Lambda's concurrency); the pool needs one connection more. @default 4 */
  readonly mergeConcurrency?: number;
  readonly onMerged?: (results: TableResult[], events: ChangeEvent[], key: string) => void;
  readonly onError?: (err: Error) => void;
}

/**
 * An object waiting for its merge (what SQS holds for an undeleted message): not attempted yet (`attempts` 0: just
 * delivered, redriven, or in flight when the process stopped), or failed and waiting for its next attempt.
 */
export interface PendingRetry {
  readonly key: string;
  /** Failed attempts so far. */
  readonly attempts: number;
  readonly nextAt: number;
  readonly lastError: string;
  /** Epoch ms of the object's first failed attempt and of its last (absent in queues saved by older versions). */
  readonly firstFailedAt?: number;
  readonly lastFailedAt?: number;
}

/** A merge running longer than this may be hung: its table's waiting objects no longer pause reading. */
const SLOW_MERGE_MS = 2000;

/** Merges of one table run one after the other: the table is the lane. */
const laneOf = (key: string): string => tableOfKey(key) ?? key;

export class LocalFirehose {
  private readonly iterators = new Map<string, string>();
  private readonly seqs: Record<string, string>;
  private readonly hints;
  private buffer: ChangeEvent[] = [];
  private retrying: PendingRetry[];
  private readonly maxAttempts: number;
  private readonly backoffMs: number;
  private readonly concurrency: number;
  /** Merges in flight, by table (one per table at most), and when each started. */
  private readonly lanes = new Map<string, Promise<void>>();
  private readonly laneSince = new Map<string, number>();
  /**
   * Until one merge succeeded in this process, merges run one at a time: the merge creates its bookkeeping (schemas,
   * merge_batches) with CREATE … IF NOT EXISTS once per process, and two of those at once can collide in PostgreSQL.
   */
  private warm = false;
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
    this.concurrency = props.mergeConcurrency ?? 4;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1)
      throw new RangeError(`mergeConcurrency must be an integer ≥ 1, got ${this.concurrency}`);
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1)
      throw new RangeError(`maxDeliveryAttempts must be an integer ≥ 1, got ${this.maxAttempts}`);
    if (!Number.isFinite(this.backoffMs) || this.backoffMs < 0)
      throw new RangeError(`retryBackoffMs must be ≥ 0, got ${this.backoffMs}`);
  }

  private get retryFile(): string {
    return retryQueueFile(this.props.stateFile);
  }

  /** Objects waiting for a merge attempt (first or further), in flight included. */
  get pendingRetries(): readonly PendingRetry[] {
    return this.retrying;
  }

  async start(): Promise<void> {
    await this.props.pool.query(`CREATE SCHEMA IF NOT EXISTS "${this.props.changelogSchema}"`);
    await this.props.pool.query(changelogTableDdl(`"${this.props.changelogSchema}"`, 'postgres'));
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Stops reading, then merges what is due (the delivery in progress included) and waits for the merges in flight, for
   * at most `graceMs`: a merge hung on a lock is left behind (its object stays in the saved queue and is merged after
   * the restart; the merge is idempotent).
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.running = false;
    await this.loop;
    const deadline = Date.now() + graceMs;
    let timer: NodeJS.Timeout | undefined;
    for (;;) {
      this.schedule();
      const left = deadline - Date.now();
      if (this.lanes.size === 0 || left <= 0) break;
      await Promise.race([
        Promise.race([...this.lanes.values()]),
        new Promise((r) => {
          timer = setTimeout(r, left);
        }),
      ]);
      clearTimeout(timer);
    }
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
    // Positions of records buffered but not yet delivered: saved only once their objects are written and queued.
    let pendingSeqs: Record<string, string> = {};
    while (this.running) {
      try {
        // Backpressure: with merges behind, the records wait in the stream rather than as objects in memory.
        const desc = this.backlogged()
          ? undefined
          : await this.props.kinesis.send(new DescribeStreamCommand({ StreamName: this.props.streamName }));
        let got = 0;
        for (const shard of desc?.StreamDescription?.Shards ?? []) {
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
        this.schedule();
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
      // Queued, not merged here: the caller saves the queue before the shard positions, then schedule() merges it.
      this.retrying.push({ key, attempts: 0, nextAt: Date.now(), lastError: '' });
    }
  }

  /**
   * Whether an object of a healthy table still waits for (or is in) its first merge: then reading pauses, so records
   * wait in the stream and the next delivery is larger (fewer, bigger merges), as when the stand-in merged a delivery
   * before reading on. Objects of a failing table (one of its objects failed and waits for a retry) and of a table
   * whose merge has run longer than `SLOW_MERGE_MS` (maybe hung on a lock) do not count: they must not hold back
   * every other table's deliveries.
   */
  private backlogged(): boolean {
    const now = Date.now();
    const failing = new Set(this.retrying.filter((r) => r.attempts > 0).map((r) => laneOf(r.key)));
    for (const r of this.retrying) {
      if (r.attempts > 0) continue;
      const lane = laneOf(r.key);
      const since = this.laneSince.get(lane);
      if (failing.has(lane) || (since !== undefined && now - since > SLOW_MERGE_MS)) continue;
      return true;
    }
    return false;
  }

  /**
   * Starts the merges that are due, oldest first, while fewer than `mergeConcurrency` run and none runs for the same
   * table. Never waits for them: a failing or hung table holds only its own lane.
   */
  private schedule(): void {
    const now = Date.now();
    const due = this.retrying.filter((r) => r.nextAt <= now).sort((a, b) => a.nextAt - b.nextAt);
    for (const r of due) {
      if (this.lanes.size >= (this.warm ? this.concurrency : 1)) return;
      const lane = laneOf(r.key);
      if (this.lanes.has(lane)) continue;
      this.laneSince.set(lane, now);
      this.lanes.set(
        lane,
        this.runQueued(r).finally(() => {
          this.lanes.delete(lane);
          this.laneSince.delete(lane);
        }),
      );
    }
  }

  /** One attempt of a queued object; the queue entry is replaced by its outcome and the queue saved. */
  private async runQueued(r: PendingRetry): Promise<void> {
    let next: PendingRetry | undefined;
    try {
      const outcome = await this.attempt(r.key, r.attempts + 1, r.firstFailedAt);
      if (outcome !== 'settled') next = outcome;
    } catch (err) {
      // Setting it aside failed (S3): it stays queued, tried again after the backoff.
      this.props.onError?.(err as Error);
      next = { ...r, nextAt: Date.now() + this.backoffMs };
    }
    this.retrying = this.retrying.filter((x) => x !== r);
    if (next) this.retrying.push(next);
    this.saveRetries();
  }

  /**
   * One merge attempt of one object: `settled` when its fate is (merged, or set aside: poison, or out of attempts),
   * else the queue entry for its next attempt. A merge failure never propagates; only failing to set it aside does.
   */
  private async attempt(key: string, attempt: number, firstFailedAt?: number): Promise<'settled' | PendingRetry> {
    // The Lambda's own entry: the same read, decode, merge and poison-or-retriable classification.
    const outcome = await processObject({ bucket: this.props.bucket, key }, this.props.s3, this.props.merge);
    if (outcome.kind === 'merged') {
      this.delivered += outcome.events.length;
      this.warm = true;
      this.props.onMerged?.(outcome.results, [...outcome.events], key);
      return 'settled';
    }
    this.props.onError?.(outcome.error);
    const now = Date.now();
    const table = tableOfKey(key);
    // The policy on top, as SQS's redrive policy: poison is set aside at once, the rest after `maxAttempts`.
    if (outcome.kind === 'retriable' && attempt < this.maxAttempts) {
      return {
        key,
        attempts: attempt,
        nextAt: now + this.backoffMs * 2 ** (attempt - 1),
        lastError: setAsideReason(table, outcome.reason),
        firstFailedAt: firstFailedAt ?? now,
        lastFailedAt: now,
      };
    }
    // The local dead-letter place: the reason next to the object, the pipeline keeps going.
    const report: SetAsideReport = {
      object: key,
      table,
      reason: setAsideReason(table, outcome.reason),
      attempts: attempt,
      firstFailedAt: firstFailedAt ?? now,
      failedAt: now,
    };
    await this.props.s3.send(
      new PutObjectCommand({ Bucket: this.props.bucket, Key: setAsideKey(key), Body: JSON.stringify(report) }),
    );
    return 'settled';
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
