#!/usr/bin/env node
/**
 * The CDK app: the only place that reads the stage (`-c stage=dev|staging|prod`); lib/app.ts validates it, builds
 * the stacks and applies the cdk-nag checks.
 */
import { App } from 'aws-cdk-lib';
import { configureApp } from '../lib/app';

const app = new App();
configureApp(app, app.node.tryGetContext('stage') as string | undefined);
app.synth();
