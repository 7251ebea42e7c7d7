/**
 * Ingest use cases: an HR event (canonical or BambooHR) becomes a recorded run and a message on
 * the FIFO queue; an Okta event hook delivery becomes drift signals.
 *
 * Record first, then enqueue. The run record (status RECEIVED) is written with a conditional
 * put on the run id (derived from the idempotency key), so it is readable at GET /runs/{runId}
 * before anything else happens, and a redelivery finds it. Only then is the message sent, and
 * `enqueuedAt` set. A crash (or an SQS error) between the two writes leaves a run without
 * `enqueuedAt`: the sender gets a 5xx and retries, and the retry — a duplicate by then — sends
 * the message again. The queue's deduplication id is the idempotency key, so if the first send
 * did reach SQS, the second is dropped there (within SQS's five-minute window), and the
 * consumer's `startRun` is a no-op for a run that already started. `requeueUnqueued` sweeps up
 * a run whose sender never retried.
 */
import * as z from 'zod';
import { mapBambooHrWebhook, type BambooToCanonicalOptions, type IgnoredEntry } from '#core/bamboohr';
import { JmlError, ValidationError } from '#core/errors';
import { canonicalJson, sha256Hex } from '#core/hash';
import { normaliseHrEvent, type HrEvent } from '#core/hr-event';
import { idempotencyKey, runIdFor } from '#core/idempotency';
import type { PersonRecord, RunRecord } from '#core/ledger';
import type { Policy } from '#core/policy';
import { formatIssues } from '#core/validation';
import type { AppDeps, QueueMessage } from './ports.ts';
import { mapLimit } from '#core/concurrency';

export type HrSource = 'canonical' | 'bamboohr';

/** What the webhook answers for one recorded event. */
export interface AcceptedRun {
  runId: string;
  idempotencyKey: string;
  /** True when the event was already recorded (a redelivery): nothing new was created. */
  duplicate: boolean;
  employeeId: string;
}

export interface CanonicalInput {
  source: 'canonical';
  /** The body exactly as received (its sha256 is the run's `eventHash`). */
  rawBody: string | Uint8Array;
  /** The parsed body, when the caller already parsed it; otherwise `rawBody` is parsed here. */
  payload?: unknown;
}

export interface BambooHrInput {
  source: 'bamboohr';
  rawBody: string | Uint8Array;
  payload?: unknown;
  /** Field map and employment statuses of this BambooHR account (defaults: `#core/bamboohr`). */
  mapping?: Omit<BambooToCanonicalOptions, 'now'>;
}

export interface BambooHrAccepted {
  /** One run per mapped employee entry, in delivery order. */
  runs: AcceptedRun[];
  /** Entries that carry nothing to act on (a bare Created notice, a Deleted record). */
  ignored: IgnoredEntry[];
}

/** A body that is not UTF-8 JSON at all (when the caller left the parsing to the use case). */
export class InvalidJson extends ValidationError {
  constructor() {
    super(['(root): body is not valid JSON']);
  }
}

/** Records and enqueues one canonical event, or all the entries of a BambooHR delivery. */
export async function acceptHrEvent(deps: AppDeps, input: CanonicalInput): Promise<AcceptedRun>;
export async function acceptHrEvent(deps: AppDeps, input: BambooHrInput): Promise<BambooHrAccepted>;
export async function acceptHrEvent(deps: AppDeps, input: CanonicalInput | BambooHrInput): Promise<AcceptedRun | BambooHrAccepted> {
  const policy = await deps.policy();
  const options = { timeZone: policy.document.company.timeZone };
  const bytes = toBytes(input.rawBody);
  const payload = input.payload !== undefined ? input.payload : parseJson(bytes);

  if (input.source === 'canonical') {
    const event = normaliseHrEvent(payload, options);
    const accepted = await record(deps, policy, {
      event,
      rawEvent: decode(bytes),
      eventHash: sha256Hex(bytes),
      note: 'received from the canonical HRIS webhook',
    });
    deps.metrics.put(accepted.duplicate ? 'HrEventDuplicate' : 'HrEventAccepted', 1, 'Count', { Source: 'canonical' });
    return accepted;
  }

  // BambooHR: validate and normalise every entry before recording any, so a delivery is
  // accepted whole or refused whole (nothing is enqueued for a rejected request).
  const mapping = mapBambooHrWebhook(payload, { ...input.mapping, now: () => deps.clock.now() });
  const ignoredIndexes = new Set(mapping.ignored.map((g) => g.index));
  const entries = (payload as { employees: unknown[] }).employees;
  const entryIndexes = entries.map((_, i) => i).filter((i) => !ignoredIndexes.has(i));
  if (entryIndexes.length !== mapping.events.length) {
    throw new JmlError(`BambooHR mapping returned ${mapping.events.length} events for ${entryIndexes.length} entries`);
  }
  const problems: string[] = [];
  const events: HrEvent[] = [];
  mapping.events.forEach((input, n) => {
    try {
      events.push(normaliseHrEvent(input, options));
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      problems.push(...e.issues.map((issue) => `employees[${entryIndexes[n]}]: ${issue}`));
    }
  });
  if (problems.length) throw new ValidationError(problems);

  const deliveryHash = sha256Hex(bytes);
  const runs: AcceptedRun[] = [];
  // In delivery order: two entries of one person reach the person's FIFO group in that order.
  for (const [n, event] of events.entries()) {
    const index = entryIndexes[n]!;
    // A delivery may hold several people; each run keeps only its own entry (the evidence bundle
    // of one person must not carry another's HR data). The delivery's hash is on the timeline.
    const rawEvent = canonicalJson(entries[index]);
    const accepted = await record(deps, policy, {
      event,
      rawEvent,
      eventHash: sha256Hex(rawEvent),
      note: `received from BambooHR: entry employees[${index}] of delivery sha256 ${deliveryHash}`,
    });
    deps.metrics.put(accepted.duplicate ? 'HrEventDuplicate' : 'HrEventAccepted', 1, 'Count', { Source: 'bamboohr' });
    runs.push(accepted);
  }
  return { runs, ignored: mapping.ignored };
}

interface Prepared {
  event: HrEvent;
  rawEvent: string;
  eventHash: string;
  note: string;
}

async function record(deps: AppDeps, policy: Policy, p: Prepared): Promise<AcceptedRun> {
  const { event } = p;
  const key = idempotencyKey(event, policy.mappingVersion);
  const runId = runIdFor(key);
  const employeeId = event.worker.employeeId;
  const now = deps.clock.now().toISOString();
  const run: RunRecord = {
    runId,
    idempotencyKey: key,
    employeeId,
    eventId: event.eventId,
    eventType: event.eventType,
    lifecycle: event.lifecycle,
    status: 'RECEIVED',
    eventHash: p.eventHash,
    rawEvent: p.rawEvent,
    event,
    effectiveAt: event.effectiveAt,
    occurredAt: event.occurredAt,
    mappingVersion: policy.mappingVersion,
    createdAt: now,
    updatedAt: now,
    timeline: [{ phase: 'Ingest', at: now, note: p.note }],
  };
  if (await deps.ledger.createRun(run)) {
    await enqueue(deps, run);
    return { runId, idempotencyKey: key, duplicate: false, employeeId };
  }
  const existing = await deps.ledger.getRun(runId);
  if (!existing) throw new JmlError(`run ${runId} was reported as existing but cannot be read`);
  if (existing.idempotencyKey !== key) {
    // 128 bits of the key collide only by accident of a bug; never fold two events into one run.
    throw new JmlError(`run ${runId} belongs to another idempotency key`);
  }
  // Recorded but never enqueued (the first delivery failed between the two writes): finish it.
  if (!existing.enqueuedAt) await enqueue(deps, existing);
  return { runId, idempotencyKey: key, duplicate: true, employeeId };
}

/** The queue message of a recorded run (its lifecycle, when it is an HR one, lets the consumer read ahead). */
export function hrEventMessage(run: Pick<RunRecord, 'runId' | 'employeeId' | 'lifecycle'>): QueueMessage {
  return { kind: 'hr-event', runId: run.runId, employeeId: run.employeeId, ...(run.lifecycle !== 'reconcile' ? { lifecycle: run.lifecycle } : {}) };
}

async function enqueue(deps: AppDeps, run: Pick<RunRecord, 'runId' | 'employeeId' | 'idempotencyKey' | 'lifecycle'>): Promise<void> {
  await deps.queue.send(
    hrEventMessage(run),
    { groupId: run.employeeId, deduplicationId: run.idempotencyKey },
  );
  await deps.ledger.updateRun(run.runId, { enqueuedAt: deps.clock.now().toISOString() });
}

/**
 * Enqueues RECEIVED runs that were recorded but never enqueued, and are older than `olderThanMs`
 * (the sender did not retry after a 5xx). Safe to run at any time: the deduplication id and
 * `startRun` make a second message harmless. Returns the run ids it enqueued.
 */
export async function requeueUnqueued(deps: AppDeps, options: { olderThanMs?: number } = {}): Promise<string[]> {
  const cutoff = deps.clock.now().getTime() - (options.olderThanMs ?? 5 * 60_000);
  const requeued: string[] = [];
  for (const run of await deps.ledger.listRunsByStatus('RECEIVED')) {
    if (run.enqueuedAt || Date.parse(run.createdAt) > cutoff) continue;
    await enqueue(deps, run);
    requeued.push(run.runId);
  }
  return requeued;
}

// ---------------------------------------------------------------------------------------------
// Okta event hook → drift signals

/**
 * Okta event hook delivery (https://developer.okta.com/docs/concepts/event-hooks/): a CloudEvents
 * style envelope (`eventType: com.okta.event_hook`, `eventId` of the delivery, `eventTime`,
 * `source`) whose `data.events[]` are System Log events: `uuid` (the event's own id, stable
 * across redeliveries), `eventType`, `published`, `actor`, `target[]`, `outcome`.
 */
const OktaObjectSchema = z.looseObject({
  id: z.string().min(1).max(256),
  type: z.string().max(128),
  alternateId: z.string().max(1024).nullish(),
  displayName: z.string().max(1024).nullish(),
});
export type OktaObject = z.infer<typeof OktaObjectSchema>;

const OktaSystemLogEventSchema = z.looseObject({
  uuid: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, { message: 'must be an Okta event id (letters, digits, . _ : -)' }),
  eventType: z.string().min(1).max(256),
  published: z.iso.datetime({ offset: true }),
  actor: OktaObjectSchema.nullish(),
  target: z.array(OktaObjectSchema).max(64).nullish(),
  outcome: z.looseObject({ result: z.string().nullish(), reason: z.string().nullish() }).nullish(),
  displayMessage: z.string().nullish(),
});
export type OktaSystemLogEvent = z.infer<typeof OktaSystemLogEventSchema>;

export const OktaEventHookEnvelopeSchema = z.looseObject({
  eventType: z.literal('com.okta.event_hook').optional(),
  eventId: z.string().max(256).optional(),
  data: z.looseObject({ events: z.array(OktaSystemLogEventSchema).max(1000) }),
});

/** Lifecycle events that bring an account back: drift when HR says the person is gone. */
const REVIVAL_EVENTS = new Set(['user.lifecycle.activate', 'user.lifecycle.reactivate', 'user.lifecycle.unsuspend']);
/** Access granted in Okta directly. */
const GRANT_EVENTS = new Set(['group.user_membership.add', 'user.account.privilege.grant', 'application.user_membership.add']);
export const WATCHED_OKTA_EVENT_TYPES: readonly string[] = [...REVIVAL_EVENTS, ...GRANT_EVENTS];

/** Kept for the drift handler's exception evidence (the Okta event as received). */
export const oktaEventMetaKey = (eventId: string) => `okta-event/${eventId}`;
const OKTA_EVENT_META_TTL_SECONDS = 30 * 24 * 3600;

export interface OktaEventsOptions {
  /**
   * Okta principals jml itself acts as (the API token's user id, the OAuth service app's client
   * id): their changes are jml's own, not drift.
   */
  selfActorIds?: readonly string[];
}

export interface OktaEventsResult {
  received: number;
  enqueued: Array<{ eventId: string; eventType: string; accountId: string; employeeId?: string }>;
  skipped: Array<{ eventId: string; eventType: string; reason: string }>;
}

type Decision = { keep: true; message: Extract<QueueMessage, { kind: 'drift' }>; event: OktaSystemLogEvent } | { keep: false; reason: string };

/**
 * Keeps the Okta events that may be access drift and enqueues one `drift` message per event
 * (deduplication id = the event's `uuid`, group = the person's employeeId, or the Okta user id
 * when the account is linked to nobody). Throws ValidationError naming the field when the
 * envelope is not an Okta event hook delivery.
 *
 * What is kept (all others are skipped with a reason):
 * - `user.lifecycle.activate` / `reactivate` / `unsuspend` of an account whose person is
 *   terminated in HR (unsuspend: also on leave);
 * - `group.user_membership.add` to a group the policy manages on Okta, or of a person who is
 *   terminated or on leave;
 * - `application.user_membership.add` of an app the policy manages on Okta, or of a person who
 *   is terminated or on leave;
 * - `user.account.privilege.grant` (an admin role granted outside jml), always;
 * and never a failed event, nor one whose actor is jml itself.
 */
export async function acceptOktaEvents(deps: AppDeps, envelope: unknown, options: OktaEventsOptions = {}): Promise<OktaEventsResult> {
  const parsed = OktaEventHookEnvelopeSchema.safeParse(envelope);
  if (!parsed.success) throw new ValidationError(formatIssues(parsed.error));
  const events = parsed.data.data.events;
  const policy = await deps.policy();
  const result: OktaEventsResult = { received: events.length, enqueued: [], skipped: [] };
  if (policy.idp.kind !== 'okta') {
    for (const e of events) result.skipped.push({ eventId: e.uuid, eventType: e.eventType, reason: `the identity provider in the policy is ${policy.idp.kind}, not Okta` });
    return result;
  }
  const managed = managedOktaObjects(policy);
  const self = new Set(options.selfActorIds ?? []);

  // A delivery often holds several events of one account: look each account up once.
  const people = new Map<string, Promise<{ employeeId: string | null; person: PersonRecord | null }>>();
  const lookup = (accountId: string) => {
    let p = people.get(accountId);
    if (!p) {
      p = (async () => {
        const employeeId = await deps.ledger.findPersonByAccount(policy.idp.name, accountId);
        return { employeeId, person: employeeId ? await deps.ledger.getPerson(employeeId) : null };
      })();
      people.set(accountId, p);
    }
    return p;
  };
  const decisions = await mapLimit(events, 16, (e) => decide(policy, managed, self, lookup, e));

  // One person's events keep their order (same FIFO group, sent one after another); groups go in parallel.
  const groups = new Map<string, Array<Extract<Decision, { keep: true }>>>();
  decisions.forEach((d, i) => {
    const e = events[i]!;
    if (!d.keep) {
      result.skipped.push({ eventId: e.uuid, eventType: e.eventType, reason: d.reason });
      return;
    }
    const group = d.message.employeeId ?? `okta-${d.message.accountId}`;
    groups.set(group, [...(groups.get(group) ?? []), d]);
  });
  // The evidence first (any order), then the messages (in order within each group).
  const ttl = Math.floor(deps.clock.now().getTime() / 1000) + OKTA_EVENT_META_TTL_SECONDS;
  const kept = [...groups.values()].flat();
  await mapLimit(kept, 16, (d) => deps.ledger.putMeta(oktaEventMetaKey(d.message.eventId), oktaEventEvidence(d.event), ttl));
  await Promise.all(
    [...groups.entries()].map(async ([groupId, list]) => {
      for (const d of list) {
        await deps.queue.send(d.message, { groupId, deduplicationId: d.message.eventId });
        deps.metrics.put('DriftSignal', 1, 'Count', { Target: d.message.target, EventType: d.message.eventType });
      }
    }),
  );
  for (const d of decisions) {
    if (d.keep) {
      result.enqueued.push({
        eventId: d.message.eventId,
        eventType: d.message.eventType,
        accountId: d.message.accountId!,
        ...(d.message.employeeId ? { employeeId: d.message.employeeId } : {}),
      });
    }
  }
  return result;
}

async function decide(
  policy: Policy,
  managed: { groups: Set<string>; apps: Set<string> },
  self: Set<string>,
  lookup: (accountId: string) => Promise<{ employeeId: string | null; person: PersonRecord | null }>,
  e: OktaSystemLogEvent,
): Promise<Decision> {
  const revival = REVIVAL_EVENTS.has(e.eventType);
  if (!revival && !GRANT_EVENTS.has(e.eventType)) return { keep: false, reason: 'not an event type jml watches' };
  const outcome = e.outcome?.result;
  if (outcome && outcome !== 'SUCCESS') return { keep: false, reason: `outcome ${outcome}: nothing changed` };
  if (e.actor && self.has(e.actor.id)) return { keep: false, reason: 'made by jml itself' };
  const user = (e.target ?? []).find((t) => t.type === 'User');
  if (!user) return { keep: false, reason: 'no User among the targets' };
  if (!/^[A-Za-z0-9]{1,100}$/.test(user.id)) return { keep: false, reason: 'target user id is not an Okta id' };

  const { employeeId, person } = await lookup(user.id);
  const gone = person?.status === 'terminated';
  const away = gone || person?.status === 'on_leave';

  if (revival) {
    if (!employeeId) return { keep: false, reason: 'account is not linked to a person jml manages' };
    const drift = e.eventType === 'user.lifecycle.unsuspend' ? away : gone;
    if (!drift) return { keep: false, reason: `person is ${person?.status ?? 'unknown'} in HR` };
  } else if (e.eventType === 'group.user_membership.add') {
    const group = (e.target ?? []).find((t) => t.type === 'UserGroup');
    if (!away && !(group && matches(group, managed.groups))) return { keep: false, reason: 'group is not managed by the policy' };
  } else if (e.eventType === 'application.user_membership.add') {
    const app = (e.target ?? []).find((t) => t.type === 'AppInstance');
    if (!away && !(app && matches(app, managed.apps))) return { keep: false, reason: 'app is not managed by the policy' };
  }

  const actor = e.actor ? (e.actor.alternateId ?? e.actor.displayName ?? e.actor.id) : undefined;
  return {
    keep: true,
    event: e,
    message: {
      kind: 'drift',
      eventId: e.uuid,
      ...(employeeId ? { employeeId } : {}),
      target: policy.idp.name,
      accountId: user.id,
      eventType: e.eventType,
      ...(actor ? { actor } : {}),
      published: new Date(Date.parse(e.published)).toISOString(),
    },
  };
}

function matches(o: OktaObject, names: Set<string>): boolean {
  return names.has(o.id) || (o.displayName != null && names.has(o.displayName)) || (o.alternateId != null && names.has(o.alternateId));
}

function managedOktaObjects(policy: Policy): { groups: Set<string>; apps: Set<string> } {
  const groups = new Set<string>();
  const apps = new Set<string>();
  for (const list of policy.bundleEntitlements.values()) {
    for (const e of list) {
      if (e.target !== policy.idp.name) continue;
      if (e.type === 'group') groups.add(e.value);
      if (e.type === 'app') apps.add(e.value);
    }
  }
  return { groups, apps };
}

/** The parts of the Okta event that are evidence (who, what, on which objects, outcome). */
function oktaEventEvidence(e: OktaSystemLogEvent) {
  const pick = (o: OktaObject) => ({ id: o.id, type: o.type, alternateId: o.alternateId ?? null, displayName: o.displayName ?? null });
  return {
    uuid: e.uuid,
    eventType: e.eventType,
    published: e.published,
    displayMessage: e.displayMessage ?? null,
    actor: e.actor ? pick(e.actor) : null,
    target: (e.target ?? []).map(pick),
    outcome: e.outcome ? { result: e.outcome.result ?? null, reason: e.outcome.reason ?? null } : null,
  };
}
export type OktaEventEvidence = ReturnType<typeof oktaEventEvidence>;

// ---------------------------------------------------------------------------------------------
// helpers

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function toBytes(raw: string | Uint8Array): Uint8Array {
  return typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
}

function decode(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new InvalidJson();
  }
}

function parseJson(bytes: Uint8Array): unknown {
  const text = decode(bytes);
  try {
    return JSON.parse(text);
  } catch {
    throw new InvalidJson();
  }
}

