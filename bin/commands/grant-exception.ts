/**
 * `jml grant-exception`: asks for a time-bound exception grant of a named bundle for one person
 * (POST `${JML_URL:-http://127.0.0.1:8787}/exception-grants`, or the deployed API's with
 * `--stack <name>`, signed with SigV4). The bundle's app owner approves it
 * by emailed link; it is applied then, and removed automatically when it ends.
 *
 *   jml grant-exception --employee E1001 --bundle engineering --days 14 \
 *     --reason "Hand-over of the payments service until the new owner is trained" \
 *     --requested-by ops.lead@acme.example
 *
 * `--requested-by` defaults to `JML_OPERATOR`. `--until <ISO date-time>` instead of `--days`.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './io.ts';
import { endpoint } from './remote.ts';
import { http } from './runtime.ts';

const USAGE =
  'usage: jml grant-exception --employee <employeeId> --bundle <bundle> --reason "<why>" (--days <1-90> | --until <ISO date-time>) [--requested-by <email>] [--json]';

export async function grantExceptionCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      employee: { type: 'string' },
      bundle: { type: 'string' },
      reason: { type: 'string' },
      days: { type: 'string' },
      until: { type: 'string' },
      'requested-by': { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const requestedBy = values['requested-by'] ?? process.env.JML_OPERATOR;
  const missing = [
    !values.employee && '--employee',
    !values.bundle && '--bundle',
    !values.reason && '--reason',
    !values.days && !values.until && '--days or --until',
    !requestedBy && '--requested-by (or JML_OPERATOR)',
  ].filter(Boolean);
  if (missing.length) throw new UsageError(`missing ${missing.join(', ')}\n${USAGE}`);
  if (values.days && values.until) throw new UsageError(`give --days or --until, not both\n${USAGE}`);
  let days: number | undefined;
  if (values.days) {
    days = Number(values.days);
    if (!Number.isInteger(days) || days < 1) throw new UsageError(`--days must be a whole number of days (1-90), not ${JSON.stringify(values.days)}`);
  }
  const body = JSON.stringify({
    employeeId: values.employee,
    bundle: values.bundle,
    reason: values.reason,
    ...(days !== undefined ? { days } : { until: values.until }),
    requestedBy,
  });
  const res = await http('POST', '/exception-grants', { body, headers: { 'content-type': 'application/json' } });
  if (res.status !== 202 && res.status !== 200) {
    const message = res.json?.message ?? res.text.slice(0, 300);
    const issues: string[] = res.json?.issues ?? [];
    throw new UsageError(`grant-exception: HTTP ${res.status} — ${message}${issues.length ? `\n  - ${issues.join('\n  - ')}` : ''}`);
  }
  const g = res.json;
  const where = await endpoint();
  if (values.json) {
    console.log(JSON.stringify(g, null, 2));
    return 0;
  }
  console.log(
    `${g.duplicate ? '= already requested' : '✔ requested'}  ${g.grantId}  ${g.bundle} for ${g.employeeId} until ${g.expiresAt}\n` +
      `  status ${g.status}; approver ${g.approver} decides by emailed link\n` +
      `  follow it: GET ${where.baseUrl}/exception-grants/${g.grantId}${where.kind === 'stack' ? ' (SigV4)' : ''}`,
  );
  return 0;
}
