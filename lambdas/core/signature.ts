/**
 * Webhook signatures: the canonical `POST /hris/events` scheme (DESIGN.md contract) and the shared
 * plumbing other HRIS schemes (BambooHR) build on. node:crypto only.
 *
 * Canonical contract:
 *   X-JML-Timestamp: <unix seconds>
 *   X-JML-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + rawBody)>[,v1=<hex>…]
 * Several `v1=` entries may be sent (the sender signs with the old and the new secret while a
 * secret is rotated), and the receiver may hold several secrets (the same rotation, seen from this
 * side). A request verifies when any entry matches any secret.
 *
 * Every comparison is constant-time over equal-length buffers, and every (entry, secret) pair is
 * compared: no early return on content, so timing tells nothing about how close a guess was.
 * Results and messages never carry a secret, a signature or an expected digest.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const CANONICAL_TIMESTAMP_HEADER = 'X-JML-Timestamp';
export const CANONICAL_SIGNATURE_HEADER = 'X-JML-Signature';
export const CANONICAL_SIGNATURE_SCHEME = 'v1';
/** Allowed distance between the sender's timestamp and our clock, either way. */
export const DEFAULT_TOLERANCE_SECONDS = 300;
/** More signature entries than this is not a rotation, it is someone fishing. */
export const MAX_SIGNATURE_ENTRIES = 8;

export const SIGNATURE_FAILURES = [
  'missing_timestamp',
  'missing_signature',
  'malformed_signature',
  'stale_timestamp',
  'bad_signature',
] as const;
export type SignatureFailure = (typeof SIGNATURE_FAILURES)[number];
export type VerifyResult = { ok: true } | { ok: false; reason: SignatureFailure };

/**
 * Request headers as the runtimes hand them over: API Gateway events (`Record<string, string |
 * undefined>`), Node's `IncomingHttpHeaders` (arrays for repeated headers) or a fetch `Headers`.
 */
export type HeaderSource =
  | Readonly<Record<string, string | readonly string[] | undefined>>
  | { get(name: string): string | null };

export type RawBody = string | Uint8Array;

/** A secret or, during a rotation, the list of secrets currently accepted. */
export type SecretInput = string | readonly string[];

export interface VerifyCanonicalInput {
  secret: SecretInput;
  /** The body exactly as received (bytes or the undecoded string); never re-serialised JSON. */
  rawBody: RawBody;
  headers: HeaderSource;
  nowSeconds: number;
  toleranceSeconds?: number;
}

export interface SignatureScheme {
  timestampHeader: string;
  signatureHeader: string;
  /** What a well-formed signature header looks like, for the `malformed_signature` message. */
  signatureFormat: string;
}

export const CANONICAL_SCHEME: SignatureScheme = {
  timestampHeader: CANONICAL_TIMESTAMP_HEADER,
  signatureHeader: CANONICAL_SIGNATURE_HEADER,
  signatureFormat: `one to ${MAX_SIGNATURE_ENTRIES} comma-separated ${CANONICAL_SIGNATURE_SCHEME}=<64 lowercase hex digits> entries`,
};

/**
 * A sentence a person (the HRIS admin reading a 401, an operator reading a log) can act on. Names
 * the headers involved, never their values.
 */
export function describeSignatureFailure(
  reason: SignatureFailure,
  scheme: SignatureScheme = CANONICAL_SCHEME,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): string {
  switch (reason) {
    case 'missing_timestamp':
      return `${scheme.timestampHeader} header is missing, repeated with different values, or not a valid time`;
    case 'missing_signature':
      return `${scheme.signatureHeader} header is missing`;
    case 'malformed_signature':
      return `${scheme.signatureHeader} header must be ${scheme.signatureFormat}`;
    case 'stale_timestamp':
      return `${scheme.timestampHeader} is more than ${toleranceSeconds} s away from the receiver's clock (replayed request or sender clock skew)`;
    case 'bad_signature':
      return `${scheme.signatureHeader} does not match the body and ${scheme.timestampHeader} for any configured secret`;
  }
}

/** Headers to send with a canonical event. Used by the CLI, the demo and tests. */
export function signCanonical(
  secret: string,
  rawBody: RawBody,
  timestampSeconds: number,
): { 'X-JML-Timestamp': string; 'X-JML-Signature': string } {
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new RangeError('signCanonical: timestampSeconds must be a non-negative whole number of seconds');
  }
  const timestamp = String(timestampSeconds);
  const digest = hmacSha256(requireSecrets([secret], 'signCanonical')[0]!, [`${timestamp}.`, rawBody]);
  return {
    'X-JML-Timestamp': timestamp,
    'X-JML-Signature': `${CANONICAL_SIGNATURE_SCHEME}=${digest.toString('hex')}`,
  };
}

export function verifyCanonical(input: VerifyCanonicalInput): VerifyResult {
  const secrets = requireSecrets(input.secret, 'verifyCanonical');
  const tolerance = input.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;

  const timestamp = headerValue(input.headers, CANONICAL_TIMESTAMP_HEADER);
  if (timestamp === undefined) return fail('missing_timestamp');
  const timestampSeconds = parseUnixSeconds(timestamp);
  if (timestampSeconds === undefined) return fail('missing_timestamp');

  const signatureHeader = headerValue(input.headers, CANONICAL_SIGNATURE_HEADER, ',');
  if (signatureHeader === undefined || signatureHeader.trim() === '') return fail('missing_signature');
  const provided = parseCanonicalSignature(signatureHeader);
  if (!provided) return fail('malformed_signature');

  if (!withinWindow(timestampSeconds, input.nowSeconds, tolerance)) return fail('stale_timestamp');

  const expected = secrets.map((s) => hmacSha256(s, [`${timestamp}.`, input.rawBody]));
  return anyMatch(expected, provided) ? { ok: true } : fail('bad_signature');
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing (also used by the BambooHR scheme).

export function fail(reason: SignatureFailure): VerifyResult {
  return { ok: false, reason };
}

/** The secrets as a non-empty list; an unconfigured secret is a deployment error, not a 401. */
export function requireSecrets(secret: SecretInput, caller: string): string[] {
  const list = typeof secret === 'string' ? [secret] : [...secret];
  if (list.length === 0 || list.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw new Error(`${caller}: no signing secret configured (empty secret or empty secret list)`);
  }
  return list;
}

export function hmacSha256(key: string, parts: ReadonlyArray<RawBody>): Buffer {
  const mac = createHmac('sha256', key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/**
 * Case-insensitive header lookup. Repeated headers (arrays) are joined with `joinWith` when one is
 * given (a list-valued header such as the signature); otherwise they must all be equal, or the
 * header counts as absent (two different timestamps cannot both be believed).
 */
export function headerValue(headers: HeaderSource, name: string, joinWith?: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    const v = (headers as { get(name: string): string | null }).get(name);
    return v === null ? undefined : v;
  }
  const wanted = name.toLowerCase();
  const values: string[] = [];
  for (const [key, value] of Object.entries(headers as Record<string, string | readonly string[] | undefined>)) {
    if (key.toLowerCase() !== wanted || value === undefined) continue;
    if (typeof value === 'string') values.push(value);
    else values.push(...value);
  }
  if (values.length === 0) return undefined;
  if (joinWith !== undefined) return values.join(joinWith);
  const first = values[0]!;
  return values.every((v) => v === first) ? first : undefined;
}

const UNIX_SECONDS = /^\d{1,12}$/;

/** Whole unix seconds, as the canonical contract sends them; anything else is not a timestamp. */
export function parseUnixSeconds(value: string): number | undefined {
  const v = value.trim();
  return UNIX_SECONDS.test(v) ? Number(v) : undefined;
}

export function withinWindow(timestampSeconds: number, nowSeconds: number, toleranceSeconds: number): boolean {
  return Number.isFinite(nowSeconds) && Math.abs(nowSeconds - timestampSeconds) <= toleranceSeconds;
}

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/**
 * The `v1` digests of a canonical signature header, or undefined when the header is malformed.
 * Entries of other schemes (`v0=`, a future `v2=`) are skipped, so a sender can add a scheme before
 * receivers understand it; a header without any `v1` entry is malformed.
 */
function parseCanonicalSignature(header: string): Buffer[] | undefined {
  const entries = header.split(',').map((e) => e.trim());
  if (entries.length > MAX_SIGNATURE_ENTRIES) return undefined;
  const digests: Buffer[] = [];
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq <= 0) return undefined;
    const scheme = entry.slice(0, eq);
    const value = entry.slice(eq + 1);
    if (!/^v\d+$/.test(scheme)) return undefined;
    if (scheme !== CANONICAL_SIGNATURE_SCHEME) continue;
    if (!HEX_SHA256.test(value)) return undefined;
    digests.push(Buffer.from(value, 'hex'));
  }
  return digests.length ? digests : undefined;
}

/**
 * True when any provided digest equals any expected one. Compares every pair with
 * `timingSafeEqual` (all 32-byte buffers) and folds the results, so the time taken depends only
 * on how many entries and secrets there are, never on their content.
 */
export function anyMatch(expected: readonly Buffer[], provided: readonly Buffer[]): boolean {
  let matched = 0;
  for (const p of provided) {
    for (const e of expected) {
      // Lengths are public (both are SHA-256 digests once parsed); the guard keeps timingSafeEqual from throwing.
      const equal = p.length === e.length && timingSafeEqual(p, e);
      matched |= equal ? 1 : 0;
    }
  }
  return matched === 1;
}
