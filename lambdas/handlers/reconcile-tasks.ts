/**
 * The nightly reconciliation's Task Lambdas (statemachines/reconcile.asl.json), one use case each:
 * Start, one target's pages, the ledger's persons pages, Finish (also the failure path).
 * Inputs are validated by the use cases (zod, messages name the field); errors keep their names
 * for the state machine's Retry and Catch.
 */
import { finishReconciliation, reconcilePage, reconcilePersonsPage, startReconciliation } from '#app/reconcile';
import { processDeps, type DepsProvider } from './deps.ts';
import { taskHandler, type TaskHandler } from './task.ts';

type TaskInput = { runId?: string; reconciliationId?: string; [key: string]: unknown };

export const createStartReconciliationHandler = (deps: DepsProvider) => taskHandler<TaskInput, Awaited<ReturnType<typeof startReconciliation>>>('reconcile-start', deps, startReconciliation);
export const createReconcilePageHandler = (deps: DepsProvider) => taskHandler<TaskInput, Awaited<ReturnType<typeof reconcilePage>>>('reconcile-page', deps, reconcilePage);
export const createReconcilePersonsPageHandler = (deps: DepsProvider) =>
  taskHandler<TaskInput, Awaited<ReturnType<typeof reconcilePersonsPage>>>('reconcile-persons-page', deps, reconcilePersonsPage);
export const createFinishReconciliationHandler = (deps: DepsProvider) =>
  taskHandler<TaskInput, Awaited<ReturnType<typeof finishReconciliation>>>('reconcile-finish', deps, finishReconciliation);

/**
 * Placeholder key (the ASL's `${…FunctionArn}`, the stack's definitionSubstitutions) → handler,
 * for a composition that runs the ASL locally (local/stack.ts spreads it into its handlers).
 */
export function reconcileTaskHandlers(provider: DepsProvider): Record<string, TaskHandler<any, unknown>> {
  return {
    StartReconciliationFunctionArn: createStartReconciliationHandler(provider),
    ReconcilePageFunctionArn: createReconcilePageHandler(provider),
    ReconcilePersonsPageFunctionArn: createReconcilePersonsPageHandler(provider),
    FinishReconciliationFunctionArn: createFinishReconciliationHandler(provider),
  };
}

export const startReconciliationHandler = createStartReconciliationHandler(processDeps);
export const reconcilePageHandler = createReconcilePageHandler(processDeps);
export const reconcilePersonsPageHandler = createReconcilePersonsPageHandler(processDeps);
export const finishReconciliationHandler = createFinishReconciliationHandler(processDeps);
