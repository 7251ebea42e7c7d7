/** Lambda `start-run`: Consumer of the events FIFO queue: starts runs, schedules future-dated ones, records drift. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireWorkflows } from '../workflows.sfn.ts';
import { wireScheduler } from '../scheduler.eventbridge.ts';
import { wireMailer } from '../mailer.ses.ts';

installAwsDeps({ policyText, ports: { workflows: wireWorkflows, scheduler: wireScheduler, mailer: wireMailer } });

export { handler } from '#handlers/start-run';
