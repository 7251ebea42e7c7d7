/**
 * Each Lambda is given exactly the ports its code uses — no binding missing (it would fail in
 * AWS with "this function has no … port"), none to spare (least privilege).
 *
 * Three lists must agree: the ports the function's code reaches (found by bundling its entry —
 * the handler it re-exports and the wiring it installs, tree-shaken — and looking for
 * `deps.<port>` / `app.<port>` accesses in the use cases), the `wire…` functions its entry file
 * passes to `installAwsDeps`, and its spec in `lib/functions.ts` (which the stack binds). The
 * composition root and the adapters never name a port that way, so what is found is what the
 * use cases the function can run will ask for.
 */
import { existsSync, readFileSync } from 'node:fs';
import { build, type Plugin } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, entryFile } from '../../lib/bundling.ts';
import { FUNCTIONS, FUNCTION_NAMES, type FunctionName } from '../../lib/functions.ts';

const PORTS = ['secrets', 'queue', 'workflows', 'mailer', 'scheduler', 'evidence', 'connectors', 'ticketing'] as const;
/** AppDeps properties → the port that provides them (`callbacks` comes with the workflows wiring). */
const PROPERTY_PORT: Record<string, (typeof PORTS)[number]> = {
  secrets: 'secrets',
  queue: 'queue',
  workflows: 'workflows',
  callbacks: 'workflows',
  mailer: 'mailer',
  scheduler: 'scheduler',
  evidence: 'evidence',
  connectors: 'connectors',
  ticketing: 'ticketing',
};

/** The `export … from …` lines of an entry: the handler it re-exports. */
function reexports(source: string): string {
  return source
    .split('\n')
    .filter((l) => /^export \{[^}]+\} from '[^']+';$/.test(l))
    .join('\n');
}

/** Ports wired in the entry: the keys of `ports: { … }` given to installAwsDeps. */
function wiredPorts(source: string): string[] {
  const m = /installAwsDeps\(\{\s*policyDocument(?:,\s*ports:\s*\{([^}]*)\})?\s*\}\)/.exec(source);
  if (!m) throw new Error('entry does not call installAwsDeps({ policyDocument, ports })');
  return (m[1] ?? '')
    .split(',')
    .map((p) => p.split(':')[0]!.trim())
    .filter(Boolean)
    .sort();
}

/**
 * Handler modules build every handler at module level (`export const plan = createPlanHandler(…)`);
 * esbuild keeps such calls (they might have side effects) and the analysis would see the union
 * of the module's handlers. The analysis marks those calls pure, so only what the re-exported
 * handler reaches is left.
 */
const pureHandlers: Plugin = {
  name: 'pure-handler-factories',
  setup(b) {
    b.onLoad({ filter: /lambdas\/(handlers|aws)\/[^/]+\.ts$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replace(/^(export const \w+ = )(create\w+Handler\()/gm, '$1/* @__PURE__ */ $2'),
      loader: 'ts',
    }));
  },
};

async function reach(name: FunctionName): Promise<{ ports: string[]; secrets: string[] }> {
  const out = await build({
    plugins: [pureHandlers],
    entryPoints: [entryFile(name)],
    bundle: true,
    write: false,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    treeShaking: true,
    logLevel: 'silent',
    absWorkingDir: REPO_ROOT,
  });
  const code = out.outputFiles[0]!.text;
  const found = new Set<string>();
  for (const m of code.matchAll(/\b(?:deps|app)\??\.(\w+)\b/g)) {
    const port = PROPERTY_PORT[m[1]!];
    if (port) found.add(port);
  }
  for (const m of code.matchAll(/\{([^{}=]*)\}\s*=\s*(?:deps|app)\b/g)) {
    for (const key of m[1]!.split(',').map((k) => k.split(':')[0]!.trim())) if (PROPERTY_PORT[key]) found.add(PROPERTY_PORT[key]!);
  }
  const secrets = new Set([...code.matchAll(/\bsecrets\.get\(\s*["'](\w+)["']/g)].map((m) => m[1]!));
  return { ports: [...found].sort(), secrets: [...secrets].sort() };
}
const portsReached = async (name: FunctionName) => (await reach(name)).ports;

describe('Lambda ports', () => {
  it.each(FUNCTION_NAMES)('%s: its entry exists and re-exports a handler', (name) => {
    expect(existsSync(entryFile(name))).toBe(true);
    expect(reexports(readFileSync(entryFile(name), 'utf8'))).toMatch(/\bhandler\b/);
  });

  it('every function: the ports its code reaches = the ports its entry wires = the ports the stack binds', async () => {
    const rows = await Promise.all(
      FUNCTION_NAMES.map(async (name) => ({
        name,
        reached: await portsReached(name),
        wired: wiredPorts(readFileSync(entryFile(name), 'utf8')),
        bound: [...FUNCTIONS[name].ports].sort(),
      })),
    );
    const mismatches = rows
      .filter((r) => r.wired.join() !== r.reached.join() || r.bound.join() !== r.reached.join())
      .map((r) => `${r.name}: code reaches [${r.reached}], entry wires [${r.wired}], stack binds [${r.bound}]`);
    expect(mismatches).toEqual([]);
  });

  it('every function reads exactly the secrets its spec names (the stack grants those only)', async () => {
    const mismatches: string[] = [];
    for (const name of FUNCTION_NAMES) {
      const spec = FUNCTIONS[name];
      const named = ('secrets' in spec ? [...spec.secrets] : []).sort();
      const read = (await reach(name)).secrets;
      if (named.join() !== read.join()) mismatches.push(`${name}: code reads [${read}], spec names [${named}]`);
    }
    expect(mismatches).toEqual([]);
  });

  it('the analysis sees ports: a handler known to use the queue and secrets is found to', async () => {
    expect(await portsReached('hris-webhook')).toEqual(['queue', 'secrets']);
  });
});
