/**
 * The delivery-latency histogram of the stats history: fixed buckets, so that histograms of
 * several service instances and several minutes add up bucket by bucket, and percentiles of
 * any span are computed from the sums (as Prometheus histograms are). Bucket 0 holds
 * latencies up to {@link LATENCY_BUCKET_BASE_SECONDS}; bucket i up to base × √2^i, i.e. each
 * bucket is about 41% wider than the one before, which bounds a percentile's error to that
 * width; the last bucket holds everything above about 30 hours.
 */

/** Upper bound of bucket 0, in seconds: 0.1 ms. */
export const LATENCY_BUCKET_BASE_SECONDS = 0.0001;

/** Finite buckets: bucket 60's upper bound is 0.1 ms × 2^30, about 29.8 hours. */
const FINITE_BUCKETS = 61;

/** Buckets in all: the finite ones and one for everything above them. */
export const LATENCY_BUCKETS = FINITE_BUCKETS + 1;

/** Upper bound of each finite bucket, in seconds. */
const UPPER_BOUNDS: readonly number[] = Array.from(
  { length: FINITE_BUCKETS },
  (_, i) => LATENCY_BUCKET_BASE_SECONDS * Math.SQRT2 ** i,
);

/** The bucket a latency of `seconds` is counted in (negative counts as 0). */
export function latencyBucket(seconds: number): number {
  if (!(seconds > LATENCY_BUCKET_BASE_SECONDS)) return 0;
  const bucket = Math.ceil(2 * Math.log2(seconds / LATENCY_BUCKET_BASE_SECONDS));
  return bucket < FINITE_BUCKETS ? bucket : FINITE_BUCKETS;
}

/**
 * The `quantile` (0 to 1) of the latencies counted in `counts` (one count per bucket), in
 * seconds, interpolated linearly inside the bucket it falls in; null when nothing is
 * counted. A quantile in the last, open bucket is reported as that bucket's lower bound.
 */
export function latencyQuantile(counts: readonly number[], quantile: number): number | null {
  let total = 0;
  for (const n of counts) total += n;
  if (total === 0) return null;
  const rank = quantile * total;
  let below = 0;
  for (let bucket = 0; bucket < counts.length; bucket++) {
    const n = counts[bucket] ?? 0;
    if (n > 0 && below + n >= rank) {
      const lower = bucket === 0 ? 0 : UPPER_BOUNDS[bucket - 1]!;
      const upper = UPPER_BOUNDS[bucket];
      if (upper === undefined) return lower;
      return lower + ((upper - lower) * Math.max(0, rank - below)) / n;
    }
    below += n;
  }
  return UPPER_BOUNDS[FINITE_BUCKETS - 1]!;
}
