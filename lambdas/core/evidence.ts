/**
 * The evidence bundle of one run (DESIGN.md "Evidence bundle"): the files an auditor reads, a
 * manifest with each file's sha256, and a hash chain across one person's bundles.
 *
 *   evidence/{yyyy}/{mm}/{runId}/
 *     hr-event.json        raw HR payload as received + its sha256
 *     plan.json            plan (with provenance), mapping version, desired state snapshot
 *     approvals.json       who decided what, why, when, from where, within which window
 *     execution-log.json   per step: target, op, request ids, changed, timings, errors
 *     idp-evidence.json    Okta System Log / Entra directory audit entries for the changes
 *     reconciliation.json  desired vs actual, drift, orphans, exceptions opened
 *     summary.html         the same, readable by a person (self-contained)
 *     manifest.json        { version, runId, employeeId, createdAt, files[{name, sha256, bytes}],
 *                            previousManifestSha256 }
 *
 * `previousManifestSha256` is the sha256 of the previous bundle's manifest.json *for the same
 * person* (null for their first). Editing any file changes its hash (caught against the
 * manifest); editing a manifest or removing a bundle breaks the next bundle's pointer (caught by
 * `verifyChain`); the newest bundle is anchored by the hash recorded when it was stored.
 *
 * Pure: no SDK, no I/O, no clock. Same input → byte-identical bundle (stable key order, 2-space
 * indent, trailing newline), so a retried close step writes the same bytes.
 */
import * as z from 'zod';
import type { AuditEntry, ChangeRecord } from './change.ts';
import type { DesiredState } from './desired-state.ts';
import { REDACTED, redactSecrets } from './evidence-redact.ts';
import { renderSummaryHtml } from './evidence-summary.ts';
import { canonicalJson, sha256Hex } from './hash.ts';
import type { Lifecycle } from './hr-event.ts';
import { TERMINAL_RUN_STATUSES, type RunStatus, type TimelineEntry } from './ledger.ts';
import type { Plan } from './plan.ts';
import { formatIssues, parseOrThrow } from './validation.ts';

// ---------------------------------------------------------------------------------------------
// Input: what the run's phases produced. Loose where other phases own the shape, typed where the
// summary and the checks read it.

/** Statuses a run can close with (the ledger's terminal statuses). */
export type ClosedRunStatus = Extract<RunStatus, 'COMPLETED' | 'EXCEPTION_OPEN' | 'FAILED' | 'SUPERSEDED' | 'STALE' | 'OUT_OF_SCOPE'>;

export interface EvidencePerson {
  displayName?: string;
  department?: string;
  location?: string;
  jobCode?: string;
  employmentType?: string;
  managerId?: string;
}

/** One approval request and its outcome. A ledger `ApprovalRecord` fits this shape (its task token is redacted). */
export interface EvidenceApproval {
  approvalId?: string;
  /** The plan's approval request id (`baseline`, `bundle:<name>`, `data:<id>`). */
  requestId: string;
  /** Who decided (email or id, or a richer object); null when nobody did (auto-approved). */
  approver: string | { id?: string; email?: string; name?: string } | null;
  approverRole?: string;
  /** Ledger status (`APPROVED`, `REJECTED`, `EXPIRED`, `ESCALATED`, `PENDING`) or `AUTO` (low risk, no approver). */
  status: string;
  rationale?: string;
  requestedAt?: string;
  decidedAt?: string;
  /** End of the window in which the decision could be made. */
  expiresAt?: string;
  /** The approval this one escalated (approver did not answer in time). */
  escalationOf?: string;
  sourceIp?: string;
  userAgent?: string;
  /** The request as shown to the approver (bundles, entitlements, why). */
  request?: unknown;
}

/**
 * One execute step: the converge of one target. A ledger `StepRecord` fits this shape; each
 * change is a connector `ChangeRecord` (op, request ids, changed).
 */
export interface ExecutionStepEvidence {
  stepId: string;
  target: string;
  phase?: string;
  startedAt?: string;
  finishedAt?: string;
  outcome: 'ok' | 'error' | 'skipped' | 'shadow' | (string & {});
  changes: ChangeRecord[];
  /** Writes made (changes with `changed: true`). */
  writes?: number;
  attempts?: number;
  error?: { name: string; message: string };
}

/** A connector `AuditEntry` and the target it came from. */
export interface IdpEvidenceEntry extends AuditEntry {
  target: string;
}

export interface ReconciliationTarget {
  target: string;
  mode?: 'enforce' | 'shadow';
  result: 'match' | 'drift' | 'conflict' | 'unreachable';
  accountId?: string;
  desiredStatus?: string;
  actualStatus?: string;
  /** Desired but not held. */
  missing?: Array<{ type: string; value: string }>;
  /** Held but not desired (drift). */
  unexpected?: Array<{ type: string; value: string }>;
  note?: string;
}

export interface ReconciliationEvidence {
  checkedAt: string;
  targets: ReconciliationTarget[];
  orphans?: Array<{ target: string; accountId: string; userName?: string; reason?: string }>;
  exceptionsOpened?: string[];
}

/** An exception the run opened. A ledger `ExceptionRecord` fits this shape. */
export interface EvidenceException {
  exceptionId: string;
  target: string;
  owner: string;
  kind?: string;
  reason: string;
  status: string;
  openedAt: string;
  resolvedAt?: string;
  resolution?: string;
  evidence?: unknown;
}

/**
 * Run figures (the ledger's `kpis`). Known names are rendered with their meaning; any other
 * number is listed by name.
 *  - `timeToDisableMs`: termination effective → IdP disabled and sessions revoked; `disableSlaMs` its SLA;
 *  - `revocationDisabledWithinSla` / `revocationEnumerated`: revocation completeness;
 *  - `driftCount`, `exceptionCount`, `runDurationMs` (received → closed).
 */
export type EvidenceKpis = Record<string, number | null | undefined>;

export type { TimelineEntry };

export interface EvidenceInput {
  runId: string;
  employeeId: string;
  lifecycle: Lifecycle;
  status: ClosedRunStatus;
  /** When the run closed (ISO); also dates the bundle's prefix and the manifest's createdAt. */
  closedAt: string;
  person?: EvidencePerson;
  /** The webhook body exactly as received (the bytes the signature covered). */
  rawEvent: { body: string; receivedAt: string };
  plan: Plan | null;
  desired: DesiredState | null;
  approvals: EvidenceApproval[];
  executionLog: ExecutionStepEvidence[];
  idpEvidence: IdpEvidenceEntry[];
  reconciliation: ReconciliationEvidence | null;
  exceptions: EvidenceException[];
  kpis: EvidenceKpis;
  timeline: TimelineEntry[];
  /** Manifest sha256 of this person's previous bundle (store.latestManifestSha256), null for the first. */
  previousManifestSha256: string | null;
}

// ---------------------------------------------------------------------------------------------
// Output.

export const EVIDENCE_FILES = [
  'hr-event.json',
  'plan.json',
  'approvals.json',
  'execution-log.json',
  'idp-evidence.json',
  'reconciliation.json',
  'summary.html',
] as const;
export type EvidenceFileName = (typeof EVIDENCE_FILES)[number];
export const MANIFEST_FILE = 'manifest.json';

const HEX64 = /^[0-9a-f]{64}$/;
/** Safe as one path segment / S3 key part: no slash, cannot be `.` or `..`. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Same rule as the HR contract's employeeId. */
export const EMPLOYEE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const FILE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const ManifestSchema = z.strictObject({
  version: z.literal(1),
  runId: z.string().regex(RUN_ID_PATTERN, 'must be a run id'),
  employeeId: z.string().regex(EMPLOYEE_ID_PATTERN, 'must be an employee id'),
  createdAt: z.iso.datetime({ offset: true }),
  files: z.array(
    z.strictObject({
      name: z.string().regex(FILE_NAME_PATTERN, 'must be a plain file name'),
      sha256: z.string().regex(HEX64, 'must be 64 lowercase hex digits'),
      bytes: z.number().int().nonnegative(),
    }),
  ),
  previousManifestSha256: z.string().regex(HEX64, 'must be 64 lowercase hex digits').nullable(),
});
export type EvidenceManifest = z.infer<typeof ManifestSchema>;

export interface EvidenceFile {
  name: string;
  contentType: string;
  body: string;
}

export interface EvidenceBundle {
  /** `evidence/{yyyy}/{mm}/{runId}/` (UTC month of the close). */
  prefix: string;
  /** The seven evidence files, then `manifest.json` last (store in this order). */
  files: EvidenceFile[];
  manifest: EvidenceManifest;
  /** sha256 of manifest.json's bytes: what the next bundle of this person points to. */
  manifestSha256: string;
  /** Where secrets were found and redacted (`approvals.json: [0].linkToken`); never values. */
  redactions: string[];
}

const CONTENT_TYPES: Record<string, string> = {
  json: 'application/json; charset=utf-8',
  html: 'text/html; charset=utf-8',
};

export function contentTypeOf(name: string): string {
  return CONTENT_TYPES[name.slice(name.lastIndexOf('.') + 1)] ?? 'application/octet-stream';
}

/** Deterministic document: keys sorted at every level, 2-space indent, trailing newline. */
export function stableJson(value: unknown): string {
  return `${JSON.stringify(JSON.parse(canonicalJson(value)), null, 2)}\n`;
}

const encoder = new TextEncoder();
export function byteLength(body: string | Uint8Array): number {
  return typeof body === 'string' ? encoder.encode(body).length : body.length;
}

export function bundlePrefix(runId: string, closedAt: string): string {
  const d = new Date(closedAt);
  if (!RUN_ID_PATTERN.test(runId)) throw new TypeError(`runId ${JSON.stringify(runId)} is not a valid run id`);
  if (Number.isNaN(d.getTime())) throw new TypeError(`closedAt ${JSON.stringify(closedAt)} is not a date-time`);
  return `evidence/${d.getUTCFullYear()}/${String(d.getUTCMonth() + 1).padStart(2, '0')}/${runId}/`;
}

const InputEnvelope = z.looseObject({
  runId: z.string().regex(RUN_ID_PATTERN, 'must be a run id (letters, digits, . _ -)'),
  employeeId: z.string().regex(EMPLOYEE_ID_PATTERN, 'must be an employee id (letters, digits, . _ -)'),
  status: z.string().refine((v) => TERMINAL_RUN_STATUSES.has(v as RunStatus), 'must be a terminal run status'),
  closedAt: z.iso.datetime({ offset: true }),
  rawEvent: z.looseObject({ body: z.string(), receivedAt: z.iso.datetime({ offset: true }) }),
  approvals: z.array(z.unknown()),
  executionLog: z.array(z.unknown()),
  idpEvidence: z.array(z.unknown()),
  exceptions: z.array(z.unknown()),
  timeline: z.array(z.unknown()),
  previousManifestSha256: z.string().regex(HEX64, 'must be 64 lowercase hex digits').nullable(),
});

/** hr-event.json: the raw body (verifiable against its hash) unless a secret had to be cut out. */
function hrEventDocument(runId: string, raw: { body: string; receivedAt: string }, redactions: string[]): unknown {
  const base = {
    runId,
    receivedAt: raw.receivedAt,
    sha256: sha256Hex(raw.body),
    bytes: byteLength(raw.body),
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.body);
  } catch {
    // Not JSON (the webhook refuses such bodies, so this is a stored oddity): only text rules apply.
    const { value, paths } = redactSecrets(raw.body);
    if (paths.length === 0) return { ...base, rawBody: raw.body };
    redactions.push('hr-event.json: rawBody');
    return { ...base, rawBody: null, redactedText: value, redacted: ['(body)'] };
  }
  const { value, paths } = redactSecrets(parsed);
  if (paths.length === 0) return { ...base, rawBody: raw.body };
  redactions.push(...paths.map((p) => `hr-event.json: ${p}`));
  // The exact bytes cannot be kept without the secret; the hash still identifies what arrived.
  return { ...base, rawBody: null, payload: value, redacted: paths };
}

/**
 * Builds every file of the bundle and its manifest. Throws a ValidationError naming the field
 * when the identifiers, times or chain pointer are malformed (they become storage keys).
 */
export function buildEvidenceBundle(input: EvidenceInput): EvidenceBundle {
  parseOrThrow(InputEnvelope, input, 'evidence input');
  const redactions: string[] = [];
  // Defence in depth: everything except the raw event body goes through the redactor once.
  const { rawEvent, ...rest } = input;
  const cleaned = redactSecrets(rest);
  const safe = cleaned.value;
  const fileOf: Record<string, string> = {
    plan: 'plan.json',
    desired: 'plan.json',
    approvals: 'approvals.json',
    executionLog: 'execution-log.json',
    idpEvidence: 'idp-evidence.json',
    reconciliation: 'reconciliation.json',
    exceptions: 'reconciliation.json',
  };
  for (const p of cleaned.paths) {
    const top = /^[A-Za-z]+/.exec(p)?.[0] ?? '';
    redactions.push(`${fileOf[top] ?? 'summary.html'}: ${p}`);
  }

  const { runId, employeeId, lifecycle, status, closedAt } = safe;
  const mappingVersion = safe.plan?.mappingVersion ?? safe.desired?.mappingVersion ?? null;
  const hrEvent = hrEventDocument(runId, rawEvent, redactions);

  const documents: Record<EvidenceFileName, string> = {
    'hr-event.json': stableJson(hrEvent),
    'plan.json': stableJson({ runId, employeeId, lifecycle, mappingVersion, plan: safe.plan, desired: safe.desired }),
    'approvals.json': stableJson({ runId, employeeId, approvals: safe.approvals }),
    'execution-log.json': stableJson({ runId, employeeId, steps: safe.executionLog }),
    'idp-evidence.json': stableJson({ runId, employeeId, entries: safe.idpEvidence }),
    'reconciliation.json': stableJson({
      runId,
      employeeId,
      reconciliation: safe.reconciliation,
      exceptions: safe.exceptions,
    }),
    'summary.html': renderSummaryHtml({
      ...safe,
      rawEvent: { receivedAt: rawEvent.receivedAt, sha256: sha256Hex(rawEvent.body), payload: summaryPayload(hrEvent) },
      mappingVersion,
      previousManifestSha256: input.previousManifestSha256,
    }),
  };

  const files: EvidenceFile[] = EVIDENCE_FILES.map((name) => ({ name, contentType: contentTypeOf(name), body: documents[name] }));
  const manifest: EvidenceManifest = {
    version: 1,
    runId,
    employeeId,
    createdAt: closedAt,
    files: files.map((f) => ({ name: f.name, sha256: sha256Hex(f.body), bytes: byteLength(f.body) })),
    previousManifestSha256: input.previousManifestSha256,
  };
  const manifestBody = stableJson(manifest);
  files.push({ name: MANIFEST_FILE, contentType: contentTypeOf(MANIFEST_FILE), body: manifestBody });
  return { prefix: bundlePrefix(runId, closedAt), files, manifest, manifestSha256: sha256Hex(manifestBody), redactions };
}

/** The HR payload for the summary: parsed from the stored document (already redacted). */
function summaryPayload(doc: unknown): unknown {
  const d = doc as { rawBody?: string | null; payload?: unknown };
  if (d.payload !== undefined) return d.payload;
  if (typeof d.rawBody === 'string') {
    try {
      return JSON.parse(d.rawBody);
    } catch {
      return null;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Verification.

export interface VerifyReport {
  ok: boolean;
  problems: string[];
  /** The parsed manifest, when it could be read. */
  manifest?: EvidenceManifest;
  manifestSha256?: string;
}

export interface VerifyBundleOptions {
  /** The manifest hash recorded when the bundle was stored (person index, run ledger). */
  expectedManifestSha256?: string;
  runId?: string;
  employeeId?: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true });
function asText(body: string | Uint8Array): string | null {
  if (typeof body === 'string') return body;
  try {
    return decoder.decode(body);
  } catch {
    return null;
  }
}

/** Parses a manifest's bytes; returns problems naming the field instead of throwing. */
export function parseManifest(body: string | Uint8Array): { manifest?: EvidenceManifest; problems: string[] } {
  const text = asText(body);
  if (text === null) return { problems: ['manifest.json is not UTF-8 text'] };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { problems: ['manifest.json is not valid JSON'] };
  }
  const result = ManifestSchema.safeParse(json);
  if (!result.success) return { problems: formatIssues(result.error).map((i) => `manifest.json: ${i}`) };
  return { manifest: result.data, problems: [] };
}

/**
 * Recomputes every file's sha256 and size against the manifest. Reports, by exact file name,
 * files that are missing, changed or not listed, and a manifest that omits a required file.
 * `files` maps names (relative to the bundle prefix) to their stored bytes.
 */
export function verifyBundle(files: ReadonlyMap<string, string | Uint8Array>, options: VerifyBundleOptions = {}): VerifyReport {
  const problems: string[] = [];
  const manifestBody = files.get(MANIFEST_FILE);
  if (manifestBody === undefined) return { ok: false, problems: ['manifest.json is missing'] };
  const manifestSha256 = sha256Hex(manifestBody);
  if (options.expectedManifestSha256 && options.expectedManifestSha256 !== manifestSha256) {
    problems.push(
      `manifest.json was changed: sha256 ${manifestSha256} does not match the ${options.expectedManifestSha256} recorded when the bundle was stored`,
    );
  }
  const { manifest, problems: parseProblems } = parseManifest(manifestBody);
  problems.push(...parseProblems);
  if (!manifest) return { ok: false, problems, manifestSha256 };

  if (options.runId && manifest.runId !== options.runId) problems.push(`manifest.json is for ${manifest.runId}, not ${options.runId}`);
  if (options.employeeId && manifest.employeeId !== options.employeeId) {
    problems.push(`manifest.json is for employee ${manifest.employeeId}, not ${options.employeeId}`);
  }

  const listed = new Set<string>();
  for (const entry of manifest.files) {
    if (entry.name === MANIFEST_FILE) {
      problems.push('manifest.json lists itself');
      continue;
    }
    if (listed.has(entry.name)) {
      problems.push(`manifest.json lists ${entry.name} twice`);
      continue;
    }
    listed.add(entry.name);
    const body = files.get(entry.name);
    if (body === undefined) {
      problems.push(`${entry.name} is missing (listed in the manifest)`);
      continue;
    }
    const sha = sha256Hex(body);
    const bytes = byteLength(body);
    if (sha !== entry.sha256) {
      problems.push(`${entry.name} was changed: sha256 ${sha} (${bytes} bytes) does not match the manifest's ${entry.sha256} (${entry.bytes} bytes)`);
    } else if (bytes !== entry.bytes) {
      problems.push(`${entry.name}: size ${bytes} bytes does not match the manifest's ${entry.bytes}`);
    }
  }
  for (const name of EVIDENCE_FILES) {
    if (!listed.has(name)) problems.push(`manifest.json does not list the required file ${name}`);
  }
  for (const name of [...files.keys()].sort()) {
    if (name !== MANIFEST_FILE && !listed.has(name)) problems.push(`${name} is not listed in the manifest (extra file)`);
  }

  // The raw HR body must still hash to the hash recorded beside it (and at ingest).
  const hr = files.get('hr-event.json');
  if (hr !== undefined && !problems.some((p) => p.startsWith('hr-event.json'))) {
    const doc = safeJson(hr) as { sha256?: unknown; rawBody?: unknown } | undefined;
    if (!doc || typeof doc.sha256 !== 'string') problems.push('hr-event.json: sha256 is missing');
    else if (typeof doc.rawBody === 'string' && sha256Hex(doc.rawBody) !== doc.sha256) {
      problems.push(`hr-event.json: rawBody does not hash to the recorded sha256 ${doc.sha256}`);
    }
  }
  return { ok: problems.length === 0, problems, manifest, manifestSha256 };
}

function safeJson(body: string | Uint8Array): unknown {
  const text = asText(body);
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One bundle of a person's chain, as found by the caller. */
export interface ChainEntry {
  /** manifest.json bytes as stored; null when the bundle could not be found. */
  manifest: string | Uint8Array | null;
  /** Who the bundle should be (from the person index or run ledger), when known. */
  runId?: string;
  closedAt?: string;
  /** The manifest hash recorded when the bundle was stored. */
  manifestSha256?: string;
}

export interface VerifyChainOptions {
  /**
   * The entries are the person's whole history, so the first must start the chain
   * (`previousManifestSha256: null`). Default true; false to check a window.
   */
  complete?: boolean;
}

interface Link {
  index: number;
  runId?: string;
  at?: string;
  present: boolean;
  sha256?: string;
  previous?: string | null;
  employeeId?: string;
  recorded?: string;
  named: boolean;
}

function label(l: Link): string {
  const id = l.runId ?? `manifest #${l.index + 1}`;
  return l.at ? `${id} (${l.at})` : id;
}

/**
 * Walks one person's manifests, oldest first, and reports every break in the hash chain with the
 * run ids around it: a removed bundle, an edited manifest, a fork, a restart, a reordering.
 * Entries from the person index also carry the hash recorded at write time, which pins the
 * newest bundle (no successor points to it) and tells a removal from an edit.
 */
export function verifyChain(
  entries: ReadonlyArray<ChainEntry | string | Uint8Array>,
  options: VerifyChainOptions = {},
): { ok: boolean; problems: string[] } {
  const problems: string[] = [];
  const links: Link[] = entries.map((raw, index) => {
    const e: ChainEntry = typeof raw === 'string' || raw instanceof Uint8Array ? { manifest: raw } : raw;
    const link: Link = { index, runId: e.runId, at: e.closedAt, present: false, recorded: e.manifestSha256, named: false };
    if (e.manifest === null) return link;
    link.sha256 = sha256Hex(e.manifest);
    const parsed = parseManifest(e.manifest);
    if (!parsed.manifest) {
      problems.push(`bundle ${label(link)} has an unreadable manifest: ${parsed.problems.join('; ')}`);
      link.named = true;
      link.present = true;
      link.previous = undefined;
      return link;
    }
    const m = parsed.manifest;
    if (e.runId && e.runId !== m.runId) {
      problems.push(`bundle ${label(link)} holds the manifest of ${m.runId}`);
      link.named = true;
    }
    link.runId = m.runId;
    link.at = m.createdAt;
    link.present = true;
    link.previous = m.previousManifestSha256;
    link.employeeId = m.employeeId;
    return link;
  });

  const owner = links.find((l) => l.employeeId)?.employeeId;
  for (const l of links) {
    if (l.employeeId && l.employeeId !== owner) problems.push(`bundle ${label(l)} belongs to employee ${l.employeeId}, not ${owner}`);
  }
  // Order is the chain's (pointers and index), not the clocks': two runs closing together may be
  // appended in either order, so close times are shown but not compared.

  const byHash = new Map<string, Link>();
  for (const l of links) if (l.present && l.sha256) byHash.set(l.sha256, l);

  for (let i = 0; i < links.length; i++) {
    const cur = links[i]!;
    if (!cur.present || cur.previous === undefined) continue;
    const p = cur.previous;
    const who = cur.runId ?? label(cur);
    if (i === 0) {
      if (p === null || options.complete === false) continue;
      const other = byHash.get(p);
      problems.push(
        other
          ? `bundle ${label(cur)} points to the manifest of ${label(other)}, which comes after it`
          : `a bundle before ${label(cur)} is missing or altered: ${who} points to manifest sha256 ${p} which no bundle has`,
      );
      continue;
    }
    const pred = links[i - 1]!;
    if (pred.present && pred.sha256 === p) continue;
    if (p === null) {
      problems.push(`bundle ${label(cur)} starts a new chain (previousManifestSha256 is null) after ${label(pred)}`);
      continue;
    }
    const other = byHash.get(p);
    if (other) {
      problems.push(`bundle ${label(cur)} points to the manifest of ${label(other)}, not to ${label(pred)} just before it (a forked or reordered chain)`);
      continue;
    }
    const tail = `${who} points to manifest sha256 ${p} which no bundle has`;
    if (!pred.present || pred.recorded === p) {
      problems.push(`bundle ${label(pred)} is missing or altered: ${tail}`);
      pred.named = true;
    } else if (pred.recorded && pred.recorded === pred.sha256) {
      problems.push(`a bundle between ${label(pred)} and ${label(cur)} is missing or altered: ${tail}`);
    } else {
      problems.push(`bundle ${label(pred)} is altered, or a bundle after it is missing: ${tail}`);
      pred.named = true;
    }
  }

  for (const l of links) {
    if (l.named) continue;
    if (!l.present) problems.push(`bundle ${label(l)} is missing: its manifest could not be found`);
    else if (l.recorded && l.sha256 !== l.recorded) {
      problems.push(`bundle ${label(l)} is altered: its manifest sha256 ${l.sha256} differs from the ${l.recorded} recorded when it was stored`);
    }
  }
  return { ok: problems.length === 0, problems };
}

export { REDACTED };
