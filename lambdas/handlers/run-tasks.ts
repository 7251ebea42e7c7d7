/**
 * The run workflow's Task Lambdas (one entry each in the stack, one use case each):
 * Plan, Converge (one target), RecordFailure, Reconcile, ScheduleRetention, Close.
 */
import { closeRun, convergeTarget, planRun, reconcileRun, recordFailure, scheduleRetention } from '#app/runs';
import { processDeps, type DepsProvider } from './deps.ts';
import { taskHandler } from './task.ts';

export const createPlanHandler = (deps: DepsProvider) => taskHandler('plan', deps, planRun);
export const createConvergeHandler = (deps: DepsProvider) => taskHandler('converge', deps, convergeTarget);
export const createRecordFailureHandler = (deps: DepsProvider) => taskHandler('record-failure', deps, recordFailure);
export const createReconcileHandler = (deps: DepsProvider) => taskHandler('reconcile', deps, reconcileRun);
export const createScheduleRetentionHandler = (deps: DepsProvider) => taskHandler('schedule-retention', deps, scheduleRetention);
export const createCloseHandler = (deps: DepsProvider) => taskHandler('close', deps, closeRun);

export const plan = createPlanHandler(processDeps);
export const converge = createConvergeHandler(processDeps);
export const recordFailureHandler = createRecordFailureHandler(processDeps);
export const reconcile = createReconcileHandler(processDeps);
export const scheduleRetentionHandler = createScheduleRetentionHandler(processDeps);
export const close = createCloseHandler(processDeps);
