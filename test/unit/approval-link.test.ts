import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CSRF_MAX_AGE_SECONDS,
  readLinkToken,
  signCsrfToken,
  signLinkToken,
  verifyCsrfToken,
  verifyLinkToken,
} from '#core/approval-link';

const key = () => randomBytes(32).toString('base64url');
const KEY = key();
const APPROVER = 'grace.hopper@acme.example';
const EXPIRES = '2026-12-04T10:00:00.000Z';
const BEFORE = new Date(Date.parse(EXPIRES) - 1);

const token = (over: Partial<{ approvalId: string; approver: string; expiresAt: string }> = {}, keys = [KEY]) =>
  signLinkToken(keys, { approvalId: 'apr_0001', approver: APPROVER, expiresAt: EXPIRES, ...over });

const verify = (t: string, over: Partial<{ approvalId: string; approver: string; keys: string[]; now: Date }> = {}) =>
  verifyLinkToken({ t, approvalId: 'apr_0001', approver: APPROVER, keys: [KEY], now: BEFORE, ...over });

describe('approval link token', () => {
  it('verifies for its approval and approver until just before expiry', () => {
    const t = token();
    expect(verify(t)).toEqual({ ok: true, approvalId: 'apr_0001', expiresAtMs: Date.parse(EXPIRES) });
    // Approver addresses compare case-insensitively (HR systems and policies differ in case).
    expect(verify(t, { approver: 'Grace.Hopper@ACME.example' }).ok).toBe(true);
  });

  it('carries no secret and no approver address, only the approval id and expiry', () => {
    const t = token();
    const payload = Buffer.from(t.split('.')[0]!, 'base64url').toString('utf8');
    expect(JSON.parse(payload)).toEqual({ v: 1, a: 'apr_0001', e: Date.parse(EXPIRES) });
    expect(t).not.toContain(KEY);
    expect(decodeURIComponent(t)).not.toMatch(/hopper/i);
    expect(readLinkToken(t)).toEqual({ approvalId: 'apr_0001', expiresAtMs: Date.parse(EXPIRES) });
  });

  it('is deterministic, so a reminder re-sends the same link', () => {
    expect(token()).toBe(token());
  });

  it('expires exactly at expiresAt (the boundary instant is already expired)', () => {
    const t = token();
    expect(verify(t, { now: new Date(Date.parse(EXPIRES) - 1) }).ok).toBe(true);
    expect(verify(t, { now: new Date(EXPIRES) })).toEqual({ ok: false, reason: 'expired' });
    expect(verify(t, { now: new Date(Date.parse(EXPIRES) + 1) })).toEqual({ ok: false, reason: 'expired' });
  });

  it('refuses a genuine token used for another approval (id swap)', () => {
    const other = token({ approvalId: 'apr_0002' });
    expect(verify(other)).toEqual({ ok: false, reason: 'wrong_approval' });
  });

  it('refuses a token presented for a different approver', () => {
    expect(verify(token(), { approver: 'mallory@acme.example' })).toEqual({ ok: false, reason: 'tampered' });
  });

  it('refuses a token signed with an unknown key, and rotation verifies old and new keys', () => {
    const oldKey = key();
    const newKey = key();
    const fromOld = token({}, [oldKey]);
    const fromNew = token({}, [newKey, oldKey]);
    expect(verify(fromOld)).toEqual({ ok: false, reason: 'tampered' });
    expect(verify(fromOld, { keys: [newKey, oldKey] }).ok).toBe(true);
    expect(verify(fromNew, { keys: [newKey, oldKey] }).ok).toBe(true);
    // Signing uses the first key only: once the old key is retired its links stop working.
    expect(verify(fromNew, { keys: [newKey] }).ok).toBe(true);
    expect(verify(fromOld, { keys: [newKey] })).toEqual({ ok: false, reason: 'tampered' });
  });

  it('re-signing a forged payload with the wrong key, or extending the expiry, is tampering', () => {
    const t = token();
    const [, sig] = t.split('.') as [string, string];
    const later = Buffer.from(JSON.stringify({ v: 1, a: 'apr_0001', e: Date.parse(EXPIRES) + 86_400_000 })).toString('base64url');
    expect(verify(`${later}.${sig}`)).toEqual({ ok: false, reason: 'tampered' });
  });

  it('treats junk as malformed without throwing', () => {
    for (const junk of ['', '.', 'abc', 'a.b.c', `${token()}x.y`, '%%%.%%%', 'x'.repeat(10_000), token().replace('.', '')]) {
      expect(verify(junk)).toEqual({ ok: false, reason: 'malformed' });
    }
  });

  it('refuses to sign without a key or with an id a URL cannot carry', () => {
    expect(() => signLinkToken([], { approvalId: 'apr_1', approver: APPROVER, expiresAt: EXPIRES })).toThrow(/no link-signing key/);
    expect(() => signLinkToken([KEY], { approvalId: 'a/b', approver: APPROVER, expiresAt: EXPIRES })).toThrow(/approvalId/);
    expect(() => verify(token(), { keys: [] })).toThrow(/no link-signing key/);
  });

  it('property: any one-character change of t fails verification', () => {
    const t = token();
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/% ';
    fc.assert(
      fc.property(
        fc.nat({ max: t.length - 1 }),
        fc.constantFrom(...alphabet.split('')),
        fc.constantFrom('replace', 'insert', 'delete'),
        (at, ch, how) => {
          const changed =
            how === 'replace' ? t.slice(0, at) + ch + t.slice(at + 1) : how === 'insert' ? t.slice(0, at) + ch + t.slice(at) : t.slice(0, at) + t.slice(at + 1);
          fc.pre(changed !== t);
          const result = verify(changed);
          expect(result.ok).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('property: every last-character variant of the signature fails (no padding-bit aliases)', () => {
    const t = token();
    const stem = t.slice(0, -1);
    const variants = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('').map((c) => stem + c);
    expect(variants.filter((v) => verify(v).ok)).toEqual([t]);
  });
});

describe('confirmation form token', () => {
  const T = token();
  const ISSUED = new Date('2026-12-02T09:00:00.000Z');
  const csrf = () => signCsrfToken([KEY], { approvalId: 'apr_0001', t: T, issuedAt: ISSUED });
  const check = (value: string | undefined, over: Partial<{ approvalId: string; t: string; now: Date; keys: string[] }> = {}) =>
    verifyCsrfToken({ csrf: value, approvalId: 'apr_0001', t: T, keys: [KEY], now: new Date(ISSUED.getTime() + 60_000), ...over });

  it('accepts the token of the page it rendered', () => {
    expect(check(csrf())).toEqual({ ok: true });
  });

  it('is missing, invalid or stale, with the reason', () => {
    expect(check(undefined)).toEqual({ ok: false, reason: 'missing' });
    expect(check('')).toEqual({ ok: false, reason: 'missing' });
    expect(check('nonsense')).toEqual({ ok: false, reason: 'invalid' });
    expect(check(csrf(), { approvalId: 'apr_0002' })).toEqual({ ok: false, reason: 'invalid' });
    expect(check(csrf(), { t: token({ approvalId: 'apr_0002' }) })).toEqual({ ok: false, reason: 'invalid' });
    expect(check(csrf(), { keys: [key()] })).toEqual({ ok: false, reason: 'invalid' });
    expect(check(csrf(), { now: new Date(ISSUED.getTime() + (CSRF_MAX_AGE_SECONDS + 1) * 1000) })).toEqual({ ok: false, reason: 'stale' });
    // Rewriting the issue time to look fresh breaks the MAC.
    const [, sig] = csrf().split('.');
    expect(check(`${Math.floor(ISSUED.getTime() / 1000) + 3600}.${sig}`)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('a link token cannot stand in for a form token', () => {
    expect(check(T)).toEqual({ ok: false, reason: 'invalid' });
  });
});
