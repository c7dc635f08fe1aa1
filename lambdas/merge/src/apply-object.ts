import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type ChangeEvent, isClaimCheckPointer } from '../../../shared/change-event';
import { checkEvent, decodeBody, parseBatch } from './batch';
import { PoisonBatchError, RetriableMergeError } from './errors';
import { type MergeContext, mergeEvents, type TableResult } from './merge';

export interface ObjectRef {
  readonly bucket: string;
  readonly key: string;
}

/**
 * Whether a failed S3 read means the object is not there. S3 is read-after-write consistent and the producer's
 * PutObject of a claim check completes before it sends the pointer (Firehose writes a changelog object before S3
 * notifies), so a NoSuchKey will not turn into the object later: retrying cannot help. Every other read failure
 * (throttling, 5xx, a reset or timed-out connection, a body cut short, access denied by a policy or a KMS key) depends
 * on the environment, not on the object, and may pass: retried (SQS redelivers; its redrive policy bounds it).
 */
export function isMissingObject(err: unknown): boolean {
  return (err as { name?: string } | null)?.name === 'NoSuchKey';
}

/**
 * Reads an object: a missing one is poison (OBJECT_MISSING), a failed read retriable (OBJECT_UNREADABLE), and content
 * that is not decodable (a broken gzip) poison (BATCH_UNDECODABLE). `what` names it in the messages.
 */
async function readObject(s3: S3Client, ref: ObjectRef, what: string): Promise<string> {
  const uri = `s3://${ref.bucket}/${ref.key}`;
  let bytes: Uint8Array;
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
    bytes = await res.Body!.transformToByteArray();
  } catch (err) {
    const reason = (err as Error).message;
    if (isMissingObject(err)) throw new PoisonBatchError('OBJECT_MISSING', `${what}${uri} does not exist (${reason})`);
    throw new RetriableMergeError('OBJECT_UNREADABLE', `${what}${uri} could not be read, will retry: ${reason}`);
  }
  try {
    return decodeBody(bytes);
  } catch (err) {
    throw new PoisonBatchError('BATCH_UNDECODABLE', `${uri}: not a readable gzip (${(err as Error).message})`);
  }
}

/** Replaces claim-check pointer events by the full events the producer parked in S3. */
export async function resolveClaimChecks(s3: S3Client, events: ChangeEvent[], source: string): Promise<ChangeEvent[]> {
  return Promise.all(
    events.map(async (e, i) => {
      if (!isClaimCheckPointer(e)) return e;
      const ref = { bucket: e.claim_check.bucket, key: e.claim_check.key };
      const text = await readObject(s3, ref, `${source} event ${i + 1}: claim-check object `);
      // One event per object; parseBatch names the object and the line when it is not one.
      const parsed = parseBatch(text, `s3://${ref.bucket}/${ref.key}`);
      return checkEvent(parsed[0] ?? null, `s3://${ref.bucket}/${ref.key}`, 1);
    }),
  );
}

/**
 * Applies one changelog object (one Firehose delivery: gz NDJSON, normally one table). Idempotent: the object's S3
 * URI is the batch id, and replaying it changes nothing. Throws `PoisonBatchError` (never retry) or another error
 * (retry later); `processObject` is the same with the failure classified, for the runtimes.
 */
export async function applyObject(ref: ObjectRef, s3: S3Client, ctx: MergeContext): Promise<TableResult[]> {
  return (await readAndMerge(ref, s3, ctx)).results;
}

async function readAndMerge(
  ref: ObjectRef,
  s3: S3Client,
  ctx: MergeContext,
): Promise<{ results: TableResult[]; events: ChangeEvent[] }> {
  const source = `s3://${ref.bucket}/${ref.key}`;
  const events = await resolveClaimChecks(
    s3,
    parseBatch(await readObject(s3, ref, 'changelog object '), source),
    source,
  );
  if (events.length === 0) return { results: [], events };
  return { results: await mergeEvents(events, source, ctx), events };
}

/** What became of one object; what to do about a failure is the caller's policy. */
export type ObjectOutcome =
  /** Applied; `events` are the object's events as merged (claim checks resolved), so nobody reads it again. */
  | { readonly kind: 'merged'; readonly results: TableResult[]; readonly events: readonly ChangeEvent[] }
  /** It can never succeed as it is: dead-letter it with `reason` at once; other objects keep flowing. */
  | { readonly kind: 'poison'; readonly error: PoisonBatchError; readonly reason: string }
  /** It may succeed later (the warehouse, S3, anything unexpected): try it again. */
  | { readonly kind: 'retriable'; readonly error: Error; readonly reason: string };

/**
 * The object-processing entry of every runtime: the Lambda handler calls it for each S3 notification (S3 → SQS →
 * Lambda), the local Firehose stand-in for each object it writes. Reads, decodes, merges, and classifies a failure
 * as poison (`PoisonBatchError`) or retriable (anything else). Never throws: the policy on top is the caller's (the
 * Lambda: the dead-letter queue for poison, SQS redelivery for the rest; the stand-in: poison set aside at once, the
 * rest retried with backoff, then set aside, as SQS's redrive policy does).
 */
export async function processObject(ref: ObjectRef, s3: S3Client, ctx: MergeContext): Promise<ObjectOutcome> {
  try {
    return { kind: 'merged', ...(await readAndMerge(ref, s3, ctx)) };
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    if (error instanceof PoisonBatchError) return { kind: 'poison', error, reason: error.message };
    return { kind: 'retriable', error, reason: error.message };
  }
}
