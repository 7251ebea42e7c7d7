/** Lambda `schedule-retention`: Task `ScheduleRetentionFunctionArn`: one-time hard-delete schedules per target. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireScheduler } from '../scheduler.eventbridge.ts';

installAwsDeps({ policyDocument, ports: { scheduler: wireScheduler } });

export { scheduleRetentionHandler as handler } from '#handlers/run-tasks';
