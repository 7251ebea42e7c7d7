/**
 * `npm run demo` — the whole JML cycle on one machine, printed as it happens:
 *
 *   1. a hire: the manager approves through the emailed link (page opened, form posted),
 *      accounts appear in Okta and the SCIM apps;
 *   2. a department change: old-role access removed before new access is added; a privileged
 *      bundle waits for its app owner;
 *   3. a termination: IdP disabled and sessions revoked first (time to disable printed), data
 *      handling approved by the manager, apps deprovisioned, reconcile confirms, retention
 *      deletes scheduled — then fired by moving the clock;
 *   4. the nightly reconciliation finds the orphan accounts (a ServiceNow incident for each);
 *   5. KPIs and the evidence bundles (open summary.html in a browser), each verified.
 *
 * Everything goes through the public routes with signed requests and the emailed links, as a
 * real HRIS and real approvers would. Exits 0 only when every step did what it should.
 */
import './quiet.ts';
import '#local/polyfills';
import { join } from 'node:path';
import { signCanonical } from '#core/signature';
import { verifyBundle, verifyChain } from '#core/evidence';
import type { ActualAccount } from '#core/access';
import { REPO_ROOT, DEV_SECRETS, startLocalStack, type LocalStack } from './stack.ts';
import { startLocalServer } from './server.ts';
import { loadDemoOrg, seedDemoOrg } from './demo-org.ts';


const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
let failures = 0;
function check(ok: boolean, what: string): void {
  console.log(`  ${ok ? '✔' : '✘'} ${what}`);
  if (!ok) failures += 1;
}
const phase = (title: string) => console.log(`\n${bold(title)}`);

async function main(): Promise<number> {
  const dataDir = join(REPO_ROOT, '.jml-local', 'demo');
  const stack = await startLocalStack({ dataDir, fresh: true, retryIntervalMs: 20, itsm: 'servicenow' });
  const server = await startLocalServer(stack);
  stack.deps.publicBaseUrl = server.url;
  try {
    return await story(stack, server.url, dataDir);
  } finally {
    await server.close();
    await stack.close();
  }
}

async function story(stack: LocalStack, url: string, dataDir: string): Promise<number> {
  const started = Date.now();
  console.log(bold('jml demo') + dim(`  — local runtime on ${url}, state in ${dataDir}`));
  const org = loadDemoOrg(join(REPO_ROOT, 'config', 'demo-org.json'));
  const seeded = await seedDemoOrg(stack, org);
  console.log(dim(`  Acme Corp seeded: ${seeded.people} people across 5 departments, ${seeded.accounts} accounts in okta, slack and netsuite, ${org.strays.length} stray accounts`));

  const http = async (method: string, path: string, body?: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${url}${path}`, { method, ...(body !== undefined ? { body } : {}), headers });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json };
  };
  const sendEvent = async (event: Record<string, unknown>) => {
    const body = JSON.stringify(event);
    const signed = signCanonical(DEV_SECRETS.hrisWebhook, body, Math.floor(Date.now() / 1000));
    const res = await http('POST', '/hris/events', body, { 'content-type': 'application/json', ...signed });
    if (res.status !== 202) throw new Error(`HRIS webhook answered ${res.status}: ${res.text}`);
    return res.json as { runId: string; duplicate: boolean };
  };
  const run = async (runId: string) => (await http('GET', `/runs/${runId}`)).json;
  const waitFor = async <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const closed = (runId: string) =>
    waitFor(`run ${runId} to close`, async () => {
      const r = await run(runId);
      return ['COMPLETED', 'EXCEPTION_OPEN', 'FAILED'].includes(r?.status) && r.evidence ? r : undefined;
    });
  /** The approval email for a run's request, from the outbox, as the approver receives it. */
  const approvalEmail = (runId: string, requestId: string) =>
    waitFor(`the approval email for ${requestId}`, async () => {
      const r = await run(runId);
      const pending = (r?.approvals ?? []).find((a: any) => a.requestId === requestId && a.status === 'PENDING');
      if (!pending) return undefined;
      const mails = (await http('GET', '/local/outbox')).json.mails as any[];
      return mails.reverse().find((m) => m.approvalId === pending.approvalId);
    });
  /** What the approver does: open the link, read the page, click a button. */
  const decide = async (mail: any, decision: 'approve' | 'reject', rationale = '') => {
    const link = new URL(mail.links[0]);
    const page = await http('GET', link.pathname + link.search);
    const field = (n: string) => new RegExp(`name="${n}" value="([^"]*)"`).exec(page.text)?.[1]?.replace(/&amp;/g, '&') ?? '';
    const form = new URLSearchParams({ t: field('t'), csrf: field('csrf'), decision, rationale }).toString();
    const res = await http('POST', link.pathname, form, { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'demo-browser' });
    return { page, res };
  };
  const accountsOf = async (target: string, employeeId: string): Promise<ActualAccount[]> =>
    stack.deps.connectors.get(target).findAccounts({ employeeId });
  const describe = (a: ActualAccount | undefined) =>
    a ? `${a.status}; ${a.entitlements.map((e) => e.value).sort().join(', ') || 'no entitlements'}` : 'no account';

  // 1. Joiner -------------------------------------------------------------------------------
  phase('1. Hire — Ada Byron joins Engineering (manager: Margaret Hamilton)');
  const today = new Date().toISOString().slice(0, 10);
  const ada = {
    employeeId: 'E2001', givenName: 'Ada', familyName: 'Byron', email: 'ada.byron@acme.example', department: 'Engineering',
    location: 'London', jobCode: 'ENG-2', managerId: 'E0100', employmentType: 'employee', startDate: today,
  };
  const hire = await sendEvent({ eventId: 'demo-hire-1', eventType: 'hire', effectiveDate: today, occurredAt: new Date(Date.now() - 3_600_000).toISOString(), worker: ada });
  console.log(dim(`  HRIS → POST /hris/events (signed) → 202 ${hire.runId}`));
  const hireMail = await approvalEmail(hire.runId, 'baseline');
  check(hireMail.to.includes('margaret.hamilton@acme.example'), `approval email to the manager: “${hireMail.subject}”`);
  const prefetch = await http('GET', new URL(hireMail.links[0]).pathname + new URL(hireMail.links[0]).search);
  check(prefetch.status === 200 && (await run(hire.runId)).status === 'AWAITING_APPROVAL', 'opening the link (as a mail scanner would) shows the page and decides nothing');
  const hireDecision = await decide(hireMail, 'approve');
  check(hireDecision.res.status === 200, 'Margaret clicks Approve on the confirmation page');
  const hireRun = await closed(hire.runId);
  check(hireRun.status === 'COMPLETED', `run ${hire.runId} ${hireRun.status}`);
  const adaOkta = (await accountsOf('okta', 'E2001'))[0];
  const adaSlack = (await accountsOf('slack', 'E2001'))[0];
  check(adaOkta?.status === 'enabled', `okta: ${describe(adaOkta)}`);
  check(adaSlack?.status === 'enabled', `slack: ${describe(adaSlack)}`);
  check((await accountsOf('netsuite', 'E2001')).length === 0, 'netsuite: no account (engineers get no finance system)');

  // 2. Mover --------------------------------------------------------------------------------
  phase('2. Change — Ada moves to Finance as finance system administrator');
  const moved = { ...ada, department: 'Finance', jobCode: 'FIN-SYSADMIN', managerId: 'E0200' };
  const move = await sendEvent({ eventId: 'demo-change-1', eventType: 'change', effectiveDate: today, occurredAt: new Date(Date.now() - 1_800_000).toISOString(), worker: moved });
  const adminMail = await approvalEmail(move.runId, 'bundle:finance-system-admin');
  check(adminMail.to.includes('controller@acme.example'), 'the privileged bundle (NetSuite Administrator, SOX Controls) waits for its app owner, the controller');
  check(!(await run(move.runId)).approvals.some((a: any) => a.requestId === 'baseline'), 'baseline Finance access needs nobody: auto-approved for a mover by policy');
  await decide(adminMail, 'approve');
  const moveRun = await closed(move.runId);
  check(moveRun.status === 'COMPLETED', `run ${move.runId} ${moveRun.status}`);
  const oktaStep = moveRun.steps.find((s: any) => s.target === 'okta');
  const ops = oktaStep.changes.filter((c: any) => c.changed).map((c: any) => `${c.op === 'removeEntitlement' ? '-' : '+'}${c.entitlement?.value}`);
  check(ops.indexOf('-Engineering') >= 0 && ops.indexOf('-Engineering') < ops.indexOf('+Finance'), `okta changes in order: ${ops.join(' ')}`);
  const adaNetsuite = (await accountsOf('netsuite', 'E2001'))[0];
  check(!!adaNetsuite?.entitlements.some((e) => e.value === 'Administrator'), `netsuite: ${describe(adaNetsuite)}`);

  // 3. Leaver -------------------------------------------------------------------------------
  phase('3. Termination — Ada leaves; access is cut before anyone is asked anything');
  const leave = await sendEvent({
    eventId: 'demo-termination-1', eventType: 'termination', effectiveDate: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    occurredAt: new Date().toISOString(), worker: { ...moved, terminationDate: today, lastDayWorked: today },
  });
  const dataMail = await approvalEmail(leave.runId, 'data:mailbox-delegation');
  const disabledBefore = (await accountsOf('okta', 'E2001'))[0];
  check(disabledBefore?.status === 'disabled', 'okta account disabled and sessions revoked before the data-handling approval was even sent');
  check(dataMail.to.includes('katherine.johnson@acme.example'), `data handling asks the manager: “${dataMail.subject}”`);
  await decide(dataMail, 'approve');
  await decide(await approvalEmail(leave.runId, 'data:file-transfer'), 'approve');
  const leaveRun = await closed(leave.runId);
  check(leaveRun.status === 'COMPLETED', `run ${leave.runId} ${leaveRun.status}`);
  check(typeof leaveRun.kpis?.timeToDisableMs === 'number', `time to disable: ${(leaveRun.kpis.timeToDisableMs / 1000).toFixed(2)} s (SLA ${leaveRun.kpis.disableSlaMs / 60000} min) — Entra Lifecycle Workflows run every 1–24 h`);
  for (const t of ['okta', 'slack', 'netsuite']) {
    const a = (await accountsOf(t, 'E2001'))[0];
    check(!!a && a.status !== 'enabled' && a.entitlements.length === 0, `${t}: ${describe(a)}`);
  }
  const rec = leaveRun.reconciliation?.targets ?? [];
  check(rec.length === 3 && rec.every((t: any) => t.result === 'match'), `reconcile confirmed every linked account disabled (${leaveRun.kpis.revocationDisabledWithinSla}/${leaveRun.kpis.revocationEnumerated} within SLA)`);
  const schedules = (await http('GET', '/local/schedules')).json.schedules as any[];
  const deletes = schedules.filter((s) => s.action.kind === 'retention-delete' && s.action.payload.employeeId === 'E2001');
  check(deletes.length === 3, `retention deletes scheduled: ${deletes.map((s) => `${s.action.payload.target} on ${s.at.slice(0, 10)}`).join(', ')}`);
  const clock = await http('POST', '/local/clock', JSON.stringify({ advanceMs: 31 * 86_400_000 }), { 'content-type': 'application/json' });
  console.log(dim(`  … the clock moves 31 days: ${clock.json?.fired ?? 0} schedule(s) fired`));
  await waitFor('the okta retention delete', async () => (await accountsOf('okta', 'E2001')).length === 0, 20_000).then(
    () => check(true, 'okta account hard-deleted after its 30-day retention, after re-checking no rehire'),
    () => check(false, 'okta account hard-deleted after its 30-day retention'),
  );
  check((await accountsOf('slack', 'E2001')).length === 1, 'slack account kept: its retention is 90 days');

  // 4. Nightly reconciliation ---------------------------------------------------------------
  phase('4. Nightly reconciliation');
  const recon = await http('POST', '/local/reconcile', JSON.stringify({ wait: true }), { 'content-type': 'application/json' });
  check(recon.status === 200, `every account of every target enumerated and classified: reconciliation ${recon.json?.reconciliationId ?? ''} ${recon.json?.status ?? `HTTP ${recon.status}`}`);
  const open = await waitFor('orphan exceptions', async () => {
    const ex = (await http('GET', '/exceptions?status=open')).json?.exceptions as any[] | undefined;
    const orphans = (ex ?? []).filter((e) => e.kind === 'orphan');
    return orphans.length >= org.strays.length ? orphans : undefined;
  }, 30_000).catch(() => [] as any[]);
  check(open.length >= org.strays.length, `orphan accounts found: ${open.map((e: any) => `${e.target} → owner ${e.owner}`).join('; ') || 'none'}`);
  const tickets = (await http('GET', '/local/tickets')).json?.tickets as Array<{ key: string; fields: Record<string, unknown> }> | undefined;
  const ticketed = open.filter((e: any) => e.ticket && tickets?.some((t) => t.key === e.ticket.key && t.fields['correlation_id'] === e.exceptionId));
  check(ticketed.length === open.length && open.length > 0, `a ServiceNow incident per exception: ${ticketed.map((e: any) => e.ticket.key).join(', ') || 'none'}`);

  // 5. KPIs and evidence --------------------------------------------------------------------
  phase('5. KPIs and evidence');
  const { summariseKpis, printKpis } = await import('../bin/commands/runtime.ts');
  printKpis(summariseKpis((await http('GET', '/local/metrics')).json.points));
  for (const r of [hireRun, moveRun, leaveRun]) {
    const files = await stack.deps.evidence.loadBundle(r.evidence.prefix);
    const v = verifyBundle(files);
    check(v.ok, `${r.lifecycle.padEnd(7)} ${join(dataDir, r.evidence.prefix, 'summary.html')}${v.ok ? '' : `: ${v.problems.join('; ')}`}`);
  }
  const index = await stack.deps.evidence.personBundles('E2001');
  const chain = verifyChain(await Promise.all(index.map(async (e) => ({ ...e, manifest: (await stack.deps.evidence.getFile(e.prefix, 'manifest.json'))! }))));
  check(chain.ok && index.length >= 3, `Ada's ${index.length} bundles (hire, change, termination, retention delete) form an unbroken hash chain${chain.ok ? '' : `: ${chain.problems.join('; ')}`}`);
  console.log(dim(`  (also served at ${url}/runs/<runId>/evidence/summary.html while the runtime runs: npm run local)`));

  console.log(`\n${failures ? `✘ ${failures} step(s) did not do what they should` : '✔ every step did what it should'} ${dim(`(${((Date.now() - started) / 1000).toFixed(1)} s)`)}`);
  return failures ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`\n✘ demo stopped: ${e.message}`);
    process.exit(1);
  },
);
