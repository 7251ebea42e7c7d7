/**
 * MetricsSink on Powertools Metrics: CloudWatch Embedded Metric Format lines on stdout, which
 * CloudWatch Logs turns into metrics in the `jml` namespace (no PutMetricData call, no IAM).
 *
 * Each point is written at once as its own EMF document with its own dimensions
 * (`singleMetric()`): use cases put points with different dimension sets (`Workflow`, `Status`,
 * `Target`, …) and no handler calls `flush()`, so nothing may wait in a buffer. Every point also
 * carries the default `service` dimension; the dashboard and alarms in `lib/observability.ts`
 * name the same dimensions (see `METRIC_DIMENSIONS`).
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MetricsSink } from '#app/ports';

export const METRICS_NAMESPACE = 'jml';
export const METRICS_SERVICE = 'jml';

/** The dimensions every point carries besides its own: what a dashboard query must include. */
export const METRIC_DIMENSIONS = { service: METRICS_SERVICE } as const;

const UNITS = {
  Count: MetricUnit.Count,
  Seconds: MetricUnit.Seconds,
  Milliseconds: MetricUnit.Milliseconds,
  Percent: MetricUnit.Percent,
} as const;

export class EmfMetrics implements MetricsSink {
  constructor(private readonly metrics: Metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: METRICS_SERVICE })) {}

  put(name: string, value: number, unit: keyof typeof UNITS, dimensions: Record<string, string> = {}): void {
    if (!Number.isFinite(value)) return; // EMF rejects NaN / Infinity; a KPI that cannot be computed is not a zero
    const single = this.metrics.singleMetric();
    for (const [k, v] of Object.entries(dimensions)) if (k && v) single.addDimension(k, v);
    single.addMetric(name, UNITS[unit], value);
  }

  flush(): void {
    if (this.metrics.hasStoredMetrics()) this.metrics.publishStoredMetrics();
  }
}
