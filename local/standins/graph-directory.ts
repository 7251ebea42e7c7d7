/**
 * The in-memory tenant behind the Graph stand-in: users, groups, direct memberships, subscribed
 * SKUs, license assignments, Temporary Access Passes, the directory audit log and the change
 * sequence that `/users/delta` reads.
 *
 * Every mutation goes through a method here so that it bumps the change sequence and appends a
 * directoryAudit entry exactly like the tenant would; tests inspect the same object.
 * Validation messages are Graph's own wording, so a connector maps what it will really get.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { GraphHttpError, badRequest, notFound } from './graph-odata.ts';

export interface GraphUser {
  id: string;
  userPrincipalName: string;
  displayName: string;
  mailNickname: string;
  accountEnabled: boolean;
  givenName: string | null;
  surname: string | null;
  mail: string | null;
  employeeId: string | null;
  employeeType: string | null;
  department: string | null;
  jobTitle: string | null;
  officeLocation: string | null;
  usageLocation: string | null;
  createdDateTime: string;
  signInSessionsValidFromDateTime: string;
  /** Stand-in bookkeeping: the password itself is never stored, only that one was set. */
  passwordSet: boolean;
  forceChangePasswordNextSignIn: boolean;
}

export interface GraphGroup {
  id: string;
  displayName: string;
  description: string | null;
  mailNickname: string;
  mailEnabled: boolean;
  securityEnabled: boolean;
  groupTypes: string[];
  createdDateTime: string;
}

export interface SubscribedSku {
  id: string;
  skuId: string;
  skuPartNumber: string;
  appliesTo: 'User';
  capabilityStatus: 'Enabled';
  consumedUnits: number;
  prepaidUnits: { enabled: number; suspended: number; warning: number; lockedOut: number };
  servicePlans: Array<{ servicePlanId: string; servicePlanName: string; provisioningStatus: string; appliesTo: string }>;
}

export interface TemporaryAccessPassRecord {
  id: string;
  userId: string;
  createdDateTime: string;
  startDateTime: string;
  lifetimeInMinutes: number;
  isUsableOnce: boolean;
  /** sha256 of the pass: tests can check a presented secret without the stand-in keeping it. */
  secretSha256: string;
}

export interface DirectoryAudit {
  id: string;
  category: string;
  correlationId: string;
  result: 'success' | 'failure';
  resultReason: string;
  activityDisplayName: string;
  activityDateTime: string;
  loggedByService: string;
  operationType: string;
  initiatedBy: {
    user: null;
    app: { appId: string; displayName: string; servicePrincipalId: string; servicePrincipalName: string | null };
  };
  targetResources: Array<{
    id: string;
    displayName: string | null;
    type: 'User' | 'Group';
    userPrincipalName: string | null;
    modifiedProperties: Array<{ displayName: string; oldValue: string | null; newValue: string | null }>;
  }>;
  additionalDetails: Array<{ key: string; value: string }>;
}

/** Seed data. References (`user`, `group`, `sku`) accept an id, a UPN / display name, or a part number. */
export interface GraphSeed {
  users?: Array<Partial<Omit<GraphUser, 'passwordSet' | 'forceChangePasswordNextSignIn'>> & { userPrincipalName: string }>;
  groups?: Array<Partial<GraphGroup> & { displayName: string }>;
  memberships?: Array<{ group: string; user: string }>;
  skus?: Array<{ skuPartNumber: string; skuId?: string; prepaidUnits?: number; servicePlans?: string[] }>;
  licenses?: Array<{ user: string; sku: string }>;
}

/** Who the audit log says made a change, and the ids that tie it to the HTTP request. */
export interface ChangeContext {
  appId: string;
  correlationId: string;
}

export const USER_PROPERTIES = [
  'id', 'userPrincipalName', 'displayName', 'mailNickname', 'accountEnabled', 'givenName', 'surname', 'mail',
  'employeeId', 'employeeType', 'department', 'jobTitle', 'officeLocation', 'usageLocation', 'createdDateTime',
  'signInSessionsValidFromDateTime', 'assignedLicenses', 'businessPhones', 'mobilePhone', 'preferredLanguage',
] as const;
/** What v1.0 returns for a user when the caller does not `$select` (note: no accountEnabled, no employeeId). */
export const DEFAULT_USER_PROPERTIES = [
  'businessPhones', 'displayName', 'givenName', 'jobTitle', 'mail', 'mobilePhone', 'officeLocation',
  'preferredLanguage', 'surname', 'userPrincipalName',
] as const;
export const USER_FILTERABLE = [
  'id', 'userPrincipalName', 'employeeId', 'displayName', 'mail', 'mailNickname', 'accountEnabled', 'department',
  'jobTitle', 'employeeType', 'usageLocation', 'givenName', 'surname',
] as const;
export const GROUP_PROPERTIES = [
  'id', 'displayName', 'description', 'mailNickname', 'mailEnabled', 'securityEnabled', 'groupTypes', 'createdDateTime',
] as const;
export const GROUP_FILTERABLE = ['id', 'displayName', 'mailNickname', 'securityEnabled', 'mailEnabled'] as const;

const PATCHABLE_USER = [
  'accountEnabled', 'displayName', 'givenName', 'surname', 'department', 'jobTitle', 'officeLocation',
  'usageLocation', 'employeeId', 'employeeType', 'mail', 'mailNickname', 'userPrincipalName',
] as const;

const MAX_EMPLOYEE_ID = 16;

/**
 * Everything a `Directory` holds, as plain JSON (what `local/standins/persistence.ts` writes so
 * the tenant survives a restart of the local runtime). Temporary Access Passes are kept as their
 * hashes only, as in memory.
 */
export interface DirectorySnapshot {
  kind: 'graph';
  version: 1;
  tenantId: string;
  users: GraphUser[];
  groups: GraphGroup[];
  /** [groupId, member user ids]. */
  members: Array<[string, string[]]>;
  skus: SubscribedSku[];
  /** [userId, [skuId, disabled plan ids][]]. */
  licenses: Array<[string, Array<[string, string[]]>]>;
  taps: TemporaryAccessPassRecord[];
  audits: DirectoryAudit[];
  deleted: Array<{ user: GraphUser; seq: number }>;
  seq: number;
  /** [userId, sequence of its last change]. */
  userSeq: Array<[string, number]>;
}

export class Directory {
  readonly users = new Map<string, GraphUser>();
  readonly groups = new Map<string, GraphGroup>();
  /** groupId → direct member user ids. */
  readonly members = new Map<string, Set<string>>();
  readonly skus = new Map<string, SubscribedSku>();
  /** userId → skuId → disabled plan ids. */
  readonly licenses = new Map<string, Map<string, string[]>>();
  /** userId → the user's one Temporary Access Pass. */
  readonly taps = new Map<string, TemporaryAccessPassRecord>();
  readonly audits: DirectoryAudit[] = [];
  /** Soft-deleted users (what `/directory/deletedItems` would hold) with the sequence of the deletion. */
  readonly deleted = new Map<string, { user: GraphUser; seq: number }>();
  /** Change sequence for delta: bumped by every user mutation. */
  seq = 0;
  /** userId → sequence of its last change. */
  readonly userSeq = new Map<string, number>();
  /**
   * Called after every change (each API write appends a directoryAudit entry; seeding calls it
   * too). Unset by default: persistence is opt-in (`persistence.ts`).
   */
  onChange?: () => void;

  constructor(
    readonly tenantId: string,
    private readonly now: () => number,
    private readonly appDisplayName = 'jml provisioning',
  ) {}

  private iso(): string {
    return new Date(this.now()).toISOString();
  }

  // ---- lookups -------------------------------------------------------------------------------

  /** A user by object id or userPrincipalName (case-insensitive), as Graph resolves `/users/{id | upn}`. */
  user(idOrUpn: string): GraphUser {
    const u = this.findUser(idOrUpn);
    if (!u) throw notFound(idOrUpn);
    return u;
  }

  findUser(idOrUpn: string): GraphUser | undefined {
    const direct = this.users.get(idOrUpn);
    if (direct) return direct;
    const lower = idOrUpn.toLowerCase();
    for (const u of this.users.values()) if (u.userPrincipalName.toLowerCase() === lower) return u;
    return undefined;
  }

  group(id: string): GraphGroup {
    const g = this.groups.get(id);
    if (!g) throw notFound(id);
    return g;
  }

  findGroup(idOrName: string): GraphGroup | undefined {
    return this.groups.get(idOrName) ?? [...this.groups.values()].find((g) => g.displayName === idOrName);
  }

  findSku(idOrPart: string): SubscribedSku | undefined {
    return this.skus.get(idOrPart) ?? [...this.skus.values()].find((s) => s.skuPartNumber === idOrPart);
  }

  /** Direct memberships of a user, as `/users/{id}/memberOf` lists them (groups only here). */
  memberOf(userId: string): GraphGroup[] {
    const out: GraphGroup[] = [];
    for (const [gid, set] of this.members) if (set.has(userId)) out.push(this.groups.get(gid)!);
    return out.sort((a, b) => a.displayName.localeCompare(b.displayName));
  }

  isMember(groupId: string, userId: string): boolean {
    return this.members.get(groupId)?.has(userId) ?? false;
  }

  /** Group display names the user is a direct member of (test convenience). */
  groupNamesOf(idOrUpn: string): string[] {
    const u = this.findUser(idOrUpn);
    return u ? this.memberOf(u.id).map((g) => g.displayName) : [];
  }

  /** SKU part numbers assigned to the user (test convenience). */
  licenseNamesOf(idOrUpn: string): string[] {
    const u = this.findUser(idOrUpn);
    if (!u) return [];
    return [...(this.licenses.get(u.id)?.keys() ?? [])].map((id) => this.skus.get(id)?.skuPartNumber ?? id).sort();
  }

  assignedLicenses(userId: string): Array<{ skuId: string; disabledPlans: string[] }> {
    return [...(this.licenses.get(userId) ?? new Map<string, string[]>())].map(([skuId, disabledPlans]) => ({
      skuId,
      disabledPlans,
    }));
  }

  /** The user as Graph represents it (all properties; callers project). */
  userView(u: GraphUser): Record<string, unknown> {
    const { passwordSet: _p, forceChangePasswordNextSignIn: _f, ...visible } = u;
    return {
      ...visible,
      businessPhones: [],
      mobilePhone: null,
      preferredLanguage: null,
      assignedLicenses: this.assignedLicenses(u.id),
    };
  }

  // ---- seeding -------------------------------------------------------------------------------

  seed(seed: GraphSeed): void {
    for (const s of seed.skus ?? []) {
      const skuId = s.skuId ?? uuidFrom(`sku:${s.skuPartNumber}`);
      this.skus.set(skuId, {
        id: `${this.tenantId}_${skuId}`,
        skuId,
        skuPartNumber: s.skuPartNumber,
        appliesTo: 'User',
        capabilityStatus: 'Enabled',
        consumedUnits: 0,
        prepaidUnits: { enabled: s.prepaidUnits ?? 25, suspended: 0, warning: 0, lockedOut: 0 },
        servicePlans: (s.servicePlans ?? [`${s.skuPartNumber}_CORE`]).map((name) => ({
          servicePlanId: uuidFrom(`plan:${name}`),
          servicePlanName: name,
          provisioningStatus: 'Success',
          appliesTo: 'User',
        })),
      });
    }
    for (const g of seed.groups ?? []) {
      const id = g.id ?? randomUUID();
      this.groups.set(id, {
        id,
        displayName: g.displayName,
        description: g.description ?? null,
        mailNickname: g.mailNickname ?? (g.displayName.replace(/[^A-Za-z0-9]/g, '').slice(0, 64) || id.slice(0, 8)),
        mailEnabled: g.mailEnabled ?? false,
        securityEnabled: g.securityEnabled ?? true,
        groupTypes: g.groupTypes ?? [],
        createdDateTime: g.createdDateTime ?? this.iso(),
      });
      this.members.set(id, new Set());
    }
    for (const u of seed.users ?? []) {
      const id = u.id ?? randomUUID();
      const nick = u.mailNickname ?? u.userPrincipalName.split('@')[0]!;
      const user: GraphUser = {
        id,
        userPrincipalName: u.userPrincipalName,
        displayName: u.displayName ?? nick,
        mailNickname: nick,
        accountEnabled: u.accountEnabled ?? true,
        givenName: u.givenName ?? null,
        surname: u.surname ?? null,
        mail: u.mail ?? null,
        employeeId: u.employeeId ?? null,
        employeeType: u.employeeType ?? null,
        department: u.department ?? null,
        jobTitle: u.jobTitle ?? null,
        officeLocation: u.officeLocation ?? null,
        usageLocation: u.usageLocation ?? null,
        createdDateTime: u.createdDateTime ?? this.iso(),
        signInSessionsValidFromDateTime: u.signInSessionsValidFromDateTime ?? this.iso(),
        passwordSet: true,
        forceChangePasswordNextSignIn: false,
      };
      this.users.set(id, user);
      this.touch(id);
    }
    for (const m of seed.memberships ?? []) {
      const g = this.findGroup(m.group);
      const u = this.findUser(m.user);
      if (!g || !u) throw new Error(`seed membership: unknown ${g ? 'user' : 'group'} in ${JSON.stringify(m)}`);
      this.members.get(g.id)!.add(u.id);
    }
    for (const l of seed.licenses ?? []) {
      const u = this.findUser(l.user);
      const s = this.findSku(l.sku);
      if (!u || !s) throw new Error(`seed license: unknown ${u ? 'sku' : 'user'} in ${JSON.stringify(l)}`);
      this.licensesOf(u.id).set(s.skuId, []);
      s.consumedUnits += 1;
    }
    this.onChange?.();
  }

  // ---- persistence ---------------------------------------------------------------------------

  /** The whole tenant as plain JSON (copied, so later writes do not change it). */
  snapshot(): DirectorySnapshot {
    return structuredClone({
      kind: 'graph',
      version: 1,
      tenantId: this.tenantId,
      users: [...this.users.values()],
      groups: [...this.groups.values()],
      members: [...this.members].map(([gid, set]) => [gid, [...set]]),
      skus: [...this.skus.values()],
      licenses: [...this.licenses].map(([uid, bySku]) => [uid, [...bySku]]),
      taps: [...this.taps.values()],
      audits: this.audits,
      deleted: [...this.deleted.values()],
      seq: this.seq,
      userSeq: [...this.userSeq],
    } satisfies DirectorySnapshot);
  }

  /** Replaces everything with a snapshot; the change sequence goes on where it left off. */
  restore(snapshot: DirectorySnapshot): void {
    const s = structuredClone(snapshot);
    for (const m of [this.users, this.groups, this.members, this.skus, this.licenses, this.taps, this.deleted, this.userSeq]) m.clear();
    this.audits.length = 0;
    for (const u of s.users) this.users.set(u.id, u);
    for (const g of s.groups) {
      this.groups.set(g.id, g);
      this.members.set(g.id, new Set());
    }
    for (const [gid, ids] of s.members) this.members.set(gid, new Set(ids));
    for (const sku of s.skus) this.skus.set(sku.skuId, sku);
    for (const [uid, bySku] of s.licenses) this.licenses.set(uid, new Map(bySku));
    for (const t of s.taps) this.taps.set(t.userId, t);
    this.audits.push(...s.audits);
    for (const d of s.deleted) this.deleted.set(d.user.id, d);
    for (const [uid, n] of s.userSeq) this.userSeq.set(uid, n);
    this.seq = s.seq;
  }

  private licensesOf(userId: string): Map<string, string[]> {
    let m = this.licenses.get(userId);
    if (!m) this.licenses.set(userId, (m = new Map()));
    return m;
  }

  private touch(userId: string): void {
    this.seq += 1;
    this.userSeq.set(userId, this.seq);
  }

  // ---- mutations -----------------------------------------------------------------------------

  createUser(body: Record<string, unknown>, ctx: ChangeContext, verifiedDomains?: readonly string[]): GraphUser {
    for (const required of ['accountEnabled', 'displayName', 'mailNickname', 'userPrincipalName', 'passwordProfile']) {
      if (body[required] === undefined || body[required] === null || body[required] === '') {
        throw badRequest(`Property '${required}' is required when creating the user.`);
      }
    }
    if (typeof body.accountEnabled !== 'boolean') throw invalidProperty('accountEnabled');
    const upn = str(body.userPrincipalName, 'userPrincipalName')!;
    const [local, domain] = upn.split('@');
    if (!local || !domain || upn.split('@').length !== 2) throw invalidProperty('userPrincipalName');
    if (verifiedDomains && !verifiedDomains.some((d) => d.toLowerCase() === domain.toLowerCase())) {
      throw badRequest(
        `The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.`,
      );
    }
    if (this.findUser(upn)) throw badRequest('Another object with the same value for property userPrincipalName already exists.');
    const nick = str(body.mailNickname, 'mailNickname')!;
    if (!/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]{1,64}$/.test(nick) || nick.startsWith('.') || nick.endsWith('.')) {
      throw invalidProperty('mailNickname');
    }
    const pp = body.passwordProfile as { password?: unknown; forceChangePasswordNextSignIn?: unknown } | undefined;
    if (!pp || typeof pp.password !== 'string') throw invalidProperty('passwordProfile');
    if (!complexEnough(pp.password)) {
      throw badRequest('The specified password does not comply with password complexity requirements. Please provide a different password.');
    }
    const employeeId = str(body.employeeId, 'employeeId');
    if (employeeId && employeeId.length > MAX_EMPLOYEE_ID) throw invalidProperty('employeeId');
    const usageLocation = str(body.usageLocation, 'usageLocation');
    if (usageLocation && !/^[A-Z]{2}$/.test(usageLocation)) throw invalidProperty('usageLocation');
    const known = new Set<string>([...PATCHABLE_USER, 'passwordProfile']);
    for (const key of Object.keys(body)) {
      if (!known.has(key) && !key.startsWith('@odata')) {
        throw badRequest(`Property '${key}' does not exist as a declared property or extension property.`);
      }
    }
    const now = this.iso();
    const user: GraphUser = {
      id: randomUUID(),
      userPrincipalName: upn,
      displayName: str(body.displayName, 'displayName')!,
      mailNickname: nick,
      accountEnabled: body.accountEnabled,
      givenName: str(body.givenName, 'givenName'),
      surname: str(body.surname, 'surname'),
      mail: str(body.mail, 'mail'),
      employeeId,
      employeeType: str(body.employeeType, 'employeeType'),
      department: str(body.department, 'department'),
      jobTitle: str(body.jobTitle, 'jobTitle'),
      officeLocation: str(body.officeLocation, 'officeLocation'),
      usageLocation,
      createdDateTime: now,
      signInSessionsValidFromDateTime: now,
      passwordSet: true,
      forceChangePasswordNextSignIn: pp.forceChangePasswordNextSignIn !== false,
    };
    this.users.set(user.id, user);
    this.touch(user.id);
    this.audit(ctx, 'UserManagement', 'Add user', 'Add', [userTarget(user, [
      prop('AccountEnabled', null, String(user.accountEnabled)),
      prop('DisplayName', null, user.displayName),
      prop('UserPrincipalName', null, user.userPrincipalName),
      ...(user.employeeId ? [prop('EmployeeId', null, user.employeeId)] : []),
    ])]);
    return user;
  }

  patchUser(idOrUpn: string, body: Record<string, unknown>, ctx: ChangeContext): void {
    const u = this.user(idOrUpn);
    const changes: DirectoryAudit['targetResources'][number]['modifiedProperties'] = [];
    const next: Partial<GraphUser> = {};
    for (const [key, value] of Object.entries(body)) {
      if (key.startsWith('@odata')) continue;
      if (!(PATCHABLE_USER as readonly string[]).includes(key)) {
        throw badRequest(`Property '${key}' does not exist as a declared property or extension property.`);
      }
      if (key === 'accountEnabled') {
        if (typeof value !== 'boolean') throw invalidProperty('accountEnabled');
        next.accountEnabled = value;
        continue;
      }
      const s = str(value, key);
      if (key === 'employeeId' && s && s.length > MAX_EMPLOYEE_ID) throw invalidProperty('employeeId');
      if (key === 'usageLocation' && s && !/^[A-Z]{2}$/.test(s)) throw invalidProperty('usageLocation');
      if (key === 'userPrincipalName') {
        if (!s || !s.includes('@')) throw invalidProperty('userPrincipalName');
        const other = this.findUser(s);
        if (other && other.id !== u.id) throw badRequest('Another object with the same value for property userPrincipalName already exists.');
      }
      (next as Record<string, unknown>)[key] = s;
    }
    const enabledBefore = u.accountEnabled;
    for (const [key, value] of Object.entries(next)) {
      const before = (u as unknown as Record<string, unknown>)[key];
      if (before === value) continue;
      if (key !== 'accountEnabled') changes.push(prop(pascal(key), before == null ? null : String(before), value == null ? null : String(value)));
      (u as unknown as Record<string, unknown>)[key] = value;
    }
    const enabledChanged = next.accountEnabled !== undefined && next.accountEnabled !== enabledBefore;
    if (!enabledChanged && changes.length === 0) return; // PATCH with current values: no change, no audit
    this.touch(u.id);
    if (enabledChanged) {
      this.audit(ctx, 'UserManagement', u.accountEnabled ? 'Enable account' : 'Disable account', 'Update', [
        userTarget(u, [prop('AccountEnabled', String(enabledBefore), String(u.accountEnabled))]),
      ]);
    }
    if (changes.length) this.audit(ctx, 'UserManagement', 'Update user', 'Update', [userTarget(u, changes)]);
  }

  /** Soft delete: the user leaves every group and the active directory; delta reports it removed. */
  deleteUser(idOrUpn: string, ctx: ChangeContext): void {
    const u = this.user(idOrUpn);
    for (const set of this.members.values()) set.delete(u.id);
    for (const skuId of this.licenses.get(u.id)?.keys() ?? []) {
      const sku = this.skus.get(skuId);
      if (sku) sku.consumedUnits -= 1;
    }
    this.licenses.delete(u.id);
    this.taps.delete(u.id);
    this.users.delete(u.id);
    this.seq += 1;
    this.userSeq.delete(u.id);
    this.deleted.set(u.id, { user: u, seq: this.seq });
    this.audit(ctx, 'UserManagement', 'Delete user', 'Delete', [userTarget(u, [])]);
  }

  revokeSessions(idOrUpn: string, ctx: ChangeContext): void {
    const u = this.user(idOrUpn);
    const before = u.signInSessionsValidFromDateTime;
    u.signInSessionsValidFromDateTime = this.iso();
    this.touch(u.id);
    this.audit(ctx, 'UserManagement', 'Update user', 'Update', [
      userTarget(u, [prop('StsRefreshTokensValidFrom', before, u.signInSessionsValidFromDateTime)]),
    ]);
  }

  addMember(groupId: string, userId: string, ctx: ChangeContext): void {
    const g = this.group(groupId);
    const u = this.users.get(userId);
    if (!u) throw notFound(userId);
    const set = this.members.get(g.id)!;
    if (set.has(u.id)) {
      throw badRequest("One or more added object references already exist for the following modified properties: 'members'.");
    }
    set.add(u.id);
    this.audit(ctx, 'GroupManagement', 'Add member to group', 'Assign', [
      userTarget(u, [prop('Group.DisplayName', null, g.displayName), prop('Group.ObjectID', null, g.id)]),
      groupTarget(g),
    ]);
  }

  removeMember(groupId: string, userId: string, ctx: ChangeContext): void {
    const g = this.group(groupId);
    const set = this.members.get(g.id)!;
    const u = this.users.get(userId);
    if (!u || !set.has(u.id)) throw notFound(userId);
    set.delete(u.id);
    this.audit(ctx, 'GroupManagement', 'Remove member from group', 'Unassign', [
      userTarget(u, [prop('Group.DisplayName', g.displayName, null), prop('Group.ObjectID', g.id, null)]),
      groupTarget(g),
    ]);
  }

  assignLicense(idOrUpn: string, body: Record<string, unknown>, ctx: ChangeContext): GraphUser {
    const u = this.user(idOrUpn);
    const add = body.addLicenses;
    const remove = body.removeLicenses;
    if (!Array.isArray(add)) throw badRequest("Property 'addLicenses' is required.");
    if (!Array.isArray(remove)) throw badRequest("Property 'removeLicenses' is required.");
    const mine = this.licensesOf(u.id);
    const adds: Array<{ sku: SubscribedSku; disabled: string[] }> = [];
    for (const a of add as Array<{ skuId?: unknown; disabledPlans?: unknown }>) {
      const sku = typeof a?.skuId === 'string' ? this.skus.get(a.skuId) : undefined;
      if (!sku) throw badRequest(`License ${String(a?.skuId)} does not correspond to a valid company License.`);
      adds.push({ sku, disabled: Array.isArray(a.disabledPlans) ? (a.disabledPlans as string[]) : [] });
    }
    if (adds.length && !u.usageLocation) throw badRequest('License assignment cannot be done for user with invalid usage location.');
    for (const r of remove as unknown[]) {
      if (typeof r !== 'string' || !this.skus.has(r)) throw badRequest(`License ${String(r)} does not correspond to a valid company License.`);
      if (!mine.has(r)) throw badRequest('User does not have a corresponding license.');
    }
    for (const { sku } of adds) {
      if (!mine.has(sku.skuId) && sku.consumedUnits >= sku.prepaidUnits.enabled) {
        throw badRequest(`Subscription ${sku.skuId} does not have any available licenses.`);
      }
    }
    const before = this.licenseNamesOf(u.id).join(', ');
    for (const r of remove as string[]) {
      mine.delete(r);
      this.skus.get(r)!.consumedUnits -= 1;
    }
    for (const { sku, disabled } of adds) {
      if (!mine.has(sku.skuId)) sku.consumedUnits += 1;
      mine.set(sku.skuId, disabled);
    }
    this.touch(u.id);
    this.audit(ctx, 'UserManagement', 'Change user license', 'Update', [
      userTarget(u, [prop('AssignedLicense', before || null, this.licenseNamesOf(u.id).join(', ') || null)]),
    ]);
    return u;
  }

  /**
   * Creates the user's Temporary Access Pass (replacing an existing one, as Entra does) and
   * returns the record plus the pass. The stand-in keeps only its hash.
   */
  createTap(
    idOrUpn: string,
    body: Record<string, unknown>,
    ctx: ChangeContext,
  ): { record: TemporaryAccessPassRecord; secret: string } {
    const u = this.user(idOrUpn);
    const lifetime = body.lifetimeInMinutes ?? 60;
    if (typeof lifetime !== 'number' || !Number.isInteger(lifetime) || lifetime < 10 || lifetime > 43200) {
      throw badRequest('The lifetime of the Temporary Access Pass must be between 10 and 43200 minutes.', 'badRequest');
    }
    const isUsableOnce = body.isUsableOnce ?? false;
    if (typeof isUsableOnce !== 'boolean') throw invalidProperty('isUsableOnce');
    let start = this.iso();
    if (body.startDateTime !== undefined) {
      if (typeof body.startDateTime !== 'string' || Number.isNaN(Date.parse(body.startDateTime))) throw invalidProperty('startDateTime');
      start = new Date(Date.parse(body.startDateTime)).toISOString();
    }
    const secret = tapSecret();
    const record: TemporaryAccessPassRecord = {
      id: randomUUID(),
      userId: u.id,
      createdDateTime: this.iso(),
      startDateTime: start,
      lifetimeInMinutes: lifetime,
      isUsableOnce,
      secretSha256: createHash('sha256').update(secret).digest('hex'),
    };
    this.taps.set(u.id, record);
    this.audit(ctx, 'UserManagement', 'Admin registered security info', 'Add', [
      userTarget(u, [prop('StrongAuthenticationMethod', null, 'TemporaryAccessPass')]),
    ], 'Authentication Methods');
    return { record, secret };
  }

  deleteTap(idOrUpn: string, methodId: string, ctx: ChangeContext): void {
    const u = this.user(idOrUpn);
    const t = this.taps.get(u.id);
    if (!t || t.id !== methodId) throw notFound(methodId);
    this.taps.delete(u.id);
    this.audit(ctx, 'UserManagement', 'Admin deleted security info', 'Delete', [userTarget(u, [])], 'Authentication Methods');
  }

  private audit(
    ctx: ChangeContext,
    category: string,
    activity: string,
    operationType: string,
    targets: DirectoryAudit['targetResources'],
    loggedByService = 'Core Directory',
  ): void {
    this.audits.push({
      id: `Directory_${ctx.correlationId}_${randomBytes(3).toString('hex').toUpperCase()}_${this.audits.length}`,
      category,
      correlationId: ctx.correlationId,
      result: 'success',
      resultReason: '',
      activityDisplayName: activity,
      activityDateTime: this.iso(),
      loggedByService,
      operationType,
      initiatedBy: {
        user: null,
        app: { appId: ctx.appId, displayName: this.appDisplayName, servicePrincipalId: uuidFrom(`sp:${ctx.appId}`), servicePrincipalName: null },
      },
      targetResources: targets,
      additionalDetails: [],
    });
    this.onChange?.();
  }
}

function userTarget(u: GraphUser, modified: DirectoryAudit['targetResources'][number]['modifiedProperties']) {
  return { id: u.id, displayName: null, type: 'User' as const, userPrincipalName: u.userPrincipalName, modifiedProperties: modified };
}

function groupTarget(g: GraphGroup) {
  return { id: g.id, displayName: g.displayName, type: 'Group' as const, userPrincipalName: null, modifiedProperties: [] };
}

function prop(displayName: string, oldValue: string | null, newValue: string | null) {
  return { displayName, oldValue: oldValue === null ? null : JSON.stringify([oldValue]), newValue: newValue === null ? null : JSON.stringify([newValue]) };
}

function pascal(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function invalidProperty(name: string): GraphHttpError {
  return badRequest(`Invalid value specified for property '${name}' of resource 'User'.`);
}

function str(v: unknown, name: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw invalidProperty(name);
  return v;
}

/** Entra's rule: 8–256 characters and three of lower, upper, digit, symbol. */
function complexEnough(pw: string): boolean {
  if (pw.length < 8 || pw.length > 256) return false;
  const classes = [/[a-z]/, /[A-Z]/, /\d/, /[^A-Za-z0-9]/].filter((r) => r.test(pw)).length;
  return classes >= 3;
}

/** A TAP looks like Entra's: 8+ characters from a readable alphabet. */
function tapSecret(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789@#$%&*+=?';
  const bytes = randomBytes(16);
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join('');
}

/** A stable GUID-shaped id from a name (so seeded SKU ids are the same run to run). */
export function uuidFrom(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export { GraphHttpError };
