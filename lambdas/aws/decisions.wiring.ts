/**
 * Entry wiring of the Step Functions port for the function that delivers approval decisions (the
 * approvals API): its task-token callbacks also carry the decisions no workflow waits for — an
 * exception grant, the release of runs held by the bulk-change guard. Those approvals hold a
 * decision token instead of a task token, and `withDecisionCallbacks` routes it to the use case
 * that applies the decision; every other token goes to Step Functions unchanged.
 */
import type { TaskCallbacks, WorkflowEngine } from '#app/ports';
import { withDecisionCallbacks } from '#app/standalone-approvals';
import type { WiringContext } from './bootstrap.ts';
import { wireWorkflows } from './workflows.sfn.ts';

export function wireWorkflowsWithDecisions(ctx: WiringContext): { workflows: WorkflowEngine; callbacks: TaskCallbacks } {
  const { workflows, callbacks } = wireWorkflows(ctx);
  return { workflows, callbacks: withDecisionCallbacks(callbacks, ctx.deps) };
}
