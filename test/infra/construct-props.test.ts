/**
 * Props validation of the constructs that check a single rule of their own (ProducerService and Monitoring collect
 * theirs with PropsCheck and are tested in test/infra/constructs.test.ts): each refuses a wrong value when it is built,
 * before any resource exists, with a message naming the construct, the field and the value it received; the default
 * and the boundary value are accepted, and a value known only at deploy time (a token) is not judged. Constructs are
 * only built here, never synthesized.
 */
import { App, Duration, Lazy, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import { Stream } from 'aws-cdk-lib/aws-kinesis';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { describe, expect, it } from 'vitest';
import { environments } from '../../lib/config/environments';
import { validateEnvironmentConfig } from '../../lib/config/validate';
import { ChangeStream } from '../../lib/constructs/change-stream';
import { ChangelogDelivery } from '../../lib/constructs/changelog-delivery';
import { ChangelogLake } from '../../lib/constructs/changelog-lake';
import { GlueCatalog } from '../../lib/constructs/glue-catalog';
import { MergeFunction } from '../../lib/constructs/merge-function';
import { RedshiftTarget } from '../../lib/constructs/redshift-target';

function scope() {
  // No stack is bundled: building MergeFunction must not run esbuild (a child process) in a unit test.
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Probe', { env: { account: '111111111111', region: 'eu-west-1' } });
  return { stack, key: new Key(stack, 'Key') };
}

describe('construct props validation', () => {
  it('ChangeStream refuses a retention under 7 days, naming the hours it got', () => {
    const { stack, key } = scope();
    const build = (id: string, retention?: Duration) =>
      new ChangeStream(stack, id, { encryptionKey: key, removalPolicy: RemovalPolicy.DESTROY, retention });
    expect(() => build('Short', Duration.hours(24))).toThrow(
      'ChangeStream retention must be at least 168 hours, got 24',
    );
    expect(() => build('Week', Duration.days(7))).not.toThrow();
    expect(() => build('Default')).not.toThrow();
  });

  it('ChangelogDelivery refuses a buffer under 64 MiB (dynamic partitioning), naming the size it got', () => {
    const { stack, key } = scope();
    const stream = new Stream(stack, 'Stream');
    const bucket = new Bucket(stack, 'Bucket');
    const build = (id: string, bufferingSize?: Size) =>
      new ChangelogDelivery(stack, id, { stream, bucket, encryptionKey: key, bufferingSize });
    expect(() => build('Small', Size.mebibytes(32))).toThrow(
      'ChangelogDelivery bufferingSize must be at least 64 MiB with dynamic partitioning, got 32',
    );
    expect(() => build('AtLimit', Size.mebibytes(64))).not.toThrow();
  });

  it('ChangelogLake refuses an expiry that comes before the move to infrequent access, naming both days', () => {
    const { stack, key } = scope();
    const build = (id: string, expireAfterDays: number, infrequentAccessAfterDays?: number) =>
      new ChangelogLake(stack, id, {
        bucketName: `probe-${id.toLowerCase()}`,
        encryptionKey: key,
        removalPolicy: RemovalPolicy.DESTROY,
        expireAfterDays,
        infrequentAccessAfterDays,
      });
    expect(() => build('Early', 30)).toThrow(
      'ChangelogLake expireAfterDays (30) must be after infrequentAccessAfterDays (30)',
    );
    expect(() => build('Earlier', 10, 20)).toThrow(
      'ChangelogLake expireAfterDays (10) must be after infrequentAccessAfterDays (20)',
    );
    expect(() => build('Never', 0)).not.toThrow(); // 0: never expire
    expect(() => build('Later', 31)).not.toThrow();
  });

  it('GlueCatalog refuses a database name Athena cannot query unquoted, quoting the name it got', () => {
    const { stack } = scope();
    const bucket = new Bucket(stack, 'Bucket');
    expect(() => new GlueCatalog(stack, 'Upper', { bucket, databaseName: 'Shop-Lake' })).toThrow(
      'GlueCatalog databaseName must be lower-case letters, digits and _, got "Shop-Lake"',
    );
    expect(() => new GlueCatalog(stack, 'Empty', { bucket, databaseName: '' })).toThrow('got ""');
    expect(() => new GlueCatalog(stack, 'Fine', { bucket, databaseName: 'shop_lake_2' })).not.toThrow();
  });

  it('MergeFunction refuses a concurrency under 2 (the SQS event source minimum), naming the value it got', () => {
    const { stack, key } = scope();
    const lake = new ChangelogLake(stack, 'Lake', {
      bucketName: 'probe-lake',
      encryptionKey: key,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const warehouse = new RedshiftTarget(stack, 'Warehouse', {
      config: validateEnvironmentConfig(structuredClone(environments.staging!)).redshift,
      encryptionKey: key,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    expect(
      () =>
        new MergeFunction(stack, 'Merge', {
          pipelineId: 'probe',
          lake,
          warehouse,
          encryptionKey: key,
          maxConcurrency: 1,
        }),
    ).toThrow('MergeFunction maxConcurrency must be at least 2 (SQS event source), got 1');
  });

  it('RedshiftTarget refuses to create a workgroup without a VPC to put it in', () => {
    const { stack, key } = scope();
    const config = validateEnvironmentConfig(structuredClone(environments.dev!)).redshift;
    expect(config).toMatchObject({ kind: 'serverless', create: expect.anything() });
    expect(
      () =>
        new RedshiftTarget(stack, 'Warehouse', { config, encryptionKey: key, removalPolicy: RemovalPolicy.DESTROY }),
    ).toThrow('RedshiftTarget needs a vpc to create a workgroup');
  });

  it('does not judge values known only at deploy time (tokens)', () => {
    const { stack, key } = scope();
    const hours = Duration.hours(Lazy.number({ produce: () => 24 }));
    expect(
      () =>
        new ChangeStream(stack, 'Stream', {
          encryptionKey: key,
          removalPolicy: RemovalPolicy.DESTROY,
          retention: hours,
        }),
    ).not.toThrow();
    const bucket = new Bucket(stack, 'Bucket');
    const databaseName = Lazy.string({ produce: () => 'shop_lake' });
    expect(() => new GlueCatalog(stack, 'Catalog', { bucket, databaseName })).not.toThrow();
    const lake = new ChangelogLake(stack, 'Lake', {
      bucketName: 'probe-lake',
      encryptionKey: key,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const warehouse = new RedshiftTarget(stack, 'Warehouse', {
      config: validateEnvironmentConfig(structuredClone(environments.staging!)).redshift,
      encryptionKey: key,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const maxConcurrency = Lazy.number({ produce: () => 4 });
    expect(
      () =>
        new MergeFunction(stack, 'Merge', { pipelineId: 'probe', lake, warehouse, encryptionKey: key, maxConcurrency }),
    ).not.toThrow();
  });
});
