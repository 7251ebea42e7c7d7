import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../bin/cli.ts';

let out: string[];
let err: string[];
beforeEach(() => {
  out = [];
  err = [];
  vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

const tmp = mkdtempSync(join(tmpdir(), 'jml-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, content: string) => {
  const p = join(tmp, name);
  writeFileSync(p, content);
  return p;
};

describe('jml CLI', () => {
  it('policy check prints the mappingVersion and a summary', async () => {
    expect(await main(['policy', 'check'])).toBe(0);
    expect(out.join('\n')).toMatch(/mappingVersion {2}[0-9a-f]{64}/);
    expect(out.join('\n')).toContain('privileged: production-access, finance-system-admin, hris-admin');
  });

  it('policy check exits 1 and lists every problem of a broken policy', async () => {
    const broken = readFileSync('config/access-policy.yaml', 'utf8').replace('timeZone: Europe/London', 'timeZone: Nowhere/City').replace('grant: [sales]', 'grant: [salez]');
    expect(await main(['policy', 'check', file('broken.yaml', broken)])).toBe(1);
    expect(err).toContain('  - company.timeZone: must be an IANA time zone like Europe/London');
  });

  it('plan shows provenance and the ordered plan, and --json is machine-readable', async () => {
    expect(await main(['plan', '--worker', 'config/examples/worker-finance-admin.json'])).toBe(0);
    const text = out.join('\n');
    expect(text).toContain('role    Administrator [privileged]  — bundle finance-system-admin ← rule finance-system-admins');
    expect(text).toContain('bundle:finance-system-admin → controller@acme.example [privileged]');
    out = [];
    expect(await main(['plan', '--worker', 'config/examples/worker-finance-admin.json', '--json'])).toBe(0);
    const json = JSON.parse(out.join('\n'));
    expect(json.plan.stepCount).toBe(12);
  });

  it('plan against a converged actual state is empty, and a leaver event plans disable first', async () => {
    const actual = file('actual.json', JSON.stringify({
      okta: { id: 'u1', status: 'enabled', entitlements: [{ type: 'group', value: 'All Staff' }, { type: 'group', value: 'Employees' }, { type: 'group', value: 'Finance' }] },
    }));
    const event = file('term.json', JSON.stringify({
      eventId: 'x', eventType: 'termination', effectiveDate: '2026-12-01', occurredAt: '2026-11-30T12:00:00Z',
      worker: { ...JSON.parse(readFileSync('config/examples/worker-finance-admin.json', 'utf8')), terminationDate: '2026-12-01' },
    }));
    expect(await main(['plan', '--event', event, '--actual', actual])).toBe(0);
    expect(out.join('\n')).toMatch(/okta account u1\n +1\. disable {2}\[no approval\][^\n]*\n +2\. revokeSessions/);
  });

  it('policy diff shows who gains and loses what, calling out privileged gains', async () => {
    const next = readFileSync('config/access-policy.yaml', 'utf8').replace(
      "when: { department: Engineering, jobCode: \"SRE-*\", employmentType: employee }",
      "when: { department: Engineering, employmentType: employee }",
    );
    expect(await main(['policy', 'diff', 'config/access-policy.yaml', file('next.yaml', next), '--roster', 'config/examples/roster.csv', '--now', '2026-12-01T00:00:00Z'])).toBe(0);
    const text = out.join('\n');
    expect(text).toContain('1 of 5 people affected');
    expect(text).toContain('E0003 Alan Turing');
    expect(text).toContain('+ okta group Production Access [PRIVILEGED] (bundle production-access ← rule sre-on-call)');
    expect(text).toContain('privileged gains need their app owners to review');
  });

  it('explains a missing file and an unknown command clearly', async () => {
    expect(await main(['plan', '--worker', 'nope.json'])).toBe(2);
    expect(err.join('\n')).toContain('cannot read worker nope.json: no such file');
    expect(await main(['frobnicate'])).toBe(2);
    expect(err.join('\n')).toContain('unknown command "frobnicate"');
  });

  it('reconcile --now against the local runtime prints the report, and exits 1 when the reconciliation failed', async () => {
    let answer: Record<string, unknown> = {};
    const bodies: string[] = [];
    const srv = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        bodies.push(`${req.method} ${req.url} ${body}`);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    vi.stubEnv('JML_URL', `http://127.0.0.1:${(srv.address() as { port: number }).port}`);
    vi.stubEnv('JML_STACK', undefined);
    try {
      answer = { reconciliationId: 'nightly-2026-11-25', status: 'EXCEPTION_OPEN', execution: 'SUCCEEDED', evidence: { prefix: 'evidence/2026/11/nightly-2026-11-25/' }, kpis: { findings: 2, orphanAccounts: 1 } };
      expect(await main(['reconcile', '--now'])).toBe(0);
      expect(out).toEqual([
        'reconciling every target and every person… (this reads every account page by page)',
        'reconciliation nightly-2026-11-25: EXCEPTION_OPEN',
        '  findings                     2',
        '  orphanAccounts               1',
        '  report: evidence/2026/11/nightly-2026-11-25/',
      ]);
      expect(bodies).toEqual(['POST /local/reconcile {"wait":true}']);

      out = [];
      answer = { ...answer, status: 'FAILED', execution: 'FAILED' };
      expect(await main(['reconcile', '--now'])).toBe(1);
      expect(out).toContain('✘ execution nightly-2026-11-25 FAILED');
      expect(out).toContain('reconciliation nightly-2026-11-25: FAILED');

      expect(await main(['reconcile', '--now', '--timeout', '2h'])).toBe(2);
      expect(err.join('\n')).toContain('--timeout applies to a deployed stack');
      expect(bodies).toHaveLength(2);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });
});
