import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSynth } from './support/cli-synth';

describe('cdk synth without AWS access', () => {
  it.each([
    ['dev', 'Dev'],
    ['staging', 'Staging'],
    ['prod', 'Prod'],
  ])('synthesizes %s with the CLI, no credentials, no lookups and no deprecated API', async (stage, part) => {
    const out = mkdtempSync(join(tmpdir(), `cdk-offline-${stage}-`));
    try {
      const r = await cliSynth(stage, out);
      expect(r.missingContext).toEqual([]);
      expect(Object.keys(r.templates).sort()).toEqual(
        ['Apply', 'Capture', 'Delivery', 'Observability', 'Stateful'].map((s) => `Cdc-${part}-${s}`),
      );
      // Warnings the app's constructs raise (cross-stack reference strength, deprecated APIs) reach stderr.
      expect(r.stderr).not.toMatch(/\[WARNING\]|WARNING|deprecated/i);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
