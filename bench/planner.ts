/**
 * Planner benchmark: desiredState + plan for N synthetic workers against a 200-rule policy.
 *
 *   npx tsx bench/planner.ts                 # 10k and 100k workers, 3 runs each (median)
 *   npx tsx bench/planner.ts --sizes 1000000 # the 1M point (one run)
 *
 * Each worker is planned against an actual state that is half converged (so plans are
 * non-trivial): the same work a bulk reconcile or a policy roll-out does.
 */
import '../local/quiet.ts';
import { parseArgs } from 'node:util';
import type { ActualAccount } from '#core/access';
import { desiredState } from '#core/desired-state';
import type { Worker } from '#core/hr-event';
import { plan } from '#core/plan';
import { compilePolicy } from '#core/policy';

const { values } = parseArgs({ options: { sizes: { type: 'string' }, runs: { type: 'string' } } });
const sizes = (values.sizes ?? '10000,100000').split(',').map(Number);
const runs = Number(values.runs ?? 3);

const DEPARTMENTS = Array.from({ length: 20 }, (_, i) => `Dept${i}`);
const LOCATIONS = Array.from({ length: 10 }, (_, i) => `Site${i}`);
const APPS = ['app-a', 'app-b', 'app-c'];

function syntheticPolicy() {
  const bundles: Record<string, unknown> = {};
  for (let b = 0; b < 100; b++) {
    const targets: Record<string, unknown[]> = { okta: [{ group: `G${b}` }, { group: `G${b}-extra` }] };
    targets[APPS[b % 3]!] = [{ group: `${APPS[b % 3]}-g${b}` }, { role: `role-${b % 7}` }];
    bundles[`b${b}`] = { kind: b % 10 === 0 ? 'privileged' : 'baseline', targets };
  }
  const rules = Array.from({ length: 200 }, (_, r) => ({
    id: `r${r}`,
    when:
      r % 4 === 0
        ? { department: DEPARTMENTS[r % 20] }
        : r % 4 === 1
          ? { department: DEPARTMENTS[r % 20], location: LOCATIONS[r % 10] }
          : r % 4 === 2
            ? { jobCode: `J${r % 50}-*` }
            : { department: [DEPARTMENTS[r % 20]!, DEPARTMENTS[(r + 1) % 20]!], employmentType: 'employee' },
    grant: [`b${r % 100}`, ...(r % 3 === 0 ? [`b${(r * 7) % 100}`] : [])],
  }));
  return compilePolicy({
    version: 1,
    company: { name: 'Bench Inc', timeZone: 'UTC', emailDomain: 'bench.example', fallbackApprover: 'it@bench.example' },
    targets: [
      { name: 'okta', kind: 'okta', owner: { team: 'IAM', email: 'iam@bench.example' }, retentionDays: 30 },
      ...APPS.map((a) => ({ name: a, kind: 'scim', owner: { team: a, email: `${a}@bench.example` }, retentionDays: 30 })),
    ],
    bundles,
    rules,
  });
}

function worker(i: number): Worker {
  return {
    employeeId: `E${i}`,
    givenName: 'Given',
    familyName: `Family${i}`,
    email: `e${i}@bench.example`,
    department: DEPARTMENTS[i % 20]!,
    location: LOCATIONS[(i * 7) % 10]!,
    jobCode: `J${i % 50}-${i % 3}`,
    managerId: `E${Math.floor(i / 10)}`,
    employmentType: i % 9 === 0 ? 'contractor' : 'employee',
    startDate: '2025-01-01',
  };
}

const policy = syntheticPolicy();

function runOnce(n: number): { ms: number; steps: number; peakRss: number } {
  let peakRss = process.memoryUsage().rss;
  let steps = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const w = worker(i);
    const d = desiredState({ worker: w, status: i % 50 === 0 ? 'terminated' : 'active' }, policy);
    // Half converged: the IdP holds every other desired group plus one stale group.
    const idp = d.targets[0]!;
    const actual: Record<string, ActualAccount | null> = {
      okta: i % 5 === 0 ? null : {
        id: `u${i}`,
        status: 'enabled',
        entitlements: [...idp.entitlements.filter((_, k) => k % 2 === 0).map((e) => ({ type: e.type, value: e.value })), { type: 'group', value: 'stale' }],
      },
    };
    steps += plan(d, actual, policy, { lifecycle: 'mover' }).stepCount;
    if ((i & 0x3fff) === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const ms = performance.now() - t0;
  return { ms, steps, peakRss: Math.max(peakRss, process.memoryUsage().rss) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

runOnce(2000); // warm up the JIT
const results = [];
for (const n of sizes) {
  const samples = Array.from({ length: n >= 1_000_000 ? 1 : runs }, () => runOnce(n));
  const ms = median(samples.map((s) => s.ms));
  results.push({
    workers: n,
    rules: 200,
    medianMs: Math.round(ms),
    perWorkerUs: +((ms * 1000) / n).toFixed(2),
    workersPerSecond: Math.round(n / (ms / 1000)),
    stepsPlanned: samples[0]!.steps,
    peakRssMiB: Math.round(Math.max(...samples.map((s) => s.peakRss)) / 2 ** 20),
  });
}
console.log('planner: desiredState + plan per worker, 200-rule / 100-bundle policy, 4 targets');
console.table(results);
console.log(JSON.stringify({ bench: 'planner', node: process.version, results }));
