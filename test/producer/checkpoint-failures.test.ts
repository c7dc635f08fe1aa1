/**
 * The producer's fatal failures and the time the lease holder took its lease, kept in the pipeline's checkpoint item
 * (dynalite), so `npx cdc status` can tell a crash loop from a running producer on every platform (on ECS there is no
 * local log to read).
 */
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import {
  CheckpointStore,
  FAILURE_MESSAGE_MAX_CHARS,
  FAILURES_KEPT,
  failureOf,
} from '../../containers/producer/src/checkpoint-store';
import { ProducerError } from '../../containers/producer/src/errors';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { CHECKPOINT_TABLE, useCheckpointTable } from './support/dynalite';

const dynalite = useCheckpointTable();
const store = dynalite.store;
const TABLE = CHECKPOINT_TABLE;
const t0 = Date.UTC(2026, 10, 30, 12, 0, 0);

describe('recorded producer failures', () => {
  it('are kept with code, message and owner, also before any checkpoint and without holding the lease', async () => {
    await store('held', 'task-a').acquireLease(t0);
    await expect(
      store('held', 'task-b').recordFailure({ at: t0 + 1000, code: 'LEASE_HELD', message: 'held by task-a' }),
    ).resolves.toBe(true);
    expect(await store('held', 'cli').failures()).toEqual([
      { at: t0 + 1000, code: 'LEASE_HELD', message: 'held by task-a', owner: 'task-b' },
    ]);
    // The lease is untouched: task-a still holds it.
    expect((await store('held', 'cli').lease()).owner).toBe('task-a');
    expect(await store('held', 'cli').read()).toBeUndefined();
  });

  it(`keep only the newest ${FAILURES_KEPT}, oldest first, with long messages cut`, async () => {
    const s = store('many', 'task-a');
    for (let i = 0; i < FAILURES_KEPT + 5; i++) {
      await s.recordFailure({ at: t0 + i * 1000, code: 'BINLOG_PURGED', message: `failure ${i} ${'x'.repeat(5000)}` });
    }
    const kept = await s.failures();
    expect(kept).toHaveLength(FAILURES_KEPT);
    expect(kept.map((f) => f.at)).toEqual(Array.from({ length: FAILURES_KEPT }, (_, i) => t0 + (i + 5) * 1000));
    expect(kept[0]!.message).toMatch(/^failure 5 x+…$/);
    expect(kept[0]!.message.length).toBe(FAILURE_MESSAGE_MAX_CHARS);
    const item = await dynalite
      .client()
      .send(new GetItemCommand({ TableName: TABLE, Key: { pk: { S: 'many' }, sk: { S: 'producer' } } }));
    expect(item.Item!.failures!.S!.length).toBeLessThan(FAILURES_KEPT * (FAILURE_MESSAGE_MAX_CHARS + 200));
  });

  it('lose none of several producers failing at the same time', async () => {
    await Promise.all(
      ['a', 'b', 'c', 'd'].map((o, i) =>
        store('together', `task-${o}`).recordFailure({ at: t0 + i, code: 'BINLOG_PURGED', message: o }),
      ),
    );
    expect((await store('together', 'cli').failures()).map((f) => f.owner).sort()).toEqual([
      'task-a',
      'task-b',
      'task-c',
      'task-d',
    ]);
  });

  it('are recorded best effort: an unreachable table gives false, never an exception', async () => {
    const unreachable = new DynamoDBClient({ ...localAwsClientConfig('http://127.0.0.1:9'), maxAttempts: 1 });
    const s = new CheckpointStore({ client: unreachable, tableName: TABLE, pipelineId: 'x', owner: 'task-a' });
    await expect(s.recordFailure({ at: t0, code: 'BINLOG_PURGED', message: 'gone' })).resolves.toBe(false);
    unreachable.destroy();
  });

  it('take their code from a ProducerError and from a driver error, and UNEXPECTED otherwise', () => {
    expect(failureOf(new ProducerError('BINLOG_PURGED', 'binlog b.1 is gone'), t0)).toEqual({
      at: t0,
      code: 'BINLOG_PURGED',
      message: 'binlog b.1 is gone',
    });
    const denied = Object.assign(new Error("Access denied for user 'cdc'@'x'"), { code: 'ER_ACCESS_DENIED_ERROR' });
    expect(failureOf(denied, t0)).toEqual({
      at: t0,
      code: 'ER_ACCESS_DENIED_ERROR',
      message: "Access denied for user 'cdc'@'x'",
    });
    expect(failureOf(new Error('drain did not finish within 60 s'), t0).code).toBe('UNEXPECTED');
    expect(failureOf('a string', t0)).toEqual({ at: t0, code: 'UNEXPECTED', message: 'a string' });
  });
});

describe('the time the lease was taken', () => {
  it('is set when a producer takes the lease, kept while it renews, and reset when another one takes over', async () => {
    await store('since', 'task-a').acquireLease(t0);
    expect(await store('since', 'cli').lease()).toMatchObject({ owner: 'task-a', since: t0 });
    await store('since', 'task-a').renewLease(t0 + 10_000);
    expect(await store('since', 'cli').lease()).toMatchObject({ owner: 'task-a', since: t0, expires: t0 + 40_000 });
    // task-a died; its lease lapsed and task-b took it over.
    await store('since', 'task-b').acquireLease(t0 + 41_000);
    expect(await store('since', 'cli').lease()).toMatchObject({ owner: 'task-b', since: t0 + 41_000 });
  });

  it('is reset when a producer takes a lapsed lease over by renewing (not only at its start)', async () => {
    await store('renew-over', 'task-a').acquireLease(t0);
    await store('renew-over', 'task-b').renewLease(t0 + 31_000);
    expect(await store('renew-over', 'cli').lease()).toMatchObject({ owner: 'task-b', since: t0 + 31_000 });
  });
});
