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
import { parseQuarantine, type QuarantinedTable } from './table-quarantine';

export interface Checkpoint {
  readonly file: string;
  readonly pos: number;
  readonly gtid: string | null;
  readonly updatedAt: number;
  /** Commit time of the transaction the checkpoint is after (0 when unknown). */
  readonly commitMs?: number;
  /** Snapshot/backfill progress as of this position (snapshot-progress.ts, JSON; attribute `snapshotProgress`). */
  readonly snapshot?: string;
  /** The capture rules in force when it was saved (JSON), to find tables added to them since. */
  readonly captureRules?: string;
}

/** A position an operator asked for (`npx cdc set-position`), applied by the producer that holds the lease. */
export interface PositionRequest {
  readonly file: string;
  readonly pos: number;
  readonly gtid: string | null;
  readonly requestedAt: number;
  readonly reason: string;
}

export type StoredItem = Checkpoint & {
  leaseOwner?: string;
  leaseExpires?: number;
  positionRequest?: PositionRequest;
  /** Tables set aside (table-quarantine.ts; attribute `quarantine`, JSON). */
  quarantine?: QuarantinedTable[];
};

function positionRequestOf(attr: { S?: string } | undefined): PositionRequest | undefined {
  if (!attr?.S) return undefined;
  return JSON.parse(attr.S) as PositionRequest;
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

  async read(): Promise<StoredItem | undefined> {
    const res = await this.props.client.send(
      new GetItemCommand({ TableName: this.props.tableName, Key: this.key, ConsistentRead: true }),
    );
    const i = res.Item;
    if (!i?.file?.S) return undefined;
    const request = positionRequestOf(i.positionRequest);
    const quarantine = parseQuarantine(i.quarantine?.S);
    return {
      file: i.file.S,
      pos: Number(i.pos?.N ?? 4),
      gtid: i.gtid?.S ?? null,
      updatedAt: Number(i.updatedAt?.N ?? 0),
      ...(i.commitMs?.N ? { commitMs: Number(i.commitMs.N) } : {}),
      ...(i.snapshotProgress?.S ? { snapshot: i.snapshotProgress.S } : {}),
      ...(i.captureRules?.S ? { captureRules: i.captureRules.S } : {}),
      ...(i.leaseOwner?.S ? { leaseOwner: i.leaseOwner.S } : {}),
      ...(i.leaseExpires?.N ? { leaseExpires: Number(i.leaseExpires.N) } : {}),
      ...(request ? { positionRequest: request } : {}),
      ...(quarantine.length > 0 ? { quarantine } : {}),
    };
  }

  /** The quarantined tables (also before the first checkpoint: a table can be set aside before one is saved). */
  async quarantined(): Promise<QuarantinedTable[]> {
    const res = await this.props.client.send(
      new GetItemCommand({
        TableName: this.props.tableName,
        Key: this.key,
        ConsistentRead: true,
        ProjectionExpression: 'quarantine',
      }),
    );
    return parseQuarantine(res.Item?.quarantine?.S);
  }

  /**
   * Saves the quarantined tables at once (not with the next checkpoint), only while holding the lease: a producer
   * restarted before the checkpoint passes the undecodable event then leaves the table out instead of failing on it.
   */
  async saveQuarantine(list: readonly QuarantinedTable[]): Promise<void> {
    try {
      await this.props.client.send(
        new UpdateItemCommand({
          TableName: this.props.tableName,
          Key: this.key,
          UpdateExpression: 'SET quarantine = :q',
          ConditionExpression: 'leaseOwner = :me',
          ExpressionAttributeValues: { ':q': { S: JSON.stringify(list) }, ':me': { S: this.props.owner } },
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        throw new ProducerError(
          'LEASE_LOST',
          `lease for pipeline ${this.props.pipelineId} is no longer ours; quarantine not saved`,
        );
      }
      throw err;
    }
  }

  /** The pending position request, if any (also when no checkpoint exists yet). */
  async positionRequest(): Promise<PositionRequest | undefined> {
    const res = await this.props.client.send(
      new GetItemCommand({
        TableName: this.props.tableName,
        Key: this.key,
        ConsistentRead: true,
        ProjectionExpression: 'positionRequest',
      }),
    );
    return positionRequestOf(res.Item?.positionRequest);
  }

  /**
   * Asks the producer to move to a position (`npx cdc set-position`). No lease needed: the producer holding the
   * lease applies it within a second (drains, moves the checkpoint, restarts); without a running producer the next
   * one applies it at start.
   */
  async requestPosition(req: PositionRequest): Promise<void> {
    await this.props.client.send(
      new UpdateItemCommand({
        TableName: this.props.tableName,
        Key: this.key,
        UpdateExpression: 'SET positionRequest = :r',
        ExpressionAttributeValues: { ':r': { S: JSON.stringify(req) } },
      }),
    );
  }

  /** Makes a pending position request the checkpoint (under our lease) and removes the request. */
  async applyPositionRequest(req: PositionRequest, now = Date.now()): Promise<void> {
    try {
      await this.props.client.send(
        new UpdateItemCommand({
          TableName: this.props.tableName,
          Key: this.key,
          UpdateExpression:
            'SET #f = :f, pos = :p, gtid = :g, updatedAt = :now, commitMs = :zero REMOVE positionRequest',
          ConditionExpression: 'leaseOwner = :me AND positionRequest = :req',
          ExpressionAttributeNames: { '#f': 'file' },
          ExpressionAttributeValues: {
            ':f': { S: req.file },
            ':p': { N: String(req.pos) },
            ':g': req.gtid ? { S: req.gtid } : { NULL: true },
            ':now': { N: String(now) },
            ':zero': { N: '0' },
            ':me': { S: this.props.owner },
            ':req': { S: JSON.stringify(req) },
          },
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        throw new ProducerError('LEASE_LOST', 'lease lost or position request changed while applying it');
      }
      throw err;
    }
  }

  /** Takes or renews the lease. @throws ProducerError LEASE_HELD when another live producer holds it */
  async acquireLease(now = Date.now()): Promise<PositionRequest | undefined> {
    return this.takeLease(now, true);
  }

  private async takeLease(now: number, retry: boolean): Promise<PositionRequest | undefined> {
    try {
      const res = await this.props.client.send(
        new UpdateItemCommand({
          TableName: this.props.tableName,
          Key: this.key,
          UpdateExpression: 'SET leaseOwner = :me, leaseExpires = :exp',
          // A lease without an expiry (an empty lease) is free: nothing would ever let it lapse.
          ConditionExpression:
            'attribute_not_exists(leaseOwner) OR leaseOwner = :me OR attribute_not_exists(leaseExpires) OR leaseExpires < :now',
          ExpressionAttributeValues: {
            ':me': { S: this.props.owner },
            ':exp': { N: String(now + (this.props.leaseMs ?? 30_000)) },
            ':now': { N: String(now) },
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return positionRequestOf(res.Attributes?.positionRequest);
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        const cur = await this.lease().catch(() => undefined);
        // Released or lapsed between our write and this read: the lease is free now, so try once more.
        if (retry && (cur?.owner === undefined || cur.expires === undefined || cur.expires < now)) {
          return this.takeLease(now, false);
        }
        const until = cur?.expires !== undefined ? new Date(cur.expires).toISOString() : 'an unknown time';
        throw new ProducerError(
          'LEASE_HELD',
          `another producer (${cur?.owner ?? 'unknown'}) holds the lease for pipeline ${this.props.pipelineId} until ${until}; refusing to write a second stream`,
        );
      }
      throw err;
    }
  }

  /**
   * The lease attributes alone: they exist before the first checkpoint (a producer that fails during its first
   * snapshot holds a lease but never saved a position, and `read()` returns nothing for such an item).
   */
  async lease(): Promise<{ owner?: string; expires?: number }> {
    const res = await this.props.client.send(
      new GetItemCommand({
        TableName: this.props.tableName,
        Key: this.key,
        ConsistentRead: true,
        ProjectionExpression: 'leaseOwner, leaseExpires',
      }),
    );
    const i = res.Item;
    return {
      ...(i?.leaseOwner?.S ? { owner: i.leaseOwner.S } : {}),
      ...(i?.leaseExpires?.N ? { expires: Number(i.leaseExpires.N) } : {}),
    };
  }

  /**
   * Renews the lease and returns a pending position request, if any (one round trip: the update returns the item).
   * @throws ProducerError LEASE_LOST when it was taken over
   */
  async renewLease(now = Date.now()): Promise<PositionRequest | undefined> {
    try {
      return await this.acquireLease(now);
    } catch (err) {
      if (err instanceof ProducerError) throw new ProducerError('LEASE_LOST', err.message);
      throw err;
    }
  }

  /** Saves the checkpoint only while holding the lease. */
  async save(cp: Omit<Checkpoint, 'updatedAt'>, now = Date.now()): Promise<void> {
    const extra: string[] = [];
    const values: Record<string, { S: string } | { N: string }> = {};
    if (cp.commitMs !== undefined) {
      extra.push('commitMs = :c');
      values[':c'] = { N: String(cp.commitMs) };
    }
    if (cp.snapshot !== undefined) {
      extra.push('snapshotProgress = :s');
      values[':s'] = { S: cp.snapshot };
    }
    if (cp.captureRules !== undefined) {
      extra.push('captureRules = :r');
      values[':r'] = { S: cp.captureRules };
    }
    try {
      await this.props.client.send(
        new UpdateItemCommand({
          TableName: this.props.tableName,
          Key: this.key,
          UpdateExpression: `SET #f = :f, pos = :p, gtid = :g, updatedAt = :now${extra.map((e) => `, ${e}`).join('')}`,
          ConditionExpression: 'leaseOwner = :me',
          ExpressionAttributeNames: { '#f': 'file' },
          ExpressionAttributeValues: {
            ':f': { S: cp.file },
            ':p': { N: String(cp.pos) },
            ':g': cp.gtid ? { S: cp.gtid } : { NULL: true },
            ':now': { N: String(now) },
            ':me': { S: this.props.owner },
            ...values,
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
