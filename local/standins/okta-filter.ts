/**
 * The filter / search expression language of the Okta Management API (a SCIM-style subset):
 * `attr op "value"` joined with `and` / `or`, grouped with parentheses, `not (...)`, and `attr pr`.
 *
 * Okta applies it to `search` (values compared case-insensitively), `filter` (case-sensitive,
 * limited attributes) and the System Log `filter`. An attribute path that crosses an array
 * (`target.id` on a LogEvent) matches when any element matches, as RFC 7644 §3.4.2.2 says.
 */

export type FilterOp = 'eq' | 'ne' | 'sw' | 'co' | 'ew' | 'gt' | 'ge' | 'lt' | 'le' | 'pr';

export type FilterNode =
  | { kind: 'and' | 'or'; left: FilterNode; right: FilterNode }
  | { kind: 'not'; expr: FilterNode }
  | { kind: 'cmp'; path: string; op: FilterOp; value: string | number | boolean | null };

export class FilterSyntaxError extends Error {}

type Token =
  | { t: 'word'; v: string }
  | { t: 'str'; v: string }
  | { t: 'lp' }
  | { t: 'rp' };

const OPS = new Set<FilterOp>(['eq', 'ne', 'sw', 'co', 'ew', 'gt', 'ge', 'lt', 'le', 'pr']);

function tokenize(input: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    if (/\s/.test(c)) {
      i += 1;
    } else if (c === '(') {
      out.push({ t: 'lp' });
      i += 1;
    } else if (c === ')') {
      out.push({ t: 'rp' });
      i += 1;
    } else if (c === '"') {
      let v = '';
      i += 1;
      for (;;) {
        if (i >= input.length) throw new FilterSyntaxError('unterminated string literal');
        const d = input[i]!;
        if (d === '\\' && i + 1 < input.length) {
          v += input[i + 1];
          i += 2;
        } else if (d === '"') {
          i += 1;
          break;
        } else {
          v += d;
          i += 1;
        }
      }
      out.push({ t: 'str', v });
    } else {
      let v = '';
      while (i < input.length && !/[\s()"]/.test(input[i]!)) v += input[i++];
      out.push({ t: 'word', v });
    }
  }
  return out;
}

/** Parses an expression; throws FilterSyntaxError with a readable reason. */
export function parseFilter(input: string): FilterNode {
  const tokens = tokenize(input);
  let pos = 0;
  const peek = () => tokens[pos];
  const isWord = (w: string) => {
    const tk = peek();
    return tk?.t === 'word' && tk.v.toLowerCase() === w;
  };

  function parseOr(): FilterNode {
    let left = parseAnd();
    while (isWord('or')) {
      pos += 1;
      left = { kind: 'or', left, right: parseAnd() };
    }
    return left;
  }
  function parseAnd(): FilterNode {
    let left = parseUnary();
    while (isWord('and')) {
      pos += 1;
      left = { kind: 'and', left, right: parseUnary() };
    }
    return left;
  }
  function parseUnary(): FilterNode {
    if (isWord('not')) {
      pos += 1;
      return { kind: 'not', expr: parseUnary() };
    }
    const tk = peek();
    if (tk?.t === 'lp') {
      pos += 1;
      const inner = parseOr();
      if (peek()?.t !== 'rp') throw new FilterSyntaxError('missing closing parenthesis');
      pos += 1;
      return inner;
    }
    if (tk?.t !== 'word') throw new FilterSyntaxError('expected an attribute name');
    pos += 1;
    const path = tk.v;
    const opTok = peek();
    if (opTok?.t !== 'word' || !OPS.has(opTok.v.toLowerCase() as FilterOp)) {
      throw new FilterSyntaxError(`expected an operator after ${path}`);
    }
    pos += 1;
    const op = opTok.v.toLowerCase() as FilterOp;
    if (op === 'pr') return { kind: 'cmp', path, op, value: null };
    const valTok = peek();
    if (!valTok) throw new FilterSyntaxError(`expected a value after ${path} ${op}`);
    pos += 1;
    if (valTok.t === 'str') return { kind: 'cmp', path, op, value: valTok.v };
    if (valTok.t === 'word') {
      const w = valTok.v;
      if (w === 'true' || w === 'false') return { kind: 'cmp', path, op, value: w === 'true' };
      if (w === 'null') return { kind: 'cmp', path, op, value: null };
      if (/^-?\d+(\.\d+)?$/.test(w)) return { kind: 'cmp', path, op, value: Number(w) };
    }
    throw new FilterSyntaxError(`invalid value after ${path} ${op}`);
  }

  if (tokens.length === 0) throw new FilterSyntaxError('empty expression');
  const node = parseOr();
  if (pos !== tokens.length) throw new FilterSyntaxError('unexpected trailing input');
  return node;
}

/** Every attribute path the expression reads (to refuse attributes an endpoint cannot filter on). */
export function filterPaths(node: FilterNode): string[] {
  switch (node.kind) {
    case 'and':
    case 'or':
      return [...filterPaths(node.left), ...filterPaths(node.right)];
    case 'not':
      return filterPaths(node.expr);
    case 'cmp':
      return [node.path];
  }
}

function resolve(obj: unknown, path: string[]): unknown[] {
  if (path.length === 0) return Array.isArray(obj) ? obj : [obj];
  if (obj === null || obj === undefined) return [];
  if (Array.isArray(obj)) return obj.flatMap((o) => resolve(o, path));
  if (typeof obj !== 'object') return [];
  const [head, ...rest] = path;
  return resolve((obj as Record<string, unknown>)[head!], rest);
}

function compare(actual: unknown, op: FilterOp, expected: FilterNode & { kind: 'cmp' }, caseInsensitive: boolean): boolean {
  const want = expected.value;
  if (op === 'pr') return actual !== undefined && actual !== null && actual !== '';
  if (actual === undefined) return op === 'ne';
  let a: unknown = actual instanceof Date ? actual.toISOString() : actual;
  let b: unknown = want;
  if (typeof a === 'string' && typeof b === 'string' && caseInsensitive) {
    a = a.toLowerCase();
    b = b.toLowerCase();
  }
  switch (op) {
    case 'eq':
      return a === b;
    case 'ne':
      return a !== b;
    case 'sw':
      return typeof a === 'string' && typeof b === 'string' && a.startsWith(b);
    case 'ew':
      return typeof a === 'string' && typeof b === 'string' && a.endsWith(b);
    case 'co':
      return typeof a === 'string' && typeof b === 'string' && a.includes(b);
    case 'gt':
      return (a as number | string) > (b as number | string);
    case 'ge':
      return (a as number | string) >= (b as number | string);
    case 'lt':
      return (a as number | string) < (b as number | string);
    case 'le':
      return (a as number | string) <= (b as number | string);
  }
}

export function matchesFilter(node: FilterNode, obj: unknown, options: { caseInsensitive: boolean }): boolean {
  switch (node.kind) {
    case 'and':
      return matchesFilter(node.left, obj, options) && matchesFilter(node.right, obj, options);
    case 'or':
      return matchesFilter(node.left, obj, options) || matchesFilter(node.right, obj, options);
    case 'not':
      return !matchesFilter(node.expr, obj, options);
    case 'cmp': {
      const values = resolve(obj, node.path.split('.'));
      if (values.length === 0) return compare(undefined, node.op, node, options.caseInsensitive);
      if (node.op === 'ne') return values.every((v) => compare(v, 'ne', node, options.caseInsensitive));
      return values.some((v) => compare(v, node.op, node, options.caseInsensitive));
    }
  }
}
