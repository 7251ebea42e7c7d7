/**
 * The in-memory org behind the Okta stand-in: users, groups, apps, memberships, app assignments,
 * sessions and the System Log, with Okta's lifecycle rules. The HTTP layer (`okta.ts`) turns
 * these records into Okta's wire shapes; tests read this state directly to see what a connector
 * really did.
 */
import { seededRandom } from './http-kit.ts';

// One list of Okta's user statuses, shared with the connector that reads them.
import { OKTA_USER_STATUSES, type OktaUserStatus } from '#connectors/okta-model';
export { OKTA_USER_STATUSES, type OktaUserStatus };
export type OktaGroupType = 'OKTA_GROUP' | 'APP_GROUP' | 'BUILT_IN';

export interface OktaUserRecord {
  id: string;
  status: OktaUserStatus;
  created: string;
  activated: string | null;
  statusChanged: string | null;
  lastLogin: string | null;
  lastUpdated: string;
  passwordChanged: string | null;
  typeId: string;
  /** Okta's profile: login, email, firstName, lastName, employeeNumber, … and custom attributes. */
  profile: Record<string, unknown> & { login: string; email: string };
  /** Whether the user has a password credential (decides ACTIVE vs PROVISIONED on activation). */
  hasPassword: boolean;
}

export interface OktaGroupRecord {
  id: string;
  type: OktaGroupType;
  created: string;
  lastUpdated: string;
  lastMembershipUpdated: string;
  profile: { name: string; description?: string };
}

export interface OktaAppRecord {
  id: string;
  /** App integration name; the stand-in models bookmark apps. */
  name: string;
  label: string;
  status: 'ACTIVE' | 'INACTIVE';
  created: string;
  lastUpdated: string;
  url: string;
}

export interface OktaAppAssignment {
  id: string;
  appId: string;
  userId: string;
  created: string;
  lastUpdated: string;
  scope: 'USER' | 'GROUP';
}

export interface SessionRevocation {
  userId: string;
  at: number;
  oauthTokens: boolean;
}

/** A System Log entry in Okta's LogEvent shape. */
export interface OktaLogEvent {
  uuid: string;
  published: string;
  eventType: string;
  legacyEventType: string;
  displayMessage: string;
  severity: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  version: string;
  actor: { id: string; type: string; alternateId: string; displayName: string };
  client: { ipAddress: string; device: string; userAgent: { rawUserAgent: string; os: string; browser: string } };
  outcome: { result: 'SUCCESS' | 'FAILURE' };
  target: Array<{ id: string; type: string; alternateId: string; displayName: string }>;
  transaction: { type: string; id: string; detail: Record<string, unknown> };
  debugContext: { debugData: Record<string, unknown> };
  request: { ipChain: Array<{ ip: string; version: string; source?: string }> };
  /** Stand-in bookkeeping for ordering and the `after` cursor (not sent). */
  seq: number;
}

export interface OktaSeedUser {
  id?: string;
  status?: OktaUserStatus;
  profile: Record<string, unknown> & { login: string; email?: string; firstName?: string; lastName?: string };
  /** Group names (or ids) the user is a member of. */
  groups?: string[];
  /** App labels (or ids) assigned directly to the user. */
  apps?: string[];
  /** Active sign-in sessions (default 1 for ACTIVE users). */
  sessions?: number;
  hasPassword?: boolean;
}

/** The Okta profile jml gives a worker (login and email the work email, the employee number). */
export function oktaProfileOf(w: { email: string; givenName: string; familyName: string; employeeId: string }) {
  return { login: w.email, email: w.email, firstName: w.givenName, lastName: w.familyName, employeeNumber: w.employeeId };
}

export interface OktaSeed {
  groups?: Array<{ id?: string; name: string; description?: string; type?: OktaGroupType }>;
  apps?: Array<{ id?: string; label: string; name?: string; status?: 'ACTIVE' | 'INACTIVE'; url?: string }>;
  users?: OktaSeedUser[];
}

export interface SeedResult {
  users: Record<string, string>;
  groups: Record<string, string>;
  apps: Record<string, string>;
}

/** The identity the API token acts as (Okta attributes token calls to the admin who minted it). */
export const TOKEN_ACTOR = {
  id: '00u0jmlservice00000',
  type: 'User',
  alternateId: 'jml-service@example.com',
  displayName: 'JML Service',
};

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** The step of `seededRandom` (mulberry32): its state after n draws from seed s is s + n·STEP. */
const RANDOM_STEP = 0x6d2b79f5;

/**
 * Everything an `OktaState` holds, as plain JSON (what `local/standins/persistence.ts` writes so
 * the org survives a restart of the local runtime). `random` continues the id sequence exactly.
 */
export interface OktaStateSnapshot {
  kind: 'okta';
  version: 1;
  everyoneGroupId: string;
  users: OktaUserRecord[];
  groups: OktaGroupRecord[];
  /** [groupId, member user ids]. */
  memberships: Array<[string, string[]]>;
  apps: OktaAppRecord[];
  appAssignments: OktaAppAssignment[];
  /** [userId, active sessions]. */
  sessions: Array<[string, number]>;
  sessionsRevoked: SessionRevocation[];
  activationEmails: Array<{ userId: string; at: number }>;
  logs: OktaLogEvent[];
  logSeq: number;
  random: { seed: number; draws: number };
}

export class OktaState {
  readonly users = new Map<string, OktaUserRecord>();
  readonly groups = new Map<string, OktaGroupRecord>();
  /** groupId → member user ids. */
  readonly memberships = new Map<string, Set<string>>();
  readonly apps = new Map<string, OktaAppRecord>();
  /** appId → userId → assignment. */
  readonly appAssignments = new Map<string, Map<string, OktaAppAssignment>>();
  /** Active sessions per user id. */
  readonly sessions = new Map<string, number>();
  /** Every admin session revocation, in order. */
  readonly sessionsRevoked: SessionRevocation[] = [];
  /** Activation emails Okta would have sent (the connector must never cause one). */
  readonly activationEmails: Array<{ userId: string; at: number }> = [];
  readonly logs: OktaLogEvent[] = [];
  /**
   * Called after every change (API writes log a System Log event; seeding and the write methods
   * call it too). Unset by default: persistence is opt-in (`persistence.ts`).
   */
  onChange?: () => void;
  private everyoneId: string;
  private logSeq = 0;
  private randomSeed: number;
  private draws = 0;
  private generator: () => number;

  constructor(readonly now: () => number, seed = 7) {
    this.randomSeed = seed >>> 0;
    this.generator = seededRandom(this.randomSeed);
    const t = this.iso();
    this.everyoneId = this.newId('00g');
    this.groups.set(this.everyoneId, {
      id: this.everyoneId,
      type: 'BUILT_IN',
      created: t,
      lastUpdated: t,
      lastMembershipUpdated: t,
      profile: { name: 'Everyone', description: 'All users in your organization' },
    });
    this.memberships.set(this.everyoneId, new Set());
  }

  /** The built-in Everyone group. */
  get everyoneGroupId(): string {
    return this.everyoneId;
  }

  private random(): number {
    this.draws += 1;
    return this.generator();
  }

  private changed(): void {
    this.onChange?.();
  }

  iso(ms = this.now()): string {
    return new Date(ms).toISOString();
  }

  /** An Okta-style 20-character id with the object's prefix (00u user, 00g group, 0oa app). */
  newId(prefix: string): string {
    for (;;) {
      let id = prefix;
      while (id.length < 20) id += BASE62[Math.floor(this.random() * 62)];
      if (!this.users.has(id) && !this.groups.has(id) && !this.apps.has(id)) return id;
    }
  }

  randomToken(length: number, alphabet = `${BASE62}-_`): string {
    let s = '';
    while (s.length < length) s += alphabet[Math.floor(this.random() * alphabet.length)];
    return s;
  }

  // ---- lookups -------------------------------------------------------------------------------

  /** By id, or by login (case-insensitive), as `GET /api/v1/users/{idOrLogin}` resolves. */
  findUser(idOrLogin: string): OktaUserRecord | undefined {
    const byId = this.users.get(idOrLogin);
    if (byId) return byId;
    const lower = idOrLogin.toLowerCase();
    for (const u of this.users.values()) if (u.profile.login.toLowerCase() === lower) return u;
    return undefined;
  }

  usersByEmployeeNumber(employeeNumber: string): OktaUserRecord[] {
    return [...this.users.values()].filter((u) => u.profile.employeeNumber === employeeNumber);
  }

  groupByName(name: string): OktaGroupRecord | undefined {
    for (const g of this.groups.values()) if (g.profile.name === name) return g;
    return undefined;
  }

  appByLabel(label: string): OktaAppRecord | undefined {
    for (const a of this.apps.values()) if (a.label === label) return a;
    return undefined;
  }

  groupsOf(userId: string): OktaGroupRecord[] {
    const out: OktaGroupRecord[] = [];
    for (const [gid, members] of this.memberships) if (members.has(userId)) out.push(this.groups.get(gid)!);
    return out;
  }

  /** Group names of a user (including the built-in Everyone group). */
  groupNamesOf(userId: string): string[] {
    return this.groupsOf(userId).map((g) => g.profile.name);
  }

  assignmentsOf(userId: string): OktaAppAssignment[] {
    const out: OktaAppAssignment[] = [];
    for (const byUser of this.appAssignments.values()) {
      const a = byUser.get(userId);
      if (a) out.push(a);
    }
    return out;
  }

  appLabelsOf(userId: string): string[] {
    return this.assignmentsOf(userId).map((a) => this.apps.get(a.appId)!.label);
  }

  eventsFor(targetId: string): OktaLogEvent[] {
    return this.logs.filter((e) => e.target.some((t) => t.id === targetId));
  }

  // ---- writes (used by the HTTP layer and by seeding) -----------------------------------------

  addUser(input: {
    id?: string;
    status: OktaUserStatus;
    profile: OktaUserRecord['profile'];
    hasPassword: boolean;
  }): OktaUserRecord {
    const t = this.iso();
    const activated = input.status === 'STAGED' ? null : t;
    const user: OktaUserRecord = {
      id: input.id ?? this.newId('00u'),
      status: input.status,
      created: t,
      activated,
      statusChanged: input.status === 'STAGED' ? null : t,
      lastLogin: null,
      lastUpdated: t,
      passwordChanged: input.hasPassword ? t : null,
      typeId: 'oty0jmldefault00000',
      profile: input.profile,
      hasPassword: input.hasPassword,
    };
    this.users.set(user.id, user);
    this.memberships.get(this.everyoneGroupId)!.add(user.id);
    this.changed();
    return user;
  }

  addGroup(input: { id?: string; name: string; description?: string; type?: OktaGroupType }): OktaGroupRecord {
    const t = this.iso();
    const group: OktaGroupRecord = {
      id: input.id ?? this.newId('00g'),
      type: input.type ?? 'OKTA_GROUP',
      created: t,
      lastUpdated: t,
      lastMembershipUpdated: t,
      profile: { name: input.name, ...(input.description !== undefined ? { description: input.description } : {}) },
    };
    this.groups.set(group.id, group);
    this.memberships.set(group.id, new Set());
    this.changed();
    return group;
  }

  addApp(input: { id?: string; label: string; name?: string; status?: 'ACTIVE' | 'INACTIVE'; url?: string }): OktaAppRecord {
    const t = this.iso();
    const app: OktaAppRecord = {
      id: input.id ?? this.newId('0oa'),
      name: input.name ?? 'bookmark',
      label: input.label,
      status: input.status ?? 'ACTIVE',
      created: t,
      lastUpdated: t,
      url: input.url ?? `https://apps.example.com/${encodeURIComponent(input.label.toLowerCase())}`,
    };
    this.apps.set(app.id, app);
    this.appAssignments.set(app.id, new Map());
    this.changed();
    return app;
  }

  /** Adds a membership; false when it already existed. */
  addMember(groupId: string, userId: string): boolean {
    const members = this.memberships.get(groupId)!;
    if (members.has(userId)) return false;
    members.add(userId);
    this.groups.get(groupId)!.lastMembershipUpdated = this.iso();
    this.changed();
    return true;
  }

  removeMember(groupId: string, userId: string): boolean {
    const members = this.memberships.get(groupId)!;
    if (!members.delete(userId)) return false;
    this.groups.get(groupId)!.lastMembershipUpdated = this.iso();
    this.changed();
    return true;
  }

  assign(appId: string, userId: string): { assignment: OktaAppAssignment; created: boolean } {
    const byUser = this.appAssignments.get(appId)!;
    const existing = byUser.get(userId);
    if (existing) return { assignment: existing, created: false };
    const t = this.iso();
    const assignment: OktaAppAssignment = { id: this.newId('0ua'), appId, userId, created: t, lastUpdated: t, scope: 'USER' };
    byUser.set(userId, assignment);
    this.changed();
    return { assignment, created: true };
  }

  unassign(appId: string, userId: string): boolean {
    const removed = this.appAssignments.get(appId)?.delete(userId) ?? false;
    if (removed) this.changed();
    return removed;
  }

  setStatus(user: OktaUserRecord, status: OktaUserStatus): void {
    const t = this.iso();
    user.status = status;
    user.statusChanged = t;
    user.lastUpdated = t;
    if ((status === 'ACTIVE' || status === 'PROVISIONED') && !user.activated) user.activated = t;
    this.changed();
  }

  deleteUser(userId: string): void {
    this.users.delete(userId);
    for (const members of this.memberships.values()) members.delete(userId);
    for (const byUser of this.appAssignments.values()) byUser.delete(userId);
    this.sessions.delete(userId);
    this.changed();
  }

  /** Appends a System Log event (every change the API makes is logged, as in Okta). */
  log(input: {
    eventType: string;
    legacyEventType: string;
    displayMessage: string;
    targets: OktaLogEvent['target'];
    requestId: string;
    requestUri: string;
    userAgent: string;
    outcome?: 'SUCCESS' | 'FAILURE';
  }): OktaLogEvent {
    const event: OktaLogEvent = {
      uuid: this.uuid(),
      published: this.iso(),
      eventType: input.eventType,
      legacyEventType: input.legacyEventType,
      displayMessage: input.displayMessage,
      severity: 'INFO',
      version: '0',
      actor: { ...TOKEN_ACTOR },
      client: { ipAddress: '127.0.0.1', device: 'Unknown', userAgent: { rawUserAgent: input.userAgent, os: 'Unknown', browser: 'UNKNOWN' } },
      outcome: { result: input.outcome ?? 'SUCCESS' },
      target: input.targets,
      transaction: { type: 'WEB', id: input.requestId, detail: {} },
      debugContext: { debugData: { requestId: input.requestId, requestUri: input.requestUri } },
      request: { ipChain: [{ ip: '127.0.0.1', version: 'V4', source: 'http' }] },
      seq: ++this.logSeq,
    };
    this.logs.push(event);
    this.changed();
    return event;
  }

  userTarget(u: OktaUserRecord): OktaLogEvent['target'][number] {
    const name = [u.profile.firstName, u.profile.lastName].filter(Boolean).join(' ') || u.profile.login;
    return { id: u.id, type: 'User', alternateId: u.profile.login, displayName: String(name) };
  }

  groupTarget(g: OktaGroupRecord): OktaLogEvent['target'][number] {
    return { id: g.id, type: 'UserGroup', alternateId: 'unknown', displayName: g.profile.name };
  }

  appTarget(a: OktaAppRecord): OktaLogEvent['target'][number] {
    return { id: a.id, type: 'AppInstance', alternateId: a.label, displayName: a.label };
  }

  private uuid(): string {
    const hex = '0123456789abcdef';
    let s = '';
    for (let i = 0; i < 32; i += 1) s += hex[Math.floor(this.random() * 16)];
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-4${s.slice(13, 16)}-a${s.slice(17, 20)}-${s.slice(20, 32)}`;
  }

  // ---- seeding --------------------------------------------------------------------------------

  seed(data: OktaSeed): SeedResult {
    const result: SeedResult = { users: {}, groups: {}, apps: {} };
    for (const g of data.groups ?? []) result.groups[g.name] = this.addGroup(g).id;
    for (const a of data.apps ?? []) result.apps[a.label] = this.addApp(a).id;
    for (const u of data.users ?? []) {
      const status = u.status ?? 'ACTIVE';
      const profile = {
        email: u.profile.login,
        firstName: 'Test',
        lastName: 'User',
        ...u.profile,
      } as OktaUserRecord['profile'];
      const user = this.addUser({
        id: u.id,
        status,
        profile,
        hasPassword: u.hasPassword ?? (status !== 'STAGED' && status !== 'PROVISIONED'),
      });
      result.users[profile.login] = user.id;
      for (const g of u.groups ?? []) {
        const group = this.groups.get(g) ?? this.groupByName(g) ?? this.addGroup({ name: g });
        result.groups[group.profile.name] = group.id;
        this.addMember(group.id, user.id);
      }
      for (const a of u.apps ?? []) {
        const app = this.apps.get(a) ?? this.appByLabel(a) ?? this.addApp({ label: a });
        result.apps[app.label] = app.id;
        this.assign(app.id, user.id);
      }
      this.sessions.set(user.id, u.sessions ?? (status === 'ACTIVE' ? 1 : 0));
    }
    this.changed();
    return result;
  }

  // ---- persistence ----------------------------------------------------------------------------

  /** The whole org as plain JSON (records are copied, so later writes do not change it). */
  snapshot(): OktaStateSnapshot {
    return structuredClone({
      kind: 'okta',
      version: 1,
      everyoneGroupId: this.everyoneId,
      users: [...this.users.values()],
      groups: [...this.groups.values()],
      memberships: [...this.memberships].map(([gid, members]) => [gid, [...members]]),
      apps: [...this.apps.values()],
      appAssignments: [...this.appAssignments.values()].flatMap((byUser) => [...byUser.values()]),
      sessions: [...this.sessions],
      sessionsRevoked: this.sessionsRevoked,
      activationEmails: this.activationEmails,
      logs: this.logs,
      logSeq: this.logSeq,
      random: { seed: this.randomSeed, draws: this.draws },
    } satisfies OktaStateSnapshot);
  }

  /**
   * Replaces everything with a snapshot. Ids, log sequence numbers and the random sequence go on
   * where the snapshot left off, so nothing created afterwards collides with what it holds.
   */
  restore(snapshot: OktaStateSnapshot): void {
    const s = structuredClone(snapshot);
    for (const m of [this.users, this.groups, this.memberships, this.apps, this.appAssignments, this.sessions]) m.clear();
    this.sessionsRevoked.length = 0;
    this.activationEmails.length = 0;
    this.logs.length = 0;
    this.everyoneId = s.everyoneGroupId;
    for (const u of s.users) this.users.set(u.id, u);
    for (const g of s.groups) {
      this.groups.set(g.id, g);
      this.memberships.set(g.id, new Set());
    }
    for (const [gid, members] of s.memberships) this.memberships.set(gid, new Set(members));
    for (const a of s.apps) {
      this.apps.set(a.id, a);
      this.appAssignments.set(a.id, new Map());
    }
    for (const a of s.appAssignments) {
      let byUser = this.appAssignments.get(a.appId);
      if (!byUser) this.appAssignments.set(a.appId, (byUser = new Map()));
      byUser.set(a.userId, a);
    }
    for (const [userId, n] of s.sessions) this.sessions.set(userId, n);
    this.sessionsRevoked.push(...s.sessionsRevoked);
    this.activationEmails.push(...s.activationEmails);
    this.logs.push(...s.logs);
    this.logSeq = s.logs.reduce((max, e) => Math.max(max, e.seq), s.logSeq);
    this.randomSeed = s.random.seed >>> 0;
    this.draws = s.random.draws;
    this.generator = seededRandom((this.randomSeed + Math.imul(this.draws, RANDOM_STEP)) >>> 0);
  }
}
