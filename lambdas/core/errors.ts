/**
 * Typed errors with stable `name`s. Step Functions Retry/Catch match on `name` (the Lambda
 * runtime reports it as the error type), so these names are part of the workflow contract.
 */

export class JmlError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The target asked us to slow down. Retryable after `retryAfterSeconds`. */
export class TargetThrottled extends JmlError {
  constructor(
    readonly target: string,
    readonly retryAfterSeconds: number,
    message = `${target}: rate limited, retry after ${retryAfterSeconds}s`,
  ) {
    super(message);
  }
}

/** 5xx, timeout or connection failure after bounded retries. Retryable later. */
export class TargetUnavailable extends JmlError {
  constructor(readonly target: string, message: string, options?: { cause?: unknown }) {
    super(`${target}: ${message}`, options);
  }
}

/** More than one account claims one person, or the target refused a write as a conflict. */
export class TargetConflict extends JmlError {
  constructor(readonly target: string, message: string, readonly accountIds: string[] = []) {
    super(`${target}: ${message}`);
  }
}

/**
 * Another run is changing this person's account on this target right now. Retryable: once it is
 * done, a fresh read shows its changes and nothing is written twice.
 */
export class TargetBusy extends JmlError {
  constructor(readonly target: string, readonly holder: string, employeeId: string) {
    super(`${target}: ${holder} is changing ${employeeId}'s account; retry when it is done`);
  }
}

/** The target refused the request (4xx other than 404/409/429). Not retryable. */
export class TargetRejected extends JmlError {
  constructor(readonly target: string, readonly status: number, message: string) {
    super(`${target}: ${message} (HTTP ${status})`);
  }
}

/** The account (or the entitlement's object) the step needs does not exist on the target. */
export class AccountNotFound extends JmlError {
  constructor(readonly target: string, message: string) {
    super(`${target}: ${message}`);
  }
}

/** The policy forbids what was asked (unowned target, out-of-scope worker, …). */
export class PolicyViolation extends JmlError {}

/** Input failed validation; the message names the field and the rule. */
export class ValidationError extends JmlError {
  constructor(readonly issues: string[]) {
    super(issues.join('; '));
  }
}

export const RETRYABLE_ERRORS = ['TargetThrottled', 'TargetUnavailable', 'TargetBusy'] as const;

/** A target error worth trying again later (the workflows' Retry matches the same names). */
export function isRetryable(e: unknown): boolean {
  return e instanceof Error && (RETRYABLE_ERRORS as readonly string[]).includes(e.name);
}
