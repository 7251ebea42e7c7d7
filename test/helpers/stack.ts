/**
 * Driving the local stack the way the outside world does: HR events through the ingest use case,
 * approvals through the emailed link and the confirmation page form.
 */
import { acceptHrEvent } from '#app/ingest';
import type { Worker } from '#core/hr-event';
import type { PersonRecord } from '#core/ledger';
import { createApprovalsApiHandler } from '#handlers/approvals-api';
import { toApiGatewayEvent } from '#local/api-gateway';
import { afterAll, beforeAll } from 'vitest';
import { startLocalServer, type LocalServer } from '#local/server';
import { startLocalStack, type LocalStack, type LocalStackOptions } from '#local/stack';
import { worker as baseWorker } from './policy.ts';

export const MANAGERS: Worker[] = [
  baseWorker({ employeeId: 'E0100', givenName: 'Margaret', familyName: 'Hamilton', email: 'margaret@acme.example', jobCode: 'ENG-MGR', managerId: 'E0001' }),
  baseWorker({ employeeId: 'E0001', givenName: 'Grace', familyName: 'Hopper', email: 'grace@acme.example', department: 'People', jobCode: 'CEO', managerId: undefined }),
  baseWorker({ employeeId: 'E0200', givenName: 'Katherine', familyName: 'Johnson', email: 'katherine@acme.example', department: 'Finance', jobCode: 'FIN-MGR', managerId: 'E0001' }),
];

/**
 * A local stack served over HTTP on a free port for a test file (approval links point at it),
 * the managers seeded; closed after the file. Read `stack` / `server` inside tests and hooks.
 */
export function serveLocalStack(options: LocalStackOptions = {}): { stack: LocalStack; server: LocalServer } {
  const served = {} as { stack: LocalStack; server: LocalServer };
  beforeAll(async () => {
    served.stack = await startLocalStack(options);
    served.server = await startLocalServer(served.stack);
    served.stack.deps.publicBaseUrl = served.server.url;
    await seedPeople(served.stack);
  });
  afterAll(async () => {
    await served.server?.close();
    await served.stack?.close();
  });
  return served;
}

/** People already in the HR ledger before the scenario starts (managers resolve from here). */
export async function seedPeople(stack: LocalStack, workers: Worker[] = MANAGERS): Promise<void> {
  const now = stack.clock.now().toISOString();
  for (const w of workers) {
    const person: PersonRecord = {
      employeeId: w.employeeId,
      worker: w,
      status: 'active',
      version: '2020-01-01T00:00:00.000Z',
      lastRunId: 'seed',
      links: {},
      grantedAt: {},
      approvedBundles: [],
      rejectedBundles: [],
      updatedAt: now,
    };
    await stack.deps.ledger.putPerson(person, null);
  }
}

let seq = 0;
export function hrEvent(eventType: string, worker: Worker, over: Record<string, unknown> = {}) {
  seq += 1;
  return {
    eventId: `evt-${Date.now()}-${seq}`,
    eventType,
    effectiveDate: '2026-11-01',
    occurredAt: new Date(Date.UTC(2026, 10, 1, 9, 0, seq)).toISOString(),
    worker,
    ...over,
  };
}

export async function send(stack: LocalStack, event: unknown) {
  return acceptHrEvent(stack.deps, { source: 'canonical', rawBody: JSON.stringify(event) });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function runStatus(stack: LocalStack, runId: string) {
  return (await stack.deps.ledger.getRun(runId))?.status;
}

export async function waitForStatus(stack: LocalStack, runId: string, statuses: string[], timeoutMs?: number) {
  return waitFor(`run ${runId} to be ${statuses.join('|')}`, async () => {
    const s = await runStatus(stack, runId);
    return s && statuses.includes(s) ? s : undefined;
  }, timeoutMs);
}

/** The approval email sent for a run's request, newest first. */
export async function approvalMail(stack: LocalStack, runId: string, requestId?: string) {
  return waitFor(`an approval email for ${runId}${requestId ? ` (${requestId})` : ''}`, async () => {
    const approvals = await stack.deps.ledger.listApprovals(runId);
    const pending = approvals.filter((a) => a.status === 'PENDING' && (!requestId || a.requestId === requestId));
    for (const a of pending) {
      const mail = [...stack.outbox.mails].reverse().find((m) => m.approvalId === a.approvalId);
      if (mail) return { mail, approval: a };
    }
    return undefined;
  });
}

/** Opens the emailed link like a person, then posts the confirmation form. */
export async function decideByEmail(stack: LocalStack, link: string, decision: 'approve' | 'reject', rationale = '') {
  const api = createApprovalsApiHandler(async () => stack.deps);
  const url = new URL(link);
  const page = await api(toApiGatewayEvent({ method: 'GET', url: url.pathname + url.search }));
  if (page.statusCode !== 200) throw new Error(`approval page answered ${page.statusCode}: ${page.body}`);
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(page.body)?.[1]?.replace(/&amp;/g, '&') ?? '';
  const form = new URLSearchParams({ t: field('t'), csrf: field('csrf'), decision, rationale });
  return api(
    toApiGatewayEvent({
      method: 'POST',
      url: url.pathname,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'test-browser' },
      body: form.toString(),
      sourceIp: '198.51.100.7',
    }),
  );
}
