import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../../../local/pipeline';

export interface CdcRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `npx cdc …` the way an operator does (the bin wrapper, which starts tsx) against an endpoints file. */
export function runCdc(endpoints: string, ...args: string[]): Promise<CdcRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'cli/cdc.mjs'), ...args, '--endpoints', endpoints], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
