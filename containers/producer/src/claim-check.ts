/**
 * The claim check: an event over the Kinesis record limit is parked in S3 and a pointer event goes to Kinesis in its
 * place (shared/change-event.ts `claimCheckPointer`, shared/lake-layout.ts `claimCheckKey`).
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type ChangeEvent, claimCheckPointer } from '../../../shared/change-event';
import { claimCheckKey } from '../../../shared/lake-layout';

export interface ClaimCheckProps {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly prefix: string;
}

/**
 * Parks an oversized event (its serialised `data`) in S3 and returns the pointer record that goes to Kinesis instead,
 * with the write it must wait for: a consumer must never see a pointer to an object that is not there yet.
 * @throws when no claim-check bucket is configured
 */
export function parkOversized(
  props: ClaimCheckProps | undefined,
  event: ChangeEvent,
  data: Buffer,
): { data: Buffer; ready: Promise<void> } {
  if (!props) {
    throw new Error(
      `event ${event.db}.${event.table}@${event.position} is ${data.length} bytes, over the Kinesis record limit, and no CLAIM_CHECK_BUCKET is configured`,
    );
  }
  const key = claimCheckKey(event, props.prefix);
  const ready = props.s3
    .send(new PutObjectCommand({ Bucket: props.bucket, Key: key, Body: data }))
    .then(() => undefined);
  // The sink awaits it before sending the pointer (and fails on a rejection), so the checkpoint, which moves only
  // past acknowledged records, never passes an unwritten claim check. This handler only keeps a rejection that the
  // sink never reaches (it failed earlier) from being unhandled.
  ready.catch(() => undefined);
  const pointer = claimCheckPointer(event, { bucket: props.bucket, key, bytes: data.length });
  return { data: Buffer.from(`${JSON.stringify(pointer)}\n`), ready };
}
