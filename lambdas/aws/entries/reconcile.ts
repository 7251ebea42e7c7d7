/** Lambda `reconcile`: Task `ReconcileFunctionArn`: re-reads every target and compares with the desired state. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireConnectors } from '../connectors.aws.ts';
import { wireMailer } from '../mailer.ses.ts';

installAwsDeps({ policyText, ports: { connectors: wireConnectors, mailer: wireMailer } });

export { reconcile as handler } from '#handlers/run-tasks';
