/**
 * How `npx cdc status` calls the producer from the lease and the recorded fatal failures (pure: every branch), how the
 * failures the producer kept in the checkpoint item merge with those of the local producer.log, and how that log is
 * read.
 */
import { describe, expect, it } from 'vitest';
import {
  CRASH_WINDOW_MS,
  combineFailures,
  type ProducerFailure,
  producerFailures,
  producerState,
  STABLE_AFTER_MS,
} from '../../cli/src/commands/status';

const now = Date.UTC(2026, 10, 30, 12, 0, 0);
const s = 1000;
const f = (agoMs: number, owner?: string, code = 'BINLOG_PURGED', message = 'binlog gone'): ProducerFailure => ({
  at: now - agoMs,
  code,
  message,
  ...(owner ? { owner } : {}),
});
const lease = (owner: string, sinceAgoMs: number | undefined, expiresInMs = 20 * s) => ({
  owner,
  expires: now + expiresInMs,
  ...(sinceAgoMs === undefined ? {} : { since: now - sinceAgoMs }),
});

describe('producerState', () => {
  it('is running with no restarts when a live lease is held and nothing failed', () => {
    expect(producerState({ now, lease: lease('a', 5 * s), failures: [] })).toMatchObject({
      state: 'running',
      running: true,
      restarts: 0,
      recent: [],
    });
  });

  it('is stopped when no live lease is held and nothing failed', () => {
    expect(producerState({ now, lease: lease('a', 60 * s, -1), failures: [] })).toMatchObject({
      state: 'stopped',
      running: false,
    });
    expect(producerState({ now, lease: {}, failures: [] }).state).toBe('stopped');
  });

  it('ignores failures older than the window', () => {
    const r = producerState({ now, lease: lease('b', 5 * s), failures: [f(CRASH_WINDOW_MS + s, 'a')] });
    expect(r).toMatchObject({ state: 'running', restarts: 0, recent: [] });
  });

  it('is running, restarted N times, when the holder took the lease after the last failure and held it long enough', () => {
    const failures = [
      f(5 * 60 * s, 'a', 'LEASE_LOST', 'x'),
      f(4 * 60 * s, 'b', 'BINLOG_PURGED', 'gone'),
      f(3 * 60 * s),
    ];
    const r = producerState({ now, lease: lease('c', STABLE_AFTER_MS), failures });
    expect(r).toMatchObject({ state: 'running', running: true, restarts: 3 });
    expect(r.last).toEqual(failures[2]);
  });

  it('is running when other producers failed to start while the holder ran all along (a rolling deployment)', () => {
    const failures = [f(60 * s, 'b', 'LEASE_HELD'), f(30 * s, 'b2', 'LEASE_HELD')];
    expect(producerState({ now, lease: lease('a', 3 * 60 * s), failures })).toMatchObject({
      state: 'running',
      restarts: 2,
    });
  });

  it('is crash-looping when two failures are recent and the holder has not been stable for long', () => {
    // The producer started after the last failure 30 s ago: it may fail again like the ones before it.
    const failures = [f(90 * s, 'a'), f(45 * s, 'b')];
    const r = producerState({ now, lease: lease('c', 30 * s), failures });
    expect(r).toMatchObject({ state: 'crash-looping', running: false, restarts: 0 });
    expect(r.recent).toHaveLength(2);
    expect(r.last).toEqual(failures[1]);
  });

  it('is crash-looping when the live lease belongs to the producer that failed last', () => {
    const failures = [f(9 * 60 * s, 'a'), f(5 * s, 'b')];
    // 'b' took the lease long ago by this clock but failed since: its lease is only waiting to lapse.
    expect(producerState({ now, lease: lease('b', 3 * 60 * s), failures }).state).toBe('crash-looping');
  });

  it('is crash-looping when failures repeat and no lease is live (between restarts)', () => {
    const failures = [f(60 * s, 'a'), f(20 * s, 'b')];
    expect(producerState({ now, lease: lease('b', 25 * s, -1), failures })).toMatchObject({
      state: 'crash-looping',
      running: false,
    });
  });

  it('is failed (down) when the holder of a still live lease failed once', () => {
    expect(producerState({ now, lease: lease('a', 60 * s), failures: [f(2 * s, 'a')] })).toMatchObject({
      state: 'failed',
      running: false,
    });
  });

  it('counts a failure without an owner (the local log) as the holder’s when it came after the lease was taken', () => {
    expect(producerState({ now, lease: lease('a', 60 * s), failures: [f(2 * s)] }).state).toBe('failed');
    // Before the lease was taken: a producer that failed, then this one started and has run for 3 minutes.
    expect(producerState({ now, lease: lease('a', 3 * 60 * s), failures: [f(4 * 60 * s)] })).toMatchObject({
      state: 'running',
      restarts: 1,
    });
  });

  it('is running after one failure when a new producer holds the lease, not yet long', () => {
    expect(producerState({ now, lease: lease('b', 10 * s), failures: [f(15 * s, 'a')] })).toMatchObject({
      state: 'running',
      running: true,
      restarts: 1,
    });
  });

  it('is stopped (not crash-looping) after a single failure without a live lease', () => {
    expect(producerState({ now, lease: {}, failures: [f(15 * s, 'a')] })).toMatchObject({
      state: 'stopped',
      running: false,
    });
  });

  it('does not call a holder stable without knowing when it took the lease (an item written before leaseSince)', () => {
    const failures = [f(9 * 60 * s), f(8 * 60 * s)];
    expect(producerState({ now, lease: lease('a', undefined), failures }).state).toBe('crash-looping');
  });
});

describe('combineFailures', () => {
  it('keeps one of a failure found both in the store and in the log (same message within seconds), the stored one', () => {
    const stored = [f(60 * s, 'a', 'BINLOG_PURGED', 'binlog x gone'), f(30 * s, 'b', 'LEASE_HELD', 'held')];
    const logged = [
      { at: now - 60 * s + 40, code: 'BINLOG_PURGED', message: 'binlog x gone' },
      { at: now - 10 * s, message: 'drain did not finish within 60 s' },
    ];
    expect(combineFailures(stored, logged)).toEqual([stored[0], stored[1], logged[1]]);
  });

  it('keeps the same message twice when the two failures are further apart (two restarts)', () => {
    const stored = [f(60 * s, 'a', 'BINLOG_PURGED', 'gone')];
    const logged = [{ at: now - 50 * s, code: 'BINLOG_PURGED', message: 'gone' }];
    expect(combineFailures(stored, logged)).toHaveLength(2);
  });
});

describe('producerFailures (the local producer.log)', () => {
  it('reads the code once, whether the line carries it as a field or only in the message', () => {
    const log = [
      JSON.stringify({
        level: 'ERROR',
        timestamp: '2026-11-30T12:00:00.000Z',
        message: 'producer failed to start',
        error: 'BINLOG_PURGED: binlog b.000009 (position 4) is no longer on the server',
        code: 'BINLOG_PURGED',
      }),
      JSON.stringify({
        level: 'ERROR',
        timestamp: '2026-11-30T12:00:05.000Z',
        message: 'fatal error, stopping without checkpointing past unacknowledged events',
        error: 'LEASE_LOST: lease lost',
      }),
      JSON.stringify({
        level: 'ERROR',
        timestamp: '2026-11-30T12:00:06.000Z',
        message: 'fatal error, stopping without checkpointing past unacknowledged events',
        error: 'drain did not finish within 60 s',
      }),
    ].join('\n');
    expect(producerFailures(log)).toEqual([
      {
        at: Date.parse('2026-11-30T12:00:00.000Z'),
        code: 'BINLOG_PURGED',
        message: 'binlog b.000009 (position 4) is no longer on the server',
      },
      { at: Date.parse('2026-11-30T12:00:05.000Z'), code: 'LEASE_LOST', message: 'lease lost' },
      { at: Date.parse('2026-11-30T12:00:06.000Z'), message: 'drain did not finish within 60 s' },
    ]);
  });
});
