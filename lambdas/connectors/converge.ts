/**
 * Converge one target for one person: read actual, plan (core), apply in plan order.
 *
 * Retrying is safe because every call re-reads first; running it twice makes no write the
 * second time (the plan against a converged target is empty). Shadow-mode targets are planned
 * and reported but never written.
 */
import type { ActualAccount, DesiredTarget } from '#core/access';
import { TargetConflict } from '#core/errors';
import { planTarget, type PlannedOp, type TargetOp, type TargetPlanOptions } from '#core/target-plan';
import type { AccountProfile, ChangeRecord, Connector } from './connector.ts';

export interface ConvergeResult {
  target: string;
  mode: DesiredTarget['mode'];
  /** The account acted on (created or found); absent when the person has none and needs none. */
  accountId?: string;
  /** Account state read before acting. */
  before: ActualAccount | null;
  planned: PlannedOp[];
  changes: ChangeRecord[];
  /** Number of writes that changed something. */
  writes: number;
}

export interface ConvergeOptions extends TargetPlanOptions {
  linkIds?: string[];
  /**
   * Apply only these operations (the rest stay planned for a later phase). A leaver's first
   * step uses it to disable and revoke at the IdP before anything else, approvals included.
   */
  onlyOps?: readonly TargetOp[];
  /**
   * With `onlyOps` that only change the account's status (disable, suspend, revoke sessions):
   * do not read what the account holds — those ops never depend on it. `before.entitlements` is
   * then empty. A leaver's disable saves two Okta calls (groups, app links) on its critical path.
   */
  statusOnly?: boolean;
  /**
   * With `statusOnly`: the accounts a search by the employee id alone (`entitlements: false`, no
   * link ids) found, asked for before the caller knew the person's links — a leaver's disable
   * starts it while it reads the run and the person, so the two do not wait for each other. Taken
   * when every link id is among them; otherwise the accounts are looked up again with the links.
   */
  found?: Promise<ActualAccount[]>;
}

export async function converge(
  connector: Connector,
  profile: AccountProfile,
  desired: DesiredTarget,
  options: ConvergeOptions = {},
): Promise<ConvergeResult> {
  if (options.statusOnly && !options.onlyOps?.every((op) => op !== 'addEntitlement' && op !== 'removeEntitlement' && op !== 'create' && op !== 'delete')) {
    throw new Error('internal: statusOnly converge must be limited to status operations (onlyOps)');
  }
  if (options.found && !options.statusOnly) throw new Error('internal: accounts found ahead are status-only: `found` needs statusOnly');
  const accounts = await findAccounts(connector, profile.employeeId, options);
  if (accounts.length > 1) {
    throw new TargetConflict(
      connector.name,
      `${accounts.length} accounts claim employee ${profile.employeeId}`,
      accounts.map((a) => a.id),
    );
  }
  const before = accounts[0] ?? null;
  const all = planTarget(desired, before, connector.capabilities, options);
  const planned = options.onlyOps ? all.filter((s) => options.onlyOps!.includes(s.op)) : all;
  const result: ConvergeResult = {
    target: connector.name,
    mode: desired.mode,
    accountId: before?.id,
    before,
    planned,
    changes: [],
    writes: 0,
  };
  if (desired.mode === 'shadow') return result;

  try {
    for (const step of planned) {
      const change = await apply(connector, profile, step, result.accountId);
      if (step.op === 'create') result.accountId = change.accountId;
      result.changes.push(change);
      if (change.changed) result.writes += 1;
    }
  } catch (e) {
    // The error keeps its name (the workflow's Retry and Catch match on it); it carries the
    // writes made before it, so the failed step's record shows what it did change.
    if (e instanceof Error && result.changes.length) Object.defineProperty(e, CHANGES_BEFORE_FAILURE, { value: [...result.changes], enumerable: false });
    throw e;
  }
  return result;
}

async function findAccounts(connector: Connector, employeeId: string, options: ConvergeOptions): Promise<ActualAccount[]> {
  const linkIds = options.linkIds ?? [];
  if (options.found) {
    const found = await options.found;
    if (linkIds.every((id) => found.some((a) => a.id === id))) return found;
  }
  return connector.findAccounts({ employeeId, linkIds, ...(options.statusOnly ? { entitlements: false } : {}) });
}

const CHANGES_BEFORE_FAILURE = Symbol('changesBeforeFailure');

/** The writes a converge made before it failed with `error` (none when it failed before writing). */
export function changesBeforeFailure(error: unknown): ChangeRecord[] {
  return (error instanceof Error && (error as Error & { [CHANGES_BEFORE_FAILURE]?: ChangeRecord[] })[CHANGES_BEFORE_FAILURE]) || [];
}

async function apply(
  connector: Connector,
  profile: AccountProfile,
  step: PlannedOp,
  accountId: string | undefined,
): Promise<ChangeRecord> {
  if (step.op === 'create') {
    return (await connector.createAccount(profile, { enabled: true })).change;
  }
  if (!accountId) throw new Error(`internal: ${step.op} planned without an account`);
  switch (step.op) {
    case 'disable':
      return connector.setStatus(accountId, 'disabled');
    case 'suspend':
      return connector.setStatus(accountId, 'suspended');
    case 'enable':
    case 'unsuspend':
      return connector.setStatus(accountId, 'enabled');
    case 'revokeSessions':
      return connector.revokeSessions(accountId);
    case 'addEntitlement':
      return connector.addEntitlement(accountId, pickRef(step));
    case 'removeEntitlement':
      return connector.removeEntitlement(accountId, pickRef(step));
    case 'delete':
      return connector.deleteAccount(accountId);
  }
}

function pickRef(step: PlannedOp) {
  if (!step.entitlement) throw new Error(`internal: ${step.op} planned without an entitlement`);
  return { type: step.entitlement.type, value: step.entitlement.value };
}
