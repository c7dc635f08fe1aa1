/**
 * The encode worker never keeps a process alive: a producer process whose rows were all encoded on the main thread
 * before the worker had loaded exits on its own once drained (it hung before: the worker's unref() was called before
 * the thread ran, and did not hold; the producer benchmark's process never exited).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('the encode worker', () => {
  it('lets a drained process exit while the worker is still loading', () => {
    const script = join(import.meta.dirname, 'support/encode-before-worker-loads.ts');
    const run = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 20_000 });
    expect(run.stdout).toBe('drained\n');
    expect(run.signal).toBeNull(); // not killed by the timeout
    expect(run.status).toBe(0);
  });
});
