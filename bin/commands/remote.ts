/**
 * Where the runtime commands send their requests: the local runtime (default,
 * `http://127.0.0.1:8787`), another runtime at `JML_URL`, or a deployed stack.
 *
 *   jml runs --employee E1001 --stack Jml [--region eu-west-1] [--profile ops]
 *   JML_STACK=Jml AWS_PROFILE=ops jml exceptions
 *
 * A stack: its API base URL comes from the stack's CloudFormation outputs (DescribeStacks,
 * `ApiUrl`), credentials from the standard AWS chain (`fromNodeProviderChain`: env, SSO, shared
 * config and credentials files, process, web identity, container / instance roles), and every
 * request to an IAM-authorised route (GET /runs, /runs/{runId}, /exceptions, POST
 * /exception-grants, GET /exception-grants/{grantId}, POST /exceptions/{exceptionId}/resolve) is signed with SigV4 for `execute-api`.
 * Precedence: `--stack`, then `JML_STACK`, then `JML_URL`, then the local default.
 *
 * `reconcile` and `kpis` go past the API, with the same credentials and region: Lambda, Step
 * Functions and CloudWatch (stack-ops.ts).
 *
 * Errors name the problem: stack not found (with region), output missing, no credentials, a 403
 * from IAM (which identity, which route), the API unreachable. Secrets never appear in them.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, HttpRequest, SourceData } from '@smithy/types';
import { UsageError } from './io.ts';

export interface ConnectionOptions {
  stack?: string;
  region?: string;
  profile?: string;
}

export interface HttpResult {
  status: number;
  text: string;
  json: any;
  headers: Headers;
  bytes: Uint8Array;
}

export interface RequestInit {
  body?: string;
  headers?: Record<string, string>;
}

export interface StackInfo {
  name: string;
  region: string;
  profile?: string;
  status: string;
  outputs: Record<string, string>;
  credentials: AwsCredentialIdentityProvider;
  /** Who the requests are signed as, for messages: an ARN when known, else the masked key id. */
  identity: string;
}

export interface Endpoint {
  kind: 'local' | 'stack';
  /** Base URL without a trailing slash (`https://…/v1` for a stack). */
  baseUrl: string;
  /** For messages: "the local runtime at …" / "stack Jml (eu-west-1)". */
  label: string;
  stack?: StackInfo;
  request(method: string, path: string, init?: RequestInit): Promise<HttpResult>;
}

/** The runtime is not reachable (not started, wrong URL, network down). */
export class RuntimeUnavailable extends Error {
  override name = 'RuntimeUnavailable';
}

/** Resolving or calling a deployed stack failed (stack, outputs, credentials, IAM). */
export class StackError extends Error {
  override name = 'StackError';
}

/** The IAM-authorised routes of the deployed API (lib/api.ts), as method + path pattern. */
const IAM_ROUTES: Array<[string, RegExp]> = [
  ['GET', /^\/runs$/],
  ['GET', /^\/runs\/[^/]+$/],
  ['GET', /^\/exceptions$/],
  ['POST', /^\/exceptions\/[^/]+\/resolve$/],
  ['POST', /^\/exception-grants$/],
  ['GET', /^\/exception-grants\/[^/]+$/],
];

export function isIamRoute(method: string, path: string): boolean {
  const p = path.split('?')[0]!;
  return IAM_ROUTES.some(([m, re]) => m === method.toUpperCase() && re.test(p));
}

/** The route as API Gateway names it in a policy: `GET /runs/{runId}`. */
export function routeName(method: string, path: string): string {
  const p = path.split('?')[0]!
    .replace(/^\/runs\/[^/]+$/, '/runs/{runId}')
    .replace(/^\/exception-grants\/[^/]+$/, '/exception-grants/{grantId}')
    .replace(/^\/exceptions\/[^/]+\/resolve$/, '/exceptions/{exceptionId}/resolve');
  return `${method.toUpperCase()} ${p}`;
}

let options: ConnectionOptions = {};
let resolved: Promise<Endpoint> | undefined;

/** Set by `main` from `--stack`, `--region`, `--profile` (before any command runs). */
export function setConnection(next: ConnectionOptions): void {
  options = next;
  resolved = undefined;
}

/**
 * Takes the connection options out of the arguments wherever they are (`--stack X`,
 * `--stack=X`, same for `--region`, `--profile`), so each command parses only its own.
 */
export function takeConnectionOptions(argv: string[]): { argv: string[]; connection: ConnectionOptions } {
  const rest: string[] = [];
  const connection: ConnectionOptions = {};
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    const m = /^--(stack|region|profile)(?:=(.*))?$/.exec(arg);
    if (!m) {
      rest.push(arg);
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined || value === '' || (m[2] === undefined && value.startsWith('--'))) {
      throw new UsageError(`--${m[1]} needs a value, e.g. --${m[1]} ${m[1] === 'stack' ? 'Jml' : m[1] === 'region' ? 'eu-west-1' : 'ops'}`);
    }
    connection[m[1] as keyof ConnectionOptions] = value;
  }
  return { argv: rest, connection };
}

const stackName = (): string | undefined => options.stack || process.env.JML_STACK || undefined;

/** Whether the commands talk to a deployed stack (without resolving it). */
export function targetsStack(): boolean {
  return !!stackName();
}

export function localBaseUrl(): string {
  return (process.env.JML_URL ?? 'http://127.0.0.1:8787').replace(/\/+$/, '');
}

/** The endpoint for this invocation (a stack is resolved once). */
export function endpoint(): Promise<Endpoint> {
  resolved ??= stackName() ? resolveStack({ ...options, stack: stackName()! }) : Promise.resolve(localEndpoint());
  return resolved;
}

/**
 * Refuses a command that only makes sense against the local runtime, saying why.
 * No network call: decided from the options alone.
 */
export function requireLocal(command: string, why: string): void {
  if (!targetsStack()) return;
  throw new UsageError(`\`jml ${command}\` works against the local runtime only, not a deployed stack (${stackName()}): ${why}`);
}

// ---- local ------------------------------------------------------------------------------------

function localEndpoint(): Endpoint {
  const baseUrl = localBaseUrl();
  return {
    kind: 'local',
    baseUrl,
    label: `the jml runtime at ${baseUrl}`,
    async request(method, path, init = {}) {
      let res: Response;
      try {
        res = await fetch(`${baseUrl}${path}`, { method, ...init, redirect: 'manual' });
      } catch (e) {
        throw new RuntimeUnavailable(`no jml runtime answers at ${baseUrl} (${causeOf(e)}) — start one with \`npm run local\`, set JML_URL, or use --stack <name> for a deployed stack`);
      }
      return read(res);
    },
  };
}

async function read(res: Response): Promise<HttpResult> {
  const bytes = new Uint8Array(await res.arrayBuffer());
  const text = Buffer.from(bytes).toString('utf8');
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json: json as any, headers: res.headers, bytes };
}

export function causeOf(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (e as Error).message;
}

// ---- stack ------------------------------------------------------------------------------------

/** SHA-256 and HMAC-SHA-256 for SigV4, from node:crypto. */
class Sha256 {
  private hash: Hash | Hmac;
  private readonly secret?: Uint8Array | string;
  constructor(secret?: SourceData) {
    this.secret = secret === undefined ? undefined : bytesOf(secret);
    this.hash = this.secret ? createHmac('sha256', this.secret) : createHash('sha256');
  }
  update(data: SourceData): void {
    this.hash.update(bytesOf(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.secret ? createHmac('sha256', this.secret) : createHash('sha256');
  }
}

function bytesOf(data: SourceData): Uint8Array | string {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

const mask = (keyId: string) => `access key …${keyId.slice(-4)}`;

function describeCredentials(creds: AwsCredentialIdentity, profile?: string): string {
  const who = creds.accountId ? `account ${creds.accountId}, ${mask(creds.accessKeyId)}` : mask(creds.accessKeyId);
  return profile ? `profile ${profile}, ${who}` : who;
}

async function resolveStack(o: ConnectionOptions & { stack: string }): Promise<Endpoint> {
  // Loaded only for a stack, so commands against the local runtime start quickly.
  const [{ CloudFormationClient, DescribeStacksCommand }, { fromNodeProviderChain }, { SignatureV4 }] = await Promise.all([
    import('@aws-sdk/client-cloudformation'),
    import('@aws-sdk/credential-providers'),
    import('@smithy/signature-v4'),
  ]);
  const profile = o.profile ?? process.env.AWS_PROFILE;
  const provider = fromNodeProviderChain(profile ? { profile } : {});
  let creds: AwsCredentialIdentity;
  try {
    creds = await provider();
  } catch (e) {
    throw new StackError(
      `no AWS credentials for stack ${o.stack}${profile ? ` (profile ${profile})` : ''}: ${firstLine((e as Error).message)} — ` +
        'run `aws sso login`, pass --profile <name> (or set AWS_PROFILE), or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY',
    );
  }
  const client = new CloudFormationClient({ ...(o.region ? { region: o.region } : {}), ...(profile ? { profile } : {}), credentials: provider });
  let region: string;
  try {
    region = await client.config.region();
  } catch {
    region = '';
  }
  if (!region) throw new StackError(`no AWS region for stack ${o.stack}: pass --region <region> or set AWS_REGION${profile ? ` (or region in profile ${profile})` : ''}`);
  const identity = describeCredentials(creds, profile);
  let stack;
  try {
    const out = await client.send(new DescribeStacksCommand({ StackName: o.stack }));
    stack = out.Stacks?.[0];
  } catch (e) {
    const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    if (err.name === 'ValidationError' && /does not exist/.test(err.message ?? '')) {
      throw new StackError(`stack ${o.stack} not found in ${region} (as ${identity}) — check the name (config/deploy.*.json stackName) and --region`);
    }
    if (err.name === 'AccessDenied' || err.name === 'AccessDeniedException' || err.$metadata?.httpStatusCode === 403) {
      throw new StackError(`${identity} may not read stack ${o.stack} in ${region}: ${firstLine(err.message ?? '')} — it needs cloudformation:DescribeStacks (docs/deploy.md, "Operating a deployed stack")`);
    }
    if (/ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|socket|network/i.test(`${err.name} ${err.message} ${causeOf(e)}`)) {
      throw new StackError(`cannot reach CloudFormation in ${region} to look up stack ${o.stack}: ${firstLine(err.message ?? causeOf(e))}`);
    }
    throw new StackError(`looking up stack ${o.stack} in ${region} failed: ${err.name ?? 'Error'}: ${firstLine(err.message ?? '')}`);
  }
  if (!stack) throw new StackError(`stack ${o.stack} not found in ${region} (as ${identity})`);
  const outputs = Object.fromEntries((stack.Outputs ?? []).filter((x) => x.OutputKey && x.OutputValue).map((x) => [x.OutputKey!, x.OutputValue!]));
  const status = stack.StackStatus ?? 'UNKNOWN';
  const apiUrl = outputs.ApiUrl;
  if (!apiUrl) {
    throw new StackError(
      `stack ${o.stack} (${region}, ${status}) has no ApiUrl output — is it a jml stack (lib/jml-stack.ts) and fully deployed?` +
        ` Outputs: ${Object.keys(outputs).join(', ') || 'none'}`,
    );
  }
  let base: URL;
  try {
    base = new URL(apiUrl);
  } catch {
    throw new StackError(`stack ${o.stack}: output ApiUrl is not a URL: ${apiUrl.slice(0, 200)}`);
  }
  const info: StackInfo = { name: o.stack, region, ...(profile ? { profile } : {}), status, outputs, credentials: provider, identity };
  const signer = new SignatureV4({ service: 'execute-api', region, credentials: provider, sha256: Sha256 });
  const baseUrl = base.href.replace(/\/+$/, '');
  const label = `stack ${o.stack} (${region})`;
  return {
    kind: 'stack',
    baseUrl,
    label,
    stack: info,
    async request(method, path, init = {}) {
      if (path.startsWith('/local/')) throw new UsageError(`${path} exists on the local runtime only; ${label} has no such route`);
      const url = new URL(`${baseUrl}${path}`);
      const headers: Record<string, string> = { ...(init.headers ?? {}) };
      if (isIamRoute(method, path)) {
        const request: HttpRequest = {
          method: method.toUpperCase(),
          protocol: url.protocol,
          hostname: url.hostname,
          ...(url.port ? { port: Number(url.port) } : {}),
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          headers: { ...lowerKeys(headers), host: url.host },
          ...(init.body !== undefined ? { body: init.body } : {}),
        };
        const signed = await signer.sign(request);
        Object.assign(headers, signed.headers);
        delete headers.host; // fetch sends the URL's own, which is what was signed
      }
      let res: Response;
      try {
        res = await fetch(url, { method, headers, ...(init.body !== undefined ? { body: init.body } : {}), redirect: 'manual' });
      } catch (e) {
        throw new RuntimeUnavailable(`cannot reach the API of ${label} at ${baseUrl} (${causeOf(e)})`);
      }
      const result = await read(res);
      if (res.status === 403 && isIamRoute(method, path)) throw forbidden(info, method, path, result);
      return result;
    },
  };
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

/** API Gateway's 403 for an IAM route, as a message naming the identity and the route. */
function forbidden(stack: StackInfo, method: string, path: string, res: HttpResult): StackError {
  const message: string = res.json?.message ?? res.json?.Message ?? res.text.slice(0, 300);
  const arn = /User: (\S+) is not authorized/.exec(message)?.[1];
  const who = arn ? `${arn} (${stack.identity})` : stack.identity;
  const route = routeName(method, path);
  let hint = 'grant execute-api:Invoke on this route (docs/deploy.md, "Operating a deployed stack")';
  if (/signature|security token|expired|credential/i.test(message)) hint = 'the credentials were refused: refresh them (aws sso login) or check the clock';
  else if (/Missing Authentication Token/i.test(message)) hint = `the route does not exist on this API (an older deployment?)`;
  return new StackError(`${stack.name}: ${route} refused (HTTP 403) for ${who}: ${message} — ${hint}`);
}

export function firstLine(s: string): string {
  return s.split('\n')[0]!.slice(0, 300);
}
