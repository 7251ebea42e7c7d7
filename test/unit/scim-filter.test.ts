import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { matches, parseFilter, parsePath, ScimFilterError, type Filter } from '#local/standins/scim-filter';
import { filterContext, USER_RESOURCE, GROUP_RESOURCE } from '#local/standins/scim-schema';

const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

const ada = {
  id: 'u-1',
  userName: 'Ada.Lovelace@example.com',
  externalId: 'E-100',
  displayName: 'Ada Lovelace',
  active: true,
  title: 'Engineer',
  name: { givenName: 'Ada', familyName: 'Lovelace' },
  emails: [
    { value: 'ada@home.example', type: 'home' },
    { value: 'ada@example.com', type: 'work', primary: true },
  ],
  roles: [{ value: 'admin' }, { value: 'auditor' }],
  [ENTERPRISE]: { employeeNumber: 'E-100', department: 'R&D', manager: { value: 'u-9' } },
  meta: { created: '2024-03-01T10:00:00.000Z', lastModified: '2024-06-01T10:00:00.000Z', version: 'W/"3"' },
};

const users = filterContext(USER_RESOURCE);
const test = (filter: string, resource: Record<string, unknown> = ada) => matches(parseFilter(filter), resource, users);

function filterError(text: string): ScimFilterError {
  try {
    parseFilter(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ScimFilterError);
    return err as ScimFilterError;
  }
  throw new Error(`expected ${text} to be refused`);
}

describe('SCIM filter parser', () => {
  it('binds "and" tighter than "or"', () => {
    const f = parseFilter('title eq "x" or title eq "Engineer" and active eq false');
    expect(f.kind).toBe('or');
    expect((f as Extract<Filter, { left: Filter }>).right.kind).toBe('and');
    // Read as x or (Engineer and inactive): false for an active engineer.
    expect(test('title eq "x" or title eq "Engineer" and active eq false')).toBe(false);
    expect(test('(title eq "x" or title eq "Engineer") and active eq true')).toBe(true);
  });

  it('applies "not" to a parenthesised filter', () => {
    expect(test('not (active eq true)')).toBe(false);
    expect(test('not (title eq "x") and NOT (userName sw "bob")')).toBe(true);
    expect(filterError('not active eq true').message).toMatch(/expected "\(" after "not"/);
  });

  it('treats attribute names and operators case-insensitively', () => {
    expect(test('USERNAME EQ "ada.lovelace@example.com"')).toBe(true);
    expect(test('name.GIVENNAME Sw "ad" AnD Emails.Type eq "work"')).toBe(true);
  });

  it('compares caseExact attributes exactly and the others case-insensitively (RFC 7643)', () => {
    expect(test('externalId eq "e-100"')).toBe(false);
    expect(test('externalId eq "E-100"')).toBe(true);
    expect(test('id eq "U-1"')).toBe(false);
    expect(test('displayName eq "ADA LOVELACE"')).toBe(true);
  });

  it('reads JSON string literals, including escaped quotes and backslashes', () => {
    const odd = { ...ada, displayName: 'Ada "the Countess" \\ Lovelace' };
    expect(test('displayName eq "Ada \\"the Countess\\" \\\\ Lovelace"', odd)).toBe(true);
    expect(test('displayName eq "Ada (Lovelace) and or [x]"', { ...ada, displayName: 'Ada (Lovelace) and or [x]' })).toBe(true);
  });

  it('round-trips any string value quoted as JSON', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        const resource = { ...ada, title: s };
        return matches(parseFilter(`title eq ${JSON.stringify(s)}`), resource, users);
      }),
    );
  });

  it('matches multi-valued attributes when any value matches', () => {
    expect(test('emails.value eq "ada@example.com"')).toBe(true);
    expect(test('emails co "home.example"')).toBe(true);
    expect(test('roles.value eq "auditor"')).toBe(true);
    expect(test('roles.value ne "admin"')).toBe(false);
  });

  it('evaluates value filters, and "emails[type eq "work"].value eq …" as one element', () => {
    expect(test('emails[type eq "work" and value co "@example.com"]')).toBe(true);
    expect(test('emails[type eq "home" and primary eq true]')).toBe(false);
    expect(test('emails[type eq "work"].value eq "ada@example.com"')).toBe(true);
    // The home address is not the work one, even though both exist.
    expect(test('emails[type eq "work"].value eq "ada@home.example"')).toBe(false);
  });

  it('resolves URN-qualified attributes, core and extension', () => {
    expect(test(`${ENTERPRISE}:department eq "r&d"`)).toBe(true);
    expect(test(`${ENTERPRISE}:manager.value eq "u-9"`)).toBe(true);
    expect(test('urn:ietf:params:scim:schemas:core:2.0:User:userName sw "ada"')).toBe(true);
  });

  it('supports pr, sw, ew, co and ordering on strings, numbers and dateTimes', () => {
    expect(test('title pr')).toBe(true);
    expect(test('nickName pr')).toBe(false);
    expect(test('userName ew "@EXAMPLE.COM"')).toBe(true);
    expect(test('meta.lastModified gt "2024-05-01T00:00:00Z"')).toBe(true);
    expect(test('meta.lastModified le "2024-01-01T00:00:00Z"')).toBe(false);
    expect(test('score ge 10', { score: 12 })).toBe(true);
    expect(test('score lt 1.5e1', { score: 12 })).toBe(true);
    expect(test('title eq null', { ...ada, title: undefined })).toBe(true);
  });

  it('uses caseExact of sub-attributes inside value filters (Group members)', () => {
    const group = { displayName: 'Eng', members: [{ value: 'u-1' }, { value: 'u-2' }] };
    const ctx = filterContext(GROUP_RESOURCE);
    expect(matches(parseFilter('members[value eq "u-2"]'), group, ctx)).toBe(true);
    expect(matches(parseFilter('members[value eq "U-2"]'), group, ctx)).toBe(false);
    expect(matches(parseFilter('displayName eq "ENG"'), group, ctx)).toBe(true);
  });

  it.each([
    ['userName eq', /expected a value .* end of input at position 11/],
    ['userName foo "x"', /unknown operator "foo"/],
    ['userName eq "unterminated', /unterminated string starting at position 12/],
    ['userName eq "a" and', /expected an attribute name but found end of input/],
    ['(userName eq "a"', /expected "\)" but found end of input/],
    ['userName eq "a")', /unexpected "\)"/],
    ['active gt true', /operator "gt" cannot compare with true/],
    ['title co 5', /operator "co" needs a string value/],
    ['emails[members[value eq "x"]]', /value filters cannot be nested/],
    ['1abc eq "x"', /invalid attribute name "1abc"/],
    ['userName eq "a\\q"', /malformed string/],
    ['', /filter is empty/],
  ])('refuses %j with scimType invalidFilter', (text, message) => {
    const err = filterError(text);
    expect(err.scimType).toBe('invalidFilter');
    expect(err.message).toMatch(message);
  });
});

describe('SCIM PATCH path parser', () => {
  it('parses plain, sub-attribute, URN and value-filter paths', () => {
    expect(parsePath('active')).toEqual({ path: { attr: 'active' } });
    expect(parsePath('name.givenName')).toEqual({ path: { attr: 'name', sub: 'givenName' } });
    expect(parsePath(`${ENTERPRISE}:manager.value`)).toEqual({ path: { uri: ENTERPRISE, attr: 'manager', sub: 'value' } });
    const p = parsePath('emails[type eq "work"].value');
    expect(p.path).toEqual({ attr: 'emails' });
    expect(p.sub).toBe('value');
    expect(p.filter).toEqual({ kind: 'cmp', path: { attr: 'type' }, op: 'eq', value: 'work' });
  });

  it.each([
    ['members[value eq "x"', /expected "\]"/],
    ['name.givenName[type eq "x"]', /value filter applies to a multi-valued attribute/],
    ['members[value eq "x"].', /invalid sub-attribute/],
    ['members extra', /unexpected "extra"/],
  ])('refuses %j with scimType invalidPath', (text, message) => {
    try {
      parsePath(text);
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ScimFilterError);
      expect((err as ScimFilterError).scimType).toBe('invalidPath');
      expect((err as ScimFilterError).message).toMatch(message);
    }
  });
});
