/**
 * ITSM tickets for exceptions, end to end against the ITSM stand-in: the real ticketing adapter
 * (Jira Service Management, ServiceNow Table API, signed webhook) driven by `openException` /
 * `resolveException` / `retryTickets` on the real ledger (dynalite).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openException, resolveException, retryTickets, type NewException } from '#app/exceptions';
import { createTicketing, ItsmConfigSchema, type ItsmConfig } from '#connectors/itsm';
import { startItsmStandIn, type ItsmStandIn } from '#local/standins/itsm';
import { testDeps, useDynalite, type TestDeps } from '../helpers/deps.ts';

const dynamo = useDynalite();
const user = 'jml-bot@example.com';
const token = randomBytes(18).toString('base64url');
const hookSecret = randomBytes(32).toString('hex');
let itsm: ItsmStandIn;

beforeAll(async () => {
  itsm = await startItsmStandIn({ credential: `${user}:${token}`, webhookSecret: hookSecret });
});
afterAll(() => itsm.close());
beforeEach(() => {
  itsm.tickets.length = 0;
  itsm.requests.length = 0;
  itsm.controls.faults.length = 0;
});

const configs = (): Record<'jira' | 'servicenow' | 'webhook', ItsmConfig> => ({
  jira: { system: 'jira', baseUrl: itsm.url, serviceDeskId: '4', requestTypeId: '27' },
  servicenow: { system: 'servicenow', instanceUrl: itsm.url, assignmentGroup: 'Identity Operations' },
  webhook: { system: 'webhook', url: `${itsm.url}/hooks/jml` },
});

async function depsWith(config: ItsmConfig | undefined, secret = config?.system === 'webhook' ? hookSecret : `${user}:${token}`): Promise<TestDeps> {
  const deps = await testDeps(dynamo(), { now: '2026-11-20T09:00:00Z' });
  deps.ticketing = createTicketing(config, { secret: async () => [secret], timeoutMs: 2_000 });
  return deps;
}

const leaverStillEnabled = (over: Partial<NewException> = {}): NewException => ({
  exceptionId: 'exc-leaver-e1001-slack',
  runId: 'run-abc',
  employeeId: 'E1001',
  target: 'slack',
  owner: 'collab-owners@example.com',
  kind: 'leaver_enabled',
  reason: 'slack account U123 is still active 2 h after termination',
  evidence: { account: { id: 'U123', status: 'enabled' }, homeAddress: '1 Private Lane' },
  ...over,
});

describe.each(['jira', 'servicenow', 'webhook'] as const)('%s', (system) => {
  it('an opened exception raises one ticket naming target, person, reason and exception; resolving it closes the ticket', async () => {
    const deps = await depsWith(configs()[system]);
    const opened = await openException(deps, leaverStillEnabled());

    expect(itsm.tickets).toHaveLength(1);
    const ticket = itsm.tickets[0]!;
    expect(ticket.system).toBe(system);
    expect(ticket.summary).toContain('Leaver still enabled on slack for E1001 (exc-leaver-e1001-slack)');
    const text = JSON.stringify(ticket);
    if (system !== 'webhook') expect(ticket.description).toContain('Reason: slack account U123 is still active 2 h after termination');
    else expect(ticket.fields).toMatchObject({ exceptionId: 'exc-leaver-e1001-slack', reason: expect.stringContaining('still active'), owner: 'collab-owners@example.com' });
    // The ticket carries ids and the reason — not the evidence body, not a credential.
    expect(text).not.toContain('1 Private Lane');
    expect(text).not.toContain(token);
    expect(text).not.toContain(hookSecret);

    // The exception records the ticket; the owner still got the email.
    expect(opened.ticket).toMatchObject({ system, id: ticket.id, key: ticket.key });
    const [stored] = await deps.ledger.listExceptions({ runId: 'run-abc' });
    expect(stored!.ticket).toMatchObject({ system, id: ticket.id, openedAt: '2026-11-20T09:00:00.000Z' });
    expect(deps.mailer.sent.map((m) => m.to)).toEqual([['collab-owners@example.com']]);
    expect(deps.metrics.sum('TicketOpened')).toBe(1);

    // Opening the same exception again (a retried step) raises no second ticket.
    await openException(deps, leaverStillEnabled());
    expect(itsm.tickets).toHaveLength(1);

    deps.clock.advance(3_600_000);
    const resolved = await resolveException(deps, { exceptionId: 'exc-leaver-e1001-slack', resolution: 'account deactivated by hand', resolvedBy: 'ops@example.com' });
    expect(resolved.ticket?.closedAt).toBe('2026-11-20T10:00:00.000Z');
    expect(itsm.tickets[0]!.state).toBe('resolved');
    if (system !== 'webhook') expect(itsm.tickets[0]!.comments.join()).toContain('account deactivated by hand');
  });
});

describe('ServiceNow fields', () => {
  it('files an incident correlated to the exception, urgent for a leaver still enabled, in the configured group', async () => {
    const deps = await depsWith(configs().servicenow);
    await openException(deps, leaverStillEnabled());
    await openException(deps, leaverStillEnabled({ exceptionId: 'exc-drift-1', kind: 'drift', reason: 'holds group "admins" outside the policy' }));
    expect(itsm.tickets.map((t) => t.fields)).toEqual([
      expect.objectContaining({ correlation_id: 'exc-leaver-e1001-slack', correlation_display: 'jml', urgency: '1', assignment_group: 'Identity Operations' }),
      expect.objectContaining({ correlation_id: 'exc-drift-1', urgency: '2' }),
    ]);
    expect(itsm.requests.filter((r) => r.method === 'POST').map((r) => r.path)).toEqual(['/api/now/table/incident', '/api/now/table/incident']);
  });
});

describe('when the ITSM fails', () => {
  it('the exception still opens and emails its owner; the failure is recorded and the nightly retry raises exactly one ticket', async () => {
    const deps = await depsWith(configs().servicenow);
    itsm.controls.faults.push({ kind: 'status', status: 503, times: 1 });
    const opened = await openException(deps, leaverStillEnabled());

    expect(opened.ticket).toBeUndefined();
    expect(opened.ticketError).toBe('ServiceNow: create incident record — answered HTTP 503: stand-in fault 503');
    expect(deps.mailer.sent).toHaveLength(1);
    expect(deps.metrics.sum('TicketFailed')).toBe(1);
    expect((await deps.ledger.listExceptions({ status: 'open' }))[0]!.ticketError).toContain('HTTP 503');

    expect(await retryTickets(deps)).toEqual({ raised: 1, closed: 0, failed: 0 });
    expect(itsm.tickets).toHaveLength(1);
    const [after] = await deps.ledger.listExceptions({ status: 'open' });
    expect(after!.ticket?.key).toBe(itsm.tickets[0]!.key);
    expect(after).not.toHaveProperty('ticketError');

    // Nothing left to retry.
    expect(await retryTickets(deps)).toEqual({ raised: 0, closed: 0, failed: 0 });
    expect(itsm.tickets).toHaveLength(1);
  });

  it.each(['servicenow', 'jira'] as const)('%s: a retry finds the ticket an earlier attempt created before its answer was lost — no second ticket', async (system) => {
    const deps = await depsWith(configs()[system]);
    // The ITSM creates the ticket but the answer never arrives (the connection drops after the write).
    const stranded = await depsWith(configs()[system]);
    await openException(stranded, leaverStillEnabled());
    expect(itsm.tickets).toHaveLength(1);
    // What the ledger of the attempt that lost the answer holds: the exception, due a ticket, and the error.
    await deps.ledger.markTicketDue('exc-leaver-e1001-slack');
    await deps.ledger.openException({ ...leaverStillEnabled(), exceptionId: 'exc-leaver-e1001-slack', status: 'open', openedAt: '2026-11-20T09:00:00.000Z' });
    await deps.ledger.setExceptionTicket('exc-leaver-e1001-slack', { ticketError: `${system}: timed out` });

    expect(await retryTickets(deps)).toEqual({ raised: 1, closed: 0, failed: 0 });
    expect(itsm.tickets).toHaveLength(1);
    expect((await deps.ledger.listExceptions({ status: 'open' }))[0]!.ticket?.key).toBe(itsm.tickets[0]!.key);
  });

  it('a step that dies between opening the exception and raising its ticket leaves it due: the nightly retry raises it', async () => {
    const deps = await depsWith(configs().jira);
    deps.mailer.send = async () => {
      throw new Error('SES: connection reset'); // the step fails after the exception was written
    };
    await expect(openException(deps, leaverStillEnabled())).rejects.toThrow('connection reset');
    expect(itsm.tickets).toHaveLength(0);
    expect((await deps.ledger.listTicketsDue()).map((e) => e.exceptionId)).toEqual(['exc-leaver-e1001-slack']);

    expect(await retryTickets(deps)).toEqual({ raised: 1, closed: 0, failed: 0 });
    expect(itsm.tickets).toHaveLength(1);
    expect(await deps.ledger.listTicketsDue()).toEqual([]);
  });

  it('the nightly retry reads only the exceptions still due a ticket, not the whole history', async () => {
    const deps = await depsWith(configs().servicenow);
    for (let i = 0; i < 20; i++) {
      await openException(deps, leaverStillEnabled({ exceptionId: `exc-old-${i}` }));
      await resolveException(deps, { exceptionId: `exc-old-${i}`, resolution: 'fixed', resolvedBy: 'ops@example.com' });
    }
    itsm.controls.faults.push({ kind: 'status', status: 503, times: 1 });
    await openException(deps, leaverStillEnabled({ exceptionId: 'exc-new' }));
    expect(itsm.tickets).toHaveLength(20);
    const requests = itsm.requests.length;
    const listed: string[] = [];
    const list = deps.ledger.listTicketsDue.bind(deps.ledger);
    deps.ledger.listTicketsDue = async () => {
      const due = await list();
      listed.push(...due.map((e) => e.exceptionId));
      return due;
    };

    expect(await retryTickets(deps)).toEqual({ raised: 1, closed: 0, failed: 0 });
    expect(listed).toEqual(['exc-new']);
    // One lookup (did the lost attempt create it?) and one create: nothing about the 20 closed ones.
    expect(itsm.requests.slice(requests).map((r) => r.method)).toEqual(['GET', 'POST']);
  });

  it('a wrong credential is reported as the ITSM’s refusal, without the credential', async () => {
    const wrong = `${user}:${randomBytes(12).toString('hex')}`;
    const deps = await depsWith(configs().jira, wrong);
    const opened = await openException(deps, leaverStillEnabled());
    expect(opened.ticketError).toBe('Jira Service Management: create request — answered HTTP 401: Unauthorized');
    expect(opened.ticketError).not.toContain(wrong.split(':')[1]);
    expect(itsm.tickets).toHaveLength(0);
  });

  it('a webhook receiver that cannot verify the signature refuses it', async () => {
    const deps = await depsWith(configs().webhook, randomBytes(32).toString('hex'));
    const opened = await openException(deps, leaverStillEnabled());
    expect(opened.ticketError).toBe('ITSM webhook: deliver exception.opened — answered HTTP 401');
    expect(itsm.tickets).toHaveLength(0);
  });

  it('an ITSM that does not answer in time is a recorded failure, not a stuck step', async () => {
    const deps = await testDeps(dynamo(), { now: '2026-11-20T09:00:00Z' });
    deps.ticketing = createTicketing(configs().jira, { secret: async () => [`${user}:${token}`], timeoutMs: 200 });
    itsm.controls.faults.push({ kind: 'timeout', times: 1 });
    const opened = await openException(deps, leaverStillEnabled());
    expect(opened.ticketError).toBe(`Jira Service Management: create request — 127.0.0.1:${itsm.port} timed out`);
  });
});

describe('configuration', () => {
  it('only the configured kinds raise tickets; without an ITSM, exceptions only email', async () => {
    const deps = await depsWith({ ...configs().servicenow, kinds: ['leaver_enabled'] } as ItsmConfig);
    await openException(deps, leaverStillEnabled({ exceptionId: 'exc-orphan', kind: 'orphan', reason: 'account with no person' }));
    await openException(deps, leaverStillEnabled());
    expect(itsm.tickets.map((t) => t.fields['correlation_id'])).toEqual(['exc-leaver-e1001-slack']);

    const none = await depsWith(undefined);
    await openException(none, leaverStillEnabled({ exceptionId: 'exc-other' }));
    expect(itsm.tickets).toHaveLength(1);
    expect(none.mailer.sent).toHaveLength(1);
  });

  it('rejects a config that is not https, or misses the desk, naming the field', () => {
    const r = ItsmConfigSchema.safeParse({ system: 'jira', baseUrl: 'http://acme.atlassian.net', serviceDeskId: 'desk' });
    expect(r.success).toBe(false);
    const issues = r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues).toEqual(
      expect.arrayContaining([
        'baseUrl: must be an https:// URL',
        'serviceDeskId: must be the numeric service desk id',
        expect.stringMatching(/^requestTypeId: /),
      ]),
    );
    expect(ItsmConfigSchema.safeParse({ system: 'servicenow', instanceUrl: 'https://acme.service-now.com' }).data).toMatchObject({ table: 'incident' });
  });
});
