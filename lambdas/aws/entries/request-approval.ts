/** Lambda `request-approval`: Task `RequestApprovalFunctionArn` (waitForTaskToken): records the approval, mails the approver, schedules the reminder; answers at once for an approval already decided. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireMailer } from '../mailer.ses.ts';
import { wireScheduler } from '../scheduler.eventbridge.ts';
import { wireWorkflows } from '../workflows.sfn.ts';

installAwsDeps({ policyDocument, ports: { secrets: wireSecrets, workflows: wireWorkflows, mailer: wireMailer, scheduler: wireScheduler } });

export { handler } from '#handlers/request-approval';
