/**
 * Everything `bin/app.ts` does with the stage it read: validate that environment's configuration (a bad value fails
 * naming the field and the value), build its stacks, and apply the cdk-nag AwsSolutions checks, so an unacknowledged
 * finding fails synthesis.
 */
import { type App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { environments } from './config/environments';
import { ConfigError, validateEnvironmentConfig } from './config/validate';
import { createPipeline, type PipelineStacks } from './pipeline';

export function configureApp(app: App, stage: string | undefined): PipelineStacks {
  if (!stage || !environments[stage]) {
    throw new ConfigError(String(stage ?? '(none)'), [
      `stage = ${JSON.stringify(stage ?? null)}: pass -c stage=<${Object.keys(environments).join('|')}>`,
    ]);
  }
  const stacks = createPipeline(app, validateEnvironmentConfig(environments[stage]));
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stacks;
}
