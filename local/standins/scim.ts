/**
 * A SCIM 2.0 service provider (RFC 7643 / RFC 7644) standing in for a SaaS app: `/Users`,
 * `/Groups`, `/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`, served on 127.0.0.1 under
 * `/scim/v2`, bearer-token protected.
 *
 * Per-app quirks model the SaaS apps a real connector meets:
 *  - `deleteOnDeactivate`: setting `active: false` deletes the user (the app has no disabled state);
 *  - `putOnly`: PATCH answers 501 and `/ServiceProviderConfig` says `patch.supported: false`.
 *
 * Latency, faults and rate limits come from the shared http-kit controls, so a test drives them
 * the same way for every stand-in. Every response carries an `X-Request-Id`; every request is in
 * `requestLog` (method, path, query, status, request id, parsed body) so tests can count writes.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  SCIM_CONTENT_TYPE,
  SCIM_ENTERPRISE_USER_SCHEMA,
  SCIM_ERROR,
  SCIM_GROUP_SCHEMA,
  SCIM_LIST_RESPONSE,
  SCIM_RESOURCE_TYPE_SCHEMA,
  SCIM_SERVICE_PROVIDER_CONFIG_SCHEMA,
  SCIM_USER_SCHEMA,
  type ScimErrorType,
} from '#connectors/scim-wire';
import {
  applyControls,
  defaultControls,
  listen,
  RateLimiter,
  readBody,
  sendJson,
  type RateLimitConfig,
  type RequestLogEntry,
  type StandInControls,
} from './http-kit.ts';
import { findKey, isObject, matches, parseFilter, parsePath, ScimFilterError, type Filter } from './scim-filter.ts';
import { applyPatch } from './scim-patch.ts';
import {
  checkResource,
  ENTERPRISE_USER_SCHEMA,
  extensionFor,
  filterContext,
  GROUP_RESOURCE,
  GROUP_SCHEMA,
  normalizeResource,
  ScimProblem,
  schemaResource,
  USER_RESOURCE,
  USER_SCHEMA,
  type ResourceSchema,
} from './scim-schema.ts';

type Json = Record<string, unknown>;

export interface ScimQuirks {
  /** The app deletes a user when `active: false` is set. */
  deleteOnDeactivate?: boolean;
  /** The app does not implement PATCH (501); clients must PUT whole resources. */
  putOnly?: boolean;
}

/** A seeded user: any SCIM User attributes, with an optional fixed id. */
export type ScimSeedUser = Json & { id?: string; userName: string };

export interface ScimSeedGroup {
  id?: string;
  displayName: string;
  externalId?: string;
  /** Member user ids or userNames. */
  members?: string[];
}

export interface ScimSeed {
  users?: ScimSeedUser[];
  groups?: ScimSeedGroup[];
}

export interface ScimStandInOptions {
  name: string;
  token: string;
  port?: number;
  seed?: ScimSeed;
  controls?: Partial<StandInControls>;
  quirks?: ScimQuirks;
}

export interface ScimRequestLogEntry extends RequestLogEntry {
  /** Raw query string without `?` ('' when none). */
  query: string;
  requestId: string;
  /** Parsed JSON body of writes (a top-level `password` is redacted). */
  body?: unknown;
}

export interface ScimStandIn {
  /** Base URL, e.g. `http://127.0.0.1:PORT/scim/v2`. */
  url: string;
  name: string;
  token: string;
  controls: StandInControls;
  quirks: Required<ScimQuirks>;
  state: ScimStore;
  requestLog: ScimRequestLogEntry[];
  /** Replaces all users and groups with `seed` (default: the seed given at start). */
  seed(seed?: ScimSeed): void;
  close(): Promise<void>;
}

const MAX_RESULTS = 200;
const DEFAULT_COUNT = 100;
const BASE_PATH = '/scim/v2';

export interface Stored {
  id: string;
  created: string;
  lastModified: string;
  version: number;
  data: Json;
}

/**
 * Everything a `ScimStore` holds, as plain JSON (what `local/standins/persistence.ts` writes so
 * the app's users and groups survive a restart of the local runtime).
 */
export interface ScimStoreSnapshot {
  kind: 'scim';
  version: 1;
  users: Stored[];
  groups: Stored[];
  /** The last `lastModified` handed out (epoch ms), so timestamps keep increasing. */
  clock: number;
}

/** In-memory users and groups, rendered as SCIM resources. Inspectable from tests. */
export class ScimStore {
  readonly users = new Map<string, Stored>();
  readonly groups = new Map<string, Stored>();
  /** Called after every change. Unset by default: persistence is opt-in (`persistence.ts`). */
  onChange?: () => void;
  private clock = 0;

  constructor(private readonly baseUrl: () => string) {}

  /** A monotonic timestamp, so `lastModified` strictly increases with every write. */
  now(): string {
    this.clock = Math.max(Date.now(), this.clock + 1);
    return new Date(this.clock).toISOString();
  }

  clear(): void {
    this.users.clear();
    this.groups.clear();
    this.onChange?.();
  }

  /** Users and groups as plain JSON (copied, so later writes do not change it). */
  snapshot(): ScimStoreSnapshot {
    return structuredClone({ kind: 'scim', version: 1, users: [...this.users.values()], groups: [...this.groups.values()], clock: this.clock } satisfies ScimStoreSnapshot);
  }

  /** Replaces every user and group with a snapshot's. */
  restore(snapshot: ScimStoreSnapshot): void {
    const s = structuredClone(snapshot);
    this.users.clear();
    this.groups.clear();
    for (const u of s.users) this.users.set(u.id, u);
    for (const g of s.groups) this.groups.set(g.id, g);
    this.clock = Math.max(this.clock, s.clock);
  }

  /** Rendered users (as GET returns them). */
  listUsers(): Json[] {
    return [...this.users.values()].map((u) => this.renderUser(u));
  }

  listGroups(): Json[] {
    return [...this.groups.values()].map((g) => this.renderGroup(g));
  }

  /** A rendered user by id or userName (case-insensitive). */
  user(idOrUserName: string): Json | undefined {
    const u = this.users.get(idOrUserName) ?? this.userByName(idOrUserName);
    return u && this.renderUser(u);
  }

  /** A rendered group by id or displayName (case-insensitive). */
  group(idOrName: string): Json | undefined {
    const lower = idOrName.toLowerCase();
    const g = this.groups.get(idOrName) ?? [...this.groups.values()].find((x) => String(x.data.displayName).toLowerCase() === lower);
    return g && this.renderGroup(g);
  }

  userByName(userName: string): Stored | undefined {
    const lower = userName.toLowerCase();
    return [...this.users.values()].find((u) => String(u.data.userName).toLowerCase() === lower);
  }

  insert(map: Map<string, Stored>, data: Json, id: string = randomUUID()): Stored {
    const t = this.now();
    const stored: Stored = { id, created: t, lastModified: t, version: 1, data };
    map.set(id, stored);
    this.onChange?.();
    return stored;
  }

  /** Replaces the stored data; bumps version and lastModified only when something changed. */
  update(stored: Stored, data: Json): boolean {
    if (JSON.stringify(stored.data) === JSON.stringify(data)) return false;
    stored.data = data;
    stored.version += 1;
    stored.lastModified = this.now();
    this.onChange?.();
    return true;
  }

  deleteUser(id: string): boolean {
    if (!this.users.delete(id)) return false;
    for (const g of this.groups.values()) {
      const members = g.data.members;
      if (Array.isArray(members) && members.some((m) => isObject(m) && m.value === id)) {
        const { members: _all, ...rest } = g.data;
        const left = members.filter((m) => !(isObject(m) && m.value === id));
        this.update(g, left.length ? { ...rest, members: left } : rest);
      }
    }
    this.onChange?.();
    return true;
  }

  deleteGroup(id: string): boolean {
    if (!this.groups.delete(id)) return false;
    this.onChange?.();
    return true;
  }

  etag(stored: Stored): string {
    return `W/"${stored.version}"`;
  }

  private meta(resourceType: string, endpoint: string, s: Stored): Json {
    return {
      resourceType,
      created: s.created,
      lastModified: s.lastModified,
      location: `${this.baseUrl()}${endpoint}/${s.id}`,
      version: this.etag(s),
    };
  }

  renderUser(u: Stored): Json {
    const { password: _password, ...data } = u.data;
    const groups = [...this.groups.values()]
      .filter((g) => Array.isArray(g.data.members) && g.data.members.some((m) => isObject(m) && m.value === u.id))
      .map((g) => ({ value: g.id, $ref: `${this.baseUrl()}/Groups/${g.id}`, display: g.data.displayName, type: 'direct' }));
    const ext = data[SCIM_ENTERPRISE_USER_SCHEMA];
    if (isObject(ext) && isObject(ext.manager) && typeof ext.manager.value === 'string') {
      const m = this.users.get(ext.manager.value);
      data[SCIM_ENTERPRISE_USER_SCHEMA] = {
        ...ext,
        manager: {
          ...ext.manager,
          $ref: `${this.baseUrl()}/Users/${ext.manager.value}`,
          ...(m ? { displayName: m.data.displayName ?? m.data.userName } : {}),
        },
      };
    }
    return {
      schemas: [SCIM_USER_SCHEMA, ...(isObject(ext) ? [SCIM_ENTERPRISE_USER_SCHEMA] : [])],
      id: u.id,
      ...data,
      ...(groups.length ? { groups } : {}),
      meta: this.meta('User', '/Users', u),
    };
  }

  renderGroup(g: Stored): Json {
    const members = Array.isArray(g.data.members)
      ? g.data.members.filter(isObject).map((m) => {
          const value = String(m.value);
          const user = this.users.get(value);
          const group = user ? undefined : this.groups.get(value);
          const type = user ? 'User' : group ? 'Group' : (m.type ?? 'User');
          const display = user ? (user.data.displayName ?? user.data.userName) : group?.data.displayName;
          return {
            value,
            $ref: `${this.baseUrl()}/${type === 'Group' ? 'Groups' : 'Users'}/${value}`,
            type,
            ...(display !== undefined ? { display } : {}),
          };
        })
      : undefined;
    return {
      schemas: [SCIM_GROUP_SCHEMA],
      id: g.id,
      ...g.data,
      ...(members && members.length ? { members } : {}),
      meta: this.meta('Group', '/Groups', g),
    };
  }
}

function scimError(status: number, detail: string, scimType?: ScimErrorType): Json {
  return { schemas: [SCIM_ERROR], status: String(status), ...(scimType ? { scimType } : {}), detail };
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1]!.trim());
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

export async function startScimStandIn(options: ScimStandInOptions): Promise<ScimStandIn> {
  const controls: StandInControls = { ...defaultControls(), ...options.controls };
  const quirks: Required<ScimQuirks> = {
    deleteOnDeactivate: options.quirks?.deleteOnDeactivate ?? false,
    putOnly: options.quirks?.putOnly ?? false,
  };
  let baseUrl = '';
  const store = new ScimStore(() => baseUrl);
  const requestLog: ScimRequestLogEntry[] = [];
  let limiter: { config: RateLimitConfig; limiter: RateLimiter } | undefined;
  const userCtx = filterContext(USER_RESOURCE);
  const groupCtx = filterContext(GROUP_RESOURCE);

  function seed(s: ScimSeed = options.seed ?? {}): void {
    store.clear();
    for (const u of s.users ?? []) {
      const { id, ...rest } = u;
      const data = normalizeResource(USER_RESOURCE, rest);
      checkResource(USER_RESOURCE, data);
      store.insert(store.users, data, id);
    }
    for (const g of s.groups ?? []) {
      const members = (g.members ?? []).map((m) => {
        const u = store.users.get(m) ?? store.userByName(m);
        if (!u) throw new Error(`seed group ${g.displayName}: no user ${m}`);
        return { value: u.id };
      });
      store.insert(
        store.groups,
        { displayName: g.displayName, ...(g.externalId ? { externalId: g.externalId } : {}), ...(members.length ? { members } : {}) },
        g.id,
      );
    }
  }
  seed();

  function serviceProviderConfig(): Json {
    return {
      schemas: [SCIM_SERVICE_PROVIDER_CONFIG_SCHEMA],
      documentationUri: 'https://datatracker.ietf.org/doc/html/rfc7644',
      patch: { supported: !quirks.putOnly },
      bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
      filter: { supported: true, maxResults: MAX_RESULTS },
      changePassword: { supported: false },
      sort: { supported: false },
      etag: { supported: true },
      authenticationSchemes: [
        {
          type: 'oauthbearertoken',
          name: 'OAuth Bearer Token',
          description: 'Authentication scheme using the OAuth Bearer Token Standard',
          specUri: 'https://www.rfc-editor.org/info/rfc6750',
          primary: true,
        },
      ],
      meta: { resourceType: 'ServiceProviderConfig', location: `${baseUrl}/ServiceProviderConfig` },
    };
  }

  function resourceType(rs: ResourceSchema): Json {
    return {
      schemas: [SCIM_RESOURCE_TYPE_SCHEMA],
      id: rs.name,
      name: rs.name,
      endpoint: rs.endpoint,
      description: rs.core.description,
      schema: rs.core.id,
      schemaExtensions: rs.extensions.map((e) => ({ schema: e.id, required: false })),
      meta: { resourceType: 'ResourceType', location: `${baseUrl}/ResourceTypes/${rs.name}` },
    };
  }

  function listResponse(resources: Json[], startIndex = 1, total = resources.length): Json {
    return { schemas: [SCIM_LIST_RESPONSE], totalResults: total, startIndex, itemsPerPage: resources.length, Resources: resources };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    res.setHeader('X-Request-Id', requestId);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = (req.method ?? 'GET').toUpperCase();
    const entry: ScimRequestLogEntry = { method, path: url.pathname, query: url.search.slice(1), status: 0, at: Date.now(), requestId };
    requestLog.push(entry);

    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      entry.status = status;
      if (res.headersSent || res.destroyed) return;
      sendJson(res, status, body, headers, SCIM_CONTENT_TYPE);
    };
    const fail = (status: number, detail: string, scimType?: ScimErrorType, headers: Record<string, string> = {}) =>
      send(status, scimError(status, detail, scimType), headers);

    const proceed = await applyControls(controls, req, res, url.pathname, {
      error: (_r, status) => fail(status, STATUS_CODES[status] ?? 'error'),
      throttle: (_r, seconds) => fail(429, 'too many requests', undefined, { 'Retry-After': String(seconds) }),
    });
    if (!proceed) return;

    if (controls.rateLimit) {
      if (!limiter || limiter.config !== controls.rateLimit) {
        limiter = { config: controls.rateLimit, limiter: new RateLimiter(controls.rateLimit) };
      }
      const rate = limiter.limiter.take();
      res.setHeader('X-RateLimit-Limit', String(rate.limit));
      res.setHeader('X-RateLimit-Remaining', String(rate.remaining));
      res.setHeader('X-RateLimit-Reset', String(Math.ceil(rate.resetAt / 1000)));
      if (rate.limited) {
        const wait = Math.max(1, Math.ceil((rate.resetAt - Date.now()) / 1000));
        return fail(429, 'too many requests', undefined, { 'Retry-After': String(wait) });
      }
    }

    if (!tokenMatches(req.headers.authorization, options.token)) {
      return fail(401, 'authentication required: send a valid bearer token', undefined, { 'WWW-Authenticate': 'Bearer realm="scim"' });
    }

    try {
      let body: unknown;
      if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
        const text = await readBody(req);
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          throw new ScimProblem(400, 'invalidSyntax', 'request body is not valid JSON');
        }
        entry.body = isObject(body) && findKey(body, 'password') !== undefined ? { ...body, [findKey(body, 'password')!]: '[redacted]' } : body;
      }
      route(method, url, req, body, send, fail);
    } catch (err) {
      if (err instanceof ScimProblem) return fail(err.status, err.message, err.scimType);
      if (err instanceof ScimFilterError) return fail(400, err.message, err.scimType);
      return fail(500, 'internal error');
    }
  }

  type Send = (status: number, body: unknown, headers?: Record<string, string>) => void;
  type Fail = (status: number, detail: string, scimType?: ScimErrorType) => void;

  function route(method: string, url: URL, req: IncomingMessage, body: unknown, send: Send, fail: Fail): void {
    if (!url.pathname.startsWith(`${BASE_PATH}/`)) return fail(404, `no resource at ${url.pathname}`);
    const parts = url.pathname.slice(BASE_PATH.length + 1).split('/').map(decodeURIComponent);
    const [collection, id, extra] = parts;
    if (extra !== undefined) return fail(404, `no resource at ${url.pathname}`);

    if (collection === 'ServiceProviderConfig' && id === undefined) {
      return method === 'GET' ? send(200, serviceProviderConfig()) : fail(405, `${method} is not allowed here`);
    }
    if (collection === 'Schemas') {
      if (method !== 'GET') return fail(405, `${method} is not allowed here`);
      const all = [USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA].map((s) => schemaResource(s, baseUrl));
      if (id === undefined) return send(200, listResponse(all));
      const one = all.find((s) => s.id === id);
      return one ? send(200, one) : fail(404, `schema ${id} not found`);
    }
    if (collection === 'ResourceTypes') {
      if (method !== 'GET') return fail(405, `${method} is not allowed here`);
      const all = [USER_RESOURCE, GROUP_RESOURCE].map(resourceType);
      if (id === undefined) return send(200, listResponse(all));
      const one = all.find((r) => r.id === id);
      return one ? send(200, one) : fail(404, `resource type ${id} not found`);
    }
    const rs = collection === 'Users' ? USER_RESOURCE : collection === 'Groups' ? GROUP_RESOURCE : undefined;
    if (!rs) return fail(404, `no resource at ${url.pathname}`);
    const map = rs === USER_RESOURCE ? store.users : store.groups;
    const render = (s: Stored) => (rs === USER_RESOURCE ? store.renderUser(s) : store.renderGroup(s));

    if (id === undefined) {
      if (method === 'GET') return send(200, query(rs, Object.fromEntries(url.searchParams), render, map));
      if (method === 'POST') return create(rs, body, send);
      return fail(405, `${method} is not allowed on ${rs.endpoint}`);
    }
    if (id === '.search') {
      if (method !== 'POST') return fail(405, `${method} is not allowed on ${rs.endpoint}/.search`);
      if (!isObject(body)) throw new ScimProblem(400, 'invalidSyntax', 'search body must be a JSON object');
      const params: Record<string, string> = {};
      for (const k of ['filter', 'startIndex', 'count', 'attributes', 'excludedAttributes']) {
        const v = body[k];
        if (v !== undefined) params[k] = Array.isArray(v) ? v.join(',') : String(v);
      }
      return send(200, query(rs, params, render, map));
    }

    const stored = map.get(id);
    if (!stored) return fail(404, `${rs.name} ${id} not found`);
    const ifMatch = req.headers['if-match'];
    if (ifMatch && method !== 'GET' && !etagMatches(ifMatch, store.etag(stored))) {
      return fail(412, `${rs.name} ${id} has changed (version ${store.etag(stored)})`);
    }
    switch (method) {
      case 'GET': {
        const inm = req.headers['if-none-match'];
        if (inm && etagMatches(inm, store.etag(stored))) return send(304, undefined, { ETag: store.etag(stored) });
        const attrs = projectionParams(Object.fromEntries(url.searchParams));
        return send(200, project(rs, render(stored), attrs), { ETag: store.etag(stored) });
      }
      case 'PUT':
        return replace(rs, stored, body, send);
      case 'PATCH':
        if (quirks.putOnly) return fail(501, 'PATCH is not supported by this service provider; replace the resource with PUT');
        return write(rs, stored, applyPatch(rs, stored.data, body, rs === USER_RESOURCE ? userCtx : groupCtx), send);
      case 'DELETE':
        if (rs === USER_RESOURCE) store.deleteUser(id);
        else store.deleteGroup(id);
        return send(204, undefined);
      default:
        return fail(405, `${method} is not allowed on ${rs.endpoint}/{id}`);
    }
  }

  function query(rs: ResourceSchema, params: Record<string, string>, render: (s: Stored) => Json, map: Map<string, Stored>): Json {
    let filter: Filter | undefined;
    if (params.filter !== undefined) filter = parseFilter(params.filter);
    const startIndex = Math.max(1, intParam(params.startIndex, 'startIndex') ?? 1);
    const count = Math.min(MAX_RESULTS, Math.max(0, intParam(params.count, 'count') ?? DEFAULT_COUNT));
    const ctx = rs === USER_RESOURCE ? userCtx : groupCtx;
    const all = [...map.values()].map(render).filter((r) => !filter || matches(filter, r, ctx));
    const page = all.slice(startIndex - 1, startIndex - 1 + count);
    const attrs = projectionParams(params);
    return listResponse(page.map((r) => project(rs, r, attrs)), startIndex, all.length);
  }

  function create(rs: ResourceSchema, body: unknown, send: Send): void {
    const data = validBody(rs, body);
    checkUnique(rs, data);
    const stored = store.insert(rs === USER_RESOURCE ? store.users : store.groups, data);
    const rendered = rs === USER_RESOURCE ? store.renderUser(stored) : store.renderGroup(stored);
    send(201, rendered, { Location: String((rendered.meta as Json).location), ETag: store.etag(stored) });
  }

  function replace(rs: ResourceSchema, stored: Stored, body: unknown, send: Send): void {
    const data = validBody(rs, body);
    // RFC 7644 §3.5.1: immutable attributes must not change; readOnly ones are ignored (id, meta, groups).
    write(rs, stored, data, send);
  }

  function validBody(rs: ResourceSchema, body: unknown): Json {
    if (!isObject(body)) throw new ScimProblem(400, 'invalidSyntax', 'body must be a JSON object');
    const schemasKey = findKey(body, 'schemas');
    const schemas = schemasKey ? body[schemasKey] : undefined;
    if (!Array.isArray(schemas) || !schemas.includes(rs.core.id)) {
      throw new ScimProblem(400, 'invalidSyntax', `schemas must include ${rs.core.id}`);
    }
    for (const s of schemas) {
      if (s !== rs.core.id && !extensionFor(rs, String(s))) throw new ScimProblem(400, 'invalidSyntax', `unknown schema ${String(s)}`);
    }
    const data = normalizeResource(rs, body);
    checkResource(rs, data);
    return data;
  }

  function checkUnique(rs: ResourceSchema, data: Json, self?: string): void {
    if (rs === USER_RESOURCE) {
      const other = store.userByName(String(data.userName));
      if (other && other.id !== self) throw new ScimProblem(409, 'uniqueness', `userName ${String(data.userName)} is already taken`);
    } else {
      const members = Array.isArray(data.members) ? data.members : [];
      for (const m of members) {
        const value = isObject(m) ? String(m.value) : '';
        if (!store.users.has(value) && !store.groups.has(value)) {
          throw new ScimProblem(400, 'invalidValue', `members: no User or Group with id ${value}`);
        }
      }
    }
  }

  function write(rs: ResourceSchema, stored: Stored, data: Json, send: Send): void {
    checkUnique(rs, data, stored.id);
    const wasActive = stored.data.active !== false;
    store.update(stored, data);
    if (rs === GROUP_RESOURCE) return send(200, store.renderGroup(stored), { ETag: store.etag(stored) });
    const rendered = store.renderUser(stored);
    if (quirks.deleteOnDeactivate && wasActive && data.active === false) store.deleteUser(stored.id);
    send(200, rendered, { ETag: store.etag(stored) });
  }

  const server = await listen((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent && !res.destroyed) sendJson(res, 500, scimError(500, 'internal error'), {}, SCIM_CONTENT_TYPE);
    });
  }, { port: options.port });
  baseUrl = `${server.url}${BASE_PATH}`;

  return {
    url: baseUrl,
    name: options.name,
    token: options.token,
    controls,
    quirks,
    state: store,
    requestLog,
    seed,
    close: () => server.close(),
  };
}

function intParam(v: string | undefined, name: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw new ScimProblem(400, 'invalidValue', `${name} must be an integer`);
  return Number(v);
}

function etagMatches(header: string, etag: string): boolean {
  const strip = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => t.trim() === '*' || strip(t) === strip(etag));
}

interface Projection {
  attributes?: string[];
  excluded?: string[];
}

function projectionParams(params: Record<string, string>): Projection {
  const split = (v: string | undefined) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);
  const attributes = split(params.attributes);
  const excluded = split(params.excludedAttributes);
  return { ...(attributes ? { attributes } : {}), ...(excluded ? { excluded } : {}) };
}

/**
 * RFC 7644 §3.9 `attributes` / `excludedAttributes`, for top-level and extension attributes
 * (and `name.givenName`-style sub-attributes in `attributes`). `id` and `schemas` always return.
 */
function project(rs: ResourceSchema, resource: Json, p: Projection): Json {
  if (!p.attributes && !p.excluded) return resource;
  const locate = (text: string) => {
    const { path } = parsePath(text);
    const ext = path.uri ? extensionFor(rs, path.uri) : undefined;
    const container = ext ? (isObject(resource[ext.id]) ? (resource[ext.id] as Json) : undefined) : resource;
    return { ext, path, container };
  };
  if (p.attributes) {
    const out: Json = { schemas: resource.schemas, id: resource.id };
    for (const text of p.attributes) {
      const { ext, path, container } = locate(text);
      const key = container && findKey(container, path.attr);
      if (!container || key === undefined) continue;
      let value = container[key];
      if (path.sub && isObject(value)) {
        const sk = findKey(value, path.sub);
        value = sk === undefined ? undefined : { ...(isObject(out[key]) ? (out[key] as Json) : {}), [sk]: value[sk] };
      }
      if (value === undefined) continue;
      if (ext) out[ext.id] = { ...(isObject(out[ext.id]) ? (out[ext.id] as Json) : {}), [key]: value };
      else out[key] = value;
    }
    return out;
  }
  const out = structuredClone(resource);
  for (const text of p.excluded ?? []) {
    const { ext, path } = locate(text);
    const container = ext ? (out[ext.id] as Json | undefined) : out;
    const key = container && findKey(container, path.attr);
    if (!container || key === undefined || key === 'id' || key === 'schemas') continue;
    delete container[key];
  }
  return out;
}
