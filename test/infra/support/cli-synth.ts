/**
 * Runs the real CDK CLI (`cdk synth -c stage=<stage>`, as `npm run synth` does) the way a machine without AWS access
 * would: no credentials in the environment, no shared config or credentials file, the EC2 instance metadata service
 * disabled, and any use of a deprecated aws-cdk-lib API turned into an error (JSII_DEPRECATED=fail).
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REPO_ROOT = resolve(import.meta.dirname, '../../..');

export function offlineEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^AWS_/.test(k) && k !== 'AWS_CA_BUNDLE') delete env[k];
  for (const k of ['CDK_DEFAULT_ACCOUNT', 'CDK_DEFAULT_REGION', 'CDK_CONTEXT_JSON', 'CDK_OUTDIR']) delete env[k];
  return {
    ...env,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
    JSII_DEPRECATED: 'fail',
    CDK_DISABLE_CLI_TELEMETRY: 'true',
  };
}

export interface CliSynthResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Context the app asked for and did not get (each would be an AWS lookup). */
  readonly missingContext: unknown[];
  /** Stack id → template file. */
  readonly templates: Record<string, string>;
}

export async function cliSynth(stage: string, outdir: string): Promise<CliSynthResult> {
  const cdk = join(REPO_ROOT, 'node_modules/.bin/cdk');
  const { stdout, stderr } = await run(cdk, ['synth', '-c', `stage=${stage}`, '-q', '--no-notices', '-o', outdir], {
    cwd: REPO_ROOT,
    env: offlineEnv(),
    timeout: 240_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8')) as { missing?: unknown[] };
  const templates = Object.fromEntries(
    readdirSync(outdir)
      .filter((f) => f.endsWith('.template.json'))
      .map((f) => [f.replace(/\.template\.json$/, ''), join(outdir, f)]),
  );
  return { stdout, stderr, missingContext: manifest.missing ?? [], templates };
}
