/**
 * The percentile every benchmark reports: nearest rank (the smallest value with at least p % of
 * the values at or below it), on a sorted copy. `NaN` for no values. With fewer than 100 values
 * the p99 is the largest.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[nearestRank(p, sorted.length) - 1]!;
}

/** Which value, counted from the smallest (1-based), is the p-th percentile of `n` values. */
export function nearestRank(p: number, n: number): number {
  return Math.min(n, Math.max(1, Math.ceil((p / 100) * n)));
}
