/**
 * `GET /health` (what the ECS container health check asks) follows the liveness of the binlog reader, not the movement
 * of the checkpoint: a producer on a source with no commits stays healthy (heartbeats prove the replication connection
 * is alive), and one whose replication connection went silent turns unhealthy so ECS replaces it. Real MariaDB; the
 * silent connection is the server stopped with SIGSTOP (its sockets stay open, nothing arrives: a half-open link).
 */
import { get } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../containers/producer/src/config';
import { assessHealth } from '../../containers/producer/src/health';
import { sleep, waitFor } from '../../local/services/process';
import { type ProducerHarness, type ProducerProcess, startProducerHarness, waitForLog } from './support/harness';

let h: ProducerHarness;
// A heartbeat every second; four seconds of silence make the producer unhealthy (room for a loaded machine).
const STALE_S = 4;

beforeAll(async () => {
  h = await startProducerHarness();
  await h.db.query('CREATE DATABASE shop');
});
afterAll(async () => {
  await h?.close();
});

interface HealthAnswer {
  status: number;
  body: { healthy: boolean; problems: string[]; checkpoint: unknown };
}

function health(port: number): Promise<HealthAnswer> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/health', timeout: 2000 }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('health request timed out')));
  });
}

async function healthPort(p: ProducerProcess): Promise<number> {
  await waitForLog(p, /health endpoint listening/);
  return Number(/"message":"health endpoint listening","port":(\d+)/.exec(p.output())![1]);
}

describe('producer health', () => {
  it('stays healthy on a source with no commit at all, well past the staleness window', async () => {
    const p = h.startProducer({
      PIPELINE_ID: 'idle',
      // From the binlog's end as the reader finds it (after the producer's own signal-table DDL): nothing to read.
      START_FROM: 'end',
      HEARTBEAT_SECONDS: '1',
      HEALTH_STALE_SECONDS: String(STALE_S),
    });
    const port = await healthPort(p);
    await waitForLog(p, /reading the binlog/);
    // Polled every half second for three windows: every answer must be 200.
    const answers: HealthAnswer[] = [];
    for (let i = 0; i < STALE_S * 6; i++) {
      answers.push(await health(port));
      await sleep(500);
    }
    expect(answers.filter((a) => a.status !== 200).map((a) => a.body.problems)).toEqual([]);
    // Never a commit to checkpoint: the old rule (checkpoint saved within the window) called this unhealthy.
    expect(answers.at(-1)!.body.checkpoint).toBeNull();
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });

  it('turns unhealthy, saying why, when the replication connection goes silent', async () => {
    const p = h.startProducer({
      PIPELINE_ID: 'silent',
      SNAPSHOT_MODE: 'never',
      HEARTBEAT_SECONDS: '1',
      HEALTH_STALE_SECONDS: String(STALE_S),
    });
    const port = await healthPort(p);
    await waitForLog(p, /reading the binlog/);
    expect((await health(port)).status).toBe(200);
    process.kill(h.maria.pid, 'SIGSTOP');
    try {
      const sick = await waitFor(
        'an unhealthy answer',
        async () => {
          const a = await health(port);
          return a.status === 503 ? a : undefined;
        },
        (STALE_S + 5) * 1000,
      );
      expect(sick.body.healthy).toBe(false);
      expect(sick.body.problems.join()).toMatch(/nothing read from the binlog connection for \d+ s/);
    } finally {
      process.kill(h.maria.pid, 'SIGCONT');
    }
    p.child.kill('SIGKILL');
  });
});

describe('health policy', () => {
  const base = { now: 100_000, fatal: false, sinkFailed: false, housekeptAt: 99_500, lastReadAt: 99_000 };
  it('does not look at the checkpoint: a reader that reads (or is paused on purpose) is healthy', () => {
    expect(assessHealth({ ...base, readerPaused: false }, 60_000)).toEqual({ healthy: true, problems: [] });
    expect(assessHealth({ ...base, lastReadAt: 0, readerPaused: true }, 60_000).healthy).toBe(true);
  });
  it('names every reason it is unhealthy', () => {
    expect(
      assessHealth(
        { ...base, fatal: true, sinkFailed: true, housekeptAt: 0, lastReadAt: 0, readerPaused: false },
        60_000,
      ).problems,
    ).toEqual([
      'a fatal error occurred',
      'the Kinesis sink gave up',
      'nothing read from the binlog connection for 100 s (not even a heartbeat)',
      'checkpoint and lease not renewed for 100 s',
    ]);
  });
  it('refuses a heartbeat period over half the staleness window, naming both', () => {
    const env = { SOURCE_HOST: 'h', SOURCE_USER: 'u', STREAM_NAME: 's', CHECKPOINT_TABLE: 'cps', PIPELINE_ID: 'p' };
    expect(() => loadConfig({ ...env, HEARTBEAT_SECONDS: '40' })).toThrow(
      'CONFIG_INVALID: invalid producer configuration: HEARTBEAT_SECONDS="40": must be at most half of HEALTH_STALE_SECONDS (60)',
    );
    expect(loadConfig({ ...env, HEARTBEAT_SECONDS: '30' }).HEARTBEAT_SECONDS).toBe(30);
  });
});
