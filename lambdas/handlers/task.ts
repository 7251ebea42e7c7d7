/**
 * The shape every Step Functions Task Lambda shares: a middy stack around a use case. The
 * input is the Task's `Parameters` (or the `Payload` of `lambda:invoke`), the output its result.
 * Errors are rethrown untouched: their `name` (TargetThrottled, TargetUnavailable, …) is what
 * the state machine's Retry and Catch match.
 */
import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { Context } from 'aws-lambda';
import type { AppDeps } from '#app/ports';
import type { DepsProvider } from './deps.ts';
import { logger } from './logger.ts';

export type TaskHandler<I, O> = (event: I, context?: Context) => Promise<O>;

export function taskHandler<I extends { runId?: string }, O>(
  name: string,
  deps: DepsProvider,
  useCase: (deps: AppDeps, input: I) => Promise<O>,
): TaskHandler<I, O> {
  const run = async (event: I): Promise<O> => {
    logger.appendKeys({ task: name, ...(event.runId ? { runId: event.runId } : {}) });
    try {
      return await useCase(await deps(), event);
    } catch (e) {
      const err = e as Error;
      logger.warn('task failed', { errorName: err.name, errorMessage: err.message });
      throw e;
    } finally {
      logger.removeKeys(['task', 'runId']);
    }
  };
  const wrapped = middy<I, O>(run).use(injectLambdaContext(logger, { resetKeys: true }));
  return (event, context) => wrapped(event, context ?? ({} as Context));
}
