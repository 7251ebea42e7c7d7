/**
 * `npm run bench`: runs every benchmark in its own process (so memory figures do not mix) and
 * prints each one's table. Pass names to run a subset: `npm run bench -- planner`, or
 * `npm run bench -- time-to-disable burst` for the engine's latency and burst figures (the burst
 * takes minutes: 1,000 leavers against a rate-limited Okta, time scaled ×10). The reliability
 * soak runs only when named: `npm run bench -- soak` (see docs/performance.md).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
/** Too long for the default run; only when named (`npm run bench -- soak`). */
const OPT_IN = new Set(['soak']);
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')} — available: ${all.join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted.length ? wanted : all.filter((n) => !OPT_IN.has(n))) {
  console.log(`\n=== bench/${name}.ts ===`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', `${dir}${name}.ts`], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed += 1;
    console.error(`bench/${name}.ts exited with ${r.status ?? r.signal}`);
  }
}
process.exit(failed ? 1 : 0);
