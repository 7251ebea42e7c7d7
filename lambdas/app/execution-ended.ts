/**
 * A workflow execution ended without closing its run (a States.Runtime error, a timeout of the
 * whole execution, an abort by an operator). Step Functions reports it (an EventBridge rule on
 * "Step Functions Execution Status Change" in AWS; the local engine's end callback locally).
 * The run must not stay EXECUTING forever: it is failed, its owner told, and its evidence closed.
 */
import { TERMINAL_RUN_STATUSES } from '#core/ledger';
import { openException } from './exceptions.ts';
import type { AppDeps } from './ports.ts';
import { closeRun } from './runs.ts';

export interface ExecutionEnded {
  runId: string;
  status: 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  error?: string;
  cause?: string;
}

export async function onExecutionEnded(deps: AppDeps, input: ExecutionEnded): Promise<{ action: 'none' | 'failed' }> {
  const run = await deps.ledger.getRun(input.runId);
  if (!run || TERMINAL_RUN_STATUSES.has(run.status) || run.evidence) return { action: 'none' };
  if (input.status === 'SUCCEEDED') return { action: 'none' };
  const policy = await deps.policy();
  await openException(deps, {
    exceptionId: `exc-execution-${run.runId}`,
    runId: run.runId,
    employeeId: run.employeeId,
    target: 'run',
    owner: policy.idp.owner.email,
    kind: 'step_failed',
    reason: `the ${run.lifecycle} workflow ended ${input.status}${input.error ? ` (${input.error}${input.cause ? `: ${input.cause.slice(0, 300)}` : ''})` : ''} before the run closed`,
    evidence: { executionStatus: input.status, error: input.error ?? null, cause: input.cause?.slice(0, 2000) ?? null, runStatus: run.status },
  });
  await closeRun(deps, { runId: run.runId, failed: true });
  return { action: 'failed' };
}
