/**
 * The nightly reconciliation's Task Lambdas (statemachines/reconcile.asl.json), one use case each:
 * Start, one target's pages (its account pages, then — the `ReconcileMembers` state — the member
 * pages of its managed entitlements), the ledger's persons pages (and — the `ReconcileGaps`
 * state, `phase: "gaps"` — the missing-entitlement check that follows them: same ports, same
 * ledger, no Lambda of its own), Finish (also the failure path).
 * Inputs are validated by the use cases (zod, messages name the field); errors keep their names
 * for the state machine's Retry and Catch.
 */
import { finishReconciliation, reconcileGaps, reconcilePage, reconcilePersonsPage, startReconciliation } from '#app/reconcile';
import { processDeps, type DepsProvider } from './deps.ts';
import { taskHandler, type TaskHandler } from './task.ts';

type TaskInput = { runId?: string; reconciliationId?: string; [key: string]: unknown };

export const createStartReconciliationHandler = (deps: DepsProvider) => taskHandler<TaskInput, Awaited<ReturnType<typeof startReconciliation>>>('reconcile-start', deps, startReconciliation);
export const createReconcilePageHandler = (deps: DepsProvider) => taskHandler<TaskInput, Awaited<ReturnType<typeof reconcilePage>>>('reconcile-page', deps, reconcilePage);
/** The persons pages, and the entitlement-gap step (`phase: "gaps"`) that follows them. */
const personsOrGaps = (deps: Parameters<typeof reconcilePersonsPage>[0], input: TaskInput) =>
  input.phase === 'gaps' ? reconcileGaps(deps, input) : reconcilePersonsPage(deps, input);
export const createReconcilePersonsPageHandler = (deps: DepsProvider) =>
  taskHandler<TaskInput, Awaited<ReturnType<typeof personsOrGaps>>>('reconcile-persons-page', deps, personsOrGaps);
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
