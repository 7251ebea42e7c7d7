/**
 * An exception raises a ServiceNow incident; the operator resolves the exception over the API and
 * the incident is resolved — on the local runtime over HTTP, with the ITSM stand-in.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { openException } from '#app/exceptions';
import { main } from '../../bin/cli.ts';
import type { LocalServer } from '#local/server';
import type { LocalStack } from '#local/stack';
import { worker } from '../helpers/policy.ts';
import { approvalMail, decideByEmail, hrEvent, send, serveLocalStack, waitForStatus } from '../helpers/stack.ts';

let stack: LocalStack;
let server: LocalServer;

const served = serveLocalStack({ retryIntervalMs: 5, itsm: 'servicenow' });
beforeAll(() => void ({ stack, server } = served));

const get = async (path: string) => (await fetch(`${server.url}${path}`)).json() as Promise<any>;
const post = (path: string, body: unknown) =>
  fetch(`${server.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

describe('ITSM tickets on the local runtime', () => {
  it('a failed app step opens an exception with a ServiceNow incident; resolving the exception resolves the incident', async () => {
    stack.targets.scim.slack!.controls.faults.push({ kind: 'status', status: 400, method: 'POST', path: /\/Users$/ });
    const accepted = await send(stack, hrEvent('hire', worker({ employeeId: 'E4201', email: 'e4201@acme.example', startDate: '2026-10-01' })));
    await decideByEmail(stack, (await approvalMail(stack, accepted.runId, 'baseline')).mail.links[0]!, 'approve');
    expect(await waitForStatus(stack, accepted.runId, ['EXCEPTION_OPEN', 'COMPLETED', 'FAILED'])).toBe('EXCEPTION_OPEN');

    const { exceptions } = await get('/exceptions?status=open');
    const failure = exceptions.find((e: any) => e.runId === accepted.runId && e.target === 'slack');
    expect(failure.ticket).toMatchObject({ system: 'servicenow', key: expect.stringMatching(/^INC\d{7}$/) });

    const { tickets, configured } = await get('/local/tickets');
    expect(configured).toBe(true);
    expect(tickets).toHaveLength(1);
    expect(tickets[0]).toMatchObject({ key: failure.ticket.key, state: 'open', fields: expect.objectContaining({ correlation_id: failure.exceptionId }) });
    expect(tickets[0].summary).toContain('Access change failed on slack for E4201');
    expect(tickets[0].description).toContain(`/runs/${accepted.runId}`);

    const bad = await post(`/exceptions/${encodeURIComponent(failure.exceptionId)}/resolve`, { resolvedBy: 'ops@acme.example' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).issues).toEqual(['resolution: required']);

    const res = await post(`/exceptions/${encodeURIComponent(failure.exceptionId)}/resolve`, { resolution: 'slack admin created the account by hand', resolvedBy: 'ops@acme.example' });
    expect(res.status).toBe(200);
    const resolved = (await res.json()) as any;
    expect(resolved).toMatchObject({ status: 'resolved', resolvedBy: 'ops@acme.example', ticket: { key: failure.ticket.key, closedAt: expect.any(String) } });
    expect(resolved).not.toHaveProperty('evidence');
    expect((await get('/local/tickets')).tickets[0]).toMatchObject({ state: 'resolved', fields: expect.objectContaining({ state: '6' }) });

    const again = await post(`/exceptions/${encodeURIComponent(failure.exceptionId)}/resolve`, { resolution: 'again', resolvedBy: 'ops@acme.example' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as any).message).toContain('already resolved');
    expect((await post('/exceptions/exc-nope/resolve', { resolution: 'x', resolvedBy: 'y' })).status).toBe(404);
  });

  it('jml exceptions shows the ticket; jml resolve records the resolution and closes it', async () => {
    await openException(stack.deps, {
      exceptionId: 'orphan:night-1:slack:U999',
      target: 'slack',
      owner: 'collab-owners@acme.example',
      kind: 'orphan',
      reason: 'slack account U999 has no person in HR',
      evidence: {},
    });
    const key = (await get('/local/tickets')).tickets.at(-1).key;
    vi.stubEnv('JML_URL', server.url);
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
    try {
      expect(await main(['exceptions'])).toBe(0);
      expect(out.join('\n')).toMatch(new RegExp(`orphan:night-1:slack:U999 .*orphan: slack account U999 has no person in HR  \\[${key}\\]`));
      out.length = 0;
      expect(await main(['resolve', 'orphan:night-1:slack:U999', '--resolution', 'deleted the test account', '--by', 'ops@acme.example'])).toBe(0);
      expect(out).toEqual([`✔ resolved orphan:night-1:slack:U999 (slack, orphan) — ticket ${key} closed`]);
    } finally {
      log.mockRestore();
      vi.unstubAllEnvs();
    }
    expect((await get('/local/tickets')).tickets.at(-1)).toMatchObject({ key, state: 'resolved' });
  });

  it('a ticket the ITSM refused when the exception opened is raised by the nightly reconciliation', async () => {
    stack.itsm!.controls.faults.push({ kind: 'status', status: 503, method: 'POST', times: 1 });
    const opened = await openException(stack.deps, {
      exceptionId: 'orphan:night-1:slack:U998',
      target: 'slack',
      owner: 'collab-owners@acme.example',
      kind: 'orphan',
      reason: 'slack account U998 has no person in HR',
      evidence: {},
    });
    expect(opened.ticketError).toContain('HTTP 503');
    const before = (await get('/local/tickets')).tickets.length;

    const res = await fetch(`${server.url}/local/reconcile`, { method: 'POST', body: JSON.stringify({ wait: true }), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    const { exceptions } = await get('/exceptions?status=open');
    const retried = exceptions.find((e: any) => e.exceptionId === 'orphan:night-1:slack:U998');
    expect(retried.ticket?.key).toMatch(/^INC/);
    expect(retried).not.toHaveProperty('ticketError');
    const tickets = (await get('/local/tickets')).tickets;
    expect(tickets.filter((t: any) => t.fields.correlation_id === 'orphan:night-1:slack:U998')).toHaveLength(1);
    expect(tickets.length).toBeGreaterThan(before);
  });
});
