/**
 * SCIM PATCH (RFC 7644 §3.5.2) applied to a stored resource.
 *
 * - `op` is matched case-insensitively (Azure AD sends "Add", "Replace", "Remove").
 * - Without `path`, `value` is an object of attributes; its keys may themselves be paths
 *   (`"name.givenName"`, `"urn:…:enterprise:2.0:User:department"`) or an extension URN.
 * - Value filters select elements of multi-valued attributes: `members[value eq "…"]`,
 *   `emails[type eq "work"].value`.
 * - `remove` on a multi-valued attribute with a `value` list removes those values (the form
 *   Azure AD uses for group members); a value filter that matches nothing removes nothing.
 * - `replace` with a value filter that matches nothing is `noTarget` (§3.5.2.3).
 * - The request is atomic: operations apply to a copy, which replaces the resource only when
 *   every operation succeeded.
 */
import { SCIM_PATCH_OP } from '#connectors/scim-wire';
import {
  findKey,
  isObject,
  matches,
  parsePath,
  ScimFilterError,
  type Filter,
  type FilterContext,
  type PatchPath,
} from './scim-filter.ts';
import {
  checkResource,
  dedupeValues,
  extensionFor,
  normalizeSingle,
  normalizeValue,
  resolveAttr,
  ScimProblem,
  settlePrimary,
  subAttr,
  type AttributeDef,
  type ResourceSchema,
} from './scim-schema.ts';

type Json = Record<string, unknown>;
type Op = 'add' | 'replace' | 'remove';

interface ParsedOperation {
  op: Op;
  path?: PatchPath;
  value?: unknown;
}

/** Checks the PatchOp message shape and parses every path before anything is applied. */
export function parsePatchRequest(body: unknown): ParsedOperation[] {
  if (!isObject(body)) throw new ScimProblem(400, 'invalidSyntax', 'PATCH body must be a JSON object');
  const schemasKey = findKey(body, 'schemas');
  const schemas = schemasKey ? body[schemasKey] : undefined;
  if (!Array.isArray(schemas) || !schemas.includes(SCIM_PATCH_OP)) {
    throw new ScimProblem(400, 'invalidSyntax', `schemas must include ${SCIM_PATCH_OP}`);
  }
  const opsKey = findKey(body, 'Operations');
  const ops = opsKey ? body[opsKey] : undefined;
  if (!Array.isArray(ops) || ops.length === 0) {
    throw new ScimProblem(400, 'invalidSyntax', 'Operations must be a non-empty array');
  }
  return ops.map((raw, i) => {
    if (!isObject(raw)) throw new ScimProblem(400, 'invalidSyntax', `Operations[${i}] must be an object`);
    const opKey = findKey(raw, 'op');
    const opText = opKey ? raw[opKey] : undefined;
    const op = typeof opText === 'string' ? opText.toLowerCase() : undefined;
    if (op !== 'add' && op !== 'replace' && op !== 'remove') {
      throw new ScimProblem(400, 'invalidSyntax', `Operations[${i}].op must be add, replace or remove`);
    }
    const pathKey = findKey(raw, 'path');
    const pathText = pathKey ? raw[pathKey] : undefined;
    const valueKey = findKey(raw, 'value');
    const value = valueKey ? raw[valueKey] : undefined;
    let path: PatchPath | undefined;
    if (pathText !== undefined && pathText !== null && pathText !== '') {
      if (typeof pathText !== 'string') throw new ScimProblem(400, 'invalidPath', `Operations[${i}].path must be a string`);
      path = parseOrProblem(pathText, `Operations[${i}].path`);
    }
    if (op === 'remove' && !path) throw new ScimProblem(400, 'noTarget', `Operations[${i}]: remove needs a path`);
    if (op !== 'remove' && value === undefined) throw new ScimProblem(400, 'invalidSyntax', `Operations[${i}]: ${op} needs a value`);
    if (!path && op !== 'remove' && !isObject(value)) {
      throw new ScimProblem(400, 'invalidSyntax', `Operations[${i}]: without a path, value must be an object of attributes`);
    }
    return { op, ...(path ? { path } : {}), value };
  });
}

function parseOrProblem(text: string, where: string): PatchPath {
  try {
    return parsePath(text);
  } catch (err) {
    if (err instanceof ScimFilterError) throw new ScimProblem(400, 'invalidPath', `${where}: ${err.message}`);
    throw err;
  }
}

/** Applies a PatchOp request to a copy of `data` and returns the copy. */
export function applyPatch(rs: ResourceSchema, data: Json, body: unknown, ctx: FilterContext): Json {
  const ops = parsePatchRequest(body);
  const out = structuredClone(data);
  for (const operation of ops) {
    if (operation.path) {
      applyAt(rs, out, operation.op, operation.path, operation.value, ctx);
      continue;
    }
    for (const [key, value] of Object.entries(operation.value as Json)) {
      if (key.toLowerCase() === 'schemas') continue;
      const ext = extensionFor(rs, key);
      if (ext) {
        if (!isObject(value)) throw new ScimProblem(400, 'invalidValue', `${key} must be an object`);
        for (const [ek, ev] of Object.entries(value)) {
          applyAt(rs, out, operation.op, { path: { uri: ext.id, attr: ek } }, ev, ctx);
        }
        continue;
      }
      applyAt(rs, out, operation.op, parseOrProblem(key, `value key "${key}"`), value, ctx);
    }
  }
  checkResource(rs, out);
  return out;
}

function applyAt(rs: ResourceSchema, data: Json, op: Op, target: PatchPath, value: unknown, ctx: FilterContext): void {
  const { path, filter } = target;
  const resolved = resolveAttr(rs, path);
  if (!resolved) throw new ScimProblem(400, 'invalidPath', `unknown attribute "${formatTarget(target)}"`);
  const { def } = resolved;
  if (def.mutability === 'readOnly') throw new ScimProblem(400, 'mutability', `${def.name} is read-only`);

  let container = data;
  if (resolved.extension) {
    const existing = data[resolved.extension];
    if (!isObject(existing)) {
      if (op === 'remove') return;
      data[resolved.extension] = {};
    }
    container = data[resolved.extension] as Json;
  }
  const key = def.name;
  const sub = target.sub ?? path.sub;
  const where = formatTarget(target);

  if (filter) {
    if (!def.multiValued || def.type !== 'complex') {
      throw new ScimProblem(400, 'invalidPath', `${def.name} is not a multi-valued complex attribute`);
    }
    applyFiltered(def, container, op, filter, sub, value, where, ctx, path);
  } else if (sub) {
    const sd = subAttr(def, sub);
    if (!sd) throw new ScimProblem(400, 'invalidPath', `unknown attribute "${where}"`);
    if (sd.mutability === 'readOnly') throw new ScimProblem(400, 'mutability', `${where} is read-only`);
    const elements = def.multiValued ? (Array.isArray(container[key]) ? (container[key] as Json[]) : []) : [ensureObject(container, key, op)];
    for (const el of elements) {
      if (!el) continue;
      if (op === 'remove') delete el[sd.name];
      else setOrDelete(el, sd.name, normalizeSingle(sd, value, where));
    }
  } else if (op === 'remove') {
    if (def.multiValued && value !== undefined && value !== null) {
      // Azure AD form: { op: "remove", path: "members", value: [{ value: "id" }] }.
      const gone = new Set(
        (Array.isArray(value) ? value : [value]).map((v) => (isObject(v) ? JSON.stringify(v[findKey(v, 'value') ?? 'value']) : JSON.stringify(v))),
      );
      const list = Array.isArray(container[key]) ? (container[key] as unknown[]) : [];
      container[key] = list.filter((el) => !(isObject(el) && gone.has(JSON.stringify(el.value))));
    } else {
      delete container[key];
    }
  } else if (def.multiValued) {
    const incoming = normalizeValue(def, value, where) as unknown[] | undefined;
    const base = op === 'add' && Array.isArray(container[key]) ? (container[key] as unknown[]) : [];
    setOrDelete(container, key, settlePrimary(dedupeValues([...base, ...(incoming ?? [])])));
  } else if (def.type === 'complex') {
    const incoming = normalizeSingle(def, value, where) as Json | undefined;
    if (incoming === undefined) delete container[key];
    else container[key] = { ...(isObject(container[key]) ? (container[key] as Json) : {}), ...incoming };
  } else {
    setOrDelete(container, key, normalizeSingle(def, value, where));
  }

  tidy(container, key);
  if (resolved.extension && Object.keys(container).length === 0) delete data[resolved.extension];
}

function applyFiltered(
  def: AttributeDef,
  container: Json,
  op: Op,
  filter: Filter,
  sub: string | undefined,
  value: unknown,
  where: string,
  ctx: FilterContext,
  parent: PatchPath['path'],
): void {
  const list = Array.isArray(container[def.name]) ? (container[def.name] as unknown[]) : [];
  const hit = (el: unknown): el is Json => isObject(el) && matches(filter, el, ctx, parent);
  const sd = sub ? subAttr(def, sub) : undefined;
  if (sub && !sd) throw new ScimProblem(400, 'invalidPath', `unknown attribute "${where}"`);
  if (sd?.mutability === 'readOnly') throw new ScimProblem(400, 'mutability', `${where} is read-only`);

  if (op === 'remove') {
    if (!sd) {
      container[def.name] = list.filter((el) => !hit(el));
    } else {
      for (const el of list) if (hit(el)) delete el[sd.name];
    }
    return;
  }

  const matched = list.filter(hit);
  if (matched.length === 0) {
    const seed = op === 'add' ? elementFromFilter(filter) : undefined;
    if (!seed) throw new ScimProblem(400, 'noTarget', `no value of ${def.name} matches "${where}"`);
    // `add` on `emails[type eq "work"].value` with no work email creates one.
    const created = normalizeSingle(def, sd ? { ...seed, [sd.name]: value } : { ...seed, ...(isObject(value) ? value : {}) }, where);
    container[def.name] = settlePrimary(dedupeValues([...list, created]));
    return;
  }
  for (const el of matched) {
    if (sd) setOrDelete(el, sd.name, normalizeSingle(sd, value, where));
    else Object.assign(el, normalizeSingle(def, value, where) as Json);
  }
  container[def.name] = settlePrimary(dedupeValues(list));
}

/** `type eq "work" and …` → `{ type: "work", … }`; undefined for filters that do not name one value. */
function elementFromFilter(filter: Filter): Json | undefined {
  if (filter.kind === 'cmp' && filter.op === 'eq' && !filter.path.uri && !filter.path.sub) return { [filter.path.attr]: filter.value };
  if (filter.kind === 'and') {
    const l = elementFromFilter(filter.left);
    const r = elementFromFilter(filter.right);
    return l && r ? { ...l, ...r } : undefined;
  }
  return undefined;
}

function ensureObject(container: Json, key: string, op: Op): Json | undefined {
  if (isObject(container[key])) return container[key] as Json;
  if (op === 'remove') return undefined;
  container[key] = {};
  return container[key] as Json;
}

function setOrDelete(obj: Json, key: string, v: unknown): void {
  if (v === undefined) delete obj[key];
  else obj[key] = v;
}

/** Empty multi-valued attributes and empty complex values are unassigned (RFC 7643 §2.5). */
function tidy(container: Json, key: string): void {
  const v = container[key];
  if (Array.isArray(v) && v.length === 0) delete container[key];
  else if (isObject(v) && Object.keys(v).length === 0) delete container[key];
}

function formatTarget(t: PatchPath): string {
  const p = t.path;
  const base = `${p.uri ? `${p.uri}:` : ''}${p.attr}`;
  return t.filter ? `${base}[…]${t.sub ? `.${t.sub}` : ''}` : `${base}${p.sub ? `.${p.sub}` : ''}`;
}
