/**
 * Approval links and the form token of the confirmation page. node:crypto only.
 *
 * Link token `t` (in `GET /approvals/{id}?t=…`):
 *
 *     t = base64url(payload) "." base64url(HMAC-SHA256(key, "jml.approval-link.v1." + base64url(payload) + "." + approver))
 *     payload = {"v":1,"a":"<approvalId>","e":<expiresAt, epoch ms>}
 *
 * The MAC covers {approvalId, approver, expiresAt}: a token is bound to one approval and one
 * approver and expires with the approval. The approver is *signed but not carried*: the verifier
 * takes it from the approval record the token names, so the approver's address never lands in
 * URLs, proxy logs or browser history, and the token holds nothing secret (no task token, no key
 * material). Tokens are deterministic: a reminder re-sends the very same link.
 *
 * Both parts must be canonical base64url (re-encoding gives back the same text): Node's decoder
 * ignores stray characters and the unused low bits of the last character, and without that
 * check two different strings would carry the same signature.
 *
 * Single use is not a property of the token: the approval record decides once (ledger
 * `decideApproval` is a conditional write), and a decided approval's link answers 410.
 *
 * Key rotation: `secrets.get('linkSigning')` may return several keys; sign with the first,
 * verify against each (every key is tried, constant-time, so timing says nothing about which).
 *
 * Form token (`csrf`, a hidden field of the confirmation page): an HMAC bound to the approval,
 * to `t` and to the time the page was rendered, under a different label than links so neither
 * can stand in for the other. A POST without a fresh one never decides, so a cross-site form or
 * a scanner that replays a bare POST with `t` cannot decide on the approver's behalf.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const LINK_TOKEN_VERSION = 1;
const LINK_LABEL = 'jml.approval-link.v1.';
const CSRF_LABEL = 'jml.approval-csrf.v1.';

/** How long a rendered confirmation page may be submitted (reloading the link renders a new one). */
export const CSRF_MAX_AGE_SECONDS = 8 * 60 * 60;
/** Clock skew tolerated for a form token that appears to come from the future. */
const CSRF_FUTURE_SKEW_SECONDS = 60;
/** Longer than any genuine token; anything bigger is refused before any work is done. */
export const MAX_LINK_TOKEN_LENGTH = 512;

/** Approval ids this code issues (`apr_` + hex) and anything similar; never free text. */
export const APPROVAL_ID = /^[A-Za-z0-9_-]{1,64}$/;

export type LinkFailure =
  /** Not a token at all (truncated, wrong shape, bad encoding). Reported to people as tampered. */
  | 'malformed'
  /** Well-formed but the signature does not match for any key. */
  | 'tampered'
  /** A genuine token for another approval than the one in the URL. */
  | 'wrong_approval'
  /** Genuine, for this approval, but its expiry has passed. */
  | 'expired';

export interface LinkClaims {
  approvalId: string;
  /** Expiry instant, epoch ms. */
  expiresAtMs: number;
}

export type LinkVerification = ({ ok: true } & LinkClaims) | { ok: false; reason: LinkFailure };

export interface SignLinkInput {
  approvalId: string;
  approver: string;
  /** ISO-8601 instant (the approval record's `expiresAt`). */
  expiresAt: string;
}

/** The signing keys as a non-empty list; an unconfigured key is a deployment error. */
function requireKeys(keys: readonly string[], caller: string): readonly string[] {
  if (keys.length === 0 || keys.some((k) => typeof k !== 'string' || k.length === 0)) {
    throw new Error(`${caller}: no link-signing key configured (empty key or empty key list)`);
  }
  return keys;
}

function mac(key: string, label: string, ...parts: string[]): Buffer {
  const h = createHmac('sha256', key);
  h.update(label);
  h.update(parts.join('.'));
  return h.digest();
}

/** Approver identity as signed: addresses compare case-insensitively. */
function approverKey(approver: string): string {
  return approver.trim().toLowerCase();
}

/** Decodes base64url only when `text` is its canonical encoding (see the module comment). */
function decodeCanonical(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : undefined;
}

/** Constant-time "does any expected digest equal `provided`", trying every key. */
function anyEqual(expected: readonly Buffer[], provided: Buffer): boolean {
  let matched = 0;
  for (const e of expected) matched |= e.length === provided.length && timingSafeEqual(e, provided) ? 1 : 0;
  return matched === 1;
}

export function signLinkToken(keys: readonly string[], input: SignLinkInput): string {
  const [key] = requireKeys(keys, 'signLinkToken');
  if (!APPROVAL_ID.test(input.approvalId)) throw new RangeError('signLinkToken: approvalId has characters a link cannot carry');
  const expiresAtMs = Date.parse(input.expiresAt);
  if (!Number.isSafeInteger(expiresAtMs)) throw new RangeError('signLinkToken: expiresAt is not an ISO-8601 instant');
  const payload = Buffer.from(JSON.stringify({ v: LINK_TOKEN_VERSION, a: input.approvalId, e: expiresAtMs })).toString('base64url');
  const signature = mac(key!, LINK_LABEL, payload, approverKey(input.approver)).toString('base64url');
  return `${payload}.${signature}`;
}

interface ParsedToken extends LinkClaims {
  payload: string;
  signature: Buffer;
}

function parseLinkToken(t: string): ParsedToken | undefined {
  if (typeof t !== 'string' || t.length === 0 || t.length > MAX_LINK_TOKEN_LENGTH) return undefined;
  const parts = t.split('.');
  if (parts.length !== 2) return undefined;
  const [payload, sig] = parts as [string, string];
  const payloadBytes = decodeCanonical(payload);
  const signature = decodeCanonical(sig);
  if (!payloadBytes || !signature || signature.length !== 32) return undefined;
  let claims: unknown;
  try {
    claims = JSON.parse(payloadBytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof claims !== 'object' || claims === null) return undefined;
  const { v, a, e } = claims as Record<string, unknown>;
  if (v !== LINK_TOKEN_VERSION || typeof a !== 'string' || !APPROVAL_ID.test(a) || typeof e !== 'number' || !Number.isSafeInteger(e)) {
    return undefined;
  }
  return { payload, signature, approvalId: a, expiresAtMs: e };
}

/**
 * The approval a token *claims* to be for, before any verification: the caller needs it to look
 * up the approver the signature must cover. Never act on it without `verifyLinkToken`.
 */
export function readLinkToken(t: string): LinkClaims | undefined {
  const parsed = parseLinkToken(t);
  return parsed && { approvalId: parsed.approvalId, expiresAtMs: parsed.expiresAtMs };
}

export interface VerifyLinkInput {
  t: string;
  /** The approval the request is about (the `{id}` of the URL). */
  approvalId: string;
  /** Approver of the approval the token claims (`readLinkToken(t).approvalId`), from the ledger. */
  approver: string;
  keys: readonly string[];
  now: Date;
}

/**
 * Checks, in this order: shape, signature (any key), approval, expiry. A token is expired from
 * its `expiresAt` instant on (valid while now < expiresAt, like the ledger's conditional write).
 */
export function verifyLinkToken(input: VerifyLinkInput): LinkVerification {
  const keys = requireKeys(input.keys, 'verifyLinkToken');
  const parsed = parseLinkToken(input.t);
  if (!parsed) return { ok: false, reason: 'malformed' };
  const who = approverKey(input.approver);
  const expected = keys.map((k) => mac(k, LINK_LABEL, parsed.payload, who));
  if (!anyEqual(expected, parsed.signature)) return { ok: false, reason: 'tampered' };
  if (parsed.approvalId !== input.approvalId) return { ok: false, reason: 'wrong_approval' };
  if (input.now.getTime() >= parsed.expiresAtMs) return { ok: false, reason: 'expired' };
  return { ok: true, approvalId: parsed.approvalId, expiresAtMs: parsed.expiresAtMs };
}

// ---------------------------------------------------------------------------------------------
// Form token.

export type CsrfFailure = 'missing' | 'invalid' | 'stale';
export type CsrfVerification = { ok: true } | { ok: false; reason: CsrfFailure };

export function signCsrfToken(keys: readonly string[], input: { approvalId: string; t: string; issuedAt: Date }): string {
  const [key] = requireKeys(keys, 'signCsrfToken');
  const issued = String(Math.floor(input.issuedAt.getTime() / 1000));
  return `${issued}.${mac(key!, CSRF_LABEL, input.approvalId, input.t, issued).toString('base64url')}`;
}

export function verifyCsrfToken(input: {
  csrf: string | undefined;
  approvalId: string;
  t: string;
  keys: readonly string[];
  now: Date;
  maxAgeSeconds?: number;
}): CsrfVerification {
  const keys = requireKeys(input.keys, 'verifyCsrfToken');
  const csrf = input.csrf ?? '';
  if (csrf === '') return { ok: false, reason: 'missing' };
  const m = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(csrf);
  const signature = m ? decodeCanonical(m[2]!) : undefined;
  if (!m || !signature) return { ok: false, reason: 'invalid' };
  const issued = m[1]!;
  const expected = keys.map((k) => mac(k, CSRF_LABEL, input.approvalId, input.t, issued));
  if (!anyEqual(expected, signature)) return { ok: false, reason: 'invalid' };
  const age = Math.floor(input.now.getTime() / 1000) - Number(issued);
  if (age < -CSRF_FUTURE_SKEW_SECONDS) return { ok: false, reason: 'invalid' };
  if (age > (input.maxAgeSeconds ?? CSRF_MAX_AGE_SECONDS)) return { ok: false, reason: 'stale' };
  return { ok: true };
}
