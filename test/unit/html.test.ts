import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { escapeHtml, html, joinHtml, safeUrl, trustedHtml } from '#core/html';

describe('html tagged template', () => {
  it('escapes every interpolated string, in text and in quoted attributes', () => {
    const name = `<script>alert("x")</script> & O'Brien`;
    const out = html`<p title="${name}">${name}</p>`.toString();
    expect(out).toBe(
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; O&#39;Brien">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; O&#39;Brien</p>',
    );
  });

  it('breaks out of neither an attribute nor an element, whatever the text (property)', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const out = html`<a title="${s}">${s}</a>`.value;
        // Only the template's own delimiters remain: two '<', two '>', two '"', no "'".
        expect(out.match(/</g)).toHaveLength(2);
        expect(out.match(/>/g)).toHaveLength(2);
        expect(out.match(/"/g)).toHaveLength(2);
        expect(out).not.toContain("'");
      }),
    );
  });

  it('isolates a name carrying bidi controls in text, and drops the controls in an attribute', () => {
    const name = 'Eve \u202Eevorppa\u202C <b>';
    expect(String(html`<p>Approve access for ${name} now</p>`)).toBe('<p>Approve access for <bdi>Eve \u202Eevorppa\u202C &lt;b&gt;</bdi> now</p>');
    expect(String(html`<input title="${name}" value="x">`)).toBe('<input title="Eve evorppa &lt;b&gt;" value="x">');
    expect(String(html`<p>${'Zoë Ångström'}</p>`)).toBe('<p>Zoë Ångström</p>'); // ordinary names untouched
  });

  it('keeps nested templates and trusted markup as markup, and joins arrays', () => {
    const rows = ['a<b', 'c'].map((v) => html`<li>${v}</li>`);
    expect(html`<ul>${rows}</ul>`.value).toBe('<ul><li>a&lt;b</li><li>c</li></ul>');
    expect(html`${trustedHtml('<br>')}`.value).toBe('<br>');
    expect(joinHtml(['x&', html`<i>y</i>`], trustedHtml('<br>')).value).toBe('x&amp;<br><i>y</i>');
    expect(joinHtml(['a', 'b'], '<hr>').value).toBe('a&lt;hr&gt;b');
  });

  it('renders null, undefined and false as nothing, numbers and dates as text', () => {
    const missing: string | undefined = undefined;
    expect(html`[${null}${missing}${false}]`.value).toBe('[]');
    expect(html`${0} ${1.5} ${true}`.value).toBe('0 1.5 true');
    expect(html`${new Date('2026-03-02T09:15:00Z')}`.value).toBe('2026-03-02T09:15:00.000Z');
  });

  it('refuses to interpolate a plain object instead of printing [object Object]', () => {
    expect(() => html`${{ a: 1 }}`).toThrow(/cannot interpolate a plain object/);
  });

  it('escapes the five markup characters and nothing else', () => {
    expect(escapeHtml(`&<>"'é\u00a0`)).toBe('&amp;&lt;&gt;&quot;&#39;é\u00a0');
  });
});

describe('safeUrl', () => {
  it('keeps absolute http, https and mailto URLs', () => {
    expect(safeUrl('https://jml.example/approvals/a1?t=x')).toBe('https://jml.example/approvals/a1?t=x');
    expect(safeUrl('mailto:owner@acme.example')).toBe('mailto:owner@acme.example');
  });

  it('replaces script, data and relative URLs with the fallback', () => {
    expect(safeUrl('javascript:alert(1)')).toBe('#');
    expect(safeUrl(' JavaScript:alert(1)')).toBe('#');
    expect(safeUrl('data:text/html,<script>')).toBe('#');
    expect(safeUrl('/relative', 'about:blank')).toBe('about:blank');
  });
});
