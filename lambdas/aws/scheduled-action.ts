/**
 * The `scheduled-action` Lambda: the target of every EventBridge Scheduler schedule that is not
 * a `start-run` (those go straight to the events FIFO queue). Its input is what the Scheduler
 * adapter writes into the schedule — `{ kind, payload, schedule, at }`, where Scheduler fills
 * `at` with the firing's scheduled time (`<aws.scheduler.scheduled-time>`) — and it hands the
 * firing to the application's one dispatch for fired schedules (`dispatchScheduled`: retention
 * deletes, expiries, reminders, reconciliations, and a start-run if one ever arrives here).
 *
 * Scheduler invokes Lambda targets asynchronously: an error is retried by Lambda (twice), then
 * the event goes to the async dead-letter queue, whose alarm shows it. Errors keep their names.
 */
import * as z from 'zod';
import type { ScheduledAction } from '#app/ports';
import { dispatchScheduled, type ScheduledOutcome } from '#app/scheduled';
import { parseOrThrow } from '#core/validation';
import { processDeps, type DepsProvider } from '#handlers/deps';
import { taskHandler } from '#handlers/task';
import { SCHEDULED_TIME } from './schedules.ts';

export const SCHEDULED_ACTION_KINDS = ['start-run', 'expire-bundle', 'retention-delete', 'approval-reminder', 'reconcile'] as const;
// Every kind of the port is listed (a compile error otherwise).
({}) as ScheduledAction['kind'] satisfies (typeof SCHEDULED_ACTION_KINDS)[number];

export const scheduledActionEventSchema = z.object({
  kind: z.enum(SCHEDULED_ACTION_KINDS),
  payload: z.record(z.string(), z.unknown()).default({}),
  schedule: z.string().min(1).max(64),
  at: z.string().max(64).optional(),
});
export type ScheduledActionEvent = z.input<typeof scheduledActionEventSchema>;

export const createScheduledActionHandler = (deps: DepsProvider) =>
  taskHandler<ScheduledActionEvent & { runId?: string }, ScheduledOutcome>('scheduled-action', deps, async (app, event) => {
    const e = parseOrThrow(scheduledActionEventSchema, event);
    // An unsubstituted placeholder (a test invoke from the console) is no time at all.
    const at = e.at && e.at !== SCHEDULED_TIME ? e.at : undefined;
    return dispatchScheduled(app, { name: e.schedule, ...(at ? { at } : {}), action: { kind: e.kind, payload: e.payload } });
  });

export const handler = createScheduledActionHandler(processDeps);
