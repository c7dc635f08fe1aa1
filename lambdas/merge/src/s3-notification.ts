import { LAKE_CHANGELOG_PREFIX } from '../../../shared/lake-layout';
import type { ObjectRef } from './apply-object';
import { PoisonBatchError } from './errors';

interface S3NotificationBody {
  Event?: string;
  Records?: { eventName?: string; s3?: { bucket?: { name?: string }; object?: { key?: string } } }[];
}

/**
 * The changelog objects an SQS message body (an S3 event notification) names. S3's test event yields nothing; keys
 * come URL-encoded (spaces as '+') in notifications.
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
    .filter((r) => r.key.startsWith(LAKE_CHANGELOG_PREFIX) || r.key.includes(`/${LAKE_CHANGELOG_PREFIX}`));
}
