/**
 * The local stand-in for Kinesis Data Firehose: reads every shard of the stream, buffers by time and size, writes
 * each table's events as one gz NDJSON object under the same keys the deployed Firehose uses
 * (shared/lake-layout.ts) and loads them into the raw changelog table. Shard positions are persisted only after the
 * objects were written (and queued for the merge), so a restart re-delivers (at-least-once; the merge is idempotent).
 *
 * With `mergeObjects` (lake apply, the default), it also hands each object to the merge, as S3 → SQS → Lambda does in AWS: each written
 * object joins the local merge queue (local/merge-queue.ts: lanes per table, retries with backoff, set-aside with
 * the reason, redrive), saved beside the shard positions as `<stateFile>.retrying`, before them, so it survives a
 * restart. Without it (stream apply, the default of `npm run local`: local/stream-apply-main.ts merges from the
 * stream), it only keeps the lake and the raw changelog, as Firehose does in AWS then. Isolation proven by
 * test/e2e/isolation.test.ts.
 */

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import {
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { groupByTable } from '../lambdas/merge/src/batch';
import type { MergeContext, TableResult } from '../lambdas/merge/src/merge';
import type { ChangeEvent } from '../shared/change-event';
import { CHANGELOG_LOADED_COLUMNS, CHANGELOG_TABLE, changelogTableDdl } from '../shared/changelog-table';
import { LAKE_ERROR_PREFIX } from '../shared/lake-layout';
import { checkHints, flushDue, lakeObjectKey, ndjson } from './firehose-batching';
import { LocalMergeQueue, type PendingRetry } from './merge-queue';

export type { PendingRetry } from './merge-queue';

export interface LocalFirehoseProps {
  readonly kinesis: KinesisClient;
  readonly s3: S3Client;
  readonly pool: pg.Pool;
  readonly streamName: string;
  readonly bucket: string;
  readonly changelogSchema: string;
  /** The merge each written object is handed to (lake apply). */
  readonly merge: MergeContext;
  /**
   * Whether written objects are handed to the merge (lake apply). Off, the stand-in only writes the lake and the raw
   * changelog, as Firehose does in AWS when the merge consumes the stream (stream apply).
   * @default true
   */
  readonly mergeObjects?: boolean;
  readonly stateFile: string;
  /**
   * The state file whose redrive requests (`npx cdc redrive`) this stand-in's merge queue serves (with `mergeObjects`).
   * @default stateFile
   */
  readonly redriveStateFile?: string;
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

export class LocalFirehose {
  private readonly iterators = new Map<string, string>();
  private readonly seqs: Record<string, string>;
  private readonly hints;
  private buffer: ChangeEvent[] = [];
  /** The objects waiting for their merge (lake apply only). */
  private readonly queue: LocalMergeQueue | undefined;
  /**
   * Positions loaded into the raw changelog since the shard positions were last saved: a delivery retried by this
   * process (a failed load or write) does not load them twice. Only a kill between loading and saving can.
   */
  private readonly loadedSinceSave = new Set<string>();
  private bufferBytes = 0;
  private bufferSince = Date.now();
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly props: LocalFirehoseProps) {
    this.hints = checkHints({ intervalMs: props.bufferMs ?? 1000, sizeBytes: props.bufferBytes ?? 1024 * 1024 });
    this.seqs = existsSync(props.stateFile)
      ? (JSON.parse(readFileSync(props.stateFile, 'utf8')) as Record<string, string>)
      : {};
    this.queue =
      (props.mergeObjects ?? true)
        ? new LocalMergeQueue({ ...props, redriveStateFile: props.redriveStateFile ?? props.stateFile })
        : undefined;
  }

  /** Events merged by this process (lake apply; re-deliveries count again). */
  get delivered(): number {
    return this.queue?.merged ?? 0;
  }

  /** Objects waiting for a merge attempt (first or further), in flight included; none without `mergeObjects`. */
  get pendingRetries(): readonly PendingRetry[] {
    return this.queue?.pending ?? [];
  }

  async start(): Promise<void> {
    await this.props.pool.query(`CREATE SCHEMA IF NOT EXISTS "${this.props.changelogSchema}"`);
    await this.props.pool.query(changelogTableDdl(`"${this.props.changelogSchema}"`, 'postgres'));
    this.running = true;
    this.queue?.start();
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
    await this.queue?.stop(graceMs);
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
        const desc = this.queue?.backlogged()
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
        this.queue?.schedule();
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
    // The merge queue first: once the shard positions move past an object's records, only the queue knows it.
    this.queue?.save();
    const tmp = `${this.props.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.seqs));
    renameSync(tmp, this.props.stateFile);
    this.loadedSinceSave.clear();
  }

  /**
   * One object per table, like Firehose's dynamic partitioning; then the raw changelog (first: in AWS it is loaded by
   * its own Firehose path, whether or not the merge keeps up) and, in lake apply, the merge queue.
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
      this.queue?.add(key);
    }
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
