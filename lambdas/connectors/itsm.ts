/**
 * ITSM tickets for exceptions — never for the default path. Three wire formats:
 *
 *  - Jira Service Management: `POST {baseUrl}/rest/servicedeskapi/request` (a customer request in
 *    a service desk, `requestFieldValues.summary/description`), Basic auth `email:apiToken`;
 *    resolving adds an internal comment (`POST …/request/{key}/comment`, `public: false`) — the
 *    desk's own workflow decides the transition.
 *  - ServiceNow: `POST {instanceUrl}/api/now/table/{table}` (incident by default) with
 *    `correlation_id` = the exception id, Basic auth `user:password` (or `Bearer <token>` for
 *    OAuth); resolving PATCHes `state` 6 (Resolved) with `close_code` / `close_notes`.
 *  - A generic webhook: `POST {url}` of a JSON event signed like the HRIS webhook
 *    (`X-JML-Timestamp`, `X-JML-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`)
 *    with `Idempotency-Key: <exceptionId>:<event>`; a JSON answer `{ id, key?, url? }` is recorded.
 *
 * Idempotency: the first attempt creates; a retry (the nightly pass over exceptions whose ticket
 * failed) first looks the ticket up — ServiceNow by `correlation_id`, Jira by the exception id
 * in the summary — so a request that timed out after the ITSM created the ticket does not raise a
 * second one. Tickets carry the reason, the target, the person's employee id and links to the
 * run: no HR payload, no evidence body, no secret. Errors name the system and the HTTP status,
 * never the credentials.
 */
import * as z from 'zod';
import { JmlError } from '#core/errors';
import { EXCEPTION_KINDS, type ExceptionRecord, type TicketRef } from '#core/ledger';
import { signCanonical } from '#core/signature';

/** https, or plain http on the loopback address (the local ITSM stand-in). */
const endpoint = z
  .string()
  .url({ message: 'must be a URL' })
  .refine(
    (u) => {
      const url = new URL(u);
      return url.protocol === 'https:' || (url.protocol === 'http:' && url.hostname === '127.0.0.1');
    },
    { message: 'must be an https:// URL' },
  )
  .transform((u) => u.replace(/\/+$/, ''));

const kinds = z.array(z.enum(EXCEPTION_KINDS)).min(1).optional();

/** The ITSM connection of a deployment (deploy config `itsm`, Lambda env `JML_ITSM`). */
export const ItsmConfigSchema = z.discriminatedUnion('system', [
  z
    .object({
      system: z.literal('jira'),
      baseUrl: endpoint,
      serviceDeskId: z.string().regex(/^\d+$/, 'must be the numeric service desk id'),
      requestTypeId: z.string().regex(/^\d+$/, 'must be the numeric request type id'),
      /** Exception kinds that raise a ticket (default: every kind). */
      kinds,
    })
    .strict(),
  z
    .object({
      system: z.literal('servicenow'),
      instanceUrl: endpoint,
      table: z.string().regex(/^[a-z][a-z0-9_]*$/, 'must be a table name such as incident').default('incident'),
      /** Assignment group (sys_id or name) for every ticket. */
      assignmentGroup: z.string().min(1).optional(),
      /** `close_code` when an exception is resolved (choices differ between releases). */
      closeCode: z.string().min(1).default('Solved (Permanently)'),
      kinds,
    })
    .strict(),
  z.object({ system: z.literal('webhook'), url: endpoint, kinds }).strict(),
]);
export type ItsmConfig = z.input<typeof ItsmConfigSchema>;
type ParsedItsmConfig = z.output<typeof ItsmConfigSchema>;

/** Raising or closing a ticket failed (the ITSM refused, timed out or answered nonsense). */
export class TicketingFailed extends JmlError {}

/** What a ticket says besides the exception itself. */
export interface TicketContext {
  /** Where an operator sees open exceptions. */
  exceptionsUrl: string;
  /** The run's record, when the exception belongs to a run. */
  runUrl?: string;
}

/** The ticketing port: raise a ticket for a newly opened exception, close it when resolved. */
export interface Ticketing {
  /** Whether an exception of this kind raises a ticket (false when no ITSM is configured). */
  wants(kind: ExceptionRecord['kind']): boolean;
  open(exception: ExceptionRecord, context: TicketContext, options: { now: Date; retry: boolean }): Promise<TicketRef>;
  close(exception: ExceptionRecord, ticket: TicketRef, options: { now: Date }): Promise<TicketRef>;
}

/** No ITSM configured: no tickets (exceptions still email their owner). */
export const NO_TICKETING: Ticketing = {
  wants: () => false,
  open: () => Promise.reject(new TicketingFailed('no ITSM is configured')),
  close: () => Promise.reject(new TicketingFailed('no ITSM is configured')),
};

export interface ItsmOptions {
  /** The `itsm` secret's current value(s): the first authenticates / signs. */
  secret: () => Promise<string[]>;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

const KIND_TITLES: Record<ExceptionRecord['kind'], string> = {
  step_failed: 'Access change failed',
  conflict: 'Two accounts claim one person',
  orphan: 'Orphan account',
  drift: 'Access drift',
  leaver_enabled: 'Leaver still enabled',
  approval_expired: 'Approval expired',
  out_of_band_change: 'Change made outside jml',
  exception_grant: 'Exception grant',
};
/** Kinds that leave access open that should be closed: highest urgency. */
const URGENT: ReadonlySet<ExceptionRecord['kind']> = new Set(['leaver_enabled', 'out_of_band_change']);

export function ticketSummary(e: ExceptionRecord): string {
  const who = e.employeeId ? ` for ${e.employeeId}` : '';
  return `[jml] ${KIND_TITLES[e.kind]} on ${e.target}${who} (${e.exceptionId})`.slice(0, 250);
}

export function ticketDescription(e: ExceptionRecord, ctx: TicketContext): string {
  return [
    `${KIND_TITLES[e.kind]} on ${e.target}. Owner of record: ${e.owner}.`,
    '',
    `Reason: ${e.reason}`,
    e.employeeId ? `Person (employee id): ${e.employeeId}` : '',
    e.runId ? `Run: ${e.runId}${ctx.runUrl ? ` — ${ctx.runUrl}` : ''}` : '',
    `Exception: ${e.exceptionId} (opened ${e.openedAt})`,
    '',
    `Open exceptions: ${ctx.exceptionsUrl}`,
    'Resolve the exception in jml once fixed; the resolution is recorded in the run evidence.',
  ]
    .filter((l, i, all) => l !== '' || (i > 0 && all[i - 1] !== ''))
    .join('\n');
}

function resolutionText(e: ExceptionRecord): string {
  return `Resolved in jml by ${e.resolvedBy ?? 'an operator'}: ${e.resolution ?? 'resolved'}`;
}

export function createTicketing(config: ItsmConfig | undefined, options: ItsmOptions): Ticketing {
  if (!config) return NO_TICKETING;
  const parsed = ItsmConfigSchema.parse(config);
  switch (parsed.system) {
    case 'jira':
      return new JiraServiceManagement(parsed, options);
    case 'servicenow':
      return new ServiceNow(parsed, options);
    case 'webhook':
      return new SignedWebhook(parsed, options);
  }
}

type Reply = { status: number; body: unknown; text: string };

abstract class HttpTicketing implements Ticketing {
  protected abstract readonly label: string;
  private readonly kinds: ReadonlySet<string> | undefined;

  constructor(
    config: { kinds?: readonly string[] | undefined },
    protected readonly options: ItsmOptions,
  ) {
    this.kinds = config.kinds ? new Set(config.kinds) : undefined;
  }

  wants(kind: ExceptionRecord['kind']): boolean {
    return !this.kinds || this.kinds.has(kind);
  }

  abstract open(exception: ExceptionRecord, context: TicketContext, options: { now: Date; retry: boolean }): Promise<TicketRef>;
  abstract close(exception: ExceptionRecord, ticket: TicketRef, options: { now: Date }): Promise<TicketRef>;

  protected async credential(): Promise<string> {
    const [value] = await this.options.secret();
    if (!value) throw new TicketingFailed(`${this.label}: the itsm secret is empty — fill it in (see docs/operations)`);
    return value;
  }

  /** JSON request headers with the credential: Basic `user:secret`, or a ready `Bearer …` value. */
  private async jsonHeaders(): Promise<Record<string, string>> {
    return { authorization: await this.authorization(), accept: 'application/json', 'content-type': 'application/json' };
  }

  private async authorization(): Promise<string> {
    const value = await this.credential();
    if (/^Bearer\s+\S/.test(value)) return value;
    if (!value.includes(':')) throw new TicketingFailed(`${this.label}: the itsm secret must be "user:token" (or "Bearer <token>")`);
    return `Basic ${Buffer.from(value, 'utf8').toString('base64')}`;
  }

  protected async send(what: string, url: string, init: { method: string; headers: Record<string, string>; body?: string }): Promise<Reply> {
    const doFetch = this.options.fetch ?? fetch;
    let res: Response;
    try {
      res = await doFetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000) });
    } catch (err) {
      const cause = err instanceof Error && err.name === 'TimeoutError' ? 'timed out' : `could not be reached (${(err as Error).message})`;
      throw new TicketingFailed(`${this.label}: ${what} — ${new URL(url).host} ${cause}`);
    }
    const text = await res.text();
    if (res.status < 200 || res.status >= 300) {
      throw new TicketingFailed(`${this.label}: ${what} — answered HTTP ${res.status}${errorDetail(text)}`);
    }
    let body: unknown = undefined;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
    }
    return { status: res.status, body, text };
  }

  /** One JSON call with the credential; the answer checked against `schema` (`z.unknown()`: not read). */
  protected async jsonCall<S extends z.ZodType>(what: string, url: string, method: string, schema: S, body?: unknown): Promise<z.infer<S>> {
    const reply = await this.send(what, url, { method, headers: await this.jsonHeaders(), ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    return this.parse(schema, reply, what);
  }

  protected parse<S extends z.ZodType>(schema: S, reply: Reply, what: string): z.infer<S> {
    const r = schema.safeParse(reply.body);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new TicketingFailed(`${this.label}: ${what} — unexpected answer (${issue.path.join('.') || 'body'}: ${issue.message})`);
    }
    return r.data;
  }
}

/** A short, secret-free detail from an ITSM error body (Jira `errorMessage`, ServiceNow `error.message`). */
function errorDetail(text: string): string {
  try {
    const b = JSON.parse(text) as { errorMessage?: unknown; error?: { message?: unknown } };
    const m = typeof b.errorMessage === 'string' ? b.errorMessage : typeof b.error?.message === 'string' ? b.error.message : undefined;
    return m ? `: ${m.slice(0, 200)}` : '';
  } catch {
    return '';
  }
}

const JiraRequest = z.object({
  issueId: z.string().min(1),
  issueKey: z.string().min(1),
  _links: z.object({ web: z.string().optional() }).partial().optional(),
});
const JiraRequestPage = z.object({ values: z.array(JiraRequest.extend({ requestFieldValues: z.unknown().optional() })) });

class JiraServiceManagement extends HttpTicketing {
  protected readonly label = 'Jira Service Management';

  constructor(
    private readonly config: Extract<ParsedItsmConfig, { system: 'jira' }>,
    options: ItsmOptions,
  ) {
    super(config, options);
  }

  private ref(r: z.infer<typeof JiraRequest>, openedAt: string): TicketRef {
    return { system: 'jira', id: r.issueId, key: r.issueKey, url: r._links?.web ?? `${this.config.baseUrl}/browse/${r.issueKey}`, openedAt };
  }

  async open(e: ExceptionRecord, ctx: TicketContext, o: { now: Date; retry: boolean }): Promise<TicketRef> {
    const requests = `${this.config.baseUrl}/rest/servicedeskapi/request`;
    if (o.retry) {
      const q = new URLSearchParams({ searchTerm: e.exceptionId, serviceDeskId: this.config.serviceDeskId, requestStatus: 'ALL_REQUESTS', limit: '5' });
      const found = await this.jsonCall('look up an earlier request', `${requests}?${q}`, 'GET', JiraRequestPage);
      if (found.values[0]) return this.ref(found.values[0], o.now.toISOString());
    }
    const created = await this.jsonCall('create request', requests, 'POST', JiraRequest, {
      serviceDeskId: this.config.serviceDeskId,
      requestTypeId: this.config.requestTypeId,
      requestFieldValues: { summary: ticketSummary(e), description: ticketDescription(e, ctx) },
    });
    return this.ref(created, o.now.toISOString());
  }

  async close(e: ExceptionRecord, ticket: TicketRef, o: { now: Date }): Promise<TicketRef> {
    const url = `${this.config.baseUrl}/rest/servicedeskapi/request/${encodeURIComponent(ticket.key ?? ticket.id)}/comment`;
    await this.jsonCall('comment the resolution', url, 'POST', z.unknown(), { body: `${resolutionText(e)} (${e.resolvedAt ?? o.now.toISOString()})`, public: false });
    return { ...ticket, closedAt: o.now.toISOString() };
  }
}

const ServiceNowRecord = z.object({ sys_id: z.string().min(1), number: z.string().optional() });
const ServiceNowOne = z.object({ result: ServiceNowRecord });
const ServiceNowList = z.object({ result: z.array(ServiceNowRecord) });

class ServiceNow extends HttpTicketing {
  protected readonly label = 'ServiceNow';

  constructor(
    private readonly config: Extract<ParsedItsmConfig, { system: 'servicenow' }>,
    options: ItsmOptions,
  ) {
    super(config, options);
  }

  private tableUrl(suffix = '') {
    return `${this.config.instanceUrl}/api/now/table/${this.config.table}${suffix}`;
  }

  private ref(r: z.infer<typeof ServiceNowRecord>, openedAt: string): TicketRef {
    const url = `${this.config.instanceUrl}/nav_to.do?uri=${encodeURIComponent(`${this.config.table}.do?sys_id=${r.sys_id}`)}`;
    return { system: 'servicenow', id: r.sys_id, ...(r.number ? { key: r.number } : {}), url, openedAt };
  }

  async open(e: ExceptionRecord, ctx: TicketContext, o: { now: Date; retry: boolean }): Promise<TicketRef> {
    if (o.retry) {
      const q = new URLSearchParams({ sysparm_query: `correlation_id=${e.exceptionId}`, sysparm_fields: 'sys_id,number', sysparm_limit: '1' });
      const found = await this.jsonCall('look up an earlier ticket', `${this.tableUrl()}?${q}`, 'GET', ServiceNowList);
      if (found.result[0]) return this.ref(found.result[0], o.now.toISOString());
    }
    const created = await this.jsonCall(`create ${this.config.table} record`, `${this.tableUrl()}?sysparm_fields=sys_id,number`, 'POST', ServiceNowOne, {
      short_description: ticketSummary(e),
      description: ticketDescription(e, ctx),
      correlation_id: e.exceptionId,
      correlation_display: 'jml',
      urgency: URGENT.has(e.kind) ? '1' : '2',
      impact: '2',
      ...(this.config.assignmentGroup ? { assignment_group: this.config.assignmentGroup } : {}),
    });
    return this.ref(created.result, o.now.toISOString());
  }

  async close(e: ExceptionRecord, ticket: TicketRef, o: { now: Date }): Promise<TicketRef> {
    await this.jsonCall(`resolve ${ticket.key ?? ticket.id}`, `${this.tableUrl(`/${encodeURIComponent(ticket.id)}`)}?sysparm_fields=sys_id`, 'PATCH', z.unknown(), {
      state: '6',
      close_code: this.config.closeCode,
      close_notes: resolutionText(e),
    });
    return { ...ticket, closedAt: o.now.toISOString() };
  }
}

const WebhookAnswer = z
  .object({ id: z.string().min(1).optional(), key: z.string().min(1).optional(), url: z.string().url().optional() })
  .loose()
  .optional();

/** The event a webhook receiver gets. */
export interface ExceptionWebhookEvent {
  type: 'exception.opened' | 'exception.resolved';
  exception: Pick<ExceptionRecord, 'exceptionId' | 'kind' | 'target' | 'owner' | 'reason' | 'status' | 'openedAt'> &
    Partial<Pick<ExceptionRecord, 'runId' | 'employeeId' | 'resolvedAt' | 'resolution' | 'resolvedBy'>>;
  summary: string;
  links: TicketContext;
  ticket?: TicketRef;
}

class SignedWebhook extends HttpTicketing {
  protected readonly label = 'ITSM webhook';

  constructor(
    private readonly config: Extract<ParsedItsmConfig, { system: 'webhook' }>,
    options: ItsmOptions,
  ) {
    super(config, options);
  }

  /** Signed with the wall clock (the receiver checks the timestamp against its own clock). */
  private async post(event: ExceptionWebhookEvent, what: string): Promise<Reply> {
    const secret = await this.credential();
    const body = JSON.stringify(event);
    return this.send(what, this.config.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json',
        ...signCanonical(secret, body, Math.floor(Date.now() / 1000)),
        'idempotency-key': `${event.exception.exceptionId}:${event.type}`,
      },
      body,
    });
  }

  async open(e: ExceptionRecord, ctx: TicketContext, o: { now: Date; retry: boolean }): Promise<TicketRef> {
    const reply = await this.post({ type: 'exception.opened', exception: publicFields(e), summary: ticketSummary(e), links: ctx }, 'deliver exception.opened');
    const answer = this.parse(WebhookAnswer, reply, 'deliver exception.opened');
    return {
      system: 'webhook',
      id: answer?.id ?? e.exceptionId,
      ...(answer?.key ? { key: answer.key } : {}),
      ...(answer?.url ? { url: answer.url } : {}),
      openedAt: o.now.toISOString(),
    };
  }

  async close(e: ExceptionRecord, ticket: TicketRef, o: { now: Date }): Promise<TicketRef> {
    await this.post(
      { type: 'exception.resolved', exception: publicFields(e), summary: ticketSummary(e), links: { exceptionsUrl: '' }, ticket },
      'deliver exception.resolved',
    );
    return { ...ticket, closedAt: o.now.toISOString() };
  }
}

/** The exception without its evidence (which may hold target payloads): ids, reason, owner, status. */
function publicFields(e: ExceptionRecord): ExceptionWebhookEvent['exception'] {
  const { exceptionId, kind, target, owner, reason, status, openedAt, runId, employeeId, resolvedAt, resolution, resolvedBy } = e;
  return {
    exceptionId,
    kind,
    target,
    owner,
    reason,
    status,
    openedAt,
    ...(runId ? { runId } : {}),
    ...(employeeId ? { employeeId } : {}),
    ...(resolvedAt ? { resolvedAt } : {}),
    ...(resolution ? { resolution } : {}),
    ...(resolvedBy ? { resolvedBy } : {}),
  };
}
