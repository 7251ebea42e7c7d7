/** Lambda `request-approval`: Task `RequestApprovalFunctionArn` (waitForTaskToken): records the approval, mails the approver, schedules the reminder. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireMailer } from '../mailer.ses.ts';
import { wireScheduler } from '../scheduler.eventbridge.ts';

installAwsDeps({ policyText, ports: { secrets: wireSecrets, mailer: wireMailer, scheduler: wireScheduler } });

export { handler } from '#handlers/request-approval';
