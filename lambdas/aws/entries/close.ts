/** Lambda `close`: Task `CloseFunctionArn`: evidence bundle (S3 Object Lock), KPIs, final status. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireConnectors } from '../connectors.aws.ts';
import { wireEvidence } from '../evidence.wiring.ts';

installAwsDeps({ policyText, ports: { connectors: wireConnectors, evidence: wireEvidence } });

export { close as handler } from '#handlers/run-tasks';
