/**
 * One writer per person and target at a time. Converging reads the account, diffs it against the
 * desired state and writes the difference; two runs of one person doing that at once (a joiner
 * still provisioning when the mover arrives, an expiry beside a reconcile) both see a group
 * missing and both add it. So every write path takes a short lease on (person, target) in the
 * ledger first; the second writer waits, then reads what the first one left and writes only
 * what is still missing.
 *
 * The restrict phase of a leaver (disable, revoke sessions) takes no lease: it adds nothing, and
 * a termination must never wait behind another run.
 */
import { randomUUID } from 'node:crypto';
import { TargetBusy } from '#core/errors';
import type { AppDeps } from './ports.ts';

/** The converge Task's timeout (300 s) and a margin: a holder that died frees the lease by then. */
export const TARGET_LEASE_MS = 330_000;
/** How long a writer waits in process before it hands the wait to the workflow's Retry (TargetBusy). */
export const TARGET_LEASE_WAIT_MS = 20_000;

export const targetLeaseKey = (employeeId: string, target: string) => `target:${target}:${employeeId}`;

export async function withTargetLease<T>(
  deps: Pick<AppDeps, 'ledger' | 'clock' | 'metrics'>,
  lease: { employeeId: string; target: string; holder: string },
  fn: () => Promise<T>,
  waitMs = TARGET_LEASE_WAIT_MS,
): Promise<T> {
  const key = targetLeaseKey(lease.employeeId, lease.target);
  // A retry of the step re-enters its run's lease at once; this attempt's own name keeps an
  // earlier attempt that is still winding down (a Task that timed out) from giving it up.
  const attempt = randomUUID();
  const started = Date.now();
  let waited = false;
  for (let pause = 25; ; pause = Math.min(pause * 2, 1000), waited = true) {
    const now = deps.clock.now().getTime();
    const got = await deps.ledger.acquireLease(key, lease.holder, now + TARGET_LEASE_MS, now, attempt);
    if (got.acquired) break;
    if (Date.now() - started + pause > waitMs) {
      deps.metrics.put('TargetBusy', 1, 'Count', { target: lease.target });
      throw new TargetBusy(lease.target, got.holder, lease.employeeId);
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
  if (waited) deps.metrics.put('TargetLeaseWait', Date.now() - started, 'Milliseconds', { target: lease.target });
  try {
    return await fn();
  } finally {
    await deps.ledger.releaseLease(key, lease.holder, attempt);
  }
}
