/** Lambda `approval-expired`: Task `ApprovalExpiredFunctionArn`: records the approval_expired exception and tells its owner. */
import { installAwsDeps } from '../bootstrap.ts';
import policyDocument from '@jml/policy';
import { wireMailer } from '../mailer.ses.ts';
import { wireTicketing } from '../ticketing.wiring.ts';

installAwsDeps({ policyDocument, ports: { mailer: wireMailer, ticketing: wireTicketing } });

export { approvalExpired as handler } from '#handlers/request-approval';
