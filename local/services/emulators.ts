import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, stopProcess } from './process';

export type EmulatorKind = 'kinesis' | 'dynamodb' | 's3';

export interface Emulator {
  readonly kind: EmulatorKind;
  /** e.g. http://127.0.0.1:4567 — pass to `localAwsClientConfig`. */
  readonly endpoint: string;
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

const MAIN = join(import.meta.dirname, 'emulator-main.cjs');

/**
 * Starts an AWS API emulator from npm in its own process: kinesalite (Kinesis), dynalite (DynamoDB), s3rver (S3).
 * Each speaks the real wire protocol, so the code under test uses the ordinary AWS SDK v3 clients.
 * @param dir data directory (s3 needs one; kinesis and dynamodb persist there when given)
 */
export async function startEmulator(kind: EmulatorKind, opts: { port?: number; dir?: string } = {}): Promise<Emulator> {
  const port = opts.port ?? (await freePort());
  if (opts.dir) mkdirSync(opts.dir, { recursive: true });
  if (kind === 's3' && !opts.dir) throw new Error('the s3 emulator needs a data directory (opts.dir)');
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', MAIN, kind, String(port), ...(opts.dir ? [opts.dir] : [])],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} emulator did not start in 30 s: ${stderr}`)), 30_000);
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${kind} emulator exited (${code}): ${stderr}`));
    });
  });
  child.stdout.resume();
  return {
    kind,
    endpoint: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid ?? -1,
    stop: () => stopProcess(child, 5_000),
  };
}
