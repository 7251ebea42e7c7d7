/** Lambda `approvals-api`: GET|HEAD|POST /approvals/{id} — confirmation page and decision (SendTaskSuccess / SendTaskFailure, or the grant / bulk-release decision). */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireQueue } from '../queue.sqs.ts';
import { wireWorkflowsWithDecisions } from '../decisions.wiring.ts';
import { wireMailer } from '../mailer.ses.ts';
import { wireScheduler } from '../scheduler.eventbridge.ts';
import { wireEvidence } from '../evidence.wiring.ts';
import { wireConnectors } from '../connectors.aws.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyDocument, ports: { secrets: wireSecrets, queue: wireQueue, workflows: wireWorkflowsWithDecisions, mailer: wireMailer, scheduler: wireScheduler, evidence: wireEvidence, connectors: wireConnectors, ticketing: wireTicketing } });

export { handler } from '#handlers/approvals-api';
