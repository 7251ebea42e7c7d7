/**
 * The slice of OData query syntax the Graph stand-in understands: `$filter` clauses joined by
 * `and` (`prop eq 'x'`, `prop ge 2024-01-01T00:00:00Z`, `prop eq true`, `startswith(prop,'x')`,
 * `targetResources/any(t:t/id eq 'x')`), `$select`, `$top`. Anything else is refused with the
 * error Graph gives for an unsupported query, so a connector that relies on more fails loudly
 * here instead of in production.
 */

export class GraphHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'GraphHttpError';
  }
}

export const badRequest = (message: string, code = 'Request_BadRequest') => new GraphHttpError(400, code, message);
export const notFound = (id: string) =>
  new GraphHttpError(
    404,
    'Request_ResourceNotFound',
    `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`,
  );

export type Comparison = 'eq' | 'ne' | 'ge' | 'le' | 'gt' | 'lt';
export type Literal = string | number | boolean | null;

export type FilterClause =
  | { kind: 'compare'; property: string; op: Comparison; value: Literal }
  | { kind: 'startswith'; property: string; value: string }
  | { kind: 'anyId'; collection: string; value: string };

const QUOTED = `'((?:[^']|'')*)'`;
const COMPARE = new RegExp(`^([A-Za-z][\\w/]*)\\s+(eq|ne|ge|le|gt|lt)\\s+(${QUOTED}|true|false|null|-?\\d+(?:\\.\\d+)?|\\d{4}-\\d{2}-\\d{2}T[\\d:.]+(?:Z|[+-]\\d{2}:\\d{2}))$`, 'i');
const STARTSWITH = new RegExp(`^startswith\\(\\s*([A-Za-z]\\w*)\\s*,\\s*${QUOTED}\\s*\\)$`, 'i');
const ANY_ID = new RegExp(`^([A-Za-z]\\w*)/any\\(\\s*(\\w+)\\s*:\\s*\\2/id\\s+eq\\s+${QUOTED}\\s*\\)$`, 'i');

/** Splits on ` and ` outside quotes and parentheses. */
function splitAnd(expr: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === "'") quoted = !quoted; // a doubled '' toggles twice: still consistent
    else if (!quoted && c === '(') depth++;
    else if (!quoted && c === ')') depth--;
    else if (!quoted && depth === 0 && /\s/.test(c ?? '') && /^\s+and\s+/i.test(expr.slice(i))) {
      const m = /^\s+and\s+/i.exec(expr.slice(i));
      parts.push(expr.slice(start, i));
      i += (m?.[0].length ?? 1) - 1;
      start = i + 1;
    }
  }
  parts.push(expr.slice(start));
  return parts.map((p) => p.trim()).filter(Boolean);
}

const unquote = (s: string) => s.replace(/''/g, "'");

function literal(raw: string): Literal {
  if (raw.startsWith("'")) return unquote(raw.slice(1, -1));
  if (/^true$/i.test(raw)) return true;
  if (/^false$/i.test(raw)) return false;
  if (/^null$/i.test(raw)) return null;
  if (/^-?\d+(\.\d+)?$/.test(raw)) return Number(raw);
  return raw; // a DateTimeOffset literal, compared as an instant
}

export function parseFilter(expr: string | null, resource: string, allowed: readonly string[]): FilterClause[] {
  if (!expr) return [];
  return splitAnd(expr).map((clause) => {
    let m = ANY_ID.exec(clause);
    if (m) {
      if (!allowed.includes(`${m[1]}/id`)) throw unsupported(`${m[1]}`, resource);
      return { kind: 'anyId', collection: m[1]!, value: unquote(m[3]!) };
    }
    m = STARTSWITH.exec(clause);
    if (m) {
      if (!allowed.includes(m[1]!)) throw unsupported(m[1]!, resource);
      return { kind: 'startswith', property: m[1]!, value: unquote(m[2]!) };
    }
    m = COMPARE.exec(clause);
    if (m) {
      if (!allowed.includes(m[1]!)) throw unsupported(m[1]!, resource);
      return { kind: 'compare', property: m[1]!, op: m[2]!.toLowerCase() as Comparison, value: literal(m[3]!) };
    }
    throw new GraphHttpError(400, 'BadRequest', `Invalid filter clause: syntax error in '${clause}'.`);
  });
}

function unsupported(property: string, resource: string) {
  return new GraphHttpError(
    400,
    'Request_UnsupportedQuery',
    `Unsupported or invalid query filter clause specified for property '${property}' of resource '${resource}'.`,
  );
}

function compare(actual: unknown, op: Comparison, expected: Literal): boolean {
  if (typeof expected === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(expected) && typeof actual === 'string') {
    return ord(Date.parse(actual), op, Date.parse(expected));
  }
  if (typeof expected === 'string' && typeof actual === 'string') {
    // Graph string comparisons on directory properties are case-insensitive.
    return ord(actual.toLowerCase(), op, expected.toLowerCase());
  }
  if (op === 'eq') return (actual ?? null) === expected;
  if (op === 'ne') return (actual ?? null) !== expected;
  if (actual === null || actual === undefined || expected === null) return false;
  return ord(actual as number, op, expected as number);
}

function ord<T extends string | number>(a: T, op: Comparison, b: T): boolean {
  switch (op) {
    case 'eq':
      return a === b;
    case 'ne':
      return a !== b;
    case 'ge':
      return a >= b;
    case 'le':
      return a <= b;
    case 'gt':
      return a > b;
    case 'lt':
      return a < b;
  }
}

export function matches(obj: Record<string, unknown>, clauses: FilterClause[]): boolean {
  return clauses.every((c) => {
    switch (c.kind) {
      case 'compare':
        return compare(obj[c.property], c.op, c.value);
      case 'startswith': {
        const v = obj[c.property];
        return typeof v === 'string' && v.toLowerCase().startsWith(c.value.toLowerCase());
      }
      case 'anyId': {
        const list = obj[c.collection];
        return Array.isArray(list) && list.some((x) => (x as { id?: string }).id === c.value);
      }
    }
  });
}

/** `$select` → the list of properties, validated against what the type has. `id` is always returned. */
export function parseSelect(raw: string | null, type: string, known: readonly string[]): string[] | undefined {
  if (!raw) return undefined;
  const props = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of props) {
    if (!known.includes(p)) {
      throw new GraphHttpError(400, 'BadRequest', `Could not find a property named '${p}' on type 'microsoft.graph.${type}'.`);
    }
  }
  return props;
}

export function project(obj: Record<string, unknown>, select: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (obj['@odata.type'] !== undefined) out['@odata.type'] = obj['@odata.type'];
  out.id = obj.id;
  for (const p of select) out[p] = obj[p] ?? null;
  return out;
}

export function parseTop(raw: string | null, fallback: number, max: number): number {
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new GraphHttpError(400, 'Request_BadRequest', `Invalid page size specified: '${raw}'. Must be between 1 and ${max} inclusive.`);
  }
  return n;
}
