import { describe, expect, it } from 'vitest';
import { LATENCY_BUCKETS, latencyBucket, latencyQuantile } from '../../src/queue/operations.ts';

/** A histogram of the given latencies, in seconds. */
function histogram(latencies: number[]): number[] {
  const counts = new Array<number>(LATENCY_BUCKETS).fill(0);
  for (const seconds of latencies) counts[latencyBucket(seconds)]! += 1;
  return counts;
}

describe('the delivery-latency histogram', () => {
  it('puts a latency in the bucket whose upper bound it does not pass', () => {
    expect(latencyBucket(-1)).toBe(0);
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(0.0001)).toBe(0);
    expect(latencyBucket(0.0001 * Math.SQRT2)).toBe(1);
    expect(latencyBucket(0.00015)).toBe(2);
    expect(latencyBucket(1)).toBe(27); // 0.1 ms × √2^27 ≈ 1.16 s
    expect(latencyBucket(10 ** 9)).toBe(LATENCY_BUCKETS - 1);
  });

  it('estimates percentiles within a bucket width of the exact ones', () => {
    const latencies = Array.from({ length: 1000 }, (_, i) => 0.001 * (i + 1)); // 1 ms … 1 s
    const counts = histogram(latencies);
    for (const [quantile, exact] of [
      [0.5, 0.5],
      [0.95, 0.95],
      [0.99, 0.99],
    ] as const) {
      const estimate = latencyQuantile(counts, quantile)!;
      expect(estimate / exact).toBeGreaterThan(1 / Math.SQRT2);
      expect(estimate / exact).toBeLessThan(Math.SQRT2);
    }
  });

  it('adds up: percentiles of summed histograms are those of all latencies', () => {
    const fast = histogram(Array.from({ length: 90 }, () => 0.002));
    const slow = histogram(Array.from({ length: 10 }, () => 5));
    const summed = fast.map((n, i) => n + slow[i]!);
    expect(latencyQuantile(summed, 0.5)!).toBeLessThan(0.003);
    expect(latencyQuantile(summed, 0.95)!).toBeGreaterThan(3.5);
  });

  it('has no percentile without deliveries', () => {
    expect(latencyQuantile(new Array<number>(LATENCY_BUCKETS).fill(0), 0.5)).toBeNull();
    expect(latencyQuantile([], 0.99)).toBeNull();
  });
});
