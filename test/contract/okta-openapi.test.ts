/**
 * Contract test: real responses of the Okta stand-in, checked against Okta's own OpenAPI spec
 * (the response schema each operation declares, `$ref`s into `components` resolved by ajv).
 *
 * Okta's schemas declare almost nothing `required` and allow extra properties, so on their own
 * they would pass an empty object. Each check therefore adds what a client relies on: the fields
 * that must be present, and no top-level property the spec does not declare
 * (`unevaluatedProperties: false`, which sees through `allOf` / `$ref`). A renamed, dropped or
 * mistyped field, or a status outside the spec's enum, fails here.
 *
 * The spec is read from OKTA_OPENAPI_SPEC, defaulting to the copy in test/fixtures (Okta's published
 * management API spec).
 */
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import Ajv2019 from 'ajv/dist/2019.js';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOktaStandIn, type OktaStandIn } from '#local/standins/okta';

const SPEC_PATH = process.env.OKTA_OPENAPI_SPEC ?? fileURLToPath(new URL('../fixtures/okta-management-openapi.yaml', import.meta.url));
const SPEC_ID = 'okta-management';

type Schema = Record<string, unknown>;
interface Spec {
  paths: Record<string, Record<string, { responses: Record<string, Schema> }>>;
  components: { schemas: Record<string, Schema>; responses: Record<string, Schema>; examples: Record<string, { value?: unknown }> };
}

let spec: Spec;
let ajv: InstanceType<typeof Ajv2019>;
let okta: OktaStandIn;
let token: string;

interface Captured {
  status: number;
  headers: Headers;
  body: unknown;
}
const responses: Record<string, Captured> = {};

/** `#/components/...` pointers, re-rooted on the spec document registered with ajv. */
function rebase(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rebase);
  if (node && typeof node === 'object') {
    return Object.fromEntries(
      Object.entries(node).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? `${SPEC_ID}${v}` : rebase(v)]),
    );
  }
  return node;
}

function deref<T = Schema>(node: Schema): T {
  const ref = node.$ref;
  if (typeof ref !== 'string') return node as T;
  const path = ref.replace(/^#\//, '').split('/');
  let at: unknown = spec;
  for (const p of path) at = (at as Record<string, unknown>)[p];
  return deref(at as Schema) as T;
}

/** The JSON schema an operation declares for a status (following `components/responses` refs). */
function declared(path: string, method: string, status: number): Schema {
  const op = spec.paths[path]?.[method];
  if (!op) throw new Error(`the spec has no ${method.toUpperCase()} ${path}`);
  const response = op.responses[String(status)];
  if (!response) throw new Error(`the spec declares no ${status} for ${method.toUpperCase()} ${path}`);
  const content = deref<{ content?: Record<string, { schema?: Schema }> }>(response).content;
  const schema = content?.['application/json']?.schema;
  if (!schema) throw new Error(`no application/json schema for ${status} of ${method.toUpperCase()} ${path}`);
  return schema;
}

interface Strictness {
  required: string[];
  nested?: Record<string, string[]>;
}

/** The declared schema plus what a client relies on (see the file comment). Arrays: per item. */
function strict(schema: Schema, s: Strictness): Schema {
  if (schema.type === 'array') return { type: 'array', items: strict(schema.items as Schema, s) };
  return {
    allOf: [rebase(schema)],
    required: s.required,
    properties: Object.fromEntries(Object.entries(s.nested ?? {}).map(([k, req]) => [k, { type: 'object', required: req }])),
    unevaluatedProperties: false,
  };
}

function check(schema: Schema, body: unknown): string[] {
  const validate = ajv.compile(schema);
  if (validate(body)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
}

const USER: Strictness = {
  required: ['id', 'status', 'created', 'activated', 'statusChanged', 'lastUpdated', 'profile', 'credentials', '_links'],
  nested: { profile: ['login', 'email', 'firstName', 'lastName'], _links: ['self'] },
};
const GROUP: Strictness = {
  required: ['id', 'type', 'created', 'lastUpdated', 'lastMembershipUpdated', 'objectClass', 'profile', '_links'],
  nested: { profile: ['name'] },
};
const APP_LINK: Strictness = { required: ['id', 'label', 'linkUrl', 'appName', 'appInstanceId', 'appAssignmentId', 'hidden', 'sortOrder'] };
const APP: Strictness = { required: ['id', 'name', 'label', 'status', 'signOnMode', 'created', 'lastUpdated', 'settings', '_links'] };
const APP_USER: Strictness = { required: ['id', 'scope', 'status', 'created', 'lastUpdated', 'syncState', '_links'] };
const LOG_EVENT: Strictness = {
  required: ['uuid', 'published', 'eventType', 'version', 'severity', 'displayMessage', 'actor', 'client', 'outcome', 'target', 'transaction'],
  nested: { actor: ['id', 'type'], outcome: ['result'] },
};
const ERROR: Strictness = { required: ['errorCode', 'errorSummary', 'errorLink', 'errorId', 'errorCauses'] };

async function capture(name: string, path: string, init: RequestInit & { auth?: string } = {}): Promise<Captured> {
  const res = await fetch(`${okta.url}${path}`, {
    ...init,
    headers: { Authorization: init.auth ?? `SSWS ${token}`, Accept: 'application/json', 'Content-Type': 'application/json' },
  });
  const text = await res.text();
  const captured = { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as unknown) : undefined };
  responses[name] = captured;
  return captured;
}

beforeAll(async () => {
  if (!existsSync(SPEC_PATH)) throw new Error(`Okta OpenAPI spec not found at ${SPEC_PATH} (set OKTA_OPENAPI_SPEC)`);
  spec = parse(readFileSync(SPEC_PATH, 'utf8'), { maxAliasCount: -1 }) as Spec;
  ajv = new Ajv2019({ strict: false, allErrors: true, validateSchema: false, logger: false });
  addFormats(ajv);
  for (const f of ['int32', 'int64', 'float', 'double', 'byte', 'binary', 'password']) ajv.addFormat(f, true);
  // Only the schemas: examples hold `$id`-like values ajv would try to resolve as URIs.
  ajv.addSchema({ $id: SPEC_ID, components: { schemas: spec.components.schemas } });

  token = randomBytes(24).toString('base64url');
  okta = await startOktaStandIn({ token });
  const ids = okta.seed({
    groups: [{ name: 'Engineering', description: 'Engineers' }, { name: 'AD Staff', type: 'APP_GROUP' }],
    apps: [{ label: 'Slack' }, { label: 'Jira' }],
    users: [
      {
        profile: { login: 'ada@example.com', firstName: 'Ada', lastName: 'Lovelace', employeeNumber: 'E1', department: 'Engineering' },
        groups: ['Engineering', 'AD Staff'],
        apps: ['Slack'],
      },
      { status: 'STAGED', profile: { login: 'staged@example.com', firstName: 'Sam', lastName: 'Staged' } },
      { status: 'DEPROVISIONED', profile: { login: 'gone@example.com', firstName: 'Gil', lastName: 'Gone' } },
    ],
  });
  const ada = ids.users['ada@example.com']!;
  const staged = ids.users['staged@example.com']!;

  await capture('listUsers', `/api/v1/users?search=${encodeURIComponent('profile.employeeNumber eq "E1" or status eq "DEPROVISIONED"')}&limit=200`);
  await capture('getUser', `/api/v1/users/${ada}`);
  await capture('createUser', '/api/v1/users?activate=false', {
    method: 'POST',
    body: JSON.stringify({ profile: { login: 'new@example.com', email: 'new@example.com', firstName: 'New', lastName: 'Hire', employeeNumber: 'E9' } }),
  });
  const created = (responses.createUser!.body as { id: string }).id;
  await capture('activateUser', `/api/v1/users/${created}/lifecycle/activate?sendEmail=false`, { method: 'POST' });
  await capture('listUserGroups', `/api/v1/users/${ada}/groups`);
  await capture('listGroups', `/api/v1/groups?search=${encodeURIComponent('profile.name eq "Engineering"')}`);
  await capture('listAppLinks', `/api/v1/users/${ada}/appLinks`);
  await capture('listApplications', '/api/v1/apps?q=J');
  const jira = okta.state.appByLabel('Jira')!.id;
  await capture('assignUserToApplication', `/api/v1/apps/${jira}/users`, { method: 'POST', body: JSON.stringify({ id: ada, scope: 'USER' }) });
  await capture('revokeUserSessions', `/api/v1/users/${ada}/sessions?oauthTokens=true`, { method: 'DELETE' });
  await capture('deactivateUser', `/api/v1/users/${ada}/lifecycle/deactivate`, { method: 'POST' });
  await capture(
    'listLogEvents',
    `/api/v1/logs?since=${encodeURIComponent(new Date(Date.now() - 60_000).toISOString())}&until=${encodeURIComponent(new Date(Date.now() + 1000).toISOString())}`,
  );
  await capture('error401', '/api/v1/users', { auth: 'SSWS wrong' });
  await capture('error404', '/api/v1/users/00uNoSuchUser0000000');
  await capture('error400', `/api/v1/users/${staged}/lifecycle/suspend`, { method: 'POST' });
  await capture('error403', `/api/v1/users/${created}/lifecycle/activate?sendEmail=false`, { method: 'POST' });
  okta.controls.rateLimit = { limit: 1, windowMs: 60_000 };
  await capture('spend', `/api/v1/users/${ada}`);
  await capture('error429', `/api/v1/users/${ada}`);
}, 60_000);

afterAll(async () => {
  await okta?.close();
});

describe('Okta stand-in responses match the Okta Management OpenAPI spec', () => {
  it.each([
    ['listUsers', '/api/v1/users', 'get', USER, 2],
    ['getUser', '/api/v1/users/{userId}', 'get', USER, 1],
    ['createUser', '/api/v1/users', 'post', USER, 1],
    ['listUserGroups', '/api/v1/users/{userId}/groups', 'get', GROUP, 3],
    ['listGroups', '/api/v1/groups', 'get', GROUP, 1],
    ['listAppLinks', '/api/v1/users/{userId}/appLinks', 'get', APP_LINK, 1],
    ['assignUserToApplication', '/api/v1/apps/{appId}/users', 'post', APP_USER, 1],
    ['listLogEvents', '/api/v1/logs', 'get', LOG_EVENT, 6],
  ] as const)('%s: %s %s', (name, path, method, strictness, atLeast) => {
    const r = responses[name]!;
    expect(r.status).toBe(200);
    if (Array.isArray(r.body)) expect(r.body.length).toBeGreaterThanOrEqual(atLeast);
    expect(check(strict(declared(path, method, 200), strictness), r.body)).toEqual([]);
  });

  it('activateUser (sendEmail=false) answers a UserActivationToken', () => {
    const r = responses.activateUser!;
    expect(r.status).toBe(200);
    expect(check(strict(declared('/api/v1/users/{userId}/lifecycle/activate', 'post', 200), { required: ['activationToken', 'activationUrl'] }), r.body)).toEqual([]);
  });

  it('listApplications items match the schema their signOnMode discriminates to', () => {
    const r = responses.listApplications!;
    expect(r.status).toBe(200);
    const items = r.body as Array<{ signOnMode: string }>;
    expect(items.length).toBeGreaterThanOrEqual(1);
    const application = spec.components.schemas.Application as { discriminator: { mapping: Record<string, string> } };
    expect(declared('/api/v1/apps', 'get', 200)).toMatchObject({ type: 'array', items: { $ref: '#/components/schemas/Application' } });
    for (const item of items) {
      const target = application.discriminator.mapping[item.signOnMode];
      expect(target, `signOnMode ${item.signOnMode} is not in the spec's mapping`).toBeDefined();
      expect(check(strict({ $ref: target }, APP), item)).toEqual([]);
    }
  });

  it('answers 204 with no body where the spec says No Content, and 200 for lifecycle calls', () => {
    expect(Object.keys(deref(spec.paths['/api/v1/users/{userId}/sessions']!.delete!.responses['204']!))).toContain('description');
    expect(responses.revokeUserSessions).toMatchObject({ status: 204, body: undefined });
    expect(responses.deactivateUser).toMatchObject({ status: 200, body: undefined });
  });

  it.each([
    ['error401', 401, 'ErrorInvalidToken401', undefined],
    ['error404', 404, 'ErrorResourceNotFound404', ['/api/v1/users/{userId}', 'get']],
    ['error400', 400, 'ErrorMissingRequiredParameter400', ['/api/v1/users/{userId}/lifecycle/suspend', 'post']],
    ['error403', 403, 'ErrorAccessDenied403', ['/api/v1/users/{userId}/lifecycle/activate', 'post']],
    ['error429', 429, 'ErrorTooManyRequests429', ['/api/v1/users/{userId}', 'get']],
  ] as const)('%s is an Okta Error body (%i)', (name, status, component, operation) => {
    const r = responses[name]!;
    expect(r.status).toBe(status);
    const schema = operation ? declared(operation[0], operation[1], status) : deref<{ content: Record<string, { schema: Schema }> }>(spec.components.responses[component]!).content['application/json']!.schema;
    expect(check(strict(schema, ERROR), r.body)).toEqual([]);
    const body = r.body as { errorCode: string; errorLink: string; errorCauses: unknown[] };
    expect(body.errorLink).toBe(body.errorCode);
    expect(body.errorCode).toMatch(/^E\d{7}$/);
  });

  it('uses the error codes and summaries of the spec examples where they are fixed', () => {
    const example = (name: string) => spec.components.examples[name]!.value as { errorCode: string; errorSummary: string };
    expect(responses.error401!.body).toMatchObject({ errorCode: example('ErrorInvalidTokenProvided').errorCode, errorSummary: example('ErrorInvalidTokenProvided').errorSummary });
    expect(responses.error429!.body).toMatchObject({ errorCode: example('ErrorTooManyRequests').errorCode, errorSummary: example('ErrorTooManyRequests').errorSummary });
    expect((responses.error404!.body as { errorCode: string }).errorCode).toBe(example('ErrorResourceNotFound').errorCode);
    expect((responses.error400!.body as { errorCode: string }).errorCode).toBe(example('ErrorApiValidationFailed').errorCode);
  });

  it("sends Okta's request id, rate-limit headers and Date on every response, and Link on lists", () => {
    for (const [name, r] of Object.entries(responses)) {
      expect(r.headers.get('x-okta-request-id'), name).toMatch(/^[\w-]{20,}$/);
      for (const h of ['x-rate-limit-limit', 'x-rate-limit-remaining', 'x-rate-limit-reset']) {
        expect(Number(r.headers.get(h)), `${name} ${h}`).toBeGreaterThanOrEqual(0);
      }
      expect(Number(r.headers.get('x-rate-limit-reset')), name).toBeGreaterThan(Date.now() / 1000 - 120);
      expect(Number.isNaN(Date.parse(r.headers.get('date') ?? '')), name).toBe(false);
    }
    for (const name of ['listUsers', 'listGroups', 'listApplications', 'listLogEvents']) {
      expect(responses[name]!.headers.get('link'), name).toMatch(/<http:\/\/127\.0\.0\.1:\d+\/api\/v1\/[^>]+>; rel="self"/);
    }
    expect(responses.error429!.headers.get('x-rate-limit-remaining')).toBe('0');
  });

  it('fails when a response shape drifts', () => {
    const user = structuredClone((responses.getUser!.body as Record<string, unknown>));
    const schema = strict(declared('/api/v1/users/{userId}', 'get', 200), USER);
    expect(check(schema, user)).toEqual([]);
    const drifted = (mutate: (u: Record<string, any>) => void) => {
      const u = structuredClone(user) as Record<string, any>;
      mutate(u);
      return check(schema, u);
    };
    expect(drifted((u) => delete u.status)).not.toEqual([]);
    expect(drifted((u) => (u.status = 'ENABLED'))).not.toEqual([]);
    expect(drifted((u) => (u.created = 'yesterday'))).not.toEqual([]);
    expect(drifted((u) => (u.accountState = u.status))).not.toEqual([]);
    expect(drifted((u) => ((u.profile.userName = u.profile.login), delete u.profile.login))).not.toEqual([]);
    expect(drifted((u) => (u.profile.email = 'not-an-email'))).not.toEqual([]);
    const event = structuredClone((responses.listLogEvents!.body as unknown[])[0]) as Record<string, any>;
    const eventSchema = strict(declared('/api/v1/logs', 'get', 200), LOG_EVENT);
    expect(check(eventSchema, [event])).toEqual([]);
    event.outcome.result = 'OK';
    expect(check(eventSchema, [event])).not.toEqual([]);
  });
});
