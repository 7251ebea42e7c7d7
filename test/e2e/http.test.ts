/**
 * End to end over HTTP only: the local runtime on a free port, driven through signed webhook
 * requests and the links in the outbox, with the outcome checked through the targets' own APIs
 * (Okta's REST API with its SSWS token, SCIM's /Users) and `jml evidence verify`.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { signCanonical } from '#core/signature';
import { startLocalServer, type LocalServer } from '#local/server';
import { DEV_SECRETS, startLocalStack, type LocalStack } from '#local/stack';
import { main } from '../../bin/cli.ts';
import { seedPeople } from '../helpers/stack.ts';

let stack: LocalStack;
let server: LocalServer;
let url: string;

beforeAll(async () => {
  stack = await startLocalStack({ retryIntervalMs: 5 });
  server = await startLocalServer(stack);
  url = server.url;
  stack.deps.publicBaseUrl = url;
  await seedPeople(stack);
});
afterAll(async () => {
  await server?.close();
  await stack?.close();
});

async function post(path: string, event: unknown, secret = DEV_SECRETS.hrisWebhook) {
  const body = JSON.stringify(event);
  const res = await fetch(`${url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...signCanonical(secret, body, Math.floor(Date.now() / 1000)) } });
  return { status: res.status, json: (await res.json()) as any };
}
const get = async (path: string) => (await fetch(`${url}${path}`)).json() as Promise<any>;

async function until<T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function approveFromOutbox(runId: string, requestId: string) {
  const mail = await until(`approval mail ${requestId}`, async () => {
    const run = await get(`/runs/${runId}`);
    const pending = run.approvals?.find((a: any) => a.requestId === requestId && a.status === 'PENDING');
    return pending && (await get('/local/outbox')).mails.reverse().find((m: any) => m.approvalId === pending.approvalId);
  });
  const link = new URL(mail.links[0]);
  expect(link.origin).toBe(url); // the emailed link points at this runtime, carries no task token
  expect(link.search).toMatch(/^\?t=[A-Za-z0-9_.-]+$/);
  const page = await (await fetch(link)).text();
  const field = (n: string) => new RegExp(`name="${n}" value="([^"]*)"`).exec(page)![1]!.replace(/&amp;/g, '&');
  const res = await fetch(`${url}${link.pathname}`, {
    method: 'POST',
    body: new URLSearchParams({ t: field('t'), csrf: field('csrf'), decision: 'approve', rationale: '' }),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  expect(res.status).toBe(200);
}

const closed = (runId: string) => until(`run ${runId} closed`, async () => {
  const r = await get(`/runs/${runId}`);
  return r.evidence && ['COMPLETED', 'EXCEPTION_OPEN'].includes(r.status) ? r : undefined;
});

describe('local runtime over HTTP', () => {
  const worker = {
    employeeId: 'E7001', givenName: 'Hedy', familyName: 'Kiesler', email: 'hedy.kiesler@acme.example', department: 'Support',
    location: 'Berlin', jobCode: 'SUP-1', managerId: 'E0100', employmentType: 'employee', startDate: '2026-10-01',
  };

  it('refuses a badly signed event and enqueues nothing', async () => {
    const res = await post('/hris/events', { eventId: 'x', eventType: 'hire', effectiveDate: '2026-10-01', occurredAt: '2026-10-01T00:00:00Z', worker }, 'wrong-secret');
    expect(res.status).toBe(401);
    expect((await get('/runs?employeeId=E7001')).runs).toEqual([]);
  });

  it('provisions a joiner and deprovisions the leaver, as the targets themselves report', async () => {
    const hire = await post('/hris/events', { eventId: 'e2e-hire', eventType: 'hire', effectiveDate: '2026-10-01', occurredAt: '2026-10-01T09:00:00Z', worker });
    expect(hire.status).toBe(202);
    await approveFromOutbox(hire.json.runId, 'baseline');
    expect((await closed(hire.json.runId)).status).toBe('COMPLETED');

    const targets = await get('/local/targets');
    const okta = async () => {
      const res = await fetch(`${targets.okta.orgUrl}/api/v1/users?search=${encodeURIComponent('profile.employeeNumber eq "E7001"')}`, { headers: { Authorization: `SSWS ${targets.okta.token}`, Accept: 'application/json' } });
      return (await res.json()) as any[];
    };
    const slack = targets.scim.find((s: any) => s.name === 'slack');
    const slackUsers = async () => {
      const res = await fetch(`${slack.baseUrl}/Users?filter=${encodeURIComponent('externalId eq "E7001"')}`, { headers: { Authorization: `Bearer ${slack.token}` } });
      return ((await res.json()) as any).Resources as any[];
    };
    const [oktaUser] = await okta();
    expect(oktaUser.status).toBe('PROVISIONED');
    const groups = (await (await fetch(`${targets.okta.orgUrl}/api/v1/users/${oktaUser.id}/groups`, { headers: { Authorization: `SSWS ${targets.okta.token}` } })).json()) as any[];
    expect(groups.map((g) => g.profile.name).sort()).toEqual(['All Staff', 'Employees', 'Everyone', 'Helpdesk Agents', 'Support']);
    expect((await slackUsers())[0].active).toBe(true);

    const leave = await post('/hris/events', {
      eventId: 'e2e-leave', eventType: 'termination', effectiveDate: '2026-11-02', occurredAt: '2026-11-02T09:00:00Z', worker: { ...worker, terminationDate: '2026-11-02' },
    });
    await approveFromOutbox(leave.json.runId, 'data:mailbox-delegation');
    await approveFromOutbox(leave.json.runId, 'data:file-transfer');
    const leaver = await closed(leave.json.runId);
    expect(leaver.status).toBe('COMPLETED');
    expect((await okta())[0].status).toBe('DEPROVISIONED');
    expect((await slackUsers())[0].active).toBe(false);

    // The summary a person reads is served by the runtime.
    const summary = await fetch(`${url}/runs/${leave.json.runId}/evidence/summary.html`);
    expect(summary.headers.get('content-type')).toContain('text/html');
    expect(await summary.text()).toContain('Hedy Kiesler');

    // jml evidence verify, against this runtime.
    vi.stubEnv('JML_URL', url);
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
    try {
      expect(await main(['evidence', 'verify', leave.json.runId])).toBe(0);
    } finally {
      log.mockRestore();
      vi.unstubAllEnvs();
    }
    expect(out.join('\n')).toContain('verifies (8 files, hash chain intact)');
  });
});
