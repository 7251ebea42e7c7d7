/** Lambda `start-run`: Consumer of the events FIFO queue: starts runs, schedules future-dated ones, records drift. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireWorkflows } from '../workflows.sfn.ts';
import { wireMailer } from '../mailer.ses.ts';
import { wireScheduler } from '../scheduler.eventbridge.ts';
import { wireEvidence } from '../evidence.wiring.ts';
import { wireConnectors } from '../connectors.aws.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyDocument, ports: { secrets: wireSecrets, workflows: wireWorkflows, mailer: wireMailer, scheduler: wireScheduler, evidence: wireEvidence, connectors: wireConnectors, ticketing: wireTicketing } });

export { handler } from '#handlers/start-run';
