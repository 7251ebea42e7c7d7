/**
 * summary.html of an evidence bundle: what an auditor or identity owner reads first.
 *
 * Self-contained (inline CSS, no scripts, no external assets, a CSP that forbids both), so it
 * renders the same from S3, a zip or an email attachment years later. Accessible: `lang`, one h1
 * and h2 per section, tables with captions and scoped headers, status in words (never colour
 * alone), text contrast ≥ 4.5:1. Readable on a phone: fluid layout, wide tables scroll inside a
 * focusable region, long ids wrap. Every value from HR, approvers or targets is escaped by `html`.
 */
import type {
  ClosedRunStatus,
  EvidenceApproval,
  EvidenceException,
  EvidenceKpis,
  EvidenceInput,
  IdpEvidenceEntry,
  ReconciliationEvidence,
  TimelineEntry,
} from './evidence.ts';
import type { Lifecycle } from './hr-event.ts';
import { html, joinHtml, trustedHtml, type SafeHtml } from './html.ts';
import type { PlanStep } from './plan.ts';

/** What the summary renders: the evidence input, with the HR event as the bundle stored it. */
export type SummaryInput = Omit<EvidenceInput, 'rawEvent'> & {
  rawEvent: { receivedAt: string; sha256: string; payload: unknown };
  mappingVersion: string | null;
};

const LIFECYCLE_LABEL: Record<Lifecycle, string> = {
  joiner: 'Joiner',
  mover: 'Mover',
  leaver: 'Leaver',
  rehire: 'Rehire',
  leave_of_absence: 'Leave of absence',
  return: 'Return from leave',
};

const STATUS: Record<ClosedRunStatus, { text: string; tone: 'ok' | 'warn' | 'bad' | 'neutral' }> = {
  COMPLETED: { text: 'Completed', tone: 'ok' },
  EXCEPTION_OPEN: { text: 'Exception open', tone: 'warn' },
  FAILED: { text: 'Failed', tone: 'bad' },
  SUPERSEDED: { text: 'Superseded by a newer run', tone: 'neutral' },
  STALE: { text: 'Stale event (not applied)', tone: 'neutral' },
  OUT_OF_SCOPE: { text: 'Out of scope (nothing managed)', tone: 'neutral' },
};

// Colours chosen for ≥ 4.5:1 text contrast on their backgrounds (WCAG AA).
const CSS = `
:root{color-scheme:light;--fg:#1b1f24;--muted:#4a5563;--line:#d0d7de;--bg:#fff;--panel:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
header,main,footer{max-width:72rem;margin:0 auto;padding:1rem}
header{border-bottom:1px solid var(--line)}
h1{font-size:1.5rem;margin:.25rem 0}
h2{font-size:1.2rem;margin:2rem 0 .5rem;padding-bottom:.25rem;border-bottom:1px solid var(--line)}
.eyebrow{margin:0;color:var(--muted);font-size:.875rem;text-transform:uppercase;letter-spacing:.04em}
.muted{color:var(--muted)}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.875em;overflow-wrap:anywhere}
.status{display:inline-block;padding:.1rem .5rem;border-radius:1rem;font-weight:600;border:1px solid currentColor}
.tone-ok{color:#0b5d27;background:#e6f4ea}.tone-warn{color:#6b4200;background:#fff4d6}
.tone-bad{color:#a1151a;background:#fde8e8}.error{color:#a1151a}.tone-neutral{color:#3d4450;background:#eef1f4}
dl.facts{display:grid;grid-template-columns:minmax(8rem,max-content) 1fr;gap:.25rem 1rem;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
ul.kpis{list-style:none;padding:0;margin:0;display:grid;grid-template-columns:repeat(auto-fit,minmax(13rem,1fr));gap:.75rem}
ul.kpis li{background:var(--panel);border:1px solid var(--line);border-radius:.5rem;padding:.75rem}
.kpi-value{display:block;font-size:1.35rem;font-weight:650}
ol.timeline{padding-left:1.25rem}ol.timeline li{margin:.25rem 0}
.table-wrap{overflow-x:auto;border:1px solid var(--line);border-radius:.5rem}
.table-wrap:focus{outline:3px solid #0550ae;outline-offset:2px}
table{border-collapse:collapse;width:100%;font-size:.9375rem}
caption{text-align:left;padding:.5rem .75rem;color:var(--muted)}
th,td{text-align:left;vertical-align:top;padding:.45rem .75rem;border-top:1px solid var(--line)}
thead th{background:var(--panel);white-space:nowrap}
th[scope=rowgroup]{background:#fbfcfd;font-weight:600}
@media (max-width:40rem){header,main,footer{padding:.75rem}dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:.5rem}}
@media print{.table-wrap{overflow:visible;border:0}}
`;

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T/;

function when(iso: string | undefined | null): SafeHtml {
  if (!iso) return html`<span class="muted">—</span>`;
  const t = Date.parse(iso);
  if (!ISO_DATE_TIME.test(iso) || Number.isNaN(t)) return html`${iso}`;
  const text = `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  return html`<time datetime="${iso}">${text}</time>`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return 'n/a';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min${s % 60 ? ` ${s % 60} s` : ''}`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h${m % 60 ? ` ${m % 60} min` : ''}`;
  const d = Math.floor(h / 24);
  return `${d} d${h % 24 ? ` ${h % 24} h` : ''}`;
}

const none = html`<span class="muted">—</span>`;
const text = (v: string | undefined | null): SafeHtml | string => (v === undefined || v === null || v === '' ? none : v);

/** A captioned table in a focusable scroll region; `groups` puts each group of rows in its own tbody. */
function table(id: string, caption: SafeHtml | string, headers: string[], rows: SafeHtml[], groups?: SafeHtml[][]): SafeHtml {
  const bodies = groups ? groups.map((g) => html`<tbody>
${g}</tbody>
`) : html`<tbody>
${rows}</tbody>`;
  return html`<div class="table-wrap" role="region" aria-labelledby="${id}" tabindex="0"><table>
<caption id="${id}">${caption}</caption>
<thead><tr>${headers.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
${bodies}</table></div>`;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function personName(input: SummaryInput): string | undefined {
  if (input.person?.displayName) return input.person.displayName;
  const worker = (input.rawEvent.payload as { worker?: Record<string, unknown> } | null)?.worker;
  const name = [str(worker?.givenName), str(worker?.familyName)].filter(Boolean).join(' ');
  return name || undefined;
}

function facts(input: SummaryInput): SafeHtml {
  const payload = (input.rawEvent.payload ?? {}) as Record<string, unknown>;
  const worker = (payload.worker ?? {}) as Record<string, unknown>;
  const p = input.person ?? {};
  const rows: Array<[string, SafeHtml | string]> = [
    ['Run', html`<code>${input.runId}</code>`],
    ['Employee id', html`<code>${input.employeeId}</code>`],
    ['Lifecycle', LIFECYCLE_LABEL[input.lifecycle] ?? input.lifecycle],
    ['Department', text(p.department ?? str(worker.department))],
    ['Job code', text(p.jobCode ?? str(worker.jobCode))],
    ['Location', text(p.location ?? str(worker.location))],
    ['Employment type', text(p.employmentType ?? str(worker.employmentType))],
    ['Manager', text(p.managerId ?? str(worker.managerId))],
    ['HR event', text([str(payload.eventType), str(payload.eventId) && `(${str(payload.eventId)})`].filter(Boolean).join(' ') || undefined)],
    ['Effective date', text(str(payload.effectiveDate))],
    ['Event received', when(input.rawEvent.receivedAt)],
    ['Run closed', when(input.closedAt)],
    ['HR payload sha256', html`<code>${input.rawEvent.sha256}</code>`],
    ['Policy mapping version', input.mappingVersion ? html`<code>${input.mappingVersion}</code>` : none],
  ];
  return html`<dl class="facts">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}

const KNOWN_KPIS = new Set([
  'timeToDisableMs',
  'disableSlaMs',
  'revocationDisabledWithinSla',
  'revocationEnumerated',
  'driftCount',
  'exceptionCount',
  'runDurationMs',
]);

function kpis(k: EvidenceKpis): SafeHtml {
  const num = (name: string) => (typeof k[name] === 'number' && Number.isFinite(k[name]) ? (k[name] as number) : undefined);
  const items: SafeHtml[] = [];
  if ('timeToDisableMs' in k) {
    const ttd = num('timeToDisableMs');
    const sla = num('disableSlaMs');
    let verdict = '';
    if (ttd === undefined) verdict = 'not disabled yet';
    else if (sla !== undefined) verdict = ttd <= sla ? `within the ${formatDuration(sla)} SLA` : `SLA of ${formatDuration(sla)} breached`;
    items.push(
      html`<li><span class="kpi-value">${ttd === undefined ? 'n/a' : formatDuration(ttd)}</span>Time to disable${verdict && html` <span class="muted">(${verdict})</span>`}</li>`,
    );
  }
  const within = num('revocationDisabledWithinSla');
  const enumerated = num('revocationEnumerated');
  if (within !== undefined && enumerated !== undefined) {
    const pct = enumerated > 0 ? `${Math.round((within / enumerated) * 1000) / 10} %` : 'n/a';
    items.push(html`<li><span class="kpi-value">${pct}</span>Revocation completeness <span class="muted">(${within} of ${enumerated} accounts disabled within SLA)</span></li>`);
  }
  const drift = num('driftCount');
  if (drift !== undefined) items.push(html`<li><span class="kpi-value">${drift}</span>Drift findings</li>`);
  const exceptions = num('exceptionCount');
  if (exceptions !== undefined) items.push(html`<li><span class="kpi-value">${exceptions}</span>Exceptions opened</li>`);
  const duration = num('runDurationMs');
  if (duration !== undefined) items.push(html`<li><span class="kpi-value">${formatDuration(duration)}</span>Run duration (received to closed)</li>`);
  for (const name of Object.keys(k).sort()) {
    const v = num(name);
    if (!KNOWN_KPIS.has(name) && v !== undefined) items.push(html`<li><span class="kpi-value">${v}</span><code>${name}</code></li>`);
  }
  return items.length ? html`<ul class="kpis">${items}</ul>` : html`<p>No KPIs apply to this run.</p>`;
}

function timeline(entries: TimelineEntry[]): SafeHtml {
  if (entries.length === 0) return html`<p>No phases were recorded.</p>`;
  return html`<ol class="timeline">${entries.map((e) => html`<li>${when(e.at)} — <strong>${e.phase}</strong>${e.note && html`: ${e.note}`}</li>`)}</ol>`;
}

const DECISION_LABEL: Record<string, string> = {
  approved: 'Approved',
  rejected: 'Rejected (not granted)',
  expired: 'Expired (not granted)',
  escalated: 'Escalated',
  auto: 'Auto-approved (low risk)',
  pending: 'Pending',
};

function approver(a: EvidenceApproval): SafeHtml | string {
  const role = a.approverRole && html`<br><span class="muted">${a.approverRole}</span>`;
  if (!a.approver) return a.approverRole ? html`${none}${role}` : none;
  if (typeof a.approver === 'string') return html`${a.approver}${role}`;
  const { name, email, id } = a.approver;
  const who = name ?? email ?? id;
  if (!who) return none;
  return html`${who}${name && email && html` <span class="muted">&lt;${email}&gt;</span>`}${role}`;
}

function bundlesOf(a: EvidenceApproval): string[] {
  const b = (a.request as { bundles?: unknown } | undefined)?.bundles;
  return Array.isArray(b) ? b.filter((x): x is string => typeof x === 'string') : [];
}

function approvals(list: EvidenceApproval[]): SafeHtml {
  if (list.length === 0) return html`<p>No approval was needed for this run.</p>`;
  return table(
    'cap-approvals',
    'Approval requests and decisions',
    ['Request', 'Approver', 'Decision', 'Rationale', 'Decided', 'Window', 'Source'],
    list.map((a) => {
      const bundles = bundlesOf(a);
      return html`<tr><td><code>${a.requestId}</code>${bundles.length ? html`<br><span class="muted">${bundles.join(', ')}</span>` : ''}${a.escalationOf && html`<br><span class="muted">escalation of ${a.escalationOf}</span>`}</td>
<td>${approver(a)}</td><td>${DECISION_LABEL[a.status.toLowerCase()] ?? a.status}</td><td>${text(a.rationale)}</td><td>${when(a.decidedAt)}</td>
<td>${when(a.requestedAt)} to ${when(a.expiresAt)}</td>
<td>${a.sourceIp ? html`<code>${a.sourceIp}</code>` : none}${a.userAgent && html`<br><span class="muted">${a.userAgent}</span>`}</td></tr>
`;
    }),
  );
}

function why(step: PlanStep | undefined): string | undefined {
  const e = step?.entitlement as { rule?: string; bundle?: string } | undefined;
  if (e?.rule && e.bundle) return `rule ${e.rule} (bundle ${e.bundle})`;
  return step?.reason;
}

const OUTCOME_LABEL: Record<string, string> = {
  ok: 'Done',
  error: 'Failed',
  skipped: 'Skipped',
  shadow: 'Shadow mode (not written)',
};

function changes(input: SummaryInput): SafeHtml {
  const log = input.executionLog;
  if (log.length === 0) return html`<p>Nothing was executed: every target already matched the desired state, or the run stopped before executing.</p>`;
  const planned = new Map<string, PlanStep>();
  for (const t of input.plan?.targets ?? []) for (const s of t.steps) planned.set(s.id, s);
  const all = log.flatMap((s) => s.changes ?? []);
  const changed = all.filter((c) => c.changed).length;
  const failed = log.filter((s) => s.outcome === 'error').length;
  const counts = `${changed} change${changed === 1 ? '' : 's'} made, ${all.length - changed} already in the wanted state, ${failed} failed step${failed === 1 ? '' : 's'}.`;
  const groups: SafeHtml[][] = [];
  for (const step of log) {
    const rows: SafeHtml[] = [];
    groups.push(rows);
    const timing = step.startedAt && step.finishedAt ? formatDuration(Date.parse(step.finishedAt) - Date.parse(step.startedAt)) : undefined;
    const attempts = step.attempts && step.attempts > 1 ? html` <span class="muted">(${step.attempts} attempts)</span>` : '';
    const outcome = OUTCOME_LABEL[step.outcome] ?? step.outcome;
    rows.push(
      html`<tr><th scope="rowgroup" colspan="5">${step.target} <span class="muted">— ${outcome}${timing ? `, ${timing}` : ''}, started ${when(step.startedAt)}</span>${attempts}${
        step.error && html`<br><span class="error">${step.error.name}: ${step.error.message}</span>`
      }</th></tr>
`,
    );
    if ((step.changes ?? []).length === 0 && !step.error) rows.push(html`<tr><td colspan="5" class="muted">No change needed.</td></tr>
`);
    for (const c of step.changes ?? []) {
      const key = c.entitlement ? `${c.target}/${c.op}/${c.entitlement.type}:${c.entitlement.value}` : `${c.target}/${c.op}`;
      rows.push(html`<tr><td>${c.op}${c.entitlement && html`<br><span class="muted">${c.entitlement.type}: ${c.entitlement.value}</span>`}</td>
<td>${c.accountId ? html`<code>${c.accountId}</code>` : none}</td>
<td>${text(why(planned.get(key)))}</td>
<td>${c.changed ? 'Changed' : 'Already in place'}${c.detail && html`<br><span class="muted">${c.detail}</span>`}</td>
<td>${c.requestIds.length ? joinHtml(c.requestIds.map((id) => html`<code>${id}</code>`), trustedHtml('<br>')) : none}</td></tr>
`);
    }
  }
  return html`<p>${counts}</p>${table('cap-changes', 'Execution log: each target converged, then the writes it made', ['Operation', 'Account', 'Why', 'Result', 'Request ids'], [], groups)}`;
}

const RESULT_LABEL: Record<string, string> = {
  match: 'Matches desired state',
  drift: 'Drift found',
  conflict: 'Conflict (several accounts)',
  unreachable: 'Could not be checked',
};

function refs(list?: Array<{ type: string; value: string }>): SafeHtml | string {
  return list?.length ? joinHtml(list.map((e) => `${e.type}: ${e.value}`), trustedHtml('<br>')) : none;
}

function verification(r: ReconciliationEvidence | null): SafeHtml {
  if (!r) return html`<p>This run was not reconciled.</p>`;
  const targets = r.targets.length
    ? table(
        'cap-recon',
        html`Desired vs actual, re-read from each target at ${when(r.checkedAt)}`,
        ['Target', 'Result', 'Account status', 'Missing (desired, not held)', 'Unexpected (held, not desired)', 'Note'],
        r.targets.map(
          (t) => html`<tr><td>${t.target}${t.mode === 'shadow' ? html` <span class="muted">(shadow)</span>` : ''}</td><td>${RESULT_LABEL[t.result] ?? t.result}</td>
<td>${t.desiredStatus || t.actualStatus ? `desired ${t.desiredStatus ?? '—'}, actual ${t.actualStatus ?? '—'}` : none}</td>
<td>${refs(t.missing)}</td><td>${refs(t.unexpected)}</td><td>${text(t.note)}</td></tr>
`,
        ),
      )
    : html`<p>No target was checked.</p>`;
  const orphans = r.orphans?.length
    ? html`<h3>Orphaned accounts</h3>${table(
        'cap-orphans',
        'Accounts that no policy or person link explains',
        ['Target', 'Account', 'User name', 'Reason'],
        r.orphans.map((o) => html`<tr><td>${o.target}</td><td><code>${o.accountId}</code></td><td>${text(o.userName)}</td><td>${text(o.reason)}</td></tr>\n`),
      )}`
    : html`<p>No orphaned accounts were found.</p>`;
  return html`${targets}${orphans}`;
}

function idp(entries: IdpEvidenceEntry[]): SafeHtml {
  if (entries.length === 0) return html`<p>No identity provider audit entries were collected.</p>`;
  return table(
    'cap-idp',
    "The identity provider's own audit trail for these changes",
    ['Time', 'Source', 'Event', 'Outcome', 'Actor', 'Summary'],
    entries.map(
      (e) => html`<tr><td>${when(e.time)}</td><td>${e.target}<br><code class="muted">${e.id}</code></td><td><code>${e.eventType}</code></td><td>${e.outcome}</td><td>${text(e.actor)}</td><td>${e.summary}</td></tr>
`,
    ),
  );
}

function exceptions(list: EvidenceException[]): SafeHtml {
  if (list.length === 0) return html`<p>No exceptions were opened.</p>`;
  return table(
    'cap-exceptions',
    'Exceptions opened by this run',
    ['Exception', 'Target', 'Owner', 'Reason', 'Status', 'Opened'],
    list.map(
      (x) => html`<tr><td><code>${x.exceptionId}</code>${x.kind && html`<br><span class="muted">${x.kind}</span>`}</td><td>${text(x.target)}</td><td>${text(x.owner)}</td><td>${x.reason}</td><td>${x.status}</td><td>${when(x.openedAt)}</td></tr>
`,
    ),
  );
}

export function renderSummaryHtml(input: SummaryInput): string {
  const name = personName(input);
  const lifecycle = LIFECYCLE_LABEL[input.lifecycle] ?? input.lifecycle;
  const status = STATUS[input.status] ?? { text: input.status, tone: 'neutral' as const };
  const title = `${lifecycle} run for ${name ? `${name} (${input.employeeId})` : input.employeeId} — evidence`;
  const section = (id: string, heading: string, body: SafeHtml) =>
    html`<section aria-labelledby="${id}"><h2 id="${id}">${heading}</h2>
${body}
</section>
`;
  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<style>${trustedHtml(CSS)}</style>
</head>
<body>
<header>
<p class="eyebrow">JML evidence bundle</p>
<h1>${lifecycle}: ${name ?? input.employeeId}${name ? html` <span class="muted">(${input.employeeId})</span>` : ''}</h1>
<p><span class="status tone-${status.tone}">${status.text}</span> <span class="muted">Run <code>${input.runId}</code>, closed ${when(input.closedAt)}</span></p>
</header>
<main>
${section('h-facts', 'Run at a glance', facts(input))}
${section('h-kpis', 'Key figures', kpis(input.kpis))}
${section('h-timeline', 'Timeline', timeline(input.timeline))}
${section('h-approvals', 'Who approved what', approvals(input.approvals))}
${section('h-changes', 'What changed', changes(input))}
${section('h-verified', 'What was verified', verification(input.reconciliation))}
${section('h-idp', 'Identity provider evidence', idp(input.idpEvidence))}
${section('h-exceptions', 'Exceptions', exceptions(input.exceptions))}
${section(
  'h-integrity',
  'Integrity',
  html`<p>Every other file of this bundle is listed with its SHA-256 and size in <code>manifest.json</code>. ${
    input.previousManifestSha256
      ? html`The previous bundle for this person has manifest SHA-256 <code>${input.previousManifestSha256}</code>; a removed or edited bundle breaks this chain.`
      : 'This is the first bundle for this person (the start of their hash chain).'
  } Check it with <code>jml evidence verify</code>.</p>`,
)}
</main>
</body>
</html>
`;
  return page.value;
}
