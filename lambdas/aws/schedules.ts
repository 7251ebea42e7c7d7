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
