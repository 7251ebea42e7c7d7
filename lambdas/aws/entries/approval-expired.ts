/** Lambda `approval-expired`: Task `ApprovalExpiredFunctionArn`: records the approval_expired exception and tells its owner. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';
import { wireMailer } from '../mailer.ses.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyText, ports: { mailer: wireMailer, ticketing: wireTicketing } });

export { approvalExpired as handler } from '#handlers/request-approval';
