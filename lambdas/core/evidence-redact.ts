/**
 * Secret redaction for evidence (defence in depth). Adapters already keep tokens, client secrets
 * and Temporary Access Pass codes out of change records and errors; this pass makes sure that a
 * slip anywhere upstream still never reaches an Object-Locked bundle, where it could not be
 * deleted for years.
 *
 * Two rules:
 *  - a member whose *key* names a secret (token, secret, password, authorization,
 *    temporaryAccessPass, api key, private key, cookie — any case or separator) has its whole
 *    value replaced by `[REDACTED]`;
 *  - inside any string, credentials that announce themselves (`Bearer …`, `SSWS …`, `Basic …`,
 *    JWTs) are replaced, so an error message that echoes a header does not leak it.
 */

export const REDACTED = '[REDACTED]';

const SECRET_KEY = /token|secret|passw(or)?d|authori[sz]ation|temporaryaccesspass|apikey|privatekey|cookie/;

/** True for member names that hold secrets (`clientSecret`, `access_token`, `X-API-Key`, …). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key.toLowerCase().replace(/[^a-z0-9]/g, ''));
}

const CREDENTIAL_IN_TEXT = /\b(Bearer|SSWS|Basic)\s+[A-Za-z0-9\-._~+/]{8,}=*/gi;
const JWT = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;

/** Replaces credentials that appear inside free text. */
export function redactText(text: string): string {
  return text.replace(CREDENTIAL_IN_TEXT, (_m, scheme: string) => `${scheme} ${REDACTED}`).replace(JWT, REDACTED);
}

export interface Redacted<T> {
  value: T;
  /** Paths of what was redacted (`approvals[0].linkToken`); names only, never the values. */
  paths: string[];
}

function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  const safe = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
  return path ? `${path}.${safe}` : safe;
}

/**
 * A deep copy of a JSON-like value with secrets redacted. `Date`s become ISO strings; functions,
 * symbols and `undefined` members are dropped, as JSON would.
 */
export function redactSecrets<T>(value: T, root = ''): Redacted<T> {
  const paths: string[] = [];
  const walk = (v: unknown, path: string): unknown => {
    if (typeof v === 'string') {
      const r = redactText(v);
      if (r !== v) paths.push(path || '(root)');
      return r;
    }
    if (v === null || typeof v === 'number' || typeof v === 'boolean') return v;
    if (v instanceof Date) return v.toISOString();
    if (Array.isArray(v)) return v.map((item, i) => walk(item, join(path, i)));
    if (typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
        if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
        const p = join(path, k);
        if (isSecretKey(k) && item !== null && item !== '') {
          out[k] = REDACTED;
          paths.push(p);
        } else {
          out[k] = walk(item, p);
        }
      }
      return out;
    }
    return undefined;
  };
  return { value: walk(value, root) as T, paths };
}
