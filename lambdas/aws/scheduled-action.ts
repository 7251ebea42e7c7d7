/**
 * The `scheduled-action` Lambda: the target of every EventBridge Scheduler schedule that is not
 * a `start-run` (those go straight to the events FIFO queue). Input, as the Scheduler adapter
 * writes it: `{ kind, payload, schedule }`. It dispatches to the use case for the kind:
 *
 *  - `approval-reminder` `{ approvalId }` → re-send the approval mail if still pending;
 *  - `reconcile` (the nightly schedule, `{ scope: 'nightly' }`) → start the `reconcile`
 *    workflow once per UTC day (execution name `nightly-YYYY-MM-DD`, so a redelivery is a no-op);
 *  - `retention-delete`, `expire-bundle` → not handled by this release: the invocation fails
 *    with `ScheduledActionUnsupported`, Lambda retries it, then the event lands in the scheduler
 *    dead-letter queue, where the "scheduler DLQ not empty" alarm shows it. Nothing is dropped.
 *
 * Errors keep their names (Lambda async retries, then the on-failure destination).
 */
import { z } from 'zod';
import { remindApproval } from '#app/approvals';
import type { AppDeps, ScheduledAction } from '#app/ports';
import { JmlError } from '#core/errors';
import { parseOrThrow } from '#core/validation';
import { processDeps, type DepsProvider } from '#handlers/deps';
import { taskHandler } from '#handlers/task';

export class ScheduledActionUnsupported extends JmlError {}

export const SCHEDULED_ACTION_KINDS = ['start-run', 'expire-bundle', 'retention-delete', 'approval-reminder', 'reconcile'] as const;
// Every kind of the port is listed (a compile error otherwise).
({}) as ScheduledAction['kind'] satisfies (typeof SCHEDULED_ACTION_KINDS)[number];

export const scheduledActionEventSchema = z.object({
  kind: z.enum(SCHEDULED_ACTION_KINDS),
  payload: z.record(z.string(), z.unknown()).default({}),
  schedule: z.string().min(1).max(64).optional(),
});
export type ScheduledActionEvent = z.input<typeof scheduledActionEventSchema>;

export type ScheduledActionResult =
  | { kind: 'approval-reminder'; sent: boolean; reason: string }
  | { kind: 'reconcile'; executionId: string; alreadyStarted: boolean };

export async function runScheduledAction(deps: AppDeps, event: ScheduledActionEvent): Promise<ScheduledActionResult> {
  const action = parseOrThrow(scheduledActionEventSchema, event);
  switch (action.kind) {
    case 'approval-reminder': {
      const { approvalId } = parseOrThrow(z.object({ approvalId: z.string().min(1) }), action.payload, 'payload');
      return { kind: 'approval-reminder', ...(await remindApproval(deps, { approvalId })) };
    }
    case 'reconcile': {
      const day = deps.clock.now().toISOString().slice(0, 10);
      const started = await deps.workflows.start('reconcile', `nightly-${day}`, {
        scope: typeof action.payload.scope === 'string' ? action.payload.scope : 'nightly',
        trigger: action.schedule ?? 'schedule',
        requestedAt: deps.clock.now().toISOString(),
      });
      return { kind: 'reconcile', ...started };
    }
    default:
      throw new ScheduledActionUnsupported(
        `scheduled action ${action.kind}${action.schedule ? ` (schedule ${action.schedule})` : ''}: this release has no handler for it; the event is kept in the scheduler dead-letter queue`,
      );
  }
}

export const createScheduledActionHandler = (deps: DepsProvider) =>
  taskHandler<ScheduledActionEvent & { runId?: string }, ScheduledActionResult>('scheduled-action', deps, runScheduledAction);

export const handler = createScheduledActionHandler(processDeps);
