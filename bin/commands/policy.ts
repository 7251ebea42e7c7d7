/** `jml policy check|explain|diff` and `jml plan`: the access policy from a terminal. */
import { parseArgs } from 'node:util';
import { desiredState, type DesiredState } from '#core/desired-state';
import { normaliseHrEvent, statusAfter, LIFECYCLES, LIFECYCLE_OF, WorkerSchema, type Lifecycle, type PersonStatus } from '#core/hr-event';
import { plan, type ActualState, type Plan } from '#core/plan';
import type { Policy } from '#core/policy';
import { loadPolicyText } from '#core/policy-yaml';
import { policyImpact, type PolicyImpact } from '#core/policy-diff';
import { parseOrThrow } from '#core/validation';
import { DEFAULT_POLICY, UsageError, readRoster, readStructured, readText } from './io.ts';

export function loadPolicyFile(path = DEFAULT_POLICY): Policy {
  return loadPolicyText(readText(path, 'policy'));
}

export function policyCheck(args: string[]): number {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  const file = positionals[0] ?? DEFAULT_POLICY;
  const p = loadPolicyFile(file);
  const d = p.document;
  const summary = {
    file,
    mappingVersion: p.mappingVersion,
    company: d.company.name,
    idp: `${p.idp.name} (${p.idp.kind})`,
    targets: d.targets.map((t) => ({ name: t.name, kind: t.kind, mode: t.mode, provisionedBy: t.provisionedBy, owner: t.owner.email })),
    bundles: Object.keys(d.bundles).length,
    privilegedBundles: Object.entries(d.bundles).filter(([, b]) => b.kind === 'privileged').map(([n]) => n),
    rules: d.rules.length,
  };
  if (values.json) {
    console.log(JSON.stringify(summary, null, 2));
    return 0;
  }
  console.log(`✔ ${file} is valid`);
  console.log(`  mappingVersion  ${summary.mappingVersion}`);
  console.log(`  company         ${summary.company} (${d.company.timeZone})`);
  console.log(`  identity        ${summary.idp}`);
  console.log(`  targets         ${summary.targets.map((t) => `${t.name}[${t.kind}, ${t.mode}${t.provisionedBy === 'jml' ? '' : `, provisioned by ${t.provisionedBy}`}]`).join(', ')}`);
  console.log(`  bundles         ${summary.bundles} (privileged: ${summary.privilegedBundles.join(', ') || 'none'})`);
  console.log(`  rules           ${summary.rules}`);
  return 0;
}

interface PlanInputs {
  policy: Policy;
  lifecycle: Lifecycle;
  status: PersonStatus;
  desired: DesiredState;
  actual: ActualState;
}

function planInputs(args: string[]): { inputs: PlanInputs; json: boolean } {
  const { values } = parseArgs({
    args,
    options: {
      worker: { type: 'string' },
      event: { type: 'string' },
      actual: { type: 'string' },
      policy: { type: 'string' },
      lifecycle: { type: 'string' },
      now: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (!values.worker && !values.event) throw new UsageError('give --worker worker.json or --event event.json');
  const policy = loadPolicyFile(values.policy);
  let lifecycle: Lifecycle;
  let status: PersonStatus;
  let worker;
  if (values.event) {
    const event = normaliseHrEvent(readStructured(values.event, 'event'), { timeZone: policy.document.company.timeZone });
    worker = event.worker;
    lifecycle = event.lifecycle;
    status = statusAfter(undefined, event.eventType);
  } else {
    worker = parseOrThrow(WorkerSchema, readStructured(values.worker!, 'worker'), 'worker');
    lifecycle = (values.lifecycle ?? 'joiner') as Lifecycle;
    if (!LIFECYCLES.includes(lifecycle)) throw new UsageError(`--lifecycle must be one of ${LIFECYCLES.join(', ')}`);
    const eventType = (Object.entries(LIFECYCLE_OF).find(([, l]) => l === lifecycle)![0]) as keyof typeof LIFECYCLE_OF;
    status = statusAfter(undefined, eventType);
  }
  const actual = values.actual ? (readStructured(values.actual, 'actual state') as ActualState) : {};
  const desired = desiredState({ worker, status }, policy, values.now ? { now: values.now } : {});
  return { inputs: { policy, lifecycle, status, desired, actual }, json: !!values.json };
}

export function printProvenance(d: DesiredState): void {
  if (!d.inScope) {
    console.log(`${d.employeeId} is outside the policy scope: jml records events for this person and changes nothing.`);
    return;
  }
  console.log(`Desired state for ${d.employeeId} (${d.status}), mapping ${d.mappingVersion.slice(0, 12)}`);
  console.log(`  bundles: ${d.bundles.map((b) => `${b.bundle}${b.kind === 'privileged' ? ' [privileged]' : ''} ← rule ${b.rule}${b.expiresAt ? ` (until ${b.expiresAt})` : ''}`).join('; ') || 'none'}`);
  for (const t of d.targets) {
    console.log(`  ${t.target} (${t.kind}${t.mode === 'shadow' ? ', shadow' : ''}): account ${t.account}`);
    for (const e of t.entitlements) {
      const also = e.alsoGrantedBy?.length ? `; also ${e.alsoGrantedBy.map((g) => `${g.bundle} ← ${g.rule}`).join(', ')}` : '';
      console.log(`    ${e.type.padEnd(7)} ${e.value}${e.privileged ? ' [privileged]' : ''}  — bundle ${e.bundle} ← rule ${e.rule}${also}`);
    }
  }
}

export function printPlan(p: Plan): void {
  console.log(`Plan (${p.lifecycle}): ${p.stepCount} step(s)${p.stepCount === 0 ? ' — targets already match the desired state' : ''}`);
  for (const t of p.targets) {
    if (t.conflict) {
      console.log(`  ${t.target}: CONFLICT — ${t.conflict.length} accounts claim this person (${t.conflict.join(', ')}); nothing planned, an exception will be opened`);
      continue;
    }
    if (!t.steps.length) continue;
    console.log(`  ${t.target}${t.mode === 'shadow' ? ' (shadow: planned, not applied)' : ''}${t.accountId ? ` account ${t.accountId}` : ''}`);
    t.steps.forEach((s, i) => {
      const what = s.entitlement ? ` ${s.entitlement.type} ${s.entitlement.value}` : '';
      const gate = s.approval.mode === 'required' ? `waits for ${s.approval.request}` : s.approval.mode === 'none' ? 'no approval' : 'auto-approved';
      console.log(`    ${String(i + 1).padStart(2)}. ${s.op}${what}  [${gate}] ${s.reason}`);
    });
  }
  if (p.approvals.length) {
    console.log('  approvals:');
    for (const a of p.approvals) {
      const who = a.approverRole === 'manager' ? 'the manager' : a.approvers.join(', ');
      console.log(`    ${a.id} → ${who}${a.privileged ? ' [privileged]' : ''}: ${a.reason}`);
    }
  }
}

export function planCommand(args: string[]): number {
  const { inputs, json } = planInputs(args);
  const p = plan(inputs.desired, inputs.actual, inputs.policy, { lifecycle: inputs.lifecycle });
  if (json) {
    console.log(JSON.stringify({ desired: inputs.desired, plan: p }, null, 2));
    return 0;
  }
  printProvenance(inputs.desired);
  console.log('');
  printPlan(p);
  return 0;
}

export function explainCommand(args: string[]): number {
  const { inputs, json } = planInputs(args);
  if (json) console.log(JSON.stringify(inputs.desired, null, 2));
  else printProvenance(inputs.desired);
  return 0;
}

export function diffCommand(args: string[]): number {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { roster: { type: 'string' }, json: { type: 'boolean' }, now: { type: 'string' } },
  });
  if (positionals.length !== 2 || !values.roster) throw new UsageError('usage: jml policy diff <old.yaml> <new.yaml> --roster people.csv|json');
  const before = loadPolicyFile(positionals[0]);
  const after = loadPolicyFile(positionals[1]);
  const roster = readRoster(values.roster).map((raw, i) => ({
    worker: parseOrThrow(WorkerSchema, raw, `roster[${i}]`),
    status: ((raw as { status?: string }).status as PersonStatus | undefined) ?? 'active',
  }));
  const impact = policyImpact(before, after, roster, values.now);
  if (values.json) console.log(JSON.stringify(impact, null, 2));
  else printImpact(impact);
  return 0;
}

function printImpact(i: PolicyImpact): void {
  console.log(`Policy ${i.fromVersion.slice(0, 12)} → ${i.toVersion.slice(0, 12)}: ${i.affected.length} of ${i.people} people affected`);
  console.log(`  +${i.totals.gains} entitlement(s) gained (${i.totals.privilegedGains} privileged), -${i.totals.losses} lost (${i.totals.privilegedLosses} privileged)`);
  if (i.totals.privilegedGains) console.log('  ⚠ privileged gains need their app owners to review this change');
  for (const p of i.affected) {
    console.log(`  ${p.employeeId} ${p.name}${p.scopeChange ? ` (${p.scopeChange})` : ''}`);
    for (const a of p.accountChanges) console.log(`    account ${a.target}: ${a.from} → ${a.to}`);
    for (const g of p.gains) console.log(`    + ${g.target} ${g.type} ${g.value}${g.privileged ? ' [PRIVILEGED]' : ''} (bundle ${g.bundle} ← rule ${g.rule})`);
    for (const l of p.losses) console.log(`    - ${l.target} ${l.type} ${l.value}${l.privileged ? ' [privileged]' : ''} (was bundle ${l.bundle} ← rule ${l.rule})`);
  }
}
