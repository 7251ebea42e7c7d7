/**
 * The CDK app: reads the deployment configuration, builds the stack, applies the cdk-nag
 * AwsSolutions checks (a finding that is not acknowledged with a reason fails the synth).
 *
 *   npx cdk synth                       (config/deploy.example.json)
 *   npx cdk deploy -c config=prod       (config/deploy.prod.json)
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadDeployConfig } from '../lib/config.ts';
import { JmlStack } from '../lib/jml-stack.ts';

const app = new App();
const loaded = loadDeployConfig((key) => app.node.tryGetContext(key));
const { env } = loaded.config;
new JmlStack(app, loaded.config.stackName, {
  loaded,
  description: `jml: Joiner/Mover/Leaver automation (${loaded.source})`,
  ...(env.account || env.region ? { env: { account: env.account, region: env.region } } : {}),
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
app.synth();
