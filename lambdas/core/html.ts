/**
 * Server-rendered HTML without a template engine: a tagged template that escapes every
 * interpolation unless it is already `SafeHtml` (the result of another `html` template, or text
 * explicitly marked with `trustedHtml`). HR values, approver input and target responses are
 * attacker-controllable, so escaping is the default and opting out is visible in the code.
 *
 * Escaping covers text and *quoted* attribute values (`&`, `<`, `>`, `"`, `'`). Always quote
 * attributes; never interpolate into `<script>`, `<style>`, event handlers or unquoted attributes.
 * URLs go through `safeUrl` first (an escaped `javascript:` URL is still a script).
 *
 * Used by the evidence summary, the approval page and the approval emails.
 */

const BRAND = Symbol('SafeHtml');

/** Markup that is already safe to emit as is. */
export class SafeHtml {
  readonly [BRAND] = true;
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Marks a string as markup. Only for constants or markup this code built itself. */
export function trustedHtml(markup: string): SafeHtml {
  return new SafeHtml(markup);
}

export function isSafeHtml(value: unknown): value is SafeHtml {
  return value instanceof SafeHtml;
}

/**
 * Renders one interpolated value:
 *  - `SafeHtml` as is; arrays item by item (so `${rows.map((r) => html`<tr>…</tr>`)}` works);
 *  - `null`, `undefined` and `false` as nothing (so `${cond && html`…`}` works);
 *  - strings, numbers, bigints and `true` escaped as text; a `Date` as its ISO string;
 *  - anything else (plain objects, functions, symbols) is a bug: it throws rather than emit
 *    `[object Object]` into a page.
 */
function render(value: unknown): string {
  if (value instanceof SafeHtml) return value.value;
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return value.map(render).join('');
  switch (typeof value) {
    case 'string':
      return escapeHtml(value);
    case 'number':
    case 'bigint':
    case 'boolean':
      return escapeHtml(String(value));
    default:
      if (value instanceof Date) return escapeHtml(value.toISOString());
      throw new TypeError(`html: cannot interpolate a ${typeof value === 'object' ? 'plain object' : typeof value}; format it as text first`);
  }
}

/**
 * Bidirectional embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069). In a
 * name they would turn the text that follows around ("…approve" shown as "evorppa…"): an approver
 * could be shown a misleading request.
 */
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/;
const BIDI_CONTROLS_ALL = /[\u202A-\u202E\u2066-\u2069]/g;

/**
 * A value in text is isolated in `<bdi>` when it carries bidi controls, so they cannot reach the
 * text around it; in an attribute (no markup possible) the controls are dropped.
 */
function renderIn(out: string, value: unknown): string {
  if (typeof value !== 'string' || !BIDI_CONTROLS.test(value)) return render(value);
  const inTag = out.lastIndexOf('<') > out.lastIndexOf('>');
  return inTag ? escapeHtml(value.replace(BIDI_CONTROLS_ALL, '')) : `<bdi>${escapeHtml(value)}</bdi>`;
}

/** The tagged template: `html\`<p>${name}</p>\`` escapes `name`. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += renderIn(out, values[i]) + (strings[i + 1] ?? '');
  return new SafeHtml(out);
}

/** Joins fragments with a separator that is itself escaped unless it is `SafeHtml`. */
export function joinHtml(parts: readonly unknown[], separator: unknown = ''): SafeHtml {
  const sep = render(separator);
  return new SafeHtml(parts.map(render).join(sep));
}

const SAFE_SCHEMES = new Set(['http:', 'https:', 'mailto:']);

/**
 * A URL fit for an `href`: absolute http(s)/mailto URLs only (relative URLs are resolved against
 * nothing, so they are refused too). Anything else — `javascript:`, `data:`, malformed — becomes
 * `fallback`. The result still needs escaping, which `html` does when it is interpolated.
 */
export function safeUrl(url: string, fallback = '#'): string {
  try {
    const parsed = new URL(url);
    return SAFE_SCHEMES.has(parsed.protocol) ? parsed.href : fallback;
  } catch {
    return fallback;
  }
}
