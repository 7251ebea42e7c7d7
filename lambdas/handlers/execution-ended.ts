/**
 * EventBridge target for "Step Functions Execution Status Change" (FAILED, TIMED_OUT, ABORTED):
 * a run whose workflow died is failed, its owner told, and its evidence closed.
 */
import type { EventBridgeEvent } from 'aws-lambda';
import { onExecutionEnded, type ExecutionEnded } from '#app/execution-ended';
import { processDeps, type DepsProvider } from './deps.ts';
import { taskHandler } from './task.ts';

type StatusChange = EventBridgeEvent<'Step Functions Execution Status Change', { name: string; status: ExecutionEnded['status']; error?: string | null; cause?: string | null }>;

export const createExecutionEndedHandler = (deps: DepsProvider) =>
  taskHandler<StatusChange & { runId?: string }, { action: string }>('execution-ended', deps, (app, event) =>
    onExecutionEnded(app, {
      runId: event.detail.name,
      status: event.detail.status,
      ...(event.detail.error ? { error: event.detail.error } : {}),
      ...(event.detail.cause ? { cause: event.detail.cause } : {}),
    }),
  );

export const handler = createExecutionEndedHandler(processDeps);
