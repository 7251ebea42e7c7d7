/**
 * Evidence for the changes jml makes on its own schedule, with no HR event behind them: a
 * retention hard delete, a time-bound bundle's expiry, an exception grant applied or removed.
 *
 * Each is stored as a regular evidence bundle (the same seven files and manifest as a run, see
 * `#core/evidence`), in the person's hash chain, so `jml evidence verify` and an auditor read it
 * like any run's: `hr-event.json` holds the *trigger* (the fired schedule or the decision, as
 * received) instead of an HR payload; the execution log holds the target writes with their
 * request ids; `reconciliation.json` the re-read afterwards. The bundle id is deterministic per
 * trigger, so a redelivered schedule adopts the bundle already committed instead of writing a
 * second one.
 */
import type { DesiredState } from '#core/desired-state';
import {
  buildEvidenceBundle,
  type ClosedRunStatus,
  type EvidenceApproval,
  type ExecutionStepEvidence,
  type IdpEvidenceEntry,
  type ReconciliationEvidence,
  type TimelineEntry,
} from '#core/evidence';
import { EvidenceBundleExists, EvidenceChainConflict } from '#core/evidence-store';
import { sha256Hex } from '#core/hash';
import type { Lifecycle } from '#core/hr-event';
import type { ApprovalRecord, ExceptionRecord, PersonRecord } from '#core/ledger';
import type { AppDeps } from './ports.ts';

export interface SystemEvidenceInput {
  /** `retention`, `expiry`, `grant`, … — the bundle id's prefix. */
  kind: string;
  /** Identifies the trigger (schedule name and time, grant id and phase): same trigger, same bundle. */
  triggerKey: string;
  person: PersonRecord;
  lifecycle: Lifecycle;
  status: Extract<ClosedRunStatus, 'COMPLETED' | 'EXCEPTION_OPEN'>;
  /** What set this off, kept verbatim as the bundle's trigger document. */
  trigger: Record<string, unknown>;
  receivedAt: string;
  desired?: DesiredState | null;
  approvals?: ApprovalRecord[];
  steps: ExecutionStepEvidence[];
  idpEvidence?: IdpEvidenceEntry[];
  reconciliation?: ReconciliationEvidence | null;
  exceptions?: ExceptionRecord[];
  timeline: TimelineEntry[];
  kpis?: Record<string, number>;
}

/** Deterministic evidence id for a trigger (a valid run id: letters, digits, `-`). */
export function systemEvidenceId(kind: string, triggerKey: string): string {
  return `${kind}-${sha256Hex(triggerKey).slice(0, 32)}`;
}

export async function recordSystemEvidence(deps: AppDeps, input: SystemEvidenceInput): Promise<{ runId: string; prefix: string; manifestSha256: string }> {
  const runId = systemEvidenceId(input.kind, input.triggerKey);
  const closedAt = deps.clock.now().toISOString();
  const w = input.person.worker;
  for (let attempt = 0; ; attempt++) {
    const bundle = buildEvidenceBundle({
      runId,
      employeeId: input.person.employeeId,
      lifecycle: input.lifecycle,
      status: input.status,
      closedAt,
      person: {
        displayName: `${w.givenName} ${w.familyName}`,
        department: w.department,
        location: w.location,
        jobCode: w.jobCode,
        employmentType: w.employmentType,
        ...(w.managerId ? { managerId: w.managerId } : {}),
      },
      rawEvent: { body: JSON.stringify(input.trigger), receivedAt: input.receivedAt },
      plan: null,
      desired: input.desired ?? null,
      approvals: (input.approvals ?? []).map(toEvidenceApproval),
      executionLog: input.steps,
      idpEvidence: input.idpEvidence ?? [],
      reconciliation: input.reconciliation ?? null,
      exceptions: input.exceptions ?? [],
      kpis: input.kpis ?? {},
      timeline: [...input.timeline, { phase: 'CloseWithEvidence', at: closedAt, note: input.status }],
      previousManifestSha256: await deps.evidence.latestManifestSha256(input.person.employeeId),
    });
    try {
      await deps.evidence.putBundle(bundle);
      return { runId, prefix: bundle.prefix, manifestSha256: bundle.manifestSha256 };
    } catch (e) {
      // Written before (a redelivered trigger): keep the committed bundle; evidence is written once.
      if (e instanceof EvidenceBundleExists) return { runId, ...e.existing };
      // Another bundle of this person was committed first: chain after it.
      if (e instanceof EvidenceChainConflict && attempt < 4) continue;
      throw e;
    }
  }
}

function toEvidenceApproval(a: ApprovalRecord): EvidenceApproval {
  const { taskToken: _token, ...rest } = a;
  return { ...rest, approver: a.approver };
}
