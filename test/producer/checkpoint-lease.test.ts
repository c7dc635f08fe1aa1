/**
 * The single-writer lease in DynamoDB (dynalite): who holds it and until when is read from the lease attributes
 * themselves, also before any checkpoint exists (a producer that crashes during its first snapshot never saved one).
 */
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { CHECKPOINT_TABLE, useCheckpointTable } from './support/dynalite';

const dynalite = useCheckpointTable();
const store = dynalite.store;
const TABLE = CHECKPOINT_TABLE;

describe('producer lease', () => {
  it('names the holder and its real expiry when the lease is held before any checkpoint was saved', async () => {
    const now = Date.UTC(2026, 10, 30, 12, 0, 0);
    await store('no-checkpoint', 'task-a').acquireLease(now);
    const err = await store('no-checkpoint', 'task-b')
      .acquireLease(now + 1000)
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(
      /^LEASE_HELD: another producer \(task-a\) holds the lease for pipeline no-checkpoint until 2026-11-30T12:00:30\.000Z/,
    );
    expect((err as Error).message).not.toMatch(/1970/);
  });

  it('takes over an expired lease of a crashed producer without LEASE_HELD', async () => {
    const t0 = Date.UTC(2026, 10, 30, 12, 0, 0);
    await store('expired', 'task-a').acquireLease(t0);
    await expect(store('expired', 'task-b').acquireLease(t0 + 31_000)).resolves.toBeUndefined();
    const err = await store('expired', 'task-a')
      .acquireLease(t0 + 32_000)
      .catch((e: Error) => e);
    expect((err as Error).message).toMatch(/\(task-b\) holds the lease .* until 2026-11-30T12:01:01\.000Z/);
  });

  it('takes a lease whose owner is recorded without an expiry (an empty lease) instead of waiting forever', async () => {
    await dynalite.client().send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: { pk: { S: 'empty' }, sk: { S: 'producer' } },
        UpdateExpression: 'SET leaseOwner = :o',
        ExpressionAttributeValues: { ':o': { S: 'ghost' } },
      }),
    );
    await expect(store('empty', 'task-b').acquireLease(Date.now())).resolves.toBeUndefined();
  });
});
