/** Lambda `request-approval`: Task `RequestApprovalFunctionArn` (waitForTaskToken): records the approval, mails the approver. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireSecrets } from '../secrets.sm.ts';
import { wireMailer } from '../mailer.ses.ts';

installAwsDeps({ policyText, ports: { secrets: wireSecrets, mailer: wireMailer } });

export { handler } from '#handlers/request-approval';
