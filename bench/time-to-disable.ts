/**
 * Time to disable: termination event accepted → IdP account disabled and sessions revoked, on the
 * local stack (same handlers and ASL as in AWS) against the Okta stand-in with a set latency.
 *
 *   npx tsx bench/time-to-disable.ts [--leavers 25] [--latency 20] [--rounds 5] [--window 60] [--trace] [--rate-limit 600] [--ledger-process] [--pin]
 *
 * Each round starts a fresh stack and terminates two more people first, not counted: the first
 * run of a process pays one-time costs (module loading, JIT) that belong to a cold start, and the
 * second the bulk guard's count of the active people (a ledger scan, cached for an hour: in a
 * running system one leaver an hour pays it, and only when the guard needs a limit), not the path.
 *
 * Engine overhead = measured − target latency × the Okta calls made before the disable was
 * confirmed (each call waits for the stand-in's latency): what jml itself adds. Leavers are
 * terminated one after another, each once the previous run has gone quiet (waiting for its
 * data-handling approval), so each figure is the unloaded latency.
 *
 * Every hop on the path is timestamped: each ledger call, each DynamoDB request (reads asked for
 * at once share one BatchGetItem, so there are fewer requests than ledger calls), the queue send,
 * the workflow start, the states entered and each Okta request. `--trace` prints the timelines of the first leaver measured and of the slowest; the summary
 * gives the ledger calls made before the disable and where the time went (sequential round
 * trips are best read off the `--trace` timeline: parallel calls and the webhook's own write
 * overlap the consumer's).
 *
 * Each leaver also reports how long the main thread (where every handler, the engine and the
 * stand-ins run) was ready to run but waiting for a CPU (`runQueueWaitMs`, Linux schedstat) and
 * how long it was paused for garbage collection (`gcMs`); the slowest 5 % are listed with both.
 * The results name the process's scheduling policy: `chrt -f 10 npx tsx bench/time-to-disable.ts …`
 * runs it under SCHED_FIFO, where the main thread keeps its CPU until it waits, and a thread that
 * wakes meanwhile (the process's own V8 collector and compiler threads among them) runs on the
 * other CPU instead of preempting it. The work is the same (see `cpuMsBeforeDisable`).
 * `--pin` (Linux, `taskset`) does it by placement instead: the main thread alone on the first CPU
 * the process may use, every other thread of the process (V8's collector and compiler helpers,
 * libuv's pool) on the others — each measured leaver starts with every thread placed so.
 *
 * The bulk-change guard keeps the policy's window (default 60 minutes: 12 steps of 5 minutes,
 * so its counting is on the path as it is in production) with its limits raised for the
 * benchmark: terminating 20 people of a 33-person company in seconds is exactly what it holds.
 */
import '../local/quiet.ts';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { join } from 'node:path';
import { acceptHrEvent } from '#app/ingest';
import type { AppDeps } from '#app/ports';
import { REPO_ROOT, startLocalStack } from '#local/stack';
import { loadDemoOrg, seedDemoOrg } from '#local/demo-org';
import { nearestRank, percentile } from './_stats.ts';

const { values } = parseArgs({
  options: {
    // 25 a round is every demo worker but the two warm-up leavers; 5 rounds make the p99 the
    // second slowest of 125 leavers rather than the slowest of a handful.
    leavers: { type: 'string', default: '25' },
    latency: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '5' },
    window: { type: 'string', default: '60' },
    trace: { type: 'boolean', default: false },
    'rate-limit': { type: 'string' },
    // dynalite in its own process, as DynamoDB is outside the Lambda in AWS (its CPU is then not
    // the process CPU reported here, and it does not wait for the engine's event loop).
    'ledger-process': { type: 'boolean', default: false },
    // The main thread on a CPU of its own, the process's other threads on the rest (see above).
    pin: { type: 'boolean', default: false },
  },
});
const latencyMs = Number(values.latency);
/** Leavers terminated first in each round, not counted (see above). */
const WARMUP = 2;
const rounds = Number(values.rounds);
const org = loadDemoOrg(join(REPO_ROOT, 'config', 'demo-org.json'));
/** Demo workers a round may terminate (the warm-up leavers first). */
const terminable = org.workers.filter((w) => w.employeeId.startsWith('E1'));
if (terminable.length < Number(values.leavers) + WARMUP) {
  console.error(`--leavers ${values.leavers}: a round has ${terminable.length - WARMUP} demo workers to terminate after the warm-up; use --rounds for more leavers`);
  process.exit(2);
}
const tmp = mkdtempSync(join(tmpdir(), 'jml-ttd-'));
const policyFile = join(tmp, 'policy.yaml');
const doc = parse(readFileSync(join(REPO_ROOT, 'config', 'access-policy.yaml'), 'utf8'));
doc.bulkGuard = { ...doc.bulkGuard, maxPercent: 100, maxCount: 100_000, minCount: 100_000, windowMinutes: Number(values.window) };
// `--rate-limit N`: the IdP declares its limit, so each leaver reserves its calls (call budget).
if (values['rate-limit']) doc.targets.find((t: { name: string }) => t.name === 'okta').rateLimit = { requestsPerMinute: Number(values['rate-limit']) };
writeFileSync(policyFile, stringify(doc));

/** One timed hop: a ledger call, a queue send, a workflow start. Epoch ms with sub-ms precision. */
interface Hop {
  what: string;
  start: number;
  end: number;
}
const epochNow = () => performance.timeOrigin + performance.now();
let hops: Hop[] = [];

/** Wraps every method of `target` so each call is recorded as a hop named `prefix.method`. */
function timed<T extends object>(target: T, prefix: string): T {
  return new Proxy(target, {
    get(t, p, receiver) {
      const v = Reflect.get(t, p, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const start = epochNow();
        const done = () => hops.push({ what: `${prefix}.${String(p)}`, start, end: epochNow() });
        const out = v.apply(t, args);
        if (out && typeof (out as Promise<unknown>).then === 'function') return (out as Promise<unknown>).finally(done);
        done();
        return out;
      };
    },
  });
}

/** Nanoseconds the main thread has waited, runnable, for a CPU (Linux schedstat); undefined elsewhere. */
const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;
const HAS_SCHEDSTAT = existsSync(SCHEDSTAT);
const runQueueWaitNs = () => (HAS_SCHEDSTAT ? Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[1]) : undefined);
/** The process's scheduling policy (field 41 of /proc/self/stat). */
function schedulingPolicy(): string {
  if (!existsSync('/proc/self/stat')) return 'unknown';
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return ['SCHED_OTHER', 'SCHED_FIFO', 'SCHED_RR', 'SCHED_BATCH', 'SCHED_ISO', 'SCHED_IDLE', 'SCHED_DEADLINE'][Number(fields[41 - 3])] ?? `policy ${fields[41 - 3]}`;
}

/** CPUs this process may run on (Linux `Cpus_allowed_list`, e.g. `0-1,4`). */
function allowedCpus(): number[] {
  const list = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';
  return list.split(',').flatMap((r) => {
    const [a, b = a] = r.split('-').map(Number);
    return Array.from({ length: b! - a! + 1 }, (_, i) => a! + i);
  });
}
/** Read before `--pin` narrows the main thread's own list. */
const CPUS = allowedCpus();
/** Threads already placed by `--pin`. */
const pinned = new Set<string>();
/** `--pin`: the main thread alone on the first allowed CPU, every other thread on the others; places threads created since the last call. */
function pinThreads(): string {
  if (CPUS.length < 2) throw new Error(`--pin needs two CPUs or more; this process may use ${CPUS.length}`);
  const [main, ...others] = CPUS.map(String);
  const place = (key: string, args: string[]) => {
    if (pinned.has(key)) return;
    const r = spawnSync('taskset', args, { encoding: 'utf8' });
    if (r.error || r.status !== 0) throw new Error(`--pin: taskset could not place ${key}: ${r.error?.message ?? r.stderr.trim()}`);
    pinned.add(key);
  };
  const tids = readdirSync('/proc/self/task');
  for (const tid of tids) place(`thread ${tid}`, ['-p', '-c', tid === String(process.pid) ? main! : others.join(','), tid]);
  // With `--ledger-process`, dynalite's process and all its threads go with the other threads.
  for (const tid of tids) {
    for (const child of readFileSync(`/proc/self/task/${tid}/children`, 'utf8').split(' ').filter(Boolean)) place(`process ${child}`, ['-a', '-p', '-c', others.join(','), child]);
  }
  const children = [...pinned].filter((k) => k.startsWith('process ')).length;
  return `main thread alone on CPU ${main}, the process's ${tids.length - 1} other threads${children ? ` and ${children} child process${children > 1 ? 'es' : ''}` : ''} on CPU ${others.join(',')}`;
}
let placement = 'as the scheduler places them';

/** Garbage-collection pauses of the main thread ([start, duration] in ms on the performance timeline). */
const gcPauses: Array<[number, number]> = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push([e.startTime, e.duration]);
}).observe({ entryTypes: ['gc'] });
const gcMsBetween = (from: number, to: number) => gcPauses.filter(([at]) => at >= from && at <= to).reduce((n, [, d]) => n + d, 0);

/** `the`, `the 2nd`, `the 3rd`…: which slowest leaver a percentile is. */
const ordinal = (k: number) => (k === 1 ? 'the' : `the ${k}${k % 10 === 1 && k % 100 !== 11 ? 'st' : k % 10 === 2 && k % 100 !== 12 ? 'nd' : k % 10 === 3 && k % 100 !== 13 ? 'rd' : 'th'}`);
const round1 = (x: number) => Math.round(x * 10) / 10;
const p50p99 = (xs: number[]) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99) });

interface Row {
  employeeId: string;
  measuredMs: number;
  acceptMs: number;
  queueAndStartMs: number;
  workflowToDisabledMs: number;
  oktaCalls: number;
  overheadMs: number;
  ledgerCalls: number;
  /** DynamoDB requests those calls made (reads asked for at once go out as one BatchGetItem). */
  dynamoRequests: number;
  ledgerMs: number;
  cpuMs: number;
  /** Time the main thread was runnable but not running (waiting for a CPU) until the disable. */
  runQueueWaitMs: number;
  /** Garbage-collection pauses of the main thread until the disable. */
  gcMs: number;
  ledgerCallP50Ms: number;
}

async function oneRound(round: number) {
  const stack = await startLocalStack({ retryIntervalMs: 20, policyFile, ledgerProcess: values['ledger-process'] });
  await seedDemoOrg(stack, org);
  const deps = stack.deps as AppDeps;
  const ledger = deps.ledger; // the benchmark's own polling reads are not the engine's
  deps.ledger = timed(deps.ledger, 'ledger');
  deps.queue = timed(deps.queue, 'queue');
  deps.workflows = timed(deps.workflows, 'workflows');
  // Every DynamoDB request, on the trace as `dynamodb <operation>` (one hop per request, however many ledger calls it carries).
  // The ledger's client keeps its middleware resolved from its first request on, so the requests are timed at `send`.
  const client = stack.dynamo.ledgerClient;
  const send = client.send.bind(client) as (command: { input: unknown }) => Promise<unknown>;
  client.send = ((command: { input: unknown }) => {
    const at = epochNow();
    const keys = (command.input as { RequestItems?: Record<string, { Keys: unknown[] }> }).RequestItems;
    const size = keys ? ` (${Object.values(keys).reduce((n, t) => n + t.Keys.length, 0)} keys)` : '';
    return send(command).finally(() => hops.push({ what: `dynamodb ${command.constructor.name.replace(/Command$/, '')}${size}`, start: at, end: epochNow() }));
  }) as typeof client.send;
  // CPU spent by the whole process (engine, stand-ins, and dynalite unless `--ledger-process`) until the sessions are revoked:
  // the machine work of the path, far less sensitive to a busy machine than wall time.
  const revoked: { cpu?: NodeJS.CpuUsage; waitNs?: number } = {};
  const registry = deps.connectors;
  deps.connectors = {
    get(target: string) {
      const c = registry.get(target);
      return new Proxy(c, {
        get(t, p, receiver) {
          const v = Reflect.get(t, p, receiver);
          if (p !== 'revokeSessions' || typeof v !== 'function') return v;
          return async (...args: unknown[]) => {
            const out = await v.apply(t, args);
            revoked.waitNs ??= runQueueWaitNs();
            revoked.cpu ??= process.cpuUsage();
            return out;
          };
        },
      });
    },
  };
  const okta = stack.targets.okta!;
  okta.controls.latencyMs = latencyMs;
  for (const s of Object.values(stack.targets.scim)) s.controls.latencyMs = latencyMs;

  const people = terminable.slice(0, Number(values.leavers) + WARMUP);
  const rows: Row[] = [];
  /** Each measured leaver's timeline, with `--trace` (the first and the slowest are printed). */
  const traces: Array<{ overheadMs: number; lines: string[] }> = [];
  for (const [i, w] of people.entries()) {
    const warmup = i < WARMUP;
    if (values.pin) placement = pinThreads(); // before the clock starts
    const today = new Date().toISOString().slice(0, 10);
    const body = JSON.stringify({
      eventId: `ttd-${round}-${i}`,
      eventType: 'termination',
      effectiveDate: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      occurredAt: new Date().toISOString(),
      worker: { ...w, terminationDate: today < w.startDate ? w.startDate : today },
    });
    hops = [];
    const logStart = okta.requestLog.length;
    revoked.cpu = undefined;
    revoked.waitNs = undefined;
    const wait0 = runQueueWaitNs();
    const cpu0 = process.cpuUsage();
    const t0 = epochNow();
    const accepted = await acceptHrEvent(stack.deps, { source: 'canonical', rawBody: body });
    const acceptedAt = epochNow();
    // Wait in memory (no polling reads that would load the ledger the engine is using): the
    // leaver workflow leaves DisableAtIdp once the disable is recorded on the run.
    for (;;) {
      const execution = stack.workflows.execution(accepted.runId);
      const entered = execution?.path.filter((e) => e.type === 'StateEntered').map((e) => e.state) ?? [];
      if (execution && (execution.status !== 'RUNNING' || entered.indexOf('DisableAtIdp') < entered.length - 1 && entered.includes('DisableAtIdp'))) break;
      if (epochNow() - t0 > 30_000) throw new Error(`run ${accepted.runId} did not disable within 30 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const mark = (await ledger.getRun(accepted.runId))?.timeline?.find((t) => t.phase === 'IdpDisabled');
    if (!mark) throw new Error(`run ${accepted.runId} left DisableAtIdp without disabling (${stack.workflows.statesEntered(accepted.runId).join(' → ')})`);
    const disabledAt = Date.parse(mark.at);
    const cpuAt = revoked.cpu as NodeJS.CpuUsage | undefined; // set by the wrapped connector meanwhile
    const cpuMs = cpuAt ? (cpuAt.user + cpuAt.system - cpu0.user - cpu0.system) / 1000 : NaN;
    // The run goes on (Plan, then the data-handling approval requests): wait until it is quiet,
    // so the next leaver is measured alone and only this leaver's Okta calls are counted.
    const execution = stack.workflows.execution(accepted.runId)!;
    await new Promise((r) => setTimeout(r, 100));
    for (let quiet = 0, seen = -1; quiet < 4; ) {
      await new Promise((r) => setTimeout(r, 50));
      quiet = execution.path.length === seen && execution.status !== 'RUNNING' ? 4 : execution.path.length === seen ? quiet + 1 : 0;
      seen = execution.path.length;
    }
    const disabledEpoch = disabledAt + 1; // the mark has ms resolution
    const log = okta.requestLog.slice(logStart);
    const before = log.filter((r) => r.at <= disabledEpoch);
    const calls = before.length;
    const measured = disabledAt - t0;
    const onPath = hops.filter((h) => h.what.startsWith('ledger.') && h.start >= t0 && h.end <= disabledEpoch);
    if (warmup) continue;
    rows.push({
      employeeId: w.employeeId,
      measuredMs: round1(measured),
      acceptMs: round1(acceptedAt - t0),
      queueAndStartMs: round1(execution.startedAt - acceptedAt),
      workflowToDisabledMs: round1(disabledAt - execution.startedAt),
      oktaCalls: calls,
      overheadMs: round1(measured - latencyMs * calls),
      ledgerCalls: onPath.length,
      dynamoRequests: hops.filter((h) => h.what.startsWith('dynamodb ') && h.start >= t0 && h.end <= disabledEpoch).length,
      ledgerMs: round1(onPath.reduce((n, h) => n + h.end - h.start, 0)),
      cpuMs: round1(cpuMs),
      gcMs: round1(gcMsBetween(t0 - performance.timeOrigin, disabledEpoch - performance.timeOrigin)),
      runQueueWaitMs: wait0 !== undefined && revoked.waitNs !== undefined ? round1((revoked.waitNs - wait0) / 1e6) : NaN,
      ledgerCallP50Ms: round1(percentile(onPath.map((h) => h.end - h.start), 50)),
    });
    if (values.trace) traces.push({ overheadMs: rows.at(-1)!.overheadMs, lines: traceOf(t0, disabledEpoch, acceptedAt, execution, before) });
  }
  await stack.settle(200).catch(() => undefined);
  await stack.close();
  return { rows, traces };
}

function traceOf(t0: number, disabledEpoch: number, acceptedAt: number, execution: { startedAt: number; path: Array<{ type: string; state?: string; at: number }> }, okta: Array<{ method: string; path: string; at: number }>): string[] {
  const lines: Array<[number, string]> = [];
  for (const h of hops) if (h.start >= t0 && h.start <= disabledEpoch) lines.push([h.start - t0, `${h.what} (${round1(h.end - h.start)} ms)`]);
  lines.push([acceptedAt - t0, 'webhook answered']);
  lines.push([execution.startedAt - t0, 'execution started']);
  for (const e of execution.path) if (e.at <= disabledEpoch && e.type === 'StateEntered') lines.push([e.at - t0, `state entered: ${e.state}`]);
  for (const r of okta) lines.push([r.at - t0, `okta ${r.method} ${r.path}`]);
  for (const [at, ms] of gcPauses) {
    const epoch = performance.timeOrigin + at;
    if (epoch >= t0 && epoch <= disabledEpoch) lines.push([epoch - t0, `garbage collection pause (${round1(ms)} ms)`]);
  }
  lines.push([disabledEpoch - 1 - t0, 'IdP disabled + sessions revoked']);
  return lines.sort((a, b) => a[0] - b[0]).map(([t, s]) => `${t.toFixed(1).padStart(7)} ms  ${s}`);
}

const all: Row[] = [];
const perRound: Array<{ measuredP50: number; measuredP99: number; overheadP50: number; overheadP99: number }> = [];
let firstTrace: string[] | undefined;
let slowestTrace: { overheadMs: number; lines: string[] } | undefined;
for (let r = 0; r < rounds; r++) {
  const { rows, traces } = await oneRound(r);
  all.push(...rows);
  firstTrace ??= traces[0]?.lines;
  for (const t of traces) if (!slowestTrace || t.overheadMs > slowestTrace.overheadMs) slowestTrace = t;
  const measured = p50p99(rows.map((x) => x.measuredMs));
  const overhead = p50p99(rows.map((x) => x.overheadMs));
  perRound.push({ measuredP50: measured.p50, measuredP99: measured.p99, overheadP50: overhead.p50, overheadP99: overhead.p99 });
}
rmSync(tmp, { recursive: true, force: true });

const col = (k: keyof Row) => all.map((r) => r[k] as number);
const results = {
  leavers: all.length,
  rounds,
  targetLatencyMs: latencyMs,
  bulkGuardWindowMinutes: Number(values.window),
  ledger: values['ledger-process'] ? 'dynalite in its own process' : 'dynalite in the same process',
  scheduling: schedulingPolicy(),
  threads: placement,
  oktaCallsBeforeDisable: percentile(col('oktaCalls'), 50),
  ledgerCallsBeforeDisable: percentile(col('ledgerCalls'), 50),
  dynamoRequestsBeforeDisable: percentile(col('dynamoRequests'), 50),
  measuredMs: p50p99(col('measuredMs')),
  engineOverheadMs: p50p99(col('overheadMs')),
  /** Which leaver the p99 is (nearest rank): with fewer than 100 it is the slowest. */
  p99Is: `${ordinal(all.length - nearestRank(99, all.length) + 1)} slowest of ${all.length}`,
  phasesMsP50: {
    accept: percentile(col('acceptMs'), 50),
    queueAndStart: percentile(col('queueAndStartMs'), 50),
    workflowToDisabled: percentile(col('workflowToDisabledMs'), 50),
  },
  cpuMsBeforeDisable: p50p99(col('cpuMs')),
  runQueueWaitMsBeforeDisable: p50p99(col('runQueueWaitMs')),
  gcPauseMsBeforeDisable: p50p99(col('gcMs')),
  /** The slowest 5 % of leavers: their overhead, the part of it the main thread waited for a CPU or was paused to collect, the CPU spent, and the three phases (as `phasesMsP50`). */
  slowest: [...all].sort((a, b) => b.overheadMs - a.overheadMs).slice(0, Math.max(1, Math.ceil(all.length / 20))).map((r) => ({ overheadMs: r.overheadMs, runQueueWaitMs: r.runQueueWaitMs, gcMs: r.gcMs, cpuMs: r.cpuMs, phasesMs: [r.acceptMs, r.queueAndStartMs, r.workflowToDisabledMs] })),
  ledgerCallMsP50: percentile(col('ledgerCallP50Ms'), 50),
  perRound,
};
console.log('time to disable: termination accepted → IdP disabled + sessions revoked (local stack, Okta stand-in)');
console.table(all.slice(0, 5));
if (values.trace && firstTrace) console.log(`timeline of the first leaver measured (ms after the webhook call):\n${firstTrace.join('\n')}`);
if (values.trace && slowestTrace) console.log(`timeline of the slowest leaver (engine overhead ${slowestTrace.overheadMs} ms):\n${slowestTrace.lines.join('\n')}`);
console.log(results);
console.log(JSON.stringify({ bench: 'time-to-disable', node: process.version, results }));
// Executions left waiting for their approvals hold nothing the benchmark needs: end here.
process.exit(0);
