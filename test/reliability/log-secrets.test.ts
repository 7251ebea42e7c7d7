/**
 * Nothing secret reaches a log or a file it should not. A full cycle — a joiner on Entra (with a
 * Temporary Access Pass for day one), the manager's approval, an Okta event hook call, a leaver
 * with its data-handling approvals — runs in the local runtime as its own process with
 * POWERTOOLS_LOG_LEVEL=DEBUG (Powertools writes through its own Console, so only a child process
 * shows everything it logs). Then all of its stdout and stderr, and every file it wrote (ledger,
 * evidence, outbox, schedules), are searched for every throwaway secret, the TAP, the approval
 * link tokens and the HR payload.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPolicyText } from '#core/policy-yaml';
import { startGraphStandIn, type GraphStandIn } from '#local/standins/graph';
import { startScimStandIn, type ScimStandIn } from '#local/standins/scim';
import { REPO_ROOT } from '#local/stack';
import { postSigned, spawnRuntime, startHttpApprovalBot, type RuntimeProcess } from './fixtures/harness.ts';

const secret = () => randomBytes(24).toString('base64url');
const secrets = { hrisWebhook: secret(), bambooHr: secret(), oktaHook: secret(), linkSigning: secret() };
const clientId = secret();
const clientSecret = secret();
const root = mkdtempSync(join(tmpdir(), 'jml-log-secrets-'));
const dataDir = join(root, 'state');
mkdirSync(dataDir);
const policyFile = join(REPO_ROOT, 'config', 'access-policy.entra.yaml');
const policy = loadPolicyText(readFileSync(policyFile, 'utf8'));

// Personal data that only HR and the targets should hold: unique, so any copy is found.
const unique = randomBytes(6).toString('hex');
const worker = {
  employeeId: `L${unique.slice(0, 6)}`,
  givenName: `Given${unique}`,
  familyName: `Family${unique}`,
  email: `private.${unique}@acme.example`,
  department: 'Engineering',
  location: `Flat ${unique}, 1 Secret Lane`,
  jobCode: 'ENG-2',
  managerId: 'E0100',
  employmentType: 'employee',
  startDate: '2026-10-01',
};

let graph: GraphStandIn;
const scim: ScimStandIn[] = [];
let runtime: RuntimeProcess | undefined;
let output = '';
const bodies: string[] = [];
const linkTokens = new Set<string>();
let tap = '';
let files: Array<{ path: string; bytes: Buffer }> = [];

async function post(url: string, event: unknown) {
  const body = JSON.stringify(event);
  bodies.push(body);
  const res = await postSigned(url, secrets.hrisWebhook, body);
  expect(res.status).toBe(202);
  return ((await res.json()) as { runId: string }).runId;
}

async function closed(url: string, runId: string) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const run = (await (await fetch(`${url}/runs/${runId}`)).json()) as { status: string; evidence?: unknown };
    if (run.evidence && ['COMPLETED', 'EXCEPTION_OPEN'].includes(run.status)) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} still ${run.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

beforeAll(async () => {
  const groupsFor = (target: string, type: string) =>
    [...new Set([...policy.bundleEntitlements.values()].flat().filter((e) => e.target === target && e.type === type).map((e) => e.value))];
  graph = await startGraphStandIn({
    clientId,
    clientSecret,
    seed: {
      groups: groupsFor('entra', 'group').map((displayName) => ({ displayName })),
      skus: groupsFor('entra', 'license').map((skuPartNumber) => ({ skuPartNumber, prepaidUnits: 100 })),
    },
  });
  for (const t of policy.managedTargets.filter((x) => x.kind === 'scim')) {
    scim.push(await startScimStandIn({ name: t.name, token: secret(), seed: { groups: groupsFor(t.name, 'group').map((displayName) => ({ displayName })) } }));
  }
  runtime = await spawnRuntime(
    {
      dataDir,
      policyFile,
      idp: 'entra',
      secrets,
      seed: true,
      targets: {
        entra: { name: 'entra', url: graph.url, tenantId: graph.tenantId, clientId, clientSecret, domain: 'acme.example' },
        scim: scim.map((s) => ({ name: s.name, url: s.url, token: s.token })),
      },
    },
    { POWERTOOLS_LOG_LEVEL: 'DEBUG' },
  );
  const url = runtime.url;
  const bot = startHttpApprovalBot(() => url);
  try {
    const hire = await post(url, { eventId: `ls-hire-${unique}`, eventType: 'hire', effectiveDate: '2026-10-01', occurredAt: '2026-10-01T09:00:00Z', worker });
    await closed(url, hire);
    // The Okta event hook, with its shared secret, goes through the same logging path.
    const hook = await fetch(`${url}/okta/events`, {
      method: 'POST',
      headers: { authorization: secrets.oktaHook, 'content-type': 'application/json' },
      body: JSON.stringify({ eventType: 'com.okta.event_hook', data: { events: [] } }),
    });
    expect(hook.status).toBeLessThan(300);
    const leave = await post(url, {
      eventId: `ls-leave-${unique}`,
      eventType: 'termination',
      effectiveDate: '2026-11-02',
      occurredAt: '2026-11-02T09:00:00Z',
      worker: { ...worker, terminationDate: '2026-11-02' },
    });
    await closed(url, leave);
  } finally {
    await bot.stop();
  }
  const mails = ((await (await fetch(`${url}/local/outbox`)).json()) as { mails: Array<{ to: string[]; subject: string; text: string; links: string[] }> }).mails;
  for (const m of mails) for (const l of m.links) linkTokens.add(new URL(l).searchParams.get('t') ?? '');
  linkTokens.delete('');
  const tapMail = mails.find((m) => m.subject.startsWith('Day-one sign-in code'));
  tap = /^\s{4}(\S+)$/m.exec(tapMail?.text ?? '')?.[1] ?? '';
  await runtime.stop(); // flushes the ledger to disk
  output = runtime.output();
  runtime = undefined;
  files = filesUnder(dataDir).map((path) => ({ path, bytes: readFileSync(path) }));
}, 150_000);

afterAll(async () => {
  await runtime?.kill();
  await graph?.close();
  await Promise.all(scim.map((s) => s.close()));
  rmSync(root, { recursive: true, force: true });
});

describe('secrets and personal data in logs and files (runtime in its own process, DEBUG logs)', () => {
  it('ran the whole cycle and logged it', () => {
    expect(tap.length).toBeGreaterThanOrEqual(8);
    expect(linkTokens.size).toBeGreaterThanOrEqual(3);
    // The handlers' structured logs are there to search (not an empty haystack).
    expect(output.split('\n').filter((l) => /^\{"level":"(DEBUG|INFO)"/.test(l)).length).toBeGreaterThan(0);
    expect(output).toContain(worker.employeeId);
    expect(files.some((f) => f.path.endsWith('summary.html'))).toBe(true);
    expect(files.some((f) => f.path.endsWith('outbox.json'))).toBe(true);
  });

  it('writes no secret, token or pass to stdout or stderr', () => {
    const forbidden: Record<string, string> = {
      ...Object.fromEntries(Object.entries(secrets).map(([k, v]) => [`${k} secret`, v])),
      'Graph client secret': clientSecret,
      'Temporary Access Pass': tap,
      ...Object.fromEntries(scim.map((s) => [`SCIM token of ${s.name}`, s.token])),
      ...Object.fromEntries([...linkTokens].map((t, i) => [`approval link token ${i}`, t])),
    };
    expect(Object.entries(forbidden).filter(([, v]) => output.includes(v)).map(([k]) => k)).toEqual([]);
  });

  it('logs no HR payload and none of its personal fields', () => {
    const personal = { 'raw HR payload': bodies[0]!, 'given name': worker.givenName, 'family name': worker.familyName, 'personal email': worker.email, location: worker.location };
    expect(Object.entries(personal).filter(([, v]) => output.includes(v)).map(([k]) => k)).toEqual([]);
  });

  it('writes no secret to any file, and the pass and link tokens only to the sent emails', () => {
    const anywhere: Record<string, string> = {
      ...Object.fromEntries(Object.entries(secrets).map(([k, v]) => [`${k} secret`, v])),
      'Graph client secret': clientSecret,
      ...Object.fromEntries(scim.map((s) => [`SCIM token of ${s.name}`, s.token])),
    };
    const onlyInMail: Record<string, string> = {
      'Temporary Access Pass': tap,
      ...Object.fromEntries([...linkTokens].map((t, i) => [`approval link token ${i}`, t])),
    };
    const leaks: string[] = [];
    for (const f of files) {
      const where = f.path.slice(dataDir.length + 1);
      for (const [what, v] of Object.entries(anywhere)) if (f.bytes.includes(v)) leaks.push(`${what} in ${where}`);
      if (where === 'outbox.json') continue; // the emails as sent: the manager's pass, each approver's link
      for (const [what, v] of Object.entries(onlyInMail)) if (f.bytes.includes(v)) leaks.push(`${what} in ${where}`);
    }
    expect(leaks).toEqual([]);
    // The pass went in one email only, to the manager.
    const outbox = JSON.parse(files.find((f) => f.path.endsWith('outbox.json'))!.bytes.toString('utf8')) as Array<{ to: string[]; text: string; html: string }>;
    expect(outbox.filter((m) => `${m.text}${m.html}`.includes(tap)).map((m) => m.to)).toEqual([['margaret@acme.example']]);
  });
});
