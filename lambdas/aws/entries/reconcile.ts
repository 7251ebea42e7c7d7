/** Lambda `reconcile`: Task `ReconcileFunctionArn`: re-reads every target and compares with the desired state. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireConnectors } from '../connectors.aws.ts';
import { wireMailer } from '../mailer.ses.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyDocument, ports: { connectors: wireConnectors, mailer: wireMailer, ticketing: wireTicketing } });

export { reconcile as handler } from '#handlers/run-tasks';
