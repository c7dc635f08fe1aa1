import { Duration, Size, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config/environment-config';
import { ChangelogDelivery } from '../constructs/changelog-delivery';
import { ChangelogTableSetup } from '../constructs/changelog-table-setup';
import type { StatefulStack } from './stateful-stack';

export interface DeliveryStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly stateful: StatefulStack;
}

/** Firehose from the change stream into the S3 changelog lake and, when reachable, the raw changelog table. */
export class DeliveryStack extends Stack {
  readonly delivery: ChangelogDelivery;
  readonly tableSetup: ChangelogTableSetup | undefined;

  constructor(scope: Construct, id: string, props: DeliveryStackProps) {
    super(scope, id, props);
    const c = props.config;
    const s = props.stateful;
    const w = s.warehouse;
    const toRedshift = c.redshift.firehoseReachable && w.jdbcUrl && w.secret;
    if (toRedshift) this.tableSetup = new ChangelogTableSetup(this, 'ChangelogTable', { warehouse: w });
    this.delivery = new ChangelogDelivery(this, 'Delivery', {
      stream: s.changeStream.stream,
      bucket: s.lake.bucketIn(this),
      encryptionKey: s.key,
      bufferingInterval: Duration.seconds(c.lake.bufferingIntervalSeconds),
      bufferingSize: Size.mebibytes(c.lake.bufferingSizeMiB),
      ...(toRedshift
        ? {
            redshift: {
              jdbcUrl: w.jdbcUrl!,
              secret: w.secret!,
              schema: c.redshift.changelogSchema,
              jsonPathsUrl: s.lake.jsonPathsUrl,
            },
          }
        : {}),
    });
    if (this.tableSetup && this.delivery.toRedshift) this.delivery.toRedshift.node.addDependency(this.tableSetup);
  }
}
