#!/usr/bin/env node
/**
 * The CDK app: the only place that reads the stage (`-c stage=dev|staging|prod`). It validates that environment's
 * configuration once (a bad value fails synth naming the field and the value), builds its stacks, and applies the
 * cdk-nag AwsSolutions checks to everything.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { environments } from '../lib/config/environments';
import { ConfigError, validateEnvironmentConfig } from '../lib/config/validate';
import { createPipeline } from '../lib/pipeline';

const app = new App();
const stage = app.node.tryGetContext('stage') as string | undefined;
if (!stage || !environments[stage]) {
  throw new ConfigError(String(stage ?? '(none)'), [
    `stage = ${JSON.stringify(stage ?? null)}: pass -c stage=<${Object.keys(environments).join('|')}>`,
  ]);
}
createPipeline(app, validateEnvironmentConfig(environments[stage]));
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
