/**
 * Opt-in persistence for the identity stand-ins, so the local runtime's Okta org, Graph tenant and
 * SCIM apps survive a restart the way its ledger, evidence and outbox do.
 *
 *   targets.okta = persistOktaStandIn(await startOktaStandIn(…), join(dir, 'okta.json'));
 *
 * On attach, a saved state replaces what the stand-in was seeded with (anything the start-up seed
 * created that the saved state lacks — a group a changed policy now names — is added back). After
 * that every change marks the state dirty and one write follows `debounceMs` later: the whole
 * state as JSON to a temporary file, then an atomic rename, so a crash leaves the previous or the
 * next state, never half of one. `close()` writes what is pending before the server stops.
 *
 * Off unless attached: the tests and the benchmarks (100k users) pay nothing for it. The state
 * classes only call an optional `onChange` hook.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { parseOrThrow } from '#core/validation';
import type { Directory, DirectorySnapshot } from './graph-directory.ts';
import type { OktaState, OktaStateSnapshot } from './okta-state.ts';
import type { ScimStore, ScimStoreSnapshot } from './scim.ts';

export interface PersistenceOptions {
  /** Quiet time after a change before the state is written (default 20 ms). */
  debounceMs?: number;
}

export interface StatePersistence {
  readonly path: string;
  /** Whether a saved state was loaded when attaching. */
  readonly loaded: boolean;
  /** Completed writes (tests and measurements). */
  readonly writes: number;
  /** Time spent serialising and writing, ms (measurements). */
  readonly writeMs: number;
  /** Writes a pending change now. */
  flush(): void;
  /** Writes what is pending and stops listening for changes. */
  stop(): void;
}

/** The file exists but is not a stand-in state this version can read. */
export class StandInStateInvalid extends Error {
  override name = 'StandInStateInvalid';
}

const record = z.looseObject({ id: z.string().min(1) });
const pairs = <V extends z.ZodType>(value: V) => z.array(z.tuple([z.string(), value]));

const OktaSnapshotSchema = z.looseObject({
  kind: z.literal('okta'),
  version: z.literal(1),
  everyoneGroupId: z.string().min(1),
  users: z.array(z.looseObject({ id: z.string().min(1), status: z.string(), profile: z.looseObject({ login: z.string(), email: z.string() }) })),
  groups: z.array(z.looseObject({ id: z.string().min(1), profile: z.looseObject({ name: z.string() }) })),
  memberships: pairs(z.array(z.string())),
  apps: z.array(z.looseObject({ id: z.string().min(1), label: z.string() })),
  appAssignments: z.array(z.looseObject({ id: z.string(), appId: z.string(), userId: z.string() })),
  sessions: pairs(z.number()),
  sessionsRevoked: z.array(z.looseObject({ userId: z.string(), at: z.number() })),
  activationEmails: z.array(z.looseObject({ userId: z.string(), at: z.number() })),
  logs: z.array(z.looseObject({ uuid: z.string(), seq: z.number(), published: z.string() })),
  logSeq: z.number().int().nonnegative(),
  random: z.object({ seed: z.number().int(), draws: z.number().int().nonnegative() }),
});

const GraphSnapshotSchema = z.looseObject({
  kind: z.literal('graph'),
  version: z.literal(1),
  tenantId: z.string(),
  users: z.array(z.looseObject({ id: z.string().min(1), userPrincipalName: z.string(), accountEnabled: z.boolean() })),
  groups: z.array(z.looseObject({ id: z.string().min(1), displayName: z.string() })),
  members: pairs(z.array(z.string())),
  skus: z.array(z.looseObject({ skuId: z.string().min(1), skuPartNumber: z.string() })),
  licenses: pairs(z.array(z.tuple([z.string(), z.array(z.string())]))),
  taps: z.array(z.looseObject({ id: z.string(), userId: z.string(), secretSha256: z.string() })),
  audits: z.array(record),
  deleted: z.array(z.object({ user: z.looseObject({ id: z.string().min(1) }), seq: z.number().int() })),
  seq: z.number().int().nonnegative(),
  userSeq: pairs(z.number().int()),
});

const stored = z.looseObject({ id: z.string().min(1), created: z.string(), lastModified: z.string(), version: z.number().int(), data: z.looseObject({}) });
const ScimSnapshotSchema = z.looseObject({
  kind: z.literal('scim'),
  version: z.literal(1),
  users: z.array(stored),
  groups: z.array(stored),
  clock: z.number(),
});

/** A state file: validated load, debounced atomic save. */
class StateFile<S> implements StatePersistence {
  loaded = false;
  writes = 0;
  writeMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private stopped = false;

  constructor(
    readonly path: string,
    private readonly schema: z.ZodType,
    private readonly snapshot: () => S,
    private readonly debounceMs: number,
  ) {}

  load(): S | undefined {
    if (!existsSync(this.path)) return undefined;
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch (e) {
      throw new StandInStateInvalid(`${this.path} is not valid JSON (${(e as Error).message.split('\n')[0]}) — fix or delete it, or start with --fresh`);
    }
    try {
      parseOrThrow(this.schema, data, this.path);
    } catch (e) {
      const issues = (e as { issues?: string[] }).issues ?? [(e as Error).message];
      throw new StandInStateInvalid(`saved stand-in state does not read back — fix or delete it, or start with --fresh:\n  - ${issues.slice(0, 5).join('\n  - ')}`);
    }
    this.loaded = true;
    return data as S;
  }

  /** Marks the state changed; the write happens once the changes pause for `debounceMs`. */
  changed = (): void => {
    if (this.stopped) return;
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.debounceMs);
    this.timer.unref();
  };

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.dirty) return;
    this.dirty = false;
    const started = performance.now();
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.snapshot()));
    renameSync(tmp, this.path);
    this.writes += 1;
    this.writeMs += performance.now() - started;
  }

  stop(): void {
    this.flush();
    this.stopped = true;
  }
}

interface Closable {
  close(): Promise<void>;
}

/** Flushes and stops persistence before the stand-in's own close. */
function closeFlushes<T extends Closable>(standIn: T, persistence: StatePersistence, detach: () => void): T & { persistence: StatePersistence } {
  const close = standIn.close.bind(standIn);
  return Object.assign(standIn, {
    persistence,
    close: async () => {
      persistence.stop();
      detach();
      await close();
    },
  });
}

/** The Okta org behind an Okta stand-in, saved to `path` (JSON). */
export function persistOktaStandIn<T extends Closable & { state: OktaState }>(standIn: T, path: string, options: PersistenceOptions = {}) {
  const state = standIn.state;
  const file = new StateFile<OktaStateSnapshot>(path, OktaSnapshotSchema, () => state.snapshot(), options.debounceMs ?? 20);
  const saved = file.load();
  if (saved) {
    const seededGroups = [...state.groups.values()].filter((g) => g.type !== 'BUILT_IN');
    const seededApps = [...state.apps.values()];
    state.restore(saved);
    for (const g of seededGroups) if (!state.groupByName(g.profile.name)) state.addGroup({ name: g.profile.name, description: g.profile.description, type: g.type });
    for (const a of seededApps) if (!state.appByLabel(a.label)) state.addApp({ label: a.label, name: a.name, status: a.status, url: a.url });
  }
  state.onChange = file.changed;
  // A fresh start writes the seeded org at once, so the file always reflects what is served.
  if (!saved) file.changed();
  return closeFlushes(standIn, file, () => (state.onChange = undefined));
}

/** The tenant behind a Graph stand-in, saved to `path` (JSON). Delta and skip tokens are not kept: after a restart they answer 410, as expired ones do in Graph. */
export function persistGraphStandIn<T extends Closable & { state: Directory }>(standIn: T, path: string, options: PersistenceOptions = {}) {
  const directory = standIn.state;
  const file = new StateFile<DirectorySnapshot>(path, GraphSnapshotSchema, () => directory.snapshot(), options.debounceMs ?? 20);
  const saved = file.load();
  if (saved) {
    const seeded = directory.snapshot();
    directory.restore(saved);
    const groups = seeded.groups.filter((g) => !directory.findGroup(g.displayName));
    const skus = seeded.skus.filter((s) => !directory.skus.has(s.skuId));
    if (groups.length || skus.length) {
      directory.seed({
        groups: groups.map((g) => ({ ...g })),
        skus: skus.map((s) => ({ skuId: s.skuId, skuPartNumber: s.skuPartNumber, prepaidUnits: s.prepaidUnits.enabled, servicePlans: s.servicePlans.map((p) => p.servicePlanName) })),
      });
    }
  }
  directory.onChange = file.changed;
  if (!saved) file.changed();
  return closeFlushes(standIn, file, () => (directory.onChange = undefined));
}

/** The users and groups behind a SCIM stand-in, saved to `path` (JSON). */
export function persistScimStandIn<T extends Closable & { state: ScimStore }>(standIn: T, path: string, options: PersistenceOptions = {}) {
  const store = standIn.state;
  const file = new StateFile<ScimStoreSnapshot>(path, ScimSnapshotSchema, () => store.snapshot(), options.debounceMs ?? 20);
  const saved = file.load();
  if (saved) {
    const seededGroups = [...store.groups.values()];
    store.restore(saved);
    const names = new Set([...store.groups.values()].map((g) => String(g.data.displayName).toLowerCase()));
    for (const g of seededGroups) {
      if (names.has(String(g.data.displayName).toLowerCase())) continue;
      const { members: _members, ...data } = g.data;
      store.insert(store.groups, data, g.id);
    }
  }
  store.onChange = file.changed;
  if (!saved) file.changed();
  return closeFlushes(standIn, file, () => (store.onChange = undefined));
}
