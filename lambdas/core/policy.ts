/**
 * Access policy as code (`config/access-policy.yaml`, format in docs/policy.md).
 *
 * The policy is change-managed like a release: it is validated strictly (unknown keys are
 * errors, cross-references are checked) and identified by `mappingVersion`, the sha256 of its
 * canonical key-sorted JSON form — so whitespace, comments and key order do not change it, and
 * every run records exactly which policy computed its desired state.
 */
import * as z from 'zod';
import { ENTITLEMENT_TYPES, TARGET_KINDS, TARGET_MODES, type EntitlementType, type TargetKind } from './access.ts';
import { EMPLOYMENT_TYPES } from './hr-event.ts';
import { canonicalJson, sha256Hex } from './hash.ts';
import { isValidTimeZone } from './time.ts';
import { parseOrThrow } from './validation.ts';
import { ValidationError } from './errors.ts';

/** Which entitlement types each kind of target understands. */
export const ENTITLEMENT_TYPES_BY_KIND: Record<TargetKind, readonly EntitlementType[]> = {
  okta: ['group', 'app'],
  entra: ['group', 'license'],
  scim: ['group', 'role'],
};

const id = z.string().regex(/^[a-z0-9][a-z0-9-]*$/, { message: 'lower-case letters, digits and dashes' }).max(64);
const email = z.email({ message: 'must be an email address' });
const nonEmpty = z.string().trim().min(1).max(256);
const stringOrList = z.union([nonEmpty, z.array(nonEmpty).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

/** ISO 8601 duration, days/hours only (P90D, PT12H, P1DT12H). */
const duration = z
  .string()
  .regex(/^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$/, { message: 'must be an ISO 8601 duration like P90D or PT12H' })
  .refine((s) => s !== 'P' && s !== 'PT', { message: 'must be an ISO 8601 duration like P90D or PT12H' });

export function durationMs(iso: string): number {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$/.exec(iso);
  if (!m) throw new Error(`not a duration: ${iso}`);
  return ((+(m[1] ?? 0) * 24 + +(m[2] ?? 0)) * 60 + +(m[3] ?? 0)) * 60_000;
}

const OwnerSchema = z.object({ team: nonEmpty, email }).strict();

const TargetSchema = z
  .object({
    name: id,
    kind: z.enum(TARGET_KINDS),
    /** The SaaS application this target is (two targets must not be the same app). Defaults to `name`. */
    app: id.optional(),
    displayName: nonEmpty.optional(),
    /** Owner of record: accountable for the target, receives its exceptions, approves privileged access. */
    owner: OwnerSchema,
    /** Which system provisions this target. jml manages only targets it provisions. */
    provisionedBy: z.enum(['jml', 'okta', 'entra', 'manual']).default('jml'),
    mode: z.enum(TARGET_MODES).default('enforce'),
    /** Days a leaver's disabled account is kept before the hard delete. */
    retentionDays: z.number().int().min(0).max(3650),
    /** Reconciliation action on drift other than leavers: re-converge or open an exception. */
    onDrift: z.enum(['converge', 'exception']).default('converge'),
    /**
     * The target's API rate limit for jml's credentials. When set, runs reserve their calls from
     * one shared budget at this rate before they start them (a burst is paced in the workflows,
     * not in queued calls). The identity provider only.
     */
    rateLimit: z
      .object({
        requestsPerMinute: z.number().int().min(1).max(1_000_000),
        /** Calls that may start ahead of the pace (default: a tenth of a minute's budget). */
        burst: z.number().int().min(0).max(1_000_000).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const EntitlementSpecSchema = z.union([
  z.object({ group: nonEmpty }).strict(),
  z.object({ license: nonEmpty }).strict(),
  z.object({ role: nonEmpty }).strict(),
  z.object({ app: nonEmpty }).strict(),
]);
type EntitlementSpec = z.infer<typeof EntitlementSpecSchema>;

const BundleSchema = z
  .object({
    description: nonEmpty.optional(),
    kind: z.enum(['baseline', 'privileged']),
    /** App owners who approve a privileged bundle (default: the owners of its targets). */
    approvers: z.array(email).min(1).optional(),
    /** Time-bound bundles are removed this long after they are granted. */
    expiresAfter: duration.optional(),
    /** Per target: the entitlements this bundle grants. Listing a target (even with []) means an account there. */
    targets: z.record(id, z.array(EntitlementSpecSchema)),
  })
  .strict();

const ConditionSchema = z
  .object({
    department: stringOrList.optional(),
    location: stringOrList.optional(),
    /** Glob patterns (`ENG-*`). */
    jobCode: stringOrList.optional(),
    employmentType: z.enum(EMPLOYMENT_TYPES).optional(),
    /** employeeId of the manager (e.g. everyone reporting to the CFO). */
    managerId: stringOrList.optional(),
  })
  .strict();

const RuleSchema = z
  .object({
    id,
    description: nonEmpty.optional(),
    when: ConditionSchema.default({}),
    unless: ConditionSchema.optional(),
    grant: z.array(id).min(1),
  })
  .strict();

const ScopeSchema = z
  .object({
    departments: z.array(nonEmpty).optional(),
    locations: z.array(nonEmpty).optional(),
    employeeIds: z.array(nonEmpty).optional(),
    excludeEmployeeIds: z.array(nonEmpty).default([]),
  })
  .strict();

const ApprovalsSchema = z
  .object({
    /** Approval window before escalation (the waiting state's TimeoutSeconds). */
    windowHours: z.number().int().min(1).max(24 * 30).default(72),
    /** Who is asked when the first approver lets the window lapse. */
    escalateTo: z.enum(['managersManager', 'fallback']).default('managersManager'),
    /** Baseline access for a mover: auto-approved, or the manager approves. */
    moverBaseline: z.enum(['auto', 'manager']).default('auto'),
    /** Send a reminder this many hours before the window closes (0 = none). */
    reminderHours: z.number().int().min(0).default(24),
  })
  .strict();

const DataHandlingSchema = z
  .object({
    id,
    description: nonEmpty,
    /** mailbox delegation, file ownership transfer, retention exception. */
    action: z.enum(['mailboxDelegation', 'fileTransfer', 'retentionException']),
    target: id.optional(),
  })
  .strict();

export const PolicySchema = z
  .object({
    version: z.literal(1),
    company: z
      .object({
        name: nonEmpty,
        timeZone: z.string().refine(isValidTimeZone, { message: 'must be an IANA time zone like Europe/London' }),
        emailDomain: z.string().regex(/^[a-z0-9.-]+\.[a-z]{2,}$/i, { message: 'must be a domain name' }),
        /** Approves when the manager is unknown or is the person themself; releases bulk-guard holds. */
        fallbackApprover: email,
      })
      .strict(),
    scope: ScopeSchema.default({ excludeEmployeeIds: [] }),
    targets: z.array(TargetSchema).min(1),
    bundles: z.record(id, BundleSchema),
    rules: z.array(RuleSchema).min(1),
    approvals: ApprovalsSchema.default({ windowHours: 72, escalateTo: 'managersManager', moverBaseline: 'auto', reminderHours: 24 }),
    joiner: z
      .object({
        /** Pre-hire provisioning: run the joiner this long before the start date. */
        leadTime: duration.default('P1D'),
        /** Entra Temporary Access Pass lifetime for day one (Microsoft recommends 24 h). */
        tapLifetimeMinutes: z.number().int().min(60).max(43200).default(1440),
      })
      .strict()
      .default({ leadTime: 'P1D', tapLifetimeMinutes: 1440 }),
    leaver: z
      .object({ dataHandling: z.array(DataHandlingSchema).default([]) })
      .strict()
      .default({ dataHandling: [] }),
    sla: z
      .object({ timeToDisableMinutes: z.number().int().min(1).default(60) })
      .strict()
      .default({ timeToDisableMinutes: 60 }),
    bulkGuard: z
      .object({
        maxPercent: z.number().min(0).max(100).default(5),
        maxCount: z.number().int().min(1).default(50),
        /** Never hold fewer than this many (5 % of a 30-person company is one person). */
        minCount: z.number().int().min(1).default(5),
        windowMinutes: z.number().int().min(1).default(60),
      })
      .strict()
      .default({ maxPercent: 5, maxCount: 50, minCount: 5, windowMinutes: 60 }),
  })
  .strict();

export type PolicyDocument = z.infer<typeof PolicySchema>;
export type PolicyTarget = z.infer<typeof TargetSchema>;
export type Bundle = z.infer<typeof BundleSchema>;
export type Rule = z.infer<typeof RuleSchema>;
export type Condition = z.infer<typeof ConditionSchema>;

export interface BundleEntitlement {
  target: string;
  type: EntitlementType;
  value: string;
  /** `type:value`, precomputed (the planner's hot path compares these). */
  key: string;
}

/** A validated policy with its derived lookups. */
export interface Policy {
  document: PolicyDocument;
  mappingVersion: string;
  idp: PolicyTarget;
  targetsByName: Map<string, PolicyTarget>;
  /** Targets jml provisions, IdP first (execution order). */
  managedTargets: PolicyTarget[];
  bundleEntitlements: Map<string, BundleEntitlement[]>;
  /** Compiled rule matchers, in policy order; they take a `matchView` of the worker. */
  matchers: RuleMatcher[];
  /**
   * The matchers that can match a department (rules naming it or naming none), in policy order:
   * a worker is tested against a few dozen rules, not all of them.
   */
  matchersFor(department: string): RuleMatcher[];
}

export interface RuleMatcher {
  rule: Rule;
  matches: (w: MatchableWorker) => boolean;
}

export interface MatchableWorker {
  department: string;
  location: string;
  jobCode: string;
  employmentType: string;
  managerId?: string;
}

/** Rule matching is case-insensitive; lower-case a worker's attributes once, not once per rule. */
export function matchView(w: MatchableWorker): MatchableWorker {
  return {
    department: w.department.toLowerCase(),
    location: w.location.toLowerCase(),
    jobCode: w.jobCode,
    employmentType: w.employmentType,
    managerId: w.managerId?.toLowerCase(),
  };
}

function specToEntitlement(spec: EntitlementSpec): { type: EntitlementType; value: string } {
  const [type, value] = Object.entries(spec)[0] as [EntitlementType, string];
  return { type, value };
}

/** Cross-reference checks zod cannot express per field. */
function crossCheck(doc: PolicyDocument): string[] {
  const problems: string[] = [];
  const names = new Map<string, number>();
  const apps = new Map<string, string>();
  doc.targets.forEach((t, i) => {
    if (names.has(t.name)) problems.push(`targets[${i}].name: target "${t.name}" is defined twice`);
    names.set(t.name, i);
    const app = t.app ?? t.name;
    const other = apps.get(app);
    if (other !== undefined && other !== t.name) {
      problems.push(`targets[${i}]: app "${app}" is already target "${other}" — one target must have exactly one owner`);
    }
    apps.set(app, t.name);
  });
  const idps = doc.targets.filter((t) => t.kind !== 'scim');
  if (idps.length !== 1) {
    problems.push(`targets: exactly one identity provider (okta or entra) is required, found ${idps.length}`);
  }
  doc.targets.forEach((t, i) => {
    if (t.rateLimit && t.kind === 'scim') {
      problems.push(`targets[${i}].rateLimit: only the identity provider's calls are budgeted; remove it from "${t.name}"`);
    }
  });
  for (const [bundleName, bundle] of Object.entries(doc.bundles)) {
    for (const [targetName, specs] of Object.entries(bundle.targets)) {
      const t = doc.targets.find((x) => x.name === targetName);
      if (!t) {
        problems.push(`bundles.${bundleName}.targets.${targetName}: no such target`);
        continue;
      }
      if (t.provisionedBy !== 'jml') {
        problems.push(
          `bundles.${bundleName}.targets.${targetName}: target is provisioned by ${t.provisionedBy}; jml will not manage a target it does not own`,
        );
      }
      specs.forEach((spec, i) => {
        const e = specToEntitlement(spec);
        if (!ENTITLEMENT_TYPES_BY_KIND[t.kind].includes(e.type)) {
          problems.push(
            `bundles.${bundleName}.targets.${targetName}[${i}]: ${t.kind} targets take ${ENTITLEMENT_TYPES_BY_KIND[t.kind].join(' or ')}, not ${e.type}`,
          );
        }
        // An IdP app assignment that points at a SCIM target jml provisions is a second provisioning path.
        if (e.type === 'app') {
          const racing = doc.targets.find((x) => x.kind === 'scim' && (x.app ?? x.name) === e.value.toLowerCase() && x.provisionedBy === 'jml');
          if (racing) {
            problems.push(
              `bundles.${bundleName}.targets.${targetName}[${i}]: app "${e.value}" is also provisioned by jml as target "${racing.name}" — two provisioning paths for one app`,
            );
          }
        }
      });
    }
  }
  doc.rules.forEach((r, i) => {
    if (doc.rules.findIndex((x) => x.id === r.id) !== i) problems.push(`rules[${i}].id: rule "${r.id}" is defined twice`);
    r.grant.forEach((b, j) => {
      if (!doc.bundles[b]) problems.push(`rules[${i}].grant[${j}]: no such bundle "${b}"`);
    });
  });
  doc.leaver.dataHandling.forEach((d, i) => {
    if (d.target && !names.has(d.target)) problems.push(`leaver.dataHandling[${i}].target: no such target "${d.target}"`);
  });
  return problems;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

function compileCondition(c: Condition | undefined): ((w: MatchableWorker) => boolean) | undefined {
  if (!c) return undefined;
  const checks: Array<(w: MatchableWorker) => boolean> = [];
  const eqAny = (values: string[] | undefined, pick: (w: MatchableWorker) => string | undefined) => {
    if (!values) return;
    const set = new Set(values.map((v) => v.toLowerCase()));
    checks.push((w) => set.has(pick(w) ?? ''));
  };
  eqAny(c.department, (w) => w.department);
  eqAny(c.location, (w) => w.location);
  eqAny(c.managerId, (w) => w.managerId);
  if (c.employmentType) checks.push((w) => w.employmentType === c.employmentType);
  if (c.jobCode) {
    const patterns = c.jobCode.map(globToRegExp);
    checks.push((w) => patterns.some((p) => p.test(w.jobCode)));
  }
  return (w) => {
    for (const check of checks) if (!check(w)) return false;
    return true;
  };
}

/** Validates a parsed policy document and compiles it. Throws ValidationError with every problem. */
export function compilePolicy(input: unknown): Policy {
  const document = parseOrThrow(PolicySchema, input);
  const problems = crossCheck(document);
  if (problems.length) throw new ValidationError(problems);
  const idp = document.targets.find((t) => t.kind !== 'scim')!;
  const managedTargets = [idp, ...document.targets.filter((t) => t !== idp)].filter((t) => t.provisionedBy === 'jml');
  const bundleEntitlements = new Map<string, BundleEntitlement[]>();
  for (const [name, bundle] of Object.entries(document.bundles)) {
    bundleEntitlements.set(
      name,
      Object.entries(bundle.targets).flatMap(([target, specs]) =>
        specs.map((s) => {
          const e = specToEntitlement(s);
          return { target, ...e, key: `${e.type}:${e.value}` };
        }),
      ),
    );
  }
  const matchers = document.rules.map((rule) => {
    const when = compileCondition(rule.when)!;
    const unless = compileCondition(rule.unless);
    return { rule, matches: (w: MatchableWorker) => when(w) && !(unless?.(w) ?? false) };
  });
  const byDepartment = new Map<string, RuleMatcher[]>();
  const anyDepartment = matchers.filter((m) => !m.rule.when.department);
  for (const m of matchers) {
    for (const d of m.rule.when.department ?? []) byDepartment.set(d.toLowerCase(), []);
  }
  for (const [dept, list] of byDepartment) {
    for (const m of matchers) {
      if (!m.rule.when.department || m.rule.when.department.some((d) => d.toLowerCase() === dept)) list.push(m);
    }
  }
  return {
    document,
    matchersFor: (department) => byDepartment.get(department.toLowerCase()) ?? anyDepartment,
    mappingVersion: mappingVersionOf(document),
    idp,
    targetsByName: new Map(document.targets.map((t) => [t.name, t])),
    managedTargets,
    bundleEntitlements,
    matchers,
  };
}

/** sha256 of the canonical (key-sorted) JSON of the validated policy. */
export function mappingVersionOf(document: PolicyDocument): string {
  return sha256Hex(canonicalJson(document));
}

/** Is the worker in the population jml manages (pilot scope)? */
export function inScope(policy: Policy, w: { employeeId: string; department: string; location: string }): boolean {
  const s = policy.document.scope;
  if (s.excludeEmployeeIds.includes(w.employeeId)) return false;
  if (s.employeeIds && s.employeeIds.includes(w.employeeId)) return true;
  const deps = s.departments;
  const locs = s.locations;
  if (deps && !deps.some((d) => d.toLowerCase() === w.department.toLowerCase())) return false;
  if (locs && !locs.some((l) => l.toLowerCase() === w.location.toLowerCase())) return false;
  if (s.employeeIds && !deps && !locs) return false; // an explicit list only
  return true;
}
