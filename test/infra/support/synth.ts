import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { EnvironmentConfigInput } from '../../../lib/config/environment-config';
import { environments } from '../../../lib/config/environments';
import { validateEnvironmentConfig } from '../../../lib/config/validate';
import { createPipeline, type PipelineStacks } from '../../../lib/pipeline';

export interface SynthesizedStage {
  readonly app: App;
  readonly stacks: PipelineStacks;
  readonly templates: Record<keyof PipelineStacks, Template>;
}

/** The feature flags and context of cdk.json, which the CLI passes to bin/app.ts: tests synthesize with the same. */
export const CDK_JSON_CONTEXT = (
  JSON.parse(readFileSync(new URL('../../../cdk.json', import.meta.url), 'utf8')) as {
    context: Record<string, unknown>;
  }
).context;

/**
 * Synthesizes one stage as `cdk synth -c stage=<stage>` would (bin/app.ts), optionally with config changes.
 * `bundle: false` skips esbuild for the Lambdas (for tests that read resources, not the code): much faster.
 */
export function synthStage(
  stage: string,
  change?: (c: EnvironmentConfigInput) => EnvironmentConfigInput,
  options: { readonly bundle?: boolean } = {},
): SynthesizedStage {
  const app = new App({
    context: { ...CDK_JSON_CONTEXT, ...(options.bundle === false ? { 'aws:cdk:bundling-stacks': [] } : {}) },
  });
  const raw = structuredClone(environments[stage]!);
  const stacks = createPipeline(app, validateEnvironmentConfig(change ? change(raw) : raw));
  const templates = Object.fromEntries(Object.entries(stacks).map(([k, s]) => [k, Template.fromStack(s)])) as Record<
    keyof PipelineStacks,
    Template
  >;
  return { app, stacks, templates };
}

export interface NagFinding {
  readonly rule: string;
  readonly path: string;
  readonly severity: string;
}

/** Every unacknowledged cdk-nag AwsSolutions finding in the app. */
export function nagFindings(app: App): NagFinding[] {
  const report = new AwsSolutionsChecks(app).validateScope(app);
  return report.violations.flatMap((v) =>
    v.violatingResources.map((r) => ({
      rule: v.ruleName,
      path: r.constructPath ?? '?',
      severity: v.severity ?? 'error',
    })),
  );
}

/** A template with asset hashes masked, so snapshots change only when the infrastructure does. */
export function normalizedTemplate(t: Template): unknown {
  return JSON.parse(JSON.stringify(t.toJSON()).replace(/[0-9a-f]{64}(\.zip|\.json)?/g, '<asset-hash>$1'));
}
