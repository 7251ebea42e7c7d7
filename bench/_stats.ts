/**
 * The percentile every benchmark reports: nearest rank (the smallest value with at least p % of
 * the values at or below it), on a sorted copy. `NaN` for no values. With fewer than 100 values
 * the p99 is the largest.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
}
