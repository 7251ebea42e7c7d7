/** Lambda `scheduled-action`: Target of the EventBridge Scheduler schedules other than start-run (reminders, nightly reconcile, …). */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireQueue } from '../queue.sqs.ts';
import { wireWorkflows } from '../workflows.sfn.ts';
import { wireMailer } from '../mailer.ses.ts';
import { wireScheduler } from '../scheduler.eventbridge.ts';
import { wireEvidence } from '../evidence.wiring.ts';
import { wireConnectors } from '../connectors.aws.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyDocument, ports: { secrets: wireSecrets, queue: wireQueue, workflows: wireWorkflows, mailer: wireMailer, scheduler: wireScheduler, evidence: wireEvidence, connectors: wireConnectors, ticketing: wireTicketing } });

export { handler } from '../scheduled-action.ts';
