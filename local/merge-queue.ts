/**
 * The local stand-in for S3 → SQS → merge Lambda: objects in the lake bucket (changelog objects the Firehose stand-in
 * wrote, or objects the stream apply handed off) wait here for their merge, as SQS messages wait for the Lambda.
 * Shared by the Firehose stand-in (lake apply, local/firehose.ts) and the stream apply process
 * (local/stream-apply-main.ts, for the tables it hands off); each has its own queue file.
 *
 * Up to `mergeConcurrency` merges at once, never two of one table (as Lambda invocations run beside each other), so a
 * table whose merge fails or hangs (a lock held on its replica) occupies at most its own lane. A failed object is
 * retried on its own, with backoff, at most `maxDeliveryAttempts` times, then set aside under `errors/merge/` with its
 * reason (SQS redrive to a dead-letter queue); later objects of the same table are attempted too (the merge applies
 * batches in any order). The queue is saved to `<stateFile>.retrying` (tmp + rename) by `save()` and after every
 * attempt, so a restart keeps it with its attempts and next attempt times. A redrive request (`npx cdc redrive`,
 * local/firehose-dead-letters.ts) queues set-aside objects again with fresh attempts; one queue per local run serves
 * them (`redriveStateFile`).
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { processObject } from '../lambdas/merge/src/apply-object';
import type { MergeContext, TableResult } from '../lambdas/merge/src/merge';
import type { ChangeEvent } from '../shared/change-event';
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

export interface LocalMergeQueueProps {
  readonly s3: S3Client;
  /** The lake bucket: the queued objects, and the set-aside reports under `errors/merge/`. */
  readonly bucket: string;
  readonly merge: MergeContext;
  /** The queue is saved as `<stateFile>.retrying`. */
  readonly stateFile: string;
  /**
   * The state file next to which redrive requests are served (`<file>.redrive`, answered in `<file>.redrive.done`):
   * `npx cdc redrive` writes beside `firehose-state.json`, and exactly one queue of a local run serves it.
   * @default none: this queue serves no redrive requests
   */
  readonly redriveStateFile?: string;
  /** Merge attempts per object before it is set aside (SQS maxReceiveCount). @default 5 */
  readonly maxDeliveryAttempts?: number;
  /** Wait before the first retry of an object; doubled for each further one. @default 1000 */
  readonly retryBackoffMs?: number;
  /** Merges running at once, each of another table (Lambda's concurrency); the pool needs as many connections. @default 4 */
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

/** A merge running longer than this may be hung: its table's waiting objects no longer count as a backlog. */
const SLOW_MERGE_MS = 2000;

/** Merges of one table run one after the other: the table is the lane. */
const laneOf = (key: string): string => tableOfKey(key) ?? key;

export class LocalMergeQueue {
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
  private timer: NodeJS.Timeout | undefined;
  private serving: Promise<void> | undefined;
  /** Events in objects merged by this queue (re-deliveries count again). */
  merged = 0;

  constructor(private readonly props: LocalMergeQueueProps) {
    this.retrying = existsSync(this.file) ? (JSON.parse(readFileSync(this.file, 'utf8')) as PendingRetry[]) : [];
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

  /** Where the queue is saved. */
  get file(): string {
    return retryQueueFile(this.props.stateFile);
  }

  /** Objects waiting for a merge attempt (first or further), in flight included. */
  get pending(): readonly PendingRetry[] {
    return this.retrying;
  }

  /** Starts serving: due merges and redrive requests, every 100 ms (a caller may also `schedule()` at once). */
  start(): void {
    this.timer ??= setInterval(() => this.pump(), 100);
  }

  /**
   * Stops serving, then merges what is due and waits for the merges in flight, for at most `graceMs`: a merge hung on a
   * lock is left behind (its object stays in the saved queue and is merged after the restart; the merge is idempotent).
   */
  async stop(graceMs = 10_000): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.serving;
    const deadline = Date.now() + graceMs;
    let wait: NodeJS.Timeout | undefined;
    for (;;) {
      this.schedule();
      const left = deadline - Date.now();
      if (this.lanes.size === 0 || left <= 0) break;
      await Promise.race([
        Promise.race([...this.lanes.values()]),
        new Promise((r) => {
          wait = setTimeout(r, left);
        }),
      ]);
      clearTimeout(wait);
    }
  }

  /** Queues an object for its first merge attempt; persisted by the next `save()` (the caller decides when). */
  add(key: string): void {
    this.retrying.push({ key, attempts: 0, nextAt: Date.now(), lastError: '' });
  }

  /** Written to a temporary file and renamed, so a kill in the middle never leaves a truncated queue. */
  save(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.retrying));
    renameSync(tmp, this.file);
  }

  private pump(): void {
    this.schedule();
    if (this.props.redriveStateFile && !this.serving) {
      this.serving = this.serveRedrive(this.props.redriveStateFile)
        .catch((err: Error) => this.props.onError?.(err))
        .finally(() => {
          this.serving = undefined;
        });
    }
  }

  /**
   * Whether an object of a healthy table still waits for (or is in) its first merge: the Firehose stand-in then pauses
   * reading, so records wait in the stream and the next delivery is larger (fewer, bigger merges). Objects of a failing
   * table (one of its objects failed and waits for a retry) and of a table whose merge has run longer than
   * `SLOW_MERGE_MS` (maybe hung on a lock) do not count: they must not hold back every other table's deliveries.
   */
  backlogged(): boolean {
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
  schedule(): void {
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
    this.save();
  }

  /**
   * One merge attempt of one object: `settled` when its fate is (merged, or set aside: poison, or out of attempts),
   * else the queue entry for its next attempt. A merge failure never propagates; only failing to set it aside does.
   */
  private async attempt(key: string, attempt: number, firstFailedAt?: number): Promise<'settled' | PendingRetry> {
    // The Lambda's own entry: the same read, decode, merge and poison-or-retriable classification.
    const outcome = await processObject({ bucket: this.props.bucket, key }, this.props.s3, this.props.merge);
    if (outcome.kind === 'merged') {
      this.merged += outcome.events.length;
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
    await this.setAside(key, outcome.reason, attempt, firstFailedAt ?? now);
    return 'settled';
  }

  /**
   * The local dead-letter place: `errors/merge/<key>.json` with the reason next to the object (which stays where it
   * is), and the pipeline keeps going. Also the stream apply's policy for a table it sets aside at once (poison).
   */
  async setAside(
    key: string,
    reason: string,
    attempts: number,
    firstFailedAt = Date.now(),
    table: string | null = tableOfKey(key),
  ): Promise<void> {
    const report: SetAsideReport = {
      object: key,
      table,
      reason: setAsideReason(table, reason),
      attempts,
      firstFailedAt,
      failedAt: Date.now(),
    };
    await this.props.s3.send(
      new PutObjectCommand({ Bucket: this.props.bucket, Key: setAsideKey(key), Body: JSON.stringify(report) }),
    );
  }

  /**
   * Serves a redrive request, if one is waiting: every set-aside merge object (of the requested tables) is queued again
   * with fresh attempts, the queue saved, then the reports removed (a crash in between redrives an object twice,
   * which the idempotent merge absorbs), and the answer written for the CLI.
   */
  private async serveRedrive(stateFile: string): Promise<void> {
    const requestFile = redriveRequestFile(stateFile);
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
    this.save();
    for (const k of reports) await this.props.s3.send(new DeleteObjectCommand({ Bucket: this.props.bucket, Key: k }));
    const result: RedriveResult = { id: request.id, objects };
    const tmp = `${redriveResultFile(stateFile)}.tmp`;
    writeFileSync(tmp, JSON.stringify(result));
    renameSync(tmp, redriveResultFile(stateFile));
    rmSync(requestFile, { force: true });
  }
}
