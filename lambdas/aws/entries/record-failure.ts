/** Lambda `record-failure`: Task `RecordFailureFunctionArn`: opens the exception for a step that still failed. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireConnectors } from '../connectors.aws.ts';
import { wireMailer } from '../mailer.ses.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyDocument, ports: { connectors: wireConnectors, mailer: wireMailer, ticketing: wireTicketing } });

export { recordFailureHandler as handler } from '#handlers/run-tasks';
