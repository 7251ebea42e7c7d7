/**
 * Lambda bundles: builds every function's entry with the stack's esbuild settings
 * (`lib/bundling.ts`) and reports, per function,
 *  - the bundle size (goal ≤ 1 MiB; source map not counted, the AWS SDK is in the runtime),
 *  - module initialisation: `import()` of the built bundle in a fresh `node` process with a fake
 *    Lambda environment, median of several runs (goal ≤ 150 ms on this machine), and the part of
 *    it spent loading the AWS SDK packages the bundle imports statically (they come from the
 *    Lambda runtime, not the bundle; the others are imported on first use), next to the time to
 *    import an empty module (the machine's floor),
 *  - the largest inputs of a bundle over the size goal, so the cause is visible.
 * It also checks that minification kept the typed errors' names (Step Functions matches them).
 *
 *   npm run bench -- bundles            (or: npx tsx bench/bundles.ts [--runs 7] [--idp entra])
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Metafile } from 'esbuild';
import { ENV } from '#aws/config';
import { REPO_ROOT, entryFile, esbuildOptions, type BundleSettings } from '../lib/bundling.ts';
import { FUNCTION_NAMES } from '../lib/functions.ts';

const SIZE_GOAL = 1024 * 1024;
const INIT_GOAL_MS = 150;

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const runs = Number(opt('runs', '5'));
const idpKind = opt('idp', 'okta') as 'okta' | 'entra';
const settings: BundleSettings = {
  idpKind,
  policyFile: idpKind === 'entra' ? 'config/access-policy.entra.yaml' : 'config/access-policy.yaml',
};

/** A complete, plausible Lambda environment (nothing is called: only module initialisation runs). */
const arn = (svc: string, rest: string) => `arn:aws:${svc}:eu-west-1:123456789012:${rest}`;
const fakeEnv: Record<string, string> = {
  AWS_REGION: 'eu-west-1',
  AWS_LAMBDA_FUNCTION_NAME: 'bench',
  POWERTOOLS_SERVICE_NAME: 'jml',
  POWERTOOLS_METRICS_NAMESPACE: 'jml',
  [ENV.tableName]: 'jml',
  [ENV.publicBaseUrl]: 'https://api.example.test/prod',
  [ENV.eventsQueueUrl]: 'https://sqs.eu-west-1.amazonaws.com/123456789012/jml-events.fifo',
  [ENV.secretArn.linkSigning]: arn('secretsmanager', 'secret:jml/link-signing-AbCdEf'),
};

const out = join(REPO_ROOT, '.bench-out', 'bundles');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function initOnce(file: string): number {
  return timedImport(file);
}

function timedImport(file: string): number {
  const script = `const t = performance.now(); await import(${JSON.stringify(file)}); process.stdout.write(String(performance.now() - t));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '--no-warnings', '-e', script], {
    env: { PATH: process.env.PATH ?? '', ...fakeEnv },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`import of ${file} failed:\n${r.stderr}`);
  return Number(r.stdout);
}

function topInputs(meta: Metafile, n = 4): string {
  const by = new Map<string, number>();
  for (const o of Object.values(meta.outputs)) {
    for (const [path, v] of Object.entries(o.inputs)) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
      const key = m ? m[1]! : path.split('/').slice(0, 2).join('/');
      by.set(key, (by.get(key) ?? 0) + v.bytesInOutput);
    }
  }
  return [...by].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${k} ${(v / 1024).toFixed(0)} KiB`).join(', ');
}

/** The external packages a bundle imports at module initialisation (not the `import()`s). */
function staticExternals(meta: Metafile): string[] {
  const out = Object.values(meta.outputs).find((o) => o.entryPoint)!;
  return [...new Set(out.imports.filter((i) => i.external && i.kind === 'import-statement' && i.path.startsWith('@aws-sdk/')).map((i) => i.path))].sort();
}

const probe = (name: string, source: string) => {
  const file = join(out, `${name}.mjs`);
  writeFileSync(file, source);
  return file;
};
const floorMs = median(Array.from({ length: runs }, () => timedImport(probe('empty', 'export {};\n'))));

const rows: Array<{ name: string; kib: number; initMs: number; sdkMs: number; sdk: string[]; top?: string }> = [];
let keptNames = true;
for (const name of FUNCTION_NAMES) {
  const dir = join(out, name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'index.mjs');
  const result = await build(esbuildOptions(settings, entryFile(name), file));
  const size = statSync(file).size;
  const text = readFileSync(file, 'utf8');
  if (name === 'converge' && !/"TargetThrottled"/.test(text)) keptNames = false;
  const times = Array.from({ length: runs }, () => initOnce(file));
  const sdk = staticExternals(result.metafile!);
  const sdkFile = probe(`${name}-sdk`, sdk.map((p) => `import '${p}';`).join('\n') + '\n');
  const sdkMs = median(Array.from({ length: runs }, () => timedImport(sdkFile)));
  rows.push({ name, kib: size / 1024, initMs: median(times), sdkMs, sdk, ...(size > SIZE_GOAL ? { top: topInputs(result.metafile!) } : {}) });
}

const pad = (s: string, n: number) => s.padEnd(n);
console.log(`Lambda bundles (esbuild ${settings.idpKind} build, ${runs} init runs each, median; Node ${process.version} on this machine)`);
console.log(`importing an empty module: ${floorMs.toFixed(0)} ms (this machine's floor)`);
console.log(`${pad('function', 24)} ${pad('bundle KiB', 11)} ${pad('init ms', 8)} ${pad('of which SDK', 13)} goals (≤ 1024 KiB, ≤ ${INIT_GOAL_MS} ms)`);
for (const r of rows) {
  const ok = `${r.kib <= 1024 ? 'size ok' : 'SIZE OVER'}, ${r.initMs <= INIT_GOAL_MS ? 'init ok' : 'INIT OVER'}`;
  console.log(`${pad(r.name, 24)} ${pad(r.kib.toFixed(0), 11)} ${pad(r.initMs.toFixed(0), 8)} ${pad(r.sdkMs.toFixed(0), 13)} ${ok}`);
  if (r.top) console.log(`${' '.repeat(25)}largest inputs: ${r.top}`);
}
console.log(`SDK packages loaded at initialisation: ${[...new Set(rows.flatMap((r) => r.sdk))].join(', ') || 'none'} (all others on first use)`);
console.log(`typed error names kept by minification: ${keptNames ? 'yes' : 'NO'}`);
if (!keptNames) process.exitCode = 1;
