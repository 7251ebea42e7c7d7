/** Lambda `converge`: Task `ConvergeFunctionArn`: converges one target (and mails a day-one TAP to the manager on Entra). */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireConnectors } from '../connectors.aws.ts';
import { wireMailer } from '../mailer.ses.ts';

installAwsDeps({ policyDocument, ports: { connectors: wireConnectors, mailer: wireMailer } });

export { converge as handler } from '#handlers/run-tasks';
