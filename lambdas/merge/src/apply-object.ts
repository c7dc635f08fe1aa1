import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ChangeEvent } from '../../../shared/change-event';
import { checkEvent, decodeBody, parseBatch } from './batch';
import { PoisonBatchError } from './errors';
import { type MergeContext, mergeEvents, type TableResult } from './merge';

export interface ObjectRef {
  readonly bucket: string;
  readonly key: string;
}

async function getText(s3: S3Client, ref: ObjectRef): Promise<string> {
  const res = await s3.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
  return decodeBody(await res.Body!.transformToByteArray());
}

/** Replaces claim-check pointer events by the full events the producer parked in S3. */
export async function resolveClaimChecks(s3: S3Client, events: ChangeEvent[], source: string): Promise<ChangeEvent[]> {
  return Promise.all(
    events.map(async (e, i) => {
      if (!e.claim_check) return e;
      let text: string;
      try {
        text = await getText(s3, { bucket: e.claim_check.bucket, key: e.claim_check.key });
      } catch (err) {
        throw new PoisonBatchError(
          'BATCH_UNDECODABLE',
          `${source} event ${i + 1}: claim-check object s3://${e.claim_check.bucket}/${e.claim_check.key} unreadable: ${(err as Error).message}`,
        );
      }
      return checkEvent(JSON.parse(text), `s3://${e.claim_check.bucket}/${e.claim_check.key}`, 1);
    }),
  );
}

/**
 * Applies one changelog object (one Firehose delivery: gz NDJSON, normally one table): the unit the Lambda gets from
 * S3 → SQS, and what the local Firehose stand-in calls for each object it writes. Idempotent: the object's S3 URI is
 * the batch id, and replaying it changes nothing.
 */
export async function applyObject(ref: ObjectRef, s3: S3Client, ctx: MergeContext): Promise<TableResult[]> {
  const source = `s3://${ref.bucket}/${ref.key}`;
  const events = await resolveClaimChecks(s3, parseBatch(await getText(s3, ref), source), source);
  if (events.length === 0) return [];
  return mergeEvents(events, source, ctx);
}
