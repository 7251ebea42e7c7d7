/**
 * An ITSM stand-in for local runs and tests: the slice of Jira Service Management, ServiceNow's
 * Table API and a webhook receiver that jml's ticketing uses, on one loopback server.
 *
 *  - `POST /rest/servicedeskapi/request` → 201 `{ issueId, issueKey, _links: { web } }`;
 *    `GET /rest/servicedeskapi/request?searchTerm=…` → `{ values: [...] }` (summary contains the term);
 *    `POST /rest/servicedeskapi/request/{key}/comment` → 201. Basic auth.
 *  - `POST /api/now/table/{table}` → 201 `{ result: { sys_id, number } }`;
 *    `GET /api/now/table/{table}?sysparm_query=correlation_id=X` → `{ result: [...] }`;
 *    `PATCH /api/now/table/{table}/{sys_id}` → 200. Basic or Bearer auth.
 *  - `POST /hooks/jml` verifies the canonical jml signature (`X-JML-Timestamp`/`X-JML-Signature`)
 *    and deduplicates on `Idempotency-Key`; answers `{ id, key, url }`.
 *
 * Every ticket is kept in `tickets` (what a test or `GET /local/tickets` shows); faults and
 * latency come from the shared stand-in controls.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { verifyCanonical } from '#core/signature';
import { applyControls, defaultControls, listen, readBody, sendJson, type RunningServer, type StandInControls } from './http-kit.ts';

export interface StandInTicket {
  system: 'jira' | 'servicenow' | 'webhook';
  id: string;
  key: string;
  summary: string;
  description: string;
  /** Raw fields as received (ServiceNow record fields, Jira requestFieldValues, the webhook event). */
  fields: Record<string, unknown>;
  state: 'open' | 'resolved';
  comments: string[];
  createdAt: string;
}

export interface ItsmStandIn extends RunningServer {
  tickets: StandInTicket[];
  controls: StandInControls;
  /** Every request, for call counting. */
  requests: Array<{ method: string; path: string; status: number }>;
}

export interface ItsmStandInOptions {
  /** `user:token` for Jira / ServiceNow Basic auth (or a `Bearer …` value). */
  credential: string;
  /** The webhook receiver's signing secret. */
  webhookSecret?: string;
  port?: number;
}

export async function startItsmStandIn(options: ItsmStandInOptions): Promise<ItsmStandIn> {
  const tickets: StandInTicket[] = [];
  const requests: ItsmStandIn['requests'] = [];
  const controls = defaultControls();
  const seenIdempotencyKeys = new Map<string, unknown>();
  let base = '';
  let seq = 0;

  const expectedAuth = /^Bearer\s/.test(options.credential) ? options.credential : `Basic ${Buffer.from(options.credential).toString('base64')}`;

  const reply = (res: ServerResponse, req: IncomingMessage, path: string, status: number, body: unknown) => {
    requests.push({ method: req.method ?? 'GET', path, status });
    sendJson(res, status, body);
  };

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', base);
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const go = await applyControls(controls, req, res, path, {
      error: (r, status) => reply(r, req, path, status, { errorMessage: `stand-in fault ${status}` }),
      throttle: (r, s) => {
        requests.push({ method, path, status: 429 });
        sendJson(r, 429, { errorMessage: 'rate limited' }, { 'Retry-After': String(s) });
      },
    });
    if (!go) return;
    const raw = await readBody(req);
    const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};

    if (path === '/hooks/jml' && method === 'POST') {
      const ok =
        options.webhookSecret !== undefined &&
        verifyCanonical({ headers: req.headers, rawBody: raw, secret: options.webhookSecret, nowSeconds: Math.floor(Date.now() / 1000) }).ok;
      if (!ok) return reply(res, req, path, 401, { error: 'bad signature' });
      const key = String(req.headers['idempotency-key'] ?? '');
      if (key && seenIdempotencyKeys.has(key)) return reply(res, req, path, 200, seenIdempotencyKeys.get(key));
      const event = body as { type?: string; exception?: { exceptionId?: string }; summary?: string };
      let answer: unknown;
      if (event.type === 'exception.resolved') {
        const t = tickets.find((x) => x.system === 'webhook' && x.fields['exceptionId'] === event.exception?.exceptionId);
        if (t) t.state = 'resolved';
        answer = { ok: true };
      } else {
        const t = newTicket('webhook', `HOOK-${++seq}`, String(event.summary ?? ''), '', { ...(event.exception ?? {}) });
        answer = { id: t.id, key: t.key, url: `${base}/tickets/${t.key}` };
      }
      if (key) seenIdempotencyKeys.set(key, answer);
      return reply(res, req, path, 200, answer);
    }

    if (req.headers.authorization !== expectedAuth) return reply(res, req, path, 401, { errorMessage: 'Unauthorized' });

    const jira = /^\/rest\/servicedeskapi\/request(?:\/([^/]+)\/comment)?$/.exec(path);
    if (jira) {
      if (!jira[1] && method === 'POST') {
        const fields = (body['requestFieldValues'] ?? {}) as Record<string, unknown>;
        if (typeof fields['summary'] !== 'string' || !body['serviceDeskId'] || !body['requestTypeId']) {
          return reply(res, req, path, 400, { errorMessage: 'serviceDeskId, requestTypeId and requestFieldValues.summary are required' });
        }
        const n = ++seq;
        const t = newTicket('jira', String(10000 + n), String(fields['summary']), String(fields['description'] ?? ''), body, `ITSM-${n}`);
        return reply(res, req, path, 201, jiraJson(t));
      }
      if (!jira[1] && method === 'GET') {
        const term = url.searchParams.get('searchTerm') ?? '';
        return reply(res, req, path, 200, { values: tickets.filter((t) => t.system === 'jira' && t.summary.includes(term)).map(jiraJson), isLastPage: true });
      }
      if (jira[1] && method === 'POST') {
        const t = tickets.find((x) => x.system === 'jira' && (x.key === jira[1] || x.id === jira[1]));
        if (!t) return reply(res, req, path, 404, { errorMessage: `Request ${jira[1]} does not exist` });
        t.comments.push(String(body['body'] ?? ''));
        t.state = 'resolved';
        return reply(res, req, path, 201, { id: String(t.comments.length), body: body['body'], public: body['public'] ?? true });
      }
    }

    const snow = /^\/api\/now\/table\/([a-z_][a-z0-9_]*)(?:\/([^/]+))?$/.exec(path);
    if (snow) {
      if (!snow[2] && method === 'POST') {
        if (typeof body['short_description'] !== 'string') return reply(res, req, path, 400, { error: { message: 'short_description is required' } });
        const n = ++seq;
        const t = newTicket('servicenow', `sys${String(n).padStart(29, '0')}`, String(body['short_description']), String(body['description'] ?? ''), body, `INC${String(n).padStart(7, '0')}`);
        return reply(res, req, path, 201, { result: snowJson(t) });
      }
      if (!snow[2] && method === 'GET') {
        const q = /^correlation_id=(.+)$/.exec(url.searchParams.get('sysparm_query') ?? '');
        const found = tickets.filter((t) => t.system === 'servicenow' && (!q || t.fields['correlation_id'] === q[1]));
        return reply(res, req, path, 200, { result: found.map(snowJson) });
      }
      if (snow[2] && method === 'PATCH') {
        const t = tickets.find((x) => x.system === 'servicenow' && x.id === snow[2]);
        if (!t) return reply(res, req, path, 404, { error: { message: 'No Record found' } });
        Object.assign(t.fields, body);
        if (body['state'] === '6' || body['state'] === '7') t.state = 'resolved';
        if (typeof body['close_notes'] === 'string') t.comments.push(body['close_notes']);
        return reply(res, req, path, 200, { result: snowJson(t) });
      }
    }
    return reply(res, req, path, 404, { errorMessage: `no route ${method} ${path}` });
  }

  function newTicket(system: StandInTicket['system'], id: string, summary: string, description: string, fields: Record<string, unknown>, key = id): StandInTicket {
    const t: StandInTicket = { system, id, key, summary, description, fields, state: 'open', comments: [], createdAt: new Date().toISOString() };
    tickets.push(t);
    return t;
  }
  const jiraJson = (t: StandInTicket) => ({
    issueId: t.id,
    issueKey: t.key,
    requestFieldValues: [{ fieldId: 'summary', value: t.summary }],
    currentStatus: { status: t.state === 'open' ? 'Waiting for support' : 'Resolved' },
    _links: { web: `${base}/servicedesk/customer/portal/1/${t.key}` },
  });
  const snowJson = (t: StandInTicket) => ({ sys_id: t.id, number: t.key });

  const server = await listen((req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) sendJson(res, 500, { errorMessage: err.message });
    });
  }, options.port !== undefined ? { port: options.port } : {});
  base = server.url;
  return { ...server, tickets, controls, requests };
}
