/**
 * A producer that fails at every start is shown as down by `npx cdc status` on every platform: the producer keeps its
 * fatal failures in the checkpoint item, and status reads them there, with no local producer.log (as on ECS, where
 * a restarted task takes a fresh, live-looking lease each time). Real MariaDB, kinesalite and dynalite; the real
 * producer runs as a child process, started at a binlog file the server does not have (BINLOG_PURGED).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectStatus, renderStatus } from '../../cli/src/commands/status';
import { CheckpointStore } from '../../containers/producer/src/checkpoint-store';
import { type ProducerHarness, startProducerHarness, statusTarget } from './support/harness';

let h: ProducerHarness;
const MISSING = 'mysql-bin.999999';

beforeAll(async () => {
  h = await startProducerHarness();
  await h.db.query('CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY)');
});

afterAll(async () => {
  await h?.close();
});

const store = () =>
  new CheckpointStore({ client: h.dynamo, tableName: 'cdc-checkpoints', pipelineId: 'test', owner: 'cli' });

describe('a producer failing at every start', () => {
  it('records each failure with its code and message in the checkpoint item', async () => {
    for (let i = 0; i < 2; i++) {
      // Each failed producer took the lease (LEASE_SECONDS=2) before it failed: the next waits for it to lapse.
      if (i > 0) await new Promise((r) => setTimeout(r, 2_500));
      const p = h.startProducer({ LEASE_SECONDS: '2', START_FROM: `file:${MISSING}:4` });
      expect(await p.exited).toBe(1);
      expect(p.output()).toMatch(/BINLOG_PURGED/);
    }
    const failures = await store().failures();
    expect(failures).toHaveLength(2);
    for (const f of failures) {
      expect(f).toMatchObject({
        code: 'BINLOG_PURGED',
        message: expect.stringMatching(
          new RegExp(`^binlog ${MISSING.replace('.', '\\.')} \\(position 4\\) is no longer`),
        ),
        owner: expect.stringMatching(/:\d+$/),
      });
    }
    expect(failures[0]!.owner).not.toBe(failures[1]!.owner);
    expect(failures[0]!.at).toBeLessThan(failures[1]!.at);
  });

  it('is reported as down (crash-looping) with its last error by status without a local log', async () => {
    const report = await collectStatus(statusTarget(h));
    expect(report.producer).toMatchObject({
      running: false,
      recentFailures: 2,
      leaseOwner: null,
      secondsBehind: null,
    });
    expect(report.producer.lastFailure).toMatch(new RegExp(`^BINLOG_PURGED: binlog ${MISSING.replace('.', '\\.')}`));
    expect(report.errors[0]).toMatchObject({ where: 'producer', message: expect.stringMatching(/^BINLOG_PURGED: /) });
    expect(renderStatus(report)).toMatch(
      /producer: +DOWN: crash-looping \(2 failures in the last 10 min; last: BINLOG_PURGED: binlog mysql-bin\.999999 \(position 4\)/,
    );
  });

  it('is no longer down once a producer starts that does not fail (its lease taken after the last failure)', async () => {
    await new Promise((r) => setTimeout(r, 2_500));
    // A long lease, so that it is still live at the later clock status is asked with below.
    const p = h.startProducer({ LEASE_SECONDS: '600', START_FROM: 'end' });
    try {
      const lease = await (async () => {
        for (let i = 0; i < 100; i++) {
          const l = await store().lease();
          if (l.owner && l.since && p.output().includes('reading the binlog')) return l;
          await new Promise((r) => setTimeout(r, 300));
        }
        throw new Error(`the producer did not start: ${p.output()}`);
      })();
      const failures = await store().failures();
      expect(lease.since).toBeGreaterThan(failures.at(-1)!.at);
      // Stable only after a while: until then two recent failures still mean a crash loop; after it, running.
      const soon = await collectStatus(statusTarget(h));
      expect(soon.producer.running).toBe(false);
      const later = await collectStatus(statusTarget(h), lease.since! + 2 * 60_000 + 1_000);
      expect(later.producer).toMatchObject({ running: true, recentFailures: 2, restarts: 2 });
      expect(renderStatus(later)).toMatch(
        /producer: +running \([^)]+\), restarted 2× in the last 10 min; last: BINLOG_PURGED: binlog mysql-bin\.999999/,
      );
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });
});
