/** Lambda `approval-expired`: Task `ApprovalExpiredFunctionArn`: opens the approval_expired exception. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireMailer } from '../mailer.ses.ts';

installAwsDeps({ policyText, ports: { mailer: wireMailer } });

export { approvalExpired as handler } from '#handlers/request-approval';
