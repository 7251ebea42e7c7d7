/** Lambda `close`: Task `CloseFunctionArn`: evidence bundle (S3 Object Lock), KPIs, final status. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireScheduler } from '../scheduler.eventbridge.ts';
import { wireEvidence } from '../evidence.wiring.ts';
import { wireConnectors } from '../connectors.aws.ts';

installAwsDeps({ policyDocument, ports: { scheduler: wireScheduler, evidence: wireEvidence, connectors: wireConnectors } });

export { close as handler } from '#handlers/run-tasks';
