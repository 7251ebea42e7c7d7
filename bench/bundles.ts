/**
 * Lambda bundles: builds every function's entry with the stack's esbuild settings
 * (`lib/bundling.ts`) and reports, per function,
 *  - the bundle size (goal ≤ 1 MiB; source map not counted, the AWS SDK is in the runtime),
 *  - module initialisation: `import()` of the built bundle in a fresh `node` process with a fake
 *    Lambda environment, median of several runs (goal ≤ 150 ms on this machine), wall and CPU
 *    time, next to the time to import an empty module (the machine's floor), and the AWS SDK
 *    packages a bundle still imports at initialisation (none: every client loads on first use),
 *  - the largest inputs of a bundle over the size goal, so the cause is visible.
 * It also checks that minification kept the typed errors' names (Step Functions matches them).
 *
 * Module initialisation is not the whole cold start: what a function loads on first use is paid
 * by its first invocation instead. Two first-use costs are measured for real, in fresh processes:
 *  - the read API's first and second invocation against a local DynamoDB (dynalite): the first
 *    one loads the DynamoDB client, which every function loads on its first ledger call;
 *  - the first and second call of the IdP connector against its stand-in (Okta) — the connector
 *    module and its SDK, built alone with the same settings — which a function pays on the
 *    first invocation that talks to the IdP.
 *
 *   npm run bench -- bundles            (or: npx tsx bench/bundles.ts [--runs 7] [--idp entra]
 *                                        [--aws-sdk bundled|external] [--only read-api,converge])
 */
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { build, type Metafile } from 'esbuild';
import { ENV } from '#aws/config';
import { startDynalite, ensureTable } from '#local/dynalite';
import { startOktaStandIn } from '#local/standins/okta';
import { BUNDLE_EXTERNALS, REPO_ROOT, entryFile, esbuildOptions, type BundleSettings } from '../lib/bundling.ts';
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
/** Compare: `bundled` puts the AWS SDK into every bundle instead of the stack's setting. */
const awsSdk = opt('aws-sdk', BUNDLE_EXTERNALS.includes('@aws-sdk/*') ? 'external' : 'bundled') as 'external' | 'bundled';
const only = opt('only', '').split(',').filter(Boolean);
const withSdkSetting = <T extends { external: string[] }>(o: T): T => ({
  ...o,
  external: awsSdk === 'bundled' ? o.external.filter((e) => !e.startsWith('@aws-sdk/')) : [...new Set([...o.external, '@aws-sdk/*'])],
});
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

/** Runs `script` (an ES module body that prints its figures) in a fresh `node` with the fake Lambda environment. */
function fresh(script: string, env: Record<string, string> = {}): string {
  const r = spawnSync(process.execPath, ['--input-type=module', '--no-warnings', '-e', script], {
    env: { PATH: process.env.PATH ?? '', ...fakeEnv, ...env },
    encoding: 'utf8',
  });
  // A minified bundle's stack is one enormous line: keep the end, where the message is.
  if (r.status !== 0) throw new Error(`fresh process failed: ${r.stderr.slice(-1500)}`);
  return r.stdout;
}

/** `fresh`, without blocking this process (its stand-ins must answer the child). */
async function freshAsync(script: string, env: Record<string, string> = {}): Promise<string> {
  try {
    const r = await promisify(execFile)(process.execPath, ['--input-type=module', '--no-warnings', '-e', script], {
      env: { PATH: process.env.PATH ?? '', ...fakeEnv, ...env },
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    return r.stdout;
  } catch (e) {
    throw new Error(`fresh process failed: ${String((e as { stderr?: string }).stderr ?? e).slice(-1500)}`);
  }
}

/**
 * Wall time and CPU time (user + system, all threads) of importing `file` in a fresh process. On
 * a machine shared with other work the wall time grows with the load; the CPU time much less.
 */
function timedImport(file: string): { wall: number; cpu: number } {
  const [wall, cpu] = fresh(
    `const c = process.cpuUsage(); const t = performance.now(); await import(${JSON.stringify(file)}); const u = process.cpuUsage(c); process.stdout.write([performance.now() - t, (u.user + u.system) / 1000].join(' '));`,
  )
    .split(' ')
    .map(Number);
  return { wall: wall!, cpu: cpu! };
}

/** Median wall and CPU time of `runs` imports. */
function timedImports(file: string): { wall: number; cpu: number } {
  const t = Array.from({ length: runs }, () => timedImport(file));
  return { wall: median(t.map((x) => x.wall)), cpu: median(t.map((x) => x.cpu)) };
}

/** Script lines: `mark()` records wall and CPU time; `report()` prints the differences between marks. */
const MARKS = `
  const marks = [];
  const mark = () => { const u = process.cpuUsage(); marks.push([performance.now(), (u.user + u.system) / 1000]); };
  const report = () => process.stdout.write(marks.slice(1).flatMap((m, i) => [m[0] - marks[i][0], m[1] - marks[i][1]]).join(' '), () => process.exit(0));`;

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
const floor = timedImports(probe('empty', 'export {};\n'));

const rows: Array<{ name: string; kib: number; initMs: number; cpuMs: number; sdk: string[]; top?: string }> = [];
let keptNames = true;
const builtFiles = new Map<string, string>();
for (const name of FUNCTION_NAMES) {
  if (only.length && !only.includes(name)) continue;
  const dir = join(out, name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'index.mjs');
  builtFiles.set(name, file);
  const result = await build(withSdkSetting(esbuildOptions(settings, entryFile(name), file)));
  const size = statSync(file).size;
  const text = readFileSync(file, 'utf8');
  if (name === 'converge' && !/"TargetThrottled"/.test(text)) keptNames = false;
  const init = timedImports(file);
  const sdk = staticExternals(result.metafile!);
  rows.push({ name, kib: size / 1024, initMs: init.wall, cpuMs: init.cpu, sdk, ...(size > SIZE_GOAL ? { top: topInputs(result.metafile!) } : {}) });
}

// ---------------------------------------------------------------------------------------------
// First use: what module initialisation no longer pays is paid by the first invocation.

const creds = () => ({ AWS_ACCESS_KEY_ID: `bench${randomBytes(4).toString('hex')}`, AWS_SECRET_ACCESS_KEY: randomBytes(24).toString('base64url') });
const medians = (samples: number[][]) => samples[0]!.map((_, i) => median(samples.map((s) => s[i]!)));

/** read-api: init, first invocation (loads the DynamoDB client, one query), second invocation (the query alone). */
async function readApiFirstUse(): Promise<number[] | null> {
  const file = builtFiles.get('read-api');
  if (!file) return null;
  const dynamo = await startDynalite();
  try {
    await ensureTable(dynamo.client, fakeEnv[ENV.tableName]!);
    const event = { httpMethod: 'GET', path: '/runs', resource: '/runs', queryStringParameters: { employeeId: 'E1001' }, headers: {}, pathParameters: null, requestContext: { requestId: 'bench' } };
    const script = `${MARKS}
      const event = ${JSON.stringify(event)};
      const context = { functionName: 'bench', awsRequestId: 'bench', getRemainingTimeInMillis: () => 10000 };
      mark();
      const { handler } = await import(${JSON.stringify(file)});
      mark();
      const a = await handler(event, context);
      mark();
      const b = await handler(event, context);
      mark();
      if (a.statusCode !== 200 || b.statusCode !== 200) throw new Error('read-api answered ' + a.statusCode + ' ' + a.body);
      report();`;
    const env = { ...creds(), AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint, AWS_MAX_ATTEMPTS: '1' };
    const samples: number[][] = [];
    for (let i = 0; i < runs; i++) samples.push((await freshAsync(script, env)).split(' ').map(Number));
    return medians(samples);
  } finally {
    await dynamo.close();
  }
}

/** The IdP connector alone: its size, load + first call (SDK evaluated, client built, one read), second call. */
async function idpFirstUse(): Promise<{ kib: number; ms: number[] } | null> {
  if (idpKind !== 'okta') return null;
  const file = join(out, 'okta-connector', 'index.mjs');
  await build(withSdkSetting(esbuildOptions(settings, join(REPO_ROOT, 'lambdas', 'connectors', 'okta.connector.ts'), file)));
  const token = randomBytes(24).toString('base64url');
  const okta = await startOktaStandIn({ token });
  try {
    const script = `${MARKS}
      mark();
      const { createOktaConnector } = await import(${JSON.stringify(file)});
      const c = createOktaConnector({ name: 'okta', orgUrl: ${JSON.stringify(okta.url)}, token: process.env.BENCH_OKTA_TOKEN });
      const a = await c.findAccounts({ employeeId: 'E1001' });
      mark();
      const b = await c.findAccounts({ employeeId: 'E1002' });
      mark();
      if (a.length || b.length) throw new Error('unexpected accounts');
      report();`;
    const samples: number[][] = [];
    for (let i = 0; i < runs; i++) samples.push((await freshAsync(script, { BENCH_OKTA_TOKEN: token })).split(' ').map(Number));
    const ms = medians(samples);
    return { kib: statSync(file).size / 1024, ms };
  } finally {
    await okta.close();
  }
}

const readApi = await readApiFirstUse();
const idp = await idpFirstUse();

const pad = (s: string, n: number) => s.padEnd(n);
console.log(`Lambda bundles (esbuild ${settings.idpKind} build, AWS SDK ${awsSdk}, ${runs} init runs each, median; Node ${process.version} on this machine)`);
console.log(`importing an empty module: ${floor.wall.toFixed(0)} ms, CPU ${floor.cpu.toFixed(0)} ms (this machine's floor, now)`);
console.log(`${pad('function', 24)} ${pad('bundle KiB', 11)} ${pad('init ms', 8)} ${pad('CPU ms', 7)} goals (≤ 1024 KiB, ≤ ${INIT_GOAL_MS} ms)`);
for (const r of rows) {
  const ok = `${r.kib <= 1024 ? 'size ok' : 'SIZE OVER'}, ${r.initMs <= INIT_GOAL_MS ? 'init ok' : 'INIT OVER'}`;
  console.log(`${pad(r.name, 24)} ${pad(r.kib.toFixed(0), 11)} ${pad(r.initMs.toFixed(0), 8)} ${pad(r.cpuMs.toFixed(0), 7)} ${ok}`);
  if (r.top) console.log(`${' '.repeat(25)}largest inputs: ${r.top}`);
}
console.log(`AWS SDK packages loaded at initialisation: ${[...new Set(rows.flatMap((r) => r.sdk))].join(', ') || 'none'} (all others on first use)`);
if (readApi) {
  const [iw, ic, fw, fc, sw, sc] = readApi.map((x) => x.toFixed(0));
  console.log(`read-api against dynalite: init ${iw} ms (CPU ${ic}), first invocation ${fw} ms (CPU ${fc}; loads the DynamoDB client), second ${sw} ms (CPU ${sc})`);
}
if (idp) {
  const [fw, fc, sw, sc] = idp.ms.map((x) => x.toFixed(0));
  console.log(`Okta connector module + SDK alone: ${idp.kib.toFixed(0)} KiB; load + first call ${fw} ms (CPU ${fc}), second call ${sw} ms (CPU ${sc}) (against the stand-in)`);
}
console.log(`typed error names kept by minification: ${keptNames ? 'yes' : 'NO'}`);
if (!keptNames) process.exitCode = 1;
