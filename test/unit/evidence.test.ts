import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChangeRecord } from '#core/change';
import { desiredState } from '#core/desired-state';
import {
  EVIDENCE_FILES,
  buildEvidenceBundle,
  verifyBundle,
  verifyChain,
  type ChainEntry,
  type EvidenceBundle,
  type EvidenceInput,
} from '#core/evidence';
import {
  EvidenceBundleExists,
  EvidenceChainConflict,
  verifyPersonChain,
  verifyStoredBundle,
  type EvidenceStore,
} from '#core/evidence-store';
import { sha256Hex } from '#core/hash';
import type { ApprovalRecord, ExceptionRecord, StepRecord } from '#core/ledger';
import { plan, type ActualState } from '#core/plan';
import { fsEvidenceStore } from '#local/evidence-fs';
import { examplePolicy, worker } from '../helpers/policy.ts';

const policy = examplePolicy();
const EMPLOYEE = 'E1001';

const runIds = {
  a: 'run-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  b: 'run-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',
  c: 'run-cccccccccccccccccccccccccccccccc',
};

interface LeaverOptions {
  runId?: string;
  closedAt?: string;
  previousManifestSha256?: string | null;
  givenName?: string;
  familyName?: string;
  taskToken?: string;
}

/** A realistic leaver run: the real policy, desired state and planner, and ledger-shaped records. */
function leaverInput(o: LeaverOptions = {}): EvidenceInput {
  const runId = o.runId ?? runIds.c;
  const closedAt = o.closedAt ?? '2026-03-02T09:15:07Z';
  const w = worker({ givenName: o.givenName ?? 'Ada', familyName: o.familyName ?? 'Lovelace', terminationDate: '2026-03-02' });
  const desired = desiredState({ worker: w, status: 'terminated' }, policy);
  const actual: ActualState = {
    okta: { id: '00u1abc', status: 'enabled', entitlements: ['All Staff', 'Employees'].map((value) => ({ type: 'group' as const, value })) },
    slack: { id: 'U01', status: 'enabled', entitlements: [{ type: 'group', value: 'all-hands' }] },
  };
  const p = plan(desired, actual, policy, { lifecycle: 'leaver' });
  let n = 0;
  const steps: StepRecord[] = p.targets.map((t, i) => ({
    runId,
    stepId: `00${i + 1}-${t.target}`,
    target: t.target,
    phase: 'execute',
    startedAt: `2026-03-02T09:0${i + 1}:00Z`,
    finishedAt: `2026-03-02T09:0${i + 1}:02.500Z`,
    outcome: 'ok',
    writes: t.steps.length,
    changes: t.steps.map(
      (s): ChangeRecord => ({
        target: t.target,
        op: s.op,
        accountId: t.accountId!,
        changed: s.op !== 'revokeSessions' || t.target === 'okta',
        ...(s.entitlement ? { entitlement: { type: s.entitlement.type, value: s.entitlement.value } } : {}),
        requestIds: [`req-${t.target}-${++n}`],
      }),
    ),
  }));
  const approval: ApprovalRecord = {
    approvalId: 'ap-1',
    runId,
    employeeId: EMPLOYEE,
    requestId: 'data:mailbox',
    approver: 'grace.hopper@acme.example',
    approverRole: 'manager',
    taskToken: o.taskToken ?? 'AQB8AAAAKgAAAAMAAAAAAAAAAQ',
    status: 'APPROVED',
    requestedAt: '2026-03-02T09:01:00Z',
    expiresAt: '2026-03-05T09:01:00Z',
    request: { bundles: [], description: 'Delegate the mailbox to the manager' },
    decidedAt: '2026-03-02T09:12:00Z',
    rationale: 'Handover to the team lead',
    sourceIp: '203.0.113.9',
    userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)',
  };
  const exception: ExceptionRecord = {
    exceptionId: 'ex-1',
    runId,
    employeeId: EMPLOYEE,
    target: 'netsuite',
    owner: 'finance-it@acme.example',
    kind: 'orphan',
    reason: 'An account with no HR link was found',
    evidence: { accountId: 'NS-77' },
    status: 'open',
    openedAt: '2026-03-02T09:14:30Z',
  };
  const rawBody = JSON.stringify({
    eventId: 'evt-9001',
    eventType: 'termination',
    effectiveDate: '2026-03-02',
    occurredAt: '2026-03-01T17:00:00Z',
    worker: w,
  });
  return {
    runId,
    employeeId: EMPLOYEE,
    lifecycle: 'leaver',
    status: 'EXCEPTION_OPEN',
    closedAt,
    rawEvent: { body: rawBody, receivedAt: '2026-03-02T09:00:00.120Z' },
    plan: p,
    desired,
    approvals: [approval],
    executionLog: steps,
    idpEvidence: [
      {
        target: 'okta',
        id: 'pulog-1',
        time: '2026-03-02T09:01:01Z',
        eventType: 'user.lifecycle.deactivate',
        outcome: 'SUCCESS',
        actor: 'jml-service',
        targetIds: ['00u1abc'],
        summary: 'Deactivate Okta user',
      },
    ],
    reconciliation: {
      checkedAt: '2026-03-02T09:14:00Z',
      targets: [
        { target: 'okta', result: 'match', desiredStatus: 'disabled', actualStatus: 'disabled' },
        { target: 'slack', result: 'match', desiredStatus: 'disabled', actualStatus: 'disabled' },
      ],
      orphans: [{ target: 'netsuite', accountId: 'NS-77', userName: 'ada.l', reason: 'no HR link' }],
      exceptionsOpened: ['ex-1'],
    },
    exceptions: [exception],
    kpis: { timeToDisableMs: 252_000, disableSlaMs: 3_600_000, revocationDisabledWithinSla: 2, revocationEnumerated: 2, exceptionCount: 1 },
    timeline: [
      { phase: 'received', at: '2026-03-02T09:00:00.120Z' },
      { phase: 'planned', at: '2026-03-02T09:00:01Z' },
      { phase: 'idpDisabled', at: '2026-03-02T09:01:01Z', note: 'okta disabled, sessions revoked' },
      { phase: 'approved', at: '2026-03-02T09:12:00Z', note: 'data:mailbox by grace.hopper@acme.example' },
      { phase: 'closed', at: closedAt },
    ],
    previousManifestSha256: o.previousManifestSha256 ?? null,
  };
}

const filesOf = (b: EvidenceBundle) => new Map<string, string | Uint8Array>(b.files.map((f) => [f.name, f.body]));
const fileOf = (b: EvidenceBundle, name: string) => b.files.find((f) => f.name === name)!.body;

/** Three bundles of one person, chained. */
function chainOfThree(): EvidenceBundle[] {
  const a = buildEvidenceBundle(leaverInput({ runId: runIds.a, closedAt: '2026-01-15T10:00:00Z' }));
  const b = buildEvidenceBundle(leaverInput({ runId: runIds.b, closedAt: '2026-02-10T10:00:00Z', previousManifestSha256: a.manifestSha256 }));
  const c = buildEvidenceBundle(leaverInput({ runId: runIds.c, closedAt: '2026-03-02T09:15:07Z', previousManifestSha256: b.manifestSha256 }));
  return [a, b, c];
}

const manifestOf = (b: EvidenceBundle) => fileOf(b, 'manifest.json');
const indexEntry = (b: EvidenceBundle, manifest: string | null = manifestOf(b)): ChainEntry => ({
  manifest,
  runId: b.manifest.runId,
  closedAt: b.manifest.createdAt,
  manifestSha256: b.manifestSha256,
});

describe('buildEvidenceBundle', () => {
  it('writes the seven evidence files and a manifest under the month the run closed', () => {
    const b = buildEvidenceBundle(leaverInput());
    expect(b.prefix).toBe(`evidence/2026/03/${runIds.c}/`);
    expect(b.files.map((f) => f.name)).toEqual([...EVIDENCE_FILES, 'manifest.json']);
    expect(b.manifest).toMatchObject({ version: 1, runId: runIds.c, employeeId: EMPLOYEE, createdAt: '2026-03-02T09:15:07Z', previousManifestSha256: null });
    for (const entry of b.manifest.files) {
      const body = fileOf(b, entry.name);
      expect(entry.sha256).toBe(sha256Hex(body));
      expect(entry.bytes).toBe(Buffer.byteLength(body));
    }
    expect(b.manifestSha256).toBe(sha256Hex(manifestOf(b)));
    expect(JSON.parse(manifestOf(b))).toEqual(b.manifest);
    expect(b.files.find((f) => f.name === 'summary.html')!.contentType).toBe('text/html; charset=utf-8');
  });

  it('is byte-for-byte deterministic, whatever the key order of the input', () => {
    const input = leaverInput();
    const reordered = Object.fromEntries(Object.entries(structuredClone(input)).reverse()) as unknown as EvidenceInput;
    reordered.approvals = reordered.approvals.map((a) => Object.fromEntries(Object.entries(a).reverse()) as typeof a);
    const one = buildEvidenceBundle(input);
    const two = buildEvidenceBundle(reordered);
    expect(two.files).toEqual(one.files);
    expect(two.manifestSha256).toBe(one.manifestSha256);
    expect(fileOf(one, 'plan.json')).toMatch(/^\{\n {2}"desired": \{\n {4}"bundles"/);
  });

  it('keeps the HR body exactly as received, with the hash the run ledger recorded at ingest', () => {
    const input = leaverInput();
    const doc = JSON.parse(fileOf(buildEvidenceBundle(input), 'hr-event.json'));
    expect(doc.rawBody).toBe(input.rawEvent.body);
    expect(doc.sha256).toBe(sha256Hex(input.rawEvent.body));
    expect(doc).toMatchObject({ receivedAt: '2026-03-02T09:00:00.120Z', bytes: Buffer.byteLength(input.rawEvent.body), runId: runIds.c });
  });

  it('keeps plan provenance, mapping version and the desired state snapshot', () => {
    const input = leaverInput();
    const doc = JSON.parse(fileOf(buildEvidenceBundle(input), 'plan.json'));
    expect(doc.mappingVersion).toBe(policy.mappingVersion);
    expect(doc.desired.targets.map((t: { target: string; account: string }) => [t.target, t.account])).toEqual([
      ['okta', 'disabled'],
      ['slack', 'disabled'],
      ['netsuite', 'disabled'],
    ]);
    expect(doc.plan.targets[0].steps.map((s: { id: string }) => s.id)).toContain('okta/revokeSessions');
  });

  it('redacts secrets anywhere in the inputs, and says where without saying what', () => {
    const secrets = {
      taskToken: randomBytes(24).toString('base64url'),
      bearer: randomBytes(24).toString('hex'),
      tap: randomBytes(12).toString('base64url'),
      clientSecret: randomBytes(16).toString('hex'),
      password: randomBytes(16).toString('hex'),
    };
    const input = leaverInput({ taskToken: secrets.taskToken });
    input.executionLog[0]!.error = { name: 'TargetRejected', message: `okta: request with Authorization: Bearer ${secrets.bearer} refused (HTTP 403)` };
    (input.executionLog[0]!.changes[0] as unknown as Record<string, unknown>).temporaryAccessPass = secrets.tap;
    (input.reconciliation as unknown as Record<string, unknown>).connector = { client_secret: secrets.clientSecret };
    const event = JSON.parse(input.rawEvent.body);
    event.worker.password = secrets.password;
    input.rawEvent.body = JSON.stringify(event);

    const b = buildEvidenceBundle(input);
    for (const f of b.files) for (const s of Object.values(secrets)) expect(f.body, `${f.name} leaks a secret`).not.toContain(s);
    expect(b.redactions).toEqual([
      'approvals.json: approvals[0].taskToken',
      'execution-log.json: executionLog[0].changes[0].temporaryAccessPass',
      'execution-log.json: executionLog[0].error.message',
      'reconciliation.json: reconciliation.connector.client_secret',
      'hr-event.json: worker.password',
    ]);
    expect(JSON.parse(fileOf(b, 'approvals.json')).approvals[0].taskToken).toBe('[REDACTED]');
    expect(JSON.parse(fileOf(b, 'execution-log.json')).steps[0].error.message).toBe(
      'okta: request with Authorization: Bearer [REDACTED] refused (HTTP 403)',
    );
    // The raw bytes cannot be kept without the secret; the hash of what arrived still is.
    const hr = JSON.parse(fileOf(b, 'hr-event.json'));
    expect(hr).toMatchObject({ rawBody: null, sha256: sha256Hex(input.rawEvent.body), redacted: ['worker.password'] });
    expect(hr.payload.worker).toMatchObject({ employeeId: EMPLOYEE, password: '[REDACTED]' });
    expect(verifyBundle(filesOf(b)).ok).toBe(true);
  });

  it('refuses identifiers that would escape their storage key, naming the field', () => {
    expect(() => buildEvidenceBundle({ ...leaverInput(), runId: '../../etc' })).toThrow(/runId: must be a run id/);
    expect(() => buildEvidenceBundle({ ...leaverInput(), employeeId: 'E1/..' })).toThrow(/employeeId: must be an employee id/);
    expect(() => buildEvidenceBundle({ ...leaverInput(), previousManifestSha256: 'abc' })).toThrow(
      /previousManifestSha256: must be 64 lowercase hex digits/,
    );
    expect(() => buildEvidenceBundle({ ...leaverInput(), closedAt: 'yesterday' })).toThrow(/closedAt/);
    expect(() => buildEvidenceBundle({ ...leaverInput(), status: 'EXECUTING' as never })).toThrow(/status: must be a terminal run status/);
  });
});

describe('summary.html', () => {
  const hostile = '<script>alert("x")</script>';
  const page = () => fileOf(buildEvidenceBundle(leaverInput({ givenName: hostile, familyName: 'O"Brien' })), 'summary.html');

  it('escapes every HR value, so a name cannot inject markup', () => {
    const html = page();
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; O&quot;Brien');
    expect(html).toContain('<title>Leaver run for &lt;script&gt;');
  });

  it('is self-contained: no scripts, no external assets, and a CSP that forbids both', () => {
    const html = page();
    expect(html).not.toMatch(/\bsrc=|<link\b|@import|url\(|https?:\/\//i);
    expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'"`);
  });

  it('is structured for assistive technology and phones', () => {
    const html = page();
    expect(html).toMatch(/^<!doctype html>\n<html lang="en">/);
    expect(html).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    expect(html.match(/<h1>/g)).toHaveLength(1);
    expect(html.match(/<h2 id=/g)!.length).toBeGreaterThanOrEqual(8);
    const tables = html.match(/<table>/g)!.length;
    expect(html.match(/<caption id=/g)).toHaveLength(tables);
    expect(html).not.toMatch(/<th>/); // every header cell is scoped
  });

  it('tells what happened: status, approvals, changes with request ids, verification, exceptions, KPIs', () => {
    const html = page();
    expect(html).toContain('<span class="status tone-warn">Exception open</span>');
    expect(html).toContain('grace.hopper@acme.example<br><span class="muted">manager</span></td><td>Approved</td><td>Handover to the team lead</td>');
    expect(html).toContain('<code>203.0.113.9</code>');
    expect(html).toMatch(/<td>disable<\/td>\n<td><code>00u1abc<\/code><\/td>\n<td>person is a leaver<\/td>\n<td>Changed<\/td>\n<td><code>req-okta-1<\/code><\/td>/);
    expect(html).toContain('<span class="kpi-value">4 min 12 s</span>Time to disable <span class="muted">(within the 1 h SLA)</span>');
    expect(html).toContain('<span class="kpi-value">100 %</span>Revocation completeness');
    expect(html).toContain('<td>okta</td><td>Matches desired state</td>');
    expect(html).toContain('<td><code>NS-77</code></td>');
    expect(html).toContain('<td><code>ex-1</code><br><span class="muted">orphan</span></td><td>netsuite</td>');
    expect(html).toContain('<code>user.lifecycle.deactivate</code>');
    expect(html).toContain('This is the first bundle for this person');
  });
});

describe('verifyBundle', () => {
  it('accepts a bundle as built', () => {
    const b = buildEvidenceBundle(leaverInput());
    expect(verifyBundle(filesOf(b), { expectedManifestSha256: b.manifestSha256, runId: runIds.c, employeeId: EMPLOYEE })).toMatchObject({
      ok: true,
      problems: [],
      manifestSha256: b.manifestSha256,
    });
  });

  it.each(EVIDENCE_FILES)('reports the exact file when one byte of %s changes', (name) => {
    const b = buildEvidenceBundle(leaverInput());
    const files = filesOf(b);
    const bytes = Buffer.from(fileOf(b, name));
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0x01;
    files.set(name, new Uint8Array(bytes));
    const report = verifyBundle(files);
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([expect.stringMatching(new RegExp(`^${name.replace('.', '\\.')} was changed: sha256 [0-9a-f]{64} \\(\\d+ bytes\\) does not match the manifest's ${b.manifest.files.find((f) => f.name === name)!.sha256}`))]);
  });

  it('reports a changed manifest against the hash recorded when it was stored', () => {
    const b = buildEvidenceBundle(leaverInput());
    const files = filesOf(b);
    files.set('manifest.json', manifestOf(b).replace('"createdAt": "2026-03-02T09:15:07Z"', '"createdAt": "2026-03-02T09:15:08Z"'));
    const report = verifyBundle(files, { expectedManifestSha256: b.manifestSha256 });
    expect(report.problems).toEqual([expect.stringMatching(/^manifest\.json was changed: sha256 [0-9a-f]{64} does not match the [0-9a-f]{64} recorded/)]);
  });

  it('reports a removed file and an extra file by name', () => {
    const b = buildEvidenceBundle(leaverInput());
    const files = filesOf(b);
    files.delete('approvals.json');
    files.set('notes.txt', 'added later');
    expect(verifyBundle(files).problems).toEqual(['approvals.json is missing (listed in the manifest)', 'notes.txt is not listed in the manifest (extra file)']);
  });

  it('reports a manifest that drops a required file along with the file', () => {
    const b = buildEvidenceBundle(leaverInput());
    const files = filesOf(b);
    files.delete('approvals.json');
    const manifest = { ...b.manifest, files: b.manifest.files.filter((f) => f.name !== 'approvals.json') };
    files.set('manifest.json', JSON.stringify(manifest));
    expect(verifyBundle(files).problems).toEqual(['manifest.json does not list the required file approvals.json']);
  });

  it('names the field of a malformed manifest, and reports a missing one', () => {
    const b = buildEvidenceBundle(leaverInput());
    const files = filesOf(b);
    const manifest = structuredClone(b.manifest) as { files: Array<{ sha256: string }> };
    manifest.files[2]!.sha256 = 'not-a-hash';
    files.set('manifest.json', JSON.stringify(manifest));
    expect(verifyBundle(files).problems).toEqual(['manifest.json: files[2].sha256: must be 64 lowercase hex digits']);
    files.delete('manifest.json');
    expect(verifyBundle(files).problems).toEqual(['manifest.json is missing']);
  });

  it('catches an HR body edited together with its file hash (the manifest was rewritten to match)', () => {
    const b = buildEvidenceBundle(leaverInput());
    const files = filesOf(b);
    const hr = JSON.parse(fileOf(b, 'hr-event.json'));
    hr.rawBody = hr.rawBody.replace('termination', 'change');
    const edited = `${JSON.stringify(hr, null, 2)}\n`;
    files.set('hr-event.json', edited);
    const manifest = structuredClone(b.manifest);
    manifest.files[0] = { name: 'hr-event.json', sha256: sha256Hex(edited), bytes: Buffer.byteLength(edited) };
    files.set('manifest.json', JSON.stringify(manifest));
    expect(verifyBundle(files).problems).toEqual([`hr-event.json: rawBody does not hash to the recorded sha256 ${hr.sha256}`]);
  });
});

describe('verifyChain', () => {
  it('accepts a chain of three bundles of one person', () => {
    const chain = chainOfThree();
    expect(chain[0]!.manifest.previousManifestSha256).toBeNull();
    expect(chain[2]!.manifest.previousManifestSha256).toBe(chain[1]!.manifestSha256);
    expect(verifyChain(chain.map(manifestOf))).toEqual({ ok: true, problems: [] });
    expect(verifyChain(chain.map((b) => indexEntry(b)))).toEqual({ ok: true, problems: [] });
  });

  it('reports a removed middle bundle with the run ids around the gap', () => {
    const [a, b, c] = chainOfThree();
    const report = verifyChain([manifestOf(a!), manifestOf(c!)]);
    expect(report.problems).toEqual([
      `bundle ${runIds.a} (2026-01-15T10:00:00Z) is altered, or a bundle after it is missing: ${runIds.c} points to manifest sha256 ${b!.manifestSha256} which no bundle has`,
    ]);
  });

  it('names the removed bundle when the person index still lists it', () => {
    const [a, b, c] = chainOfThree();
    const report = verifyChain([indexEntry(a!), indexEntry(b!, null), indexEntry(c!)]);
    expect(report.problems).toEqual([
      `bundle ${runIds.b} (2026-02-10T10:00:00Z) is missing or altered: ${runIds.c} points to manifest sha256 ${b!.manifestSha256} which no bundle has`,
    ]);
  });

  it('tells a removal from an edit when even the index entry was removed', () => {
    const [a, b, c] = chainOfThree();
    const report = verifyChain([indexEntry(a!), indexEntry(c!)]);
    expect(report.problems).toEqual([
      `a bundle between ${runIds.a} (2026-01-15T10:00:00Z) and ${runIds.c} (2026-03-02T09:15:07Z) is missing or altered: ${runIds.c} points to manifest sha256 ${b!.manifestSha256} which no bundle has`,
    ]);
  });

  it('reports an edited middle manifest', () => {
    const [a, b, c] = chainOfThree();
    const edited = manifestOf(b!).replace(/"sha256": "[0-9a-f]{64}"/, `"sha256": "${'0'.repeat(64)}"`);
    const plain = verifyChain([manifestOf(a!), edited, manifestOf(c!)]);
    expect(plain.problems).toEqual([
      `bundle ${runIds.b} (2026-02-10T10:00:00Z) is altered, or a bundle after it is missing: ${runIds.c} points to manifest sha256 ${b!.manifestSha256} which no bundle has`,
    ]);
    const indexed = verifyChain([indexEntry(a!), indexEntry(b!, edited), indexEntry(c!)]);
    expect(indexed.problems).toEqual([
      `bundle ${runIds.b} (2026-02-10T10:00:00Z) is missing or altered: ${runIds.c} points to manifest sha256 ${b!.manifestSha256} which no bundle has`,
    ]);
  });

  it('pins the newest bundle with the hash recorded when it was stored', () => {
    const [a, b, c] = chainOfThree();
    const edited = manifestOf(c!).replace('"version": 1', '"version": 1 ');
    expect(verifyChain([manifestOf(a!), manifestOf(b!), edited]).ok).toBe(true); // nothing points to the newest yet
    const report = verifyChain([indexEntry(a!), indexEntry(b!), indexEntry(c!, edited)]);
    expect(report.problems).toEqual([
      `bundle ${runIds.c} (2026-03-02T09:15:07Z) is altered: its manifest sha256 ${sha256Hex(edited)} differs from the ${c!.manifestSha256} recorded when it was stored`,
    ]);
  });

  it('reports a fork, a restart and a missing start of the chain', () => {
    const [a, b] = chainOfThree();
    const fork = buildEvidenceBundle(leaverInput({ runId: runIds.c, closedAt: '2026-03-02T09:15:07Z', previousManifestSha256: a!.manifestSha256 }));
    expect(verifyChain([manifestOf(a!), manifestOf(b!), manifestOf(fork)]).problems).toEqual([
      `bundle ${runIds.c} (2026-03-02T09:15:07Z) points to the manifest of ${runIds.a} (2026-01-15T10:00:00Z), not to ${runIds.b} (2026-02-10T10:00:00Z) just before it (a forked or reordered chain)`,
    ]);
    const restart = buildEvidenceBundle(leaverInput({ runId: runIds.c, closedAt: '2026-03-02T09:15:07Z' }));
    expect(verifyChain([manifestOf(a!), manifestOf(b!), manifestOf(restart)]).problems).toEqual([
      `bundle ${runIds.c} (2026-03-02T09:15:07Z) starts a new chain (previousManifestSha256 is null) after ${runIds.b} (2026-02-10T10:00:00Z)`,
    ]);
    expect(verifyChain([manifestOf(b!)]).problems).toEqual([
      `a bundle before ${runIds.b} (2026-02-10T10:00:00Z) is missing or altered: ${runIds.b} points to manifest sha256 ${a!.manifestSha256} which no bundle has`,
    ]);
    expect(verifyChain([manifestOf(b!)], { complete: false }).ok).toBe(true);
  });
});

describe('filesystem evidence store', () => {
  let root: string;
  let store: EvidenceStore;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'jml-evidence-'));
    store = fsEvidenceStore(root);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  /** Builds the next bundle of the person against the store's current chain head. */
  async function closeRun(runId: string, closedAt: string): Promise<EvidenceBundle> {
    const previousManifestSha256 = await store.latestManifestSha256(EMPLOYEE);
    const bundle = buildEvidenceBundle(leaverInput({ runId, closedAt, previousManifestSha256 }));
    await store.putBundle(bundle);
    return bundle;
  }

  function allFiles(dir: string): string[] {
    return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((p) => statSync(join(dir, p)).isFile()).sort();
  }

  it('round-trips a chain of three bundles on disk, and they verify', async () => {
    expect(await store.latestManifestSha256(EMPLOYEE)).toBeNull();
    const a = await closeRun(runIds.a, '2026-01-15T10:00:00Z');
    const b = await closeRun(runIds.b, '2026-02-10T10:00:00Z');
    const c = await closeRun(runIds.c, '2026-03-02T09:15:07Z');
    expect(b.manifest.previousManifestSha256).toBe(a.manifestSha256);
    expect(c.manifest.previousManifestSha256).toBe(b.manifestSha256);
    expect(await store.latestManifestSha256(EMPLOYEE)).toBe(c.manifestSha256);

    expect(readFileSync(join(root, 'evidence/2026/03', runIds.c, 'summary.html'), 'utf8')).toBe(fileOf(c, 'summary.html'));
    expect(allFiles(root).filter((p) => p.includes('.tmp'))).toEqual([]);
    expect(allFiles(join(root, 'evidence/persons', EMPLOYEE))).toEqual(['00000001.json', '00000002.json', '00000003.json']);

    expect(await store.listRunFiles(c.prefix)).toEqual([...EVIDENCE_FILES, 'manifest.json'].sort());
    const loaded = await store.loadBundle(c.prefix);
    expect(verifyBundle(loaded, { expectedManifestSha256: c.manifestSha256 })).toMatchObject({ ok: true });
    expect(Buffer.from((await store.getFile(runIds.b, 'plan.json'))!).toString()).toBe(fileOf(b, 'plan.json'));
    expect(Buffer.from((await store.getFile(a.prefix, 'manifest.json'))!).toString()).toBe(manifestOf(a));
    expect(await store.getFile('run-unknown', 'plan.json')).toBeNull();
    expect((await store.personBundles(EMPLOYEE)).map((e) => [e.seq, e.runId, e.prefix])).toEqual([
      [1, runIds.a, `evidence/2026/01/${runIds.a}/`],
      [2, runIds.b, `evidence/2026/02/${runIds.b}/`],
      [3, runIds.c, `evidence/2026/03/${runIds.c}/`],
    ]);
    expect(await verifyPersonChain(store, EMPLOYEE)).toEqual({ ok: true, problems: [], bundles: 3 });
    expect(await verifyStoredBundle(store, runIds.b)).toMatchObject({ ok: true, prefix: b.prefix });
  });

  it('treats a retried close as done, and refuses a second, different bundle for the run', async () => {
    const a = await closeRun(runIds.a, '2026-01-15T10:00:00Z');
    expect(await store.putBundle(a)).toEqual({ prefix: a.prefix, manifestSha256: a.manifestSha256, seq: 1, written: false });
    const other = buildEvidenceBundle({ ...leaverInput({ runId: runIds.a, closedAt: '2026-01-15T10:00:00Z' }), status: 'COMPLETED' });
    const err = await store.putBundle(other).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvidenceBundleExists);
    expect((err as EvidenceBundleExists).existing).toEqual({ prefix: a.prefix, manifestSha256: a.manifestSha256 });
    await expect(store.putBundle(other)).rejects.toThrow(`${runIds.a} already has an evidence bundle (manifest sha256 ${a.manifestSha256}); evidence is written once`);
    expect(Buffer.from((await store.getFile(runIds.a, 'manifest.json'))!).toString()).toBe(manifestOf(a));
  });

  it('refuses a bundle built against an old chain head, before writing anything', async () => {
    await closeRun(runIds.a, '2026-01-15T10:00:00Z');
    const stale = buildEvidenceBundle(leaverInput({ runId: runIds.b, closedAt: '2026-02-10T10:00:00Z', previousManifestSha256: null }));
    const err = await store.putBundle(stale).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvidenceChainConflict);
    expect((err as Error).name).toBe('EvidenceChainConflict');
    expect(await store.listRunFiles(stale.prefix)).toEqual([]);
  });

  it('lets only one of two concurrent closes extend the chain; the other rebuilds and follows', async () => {
    const a = await closeRun(runIds.a, '2026-01-15T10:00:00Z');
    const b = buildEvidenceBundle(leaverInput({ runId: runIds.b, closedAt: '2026-02-10T10:00:00Z', previousManifestSha256: a.manifestSha256 }));
    const c = buildEvidenceBundle(leaverInput({ runId: runIds.c, closedAt: '2026-02-10T10:00:01Z', previousManifestSha256: a.manifestSha256 }));
    const results = await Promise.allSettled([store.putBundle(b), store.putBundle(c)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
    expect(lost.reason).toBeInstanceOf(EvidenceChainConflict);
    // The loser's retry rebuilds against the new head (same close time) and is appended after the winner.
    const loser = results[0]!.status === 'rejected' ? { runId: runIds.b, at: '2026-02-10T10:00:00Z' } : { runId: runIds.c, at: '2026-02-10T10:00:01Z' };
    await closeRun(loser.runId, loser.at);
    expect((await store.personBundles(EMPLOYEE)).at(-1)!.runId).toBe(loser.runId);
    const chain = await verifyPersonChain(store, EMPLOYEE);
    expect(chain).toEqual({ ok: true, problems: [], bundles: 3 });
  });

  it('detects files edited or removed on disk', async () => {
    await closeRun(runIds.a, '2026-01-15T10:00:00Z');
    const b = await closeRun(runIds.b, '2026-02-10T10:00:00Z');
    await closeRun(runIds.c, '2026-03-02T09:15:07Z');

    const approvalsPath = join(root, b.prefix, 'approvals.json');
    writeFileSync(approvalsPath, readFileSync(approvalsPath, 'utf8').replace('Handover to the team lead', 'Handover to the team leaf'));
    const one = await verifyStoredBundle(store, runIds.b);
    expect(one.problems).toEqual([expect.stringMatching(/^approvals\.json was changed: /)]);

    rmSync(join(root, b.prefix), { recursive: true });
    const chain = await verifyPersonChain(store, EMPLOYEE);
    expect(chain.problems).toEqual([
      `bundle ${runIds.b} (2026-02-10T10:00:00Z) is missing or altered: ${runIds.c} points to manifest sha256 ${b.manifestSha256} which no bundle has`,
    ]);
    expect((await verifyStoredBundle(store, runIds.b)).problems).toEqual(['manifest.json is missing']);
  });

  it('reports a bundle removed together with its index entry', async () => {
    await closeRun(runIds.a, '2026-01-15T10:00:00Z');
    const b = await closeRun(runIds.b, '2026-02-10T10:00:00Z');
    await closeRun(runIds.c, '2026-03-02T09:15:07Z');
    rmSync(join(root, b.prefix), { recursive: true });
    rmSync(join(root, 'evidence/persons', EMPLOYEE, '00000002.json'));
    rmSync(join(root, 'evidence/runs', `${runIds.b}.json`));
    expect((await verifyPersonChain(store, EMPLOYEE)).problems).toEqual([
      `the evidence index of ${EMPLOYEE} is incomplete: entry 2 is missing before ${runIds.c} (2026-03-02T09:15:07Z)`,
      `a bundle between ${runIds.a} (2026-01-15T10:00:00Z) and ${runIds.c} (2026-03-02T09:15:07Z) is missing or altered: ${runIds.c} points to manifest sha256 ${b.manifestSha256} which no bundle has`,
    ]);
  });

  it('needs the run ledger to notice that the newest bundle and its index entry were removed', async () => {
    const a = await closeRun(runIds.a, '2026-01-15T10:00:00Z');
    const b = await closeRun(runIds.b, '2026-02-10T10:00:00Z');
    rmSync(join(root, b.prefix), { recursive: true });
    rmSync(join(root, 'evidence/persons', EMPLOYEE, '00000002.json'));
    expect((await verifyPersonChain(store, EMPLOYEE)).ok).toBe(true); // a shorter chain is still a chain
    const ledger = [a, b].map((x) => ({ runId: x.manifest.runId, prefix: x.prefix, manifestSha256: x.manifestSha256 }));
    expect((await verifyPersonChain(store, EMPLOYEE, { recorded: ledger })).problems).toEqual([
      `bundle ${runIds.b} (${b.prefix}) is recorded in the run ledger but missing from the evidence index of ${EMPLOYEE}`,
    ]);
  });

  it('keeps every key inside its root', async () => {
    await expect(store.getFile(runIds.a, '../../../etc/passwd')).rejects.toThrow(/file name/);
    await expect(store.getFile('evidence/2026/01/../../x', 'plan.json')).rejects.toThrow(/not a bundle prefix/);
    await expect(store.latestManifestSha256('../E1')).rejects.toThrow(/employeeId/);
  });
});
