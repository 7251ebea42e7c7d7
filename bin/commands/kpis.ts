/**
 * The four KPIs `jml kpis` prints — time to disable, revocation completeness, exception rate,
 * drift — and the metric series each is computed from, in one place for both sources:
 *
 *  - the local runtime: the points its in-memory metrics sink recorded (`GET /local/metrics`),
 *    with the dimensions the use cases gave them;
 *  - a deployed stack: CloudWatch, namespace `jml`, where the EMF adapter
 *    (lambdas/aws/metrics.emf.ts) adds the `service` dimension to every point, so a series is
 *    `{ service, <the use case's dimensions> }` — the same series the dashboard and alarms in
 *    lib/observability.ts read.
 *
 * Series (the use case that emits each):
 *  - `RunsClosed` {Workflow, Status}: one per closed run (lambdas/app/runs.ts emitKpis);
 *  - `TimeToDisable` {Workflow=leaver}: seconds from termination to the IdP disabled;
 *  - `RevocationCompleteness` {Workflow=leaver} per leaver run and {Workflow=reconcile} per
 *    nightly reconciliation (the nightly's per-target breakdown, which also has `Target`, is not
 *    counted again);
 *  - `ExceptionOpened` {Target, Kind}: one per exception opened, wherever (lambdas/app/exceptions.ts);
 *  - `DriftEntitlements` {Workflow}: entitlements found differing when a run closed.
 */
import { LIFECYCLES } from '#core/hr-event';
import { TERMINAL_RUN_STATUSES } from '#core/ledger';

export interface MetricPoint {
  name: string;
  value: number;
  dimensions: Record<string, string>;
}

export interface KpiSummary {
  runsClosed: number;
  byStatus: Record<string, number>;
  timeToDisableSeconds: { count: number; median: number | null; max: number | null };
  revocationCompletenessPercent: number | null;
  exceptionsOpened: number;
  exceptionRatePercent: number | null;
  driftEntitlements: number;
}

/** Whether a point's dimensions are exactly `keys`, with the fixed values `fixed`. */
function isSeries(p: MetricPoint, keys: string[], fixed: Record<string, string> = {}): boolean {
  const own = Object.keys(p.dimensions).filter((k) => k !== 'service').sort();
  const want = [...keys].sort();
  return own.length === want.length && own.every((k, i) => k === want[i]) && Object.entries(fixed).every(([k, v]) => p.dimensions[k] === v);
}

const STATUS_ORDER = [...TERMINAL_RUN_STATUSES] as string[];

/** Statuses in one order whatever the source: the ledger's terminal statuses first, others by name. */
function orderStatuses(counts: Record<string, number>): Record<string, number> {
  const rank = (s: string) => (STATUS_ORDER.includes(s) ? STATUS_ORDER.indexOf(s) : STATUS_ORDER.length);
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b)));
}

function summary(parts: {
  byStatus: Record<string, number>;
  ttd: { count: number; median: number | null; max: number | null };
  completeness: { sum: number; count: number };
  exceptionsOpened: number;
  drift: number;
}): KpiSummary {
  const byStatus = orderStatuses(Object.fromEntries(Object.entries(parts.byStatus).filter(([, n]) => n > 0)));
  const runs = Object.values(byStatus).reduce((a, b) => a + b, 0);
  return {
    runsClosed: runs,
    byStatus,
    timeToDisableSeconds: parts.ttd.count ? parts.ttd : { count: 0, median: null, max: null },
    revocationCompletenessPercent: parts.completeness.count ? parts.completeness.sum / parts.completeness.count : null,
    exceptionsOpened: parts.exceptionsOpened,
    exceptionRatePercent: runs ? (100 * (byStatus.EXCEPTION_OPEN ?? 0)) / runs : null,
    driftEntitlements: parts.drift,
  };
}

/** The KPIs from the local runtime's metric points. */
export function summariseKpis(points: MetricPoint[]): KpiSummary {
  const byStatus: Record<string, number> = {};
  for (const p of points.filter((x) => x.name === 'RunsClosed' && isSeries(x, ['Workflow', 'Status']))) {
    byStatus[p.dimensions.Status!] = (byStatus[p.dimensions.Status!] ?? 0) + p.value;
  }
  const ttd = points
    .filter((p) => p.name === 'TimeToDisable' && isSeries(p, ['Workflow'], { Workflow: 'leaver' }))
    .map((p) => p.value)
    .sort((a, b) => a - b);
  const rc = points.filter(
    (p) => p.name === 'RevocationCompleteness' && (isSeries(p, ['Workflow'], { Workflow: 'leaver' }) || isSeries(p, ['Workflow'], { Workflow: 'reconcile' })),
  );
  const sum = (name: string, keys: string[]) => points.filter((p) => p.name === name && isSeries(p, keys)).reduce((n, p) => n + p.value, 0);
  return summary({
    byStatus,
    ttd: { count: ttd.length, median: ttd.length ? ttd[Math.floor(ttd.length / 2)]! : null, max: ttd.length ? ttd[ttd.length - 1]! : null },
    completeness: { sum: rc.reduce((n, p) => n + p.value, 0), count: rc.length },
    exceptionsOpened: sum('ExceptionOpened', ['Kind', 'Target']),
    drift: sum('DriftEntitlements', ['Workflow']),
  });
}

export function printKpis(k: KpiSummary): void {
  console.log(`runs closed              ${k.runsClosed}  (${Object.entries(k.byStatus).map(([s, n]) => `${s} ${n}`).join(', ') || 'none'})`);
  console.log(`time to disable          ${k.timeToDisableSeconds.count ? `median ${k.timeToDisableSeconds.median!.toFixed(2)} s, max ${k.timeToDisableSeconds.max!.toFixed(2)} s over ${k.timeToDisableSeconds.count} leaver(s)` : 'no leavers yet'}`);
  console.log(`revocation completeness  ${k.revocationCompletenessPercent === null ? 'n/a' : `${k.revocationCompletenessPercent.toFixed(1)} %`}`);
  console.log(`exception rate           ${k.exceptionRatePercent === null ? 'n/a' : `${k.exceptionRatePercent.toFixed(1)} % of runs`} (${k.exceptionsOpened} exception(s) opened)`);
  console.log(`drift                    ${k.driftEntitlements} entitlement(s) found differing at reconcile`);
}

// ---- CloudWatch ---------------------------------------------------------------------------------

/** One GetMetricData query, and what its values mean for the summary. */
export interface KpiQuery {
  Id: string;
  Label: string;
  ReturnData: true;
  MetricStat?: {
    Metric: { Namespace: string; MetricName: string; Dimensions: Array<{ Name: string; Value: string }> };
    Period: number;
    Stat: string;
  };
  Expression?: string;
  Period?: number;
  /** Not sent: how the values are folded into the summary. */
  role: { kpi: 'runs'; status: string } | { kpi: 'ttd'; stat: 'count' | 'median' | 'max' } | { kpi: 'completeness'; stat: 'sum' | 'count' } | { kpi: 'exceptions' } | { kpi: 'drift' };
}

/**
 * The GetMetricData queries for the KPIs over one period of `periodSeconds` (the whole window):
 * every series named explicitly where its dimension values are known (lifecycles, run statuses),
 * and the dashboard's search for `ExceptionOpened`, whose `Target` values are the deployment's own.
 */
export function kpiQueries(namespace: string, service: string, periodSeconds: number): KpiQuery[] {
  const metric = (MetricName: string, dims: Record<string, string>) => ({
    Namespace: namespace,
    MetricName,
    Dimensions: Object.entries({ service, ...dims }).map(([Name, Value]) => ({ Name, Value })),
  });
  const queries: KpiQuery[] = [];
  const add = (id: string, label: string, name: string, dims: Record<string, string>, Stat: string, role: KpiQuery['role']) =>
    queries.push({ Id: id, Label: label, ReturnData: true, MetricStat: { Metric: metric(name, dims), Period: periodSeconds, Stat }, role });
  LIFECYCLES.forEach((l, i) =>
    [...TERMINAL_RUN_STATUSES].forEach((s, j) => add(`runs_${i}_${j}`, `RunsClosed ${l} ${s}`, 'RunsClosed', { Workflow: l, Status: s }, 'Sum', { kpi: 'runs', status: s })),
  );
  add('ttd_count', 'TimeToDisable leaver SampleCount', 'TimeToDisable', { Workflow: 'leaver' }, 'SampleCount', { kpi: 'ttd', stat: 'count' });
  add('ttd_median', 'TimeToDisable leaver p50', 'TimeToDisable', { Workflow: 'leaver' }, 'p50', { kpi: 'ttd', stat: 'median' });
  add('ttd_max', 'TimeToDisable leaver Maximum', 'TimeToDisable', { Workflow: 'leaver' }, 'Maximum', { kpi: 'ttd', stat: 'max' });
  for (const w of ['leaver', 'reconcile']) {
    add(`rc_${w}_sum`, `RevocationCompleteness ${w} Sum`, 'RevocationCompleteness', { Workflow: w }, 'Sum', { kpi: 'completeness', stat: 'sum' });
    add(`rc_${w}_count`, `RevocationCompleteness ${w} SampleCount`, 'RevocationCompleteness', { Workflow: w }, 'SampleCount', { kpi: 'completeness', stat: 'count' });
  }
  queries.push({
    Id: 'exceptions',
    Label: 'ExceptionOpened (all targets and kinds) Sum',
    ReturnData: true,
    Expression: `SUM(SEARCH('{${namespace},Kind,Target,service} MetricName="ExceptionOpened"', 'Sum', ${periodSeconds}))`,
    Period: periodSeconds,
    role: { kpi: 'exceptions' },
  });
  LIFECYCLES.forEach((l, i) => add(`drift_${i}`, `DriftEntitlements ${l} Sum`, 'DriftEntitlements', { Workflow: l }, 'Sum', { kpi: 'drift' }));
  return queries;
}

/** One query's answer: a value per period (usually one period: the window). */
export interface KpiResult {
  Id: string;
  Timestamps: Date[];
  Values: number[];
}

/** Folds the answers to `kpiQueries` into the summary the local command prints. */
export function summariseCloudWatch(queries: KpiQuery[], results: KpiResult[]): KpiSummary {
  const byId = new Map<string, KpiResult>();
  for (const r of results) {
    const seen = byId.get(r.Id);
    byId.set(r.Id, seen ? { Id: r.Id, Timestamps: [...seen.Timestamps, ...r.Timestamps], Values: [...seen.Values, ...r.Values] } : r);
  }
  const values = (q: KpiQuery) => byId.get(q.Id)?.Values ?? [];
  const total = (q: KpiQuery) => values(q).reduce((a, b) => a + b, 0);
  const byStatus: Record<string, number> = {};
  let completeness = { sum: 0, count: 0 };
  let exceptionsOpened = 0;
  let drift = 0;
  let ttdCount: KpiQuery | undefined;
  let ttdMedian: KpiQuery | undefined;
  let ttdMax: KpiQuery | undefined;
  for (const q of queries) {
    const r = q.role;
    if (r.kpi === 'runs') byStatus[r.status] = (byStatus[r.status] ?? 0) + total(q);
    else if (r.kpi === 'completeness') completeness = { ...completeness, [r.stat]: completeness[r.stat] + total(q) };
    else if (r.kpi === 'exceptions') exceptionsOpened += total(q);
    else if (r.kpi === 'drift') drift += total(q);
    else if (r.stat === 'count') ttdCount = q;
    else if (r.stat === 'median') ttdMedian = q;
    else ttdMax = q;
  }
  const count = ttdCount ? total(ttdCount) : 0;
  const max = ttdMax && values(ttdMax).length ? Math.max(...values(ttdMax)) : null;
  return summary({
    byStatus,
    ttd: { count, median: ttdMedian ? medianOver(byId.get(ttdMedian.Id), ttdCount && byId.get(ttdCount.Id)) : null, max },
    completeness,
    exceptionsOpened,
    drift,
  });
}

/**
 * The window is asked for as one period, so there is one p50; should CloudWatch split it in two
 * (its start rounded down), the periods' medians are weighted by their sample counts.
 */
function medianOver(median: KpiResult | undefined, counts: KpiResult | undefined): number | null {
  if (!median?.Values.length) return null;
  if (median.Values.length === 1) return median.Values[0]!;
  let weighted = 0;
  let n = 0;
  median.Values.forEach((v, i) => {
    const t = median.Timestamps[i]?.getTime();
    const j = counts?.Timestamps.findIndex((x) => x.getTime() === t) ?? -1;
    const w = j >= 0 ? counts!.Values[j]! : 1;
    weighted += v * w;
    n += w;
  });
  return n ? weighted / n : null;
}
