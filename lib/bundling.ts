/**
 * The esbuild settings of every Lambda bundle — one definition, read by the stack
 * (`JmlFunction` → NodejsFunction `bundling`) and by `bench/bundles.ts` (esbuild's API), so the
 * benchmark measures exactly what ships.
 *
 * - ESM output for the newest Node.js runtime, minified, with source maps (no sources inside).
 * - `keepNames`: typed errors carry their class name as `name` (`TargetThrottled`, …) and the
 *   state machines' Retry/Catch match on it; minification must not rename those classes.
 * - The AWS SDK v3 is left out (`@aws-sdk/*` is in the Lambda runtime): it keeps bundles small.
 * - The access policy is bundled as data (`@jml/policy` → the deployment's policy file, parsed
 *   from YAML into JSON at build time: `policyModuleFile`): a policy change ships as a deploy.
 * - `process.env.JML_IDP_KIND` is a build-time constant: the other IdP's client is dropped.
 * - A `require` for the CommonJS dependencies (the Okta SDK) that load Node built-ins.
 * - Packages resolve by `main` before `module` (esbuild's default for Node): a CommonJS
 *   `require('node-fetch')` must get node-fetch's CommonJS build, the function itself. With
 *   `module` first it got the ES module's namespace, and every call of the bundled Okta SDK failed
 *   with "… is not a function" (`test/cdk/bundles.test.ts` runs the bundled connector). The
 *   order changes no bundle's size.
 * - `whatwg-url` is replaced by Node's `URL` (`lambdas/aws/shims/whatwg-url.ts`): node-fetch 2
 *   requires it but never uses it on Node; it weighed 290 KiB (tr46) in every Okta bundle.
 * - What the Okta SDK's `Http` requires at load for other ways of calling Okta than the
 *   connector's (an SSWS API token, simple JSON requests) is replaced by shims that throw a clear
 *   error if ever called. Each package below is required by nothing else in any function (Okta
 *   or Entra build); `test/cdk/bundles.test.ts` checks that, runs the bundled connector against
 *   the Okta stand-in, and calls each shim through the SDK code that would use it.
 *   - `node-jose`, `njwt`, `rasha`, `eckles` (`lambdas/aws/shims/okta-private-key-auth.ts`):
 *     required by the SDK's `src/dpop.js` and `src/jwt.js`, used only for OAuth with a private
 *     key and DPoP, which `Http` reaches only when the client has an `oauth` (never: SSWS).
 *     ~470 KiB with node-forge and pako.
 *   - `form-data` (`lambdas/aws/shims/form-data.cjs`): used only by `Http.postFormDataFile`
 *     (multipart uploads), which the connector never calls. ~165 KiB with mime-db.
 *   Left in, though unused as well: `lodash` (129 KiB; only the SDK's response cache uses it,
 *   which the connector turns off, but other packages may need it), `uuid` (11 KiB) and
 *   `https-proxy-agent` (used when `HTTPS_PROXY` is set).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePolicyYaml } from '../lambdas/core/policy-yaml.ts';

export const REPO_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

/** esbuild target of the Lambda runtime (`nodejs24.x`); keep in step with `JmlFunction`. */
export const BUNDLE_TARGET = 'node24';

export interface BundleSettings {
  /** The access policy file bundled into the functions (absolute, or relative to the repo root). */
  policyFile: string;
  idpKind: 'okta' | 'entra';
}

export const BUNDLE_EXTERNALS = ['@aws-sdk/*'];
export const BUNDLE_BANNER = "import { createRequire as __jmlCreateRequire } from 'node:module'; const require = __jmlCreateRequire(import.meta.url);";
export const BUNDLE_MAIN_FIELDS = ['main', 'module'];

export function bundleDefines(s: BundleSettings): Record<string, string> {
  return { 'process.env.JML_IDP_KIND': JSON.stringify(s.idpKind) };
}

/** A stand-in module under `lambdas/aws/shims/`. */
const shim = (file: string) => resolve(REPO_ROOT, 'lambdas', 'aws', 'shims', file);

export function bundleAliases(s: BundleSettings): Record<string, string> {
  return {
    '@jml/policy': policyModuleFile(s),
    // node-fetch 2 (Okta SDK) requires it but uses Node's own URL: see the shim.
    'whatwg-url': shim('whatwg-url.ts'),
    // The Okta SDK's private-key OAuth and DPoP, never used with an API token: see the shim.
    'node-jose': shim('okta-private-key-auth.ts'),
    njwt: shim('okta-private-key-auth.ts'),
    rasha: shim('okta-private-key-auth.ts'),
    eckles: shim('okta-private-key-auth.ts'),
    // The Okta SDK's multipart uploads (`Http.postFormDataFile`), never used: see the shim.
    'form-data': shim('form-data.cjs'),
  };
}

/**
 * The policy as the functions import it: its YAML parsed here, at build time, into a JSON file
 * (`.jml-build/policy-<hash>.json`, named by its content), so no bundle carries the `yaml` parser
 * (~117 KiB minified, parsed at every cold start) nor parses YAML when it starts. The function
 * validates and compiles the data as before (`compilePolicy`), so `mappingVersion` is the same.
 * A YAML syntax error fails the build here, naming the line.
 */
export function policyModuleFile(s: Pick<BundleSettings, 'policyFile'>): string {
  const document = parsePolicyYaml(readFileSync(resolve(REPO_ROOT, s.policyFile), 'utf8'));
  const json = `${JSON.stringify(document)}\n`;
  const file = resolve(REPO_ROOT, '.jml-build', `policy-${createHash('sha256').update(json).digest('hex').slice(0, 16)}.json`);
  if (!existsSync(file)) {
    mkdirSync(resolve(REPO_ROOT, '.jml-build'), { recursive: true });
    writeFileSync(file, json);
  }
  return file;
}

/** Entry file of a function (`lambdas/aws/entries/<name>.ts`). */
export function entryFile(name: string): string {
  return resolve(REPO_ROOT, 'lambdas', 'aws', 'entries', `${name}.ts`);
}

/** The same settings as esbuild `BuildOptions` (the benchmark). */
export function esbuildOptions(s: BundleSettings, entry: string, outfile: string) {
  return {
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node' as const,
    format: 'esm' as const,
    target: BUNDLE_TARGET,
    minify: true,
    keepNames: true,
    sourcemap: true,
    sourcesContent: false,
    external: BUNDLE_EXTERNALS,
    mainFields: BUNDLE_MAIN_FIELDS,
    define: bundleDefines(s),
    alias: bundleAliases(s),
    banner: { js: BUNDLE_BANNER },
    tsconfig: resolve(REPO_ROOT, 'tsconfig.json'),
    absWorkingDir: REPO_ROOT,
    logLevel: 'error' as const,
    metafile: true,
  };
}
