import type { ScheduledAction } from '#app/ports';

/**
 * Scheduler constants shared by the adapter (one-time schedules made at run time), the
 * scheduled-action function and the stack (the nightly schedule): one place for each.
 */

/** Delivery retries (Scheduler side): up to a day of attempts before the event goes to the DLQ. */
export const SCHEDULE_RETRY_POLICY = { MaximumEventAgeInSeconds: 86_400, MaximumRetryAttempts: 20 } as const;

/** Window for schedules whose exact minute does not matter (spreads load). */
export const FLEXIBLE_WINDOW_MINUTES = 15;

/** Name of the nightly reconciliation schedule (created by the stack, recurring). */
export const NIGHTLY_RECONCILE_SCHEDULE = 'jml-nightly-reconcile';

/** The context attribute Scheduler replaces with the firing's scheduled time (ISO 8601). */
export const SCHEDULED_TIME = '<aws.scheduler.scheduled-time>';

/** The scheduled-action Lambda's input for a schedule (the adapter's one-time schedules and the stack's nightly one). */
export function scheduledActionInput(name: string, action: ScheduledAction): string {
  return JSON.stringify({ kind: action.kind, payload: action.payload, schedule: name, at: SCHEDULED_TIME });
}
