/**
 * Checkpoint and single-writer lease in one DynamoDB item (`pk` = pipeline id, `sk` = 'producer'), written with
 * conditional expressions: a lease is taken only when free, expired or already ours, and a checkpoint is written
 * only while we hold the lease, so a fenced producer can never move the position (like the KCL's lease table).
 */
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { ProducerError } from './errors';

export interface Checkpoint {
  readonly file: string;
  readonly pos: number;
  readonly gtid: string | null;
  readonly updatedAt: number;
}

export interface CheckpointStoreProps {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  readonly pipelineId: string;
  /** Unique id of this process (task ARN or host:pid). */
  readonly owner: string;
  /** @default 30 s */
  readonly leaseMs?: number;
}

export class CheckpointStore {
  private readonly key;
  constructor(private readonly props: CheckpointStoreProps) {
    this.key = { pk: { S: props.pipelineId }, sk: { S: 'producer' } };
  }

  async read(): Promise<(Checkpoint & { leaseOwner?: string; leaseExpires?: number }) | undefined> {
    const res = await this.props.client.send(
      new GetItemCommand({ TableName: this.props.tableName, Key: this.key, ConsistentRead: true }),
    );
    const i = res.Item;
    if (!i?.file?.S) return undefined;
    return {
      file: i.file.S,
      pos: Number(i.pos?.N ?? 4),
      gtid: i.gtid?.S ?? null,
      updatedAt: Number(i.updatedAt?.N ?? 0),
      ...(i.leaseOwner?.S ? { leaseOwner: i.leaseOwner.S } : {}),
      ...(i.leaseExpires?.N ? { leaseExpires: Number(i.leaseExpires.N) } : {}),
    };
  }

  /** Takes or renews the lease. @throws ProducerError LEASE_HELD when another live producer holds it */
  async acquireLease(now = Date.now()): Promise<void> {
    try {
      await this.props.client.send(
        new UpdateItemCommand({
          TableName: this.props.tableName,
          Key: this.key,
          UpdateExpression: 'SET leaseOwner = :me, leaseExpires = :exp',
          ConditionExpression: 'attribute_not_exists(leaseOwner) OR leaseOwner = :me OR leaseExpires < :now',
          ExpressionAttributeValues: {
            ':me': { S: this.props.owner },
            ':exp': { N: String(now + (this.props.leaseMs ?? 30_000)) },
            ':now': { N: String(now) },
          },
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        const cur = await this.read().catch(() => undefined);
        throw new ProducerError(
          'LEASE_HELD',
          `another producer (${cur?.leaseOwner ?? 'unknown'}) holds the lease for pipeline ${this.props.pipelineId} until ${new Date(cur?.leaseExpires ?? 0).toISOString()}; refusing to write a second stream`,
        );
      }
      throw err;
    }
  }

  /** Renews the lease; @throws ProducerError LEASE_LOST when it was taken over */
  async renewLease(now = Date.now()): Promise<void> {
    try {
      await this.acquireLease(now);
    } catch (err) {
      if (err instanceof ProducerError) throw new ProducerError('LEASE_LOST', err.message);
      throw err;
    }
  }

  /** Saves the checkpoint only while holding the lease. */
  async save(cp: Omit<Checkpoint, 'updatedAt'>, now = Date.now()): Promise<void> {
    try {
      await this.props.client.send(
        new UpdateItemCommand({
          TableName: this.props.tableName,
          Key: this.key,
          UpdateExpression: 'SET #f = :f, pos = :p, gtid = :g, updatedAt = :now',
          ConditionExpression: 'leaseOwner = :me',
          ExpressionAttributeNames: { '#f': 'file' },
          ExpressionAttributeValues: {
            ':f': { S: cp.file },
            ':p': { N: String(cp.pos) },
            ':g': cp.gtid ? { S: cp.gtid } : { NULL: true },
            ':now': { N: String(now) },
            ':me': { S: this.props.owner },
          },
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        throw new ProducerError(
          'LEASE_LOST',
          `lease for pipeline ${this.props.pipelineId} is no longer ours; checkpoint not saved`,
        );
      }
      throw err;
    }
  }

  /** Gives the lease up (clean shutdown), so a successor can start at once. */
  async releaseLease(): Promise<void> {
    await this.props.client
      .send(
        new UpdateItemCommand({
          TableName: this.props.tableName,
          Key: this.key,
          UpdateExpression: 'REMOVE leaseOwner, leaseExpires',
          ConditionExpression: 'leaseOwner = :me',
          ExpressionAttributeValues: { ':me': { S: this.props.owner } },
        }),
      )
      .catch(() => undefined);
  }
}
