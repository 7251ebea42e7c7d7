/**
 * The DESIGN.md routes on 127.0.0.1: each HTTP request becomes the API Gateway event the Lambda
 * gets in AWS and goes to the same handler. Read routes and the `/local/*` extras answer only
 * loopback callers (in AWS the read routes are IAM-authorised).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { createApprovalsApiHandler } from '#handlers/approvals-api';
import { createBambooHrWebhookHandler, createHrisWebhookHandler } from '#handlers/hris-webhook';
import { createOktaEventHookHandler } from '#handlers/okta-event-hook';
import { createReadApiHandler } from '#handlers/read-api';
import { createExceptionGrantsHandler } from '#handlers/exception-grants';
import type { ApiHandler } from '#handlers/json-api';
import { contentTypeOf } from '#core/evidence';
import { dispatchScheduled } from '#app/scheduled';
import { toApiGatewayEvent } from './api-gateway.ts';
import type { LocalStack } from './stack.ts';

export interface LocalServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

interface Route {
  method: RegExp;
  path: RegExp;
  loopbackOnly?: boolean;
  handle(req: IncomingMessage, body: Buffer, match: RegExpExecArray, url: URL): Promise<Answer>;
}

interface Answer {
  status: number;
  headers?: Record<string, string>;
  body: string | Buffer;
}

const MAX_BODY = 1024 * 1024;

function json(status: number, body: unknown): Answer {
  return { status, headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }, body: JSON.stringify(body, null, 2) };
}

function isLoopback(req: IncomingMessage): boolean {
  const a = req.socket.remoteAddress ?? '';
  return a === '127.0.0.1' || a === '::1' || a === '::ffff:127.0.0.1' || a.startsWith('127.');
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    // Keep reading past the limit so the handler, not a reset socket, answers 413.
    if (size <= MAX_BODY + 1) chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function startLocalServer(stack: LocalStack, options: { port?: number } = {}): Promise<LocalServer> {
  const provider = async () => stack.deps;
  const viaLambda = (handler: ApiHandler, pathParameters?: (m: RegExpExecArray) => Record<string, string>) =>
    async (req: IncomingMessage, body: Buffer, m: RegExpExecArray): Promise<Answer> => {
      const result: APIGatewayProxyResult = await handler(
        toApiGatewayEvent({
          method: req.method ?? 'GET',
          url: req.url ?? '/',
          headers: req.headers as Record<string, string | string[] | undefined>,
          ...(body.length ? { body } : {}),
          sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
          ...(pathParameters ? { pathParameters: pathParameters(m) } : {}),
        }),
      );
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(result.headers ?? {})) headers[k] = String(v);
      return { status: result.statusCode, headers, body: result.isBase64Encoded ? Buffer.from(result.body, 'base64') : result.body };
    };

  const hris = createHrisWebhookHandler(provider);
  const bamboo = createBambooHrWebhookHandler(provider);
  const okta = createOktaEventHookHandler(provider);
  const approvals = createApprovalsApiHandler(provider);
  const read = createReadApiHandler(provider);
  const grants = createExceptionGrantsHandler(provider);

  const routes: Route[] = [
    { method: /^POST$/, path: /^\/hris\/events$/, handle: viaLambda(hris) },
    { method: /^POST$/, path: /^\/hris\/bamboohr$/, handle: viaLambda(bamboo) },
    { method: /^(GET|POST)$/, path: /^\/okta\/events$/, handle: viaLambda(okta) },
    { method: /^(GET|HEAD|POST)$/, path: /^\/approvals\/([^/]+)$/, handle: viaLambda(approvals, (m) => ({ id: decodeURIComponent(m[1]!) })) },
    {
      method: /^GET$/,
      path: /^\/runs\/([^/]+)\/evidence\/([^/]+)$/,
      loopbackOnly: true,
      handle: async (_req, _body, m) => {
        const file = await stack.deps.evidence.getFile(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!));
        if (!file) return json(404, { error: 'not_found', message: `no evidence file ${m[2]} for run ${m[1]}` });
        const type = contentTypeOf(m[2]!);
        return {
          status: 200,
          headers: {
            'content-type': type,
            'cache-control': 'no-store',
            ...(type.startsWith('text/html') ? { 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:" } : {}),
          },
          body: Buffer.from(file),
        };
      },
    },
    { method: /^POST$/, path: /^\/exception-grants$/, loopbackOnly: true, handle: viaLambda(grants) },
    { method: /^GET$/, path: /^\/exception-grants\/([^/]+)$/, loopbackOnly: true, handle: viaLambda(grants, (m) => ({ grantId: decodeURIComponent(m[1]!) })) },
    { method: /^POST$/, path: /^\/exceptions\/([^/]+)\/resolve$/, loopbackOnly: true, handle: viaLambda(grants, (m) => ({ exceptionId: decodeURIComponent(m[1]!) })) },
    { method: /^GET$/, path: /^\/runs\/([^/]+)$/, loopbackOnly: true, handle: viaLambda(read, (m) => ({ runId: decodeURIComponent(m[1]!) })) },
    { method: /^GET$/, path: /^\/runs$/, loopbackOnly: true, handle: viaLambda(read) },
    { method: /^GET$/, path: /^\/exceptions$/, loopbackOnly: true, handle: viaLambda(read) },
    {
      method: /^GET$/,
      path: /^\/local\/evidence\/chain\/([^/]+)$/,
      loopbackOnly: true,
      handle: async (_req, _body, m) => {
        const employeeId = decodeURIComponent(m[1]!);
        const index = await stack.deps.evidence.personBundles(employeeId);
        const entries = [];
        for (const e of index) {
          const manifest = await stack.deps.evidence.getFile(e.prefix, 'manifest.json');
          entries.push({ runId: e.runId, closedAt: e.closedAt, manifestSha256: e.manifestSha256, manifest: manifest ? Buffer.from(manifest).toString('base64') : '' });
        }
        return json(200, { employeeId, entries });
      },
    },
    {
      method: /^POST$/,
      path: /^\/local\/reconcile$/,
      loopbackOnly: true,
      handle: async (_req, body) => {
        // What the nightly EventBridge schedule does in AWS; `{ "wait": true }` answers when it ends.
        const wait = (() => {
          try {
            return JSON.parse(body.toString('utf8') || '{}').wait === true;
          } catch {
            return false;
          }
        })();
        const now = stack.clock.now();
        const outcome = await dispatchScheduled(stack.deps, { name: 'jml-nightly-reconcile', at: now.toISOString(), action: { kind: 'reconcile', payload: { scope: 'nightly' } } });
        const id = (outcome as { runId?: string }).runId;
        if (!id) return json(500, { error: 'internal', message: 'reconciliation did not start' });
        if (!wait) return json(202, { reconciliationId: id, status: 'STARTED' });
        const execution = await stack.workflows.wait(id, 10 * 60_000);
        const run = await stack.deps.ledger.getRun(id);
        return json(200, { reconciliationId: id, status: run?.status ?? execution.status, execution: execution.status, evidence: run?.evidence ?? null, kpis: run?.kpis ?? null });
      },
    },
    { method: /^GET$/, path: /^\/local\/targets$/, loopbackOnly: true, handle: async () => json(200, stack.targetInfo()) },
    {
      method: /^GET$/,
      path: /^\/local\/outbox$/,
      loopbackOnly: true,
      // `?after=N`: only the mails from position N on (N = how many the caller has seen); `next`
      // is where to ask from next time. `?summary=1` leaves out each mail's text and html.
      handle: async (_req, _body, _m, url) => {
        const afterParam = url.searchParams.get('after');
        if (afterParam !== null && !/^\d{1,15}$/.test(afterParam)) {
          return json(400, { error: 'invalid_request', message: `after must be a non-negative integer (how many mails the caller has already seen), got ${JSON.stringify(afterParam)}` });
        }
        const summaryParam = url.searchParams.get('summary');
        if (summaryParam !== null && !['0', '1', 'true', 'false'].includes(summaryParam)) {
          return json(400, { error: 'invalid_request', message: `summary must be 1 or 0, got ${JSON.stringify(summaryParam)}` });
        }
        const summary = summaryParam === '1' || summaryParam === 'true';
        const { mails, next } = stack.outbox.since(afterParam === null ? 0 : Number(afterParam));
        return json(200, {
          mails: mails.map((m) => ({
            to: m.to,
            subject: m.subject,
            ...(summary ? {} : { text: m.text, html: m.html }),
            links: m.links,
            runId: m.runId ?? null,
            approvalId: m.approvalId ?? null,
            sentAt: m.sentAt,
          })),
          next,
        });
      },
    },
    {
      method: /^GET$/,
      path: /^\/local\/tickets$/,
      loopbackOnly: true,
      handle: async () => json(200, { tickets: stack.itsm?.tickets ?? [], configured: stack.deps.ticketing !== undefined }),
    },
    { method: /^GET$/, path: /^\/local\/metrics$/, loopbackOnly: true, handle: async () => json(200, { points: stack.metrics.points }) },
    { method: /^GET$/, path: /^\/local\/schedules$/, loopbackOnly: true, handle: async () => json(200, { schedules: stack.scheduler.list(), fired: stack.scheduler.fired }) },
    {
      method: /^POST$/,
      path: /^\/local\/clock$/,
      loopbackOnly: true,
      handle: async (_req, body) => {
        let parsed: { advanceMs?: unknown; set?: unknown };
        try {
          parsed = JSON.parse(body.toString('utf8') || '{}');
        } catch {
          return json(400, { error: 'invalid_json', message: 'body is not valid JSON' });
        }
        if (typeof parsed.advanceMs === 'number' && parsed.advanceMs >= 0) stack.clock.advance(parsed.advanceMs);
        else if (typeof parsed.set === 'string' && !Number.isNaN(Date.parse(parsed.set))) stack.clock.set(new Date(parsed.set));
        else return json(400, { error: 'invalid_request', message: 'give { "advanceMs": <non-negative number> } or { "set": "<ISO time>" }' });
        const fired = await stack.scheduler.tick();
        return json(200, { now: stack.clock.now().toISOString(), fired });
      },
    },
  ];

  const server: Server = createServer((req, res) => void serve(req, res));

  async function serve(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let answer: Answer;
    try {
      const body = await readBody(req);
      const route = routes.find((r) => r.path.test(url.pathname));
      if (!route) answer = json(404, { error: 'not_found', message: `no route for ${url.pathname}` });
      else if (!route.method.test(req.method ?? '')) answer = json(405, { error: 'method_not_allowed', message: `${req.method} is not allowed on ${url.pathname}` });
      else if (route.loopbackOnly && !isLoopback(req)) answer = json(403, { error: 'forbidden', message: 'read routes answer loopback callers only in local mode' });
      else answer = await route.handle(req, body, route.path.exec(url.pathname)!, url);
    } catch (e) {
      answer = json(500, { error: 'internal', message: (e as Error).message });
    }
    res.writeHead(answer.status, answer.headers);
    res.end(req.method === 'HEAD' ? undefined : answer.body);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
