/**
 * Exceptions, not silent failure: every one has an owner (the target's owner of record), a
 * reason and its evidence. Opening one notifies the owner by email and, when configured, raises
 * a ticket in the ITSM — tickets only on exceptions, never as the default path.
 */
import { randomUUID } from 'node:crypto';
import type { ExceptionRecord } from '#core/ledger';
import { html } from '#core/html';
import type { AppDeps } from './ports.ts';

export interface NewException {
  /**
   * A deterministic id makes opening idempotent: a retried step that already opened its
   * exception gets the existing one back instead of a second exception and a second email.
   */
  exceptionId?: string;
  runId?: string;
  employeeId?: string;
  target: string;
  owner: string;
  kind: ExceptionRecord['kind'];
  reason: string;
  evidence: unknown;
}

export async function openException(deps: AppDeps, input: NewException): Promise<ExceptionRecord> {
  const { exceptionId, ...rest } = input;
  const record: ExceptionRecord = {
    exceptionId: exceptionId ?? `exc-${randomUUID()}`,
    ...rest,
    status: 'open',
    openedAt: deps.clock.now().toISOString(),
  };
  if (!(await deps.ledger.openException(record))) {
    // Already open under this id (a retried step, a later night): no second exception, no second email.
    const existing = (await deps.ledger.listExceptions(input.runId ? { runId: input.runId } : {})).find((x) => x.exceptionId === record.exceptionId);
    return existing ?? record;
  }
  const link = `${deps.publicBaseUrl}/exceptions?status=open`;
  const subject = `[jml] Exception on ${input.target}: ${input.kind.replace(/_/g, ' ')}`;
  const text = [
    `An access change needs your attention as the owner of ${input.target}.`,
    '',
    `Reason: ${input.reason}`,
    input.employeeId ? `Person: ${input.employeeId}` : '',
    input.runId ? `Run: ${input.runId}` : '',
    `Exception: ${record.exceptionId}`,
    '',
    `Open exceptions: ${link}`,
  ]
    .filter((l) => l !== '')
    .join('\n');
  const body = html`<p>An access change needs your attention as the owner of <strong>${input.target}</strong>.</p>
<p><strong>Reason:</strong> ${input.reason}</p>
<ul>${input.employeeId ? html`<li>Person: ${input.employeeId}</li>` : ''}${input.runId ? html`<li>Run: ${input.runId}</li>` : ''}<li>Exception: ${record.exceptionId}</li></ul>
<p><a href="${link}">Open exceptions</a></p>`;
  await deps.mailer.send({ to: [input.owner], subject, text, html: String(body), links: [link], ...(input.runId ? { runId: input.runId } : {}) });
  deps.metrics.put('ExceptionOpened', 1, 'Count', { Target: input.target, Kind: input.kind });
  return record;
}

export async function resolveException(deps: AppDeps, input: { exceptionId: string; resolution: string; resolvedBy: string }) {
  return deps.ledger.resolveException(input.exceptionId, {
    resolvedAt: deps.clock.now().toISOString(),
    resolution: input.resolution,
    resolvedBy: input.resolvedBy,
  });
}
