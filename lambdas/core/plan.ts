/**
 * The run plan: desired − actual for every managed target, ordered (IdP first, then downstream;
 * within a target restrictions, then removals, then additions) and tagged with the approval each
 * step needs and why.
 *
 * Risk-based approvals (DESIGN.md):
 *  - leaver disable + session revoke never wait; removals are low risk and auto-approved;
 *  - baseline access for a joiner or rehire: the manager; for a mover: policy (`moverBaseline`);
 *  - privileged bundles: the app owner(s), always, whatever the lifecycle;
 *  - leaver data handling (mailbox delegation, file transfer, retention exceptions): the manager.
 * Approvals are per bundle: a rejected bundle is simply not granted; the rest proceeds.
 */
import { entitlementKey, type ActualAccount, type DesiredTarget, type Entitlement, type EntitlementRef, type TargetKind } from './access.ts';
import type { DesiredState } from './desired-state.ts';
import type { Lifecycle } from './hr-event.ts';
import type { Policy } from './policy.ts';
import { planTarget, type TargetCapabilities, type TargetOp } from './target-plan.ts';

export type ApproverRole = 'manager' | 'appOwner';

export interface StepApproval {
  /** `none`: never waits (leaver disable). `auto`: low risk. `required`: waits for `request`. */
  mode: 'none' | 'auto' | 'required';
  /** Approval request id this step waits for. */
  request?: string;
  reason: string;
}

export interface PlanStep {
  id: string;
  target: string;
  op: TargetOp;
  entitlement?: Entitlement | EntitlementRef;
  reason: string;
  approval: StepApproval;
}

export interface TargetPlan {
  target: string;
  kind: TargetKind;
  mode: DesiredTarget['mode'];
  accountId?: string;
  /** Several accounts claim the person: nothing is planned for this target; an exception is due. */
  conflict?: string[];
  steps: PlanStep[];
}

export interface ApprovalRequest {
  /** `baseline` (the manager's one request for all baseline bundles), `bundle:<name>` (privileged) or `data:<id>`. */
  id: string;
  kind: 'bundle' | 'dataHandling';
  /** Bundles decided together by this request (rejecting it withholds all of them). */
  bundles: string[];
  dataHandling?: { id: string; action: string; description: string; target?: string };
  approverRole: ApproverRole;
  /** Explicit approvers (app owners); for `manager` the run resolves the manager at request time. */
  approvers: string[];
  privileged: boolean;
  /** What approving grants. */
  entitlements: Array<{ target: string; type: string; value: string }>;
  reason: string;
}

export interface Plan {
  employeeId: string;
  lifecycle: Lifecycle;
  mappingVersion: string;
  inScope: boolean;
  targets: TargetPlan[];
  approvals: ApprovalRequest[];
  /** Number of steps across targets (0 = nothing to do: idempotent). */
  stepCount: number;
}

export type ActualState = Record<string, ActualAccount[] | ActualAccount | null | undefined>;

export interface PlanOptions {
  lifecycle: Lifecycle;
  capabilities?: Record<string, TargetCapabilities>;
  /** Bundles approved in an earlier run for this person (no new approval needed). */
  approvedBundles?: string[];
}

const DEFAULT_CAPS: Record<TargetKind, TargetCapabilities> = {
  okta: { suspend: true },
  entra: { suspend: false },
  scim: { suspend: false },
};

function stepId(target: string, op: TargetOp, e?: EntitlementRef): string {
  return e ? `${target}/${op}/${entitlementKey(e)}` : `${target}/${op}`;
}

export function plan(desired: DesiredState, actual: ActualState, policy: Policy, options: PlanOptions): Plan {
  const { lifecycle } = options;
  const approved = new Set(options.approvedBundles ?? []);
  const approvals = new Map<string, ApprovalRequest>();
  const targets: TargetPlan[] = [];
  const leaver = lifecycle === 'leaver';

  const bundleApproval = (bundle: string, reasonIfAuto: string): StepApproval => {
    const def = policy.document.bundles[bundle];
    if (!def) return { mode: 'auto', reason: reasonIfAuto };
    if (approved.has(bundle)) return { mode: 'auto', reason: `bundle ${bundle} was approved earlier` };
    const privileged = def.kind === 'privileged';
    let role: ApproverRole | undefined;
    if (privileged) role = 'appOwner';
    else if (lifecycle === 'joiner' || lifecycle === 'rehire') role = 'manager';
    else if (lifecycle === 'mover' && policy.document.approvals.moverBaseline === 'manager') role = 'manager';
    if (!role) return { mode: 'auto', reason: `baseline access for a ${lifecycle} is auto-approved by policy` };
    const id = role === 'manager' ? 'baseline' : `bundle:${bundle}`;
    const existing = approvals.get(id);
    if (existing && !existing.bundles.includes(bundle)) existing.bundles.push(bundle);
    if (!existing) {
      const owners =
        def.approvers ??
        [...new Set(Object.keys(def.targets).map((t) => policy.targetsByName.get(t)?.owner.email).filter((x): x is string => !!x))];
      approvals.set(id, {
        id,
        kind: 'bundle',
        bundles: [bundle],
        approverRole: role,
        approvers: role === 'appOwner' ? owners : [],
        privileged,
        entitlements: [],
        reason: privileged
          ? `privileged bundle ${bundle} needs its app owner`
          : `baseline access for a ${lifecycle} needs the manager`,
      });
    }
    return { mode: 'required', request: id, reason: approvals.get(id)!.reason };
  };

  for (const d of desired.targets) {
    const found = actual[d.target];
    const list = Array.isArray(found) ? found : found ? [found] : [];
    if (list.length > 1) {
      targets.push({ target: d.target, kind: d.kind, mode: d.mode, conflict: list.map((a) => a.id), steps: [] });
      continue;
    }
    const account = list[0] ?? null;
    const caps = options.capabilities?.[d.target] ?? DEFAULT_CAPS[d.kind];
    const ops = planTarget(d, account, caps, { forceRevoke: leaver && d.target === policy.idp.name });
    const steps: PlanStep[] = ops.map((o) => {
      let approval: StepApproval;
      switch (o.op) {
        case 'disable':
        case 'suspend':
        case 'revokeSessions':
          approval = { mode: 'none', reason: 'restricting access never waits for approval' };
          break;
        case 'removeEntitlement':
        case 'delete':
          approval = { mode: 'auto', reason: 'removal is low risk' };
          break;
        case 'addEntitlement': {
          const e = o.entitlement as Entitlement;
          approval = bundleApproval(e.bundle, 'restores desired access');
          const req = approval.request ? approvals.get(approval.request) : undefined;
          req?.entitlements.push({ target: d.target, type: e.type, value: e.value });
          break;
        }
        case 'create':
        case 'enable':
        case 'unsuspend': {
          // An account is justified by the bundles that list this target (the IdP: by all of them).
          const justifying = desired.bundles.filter(
            (b) => d.target === policy.idp.name || policy.document.bundles[b.bundle]?.targets[d.target] !== undefined,
          );
          const baseline = justifying.find((b) => b.kind === 'baseline') ?? justifying[0];
          approval = baseline
            ? bundleApproval(baseline.bundle, 'account for access already granted')
            : { mode: 'auto', reason: 'account needed by policy' };
          if (lifecycle === 'return' && o.op === 'unsuspend') approval = { mode: 'auto', reason: 'return from leave restores existing access' };
          break;
        }
      }
      return { id: stepId(d.target, o.op, o.entitlement), target: d.target, op: o.op, entitlement: o.entitlement, reason: o.reason, approval };
    });
    targets.push({ target: d.target, kind: d.kind, mode: d.mode, accountId: account?.id, steps });
  }

  // Data handling (mailbox, files) only exists for someone who had an identity account.
  const idpActual = actual[policy.idp.name];
  const hadIdpAccount = Array.isArray(idpActual) ? idpActual.length > 0 : !!idpActual;
  if (leaver && desired.inScope && hadIdpAccount) {
    for (const dh of policy.document.leaver.dataHandling) {
      const id = `data:${dh.id}`;
      approvals.set(id, {
        id,
        kind: 'dataHandling',
        bundles: [],
        dataHandling: { id: dh.id, action: dh.action, description: dh.description, ...(dh.target ? { target: dh.target } : {}) },
        approverRole: 'manager',
        approvers: [],
        privileged: false,
        entitlements: [],
        reason: `${dh.description}: data handling for a leaver needs the manager`,
      });
    }
  }

  return {
    employeeId: desired.employeeId,
    lifecycle,
    mappingVersion: desired.mappingVersion,
    inScope: desired.inScope,
    targets,
    approvals: [...approvals.values()],
    stepCount: targets.reduce((n, t) => n + t.steps.length, 0),
  };
}

/**
 * Desired state with the decisions applied: entitlements whose every granting bundle was
 * rejected are dropped unless the person already holds them (a rejection withholds new access;
 * it does not strip access approved before), and an app account whose every justifying bundle
 * was rejected is not created.
 */
export function applyDecisions(
  desired: DesiredState,
  rejectedBundles: ReadonlySet<string>,
  actual: ActualState,
  policy: Policy,
): DesiredState {
  if (rejectedBundles.size === 0) return desired;
  const bundles = desired.bundles.filter((b) => !rejectedBundles.has(b.bundle));
  const targets = desired.targets.map((d) => {
    const found = actual[d.target];
    const account = Array.isArray(found) ? found[0] : found ?? undefined;
    const held = new Set((account?.entitlements ?? []).map(entitlementKey));
    const entitlements = d.entitlements.filter((e) => {
      const grants = [e.bundle, ...(e.alsoGrantedBy ?? []).map((g) => g.bundle)];
      return grants.some((b) => !rejectedBundles.has(b)) || held.has(entitlementKey(e));
    });
    let accountStatus = d.account;
    if (d.account !== 'disabled' && d.target !== policy.idp.name && !account) {
      const stillListed = bundles.some((b) => policy.document.bundles[b.bundle]?.targets[d.target] !== undefined);
      if (!stillListed) accountStatus = 'disabled';
    }
    return { ...d, account: accountStatus, entitlements: accountStatus === 'disabled' && !account ? [] : entitlements };
  });
  return { ...desired, bundles, targets };
}
