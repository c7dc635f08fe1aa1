/**
 * Checkpoint and single-writer lease in one DynamoDB item (`pk` = pipeline id, `sk` = 'producer'), written with
 * conditional expressions: a lease is taken only when free, expired or already ours, and a checkpoint is written
 * only while we hold the lease, so a fenced producer can never move the position (like the KCL's lease table).
 * The item also keeps the producer's last fatal failures and when the lease holder took its lease, which is how
 * `npx cdc status` tells a crash loop from a running producer where no log can be read (ECS).
 */
import {
  type AttributeValue,
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

/** A fatal failure of a producer (it exited non-zero), as kept in the item (attribute `failures`, JSON). */
export interface RecordedFailure {
  readonly at: number;
  /** The ProducerError code, a driver's error code (ER_ACCESS_DENIED_ERROR, ECONNREFUSED), or UNEXPECTED. */
  readonly code: string;
  /** Without the code prefix; cut to FAILURE_MESSAGE_MAX_CHARS. */
  readonly message: string;
  /** The producer that failed (its lease owner id). */
  readonly owner?: string;
}

/** Failures kept in the item: enough to see a crash loop, and a bounded attribute (the item limit is 400 KB). */
export const FAILURES_KEPT = 10;
export const FAILURE_MESSAGE_MAX_CHARS = 1000;

/** The failure record of a fatal error (pure): the code kept apart from the message. */
export function failureOf(err: unknown, at = Date.now()): Omit<RecordedFailure, 'owner'> {
  if (err instanceof ProducerError) {
    const prefix = `${err.code}: `;
    return {
      at,
      code: err.code,
      message: err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message,
    };
  }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      at,
      code: typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code) ? code : 'UNEXPECTED',
      message: err.message,
    };
  }
  return { at, code: 'UNEXPECTED', message: String(err) };
}

function parseFailures(text: string | undefined): RecordedFailure[] {
  if (!text) return [];
  try {
    const list = JSON.parse(text) as unknown;
    return Array.isArray(list)
      ? (list as RecordedFailure[]).filter((f) => typeof f?.at === 'number' && typeof f.message === 'string')
      : [];
  } catch {
    return [];
  }
}

const cut = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);

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
    return parseQuarantine((await this.attributes('quarantine'))?.quarantine?.S);
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
      throw this.leaseLostOr(err, 'quarantine not saved');
    }
  }

  /** The pending position request, if any (also when no checkpoint exists yet). */
  async positionRequest(): Promise<PositionRequest | undefined> {
    return positionRequestOf((await this.attributes('positionRequest'))?.positionRequest);
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

  /**
   * Takes or renews the lease; a producer calls it once at its start, which also records the lease as taken now
   * (`leaseSince`). @throws ProducerError LEASE_HELD when another live producer holds it
   */
  async acquireLease(now = Date.now()): Promise<PositionRequest | undefined> {
    return this.takeLease(now, true, true);
  }

  private async takeLease(now: number, retry: boolean, starting: boolean): Promise<PositionRequest | undefined> {
    try {
      const res = await this.props.client.send(
        new UpdateItemCommand({
          TableName: this.props.tableName,
          Key: this.key,
          UpdateExpression: `SET leaseOwner = :me, leaseExpires = :exp${starting ? ', leaseSince = :now' : ''}`,
          // A lease without an expiry (an empty lease) is free: nothing would ever let it lapse.
          ConditionExpression:
            'attribute_not_exists(leaseOwner) OR leaseOwner = :me OR attribute_not_exists(leaseExpires) OR leaseExpires < :now',
          ExpressionAttributeValues: {
            ':me': { S: this.props.owner },
            ':exp': { N: String(now + (this.props.leaseMs ?? 30_000)) },
            ':now': { N: String(now) },
          },
          // The old item: whether this renewal took the lease from someone else (positionRequest is not changed here).
          ReturnValues: 'ALL_OLD',
        }),
      );
      const old = res.Attributes;
      if (!starting && old?.leaseOwner?.S !== this.props.owner) {
        // Renewing a lapsed lease another producer had taken over: the lease is held from now on. Best effort
        // (status only reads it): a failure here must not stop a producer that holds its lease.
        await this.props.client
          .send(
            new UpdateItemCommand({
              TableName: this.props.tableName,
              Key: this.key,
              UpdateExpression: 'SET leaseSince = :now',
              ConditionExpression: 'leaseOwner = :me',
              ExpressionAttributeValues: { ':me': { S: this.props.owner }, ':now': { N: String(now) } },
            }),
          )
          .catch(() => undefined);
      }
      return positionRequestOf(old?.positionRequest);
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        const cur = await this.lease().catch(() => undefined);
        // Released or lapsed between our write and this read: the lease is free now, so try once more.
        if (retry && (cur?.owner === undefined || cur.expires === undefined || cur.expires < now)) {
          return this.takeLease(now, false, starting);
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
  async lease(): Promise<{ owner?: string; expires?: number; since?: number }> {
    const i = await this.attributes('leaseOwner, leaseExpires, leaseSince');
    return {
      ...(i?.leaseOwner?.S ? { owner: i.leaseOwner.S } : {}),
      ...(i?.leaseExpires?.N ? { expires: Number(i.leaseExpires.N) } : {}),
      ...(i?.leaseSince?.N ? { since: Number(i.leaseSince.N) } : {}),
    };
  }

  /** The recorded fatal failures, oldest first (at most FAILURES_KEPT). */
  async failures(): Promise<RecordedFailure[]> {
    return parseFailures((await this.attributes('failures'))?.failures?.S);
  }

  /**
   * Records a fatal failure of this producer, keeping the newest FAILURES_KEPT. No lease condition: a producer that
   * fails at its start may not hold the lease (LEASE_HELD, or before it asked). Best effort, it never throws (the
   * producer is exiting anyway): true once recorded, false when the table could not be written. The list is
   * replaced only if unchanged since it was read, so producers failing at the same time do not drop each other's.
   */
  async recordFailure(failure: Omit<RecordedFailure, 'owner'>): Promise<boolean> {
    const entry: RecordedFailure = {
      at: failure.at,
      code: cut(failure.code, 100),
      message: cut(failure.message, FAILURE_MESSAGE_MAX_CHARS),
      owner: this.props.owner,
    };
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const before = (await this.attributes('failures'))?.failures?.S;
        const list = [...parseFailures(before), entry].sort((a, b) => a.at - b.at).slice(-FAILURES_KEPT);
        try {
          await this.props.client.send(
            new UpdateItemCommand({
              TableName: this.props.tableName,
              Key: this.key,
              UpdateExpression: 'SET failures = :new',
              ConditionExpression: before === undefined ? 'attribute_not_exists(failures)' : 'failures = :old',
              ExpressionAttributeValues: {
                ':new': { S: JSON.stringify(list) },
                ...(before === undefined ? {} : { ':old': { S: before } }),
              },
            }),
          );
          return true;
        } catch (err) {
          if (!(err instanceof ConditionalCheckFailedException)) return false;
          // Another producer recorded one meanwhile: read again.
        }
      }
      return false;
    } catch {
      return false;
    }
  }

  /**
   * Renews the lease and returns a pending position request, if any (one round trip: the update returns the item).
   * @throws ProducerError LEASE_LOST when it was taken over
   */
  async renewLease(now = Date.now()): Promise<PositionRequest | undefined> {
    try {
      return await this.takeLease(now, true, false);
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
      throw this.leaseLostOr(err, 'checkpoint not saved');
    }
  }

  /** Some attributes of the pipeline's item, read consistently (undefined when the item does not exist). */
  private async attributes(projection: string): Promise<Record<string, AttributeValue> | undefined> {
    const res = await this.props.client.send(
      new GetItemCommand({
        TableName: this.props.tableName,
        Key: this.key,
        ConsistentRead: true,
        ProjectionExpression: projection,
      }),
    );
    return res.Item;
  }

  /** A failed condition on `leaseOwner = :me` as LEASE_LOST (naming what was not done); any other error as is. */
  private leaseLostOr(err: unknown, what: string): unknown {
    if (err instanceof ConditionalCheckFailedException) {
      return new ProducerError('LEASE_LOST', `lease for pipeline ${this.props.pipelineId} is no longer ours; ${what}`);
    }
    return err;
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
