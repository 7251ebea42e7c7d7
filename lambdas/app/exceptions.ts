/**
 * Exceptions, not silent failure: every one has an owner (the target's owner of record), a
 * reason and its evidence. Opening one notifies the owner by email and, when configured, raises
 * a ticket in the ITSM — tickets only on exceptions, never as the default path.
 */
import { randomUUID } from 'node:crypto';
import type { ExceptionRecord } from '#core/ledger';
import { html } from '#core/html';
import type { TicketContext } from '#connectors/itsm';
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
  // Marked before anything else: a crash between opening and raising leaves the ticket due.
  if (deps.ticketing?.wants(record.kind)) await deps.ledger.markTicketDue(record.exceptionId);
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
  return raiseTicket(deps, record, { retry: false });
}

export async function resolveException(deps: AppDeps, input: { exceptionId: string; resolution: string; resolvedBy: string }) {
  if (deps.ticketing) await deps.ledger.markTicketDue(input.exceptionId);
  const resolved = await deps.ledger.resolveException(input.exceptionId, {
    resolvedAt: deps.clock.now().toISOString(),
    resolution: input.resolution,
    resolvedBy: input.resolvedBy,
  });
  if (resolved.ticket) return closeTicket(deps, { ...resolved, ticket: resolved.ticket });
  if (deps.ticketing) await deps.ledger.clearTicketDue(input.exceptionId); // no ticket to close
  return resolved;
}

function ticketContext(deps: AppDeps, e: ExceptionRecord): TicketContext {
  return {
    exceptionsUrl: `${deps.publicBaseUrl}/exceptions?status=open`,
    ...(e.runId ? { runUrl: `${deps.publicBaseUrl}/runs/${encodeURIComponent(e.runId)}` } : {}),
  };
}

/**
 * Raises the exception's ITSM ticket when one is configured for its kind. A failing ITSM never
 * fails the step that opened the exception (the owner already has the email): the failure is
 * recorded on the exception (`ticketError`), counted (`TicketFailed`), and retried by
 * `retryTickets` — the nightly reconciliation's last step.
 */
async function raiseTicket(deps: AppDeps, e: ExceptionRecord, options: { retry: boolean }): Promise<ExceptionRecord> {
  const ticketing = deps.ticketing;
  if (!ticketing?.wants(e.kind)) return e;
  try {
    const ticket = await ticketing.open(e, ticketContext(deps, e), { now: deps.clock.now(), retry: options.retry });
    await deps.ledger.setExceptionTicket(e.exceptionId, { ticket, ticketError: null });
    await deps.ledger.clearTicketDue(e.exceptionId);
    deps.metrics.put('TicketOpened', 1, 'Count', { Target: e.target, Kind: e.kind });
    const { ticketError: _, ...rest } = e;
    return { ...rest, ticket };
  } catch (err) {
    const ticketError = (err as Error).message;
    await deps.ledger.setExceptionTicket(e.exceptionId, { ticketError });
    deps.metrics.put('TicketFailed', 1, 'Count', { Target: e.target, Kind: e.kind });
    return { ...e, ticketError };
  }
}

async function closeTicket(deps: AppDeps, e: ExceptionRecord & { ticket: NonNullable<ExceptionRecord['ticket']> }): Promise<ExceptionRecord> {
  if (!deps.ticketing) return e;
  try {
    const ticket = await deps.ticketing.close(e, e.ticket, { now: deps.clock.now() });
    await deps.ledger.setExceptionTicket(e.exceptionId, { ticket, ticketError: null });
    await deps.ledger.clearTicketDue(e.exceptionId);
    const { ticketError: _, ...rest } = e;
    return { ...rest, ticket };
  } catch (err) {
    const ticketError = `closing ${e.ticket.key ?? e.ticket.id}: ${(err as Error).message}`;
    await deps.ledger.setExceptionTicket(e.exceptionId, { ticketError });
    deps.metrics.put('TicketFailed', 1, 'Count', { Target: e.target, Kind: e.kind });
    return { ...e, ticketError };
  }
}

/**
 * Retries what the ITSM did not take: open exceptions whose ticket was never raised, resolved
 * ones whose ticket was never closed — the exceptions marked due, not every exception the
 * ledger holds. A retried raise looks the ticket up first (the earlier attempt may have created
 * it before timing out).
 */
export async function retryTickets(deps: AppDeps): Promise<{ raised: number; closed: number; failed: number }> {
  const counts = { raised: 0, closed: 0, failed: 0 };
  const ticketing = deps.ticketing;
  if (!ticketing) return counts;
  for (const e of await deps.ledger.listTicketsDue()) {
    if (e.status === 'open' && !e.ticket && ticketing.wants(e.kind)) {
      const after = await raiseTicket(deps, e, { retry: true });
      if (after.ticket) counts.raised += 1;
      else counts.failed += 1;
    } else if (e.status === 'resolved' && e.ticket && !e.ticket.closedAt) {
      const after = await closeTicket(deps, { ...e, ticket: e.ticket });
      if (after.ticket?.closedAt) counts.closed += 1;
      else counts.failed += 1;
    } else {
      await deps.ledger.clearTicketDue(e.exceptionId); // nothing left to do for it
    }
  }
  return counts;
}
