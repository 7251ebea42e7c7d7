/**
 * The end of the invocation a call is made for. Step Functions times a Task out after its
 * `TimeoutSeconds` and retries it; the Lambda running the first attempt is stopped by its own
 * (shorter) timeout, so the first attempt never writes beside its retry. Whatever runs a Task
 * without that guarantee — the local workflow engine runs every Task in one process, where a
 * timed-out handler would go on — marks the invocation ended here, and the rate governor, which
 * every connector call passes through, refuses to send anything for it after that.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { JmlError } from '#core/errors';

const invocation = new AsyncLocalStorage<AbortSignal>();

/** Runs `fn` as one invocation that ends when `signal` aborts. */
export function withInvocationSignal<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  return invocation.run(signal, fn);
}

/** The invocation's signal, when whoever runs it set one. */
export function invocationSignal(): AbortSignal | undefined {
  return invocation.getStore();
}

/** A call asked for after its invocation ended (its Task timed out): not sent. */
export class InvocationEnded extends JmlError {
  constructor(what: string) {
    super(`${what}: not sent, the invocation it was made for has ended (its step timed out)`);
  }
}
