/**
 * The SCIM stand-in's resource schemas (RFC 7643 §4, §8.7.1), as one definition that drives
 * `/Schemas`, attribute name canonicalisation, type checks, mutability and `caseExact` for filters.
 * Only the attributes a provisioning client plausibly writes are modelled; unknown attributes are
 * refused (a SaaS app would drop them silently, which hides client bugs).
 */
import {
  SCIM_ENTERPRISE_USER_SCHEMA,
  SCIM_GROUP_SCHEMA,
  SCIM_USER_SCHEMA,
  type ScimErrorType,
} from '#connectors/scim-wire';
import { findKey, isObject, type AttrPath, type FilterContext } from './scim-filter.ts';

export type AttrType = 'string' | 'boolean' | 'decimal' | 'integer' | 'dateTime' | 'reference' | 'complex';

export interface AttributeDef {
  name: string;
  type: AttrType;
  multiValued: boolean;
  description: string;
  required: boolean;
  caseExact: boolean;
  mutability: 'readOnly' | 'readWrite' | 'immutable' | 'writeOnly';
  returned: 'always' | 'never' | 'default' | 'request';
  uniqueness: 'none' | 'server' | 'global';
  canonicalValues?: string[];
  referenceTypes?: string[];
  subAttributes?: AttributeDef[];
}

export interface SchemaDef {
  id: string;
  name: string;
  description: string;
  attributes: AttributeDef[];
}

/** A 400 the server answers with an RFC 7644 §3.12 error body. */
export class ScimProblem extends Error {
  constructor(
    readonly status: number,
    readonly scimType: ScimErrorType | undefined,
    detail: string,
  ) {
    super(detail);
  }
}

function a(name: string, type: AttrType, opts: Partial<Omit<AttributeDef, 'name' | 'type'>> = {}): AttributeDef {
  return {
    name,
    type,
    multiValued: false,
    description: opts.description ?? name,
    required: false,
    caseExact: false,
    mutability: 'readWrite',
    returned: 'default',
    uniqueness: 'none',
    ...opts,
  };
}

const multi = (name: string, subAttributes: AttributeDef[], opts: Partial<AttributeDef> = {}) =>
  a(name, 'complex', { multiValued: true, subAttributes, ...opts });

const typed = (canonicalValues: string[]) => [
  a('value', 'string'),
  a('display', 'string'),
  a('type', 'string', { canonicalValues }),
  a('primary', 'boolean'),
];

export const USER_SCHEMA: SchemaDef = {
  id: SCIM_USER_SCHEMA,
  name: 'User',
  description: 'User Account',
  attributes: [
    a('userName', 'string', { required: true, uniqueness: 'server', description: 'Unique identifier for the User, used to sign in.' }),
    a('name', 'complex', {
      subAttributes: ['formatted', 'familyName', 'givenName', 'middleName', 'honorificPrefix', 'honorificSuffix'].map((n) => a(n, 'string')),
    }),
    a('displayName', 'string'),
    a('nickName', 'string'),
    a('profileUrl', 'reference', { referenceTypes: ['external'] }),
    a('title', 'string'),
    a('userType', 'string'),
    a('preferredLanguage', 'string'),
    a('locale', 'string'),
    a('timezone', 'string'),
    a('active', 'boolean', { description: 'Administrative status; false means the account cannot sign in.' }),
    a('password', 'string', { mutability: 'writeOnly', returned: 'never' }),
    multi('emails', typed(['work', 'home', 'other'])),
    multi('phoneNumbers', typed(['work', 'home', 'mobile', 'fax', 'pager', 'other'])),
    multi('ims', typed(['aim', 'gtalk', 'icq', 'xmpp', 'msn', 'skype', 'qq', 'yahoo'])),
    multi('photos', typed(['photo', 'thumbnail'])),
    multi('addresses', [
      ...['formatted', 'streetAddress', 'locality', 'region', 'postalCode', 'country'].map((n) => a(n, 'string')),
      a('type', 'string', { canonicalValues: ['work', 'home', 'other'] }),
      a('primary', 'boolean'),
    ]),
    multi(
      'groups',
      [
        a('value', 'string', { mutability: 'readOnly', caseExact: true }),
        a('$ref', 'reference', { mutability: 'readOnly', referenceTypes: ['User', 'Group'] }),
        a('display', 'string', { mutability: 'readOnly' }),
        a('type', 'string', { mutability: 'readOnly', canonicalValues: ['direct', 'indirect'] }),
      ],
      { mutability: 'readOnly', description: 'Groups the user belongs to, derived from Group membership.' },
    ),
    multi('entitlements', typed([])),
    multi('roles', typed([])),
    multi('x509Certificates', [a('value', 'string'), a('display', 'string'), a('type', 'string'), a('primary', 'boolean')]),
  ],
};

export const ENTERPRISE_USER_SCHEMA: SchemaDef = {
  id: SCIM_ENTERPRISE_USER_SCHEMA,
  name: 'EnterpriseUser',
  description: 'Enterprise User',
  attributes: [
    a('employeeNumber', 'string'),
    a('costCenter', 'string'),
    a('organization', 'string'),
    a('division', 'string'),
    a('department', 'string'),
    a('manager', 'complex', {
      subAttributes: [
        a('value', 'string', { caseExact: true }),
        a('$ref', 'reference', { referenceTypes: ['User'] }),
        a('displayName', 'string', { mutability: 'readOnly' }),
      ],
    }),
  ],
};

export const GROUP_SCHEMA: SchemaDef = {
  id: SCIM_GROUP_SCHEMA,
  name: 'Group',
  description: 'Group',
  attributes: [
    a('displayName', 'string', { required: true }),
    multi('members', [
      a('value', 'string', { mutability: 'immutable', caseExact: true }),
      a('$ref', 'reference', { mutability: 'immutable', referenceTypes: ['User', 'Group'] }),
      a('type', 'string', { mutability: 'immutable', canonicalValues: ['User', 'Group'] }),
      a('display', 'string', { mutability: 'readOnly' }),
    ]),
  ],
};

/** Attributes every resource has (RFC 7643 §3.1); not listed in `/Schemas`. */
export const COMMON_ATTRIBUTES: AttributeDef[] = [
  a('id', 'string', { mutability: 'readOnly', returned: 'always', caseExact: true, uniqueness: 'server' }),
  a('externalId', 'string', { caseExact: true }),
  a('meta', 'complex', {
    mutability: 'readOnly',
    subAttributes: [
      a('resourceType', 'string', { mutability: 'readOnly', caseExact: true }),
      a('created', 'dateTime', { mutability: 'readOnly' }),
      a('lastModified', 'dateTime', { mutability: 'readOnly' }),
      a('location', 'reference', { mutability: 'readOnly' }),
      a('version', 'string', { mutability: 'readOnly', caseExact: true }),
    ],
  }),
];

export interface ResourceSchema {
  name: 'User' | 'Group';
  endpoint: string;
  core: SchemaDef;
  extensions: SchemaDef[];
}

export const USER_RESOURCE: ResourceSchema = { name: 'User', endpoint: '/Users', core: USER_SCHEMA, extensions: [ENTERPRISE_USER_SCHEMA] };
export const GROUP_RESOURCE: ResourceSchema = { name: 'Group', endpoint: '/Groups', core: GROUP_SCHEMA, extensions: [] };

export interface ResolvedAttr {
  def: AttributeDef;
  /** The extension URN the attribute lives under, if not core. */
  extension?: string;
}

function byName(defs: AttributeDef[], name: string): AttributeDef | undefined {
  const lower = name.toLowerCase();
  return defs.find((d) => d.name.toLowerCase() === lower);
}

/** The extension schema a URN names (case-insensitive), or undefined for the core schema. */
export function extensionFor(rs: ResourceSchema, uri: string): SchemaDef | undefined {
  return rs.extensions.find((e) => e.id.toLowerCase() === uri.toLowerCase());
}

/** Resolves an attribute path against the schema; throws `invalidPath`/`invalidFilter` style problems. */
export function resolveAttr(rs: ResourceSchema, path: Pick<AttrPath, 'uri' | 'attr'>): ResolvedAttr | undefined {
  if (path.uri && path.uri.toLowerCase() !== rs.core.id.toLowerCase()) {
    const ext = extensionFor(rs, path.uri);
    if (!ext) return undefined;
    const def = byName(ext.attributes, path.attr);
    return def ? { def, extension: ext.id } : undefined;
  }
  const def = byName(rs.core.attributes, path.attr) ?? byName(COMMON_ATTRIBUTES, path.attr);
  return def ? { def } : undefined;
}

export function subAttr(def: AttributeDef, name: string): AttributeDef | undefined {
  return def.subAttributes ? byName(def.subAttributes, name) : undefined;
}

/** `caseExact` from the schema, for filter evaluation. */
export function filterContext(rs: ResourceSchema): FilterContext {
  return {
    caseExact(path, parent) {
      const top = parent ?? path;
      const resolved = resolveAttr(rs, top);
      if (!resolved) return false;
      const subName = parent ? path.attr : path.sub;
      if (!subName) return resolved.def.caseExact;
      return subAttr(resolved.def, subName)?.caseExact ?? false;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Validation of client-supplied values

/** Azure AD sends booleans as "True"/"False"; real apps accept that, so the stand-in does too. */
function coerceBoolean(v: unknown): unknown {
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  return v;
}

function checkScalar(def: AttributeDef, v: unknown, where: string): unknown {
  switch (def.type) {
    case 'boolean': {
      const b = coerceBoolean(v);
      if (typeof b !== 'boolean') throw new ScimProblem(400, 'invalidValue', `${where} must be a boolean`);
      return b;
    }
    case 'integer':
      if (!Number.isInteger(v)) throw new ScimProblem(400, 'invalidValue', `${where} must be an integer`);
      return v;
    case 'decimal':
      if (typeof v !== 'number') throw new ScimProblem(400, 'invalidValue', `${where} must be a number`);
      return v;
    case 'dateTime':
      if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw new ScimProblem(400, 'invalidValue', `${where} must be an xsd:dateTime`);
      return v;
    default:
      if (typeof v !== 'string') throw new ScimProblem(400, 'invalidValue', `${where} must be a string`);
      return v;
  }
}

/**
 * One value of an attribute (one element for multi-valued ones), with canonical sub-attribute
 * names. readOnly sub-attributes are dropped (RFC 7644 §3.3: ignored on input).
 */
export function normalizeSingle(def: AttributeDef, v: unknown, where: string): unknown {
  if (v === null || v === undefined) return undefined;
  if (def.type !== 'complex') return checkScalar(def, v, where);
  if (!isObject(v)) throw new ScimProblem(400, 'invalidValue', `${where} must be an object`);
  const out: Record<string, unknown> = {};
  for (const [k, sv] of Object.entries(v)) {
    const sd = subAttr(def, k);
    if (!sd) throw new ScimProblem(400, 'invalidSyntax', `${where}.${k} is not an attribute of ${def.name}`);
    if (sd.mutability === 'readOnly') continue;
    const nv = normalizeSingle(sd, sv, `${where}.${sd.name}`);
    if (nv !== undefined) out[sd.name] = nv;
  }
  return out;
}

/** A whole attribute value; multi-valued ones become arrays (a lone value is wrapped). */
export function normalizeValue(def: AttributeDef, v: unknown, where: string): unknown {
  if (v === null || v === undefined) return undefined;
  if (!def.multiValued) return normalizeSingle(def, v, where);
  const list = Array.isArray(v) ? v : [v];
  return dedupeValues(list.map((item, i) => normalizeSingle(def, item, `${where}[${i}]`)).filter((x) => x !== undefined));
}

/**
 * RFC 7643 §2.4: a value is not repeated. Complex values are the same value when their `value`
 * sub-attribute is (a repeated one merges into the first, so re-adding a member is a no-op).
 */
export function dedupeValues(list: unknown[]): unknown[] {
  const seen = new Map<string, number>();
  const out: unknown[] = [];
  for (const item of list) {
    const key = isObject(item) && 'value' in item ? `v:${JSON.stringify(item.value)}` : JSON.stringify(item);
    const at = seen.get(key);
    if (at === undefined) {
      seen.set(key, out.length);
      out.push(item);
    } else if (isObject(item) && isObject(out[at])) {
      out[at] = { ...(out[at] as object), ...item };
    }
  }
  return out;
}

/** Clears `primary` on every value but the last one that claims it. */
export function settlePrimary(list: unknown[]): unknown[] {
  let last = -1;
  list.forEach((item, i) => {
    if (isObject(item) && item.primary === true) last = i;
  });
  return list.map((item, i) => (isObject(item) && item.primary === true && i !== last ? { ...item, primary: false } : item));
}

/**
 * A client-supplied resource body (POST / PUT) reduced to stored attributes with canonical names:
 * readOnly attributes ignored, unknown ones refused, types checked.
 */
export function normalizeResource(rs: ResourceSchema, body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    if (key.toLowerCase() === 'schemas' || value === undefined) continue;
    const ext = extensionFor(rs, key);
    if (ext) {
      if (value === null) continue;
      if (!isObject(value)) throw new ScimProblem(400, 'invalidSyntax', `${key} must be an object`);
      const inner: Record<string, unknown> = {};
      for (const [ek, ev] of Object.entries(value)) {
        const def = byName(ext.attributes, ek);
        if (!def) throw new ScimProblem(400, 'invalidSyntax', `${ek} is not an attribute of ${ext.name}`);
        if (def.mutability === 'readOnly') continue;
        const nv = normalizeValue(def, ev, def.name);
        if (nv !== undefined) inner[def.name] = nv;
      }
      if (Object.keys(inner).length) out[ext.id] = inner;
      continue;
    }
    const resolved = resolveAttr(rs, { attr: key });
    if (!resolved) throw new ScimProblem(400, 'invalidSyntax', `${key} is not an attribute of ${rs.name}`);
    const { def } = resolved;
    if (def.mutability === 'readOnly') continue;
    const nv = normalizeValue(def, value, def.name);
    if (nv !== undefined) out[def.name] = def.multiValued ? settlePrimary(nv as unknown[]) : nv;
  }
  return out;
}

/** Required attributes present and multi-valued `primary` used at most once. */
export function checkResource(rs: ResourceSchema, data: Record<string, unknown>): void {
  for (const def of rs.core.attributes) {
    const key = findKey(data, def.name);
    const v = key === undefined ? undefined : data[key];
    if (def.required && (v === undefined || v === '' || v === null)) {
      throw new ScimProblem(400, 'invalidValue', `required attribute ${def.name} is missing`);
    }
    if (def.multiValued && Array.isArray(v) && v.filter((x) => isObject(x) && x.primary === true).length > 1) {
      throw new ScimProblem(400, 'invalidValue', `${def.name}: at most one value may be primary`);
    }
  }
}

/** `/Schemas` representation of a schema definition (RFC 7643 §7). */
export function schemaResource(def: SchemaDef, baseUrl: string): Record<string, unknown> {
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:Schema'],
    id: def.id,
    name: def.name,
    description: def.description,
    attributes: def.attributes,
    meta: { resourceType: 'Schema', location: `${baseUrl}/Schemas/${def.id}` },
  };
}
