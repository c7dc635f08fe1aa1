import { LAKE_CHANGELOG_PREFIX, LAKE_HANDOFF_PREFIX } from '../../../shared/lake-layout';
import type { ObjectRef } from './apply-object';
import { PoisonBatchError } from './errors';

interface S3NotificationBody {
  Event?: string;
  Records?: { eventName?: string; s3?: { bucket?: { name?: string }; object?: { key?: string } } }[];
}

/**
 * The changelog objects an SQS message body (an S3 event notification) names: Firehose's objects under `changelog/`,
 * and the stream apply's handed-off objects under `handoff/` (it sends the same notification shape itself). S3's test
 * event yields nothing; keys come URL-encoded (spaces as '+') in notifications.
 */
export function parseS3Notification(body: string): ObjectRef[] {
  let doc: S3NotificationBody;
  try {
    doc = JSON.parse(body) as S3NotificationBody;
  } catch {
    throw new PoisonBatchError('BATCH_UNDECODABLE', `SQS message is not an S3 notification: ${body.slice(0, 200)}`);
  }
  if (doc.Event === 's3:TestEvent') return [];
  return (doc.Records ?? [])
    .filter((r) => r.eventName?.startsWith('ObjectCreated') && r.s3?.bucket?.name && r.s3.object?.key)
    .map((r) => ({ bucket: r.s3!.bucket!.name!, key: decodeURIComponent(r.s3!.object!.key!.replace(/\+/g, ' ')) }))
    .filter((r) =>
      [LAKE_CHANGELOG_PREFIX, LAKE_HANDOFF_PREFIX].some((p) => r.key.startsWith(p) || r.key.includes(`/${p}`)),
    );
}

/**
 * The SQS message body naming one object as S3's ObjectCreated notification would: how the stream apply queues a
 * handed-off object for the lake path's merge, which reads it with `parseS3Notification` like any other.
 */
export function s3NotificationBody(ref: ObjectRef): string {
  return JSON.stringify({
    Records: [
      {
        eventSource: 'aws:s3',
        eventName: 'ObjectCreated:Put',
        s3: { bucket: { name: ref.bucket }, object: { key: encodeURIComponent(ref.key) } },
      },
    ],
  });
}
