/**
 * Approval Task Lambdas of the run workflows (`statemachines/*.asl.json`):
 *  - `handler` — `RequestApprovalFunctionArn`, invoked with `lambda:invoke.waitForTaskToken` and
 *    Payload `{ runId, requestId, taskToken, escalation, timeoutSeconds }`: records the approval
 *    (task token server-side) and emails the approver(s). Its return value is not the state's
 *    output; the decision arrives later through SendTaskSuccess / SendTaskFailure.
 *  - `approvalExpired` — `ApprovalExpiredFunctionArn` with `{ runId, requestId }`, after the
 *    escalated wait lapsed too: opens the `approval_expired` exception.
 *  - `approvalReminder` — target of the one-time `approval-reminder` schedule `{ approvalId }`.
 * Errors keep their names (`ValidationError`, `ApprovalRequestInvalid`) for the state machine.
 */
import { expireApproval, remindApproval, requestApproval } from '#app/approvals';
import { processDeps, type DepsProvider } from './deps.ts';
import { taskHandler } from './task.ts';

export const createRequestApprovalHandler = (deps: DepsProvider) => taskHandler('request-approval', deps, requestApproval);
export const createApprovalExpiredHandler = (deps: DepsProvider) => taskHandler('approval-expired', deps, expireApproval);
export const createApprovalReminderHandler = (deps: DepsProvider) => taskHandler<{ approvalId: string; runId?: string }, { sent: boolean; reason: string }>('approval-reminder', deps, remindApproval);

export const handler = createRequestApprovalHandler(processDeps);
export const approvalExpired = createApprovalExpiredHandler(processDeps);
export const approvalReminder = createApprovalReminderHandler(processDeps);
