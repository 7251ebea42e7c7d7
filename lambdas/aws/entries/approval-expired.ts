/** Lambda `approval-expired`: Task `ApprovalExpiredFunctionArn`: records the approval_expired exception. */
import { installAwsDeps } from '../bootstrap.ts';
import policyText from '@jml/policy';

installAwsDeps({ policyText });

export { approvalExpired as handler } from '#handlers/request-approval';
