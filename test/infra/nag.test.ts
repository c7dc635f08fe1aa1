import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App } from 'aws-cdk-lib';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { describe, expect, it } from 'vitest';
import { configureApp } from '../../lib/app';
import { nagFindings, synthStage } from './support/synth';

const run = promisify(execFile);

describe('cdk-nag AwsSolutions', () => {
  it.each(['dev', 'staging', 'prod'])('finds nothing unacknowledged in %s', (stage) => {
    const { app } = synthStage(stage);
    expect(nagFindings(app)).toEqual([]);
  });

  it('reports a new wildcard grant: acknowledgements cover only the findings they name', () => {
    const { app, stacks } = synthStage('dev');
    const role = new Role(stacks.apply, 'Intruder', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    role.addToPrincipalPolicy(new PolicyStatement({ actions: ['s3:*'], resources: ['*'] }));
    stacks.stateful.lake.grantMerge(role);
    const findings = nagFindings(app).filter((f) => f.path.includes('Intruder'));
    expect(findings.map((f) => f.rule).sort()).toEqual([
      'AwsSolutions-IAM5[Action::s3:*]',
      'AwsSolutions-IAM5[Resource::*]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdc-dev-lake-111111111111-eu-west-1/changelog/*]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdc-dev-lake-111111111111-eu-west-1/claim-check/*]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdc-dev-lake-111111111111-eu-west-1/handoff/*]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdc-dev-lake-111111111111-eu-west-1/staging/*]',
    ]);
  });
});

describe('the CDK app (bin/app.ts)', () => {
  const env = (stage: string | undefined, out: string) => ({
    ...process.env,
    CDK_OUTDIR: out,
    CDK_CONTEXT_JSON: JSON.stringify(stage ? { stage } : {}),
  });

  it('fails synthesis on an unacknowledged finding: the app runs the nag checks', () => {
    const out = mkdtempSync(join(tmpdir(), 'cdk-out-'));
    try {
      const app = new App({ outdir: out });
      const stacks = configureApp(app, 'dev');
      const role = new Role(stacks.apply, 'Intruder', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
      role.addToPrincipalPolicy(new PolicyStatement({ actions: ['s3:*'], resources: ['*'] }));
      expect(() => app.synth()).toThrow(/AwsSolutions-IAM5\[Action::s3:\*\]/);
      const report = JSON.parse(readFileSync(join(out, 'validation-report.json'), 'utf8')) as {
        pluginReports: { pluginName: string; conclusion: string; violations: { ruleName: string }[] }[];
      };
      const nag = report.pluginReports.find((p) => p.pluginName === 'AwsSolutions');
      expect(nag?.conclusion).toBe('failure');
      expect(nag?.violations.map((v) => v.ruleName).sort()).toEqual([
        'AwsSolutions-IAM5[Action::s3:*]',
        'AwsSolutions-IAM5[Resource::*]',
      ]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  // The app's synthesis of every stage, through the CDK CLI and without AWS access: synth-offline.test.ts.

  it('refuses a missing or unknown stage, naming the choices', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cdk-out-'));
    try {
      const err = await run('npx', ['tsx', 'bin/app.ts'], { env: env('qa', out), timeout: 120_000 }).catch(
        (e: { stderr: string }) => e,
      );
      expect((err as { stderr: string }).stderr).toContain('invalid configuration for stage "qa"');
      expect((err as { stderr: string }).stderr).toContain('stage = "qa": pass -c stage=<dev|staging|prod>');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
