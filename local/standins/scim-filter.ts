/**
 * SCIM filter and PATCH path parsing and evaluation (RFC 7644 §3.4.2.2 and §3.5.2).
 *
 * Grammar (ABNF from the RFC, precedence `not` > `and` > `or`, parentheses group):
 *   FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
 *   valuePath = attrPath "[" valFilter "]"
 *   attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
 *   attrPath  = [URI ":"] ATTRNAME *1subAttr
 *   PATH      = attrPath / valuePath [subAttr]          (PATCH)
 * Operators, keywords and attribute names are case-insensitive; string literals are JSON strings.
 * As an extension some apps accept, `emails[type eq "work"].value eq "x"` is read as
 * `emails[type eq "work" and value eq "x"]`.
 */
import type { ScimErrorType } from '#connectors/scim-wire';

export const COMPARE_OPS = ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'lt', 'ge', 'le'] as const;
export type CompareOp = (typeof COMPARE_OPS)[number];
export type CompValue = string | number | boolean | null;

export interface AttrPath {
  /** Schema URN prefix as written, e.g. the enterprise extension. */
  uri?: string;
  attr: string;
  sub?: string;
}

export type Filter =
  | { kind: 'and' | 'or'; left: Filter; right: Filter }
  | { kind: 'not'; filter: Filter }
  | { kind: 'pr'; path: AttrPath }
  | { kind: 'cmp'; path: AttrPath; op: CompareOp; value: CompValue }
  | { kind: 'valuePath'; path: AttrPath; filter: Filter };

export interface PatchPath {
  path: AttrPath;
  /** Value selection filter: `members[value eq "…"]`. */
  filter?: Filter;
  /** Sub-attribute after the filter: `emails[type eq "work"].value`. */
  sub?: string;
}

export class ScimFilterError extends Error {
  override readonly name = 'ScimFilterError';
  constructor(
    readonly scimType: Extract<ScimErrorType, 'invalidFilter' | 'invalidPath'>,
    message: string,
    readonly position: number,
  ) {
    super(message);
  }
}

type Token =
  | { t: '(' | ')' | '[' | ']'; pos: number }
  | { t: 'string'; value: string; pos: number }
  | { t: 'word'; value: string; pos: number };

const ATTR_NAME = '[A-Za-z$][A-Za-z0-9_$-]*';
const ATTR_PATH_RE = new RegExp(`^(?:(urn:.+):)?(${ATTR_NAME})(?:\\.(${ATTR_NAME}))?$`, 'i');
const SUB_ATTR_RE = new RegExp(`^\\.(${ATTR_NAME})$`);
const NUMBER_RE = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

function tokenize(text: string, kind: ScimFilterError['scimType']): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i += 1;
    } else if (c === '(' || c === ')' || c === '[' || c === ']') {
      tokens.push({ t: c, pos: i });
      i += 1;
    } else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) throw new ScimFilterError(kind, `unterminated string starting at position ${i}`, i);
      const literal = text.slice(i, j + 1);
      let value: string;
      try {
        value = JSON.parse(literal) as string;
      } catch {
        throw new ScimFilterError(kind, `malformed string ${literal} at position ${i}`, i);
      }
      tokens.push({ t: 'string', value, pos: i });
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !' \t\n\r()[]"'.includes(text[j]!)) j += 1;
      tokens.push({ t: 'word', value: text.slice(i, j), pos: i });
      i = j;
    }
  }
  return tokens;
}

function describe(tok: Token | undefined): string {
  if (!tok) return 'end of input';
  if (tok.t === 'string') return `string ${JSON.stringify(tok.value)}`;
  if (tok.t === 'word') return `"${tok.value}"`;
  return `"${tok.t}"`;
}

class Parser {
  private i = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly kind: ScimFilterError['scimType'],
    private readonly textLength: number,
  ) {}

  fail(message: string, tok: Token | undefined = this.peek()): never {
    const pos = tok?.pos ?? this.textLength;
    throw new ScimFilterError(this.kind, `${message} at position ${pos}`, pos);
  }

  peek(): Token | undefined {
    return this.tokens[this.i];
  }

  next(): Token | undefined {
    return this.tokens[this.i++];
  }

  done(): boolean {
    return this.i >= this.tokens.length;
  }

  keyword(word: string): boolean {
    const tok = this.peek();
    return tok?.t === 'word' && tok.value.toLowerCase() === word;
  }

  expect(t: '(' | ')' | '[' | ']'): void {
    const tok = this.next();
    if (tok?.t !== t) this.fail(`expected "${t}" but found ${describe(tok)}`, tok);
  }

  parseOr(inBrackets: boolean): Filter {
    let left = this.parseAnd(inBrackets);
    while (this.keyword('or')) {
      this.next();
      left = { kind: 'or', left, right: this.parseAnd(inBrackets) };
    }
    return left;
  }

  parseAnd(inBrackets: boolean): Filter {
    let left = this.parseUnary(inBrackets);
    while (this.keyword('and')) {
      this.next();
      left = { kind: 'and', left, right: this.parseUnary(inBrackets) };
    }
    return left;
  }

  parseUnary(inBrackets: boolean): Filter {
    if (this.keyword('not')) {
      this.next();
      if (this.peek()?.t !== '(') this.fail(`expected "(" after "not" but found ${describe(this.peek())}`);
      this.next();
      const filter = this.parseOr(inBrackets);
      this.expect(')');
      return { kind: 'not', filter };
    }
    if (this.peek()?.t === '(') {
      this.next();
      const filter = this.parseOr(inBrackets);
      this.expect(')');
      return filter;
    }
    return this.parseAttrExp(inBrackets);
  }

  attrPath(): AttrPath {
    const tok = this.next();
    if (tok?.t !== 'word') this.fail(`expected an attribute name but found ${describe(tok)}`, tok);
    const m = ATTR_PATH_RE.exec(tok.value);
    if (!m) this.fail(`invalid attribute name "${tok.value}"`, tok);
    return { ...(m[1] ? { uri: m[1] } : {}), attr: m[2]!, ...(m[3] ? { sub: m[3] } : {}) };
  }

  subAttr(): string | undefined {
    const tok = this.peek();
    if (tok?.t !== 'word' || !tok.value.startsWith('.')) return undefined;
    const m = SUB_ATTR_RE.exec(tok.value);
    if (!m) this.fail(`invalid sub-attribute "${tok.value}"`, tok);
    this.next();
    return m[1]!;
  }

  parseAttrExp(inBrackets: boolean): Filter {
    const path = this.attrPath();
    if (this.peek()?.t === '[') {
      if (inBrackets) this.fail('value filters cannot be nested');
      if (path.sub) this.fail(`a value filter applies to a multi-valued attribute, not "${path.attr}.${path.sub}"`);
      this.next();
      const inner = this.parseOr(true);
      this.expect(']');
      const sub = this.subAttr();
      if (sub === undefined) return { kind: 'valuePath', path, filter: inner };
      const tail = this.parseCondition({ attr: sub });
      return { kind: 'valuePath', path, filter: { kind: 'and', left: inner, right: tail } };
    }
    return this.parseCondition(path);
  }

  parseCondition(path: AttrPath): Filter {
    const opTok = this.next();
    if (opTok?.t !== 'word') this.fail(`expected an operator after "${formatPath(path)}" but found ${describe(opTok)}`, opTok);
    const op = opTok.value.toLowerCase();
    if (op === 'pr') return { kind: 'pr', path };
    if (!(COMPARE_OPS as readonly string[]).includes(op)) {
      this.fail(`unknown operator "${opTok.value}" (expected pr, ${COMPARE_OPS.join(', ')})`, opTok);
    }
    const value = this.compValue();
    const cmp = op as CompareOp;
    if ((cmp === 'co' || cmp === 'sw' || cmp === 'ew') && typeof value !== 'string') {
      this.fail(`operator "${cmp}" needs a string value`, opTok);
    }
    if ((cmp === 'gt' || cmp === 'ge' || cmp === 'lt' || cmp === 'le') && (typeof value === 'boolean' || value === null)) {
      this.fail(`operator "${cmp}" cannot compare with ${String(value)}`, opTok);
    }
    return { kind: 'cmp', path, op: cmp, value };
  }

  compValue(): CompValue {
    const tok = this.next();
    if (tok?.t === 'string') return tok.value;
    if (tok?.t === 'word') {
      const w = tok.value.toLowerCase();
      if (w === 'true') return true;
      if (w === 'false') return false;
      if (w === 'null') return null;
      if (NUMBER_RE.test(tok.value)) return Number(tok.value);
    }
    this.fail(`expected a value (quoted string, number, true, false or null) but found ${describe(tok)}`, tok);
  }
}

/** Parses a `filter` query parameter. Throws ScimFilterError (`invalidFilter`). */
export function parseFilter(text: string): Filter {
  if (!text.trim()) throw new ScimFilterError('invalidFilter', 'filter is empty', 0);
  const parser = new Parser(tokenize(text, 'invalidFilter'), 'invalidFilter', text.length);
  const filter = parser.parseOr(false);
  if (!parser.done()) parser.fail(`unexpected ${describe(parser.peek())}`);
  return filter;
}

/** Parses a PATCH operation `path`. Throws ScimFilterError (`invalidPath`). */
export function parsePath(text: string): PatchPath {
  if (!text.trim()) throw new ScimFilterError('invalidPath', 'path is empty', 0);
  const parser = new Parser(tokenize(text, 'invalidPath'), 'invalidPath', text.length);
  const path = parser.attrPath();
  let result: PatchPath = { path };
  if (parser.peek()?.t === '[') {
    if (path.sub) parser.fail(`a value filter applies to a multi-valued attribute, not "${path.attr}.${path.sub}"`);
    parser.next();
    const filter = parser.parseOr(true);
    parser.expect(']');
    const sub = parser.subAttr();
    result = { path, filter, ...(sub ? { sub } : {}) };
  }
  if (!parser.done()) parser.fail(`unexpected ${describe(parser.peek())}`);
  return result;
}

export function formatPath(p: AttrPath): string {
  return `${p.uri ? `${p.uri}:` : ''}${p.attr}${p.sub ? `.${p.sub}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

export interface FilterContext {
  /**
   * Whether string comparisons on this attribute are case-sensitive (RFC 7643 `caseExact`).
   * `parent` is set inside a value filter (`members[value eq …]` → parent `members`).
   */
  caseExact(path: AttrPath, parent?: AttrPath): boolean;
}

/** Without a schema: `id` and `externalId` are case-exact, as RFC 7643 defines them. */
export const defaultFilterContext: FilterContext = {
  caseExact: (path, parent) => !parent && !path.sub && ['id', 'externalid'].includes(path.attr.toLowerCase()),
};

type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The property of `obj` whose name matches case-insensitively. */
export function findKey(obj: Json, name: string): string | undefined {
  if (Object.hasOwn(obj, name)) return name;
  const lower = name.toLowerCase();
  return Object.keys(obj).find((k) => k.toLowerCase() === lower);
}

/**
 * The object an attribute path lives in: the extension object for an extension URN, the
 * resource itself for the core schema URN (or no URN).
 */
export function containerFor(resource: Json, uri: string | undefined): Json | undefined {
  if (!uri) return resource;
  const key = findKey(resource, uri);
  if (key !== undefined) {
    const ext = resource[key];
    return isObject(ext) ? ext : undefined;
  }
  return resource;
}

function present(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'string') return v.length > 0;
  if (Array.isArray(v)) return v.some(present);
  if (isObject(v)) return Object.values(v).some(present);
  return true;
}

/** Every value an attribute path designates (multi-valued attributes flatten). */
function valuesAt(resource: Json, path: AttrPath, forCompare: boolean): unknown[] {
  const container = containerFor(resource, path.uri);
  if (!container) return [];
  const key = findKey(container, path.attr);
  if (key === undefined) return [];
  const raw = container[key];
  const items = Array.isArray(raw) ? raw : [raw];
  const out: unknown[] = [];
  for (const item of items) {
    if (path.sub) {
      if (!isObject(item)) continue;
      const subKey = findKey(item, path.sub);
      if (subKey === undefined) continue;
      const v = item[subKey];
      if (Array.isArray(v)) out.push(...v);
      else out.push(v);
    } else if (forCompare && isObject(item)) {
      // A complex value compared directly means its "value" sub-attribute.
      const subKey = findKey(item, 'value');
      if (subKey !== undefined) out.push(item[subKey]);
    } else {
      out.push(item);
    }
  }
  return out.filter((v) => v !== undefined && v !== null);
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}T/;

function compareOne(actual: unknown, op: CompareOp, expected: CompValue, caseExact: boolean): boolean {
  if (typeof expected === 'boolean') {
    return op === 'eq' ? actual === expected : false;
  }
  if (typeof expected === 'number') {
    if (typeof actual !== 'number') return false;
    return ordered(actual - expected, op);
  }
  if (typeof expected !== 'string' || typeof actual !== 'string') return false;
  if ((op === 'gt' || op === 'ge' || op === 'lt' || op === 'le') && ISO_DATE.test(actual) && ISO_DATE.test(expected)) {
    const a = Date.parse(actual);
    const b = Date.parse(expected);
    if (!Number.isNaN(a) && !Number.isNaN(b)) return ordered(a - b, op);
  }
  const a = caseExact ? actual : actual.toLowerCase();
  const b = caseExact ? expected : expected.toLowerCase();
  switch (op) {
    case 'eq':
      return a === b;
    case 'co':
      return a.includes(b);
    case 'sw':
      return a.startsWith(b);
    case 'ew':
      return a.endsWith(b);
    default:
      return ordered(a < b ? -1 : a > b ? 1 : 0, op);
  }
}

function ordered(diff: number, op: CompareOp): boolean {
  switch (op) {
    case 'eq':
      return diff === 0;
    case 'gt':
      return diff > 0;
    case 'ge':
      return diff >= 0;
    case 'lt':
      return diff < 0;
    case 'le':
      return diff <= 0;
    default:
      return false;
  }
}

/** Does `resource` (or, inside a value filter, one element of a multi-valued attribute) match? */
export function matches(filter: Filter, resource: Json, ctx: FilterContext = defaultFilterContext, parent?: AttrPath): boolean {
  switch (filter.kind) {
    case 'and':
      return matches(filter.left, resource, ctx, parent) && matches(filter.right, resource, ctx, parent);
    case 'or':
      return matches(filter.left, resource, ctx, parent) || matches(filter.right, resource, ctx, parent);
    case 'not':
      return !matches(filter.filter, resource, ctx, parent);
    case 'pr':
      return valuesAt(resource, filter.path, false).some(present);
    case 'valuePath':
      return elementsMatching(resource, filter.path, filter.filter, ctx).length > 0;
    case 'cmp': {
      const values = valuesAt(resource, filter.path, true);
      if (filter.value === null) return filter.op === 'eq' ? values.length === 0 : filter.op === 'ne' && values.length > 0;
      const exact = ctx.caseExact(filter.path, parent);
      if (filter.op === 'ne') return !values.some((v) => compareOne(v, 'eq', filter.value, exact));
      return values.some((v) => compareOne(v, filter.op, filter.value, exact));
    }
  }
}

/** Elements of the multi-valued attribute at `path` that match `filter` (for value filters). */
export function elementsMatching(resource: Json, path: AttrPath, filter: Filter, ctx: FilterContext = defaultFilterContext): Json[] {
  return valuesAt(resource, path, false).filter(
    (el): el is Json => isObject(el) && matches(filter, el, ctx, path),
  );
}
