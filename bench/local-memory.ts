/**
 * Memory of the local runtime as it works: HR events (worker changes of the demo company, each a
 * mover run that converges Okta and the SCIM apps) through the real handlers and engine, ledger on
 * disk as `npm run local` keeps it, in batches; after each batch (once every run has closed and a
 * full collection ran) the JS heap in use and the process's resident memory.
 *
 *   npx tsx bench/local-memory.ts [--events 600] [--batch 100] [--in-memory]
 *
 * Reports the growth per event over the batches after the first (the first pays module loading
 * and JIT): what the runtime keeps per run it has done. The JS heap holds the engine's execution
 * records (a path per execution, as Step Functions keeps an execution's history); the ledger's
 * data is on disk (in memory with `--in-memory`, where it is the store's external memory).
 */
import '../local/quiet.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { acceptHrEvent } from '#app/ingest';
import { REPO_ROOT, startLocalStack } from '#local/stack';
import { loadDemoOrg, seedDemoOrg } from '#local/demo-org';

const { values } = parseArgs({
  options: { events: { type: 'string', default: '600' }, batch: { type: 'string', default: '100' }, 'in-memory': { type: 'boolean', default: false } },
});
const EVENTS = Number(values.events);
const BATCH = Number(values.batch);
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MiB = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;

const dir = mkdtempSync(join(tmpdir(), 'jml-memory-'));
const stack = await startLocalStack({ retryIntervalMs: 5, ...(values['in-memory'] ? {} : { dataDir: join(dir, 'state') }) });
const org = loadDemoOrg(join(REPO_ROOT, 'config', 'demo-org.json'));
await seedDemoOrg(stack, org);
const people = org.workers.filter((w) => !w.terminationDate);

const sample = (events: number) => {
  gc();
  gc();
  const m = process.memoryUsage();
  return { events, heapUsedMiB: MiB(m.heapUsed), externalMiB: MiB(m.external), rssMiB: MiB(m.rss) };
};
const rows = [sample(0)];
let n = 0;
while (n < EVENTS) {
  for (let i = 0; i < BATCH && n < EVENTS; i++) {
    const w = people[n++ % people.length]!;
    const at = new Date().toISOString();
    // A move to another office: a mover run (the location is an attribute every target gets).
    await acceptHrEvent(stack.deps, {
      source: 'canonical',
      rawBody: JSON.stringify({ eventId: `memory-${n}`, eventType: 'change', effectiveDate: at.replace(/\.\d+Z$/, 'Z'), occurredAt: at, worker: { ...w, location: `${w.location} ${n}` } }),
    });
  }
  await stack.settle(300_000);
  rows.push(sample(n));
}
await stack.close();
rmSync(dir, { recursive: true, force: true });

const first = rows[1]!;
const last = rows.at(-1)!;
const perEventKiB = (k: 'heapUsedMiB' | 'externalMiB' | 'rssMiB') => Math.round((((last[k] - first[k]) * 1024) / Math.max(1, last.events - first.events)) * 10) / 10;
const results = {
  events: EVENTS,
  ledger: values['in-memory'] ? 'in memory' : 'on disk',
  perEventAfterFirstBatchKiB: { heapUsed: perEventKiB('heapUsedMiB'), external: perEventKiB('externalMiB'), rss: perEventKiB('rssMiB') },
  end: last,
};
console.log(`local runtime memory: ${EVENTS} mover events in batches of ${BATCH}, ledger ${results.ledger}`);
console.table(rows);
console.log(results);
console.log(JSON.stringify({ bench: 'local-memory', node: process.version, results }));
