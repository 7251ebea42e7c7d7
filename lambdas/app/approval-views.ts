/**
 * What approvers see: the confirmation page behind an emailed link, the result pages, and the
 * emails (plain text + HTML). Server-rendered with the escaping `html` template: names come from
 * HR, rationales from approvers, and both are attacker-controllable.
 *
 * Pages are self-contained (one inline stylesheet allowed by its hash, no scripts at all, no
 * external assets), readable on a phone (fluid, large touch targets), and accessible: `lang`,
 * one h1, labelled controls, status in words (never colour alone), text contrast ≥ 4.5:1 and a
 * visible keyboard focus ring.
 */
import { createHash } from 'node:crypto';
import * as z from 'zod';
import { html, safeUrl, trustedHtml, type SafeHtml } from '#core/html';
import type { ApprovalRecord } from '#core/ledger';

/** Longest rationale accepted (characters after trimming). */
export const MAX_RATIONALE_CHARS = 1000;

/**
 * The request as stored on the approval record (`ApprovalRecord.request`) and shown to the
 * approver: who, what, the risk and why. Parsed on read: the ledger holds it as opaque JSON.
 */
export const ApprovalDetailsSchema = z.object({
  kind: z.enum(['bundle', 'dataHandling']),
  lifecycle: z.string(),
  person: z.object({
    employeeId: z.string(),
    name: z.string(),
    department: z.string(),
    jobCode: z.string(),
    location: z.string(),
    employmentType: z.string(),
    startDate: z.string().optional(),
  }),
  bundles: z.array(z.object({ name: z.string(), description: z.string().optional(), privileged: z.boolean() })),
  entitlements: z.array(z.object({ target: z.string(), targetName: z.string(), type: z.string(), value: z.string() })),
  dataHandling: z.object({ action: z.string(), description: z.string(), target: z.string().optional() }).optional(),
  privileged: z.boolean(),
  reason: z.string(),
  /** Asked again because the first approver let the window lapse. */
  escalation: z.boolean(),
});
export type ApprovalDetails = z.infer<typeof ApprovalDetailsSchema>;

export interface Company {
  name: string;
  timeZone: string;
}

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

// ---------------------------------------------------------------------------------------------
// Formatting.

const LIFECYCLE_PHRASE: Record<string, string> = {
  joiner: 'is joining',
  rehire: 'is rejoining',
  mover: 'is changing role',
  leaver: 'is leaving',
  leave_of_absence: 'is going on leave',
  return: 'is returning from leave',
};

const formatters = new Map<string, Intl.DateTimeFormat>();

/** `Fri 4 Dec 2026, 10:00 GMT` in the company's zone (approvers read deadlines as wall-clock time). */
export function formatDeadline(iso: string, timeZone: string): string {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      weekday: 'short',
      day: 'numeric',
      month: 'short',
      year: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
      timeZoneName: 'short',
    });
    formatters.set(timeZone, f);
  }
  return f.format(new Date(iso));
}

function entitlementText(e: ApprovalDetails['entitlements'][number]): string {
  return `${e.targetName}: ${e.type} ${e.value}`;
}

function whatText(d: ApprovalDetails): string {
  if (d.kind === 'dataHandling' && d.dataHandling) return d.dataHandling.description;
  const names = d.bundles.map((b) => b.name);
  return `${names.length === 1 ? 'access bundle' : 'access bundles'} ${names.join(', ')}`;
}

function riskText(d: ApprovalDetails): string {
  if (d.kind === 'dataHandling') return 'Data handling for a leaver';
  return d.privileged ? 'Privileged access' : 'Standard access';
}

function subjectFor(d: ApprovalDetails, kind: EmailKind): string {
  const what = d.kind === 'dataHandling' ? 'data handling' : d.privileged ? 'privileged access' : 'access';
  const prefix = kind === 'reminder' ? 'Reminder: approval needed' : kind === 'escalation' ? 'Escalated: approval needed' : 'Approval needed';
  return `${prefix}: ${what} for ${d.person.name}`;
}

function outcomeText(d: ApprovalDetails): { approve: string; reject: string } {
  if (d.kind === 'dataHandling') {
    return {
      approve: `Approve: "${d.dataHandling?.description ?? 'the data handling step'}" is carried out.`,
      reject: 'Reject: this step is not carried out. The leaver is still disabled and the rest of the run proceeds.',
    };
  }
  const bundles = d.bundles.map((b) => b.name).join(', ');
  return {
    approve: `Approve: ${bundles} ${d.bundles.length === 1 ? 'is' : 'are'} granted and the run continues.`,
    reject: `Reject: ${bundles} ${d.bundles.length === 1 ? 'is' : 'are'} not granted. The rest of the run proceeds.`,
  };
}

// ---------------------------------------------------------------------------------------------
// Page chrome.

const CSS = `
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1a1a1a;background:#f4f5f7}
header{background:#1f3a5f;color:#fff;padding:.75rem 1rem}
header p{margin:0;font-weight:600}
main{max-width:40rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;line-height:1.25;margin:.5rem 0 1rem}
h2{font-size:1.1rem;margin:1.25rem 0 .5rem}
.card>h2:first-child{margin-top:0}
h3{font-size:1rem;margin:1rem 0 .25rem}
.card{background:#fff;border:1px solid #c9ced6;border-radius:.5rem;padding:1rem;margin:0 0 1rem}
dl{margin:0;display:grid;grid-template-columns:minmax(6rem,max-content) 1fr;gap:.35rem 1rem}
dt{font-weight:600;color:#3d4450}
dd{margin:0;overflow-wrap:anywhere}
ul{margin:.25rem 0 0;padding-left:1.25rem}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:1rem;font-size:.875rem;font-weight:600;border:1px solid currentColor}
.privileged{color:#8a1c1c;background:#fdecec}
.standard{color:#1d4d2b;background:#e8f4ec}
label{display:block;font-weight:600;margin:0 0 .25rem}
.help{margin:.25rem 0 .75rem;color:#3d4450;font-size:.925rem}
textarea{width:100%;min-height:6rem;font:inherit;padding:.5rem;border:1px solid #6b7280;border-radius:.375rem;color:#1a1a1a;background:#fff}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1rem}
button{flex:1 1 10rem;min-height:3rem;font:inherit;font-weight:600;border-radius:.375rem;border:2px solid transparent;cursor:pointer;padding:.5rem 1rem}
.approve{background:#1d6b35;color:#fff}
.reject{background:#fff;color:#8a1c1c;border-color:#8a1c1c}
button:focus-visible,textarea:focus-visible,a:focus-visible{outline:3px solid #f5a300;outline-offset:2px}
.alert{border-left:.375rem solid #8a1c1c;background:#fdecec;padding:.75rem 1rem;margin:0 0 1rem}
.ok{border-left:.375rem solid #1d6b35;background:#e8f4ec;padding:.75rem 1rem;margin:0 0 1rem}
.notice{border-left:.375rem solid #1f3a5f;background:#e9eef5;padding:.75rem 1rem;margin:0 0 1rem}
.fine{color:#3d4450;font-size:.875rem}
blockquote{margin:.5rem 0;padding:.5rem .75rem;border-left:.25rem solid #c9ced6;background:#f8f9fb;white-space:pre-wrap;overflow-wrap:anywhere}
`.trim();

const STYLE_HASH = `sha256-${createHash('sha256').update(CSS).digest('base64')}`;

/**
 * Headers of every approval page. No scripts can run (`default-src 'none'`, no `script-src`),
 * the one stylesheet is allowed by its hash, forms may only post back to the API, the page
 * cannot be framed (clickjacking a decision), and neither the page nor its link (`t`) is cached
 * or sent on as a referrer.
 */
export function pageHeaders(formOrigin: string): Record<string, string> {
  return {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    Pragma: 'no-cache',
    'Content-Security-Policy': [
      "default-src 'none'",
      `style-src '${STYLE_HASH}'`,
      `form-action ${formOrigin}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join('; '),
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
    'X-Robots-Tag': 'noindex, nofollow',
  };
}

function page(company: Company, title: string, body: SafeHtml): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>${title} · ${company.name}</title>
<style>${trustedHtml(CSS)}</style>
</head>
<body>
<header><p>${company.name} · Access approvals</p></header>
<main>
${body}
</main>
</body>
</html>
`.value;
}

function requestSummary(d: ApprovalDetails, approval: Pick<ApprovalRecord, 'expiresAt'>, company: Company): SafeHtml {
  const risk = d.kind === 'bundle' && d.privileged ? 'privileged' : 'standard';
  const bundles = d.bundles.map((b) => html`<li><strong>${b.name}</strong>${b.description ? html` — ${b.description}` : ''}</li>`);
  const entitlements = d.entitlements.map((e) => html`<li>${e.targetName}: ${e.type} <strong>${e.value}</strong></li>`);
  return html`<section class="card" aria-labelledby="who">
<h2 id="who">Who</h2>
<dl>
<dt>Person</dt><dd>${d.person.name} (${d.person.employeeId})</dd>
<dt>Department</dt><dd>${d.person.department}</dd>
<dt>Job</dt><dd>${d.person.jobCode}</dd>
<dt>Location</dt><dd>${d.person.location}</dd>
<dt>Change</dt><dd>${d.person.name} ${LIFECYCLE_PHRASE[d.lifecycle] ?? `(${d.lifecycle})`}</dd>
</dl>
</section>
<section class="card" aria-labelledby="what">
<h2 id="what">What is asked</h2>
${
  d.kind === 'dataHandling'
    ? html`<p>${d.dataHandling?.description ?? ''}</p>`
    : html`<ul>${bundles}</ul>${entitlements.length ? html`<h3 class="fine">Grants</h3><ul>${entitlements}</ul>` : ''}`
}
<dl>
<dt>Risk</dt><dd><span class="badge ${risk}">${riskText(d)}</span></dd>
<dt>Why</dt><dd>${d.reason}</dd>
<dt>Decide by</dt><dd>${formatDeadline(approval.expiresAt, company.timeZone)}</dd>
</dl>
</section>`;
}

// ---------------------------------------------------------------------------------------------
// The confirmation page.

export interface ConfirmationPageInput {
  company: Company;
  approval: Pick<ApprovalRecord, 'approvalId' | 'approver' | 'expiresAt'>;
  details: ApprovalDetails;
  /** Absolute URL the form posts to (`${publicBaseUrl}/approvals/{id}`). */
  formAction: string;
  t: string;
  csrf: string;
  /** Shown above the form after a refused submission (nothing was decided). */
  error?: string;
  /** Kept when the form is shown again after an error. */
  rationale?: string;
}

export function renderConfirmationPage(input: ConfirmationPageInput): string {
  const { company, approval, details: d } = input;
  const outcome = outcomeText(d);
  const body = html`<h1>Approve ${whatText(d)} for ${d.person.name}?</h1>
${input.error ? html`<div class="alert" role="alert"><p><strong>Nothing was decided.</strong> ${input.error}</p></div>` : ''}
${d.escalation ? html`<p class="notice">This request was escalated to you because the first approver did not decide in time.</p>` : ''}
${requestSummary(d, approval, company)}
<form class="card" method="post" action="${safeUrl(input.formAction)}">
<h2>Your decision</h2>
<input type="hidden" name="t" value="${input.t}">
<input type="hidden" name="csrf" value="${input.csrf}">
<label for="rationale">Rationale</label>
<p class="help" id="rationale-help">Optional when approving, required when rejecting. At most ${MAX_RATIONALE_CHARS} characters.</p>
<textarea id="rationale" name="rationale" maxlength="${MAX_RATIONALE_CHARS}" aria-describedby="rationale-help">${input.rationale ?? ''}</textarea>
<div class="actions">
<button class="approve" type="submit" name="decision" value="approve">Approve</button>
<button class="reject" type="submit" name="decision" value="reject">Reject</button>
</div>
<h3 class="fine">What will happen</h3>
<ul class="fine">
<li>${outcome.approve}</li>
<li>${outcome.reject}</li>
<li>Only your first decision counts. Your address (${approval.approver}), the decision, your rationale, the time, your IP address and browser are recorded as audit evidence.</li>
<li>${d.escalation ? 'If you do not decide by the deadline, the request is closed without granting access and an exception is opened.' : 'If you do not decide by the deadline, the request is escalated once, then closed without granting access.'}</li>
</ul>
</form>
<p class="fine">Opening this page does not decide anything. If you did not expect this request, reject it or ignore it.</p>`;
  return page(company, `Approve access for ${d.person.name}`, body);
}

// ---------------------------------------------------------------------------------------------
// Result pages.

export type ResultKind = 'approved' | 'rejected' | 'closed' | 'invalid' | 'not_found';

export interface ResultPageInput {
  company: Company;
  kind: ResultKind;
  /** One sentence: why the page says what it says. */
  reason: string;
  details?: ApprovalDetails;
  rationale?: string;
}

const RESULT_TITLE: Record<ResultKind, string> = {
  approved: 'Approved',
  rejected: 'Rejected',
  closed: 'This request is no longer open',
  invalid: 'This link is not valid',
  not_found: 'No such approval request',
};

export function renderResultPage(input: ResultPageInput): string {
  const { company, kind, details: d } = input;
  const tone = kind === 'approved' || kind === 'rejected' ? 'ok' : kind === 'closed' ? 'notice' : 'alert';
  const heading = d && (kind === 'approved' || kind === 'rejected') ? `${RESULT_TITLE[kind]}: ${whatText(d)} for ${d.person.name}` : RESULT_TITLE[kind];
  const body = html`<h1>${heading}</h1>
<div class="${tone}" role="status"><p>${input.reason}</p></div>
${input.rationale ? html`<section class="card"><h2>Rationale recorded</h2><blockquote>${input.rationale}</blockquote></section>` : ''}
${d && kind === 'closed' ? html`<p>Request: ${whatText(d)} for ${d.person.name}.</p>` : ''}
${kind === 'invalid' || kind === 'not_found' ? html`<p>Use the most recent email about this request, and open its link exactly as it was sent. If it still fails, contact the access team.</p>` : ''}
<p class="fine">You can close this page.</p>`;
  return page(company, RESULT_TITLE[kind], body);
}

// ---------------------------------------------------------------------------------------------
// Emails.

export type EmailKind = 'request' | 'reminder' | 'escalation';

export interface ApprovalEmailInput {
  company: Company;
  kind: EmailKind;
  approver: string;
  details: ApprovalDetails;
  expiresAt: string;
  link: string;
  /** Who is asked if this approver lets the window lapse (omitted when nobody is). */
  escalatesTo?: string;
}

export function renderApprovalEmail(input: ApprovalEmailInput): { subject: string; text: string; html: string } {
  const { company, details: d, kind } = input;
  const deadline = formatDeadline(input.expiresAt, company.timeZone);
  const phrase = LIFECYCLE_PHRASE[d.lifecycle] ?? `(${d.lifecycle})`;
  const lead =
    kind === 'reminder'
      ? 'Reminder: this request is still waiting for your decision.'
      : kind === 'escalation'
        ? 'This request was escalated to you because the first approver did not decide in time.'
        : 'Your approval is needed.';
  const after = input.escalatesTo
    ? `If you do not decide by then, the request goes to ${input.escalatesTo}.`
    : 'If nobody decides by then, the request is closed without granting access and an exception is opened.';
  const subject = `[${company.name}] ${subjectFor(d, kind)}`;

  const text = [
    `${company.name} access approvals`,
    '',
    lead,
    '',
    `Who: ${d.person.name} (${d.person.employeeId}), ${d.person.jobCode}, ${d.person.department}, ${d.person.location} — ${phrase}`,
    `What: ${whatText(d)}`,
    ...d.bundles.filter((b) => b.description).map((b) => `  ${b.name}: ${b.description}`),
    ...(d.entitlements.length ? ['Grants:', ...d.entitlements.map((e) => `  - ${entitlementText(e)}`)] : []),
    `Risk: ${riskText(d)}`,
    `Why: ${d.reason}`,
    `Decide by: ${deadline}`,
    '',
    'Review and decide (opening the link does not decide anything):',
    input.link,
    '',
    `${after} The link works for ${input.approver} only, until the deadline, and for one decision.`,
    '',
  ].join('\n');

  const linkHref = safeUrl(input.link);
  const htmlBody = html`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${subject}</title></head>
<body style="margin:0;padding:16px;background:#f4f5f7;font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1a1a1a;line-height:1.5">
<div style="max-width:560px;margin:0 auto;background:#ffffff;border:1px solid #c9ced6;border-radius:8px;padding:16px">
<p style="margin:0 0 8px;font-weight:600;color:#1f3a5f">${company.name} · Access approvals</p>
<p style="margin:0 0 12px">${lead}</p>
<table role="presentation" style="border-collapse:collapse;width:100%">
<tr><th scope="row" style="text-align:left;vertical-align:top;padding:4px 12px 4px 0">Who</th><td style="padding:4px 0">${d.person.name} (${d.person.employeeId}), ${d.person.jobCode}, ${d.person.department}, ${d.person.location} — ${phrase}</td></tr>
<tr><th scope="row" style="text-align:left;vertical-align:top;padding:4px 12px 4px 0">What</th><td style="padding:4px 0">${whatText(d)}${
    d.entitlements.length ? html`<ul style="margin:4px 0 0;padding-left:20px">${d.entitlements.map((e) => html`<li>${entitlementText(e)}</li>`)}</ul>` : ''
  }</td></tr>
<tr><th scope="row" style="text-align:left;vertical-align:top;padding:4px 12px 4px 0">Risk</th><td style="padding:4px 0">${riskText(d)}</td></tr>
<tr><th scope="row" style="text-align:left;vertical-align:top;padding:4px 12px 4px 0">Why</th><td style="padding:4px 0">${d.reason}</td></tr>
<tr><th scope="row" style="text-align:left;vertical-align:top;padding:4px 12px 4px 0">Decide by</th><td style="padding:4px 0">${deadline}</td></tr>
</table>
<p style="margin:16px 0"><a href="${linkHref}" style="display:inline-block;background:#1f3a5f;color:#ffffff;text-decoration:none;font-weight:600;padding:12px 20px;border-radius:6px">Review and decide</a></p>
<p style="margin:0 0 8px;font-size:14px;color:#3d4450">Opening the link does not decide anything. ${after} The link works for ${input.approver} only, until the deadline, and for one decision.</p>
<p style="margin:0;font-size:12px;color:#3d4450;overflow-wrap:anywhere">${input.link}</p>
</div>
</body>
</html>
`.value;

  return { subject, text, html: htmlBody };
}
