/**
 * Stream apply: one batch of Kinesis records (what Lambda's event source mapping hands the stream-apply Lambda, or
 * the local stand-in hands its process) merged straight into the replicas, seconds after the commit, with the same
 * set-based, order-insensitive merge as the lake path (merge.ts): a batch replayed, split, reordered or also seen by
 * the lake path converges to the same replica.
 *
 * The failure policy keeps one table's trouble from stopping the others on its shard (docs/merge.md, "Stream apply"):
 * - a record that is not a change event can never apply: kept under `errors/stream/` with its reason, set aside;
 * - a table whose merge fails while the warehouse answers is that table's problem: its events are written as one
 *   object under `handoff/` (the lake's layout) and queued for the lake path's merge, which retries it with backoff
 *   and sets it aside with its reason (SQS and its dead-letter queue in AWS, the local merge queue locally); poison
 *   (it can never merge as it is) is set aside at once;
 * - only when the warehouse does not answer, or S3 fails, is the batch retried where it is (`retryFrom`): the event
 *   source mapping retries it (bisecting on error), and nothing is handed off that would flood the queue in an outage.
 */

import { gzipSync } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import type { ChangeEvent } from '../../../shared/change-event';
import { LAKE_HANDOFF_PREFIX, LAKE_STREAM_ERROR_PREFIX, lakePartitionPrefix } from '../../../shared/lake-layout';
import { type ObjectRef, resolveClaimChecks } from './apply-object';
import { checkEvent, decodeBody } from './batch';
import { PoisonBatchError } from './errors';
import { type MergeContext, mergeTables, resetSchemaCache, type TableResult } from './merge';

/** One Kinesis record as the stream apply needs it. */
export interface StreamRecord {
  readonly shardId: string;
  readonly sequenceNumber: string;
  /** The record's bytes (the change event's JSON, as the producer wrote it). */
  readonly data: Uint8Array;
  /** When Kinesis accepted it (epoch ms). */
  readonly arrivalMs?: number;
}

/** Where the stream apply sends what it cannot merge now; the runtime's own (SQS in AWS, the local merge queue). */
export interface StreamApplyPolicy {
  /** The lake bucket: handed-off objects and undecodable records are written there. */
  readonly bucket: string;
  /** Queue a handed-off table's object for the lake path's merge (retried with backoff, then set aside). */
  enqueue(ref: ObjectRef, table: string, reason: string): Promise<void>;
  /** Set an object aside with its reason: it can never merge as it is (poison), nothing retries it. */
  setAside(ref: ObjectRef, table: string | null, reason: string, code: string): Promise<void>;
}

export interface StreamApplyOptions {
  /** Tables per warehouse transaction (merge.ts `mergeTables`). @default 4 */
  readonly tablesPerTransaction?: number;
  /** Epoch ms, for object names and the dt/hour partition of handed-off objects. @default Date.now() */
  readonly now?: number;
}

export interface HandedOff {
  readonly table: string;
  readonly events: number;
  readonly object: ObjectRef;
  readonly reason: string;
  /** Set aside at once (poison) rather than queued for retries. */
  readonly poison: boolean;
}

export interface StreamBatchOutcome {
  /** One per table merged. */
  readonly results: readonly TableResult[];
  /** The events merged (claim checks resolved). */
  readonly events: readonly ChangeEvent[];
  readonly handedOff: readonly HandedOff[];
  /** Records that are not change events, kept under `errors/stream/` with their reason. */
  readonly undecodable: readonly { readonly sequenceNumber: string; readonly reason: string }[];
  /**
   * Set when the batch must be retried from this record on (the warehouse did not answer, or S3 failed): nothing
   * else of the batch is done for sure, the merge being idempotent makes the retry safe.
   */
  readonly retryFrom?: { readonly sequenceNumber: string; readonly reason: string };
}

/** The batch's name in the warehouse's batch records, staging objects and handed-off objects: shard and range. */
export function streamBatchId(records: readonly StreamRecord[]): string {
  const first = records[0]!;
  const last = records[records.length - 1]!;
  return `kinesis:${first.shardId}:${first.sequenceNumber}-${last.sequenceNumber}`;
}

/** Lambda's Kinesis event as stream records (the data arrives base64-encoded). */
export function recordsFromKinesisEvent(event: KinesisStreamEvent): StreamRecord[] {
  return event.Records.map((r) => ({
    shardId: r.eventID.slice(0, r.eventID.lastIndexOf(':')) || 'shard',
    sequenceNumber: r.kinesis.sequenceNumber,
    data: Buffer.from(r.kinesis.data, 'base64'),
    arrivalMs: Math.round(r.kinesis.approximateArrivalTimestamp * 1000),
  }));
}

/**
 * The answer for the event source mapping (ReportBatchItemFailures): empty when the batch is done, else the record
 * to retry from. For streams Lambda checkpoints before the lowest sequence number reported and retries from it
 * (https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html).
 */
export function batchResponse(outcome: StreamBatchOutcome): KinesisStreamBatchResponse {
  return { batchItemFailures: outcome.retryFrom ? [{ itemIdentifier: outcome.retryFrom.sequenceNumber }] : [] };
}

/** Whether the warehouse answers a trivial query: tells a table's problem from everyone's. */
async function warehouseAnswers(ctx: MergeContext): Promise<boolean> {
  try {
    await ctx.warehouse.query('SELECT 1');
    return true;
  } catch {
    return false;
  }
}

/**
 * Applies one batch of stream records (one shard's, in order). Never throws: what could not be done is in the
 * outcome (`retryFrom`, `handedOff`, `undecodable`).
 */
export async function applyStreamBatch(
  records: readonly StreamRecord[],
  s3: S3Client,
  ctx: MergeContext,
  policy: StreamApplyPolicy,
  opts: StreamApplyOptions = {},
): Promise<StreamBatchOutcome> {
  const empty = { results: [], events: [], handedOff: [], undecodable: [] };
  if (records.length === 0) return empty;
  const batchId = streamBatchId(records);
  const now = opts.now ?? Date.now();
  const retry = (reason: string): StreamBatchOutcome => ({
    ...empty,
    retryFrom: { sequenceNumber: records[0]!.sequenceNumber, reason },
  });

  // Decode: a record that is not a change event is kept with its reason; the others go on.
  const decoded: ChangeEvent[] = [];
  const undecodable: { sequenceNumber: string; reason: string; data: string }[] = [];
  for (const r of records) {
    const source = `${r.shardId}/${r.sequenceNumber}`;
    try {
      let doc: unknown;
      try {
        doc = JSON.parse(decodeBody(r.data));
      } catch {
        throw new PoisonBatchError('BATCH_UNDECODABLE', `${source}: not JSON`);
      }
      decoded.push(checkEvent(doc, source, 1));
    } catch (err) {
      undecodable.push({
        sequenceNumber: r.sequenceNumber,
        reason: (err as Error).message,
        data: Buffer.from(r.data).toString('base64'),
      });
    }
  }
  try {
    if (undecodable.length > 0) {
      const first = records[0]!;
      const ref = {
        bucket: policy.bucket,
        key: `${LAKE_STREAM_ERROR_PREFIX}${first.shardId}/${first.sequenceNumber}.json`,
      };
      const reason = `${undecodable.length} record(s) of ${batchId} are not change events: ${undecodable[0]!.reason}`;
      await putObject(s3, ref, JSON.stringify({ batchId, reason, records: undecodable }));
      await policy.setAside(ref, null, reason, 'BATCH_UNDECODABLE');
    }
  } catch (err) {
    return retry(`could not keep undecodable records: ${(err as Error).message}`);
  }

  // Claim checks: a missing object is that event's poison (set aside with its table); a failed read retries.
  let events: ChangeEvent[];
  const missing: { event: ChangeEvent; error: PoisonBatchError }[] = [];
  try {
    events = await resolveClaimChecks(s3, decoded, batchId);
  } catch (err) {
    if (!(err instanceof PoisonBatchError)) return retry((err as Error).message);
    events = [];
    for (const e of decoded) {
      try {
        events.push(...(await resolveClaimChecks(s3, [e], batchId)));
      } catch (one) {
        if (!(one instanceof PoisonBatchError)) return retry((one as Error).message);
        missing.push({ event: e, error: one });
      }
    }
  }

  let outcomes = await mergeTables(events, batchId, ctx, { tablesPerTransaction: opts.tablesPerTransaction ?? 4 });
  // A table that failed short of poison may have lost a race with another batch of the same table merging at the same
  // time (another shard's, as the partition key table-pk spreads a table over shards, or the lake path's). The merge
  // already plans again at once when what its plan was read from changed (PLAN_STALE); this catches what that does
  // not see (rows of a next incarnation arriving under a DROP's check, a plan still losing after its re-plans): merged
  // once more, alone and with every table's schema read afresh, it goes through; what fails again is handed off.
  const raced = outcomes.filter((o) => 'error' in o && !(o.error instanceof PoisonBatchError));
  if (raced.length > 0 && (await warehouseAnswers(ctx))) {
    resetSchemaCache();
    const again = await mergeTables(
      raced.flatMap((o) => o.events),
      batchId,
      ctx,
      { tablesPerTransaction: 1 },
    );
    outcomes = [...outcomes.filter((o) => !raced.includes(o)), ...again];
  }
  const failed = outcomes.flatMap((o) => ('error' in o ? [o] : []));
  const merged = outcomes.flatMap((o) => ('result' in o ? [o] : []));
  // Nothing merged and the warehouse does not answer: everyone's problem, retried where it is.
  if (failed.length > 0 && merged.length === 0 && failed.some((f) => !(f.error instanceof PoisonBatchError))) {
    if (!(await warehouseAnswers(ctx))) return retry(`warehouse does not answer: ${failed[0]!.error.message}`);
  }
  const handedOff: HandedOff[] = [];
  try {
    for (const m of missing) handedOff.push(await handOff([m.event], `${m.event.db}.${m.event.table}`, m.error, true));
    for (const f of failed)
      handedOff.push(await handOff(f.events, f.table, f.error, f.error instanceof PoisonBatchError));
  } catch (err) {
    // The merged tables are merged; the retry merges them again (a no-op) and hands the rest off then.
    return retry(`could not hand off ${failed.map((f) => f.table).join(', ')}: ${(err as Error).message}`);
  }
  return {
    results: merged.map((m) => m.result),
    events: merged.flatMap((m) => m.events),
    handedOff,
    undecodable: undecodable.map(({ sequenceNumber, reason }) => ({ sequenceNumber, reason })),
  };

  async function handOff(
    tableEvents: readonly ChangeEvent[],
    table: string,
    error: Error,
    poison: boolean,
  ): Promise<HandedOff> {
    const first = tableEvents[0]!;
    const name = `${batchId.replace(/[^A-Za-z0-9._-]/g, '_')}.gz`;
    const ref = {
      bucket: policy.bucket,
      key: `${lakePartitionPrefix(first.db, first.table, new Date(now), LAKE_HANDOFF_PREFIX)}${name}`,
    };
    await putObject(s3, ref, gzipSync(tableEvents.map((e) => JSON.stringify(e)).join('\n') + '\n'));
    const reason = `${table}: ${error.message}`;
    if (poison) await policy.setAside(ref, table, reason, (error as PoisonBatchError).code);
    else await policy.enqueue(ref, table, reason);
    return { table, events: tableEvents.length, object: ref, reason, poison };
  }
}

async function putObject(s3: S3Client, ref: ObjectRef, body: string | Uint8Array): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: ref.bucket, Key: ref.key, Body: body }));
}
