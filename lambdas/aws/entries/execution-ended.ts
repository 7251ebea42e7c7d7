/** Lambda `execution-ended`: EventBridge target for Step Functions execution status changes: fails and closes a run whose workflow died. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireMailer } from '../mailer.ses.ts';
import { wireScheduler } from '../scheduler.eventbridge.ts';
import { wireEvidence } from '../evidence.wiring.ts';
import { wireConnectors } from '../connectors.aws.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyDocument, ports: { mailer: wireMailer, scheduler: wireScheduler, evidence: wireEvidence, connectors: wireConnectors, ticketing: wireTicketing } });

export { handler } from '#handlers/execution-ended';
