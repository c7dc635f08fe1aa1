/**
 * `npm run lint:cfn`: synthesizes every stage offline (the CLI, as `npm run synth` does) and runs cfn-lint on its
 * templates with that stage's region. Fails on any cfn-lint error (warnings are printed, not fatal). Not part of
 * `npm test`: cfn-lint is a Python tool that CI machines may not have (PyPI may be unreachable); docs/deploy.md
 * records the last result.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { environments } from '../../../lib/config/environments';
import { cliSynth } from './cli-synth';

const run = promisify(execFile);

/** cfn-lint's exit code is a bit mask: 2 = errors, 4 = warnings, 8 = informational, 1 = it could not run. */
const FATAL = 1 | 2;

async function main(): Promise<number> {
  try {
    await run('cfn-lint', ['--version']);
  } catch {
    process.stderr.write('cfn-lint is not installed: pip install cfn-lint (Python 3.9+)\n');
    return 1;
  }
  let failed = false;
  for (const [stage, config] of Object.entries(environments)) {
    const out = mkdtempSync(join(tmpdir(), `cfn-lint-${stage}-`));
    try {
      const { templates } = await cliSynth(stage, out);
      const files = Object.values(templates).sort();
      const result = await run('cfn-lint', ['--regions', config.region, '--', ...files], {
        maxBuffer: 64 * 1024 * 1024,
      }).then(
        (r) => ({ code: 0, output: r.stdout }),
        (e: { code?: number; stdout?: string; stderr?: string }) => ({
          code: typeof e.code === 'number' ? e.code : 1,
          output: `${e.stdout ?? ''}${e.stderr ?? ''}`,
        }),
      );
      const verdict = result.code & FATAL ? 'ERRORS' : result.code ? 'warnings only' : 'clean';
      process.stdout.write(`== ${stage} (${config.region}, ${files.length} templates): ${verdict}\n${result.output}`);
      if (result.code & FATAL) failed = true;
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
